"""benchmarks/bench_speed.py at tiny sizes: it writes its JSON, markdown and plot, and records an out-of-memory
measurement (raised inside the measurement, or the process killed by the memory cap) instead of crashing.
No timing is asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speed.py"
TINY = [
    "--device", "cpu", "--threads", "1", "--hidden_size", "32", "--num_layers", "2", "--num_heads", "4",
    "--intermediate_size", "64", "--vocab_size", "2000", "--batch_sizes", "1", "--warmup", "1", "--repeats", "1",
]


def run_bench(tmp_path, *extra):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--output_dir", str(tmp_path), *extra],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((tmp_path / "results.json").read_text()), completed.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    _, stdout = run_bench(
        out, "--models", "ponet,floor,bert,fnet", "--lengths", "32,64", "--modes", "forward,train",
        "--simulate_oom", "fnet:32",
    )
    # A second run, merged into the first, whose one measurement passes a (tiny) memory cap.
    report, _ = run_bench(
        out, "--models", "ponet", "--lengths", "128", "--modes", "forward", "--memory_cap_gb", "0.01", "--append",
        "--repeats", "200",  # long enough to be sampled while it runs (it is killed at the first sample)
    )
    return out, report, stdout


def test_every_measurement_is_recorded_with_times_memory_and_the_machine(tiny_run):
    out, report, _ = tiny_run
    results = {(r["model"], r["mode"], r["length"]): r for r in report["results"]}
    assert len(results) == 17  # 4 models x 2 modes x 2 lengths, each exactly once, and the appended run
    for model in ("ponet", "floor", "bert"):
        for mode in ("forward", "train"):
            for length in (32, 64):
                r = results[(model, mode, length)]
                assert r["status"] == "ok", r
                assert r["time_ms"] > 0 and len(r["times_ms"]) == 1
                assert r["tokens_per_s"] == pytest.approx(length / (r["time_ms"] / 1000.0))
                assert r["peak_memory_mb"] >= 0 and r["peak_process_memory_mb"] > 0
                assert ((r["saved_activations_mb"] or 0) > 0) == (mode == "train")
    machine, settings = report["machine"], report["settings"]
    assert machine["cpu"] and machine["torch"] and settings["threads"] == 1 and settings["hidden_size"] == 32


def test_a_failed_measurement_is_an_oom_entry_and_longer_lengths_are_skipped(tiny_run):
    _, report, stdout = tiny_run
    fnet = {(r["mode"], r["length"]): r for r in report["results"] if r["model"] == "fnet"}
    for mode in ("forward", "train"):
        assert fnet[(mode, 32)]["status"] == "oom" and "MemoryError" in fnet[(mode, 32)]["error"]
        assert fnet[(mode, 64)]["status"] == "skipped"
    assert "OOM" in stdout


def test_markdown_tables_ratios_and_plot_are_written(tiny_run):
    out, report, _ = tiny_run
    text = (out / "results.md").read_text()
    assert "### forward, batch 1: time (ms)" in text and "### train, batch 1: time (ms)" in text
    assert "PoNet / floor" in text and "BERT / PoNet" in text
    rows = [line for line in text.splitlines() if line.startswith("| 32 |")]
    assert len(rows) == 4 and all("OOM" in row for row in rows)  # FNet at 32, in every table
    png = out / "speed_cpu_b1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_memory_cap_kills_a_measurement_and_records_it_as_oom(tiny_run):
    out, report, _ = tiny_run
    (capped,) = [r for r in report["results"] if r["length"] == 128]
    assert capped["status"] == "oom" and "cap of 0.01 GiB" in capped["error"]
    assert "PoNet forward L=128 b=1: OOM" in (out / "results.md").read_text()
