"""benchmarks/bench_speed.py at tiny sizes: every model in every CPU precision runs and is written to JSON, markdown
and a plot; an out-of-memory measurement (raised inside it, or the process killed by the memory cap) is recorded
instead of crashing; bad arguments are one clear error each; `--append` never replaces a success by a failure.
No timing is asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_env

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "bench_speed.py"
# benchmarks/ is a folder of scripts, not a package (pysbd installs an unrelated top-level `benchmarks` package).
sys.path.insert(0, str(BENCHMARKS))
import bench_speed  # noqa: E402
import speed_measure  # noqa: E402
import speed_report  # noqa: E402

TINY = [
    "--device", "cpu", "--threads", "1", "--hidden_size", "32", "--num_layers", "2", "--num_heads", "4",
    "--intermediate_size", "64", "--vocab_size", "2000", "--batch_sizes", "1", "--warmup", "1", "--repeats", "1",
]
CPU_PRECISIONS = ["fp32", "bf16_autocast", "bf16_weights", "int8"]
NETWORKS = ["ponet", "floor", "bert", "modernbert", "fnet"]


def run_bench(tmp_path, *extra):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--output_dir", str(tmp_path), *extra],
        capture_output=True, text=True, timeout=600, env=child_env(),
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((tmp_path / "results.json").read_text()), completed.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Every model x every CPU precision x both modes; fp32 at two lengths, the others at one (a length cap)."""
    out = tmp_path_factory.mktemp("bench")
    first, stdout = run_bench(
        out, "--models", ",".join(NETWORKS + ["gemm"]), "--precisions", ",".join(CPU_PRECISIONS),
        "--lengths", "32,64", "--modes", "forward,train", "--simulate_oom", "fnet:32",
        "--length_caps", "*:*:bf16_autocast=32,*:*:bf16_weights=32,*:*:int8=32",
    )
    # A second run, appended, whose re-measurements pass a (tiny) memory cap.
    report, append_stdout = run_bench(
        out, "--models", "ponet,floor", "--precisions", "fp32", "--lengths", "32,128", "--modes", "forward",
        "--memory_cap_gb", "0.01", "--append",
        "--repeats", "200",  # long enough to be sampled while it runs (it is killed at the first sample)
    )
    return out, first, report, stdout, append_stdout


def by_key(report):
    return {(r["model"], r["mode"], r["precision"], r["length"]): r for r in report["results"]}


def test_every_model_runs_in_every_cpu_precision_and_mode(tiny_run):
    _, first, _, _, _ = tiny_run
    results = by_key(first)
    for model in ("ponet", "floor", "bert"):
        for precision in CPU_PRECISIONS:
            modes = ("forward", "train") if precision in speed_measure.TRAINING_PRECISIONS else ("forward",)
            for mode in modes:
                r = results[(model, mode, precision, 32)]
                assert r["status"] == "ok", r
                assert r["time_ms"] > 0 and len(r["times_ms"]) == 1 and r["gflop_per_s"] > 0
                assert r["tokens_per_s"] == pytest.approx(32 / (r["time_ms"] / 1000.0))
                assert r["peak_memory_mb"] >= 0 and r["peak_process_memory_mb"] > 0
                assert ((r["saved_activations_mb"] or 0) > 0) == (mode == "train")
            # inference formats are not trained
            assert (model, "train", precision, 32) in results or precision in ("bf16_weights", "int8")
            assert (model, "train", "int8", 32) not in results and (model, "train", "bf16_weights", 32) not in results
    # the GEMM ceiling runs once per hardware precision (autocast shares the bf16 one)
    gemm = {(r["mode"], r["precision"]) for r in first["results"] if r["model"] == "gemm" and r["length"] == 32}
    assert gemm == {("forward", "fp32"), ("forward", "bf16_weights"), ("forward", "int8"),
                    ("train", "fp32"), ("train", "bf16_weights")}
    assert all(r["status"] == "ok" for r in first["results"] if r["model"] == "gemm")
    machine, settings = first["machine"], first["settings"]
    assert machine["cpu"] and machine["torch"] and settings["threads"] == 1 and settings["hidden_size"] == 32


