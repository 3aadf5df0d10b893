"""LRA batches: every sequence padded with id 0 to the task's padded length, as the published code fed them.

A fixed length (rather than the longest in the batch) keeps what the published model computes: its head divides
by the padded length, FNet's transform spans it, and every step costs the same, so steps per second read as the
speed table's."""

import numpy as np
import torch

from ponet_training.data.lra.encoding import PAD_ID


class PaddedBatches:
    """A `collate_fn`: examples with id columns (`input_ids`, and `input_ids_2` for a pair task) and a `label` ->
    long tensors `[batch, padded_length]` per column, their `attention_mask` (`attention_mask_2`: 1 where the id is
    not padding) and `labels` `[batch]`."""

    def __init__(self, padded_length: int, columns=("input_ids",)):
        self.padded_length = padded_length
        self.columns = tuple(columns)

    def __call__(self, examples: list[dict]) -> dict:
        batch = {}
        for column in self.columns:
            ids = torch.full((len(examples), self.padded_length), PAD_ID, dtype=torch.long)
            for row, example in enumerate(examples):
                sequence = np.asarray(example[column], dtype=np.int64)
                if len(sequence) > self.padded_length:  # the loaders truncate (logged) below this: never here
                    raise ValueError(f"`{column}` of a batch has {len(sequence)} ids, more than the padded length "
                                     f"{self.padded_length}")
                ids[row, : len(sequence)] = torch.from_numpy(sequence)
            batch[column] = ids
            batch[column.replace("input_ids", "attention_mask")] = (ids != PAD_ID).long()
        if "label" in examples[0]:
            batch["labels"] = torch.tensor([int(example["label"]) for example in examples], dtype=torch.long)
        return batch


__all__ = ["PaddedBatches"]
