#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, offline, on CPU.
set -euo pipefail
cd "$(dirname "$0")"
# torch first and pinned: an unpinned torch would pull several GB of CUDA packages.
python -m pip install -q torch==2.13.0
# [dev]: the model, every extra (train, study, bench) and the test runner.
python -m pip install -q -e ".[dev]"
# One thread per test worker: 2 workers on 2 cores, no oversubscription.
OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m pytest -n 2 tests "$@"