def test_length_caps_and_unsupported_combinations_are_respected(tiny_run):
    _, first, _, _, _ = tiny_run
    results = by_key(first)
    assert not [k for k in results if k[2] != "fp32" and k[3] == 64]  # capped at 32
    assert results[("fnet", "forward", "bf16_weights", 32)]["status"] == "n/a"
    assert "torch.fft" in results[("fnet", "forward", "bf16_weights", 32)]["error"]


def test_a_failed_measurement_is_an_oom_entry_and_longer_lengths_are_skipped(tiny_run):
    _, first, _, stdout, _ = tiny_run
    fnet = {(r["mode"], r["length"]): r for r in first["results"] if r["model"] == "fnet" and r["precision"] == "fp32"}
    for mode in ("forward", "train"):
        assert fnet[(mode, 32)]["status"] == "oom" and "MemoryError" in fnet[(mode, 32)]["error"]
        assert fnet[(mode, 64)]["status"] == "skipped"
    assert "OOM" in stdout


def test_markdown_tables_ratios_and_plot_are_written(tiny_run):
    out, _, _, _, _ = tiny_run
    text = (out / "results.md").read_text()
    for mode in ("forward", "train"):
        assert f"### {mode}, batch 1, 64 tokens: time (ms) and speed-up over fp32" in text
        assert f"#### {mode}, fp32, batch 1: time (ms)" in text
        assert f"#### {mode}, bf16 autocast, batch 1: time (ms)" in text
    assert "#### forward, int8 dynamic, batch 1: time (ms)" in text
    assert "#### train, int8 dynamic" not in text
    assert "PoNet / floor (no pooling)" in text and "PoNet / GEMM-only" in text and "BERT-SDPA / PoNet" in text
    rows = [line for line in text.splitlines() if line.startswith("| 32 |") and "OOM" in line]
    assert len(rows) >= 4  # FNet's failure at 32 shows in the fp32 tables
    png = out / "speed_cpu_b1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    provenance = json.loads((out / "provenance.json").read_text())  # what made the folder, written by the script
    assert "benchmarks/bench_speed.py" in provenance["command"] and provenance["versions"]["torch"]


def test_the_memory_cap_kills_a_measurement_and_append_keeps_the_earlier_success(tiny_run):
    _, first, report, _, append_stdout = tiny_run
    assert append_stdout.count("OOM: resident memory passed the cap of 0.01 GiB") == 2
    merged, earlier = by_key(report), by_key(first)
    for model in ("ponet", "floor"):
        assert merged[(model, "forward", "fp32", 32)] == earlier[(model, "forward", "fp32", 32)]  # kept
        assert merged[(model, "forward", "fp32", 128)]["status"] == "skipped"  # new key: recorded
        assert f"kept the earlier successful measurement of {model} forward fp32 32" in append_stdout
    assert merged[("bert", "train", "bf16_autocast", 32)]["status"] == "ok"  # untouched by the second run
    assert len(merged) == len(earlier) + 2


# ------------------------------------------------------------------------------------------------------------
# --append in detail (no measurement)
# ------------------------------------------------------------------------------------------------------------


def record(model="ponet", status="ok", time_ms=1.0, precision="fp32", length=512):
    result = {"model": model, "mode": "forward", "precision": precision, "length": length, "batch_size": 1,
              "device": "cpu", "status": status}
    return {**result, "time_ms": time_ms} if status == "ok" else {**result, "error": "x"}


def report_of(*results, threads=2, **settings):
    return {"machine": {}, "settings": {"device": "cpu", "threads": threads, "hidden_size": 768, "num_layers": 12,
                                        "num_heads": 12, "intermediate_size": 3072, "vocab_size": 30522, **settings},
            "results": list(results)}


