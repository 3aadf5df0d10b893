"""finetune/run_lra.py: a tiny run of every task and mixer trains, scores dev and test, records what ran, and resumes
to the very weights of an uninterrupted run; the published settings are its defaults."""

import json
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, child_env
from safetensors.torch import load_file

from ponet_training.data.lra import listops, pathfinder
from ponet_training.script_loading import load_script


run_lra = load_script(ROOT / "finetune" / "run_lra.py", "run_lra")


@pytest.fixture(scope="module")
def lra_files(tmp_path_factory):
    """Small copies of every task's data, each in its own source's format: {task: data_dir} (the Fashion-MNIST
    stand-in reads Debian's real files)."""
    root = tmp_path_factory.mktemp("lra")
    splits, stats = listops.generate(seed=3, sizes={"train": 24, "validation": 8, "test": 8})
    listops.write(root / "listops", splits, stats)
    pathfinder.generate(root / "pathfinder", contour_length=14, num_images=60, seed=3)
    reviews = {"train": ["Dull and slow.", "A delight!", "Bad " * 1200, "Great fun."] * 3, "test": ["Good.", "Awful."] * 3}
    for split, texts in reviews.items():
        for number, text in enumerate(texts):
            label = ("neg", "pos")[number % 2]
            folder = root / "text" / "aclImdb" / split / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{number}_{7 if label == 'pos' else 2}.txt").write_text(text)
    aan = root / "retrieval" / "tsv_data"
    aan.mkdir(parents=True)
    rows = [(f"{number % 2}.0", f"A{number}", f"B{number}", f"paper {number} " * 3, "cites " * (number + 1))
            for number in range(12)]
    for split in ("train", "eval", "test"):
        (aan / f"new_aan_pairs.{split}.tsv").write_text("".join("\t".join(row) + "\n" for row in rows))
    return {"listops": root / "listops", "pathfinder": root / "pathfinder", "text": root / "text",
            "retrieval": root / "retrieval", "fashion_mnist_standin": None}


def tiny_flags(task, data_dir, output_dir, *extra):
    flags = ["--task", task, "--output_dir", str(output_dir), "--max_train_steps", "4", "--checkpointing_steps", "2",
             "--eval_steps", "2", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "4",
             "--max_train_samples", "8", "--max_eval_samples", "6", *extra]
    return flags + (["--data_dir", str(data_dir)] if data_dir is not None else [])


def trains_and_resumes_exactly(task, data_dir, tmp_path, *extra):
    full = tmp_path / "full"
    results = run_lra.main(tiny_flags(task, data_dir, full, *extra))
    assert results["train_steps"] == 4 and results["eval_samples"] == 6
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["best_step"] in (2, 4)
    # A run killed after step 2, resumed in another folder from its checkpoint.
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(full / "step_2", resumed_dir / "step_2")
    resumed = run_lra.main(tiny_flags(task, data_dir, resumed_dir, *extra, "--resume_from_checkpoint", "latest"))
    assert resumed["resumed_at_step"] == 2
    for split in ("eval", "test"):
        assert resumed[f"{split}_accuracy"] == results[f"{split}_accuracy"]
    # The weights after the last update (the final model is the best dev one, whose folder was not copied).
    final, again = load_file(full / "step_4" / "model.safetensors"), load_file(resumed_dir / "step_4" / "model.safetensors")
    # The same computation on the same machine and thread count: equal to the bit.
    assert all(torch.equal(final[name], again[name]) for name in final)
    halfway = load_file(full / "step_2" / "model.safetensors")
    assert any(not torch.equal(halfway[name], final[name]) for name in final)  # it trains
    return results


@pytest.mark.parametrize("task", ["listops", "pathfinder", "text", "retrieval", "fashion_mnist_standin"])
def test_every_task_trains_with_ponet_and_resumes_exactly(task, lra_files, tmp_path):
    results = trains_and_resumes_exactly(task, lra_files[task], tmp_path)
    assert results["mixer"] == "ponet"
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    published = run_lra.lra_settings.settings_for(task)
    assert config["segment_size"] == published.segment_size == results["segment_size"]
    assert config["max_position_embeddings"] == published.padded_length
    assert config["pair"] is (task == "retrieval")
    assert (tmp_path / "full" / "provenance.json").is_file() and (tmp_path / "full" / "train.log").is_file()


@pytest.mark.parametrize("mixer", ["softmax", "fnet"])
def test_every_mixer_trains_and_resumes_exactly(mixer, lra_files, tmp_path):
    results = trains_and_resumes_exactly("listops", lra_files["listops"], tmp_path, "--mixer", mixer)
    assert results["mixer"] == mixer and results["segment_size"] is None
    assert json.loads((tmp_path / "full" / "config.json").read_text())["mixer"] == mixer


