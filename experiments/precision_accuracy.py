#!/usr/bin/env python
"""Accuracy cost of bf16 and int8 on a real task: dev accuracy of fine-tuned models in fp32, bf16 autocast, bf16
weights and dynamic int8, and of a bf16-autocast fine-tuning run against an fp32 one from the same start.

The task is the human-rated movie sentences (`python -m ponet_training.data.vader`: binary polarity, 1008 dev
sentences). Two encoders, each fine-tuned twice by `finetune/run_glue.py` from the same weights with the same seed,
data order and steps, once in fp32 and once with `--mixed_precision bf16` (CPU autocast):
  minilm  the real pretrained all-MiniLM-L6-v2 (`ponet_training.data.minilm`) with a new classification head;
  ponet   a tiny PoNet (hidden 64, 2 layers) pretrained here by `pretrain/run_pretraining.py` on the standard
          library's docstrings with MiniLM's vocabulary (or `--ponet_model`, an existing PoNet folder).
Each fine-tuned model is then evaluated on the whole dev set in the four precisions (the same ids, batches and
padding); `changed` counts the dev sentences whose predicted class differs from that model's fp32 prediction.

Writes `<output_dir>/precision_accuracy.json` and `precision_accuracy.md`; the runs stay in `<output_dir>/runs`
(a run whose output is there is reused, so an interrupted benchmark continues). The default setting (2000 training
sentences drawn at random, batch 32, max length 64; MiniLM 1 epoch, PoNet pretrained for 300 steps and fine-tuned
for 3 epochs) takes about 10 minutes on 2 idle CPU cores:

    python experiments/precision_accuracy.py --output_dir results/precision_accuracy
"""

import argparse
import csv
import json
import random
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

import modeling_ponet  # noqa: F401 - registers PoNet with the Auto classes
from ponet_training.tasks import finetuning
from ponet_training.tasks.glue import data as glue_data
from ponet_training.data import tables
from ponet_training.data.minilm import minilm_path
from ponet_training.inference.precision import INFERENCE_PRECISIONS, in_precision
from ponet_training.provenance import write_provenance
from ponet_training.tasks.glue.registry import get_task
from ponet_training.data.truncation import tokenize_truncated


logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
PRECISION_LABELS = {"fp32": "fp32", "bf16_autocast": "bf16 autocast", "bf16_weights": "bf16 weights",
                     "int8": "int8 dynamic"}
TRAININGS = {"fp32": "no", "bf16_autocast": "bf16"}  # how the model was fine-tuned -> --mixed_precision
ENCODERS = {"minilm": "all-MiniLM-L6-v2 (real, pretrained)", "ponet": "PoNet tiny (pretrained here)"}


def run_script(args, script: str, *flags: str, done: Path) -> None:
    """Run one of the project's scripts as its own process (each run gets a fresh Accelerate state), unless `done`
    exists from an earlier run."""
    if done.exists():
        logger.info("Reusing %s", done.parent)
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    command = [sys.executable, *(["-m", script] if "/" not in script else [str(REPO / script)]), *flags]
    logger.info("Running %s", " ".join(command))
    subprocess.run(command, check=True, env=env, cwd=REPO)


def pretrain_ponet(args, runs: Path) -> Path:
    out = runs / "ponet_pretrained"
    run_script(args, "pretrain/run_pretraining.py", "--preset", "demo", "--tokenizer_name", str(minilm_path()),
               "--max_train_steps", str(args.ponet_pretrain_steps), "--eval_steps", str(args.ponet_pretrain_steps),
               "--seed", str(args.seed), "--output_dir", str(out), done=out / "all_results.json")
    return out


def sample_rows(source: Path, target: Path, limit: int | None, seed: int) -> Path:
    """`limit` rows of `source` drawn at random (seeded), in file order, written to `target` (all rows: `source`
    itself). The vader files are ordered by class, so their first rows (--max_train_samples) are one class."""
    columns, rows = tables.read_table(source)
    if limit is None or limit >= len(rows):
        return source
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows[i] for i in keep)
    logger.info("Sampled %d of the %d rows of %s into %s", limit, len(rows), source, target)
    return target