@pytest.mark.parametrize(
    "old, new, kept",
    [
        (record(time_ms=5.0), record(time_ms=7.0), "new"),  # a re-measurement replaces a success
        (record(), record(status="oom"), "old"),  # a failure never replaces a success
        (record(), record(status="skipped"), "old"),
        (record(), record(status="error"), "old"),
        (record(status="timeout"), record(status="oom"), "new"),  # a failure replaces a failure
        (record(status="oom"), record(), "new"),
    ],
)
def test_append_keeps_the_better_record(tmp_path, old, new, kept):
    (tmp_path / "results.json").write_text(json.dumps(report_of(old, record(model="bert"))))
    merged = speed_report.merge_previous(report_of(new), str(tmp_path / "results.json"))
    results = {r["model"]: r for r in merged["results"]}
    assert results["ponet"] == (new if kept == "new" else old)
    assert results["bert"] == record(model="bert")


def test_append_reads_a_results_file_from_before_precisions(tmp_path):
    old = {k: v for k, v in record(time_ms=3.0).items() if k != "precision"}
    (tmp_path / "results.json").write_text(json.dumps(report_of(old, dtype="float32")))
    merged = speed_report.merge_previous(report_of(record(status="oom")), str(tmp_path / "results.json"))
    assert merged["results"] == [{**old, "precision": "fp32"}]


def test_append_refuses_a_run_with_other_settings(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(report_of(record(), threads=2)))
    with pytest.raises(SystemExit, match="threads=2"):
        speed_report.merge_previous(report_of(record(), threads=4), str(tmp_path / "results.json"))


# ------------------------------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--vocab_size", "1000"], "--vocab_size 1000 is too small"),
        (["--precisions", "float8"], "unknown precision float8"),
        (["--precisions", "fp32,fp32"], "each once"),
        (["--dtype", "float8"], "unrecognized arguments: --dtype float8"),
        (["--lengths", "0"], "every value must be a positive integer"),
        (["--lengths", "512,-4"], "every value must be a positive integer"),
        (["--lengths", "512,512"], "repeats a value"),
        (["--lengths", "1k"], "not a comma-separated list of integers"),
        (["--batch_sizes", "0"], "every value must be a positive integer"),
        (["--models", "gpt2"], "unknown model gpt2"),
        (["--modes", "backward"], "unknown mode backward"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--num_layers", "0"], "--num_layers must be at least 1"),
        (["--hidden_size", "30", "--num_heads", "4"], "not a multiple of --num_heads"),
        (["--device", "tpu"], "--device 'tpu'"),
        (["--device", "cuda", "--precisions", "int8"], "int8 runs on CPU only"),
        (["--modes", "train", "--precisions", "int8,bf16_weights"], "--modes train runs at"),
        (["--length_caps", "bert:train=512"], "a cap is model:mode:precision=N"),
        (["--length_caps", "bert:train:bf17=512"], "unknown precision 'bf17'"),
        (["--memory_cap_gb", "-1"], "--memory_cap_gb must be 0"),
        (["--measure_budget_s", "0"], "must be positive"),
        (["--repeats", "0"], "--repeats must be at least 1"),
    ],
)
def test_bad_arguments_are_one_clear_error(capsys, argv, message):
    with pytest.raises(SystemExit) as raised:
        bench_speed.parse_args(argv)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_the_default_grid_respects_its_length_caps(capsys):
    planned = bench_speed.plan(bench_speed.parse_args(["--device", "cpu"]), "cpu")
    longest = {}
    for spec, _ in planned:
        key = (spec["mode"], spec["precision"], spec["model"])
        longest[key] = max(longest.get(key, 0), spec["length"])
    assert longest[("forward", "bf16_autocast", "ponet")] == longest[("forward", "int8", "ponet")] == 16384
    assert longest[("forward", "fp32", "ponet")] == longest[("train", "bf16_autocast", "ponet")] == 4096
    assert longest[("forward", "bf16_autocast", "bert")] == 8192
    assert ("train", "int8", "ponet") not in longest and ("train", "bf16_weights", "ponet") not in longest
    assert {reason for spec, reason in planned if spec["model"] == "fnet" and spec["precision"] == "bf16_weights"} == {
        "torch.fft has no half-precision CPU kernel"
    }
    bench_speed.main(["--device", "cpu", "--dry_run"])
    assert capsys.readouterr().out.splitlines()[-1] == f"{sum(reason is None for _, reason in planned)} measurements"


# ------------------------------------------------------------------------------------------------------------
# The ratios section
# ------------------------------------------------------------------------------------------------------------


