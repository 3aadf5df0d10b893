#!/usr/bin/env python
"""PoNet vs BERT at an equal budget: the same size, the same real bert-base-uncased tokenizer, the same real
English corpus, the same batches, steps and schedule; then both fine-tuned on the human-rated movie sentences.

1. The corpus: the Python 3.11 documentation (`ponet_training.data.python_docs`, from Debian's python3.11-doc), prepared
   once into `<output_dir>/corpus` unless `--corpus_dir` is given.
2. Pretraining with `pretrain/run_pretraining.py`, identical flags except `--model_type`: PoNet (MLM + SSO) and
   BERT (MLM only, on the same batches, which still carry PoNet's SSO pairs). The tokenizer is the real MiniLM's
   (`ponet_training.data.minilm`: the bert-base-uncased vocabulary). Both log MLM (and PoNet's SSO) accuracy against
   steps and training wall-clock seconds (`eval_history.jsonl`) and checkpoint every `--checkpointing_steps`.
3. Fine-tuning each with `finetune/run_glue.py` on vader_movies (`ponet_training.data.vader`), as an SST-2-style task.
(`--model_types` runs some of the models only, e.g. PoNet and BERT on one core each at the same time; `gpt2`
adds a causal LM of the same size trained on the same text: the pooling study's decoder backbone, its own row.)
4. `equal_budget.md` (table, with PoNet/BERT ratios beside the paper's 95.7% of BERT's GLUE average),
   `equal_budget.png` (curves against steps and against wall time) and `all_results.json`.

The defaults (about 5M parameters each, 3000 steps of 32 x 128 tokens) are sized for a few hours on 2 CPU cores
(about 2-3 s per step each, measured on a shared machine). Run the same command again to resume: finished stages are skipped and an interrupted pretraining continues from
its latest checkpoint (`--resume_from_checkpoint latest`). A tiny smoke run (CI):

    python experiments/equal_budget.py --output_dir outputs/equal_budget_tiny --hidden_size 32 \
        --num_hidden_layers 1 --num_attention_heads 2 --intermediate_size 64 --max_seq_length 32 \
        --max_train_steps 4 --eval_steps 2 --checkpointing_steps 2 --per_device_train_batch_size 4 \
        --max_corpus_documents 20 --finetune_max_train_samples 32 --finetune_max_eval_samples 32
"""

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path


from ponet_training.data import python_docs, minilm, vader
from ponet_training.provenance import write_provenance
from ponet_training.tasks.pretraining.evaluation import EVAL_HISTORY_JSONL


REPO = Path(__file__).resolve().parents[1]

logger = logging.getLogger("equal_budget")

MODEL_TYPES = ("ponet", "bert")
# A causal LM of the same size on the same text and batches (`--model_types gpt2`): the decoder backbone of the
# pooling study; it gets a row of its own, not a part of the PoNet/BERT ratio.
OPTIONAL_MODEL_TYPES = ("gpt2",)
# The PoNet paper (arXiv:2110.02442, Table 3): PoNet's GLUE average is 95.7% of BERT's at the same size and budget.
PAPER_GLUE_RATIO = 0.957


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--corpus_dir", default=None,
                        help="A prepared corpus (train.jsonl, validation.jsonl); default: <output_dir>/corpus.")
    parser.add_argument("--model_types", nargs="+", choices=MODEL_TYPES + OPTIONAL_MODEL_TYPES,
                        default=list(MODEL_TYPES),
                        help="Run only these models' stages (e.g. one per core at the same time; gpt2: a causal LM "
                             "on the same text). The table and curves are written once PoNet and BERT have "
                             "finished, with every finished model in them.")
    parser.add_argument("--max_corpus_documents", type=int, default=None,
                        help="Pretrain on the first N training documents only (smoke tests).")
    size = parser.add_argument_group("model size (both models)")
    size.add_argument("--hidden_size", type=int, default=128)
    size.add_argument("--num_hidden_layers", type=int, default=4)
    size.add_argument("--num_attention_heads", type=int, default=4)
    size.add_argument("--intermediate_size", type=int, default=512)
    pre = parser.add_argument_group("pretraining (both models)")
    pre.add_argument("--max_seq_length", type=int, default=128)
    pre.add_argument("--per_device_train_batch_size", type=int, default=32)
    pre.add_argument("--learning_rate", type=float, default=5e-4)
    pre.add_argument("--num_warmup_steps", type=int, default=300)
    pre.add_argument("--max_train_steps", type=int, default=3000)
    pre.add_argument("--eval_steps", type=int, default=250)
    pre.add_argument("--checkpointing_steps", type=int, default=250)
    pre.add_argument("--max_eval_samples", type=int, default=1000, help="SSO examples of the validation split.")
    pre.add_argument("--mixed_precision", default=None, help="Passed to `accelerate launch` (e.g. bf16 on a GPU).")
    pre.add_argument("--seed", type=int, default=42)
    ft = parser.add_argument_group("fine-tuning on vader_movies (both models)")
    ft.add_argument("--finetune_learning_rate", type=float, default=1e-4)
    ft.add_argument("--finetune_epochs", type=int, default=3)
    ft.add_argument("--finetune_batch_size", type=int, default=32)
    ft.add_argument("--finetune_max_length", type=int, default=64)
    ft.add_argument("--finetune_max_train_samples", type=int, default=None)
    ft.add_argument("--finetune_max_eval_samples", type=int, default=None)
    return parser.parse_args(argv)