def fine_tune(args, encoder: str, start: str, training: str, data: dict[str, Path], runs: Path) -> Path:
    out = runs / f"{encoder}_{training}"
    run_script(
        args, "finetune/run_glue.py", "--model_name_or_path", start, "--task_name", "sst2",
        "--train_file", str(data["train"]), "--validation_file", str(data["dev"]), "--max_length", str(args.max_length),
        "--num_train_epochs", str(args.num_train_epochs if encoder == "minilm" else args.ponet_num_train_epochs),
        "--per_device_train_batch_size", str(args.batch_size),
        "--learning_rate", str(args.minilm_learning_rate if encoder == "minilm" else args.ponet_learning_rate),
        "--seed", str(args.seed), "--mixed_precision", TRAININGS[training], "--no_predict",
        "--output_dir", str(out), done=out / "all_results.json",
    )
    return out


def dev_batches(tokenizer, dev_file: Path, max_length: int, batch_size: int):
    """The dev set as padded batches (with `labels` as task ids), as run_glue.py tokenizes it."""
    dev = glue_data.load_local_split(get_task("sst2"), dev_file, labelled=True)
    encoded, _ = tokenize_truncated(tokenizer, list(dev["sentence"]), None, max_length, padding=False)
    rows = [{key: encoded[key][i] for key in encoded} for i in range(len(dev))]
    collator = DataCollatorWithPadding(tokenizer)
    labels = torch.tensor(dev["label"])
    return [(collator(rows[i : i + batch_size]), labels[i : i + batch_size]) for i in range(0, len(rows), batch_size)]


