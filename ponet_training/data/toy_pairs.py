"""A learnable MRPC-style toy pair task in the original GLUE tsv layout, for the tests (the demo runs on
the human-rated VADER sentences instead).

- `toy_pair_examples(n, seed)`, `toy_vocabulary_text()`, `write_toy_pair_task(output_dir, ...)`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path


_TOY_SUBJECTS = ("the movie", "the film", "the story", "the play", "the book", "the show")
_TOY_POSITIVE = ("great", "wonderful", "good", "lovely", "fun", "nice")
_TOY_NEGATIVE = ("terrible", "boring", "bad", "awful", "dull", "poor")
_TOY_FILLERS = ("really", "very", "quite", "so", "truly", "")
_TOY_ENDINGS = ("today", "again", "for me", "to them", "all day", "")


def _toy_sentence(rng: random.Random, positive: bool) -> str:
    words = [rng.choice(_TOY_SUBJECTS), "was", rng.choice(_TOY_FILLERS),
             rng.choice(_TOY_POSITIVE if positive else _TOY_NEGATIVE), rng.choice(_TOY_ENDINGS)]
    return " ".join(word for word in words if word) + "."


def toy_pair_examples(n: int, seed: int) -> list[tuple[str, str, int]]:
    """`n` (sentence1, sentence2, label) pairs: label 1 ("equivalent") iff sentence2 is positive.

    Both sentences carry a polarity word; sentence1's is random (a distractor), so a model has to tell the
    two segments of the pair apart to learn the label, which a 2-layer PoNet does in a few hundred updates.
    Labels are balanced.
    """
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = i % 2
        examples.append((_toy_sentence(rng, rng.random() < 0.5), _toy_sentence(rng, label == 1), label))
    rng.shuffle(examples)
    return examples


def toy_vocabulary_text() -> str:
    """Every word the toy task uses (to train a tokenizer that covers it)."""
    words = [*_TOY_SUBJECTS, "was", *_TOY_POSITIVE, *_TOY_NEGATIVE, *_TOY_FILLERS, *_TOY_ENDINGS]
    return " ".join(word for word in words if word) + " ."


def write_toy_pair_task(output_dir: str | os.PathLike, n_train: int = 800, n_dev: int = 200, n_test: int = 200,
                        seed: int = 0) -> dict[str, Path]:
    """Write a learnable MRPC-style task in the original GLUE MRPC tsv layout: train.tsv, dev.tsv, test.tsv.

    Train/dev have `Quality  #1 ID  #2 ID  #1 String  #2 String`; test has `index` instead of `Quality`,
    exactly like glue_data/MRPC. Load it with `--task_name mrpc --glue_dir <output_dir>` (or the files).
    Returns {split: path}.
    """
    if min(n_train, n_dev, n_test) < 1:
        raise ValueError("n_train, n_dev and n_test must be positive")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Each split is generated (and balanced) on its own, from its own seed.
    parts = {"train": toy_pair_examples(n_train, seed), "validation": toy_pair_examples(n_dev, seed + 1),
             "test": toy_pair_examples(n_test, seed + 2)}
    names = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
    paths = {}
    for split, rows in parts.items():
        path = output_dir / names[split]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            first = "index" if split == "test" else "Quality"
            handle.write(f"{first}\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
            for i, (sentence1, sentence2, label) in enumerate(rows):
                lead = i if split == "test" else label
                handle.write(f"{lead}\t{2 * i}\t{2 * i + 1}\t{sentence1}\t{sentence2}\n")
        paths[split] = path
    return paths


__all__ = ["toy_pair_examples", "toy_vocabulary_text", "write_toy_pair_task"]
