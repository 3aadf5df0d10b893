"""No data loss, no silently wrong run: overwriting, owning and resuming an output folder, label names,
precision on CPU, atomic final saves and the errors of bad inputs. The rules are docs/output_folders.md."""

import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import PRETRAIN_SCRIPT, child_env, common, finetune_script, run_pretraining
from ponet_training.engine import run_folder
from ponet_training.data import toy_pairs

run_glue = finetune_script("run_glue")


ROOT = Path(__file__).resolve().parents[1]
ENV = child_env()


@pytest.fixture
def toy_glue(tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=32, n_dev=16, n_test=4)
    return ["--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"), "--per_device_train_batch_size", "8",
            "--no_predict", "--max_train_steps", "2"]


def write_sentiment_csv(path: Path, labels=("positive", "negative")) -> Path:
    rows = ["sentence,label"] + [f"{'good fine' if i % 2 else 'bad poor'} {i},{labels[i % len(labels)]}"
                                 for i in range(16)]
    path.write_text("\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# 1. --overwrite_output_dir deletes only what an earlier run wrote, never an input
# ---------------------------------------------------------------------------------------------------------------


def test_overwrite_keeps_the_inputs_of_a_run_into_the_folder_that_holds_them(checkpoint, tmp_path,
                                                                            monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    write_sentiment_csv(folder / "train.csv")
    write_sentiment_csv(folder / "dev.csv")
    monkeypatch.chdir(folder)
    args = ["--model_name_or_path", str(checkpoint), "--train_file", "train.csv", "--validation_file", "dev.csv",
            "--max_length", "32", "--max_train_steps", "2", "--per_device_train_batch_size", "8", "--output_dir", "."]
    run_glue.main(args + ["--overwrite_output_dir"])
    assert (folder / "train.csv").is_file() and (folder / "dev.csv").is_file()
    assert (folder / "model.safetensors").is_file()
    # Overwriting again deletes the first run's outputs and still keeps the inputs.
    (folder / "all_results.json").write_text("{}")
    run_glue.main(args + ["--overwrite_output_dir", "--seed", "3"])
    assert json.loads((folder / "all_results.json").read_text())["max_train_steps"] == 2
    assert (folder / "train.csv").is_file() and (folder / "dev.csv").is_file()
    assert not (folder / run_folder.LOCK_FILE).exists()


def test_overwrite_refuses_to_delete_the_model_the_run_reads(checkpoint, toy_glue, tmp_path):
    g3 = tmp_path / "g3"
    run_glue.main(common(checkpoint, g3, *toy_glue))
    weights = (g3 / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"`--model_name_or_path` .*g3 is read by this run, but "
                                         r"--overwrite_output_dir would delete .*g3/"):
        run_glue.main(common(g3, g3, *toy_glue, "--overwrite_output_dir"))
    assert (g3 / "model.safetensors").read_bytes() == weights


def test_overwrite_never_deletes_files_no_run_of_ours_wrote(checkpoint, toy_glue, tmp_path):
    out = tmp_path / "out"
    run_glue.main(common(checkpoint, out, *toy_glue))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds notes.txt, which no run of these scripts wrote"):
        run_glue.main(common(checkpoint, out, *toy_glue, "--overwrite_output_dir"))
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.safetensors").is_file()


def test_every_writer_of_a_folder_goes_through_the_one_rule(tmp_path):
    """The pooling study and the GLUE sweep write folders too: a folder holding a file none of ours wrote is refused,
    with or without --overwrite_output_dir, and the file stays (run_glue: above; the export: its own tests)."""
    study, sweep = finetune_script("run_pooling_study"), finetune_script("sweep_glue")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    write_sentiment_csv(tmp_path / "train.csv")
    with pytest.raises(ValueError, match=r"out is not empty \(notes.txt\)"):
        study.main(["--train_file", str(tmp_path / "train.csv"), "--output_dir", str(out)])
    with pytest.raises(ValueError, match=r"holds notes.txt, which no run of these scripts wrote"):
        study.main(["--train_file", str(tmp_path / "train.csv"), "--output_dir", str(out), "--overwrite_output_dir"])
    with pytest.raises(ValueError, match=r"out is not empty \(notes.txt\)"):
        sweep.main(["--tasks", "mrpc", "--output_dir", str(out), "--report_only"])
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    # A sweep's own folder is its to add to: run again, it reports on what is there.
    sweep.main(["--tasks", "mrpc", "--output_dir", str(tmp_path / "sweep"), "--report_only"])
    sweep.main(["--tasks", "mrpc", "--output_dir", str(tmp_path / "sweep"), "--report_only"])
    assert run_folder.written_entries(tmp_path / "sweep") == {"sweep_results.json", "sweep_results.md",
                                                                "sweep_settings.json"}


# ---------------------------------------------------------------------------------------------------------------
# 2. A run owns its folder while it runs; the lock of a killed run is recovered
# ---------------------------------------------------------------------------------------------------------------


def wait_for(path: Path, process, timeout=180):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the first run ended early:\n{process.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_a_second_run_into_a_busy_output_dir_refuses_and_a_killed_runs_lock_is_recovered(pretraining_args,
                                                                                        tmp_path):
    out = tmp_path / "out"
    args = [*pretraining_args, "--output_dir", out]
    first = subprocess.Popen([sys.executable, str(PRETRAIN_SCRIPT), *map(str, args), "--max_train_steps", "100000",
                              "--checkpointing_steps", "2"], env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(out / "step_2", first)
        second = run_pretraining([*args, "--seed", "7", "--resume_from_checkpoint", "latest"])
        assert second.returncode != 0
        assert f"{out} is in use by another run (pid {first.pid} on " in second.stderr, second.stderr[-3000:]
        assert not (out / "all_results.json").exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert (out / run_folder.LOCK_FILE).exists()  # the killed run could not clean up: its lock file stays, unlocked
    # The next run takes the folder over; what the killed run wrote counts as an earlier run's output.
    third = run_pretraining([*args, "--overwrite_output_dir"])
    assert third.returncode == 0, third.stderr[-3000:]
    assert "was left by a run that was killed" in third.stderr
    assert json.loads((out / "all_results.json").read_text())["train_steps"] == 6
    assert not (out / run_folder.LOCK_FILE).exists()


# ---------------------------------------------------------------------------------------------------------------
# 3. A resume continues the same run: changed settings are refused by name, a resume that trains nothing is an error
# ---------------------------------------------------------------------------------------------------------------


def test_resuming_an_explicit_checkpoint_with_changed_settings_is_refused_with_every_difference(checkpoint, toy_glue,
                                                                                               tmp_path):
    out = tmp_path / "out"
    base = common(checkpoint, out, *toy_glue[:-2], "--checkpointing_steps", "2")
    run_glue.main(base + ["--max_train_steps", "4"])
    with pytest.raises(ValueError, match=r"step_2 was made with other settings: --learning_rate 5e-05 \(now 0.01\), "
                                         r"--per_device_train_batch_size 8 \(now 4\)\. A resume continues the same run"):
        run_glue.main(base + ["--max_train_steps", "4", "--resume_from_checkpoint", str(out / "step_2"),
                              "--learning_rate", "1e-2", "--per_device_train_batch_size", "4"])
    # Past the end of the run: nothing to train is an error, not a success.
    with pytest.raises(ValueError, match=r"step_4 is at step 4, past --max_train_steps 2"):
        run_glue.main(base + ["--max_train_steps", "2", "--resume_from_checkpoint", str(out / "step_4")])
    # The length of the run may change: applied, and recorded with where the run resumed.
    results = run_glue.main(base + ["--max_train_steps", "6", "--resume_from_checkpoint", str(out / "step_4")])
    assert results["max_train_steps"] == 6 and results["resumed_at_step"] == 4
    assert results["resumed_from"] == str(out / "step_4")
    assert (out / "step_6").is_dir()



def test_the_checkpoint_to_resume_is_looked_up_once_per_run(corpus, tmp_path):
    """The run folder resolves `latest` once: the tokenizer loader, the checkpoint loader and the evaluation history
    all take its answer (each used to rescan the folder and log its warnings again, three times per run)."""
    from conftest import PRETRAIN, TINY

    train, valid = corpus
    out = tmp_path / "out"
    args = ["--train_file", train, "--validation_file", valid, *TINY, *PRETRAIN, "--output_dir", out]
    assert run_pretraining(args).returncode == 0
    (out / "step_8.tmp").mkdir()  # an interrupted save: `latest` passes over it, with a warning
    resumed = run_pretraining([*args, "--resume_from_checkpoint", "latest"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("Skipping ") == 1 and "step_8.tmp" in resumed.stderr, resumed.stderr[-3000:]
    assert "Using the tokenizer trained by the interrupted run, saved in " + str(out / "step_6") in resumed.stderr
    assert json.loads((out / "all_results.json").read_text())["resumed_from"] == str(out / "step_6")


def test_pretraining_resumed_with_another_batch_size_is_refused_and_trains_nothing(pretraining_args, tmp_path):
    """The issue's case, end to end in run_pretraining: a resume with half the batch size used to exit 0 having
    trained 0 steps (the epoch count recomputed past the resume point) and wrote a final model."""
    out = tmp_path / "out"
    args = [*pretraining_args, "--output_dir", out]
    assert run_pretraining(args).returncode == 0
    (out / "all_results.json").unlink()
    size = pretraining_args[pretraining_args.index("--per_device_train_batch_size") + 1]
    changed = [*args, "--resume_from_checkpoint", str(out / "step_4"), "--per_device_train_batch_size", "4"]
    result = run_pretraining(changed)
    assert result.returncode != 0
    assert f"--per_device_train_batch_size {size} (now 4)" in result.stderr, result.stderr[-3000:]
    assert not (out / "all_results.json").exists()
    # Past the end: nothing to train is an error too.
    past = run_pretraining([*args, "--resume_from_checkpoint", str(out / "step_6"), "--max_train_steps", "4"])
    assert past.returncode != 0 and "past --max_train_steps 4" in past.stderr, past.stderr[-3000:]

# ---------------------------------------------------------------------------------------------------------------
# 4. Label names that differ in case or spacing are one class, in every script
# ---------------------------------------------------------------------------------------------------------------

SPELLINGS = ("Positive", "positive ", "NEGATIVE", "negative", "positive", " negative")


def test_labels_differing_in_case_or_spacing_are_one_class_in_run_glue(checkpoint, tmp_path, caplog):
    train = write_sentiment_csv(tmp_path / "train.csv", SPELLINGS)
    dev = write_sentiment_csv(tmp_path / "dev.csv", SPELLINGS)
    results = run_glue.main(["--model_name_or_path", str(checkpoint), "--train_file", str(train),
                             "--validation_file", str(dev), "--max_length", "32", "--max_train_steps", "2",
                             "--per_device_train_batch_size", "8", "--output_dir", str(tmp_path / "out")])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["negative", "positive"]
    assert "eval_f1" in results  # two classes: binary F1, not the macro-F1 of six
    assert "'NEGATIVE', 'negative' differ only in case or spacing: one class 'negative'" in caplog.text


def test_long_documents_and_the_pooling_study_use_the_same_label_rule(tmp_path):
    from ponet_training.tasks.long_documents import load_local_long_docs
    from ponet_training.data.labels import infer_label_names, label_id

    rows = [{"text": f"word {i}", "label": SPELLINGS[i % len(SPELLINGS)]} for i in range(12)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    splits, names = load_local_long_docs({"train": tmp_path / "train.jsonl"})
    assert names == ["negative", "positive"]
    assert set(splits["train"]["label"]) == {0, 1}
    # The pooling study infers its names with the same function; every spelling maps to its class.
    names = infer_label_names(SPELLINGS)
    assert [label_id(spelling, names) for spelling in SPELLINGS] == [1, 1, 0, 0, 1, 0]


# ---------------------------------------------------------------------------------------------------------------
# 5. fp16 on CPU is refused (it would run in float32 and be recorded as fp16)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs for real on a GPU")
def test_fp16_on_cpu_is_refused_with_a_pointer_to_bf16(checkpoint, toy_glue, tmp_path):
    out = tmp_path / "out"  # a process of its own: the accelerator state of one process takes one precision
    result = subprocess.run([sys.executable, str(ROOT / "finetune" / "run_glue.py"),
                             *common(checkpoint, out, *toy_glue, "--mixed_precision", "fp16")],
                            capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    assert "ValueError: Mixed precision fp16 (from --mixed_precision or the accelerate config) does not run on CPU" \
           in result.stderr and "Use --mixed_precision bf16" in result.stderr, result.stderr[-2000:]
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# 6. A full disk during a final save leaves no half-written file, and the error names the file
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("selection", ["f1", "none"])  # best_model/ during training; the final model
def test_a_full_disk_during_the_model_save_leaves_no_half_written_file(checkpoint, toy_glue, tmp_path,
                                                                       monkeypatch, selection):
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    def full_disk(self, save_directory, *args, **kwargs):
        Path(save_directory, "tokenizer_config.json").write_text("")  # what a write cut short leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", full_disk)
    out = tmp_path / "out"
    with pytest.raises(OSError, match=r"Saving the model to .*out(/best_model)? failed while writing "
                                      r".*tokenizer_config.json: No space left on device"):
        run_glue.main(common(checkpoint, out, *toy_glue, "--metric_for_best_model", selection))
    assert not [f for f in out.rglob("*") if f.is_file() and f.stat().st_size == 0]


# ---------------------------------------------------------------------------------------------------------------
# 7. Errors that name the input and the problem
# ---------------------------------------------------------------------------------------------------------------


def test_no_sso_example_says_the_sentences_are_too_long_and_what_to_change(corpus, tmp_path):
    from conftest import TINY

    train, valid = corpus
    args = [a if a != "48" else "8" for a in TINY]  # --max_seq_length 8
    result = run_pretraining(["--train_file", train, "--validation_file", valid, *args, "--max_train_steps", "2",
                              "--output_dir", tmp_path / "out"])
    assert result.returncode != 0
    assert ("every sentence is longer than --max_seq_length - 3 = 5 tokens" in result.stderr
            and "Pass a larger --max_seq_length" in result.stderr), result.stderr[-2000:]


def test_token_ids_outside_the_models_vocabulary_are_one_error_naming_the_id_and_the_limit(checkpoint, toy_glue,
                                                                                          tmp_path):
    from modeling_ponet import PoNetConfig, PoNetForPreTraining
    from transformers import AutoTokenizer

    config = PoNetConfig.from_pretrained(checkpoint)
    config.vocab_size = 120  # the tokenizer has 300 ids
    small = tmp_path / "small_vocab"
    PoNetForPreTraining(config).save_pretrained(small)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(small)
    with pytest.raises(ValueError, match=r"train: input_ids holds the id \d+, outside the model's vocab_size 120 "
                                         r"\(ids 0..119\)"):
        run_glue.main(common(small, tmp_path / "out", *toy_glue))


def test_a_truncated_weights_file_is_an_error_naming_the_file(checkpoint, toy_glue, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"Cannot read the weights in {weights}: .*truncated or corrupt"):
        run_glue.main(common(broken, tmp_path / "out", *toy_glue))


# ---------------------------------------------------------------------------------------------------------------
# 8. Help that says what a flag does
# ---------------------------------------------------------------------------------------------------------------


def test_run_long_doc_help_does_not_claim_no_gradient_checkpointing_is_on(capsys):
    with pytest.raises(SystemExit):
        finetune_script("run_long_doc").parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    flag = help_text[help_text.index("--no_gradient_checkpointing Disable"):]
    assert flag.startswith("--no_gradient_checkpointing Disable gradient checkpointing (on by default for long inputs).")
    assert "(default: True)" not in flag[:120]
