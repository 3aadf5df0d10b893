"""The LRA results table: every run folder of `finetune/run_lra.py` under a folder, beside the paper's numbers.

    python -m ponet_training.tasks.lra.report results/lra   # writes results/lra/RESULTS_TABLE.md and provenance.json

Each row is one run (its `all_results.json` and `provenance.json`): the task, the mixer, the steps it trained
(of the published schedule), the dev and test accuracy, the majority-class baseline, the training speed and wall
time (of the steps this process ran, for a resumed run), the CPU, and the paper's accuracy of the same mixer on the same task (Table 1). A stand-in task has no paper
number: it is not the task the paper ran.
"""

import argparse
import json
import sys
from pathlib import Path

from ponet_training.provenance import write_provenance


# The PoNet paper's Table 1 (test accuracy, %): PoNet; the Transformer trained in the same PyTorch LRA codebase
# (Xiong et al. 2021); FNet as the PoNet authors re-implemented it (None: it failed the task).
PAPER_ACCURACY = {
    "ponet": {"listops": 37.80, "text": 69.82, "retrieval": 80.35, "image": 46.88, "pathfinder": 70.39},
    "softmax": {"listops": 37.10, "text": 65.02, "retrieval": 79.35, "image": 38.20, "pathfinder": 74.16},
    "fnet": {"listops": 37.40, "text": 62.52, "retrieval": 76.94, "image": 35.55, "pathfinder": None},
}
PAPER_ROW = {"ponet": "PoNet", "softmax": "Transformer (same codebase)", "fnet": "FNet (PoNet authors')"}
RESULTS_FILE = "RESULTS_TABLE.md"


def run_folders(root: Path) -> list[Path]:
    """Folders under `root` that hold a finished LRA run (an `all_results.json` with a `mixer`), sorted."""
    found = []
    for path in sorted(root.rglob("all_results.json")):
        results = json.loads(path.read_text())
        if "mixer" in results and "task" in results:
            found.append(path.parent)
    return found


def paper_cell(results: dict) -> str:
    if results.get("stands_in_for"):
        return f"— (a stand-in for {results['stands_in_for']})"
    value = PAPER_ACCURACY[results["mixer"]].get(results["task"], "—")
    return "fail" if value is None else (f"{value:.2f}" if isinstance(value, float) else value)


def wall_cell(results: dict) -> str:
    """Wall minutes of the run; a resumed run timed only its own part, so the cell says which steps."""
    minutes = f"{results['train_runtime'] / 60:.1f}"
    resumed_at = results.get("resumed_at_step")
    return f"{minutes} (steps {resumed_at:,}-{results['train_steps']:,})" if resumed_at else minutes


def row(folder: Path, root: Path) -> str:
    results = json.loads((folder / "all_results.json").read_text())
    provenance_file = folder / "provenance.json"
    provenance = json.loads(provenance_file.read_text()) if provenance_file.is_file() else {}
    cpu = (provenance.get("cpu") or {}).get("model_name", "?")
    speed = results.get("train_steps_per_second")
    test = results.get("test_accuracy")
    cells = [
        f"[{folder.relative_to(root)}]({folder.relative_to(root)}/all_results.json)",
        results["task"], results["mixer"],
        f"{results['train_steps']:,} of {results['published_max_train_steps']:,} x {results['total_train_batch_size']}",
        f"{100 * results['eval_accuracy']:.2f}", "—" if test is None else f"{100 * test:.2f}",
        f"{100 * results.get('test_majority_class_accuracy', results['eval_majority_class_accuracy']):.2f}",
        "—" if speed is None else f"{speed:.3f}", wall_cell(results),
        f"{results['mixed_precision']}, {results['num_processes']} proc., seed {results['seed']}", cpu,
        paper_cell(results),
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table(root: Path) -> str:
    folders = run_folders(root)
    if not folders:
        raise FileNotFoundError(f"No LRA run (all_results.json of finetune/run_lra.py) under {root}")
    header = ("| run | task | mixer | steps of published x batch | dev % | test % | majority % | steps/s | "
              "wall min | precision, processes, seed | CPU | paper test % (same mixer) |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    lines += [row(folder, root) for folder in folders]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="A folder holding run folders of finetune/run_lra.py.")
    args = parser.parse_args(argv)
    text = ("# Long Range Arena runs\n\nMade by `python -m ponet_training.tasks.lra.report "
            f"{args.root}` from the run folders below (each has its command, commit and CPU in provenance.json).\n\n"
            + table(args.root))
    (args.root / RESULTS_FILE).write_text(text)
    given = sys.argv[1:] if argv is None else list(argv)
    write_provenance(args.root, argv=["-m", "ponet_training.tasks.lra.report", *given])
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