def run(command: list[str]) -> None:
    logger.info("$ %s", " ".join(command))
    subprocess.run(command, check=True, cwd=REPO)


def launcher(args) -> list[str]:
    if args.mixed_precision:
        return [sys.executable, "-m", "accelerate.commands.launch", "--mixed_precision", args.mixed_precision]
    return [sys.executable]


def prepare_corpus(args, output_dir: Path) -> tuple[Path, Path]:
    folder = Path(args.corpus_dir) if args.corpus_dir else output_dir / "corpus"
    if not (folder / "train.jsonl").is_file():
        python_docs.write_corpus(folder)
    train, validation = folder / "train.jsonl", folder / "validation.jsonl"
    if args.max_corpus_documents:
        subset = output_dir / f"corpus_first{args.max_corpus_documents}"
        subset.mkdir(parents=True, exist_ok=True)
        for source in (train, validation):
            lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:args.max_corpus_documents]
            (subset / source.name).write_text("".join(lines), encoding="utf-8")
        train, validation = subset / train.name, subset / validation.name
        logger.info("Pretraining on the first %d documents of %s (--max_corpus_documents)", args.max_corpus_documents,
                    folder)
    return train, validation


def pretrain(args, model_type: str, train: Path, validation: Path, tokenizer: Path, folder: Path) -> None:
    """Pretrain one model into `folder` (resuming from its latest checkpoint), unless it has finished."""
    results = folder / "all_results.json"
    if results.is_file():
        logger.info("%s: pretraining already finished (%s)", model_type, results)
        return
    checkpoints = sorted(folder.glob("step_*")) + sorted(folder.glob("epoch_*"))
    if folder.exists() and not checkpoints:
        shutil.rmtree(folder)  # an attempt that stopped before its first checkpoint: nothing to resume
    command = [*launcher(args), "pretrain/run_pretraining.py", "--model_type", model_type,
               "--train_file", str(train), "--validation_file", str(validation), "--tokenizer_name", str(tokenizer),
               "--output_dir", str(folder), "--seed", str(args.seed)]
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_seq_length",
                 "per_device_train_batch_size", "learning_rate", "num_warmup_steps", "max_train_steps", "eval_steps",
                 "checkpointing_steps", "max_eval_samples"):
        command += [f"--{name}", str(getattr(args, name))]
    if checkpoints:
        command += ["--resume_from_checkpoint", "latest"]
    run(command)


def finetune(args, pretrained: Path, data: Path, folder: Path) -> None:
    """Fine-tune `pretrained` on vader_movies into `folder`, unless it has finished."""
    results = folder / "all_results.json"
    if not results.is_file():
        if folder.exists():
            shutil.rmtree(folder)  # fine-tuning is short: an interrupted one starts over
        command = [*launcher(args), "finetune/run_glue.py", "--model_name_or_path", str(pretrained),
                   "--task_name", "sst2", "--train_file", str(data / "train.csv"),
                   "--validation_file", str(data / "dev.csv"), "--max_length", str(args.finetune_max_length),
                   "--per_device_train_batch_size", str(args.finetune_batch_size),
                   "--learning_rate", str(args.finetune_learning_rate),
                   "--num_train_epochs", str(args.finetune_epochs), "--seed", str(args.seed),
                   "--no_predict", "--output_dir", str(folder)]
        for flag, value in (("--max_train_samples", args.finetune_max_train_samples),
                            ("--max_eval_samples", args.finetune_max_eval_samples)):
            if value is not None:
                command += [flag, str(value)]
        run(command)


def read_history(folder: Path) -> list[dict]:
    path = folder / EVAL_HISTORY_JSONL
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ratio(ponet, bert):
    return ponet / bert if bert else float("nan")


def _cell(value, fmt=".3f"):
    return "–" if value is None else format(value, fmt)


