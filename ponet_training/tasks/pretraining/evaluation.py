"""Evaluation of a pretraining run, and its history across resumes.

- `evaluate_pretraining(model, dataloader, accelerator)`: MLM (and, for PoNet, SSO) loss and accuracy, or the causal
  LM's next-token loss and accuracy; perplexity.
- `EvalHistory(folder, resumed_step)`: every evaluation against steps and training wall-clock seconds, in the run
  folder's `eval_history.jsonl`, across resumes (the clock goes into each checkpoint).
"""

import json
import math
import time
from pathlib import Path

import torch

from ponet_training.tasks.pretraining.objectives import objective


@torch.no_grad()
def evaluate_pretraining(model, dataloader, accelerator) -> dict:
    """MLM loss / accuracy over masked tokens and SSO loss / accuracy over examples (PoNet), MLM only (a masked
    LM), or next-token loss / accuracy over real tokens (`clm_*`, a causal LM); and perplexity."""
    kind = objective(accelerator.unwrap_model(model))
    lm = "clm" if kind == "clm" else "mlm"
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=accelerator.device)  # lm loss, correct, count, sso loss, correct
    sso_count = 0
    for batch in dataloader:
        inputs = dict(batch)
        labels = inputs.pop("labels")
        inputs.pop("sentence_structural_label", None)
        outputs = model(**inputs)
        logits = (outputs.prediction_logits if kind == "ponet" else outputs.logits).float()
        if kind == "clm":  # position i predicts token i + 1
            logits, labels = logits[:, :-1], labels[:, 1:]
        scored = labels != -100
        lm_loss = torch.nn.functional.cross_entropy(logits[scored], labels[scored], reduction="none")
        lm_correct = (logits[scored].argmax(-1) == labels[scored]).float()
        # Per-example sums, so that gather_for_metrics can drop the duplicates padding the last batch.
        rows = scored.nonzero()[:, 0]
        size = labels.shape[0]
        per_example = torch.zeros(size, 5, dtype=torch.float64, device=labels.device)
        per_example[:, 0].index_add_(0, rows, lm_loss.double())
        per_example[:, 1].index_add_(0, rows, lm_correct.double())
        per_example[:, 2] = scored.sum(1).double()
        if kind == "ponet":
            sso_logits = outputs.seq_relationship_logits.float()
            sso_labels = batch["sentence_structural_label"]
            per_example[:, 3] = torch.nn.functional.cross_entropy(sso_logits, sso_labels, reduction="none").double()
            per_example[:, 4] = (sso_logits.argmax(-1) == sso_labels).double()
        per_example = accelerator.gather_for_metrics(per_example)
        totals += per_example.sum(0)
        sso_count += per_example.shape[0]
    model.train()
    lm_loss = (totals[0] / totals[2].clamp(min=1)).item()
    metrics = {f"{lm}_loss": lm_loss, f"{lm}_accuracy": (totals[1] / totals[2].clamp(min=1)).item()}
    if kind == "ponet":
        metrics["sso_loss"] = (totals[3] / max(sso_count, 1)).item()
        metrics["sso_accuracy"] = (totals[4] / max(sso_count, 1)).item()
    metrics["loss"] = lm_loss + metrics.get("sso_loss", 0.0)
    metrics["perplexity"] = math.exp(min(lm_loss, 50.0))
    metrics["masked_tokens" if lm == "mlm" else "predicted_tokens"] = int(totals[2].item())
    metrics["examples"] = sso_count
    return metrics


EVAL_HISTORY_JSONL = "eval_history.jsonl"
TRAIN_CLOCK_JSON = "train_clock.json"


class EvalHistory:
    """Every evaluation of a pretraining run with its step and the training wall-clock seconds so far (evaluation
    time excluded), so that runs can be compared against steps and against time. Lines go to the run folder's
    `eval_history.jsonl` as they come (`write`: on the main process); a resumed run keeps the lines up to its
    checkpoint's step and continues the clock from the checkpoint's `train_clock.json`."""

    def __init__(self, folder, resumed_step: int = 0, write: bool = True):
        checkpoint = folder.resume_checkpoint
        self.path = folder.path / EVAL_HISTORY_JSONL if folder.path is not None and write else None
        self.offset = 0.0
        self.entries: list[dict] = []
        if checkpoint is not None and (Path(checkpoint) / TRAIN_CLOCK_JSON).is_file():
            self.offset = json.loads((Path(checkpoint) / TRAIN_CLOCK_JSON).read_text())["train_seconds"]
        if self.path is not None and self.path.is_file() and checkpoint is not None:
            lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
            self.entries = [e for e in lines if e["step"] <= resumed_step]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(json.dumps(e) + "\n" for e in self.entries))
        self.started = time.perf_counter()
        self.eval_seconds = 0.0

    def train_seconds(self) -> float:
        """Seconds spent training so far (all sessions of a resumed run), evaluations excluded."""
        return self.offset + time.perf_counter() - self.started - self.eval_seconds

    def evaluate(self, model, dataloader, accelerator, step: int, **extra) -> dict:
        """Evaluate (`evaluate_pretraining`), record `{step, train_seconds, **metrics}` and return it."""
        train_seconds = self.train_seconds()
        started = time.perf_counter()
        metrics = evaluate_pretraining(model, dataloader, accelerator)
        self.eval_seconds += time.perf_counter() - started
        entry = {"step": step, **extra, "train_seconds": round(train_seconds, 3), **metrics}
        self.entries.append(entry)
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        return entry

    def checkpoint_files(self) -> dict:
        """The training clock as a checkpoint file ({name: content}), for a resumed run to continue from."""
        return {TRAIN_CLOCK_JSON: {"train_seconds": self.train_seconds()}}


__all__ = ["EVAL_HISTORY_JSONL", "EvalHistory", "evaluate_pretraining"]