def test_the_published_settings_are_the_defaults_and_a_short_run_keeps_the_warmup_share():
    args = run_lra.parse_args(["--task", "listops"])
    assert (args.per_device_train_batch_size, args.max_train_steps, args.num_warmup_steps, args.eval_steps) == \
        (32, 5000, 1000, 50)
    assert (args.learning_rate, args.adam_epsilon, args.weight_decay, args.mixer) == (1e-4, 1e-6, 0.0, "ponet")
    short = run_lra.parse_args(["--task", "pathfinder", "--max_train_steps", "6240"])
    assert (short.per_device_train_batch_size, short.num_warmup_steps) == (256, 31)  # 312 of 62,400 -> a tenth
    stand_in = run_lra.parse_args(["--task", "fashion_mnist_standin", "--num_warmup_steps", "7"])
    assert (stand_in.max_train_steps, stand_in.num_warmup_steps) == (35_000, 7)  # trained as Image; flags win


def test_records_name_the_data_the_baseline_and_the_speed(lra_files, tmp_path):
    results = run_lra.main(tiny_flags("listops", lra_files["listops"], tmp_path / "out"))
    saved = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert "generated by ponet_training" in saved["data"] and saved["data_source"] == "generated"
    labels = listops.read_split(lra_files["listops"] / "basic_test.tsv")[1][:6]
    majority = saved["majority_class"]
    assert saved["test_majority_class_accuracy"] == pytest.approx(labels.count(int(majority)) / 6)
    assert saved["train_steps_per_second"] > 0 and saved["evaluation_seconds_in_training"] > 0
    assert (saved["max_train_steps"], saved["published_max_train_steps"], saved["num_warmup_steps"]) == (4, 5000, 1)


def test_two_processes_train_in_bf16(lra_files, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
               str(ROOT / "finetune" / "run_lra.py"), *tiny_flags("listops", lra_files["listops"], out)]
    completed = subprocess.run(command, env=child_env(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1"),
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    saved = json.loads((out / "all_results.json").read_text())
    assert (saved["num_processes"], saved["mixed_precision"], saved["total_train_batch_size"]) == (2, "bf16", 4)
    assert saved["eval_samples"] == 6  # gathered from both processes without the padding duplicates
    # The record's command starts the same two processes: `python run_lra.py` alone would train on one.
    recorded = shlex.split(json.loads((out / "provenance.json").read_text())["command"])
    assert recorded[:8] == ["ACCELERATE_USE_CPU=1", "accelerate", "launch", "--multi_gpu", "--num_processes", "2",
                            "--mixed_precision", "bf16"]
    assert recorded[8].endswith("run_lra.py")


def test_bad_flags_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(SystemExit):
        run_lra.parse_args(["--task", "nystrom"])
    with pytest.raises(ValueError, match="--generated_size"):
        run_lra.parse_args(["--task", "listops", "--generated_size", "0"])
    with pytest.raises(ValueError, match="--attention_probs_dropout_prob"):
        run_lra.parse_args(["--task", "listops", "--attention_probs_dropout_prob", "1.0"])


def test_the_softmax_attention_dropout_can_be_set_and_is_recorded(lra_files, tmp_path):
    """On CPU, dropout inside attention sends sdpa to its unfused kernel (about 8x slower at 2K): runs there set it
    to 0, and the record and the saved config must say so."""
    results = run_lra.main(tiny_flags("listops", lra_files["listops"], tmp_path / "out", "--mixer", "softmax",
                                      "--attention_probs_dropout_prob", "0"))
    assert results["attention_probs_dropout_prob"] == 0.0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["attention_probs_dropout_prob"] == 0.0
    published = run_lra.main(tiny_flags("listops", lra_files["listops"], tmp_path / "default", "--mixer", "softmax"))
    assert published["attention_probs_dropout_prob"] == 0.1


def test_the_report_puts_each_run_beside_the_papers_number_and_no_stand_in_beside_cifar(lra_files, tmp_path):
    from ponet_training.tasks.lra import report

    run_lra.main(tiny_flags("listops", lra_files["listops"], tmp_path / "runs" / "listops-fnet", "--mixer", "fnet"))
    run_lra.main(tiny_flags("fashion_mnist_standin", None, tmp_path / "runs" / "fmnist-ponet"))
    # A run stopped after step 2 and resumed: its clock ran for steps 3-4 only.
    resumed = tmp_path / "runs" / "resumed-listops-fnet"
    shutil.copytree(tmp_path / "runs" / "listops-fnet" / "step_2", resumed / "step_2")
    run_lra.main(tiny_flags("listops", lra_files["listops"], resumed, "--mixer", "fnet",
                            "--resume_from_checkpoint", "latest"))
    report.main([str(tmp_path / "runs")])
    rows = (tmp_path / "runs" / report.RESULTS_FILE).read_text().splitlines()[-3:]
    fmnist, listops_row, resumed_row = (row.split(" | ") for row in rows)
    assert resumed_row[8].endswith("(steps 2-4)") and not listops_row[8].endswith(")")
    assert "lra.report" in json.loads((tmp_path / "runs" / "provenance.json").read_text())["command"]
    assert fmnist[1:3] == ["fashion_mnist_standin", "ponet"] and fmnist[-1] == "— (a stand-in for image) |"
    assert listops_row[1:4] == ["listops", "fnet", "4 of 5,000 x 2"] and listops_row[-1] == "37.40 |"
    saved = json.loads((tmp_path / "runs" / "listops-fnet" / "all_results.json").read_text())
    assert listops_row[5] == f"{100 * saved['test_accuracy']:.2f}"