def test_the_ratios_are_measurements_with_no_verdict_against_a_goal():
    times = {  # (model, mode, precision) -> ms at 4096 tokens
        ("ponet", "forward", "fp32"): 6000, ("ponet", "forward", "bf16_autocast"): 1500,
        ("floor", "forward", "bf16_autocast"): 1000, ("ponet", "train", "fp32"): 18000,
        ("ponet", "train", "bf16_autocast"): 6000, ("bert", "forward", "fp32"): 9000,
        ("bert", "forward", "bf16_autocast"): 4500, ("fnet", "forward", "fp32"): 1200,
        ("ponet", "forward", "int8"): 2000,
    }
    results = [{**record(model, time_ms=ms, precision=precision, length=4096), "mode": mode}
               for (model, mode, precision), ms in times.items()]
    lines = speed_report.ratios(report_of(*results))
    text = "\n".join(lines)
    assert "PoNet forward at 4096, bf16 autocast vs fp32: 4.00x faster\n" in text
    assert "PoNet / floor forward at 4096, bf16 autocast: 1.50\n" in text
    assert "PoNet training step at 4096, bf16 autocast vs fp32: 3.00x faster\n" in text
    assert "BERT-SDPA at its best (bf16 autocast) / PoNet bf16 (bf16 autocast), forward at 4096: 3.00x\n" in text
    assert "FNet at its best (fp32) / PoNet bf16 (bf16 autocast), forward at 4096: 0.80x\n" in text
    assert not any(word in text for word in ("meets", "misses", "target", ">=", "<="))
    assert "PoNet int8 dynamic forward at 4096: 2000 ms, 3.00x faster than fp32" in text


# ------------------------------------------------------------------------------------------------------------
# The plot: one question per panel
# ------------------------------------------------------------------------------------------------------------


def test_each_model_is_drawn_at_its_fastest_measured_precision_at_each_length():
    results = [
        record(time_ms=10.0, length=512), record(time_ms=4.0, precision="bf16_autocast", length=512),
        record(time_ms=3.0, precision="int8", length=512, status="oom"),  # failed: never the best
        record(time_ms=30.0, length=1024), record(time_ms=40.0, precision="bf16_weights", length=1024),
        record(precision="fp32", length=2048, status="timeout"),  # nothing measured at 2048: no point
        record(time_ms=1.0, length=512, model="floor"),  # another model
        {**record(time_ms=2.0, precision="bf16_weights", length=1024), "batch_size": 4},  # another batch
    ]
    series = speed_report.best_precision_series(report_of(*results), "ponet", "forward", 1)
    assert [(n, precision, r["time_ms"]) for n, precision, r in series] == [(512, "bf16_autocast", 4.0),
                                                                            (1024, "fp32", 30.0)]
    assert speed_report.best_precision_series(report_of(*results), "ponet", "train", 1) == []


def test_speed_report_redraws_a_folder_and_keeps_the_runs_provenance(tmp_path):
    grid = [(model, ms, mode, precision, length) for model, ms in (("ponet", 2.0), ("floor", 1.8), ("fnet", 1.5))
            for mode in speed_measure.MODES for precision in ("fp32", "bf16_autocast") for length in (512, 1024, 2048)]
    results = [{**record(model, time_ms=ms * length / 512, precision=precision, length=length), "mode": mode,
                "peak_memory_mb": 100.0 * length / 512} for model, ms, mode, precision, length in grid]
    results.append({**record("bert", status="oom", length=4096), "mode": "train"})
    (tmp_path / "results.json").write_text(json.dumps({**report_of(*results), "machine": {"cpu": "test CPU"}}))
    (tmp_path / "provenance.json").write_text(json.dumps({"command": ["benchmarks/bench_speed.py", "--x"]}))
    completed = subprocess.run([sys.executable, str(BENCHMARKS / "speed_report.py"), str(tmp_path)],
                               capture_output=True, text=True, timeout=300, env=child_env())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    png = tmp_path / "speed_cpu_b1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert "benchmarks/speed_report.py" in provenance["command"]
    assert provenance["earlier"] == [{"command": ["benchmarks/bench_speed.py", "--x"]}]
