"""benchmarks/bench_lra.py: the LRA Text training step of every mixer (and PoNet's floor) in its own process,
written with the paper's Table 2 beside it (no verdicts); a model out of memory is retried at half the batch and
the others measured at that batch too; the width-64 profile."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_env


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_lra  # noqa: E402
import lra_report  # noqa: E402
from lra_measure import LRA_MODELS, build_lra_text_model  # noqa: E402


def run_script(name: str, out: Path, *argv) -> subprocess.CompletedProcess:
    completed = subprocess.run([sys.executable, str(BENCHMARKS / name), "--threads", "1", "--output_dir", str(out),
                                *argv], capture_output=True, text=True, timeout=600, env=child_env())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lra_bench")
    completed = run_script("bench_lra.py", out, "--lengths", "16,32", "--batch_size", "2", "--min_batch_size", "1",
                           "--repeats", "1")
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text(), completed.stdout, out


def test_every_mixer_and_the_floor_run_a_training_step(tiny_run):
    report, _, _, _ = tiny_run
    got = {(r["model"], r["length"]): r for r in report["results"]}
    assert set(got) == {(m, n) for m in LRA_MODELS for n in (16, 32)}
    for key, record in got.items():
        assert record["status"] == "ok", (key, record)
        assert record["batch_size"] == 2 and record["precision"] == "fp32"
        assert record["steps_per_s"] == pytest.approx(1000.0 / record["time_ms"], rel=1e-6)
        assert record["peak_memory_mb"] >= 0
    # the floor holds PoNet's five projections as one Linear: the same parameters; FNet's mixer has none
    assert got[("floor", 16)]["num_parameters"] == got[("ponet", 16)]["num_parameters"]
    assert got[("fnet", 16)]["num_parameters"] < got[("ponet", 16)]["num_parameters"]


def test_the_floor_is_the_lra_shell_with_the_pooling_removed():
    spec = dict(model="floor", length=16, device="cpu")
    floor, ponet = build_lra_text_model(spec), build_lra_text_model({**spec, "model": "ponet"})
    assert type(floor.encoder.layers[0].mixer) is type(ponet.encoder.layers[0].mixer)  # the same output Linear
    assert type(floor.encoder.layers[0].mixer.pooling).__name__ == "FloorMixer"
    assert ponet.config.segment_size == 2 and ponet.config.hidden_size == 64 and ponet.config.num_hidden_layers == 2


def test_the_report_has_the_papers_table_beside_the_ratios_and_no_verdict(tiny_run):
    report, text, stdout, out = tiny_run
    assert "The paper's Table 2" in text and "| 4096 | 1.8, 23.8 GB | 21.4, 1.7 GB | 16.2, 2.4 GB |" in text
    assert "PoNet step / floor step" in text and "PoNet speed-up over softmax" in text
    assert not any(word in text for word in ("target", " met", "NOT met", "≥", "≤"))
    assert "avx512_bf16" in text and report["settings"]["batch_size"] == 2
    assert (out / "lra_speed.png").stat().st_size > 10_000
    assert "bench_lra.py" in json.loads((out / "provenance.json").read_text())["command"]
    assert "wrote" in stdout


def fake_run_one(fails):
    """A stand-in for bench_speed's run_one: `fails(model, length, batch)` says out of memory, else a step of
    `batch * length` microseconds."""
    def run_one(context, spec, memory_cap, time_cap_s, measure_fn=None):
        if fails(spec["model"], spec["length"], spec["batch_size"]):
            return {"status": "oom", "error": "resident memory passed the cap"}
        time_ms = spec["batch_size"] * spec["length"] / 1000 * (10 if spec["model"] == "softmax" else 1)
        return {"status": "ok", "time_ms": time_ms, "steps_per_s": 1000 / time_ms, "peak_memory_mb": 1.0,
                "first_call_s": 0.0}
    return run_one


def test_out_of_memory_halves_the_batch_and_measures_the_others_there_too(monkeypatch, tmp_path):
    # softmax fits only 2 examples at 64 tokens and none at 128; the other models fit everything
    fails = lambda model, length, batch: model == "softmax" and (length > 64 or batch > 2)  # noqa: E731
    monkeypatch.setattr(bench_lra, "run_one", fake_run_one(fails))
    monkeypatch.setattr(bench_lra, "_context", lambda preload=(): None)
    args = bench_lra.parse_args(["--lengths", "64,128,256", "--batch_size", "8", "--min_batch_size", "2",
                                 "--threads", "1", "--output_dir", str(tmp_path)])
    report = bench_lra.run_all(args)
    runs = [(r["model"], r["length"], r["batch_size"], r["status"]) for r in report["results"]]
    softmax = [run for run in runs if run[0] == "softmax"]
    assert softmax == [("softmax", 64, 8, "oom"), ("softmax", 64, 4, "oom"), ("softmax", 64, 2, "ok"),
                       ("softmax", 128, 8, "oom"), ("softmax", 128, 4, "oom"), ("softmax", 128, 2, "oom"),
                       ("softmax", 256, 8, "skipped")]
    for model in ("ponet", "floor", "fnet"):  # at the full batch, and at softmax's batch for equal-batch ratios
        assert [run[2] for run in runs if run[0] == model and run[1] == 64] == [8, 2]
        assert [run[2] for run in runs if run[0] == model and run[1] == 128] == [8]
    table = lra_report._table(report)
    assert lra_report.measured_ratio(table, "softmax", "ponet", 64) == (10.0, 2)
    assert lra_report.measured_ratio(table, "ponet", "floor", 64) == (1.0, 8)
    row = next(line for line in lra_report.markdown(report).splitlines() if line.startswith("| 64 | 1.00"))
    assert row == "| 64 | 1.00 | 10.00 (batch 2) | 1.00 | 1.00 (batch 2) |"  # the paper has no 64-token column


def test_the_width_64_profile_breaks_the_pooling_down_by_operator(tmp_path):
    run_script("profile_training_step.py", tmp_path, "--lra_text", "--length", "64", "--batch_size", "2",
               "--precision", "fp32")
    for model in ("ponet", "floor"):
        profile = json.loads((tmp_path / f"profile_lra_{model}_fp32_64.json").read_text())
        assert profile["spec"]["model"] == model and profile["ranges_ms"]["backward"] > 0
    ponet = json.loads((tmp_path / "profile_lra_ponet_fp32_64.json").read_text())
    assert ponet["ranges_ms"]["pooling_forward"] > 0 and ponet["ranges_ms"]["pooling_backward"] > 0
    assert "aten::maximum" in ponet["pooling_forward_operators"]  # the 2-token blocks' max: no scatter
    assert "aten::scatter_reduce_" not in ponet["pooling_forward_operators"]