def write_table(path: Path, pre: dict, fin: dict, baselines: dict, args) -> dict:
    """The comparison table (markdown) and what goes into all_results.json."""
    rows = {m: {"mlm_accuracy": pre[m].get("eval_mlm_accuracy"), "sso_accuracy": pre[m].get("eval_sso_accuracy"),
                "next_token_accuracy": pre[m].get("eval_clm_accuracy"), "train_seconds": pre[m]["train_seconds"],
                "parameters": pre[m]["num_parameters"], "steps": pre[m]["train_steps"],
                "dev_accuracy": fin[m]["eval_accuracy"]} for m in pre}
    ratios = {k: _ratio(rows["ponet"][k], rows["bert"][k]) for k in ("mlm_accuracy", "dev_accuracy")}
    lines = ["| model | parameters | steps | train time (s) | MLM acc | SSO acc | next-token acc | vader_movies dev acc |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m, r in rows.items():
        lines.append(f"| {m} | {r['parameters']:,} | {r['steps']} | {r['train_seconds']:.0f} | "
                     f"{_cell(r['mlm_accuracy'])} | {_cell(r['sso_accuracy'])} | {_cell(r['next_token_accuracy'])} | "
                     f"{r['dev_accuracy']:.3f} |")
    lines.append(f"| PoNet / BERT | | | {_ratio(rows['ponet']['train_seconds'], rows['bert']['train_seconds']):.1%} | "
                 f"{ratios['mlm_accuracy']:.1%} | | | {ratios['dev_accuracy']:.1%} |")
    note = (f"\nSame tokenizer (bert-base-uncased vocabulary), corpus (Python 3.11 docs), batches and schedule: "
            f"{args.max_train_steps} steps of {args.per_device_train_batch_size} x {args.max_seq_length} tokens, "
            f"size {args.num_hidden_layers} x {args.hidden_size}. The paper's ratio: PoNet's GLUE average is "
            f"{PAPER_GLUE_RATIO:.1%} of BERT's. Dev baselines on vader_movies: majority class "
            f"{baselines['majority_accuracy']:.3f}, VADER {baselines['vader_accuracy']:.3f}.\n")
    path.write_text("\n".join(lines) + "\n" + note)
    return {"models": rows, "ponet_over_bert": ratios, "paper_glue_ratio": PAPER_GLUE_RATIO,
            "baselines": {"majority_accuracy": baselines["majority_accuracy"],
                          "vader_accuracy": baselines["vader_accuracy"]}}


def plot_curves(path: Path, histories: dict[str, list[dict]]) -> None:
    """MLM accuracy (and PoNet's SSO accuracy) against steps and against training wall-clock seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for model_type, history in histories.items():
        for ax, x in zip(axes, ("step", "train_seconds")):
            xs = [e[x] for e in history]
            lm, name = ("clm_accuracy", "next-token") if "clm_accuracy" in history[0] else ("mlm_accuracy", "MLM")
            ax.plot(xs, [e[lm] for e in history], marker="o", markersize=3, label=f"{model_type} {name}")
            if "sso_accuracy" in history[0]:
                ax.plot(xs, [e["sso_accuracy"] for e in history], linestyle="--", label=f"{model_type} SSO")
    for ax, label in zip(axes, ("optimizer steps", "training wall-clock seconds")):
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("PoNet vs BERT (and GPT-2) at an equal budget (Python docs corpus, bert-base-uncased vocabulary)", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    output_dir = Path(args.output_dir)
    write_provenance(output_dir, keep_earlier=True)  # one run per model type adds to the folder
    train, validation = prepare_corpus(args, output_dir)
    tokenizer = minilm.minilm_path()
    movies = vader.prepared_domain("movies")
    baselines = json.loads((movies.parent / "baselines.json").read_text())["domains"]["movies"]["dev"]
    for model_type in args.model_types:
        folder = output_dir / f"{model_type}-pretrain"
        pretrain(args, model_type, train, validation, tokenizer, folder)
        finetune(args, folder, movies, output_dir / f"{model_type}-finetune-vader_movies")
    # The table holds every model whose stages have finished (also in earlier runs of this command).
    pre, fin, histories = {}, {}, {}
    for model_type in MODEL_TYPES + OPTIONAL_MODEL_TYPES:
        done = [output_dir / f"{model_type}-{stage}" / "all_results.json"
                for stage in ("pretrain", "finetune-vader_movies")]
        if all(path.is_file() for path in done):
            pre[model_type], fin[model_type] = (json.loads(path.read_text()) for path in done)
            histories[model_type] = read_history(done[0].parent)
    if any(m not in pre for m in MODEL_TYPES):
        logger.info("No table yet: PoNet and BERT have not both finished (run again with --model_types ponet bert)")
        return None
    results = write_table(output_dir / "equal_budget.md", pre, fin, baselines, args)
    plot_curves(output_dir / "equal_budget.png", histories)
    (output_dir / "all_results.json").write_text(json.dumps({**results, "histories": histories}, indent=2))
    print((output_dir / "equal_budget.md").read_text())
    return results


if __name__ == "__main__":
    main()
