#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, offline, on CPU.
set -euo pipefail
cd "$(dirname "$0")"
# torch first and pinned: an unpinned torch would pull several GB of CUDA packages.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"
# Real artifacts the tests use, fetched once from PyPI (the tests themselves run offline):
# transformers' own common model tests (its sdist, for the installed version) and the human-rated sentences
# of Hutto & Gilbert (2014) inside vaderSentiment's sdist.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ponet-tests"
version=$(python -c "import transformers; print(transformers.__version__)")
export PONET_TRANSFORMERS_SDIST="$cache/transformers-$version.tar.gz"
[ -f "$PONET_TRANSFORMERS_SDIST" ] || python -m pip download -q --no-deps --no-binary :all: "transformers==$version" -d "$cache"
python -m ponet_training.data.vader --download_only
# Real images for the LRA Image stand-in (tests/test_lra_data.py reads them and fails without them): Debian's
# Fashion-MNIST package, installed where apt exists (as root, or through passwordless sudo).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
    as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
    $as_root apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
        || { $as_root apt-get update -qq >/dev/null 2>&1 && $as_root apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
        || echo "run_tests.sh: could not install dataset-fashion-mnist (apt-get install dataset-fashion-mnist)" >&2
fi
# The last transformers 4.x, in a venv that borrows this environment's torch (nothing big is downloaded): saved folders
# must load there too (tests/test_remote_code.py). A venv that did not finish installing is made again.
v4="$cache/transformers-4.57.6-venv"
if ! "$v4/bin/python" -c "import transformers; assert transformers.__version__ == '4.57.6'" 2>/dev/null; then
    rm -rf "$v4"
    python -m venv --system-site-packages "$v4"
    "$v4/bin/python" -m pip install -q "transformers==4.57.6"
fi
# One thread per test worker: 2 workers on 2 cores, no oversubscription.
OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m pytest -n 2 tests "$@"