def evaluate(model_dir: Path, args, dev_file: Path) -> dict:
    """Dev accuracy and predictions of the fine-tuned model in `model_dir`, in every precision."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batches = dev_batches(tokenizer, dev_file, args.max_length, 64)
    # task label id -> the model's class id (identity unless the checkpoint orders its labels differently)
    to_model_ids = finetuning.label_permutation(model.config, list(get_task("sst2").label_names)) or {}
    batches = [(batch, labels.apply_(lambda label: to_model_ids.get(label, label))) for batch, labels in batches]
    results, reference = {}, None
    for precision in INFERENCE_PRECISIONS:
        network, context = in_precision(model, precision)
        network.eval()
        predictions, correct, begin = [], 0, time.perf_counter()
        with torch.no_grad(), context:
            for batch, labels in batches:
                predicted = network(**batch).logits.float().argmax(-1)
                predictions.append(predicted)
                correct += int((predicted == labels).sum())
        predictions = torch.cat(predictions)
        reference = predictions if reference is None else reference
        results[precision] = {
            "accuracy": 100.0 * correct / len(predictions),
            "changed": int((predictions != reference).sum()),
            "seconds": round(time.perf_counter() - begin, 2),
        }
    return {"dev_rows": len(reference), "precisions": results}


def markdown(report: dict) -> str:
    setting = report["setting"]
    out = [
        "| encoder | fine-tuned in | " + " | ".join(PRECISION_LABELS[p] for p in INFERENCE_PRECISIONS) + " |",
        "|---|---|" + "---:|" * len(INFERENCE_PRECISIONS),
    ]
    for row in report["rows"]:
        cells = []
        for precision in INFERENCE_PRECISIONS:
            result = row["precisions"][precision]
            cell = f"{result['accuracy']:.1f}"
            if precision != "fp32":
                gap = result["accuracy"] - row["precisions"]["fp32"]["accuracy"]
                cell += f" ({gap:+.1f}, {result['changed']} changed)"
            cells.append(cell)
        out.append(f"| {ENCODERS[row['encoder']]} | {PRECISION_LABELS[row['training']]} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"Dev accuracy (%) on the {report['rows'][0]['dev_rows']} movie dev sentences; in brackets: points against the "
        "same model in fp32, and how many predictions differ from its fp32 predictions. Fine-tuning: "
        f"{setting['max_train_samples']} training sentences drawn at random, batch {setting['batch_size']}, max "
        f"length {setting['max_length']}, seed {setting['seed']}; MiniLM {setting['num_train_epochs']} epoch(s) at "
        f"learning rate {setting['minilm_learning_rate']}, PoNet {setting['ponet_num_train_epochs']} epoch(s) at "
        f"{setting['ponet_learning_rate']} (the checkpoint with the best dev accuracy is kept); PoNet pretrained for "
        f"{setting['ponet_pretrain_steps']} steps. torch {report['torch']}.",
        "",
    ]
    out += [f"- {line}" for line in report["gaps"]]
    return "\n".join(out) + "\n"


def gaps(rows: list[dict]) -> list[str]:
    """How far bf16 / int8 inference and bf16 training land from fp32, in points of dev accuracy, per encoder
    (measurements; the seed-to-seed spread of the table is what to hold them against)."""
    lines = []
    by_key = {(row["encoder"], row["training"]): row["precisions"] for row in rows}
    for encoder in ENCODERS:
        fp32 = by_key.get((encoder, "fp32"))
        if fp32 is None:
            continue
        for precision in INFERENCE_PRECISIONS[1:]:
            gap = fp32[precision]["accuracy"] - fp32["fp32"]["accuracy"]
            lines.append(f"{encoder}: {PRECISION_LABELS[precision]} inference {gap:+.1f} points vs fp32")
        bf16_trained = by_key.get((encoder, "bf16_autocast"))
        if bf16_trained is not None:
            gap = bf16_trained["fp32"]["accuracy"] - fp32["fp32"]["accuracy"]
            lines.append(f"{encoder}: bf16-autocast fine-tuning {gap:+.1f} points vs fp32 fine-tuning, both "
                         "evaluated in fp32")
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="results/precision_accuracy")
    parser.add_argument("--data_dir", default=None,
                        help="Output of `python -m ponet_training.data.vader` (default: prepared in <output_dir>/vader).")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--ponet_model", default=None, help="A pretrained PoNet folder (default: pretrain one here).")
    parser.add_argument("--ponet_pretrain_steps", type=int, default=300)
    parser.add_argument("--max_train_samples", type=int, default=2000,
                        help="Training sentences, drawn at random (seeded) from the 8056 of the train split.")
    parser.add_argument("--max_eval_samples", type=int, default=None,
                        help="Dev sentences, drawn at random (default: the whole dev set, 1008).")
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--num_train_epochs", type=int, default=1, help="MiniLM's fine-tuning epochs.")
    parser.add_argument("--ponet_num_train_epochs", type=int, default=3,
                        help="The tiny PoNet's (it stays at the majority class after one epoch).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--minilm_learning_rate", type=float, default=5e-5)
    parser.add_argument("--ponet_learning_rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    for name in ("ponet_pretrain_steps", "max_train_samples", "max_length", "num_train_epochs",
                 "ponet_num_train_epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.max_eval_samples is not None and args.max_eval_samples < 1:
        parser.error(f"--max_eval_samples must be at least 1, got {args.max_eval_samples}")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    begin = time.monotonic()
    output_dir = Path(args.output_dir)
    runs = output_dir / "runs"
    if args.data_dir is None:
        vader_dir = output_dir / "vader"
        run_script(args, "ponet_training.data.vader", "--output_dir", str(vader_dir), "--domains", "movies",
                   "--seed", str(args.seed), done=vader_dir / "baselines.json")
        args.data_dir = str(vader_dir)
    movies = Path(args.data_dir) / "movies"
    data = {"train": sample_rows(movies / "train.csv", runs / "train.csv", args.max_train_samples, args.seed),
            "dev": sample_rows(movies / "dev.csv", runs / "dev.csv", args.max_eval_samples, args.seed)}
    rows = []
    for encoder in args.encoders:
        if encoder == "minilm":
            start = str(minilm_path())
        else:
            start = args.ponet_model or str(pretrain_ponet(args, runs))
        for training in TRAININGS:
            model_dir = fine_tune(args, encoder, start, training, data, runs)
            rows.append({"encoder": encoder, "training": training, "start": start,
                         **evaluate(model_dir, args, data["dev"])})
            logger.info("%s fine-tuned in %s: %s", encoder, training, rows[-1]["precisions"])
    setting = {key: getattr(args, key) for key in (
        "max_train_samples", "max_eval_samples", "max_length", "num_train_epochs", "ponet_num_train_epochs",
        "batch_size", "seed",
        "minilm_learning_rate", "ponet_learning_rate", "ponet_pretrain_steps", "threads")}
    report = {"setting": setting, "torch": torch.__version__, "rows": rows, "gaps": gaps(rows),
              "minutes": round((time.monotonic() - begin) / 60, 1)}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "precision_accuracy.json").write_text(json.dumps(report, indent=1) + "\n")
    (output_dir / "precision_accuracy.md").write_text(markdown(report))
    write_provenance(output_dir)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
