"""The pretraining collators: SSO examples -> padded batches, each objective's inputs built here.

- `DataCollatorForPoNetPretraining`: pads and masks on the fly (15% of non-special tokens, 80% [MASK], 10% random,
  10% kept; optional whole-word masking). The masks are a pure function of (seed, epoch, batch contents), so a
  resumed run re-creates exactly the masks an uninterrupted one would. With `ponet_inputs=False` (a masked LM
  such as BERT: the equal-budget baseline) the batch leaves out PoNet's SSO label and segment ids.
- `DataCollatorForCausalPretraining`: the same examples unmasked, labelled for next-token prediction (GPT-2).
- `pretraining_collator(objective, ...)`: the collator of an objective ("ponet", "mlm", "clm").

Every collator pads the same way (`pad_examples`), and the batch order is the sampler's, so all objectives see
the very same text in the same order.
"""

import hashlib

import numpy as np
import torch

from ponet_training.data.segments import pad_segment_ids


def pad_examples(features: list[dict], tokenizer, pad_to_multiple_of: int | None = None,
                 ponet_inputs: bool = True) -> dict:
    """Pad SSO examples to the longest (rounded up to `pad_to_multiple_of`), on the tokenizer's padding side:
    `input_ids` with the PAD id, `attention_mask` 1/0, `token_type_ids` with 0 and, with `ponet_inputs`,
    `segment_ids` with one more segment (`pad_segment_ids`) and the `sentence_structural_label`s."""
    rows = [list(f["input_ids"]) for f in features]
    length = max(len(row) for row in rows)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    left = tokenizer.padding_side == "left"

    def pad_row(row, value):
        filler = [value] * (length - len(row))
        return filler + list(row) if left else list(row) + filler

    batch = {
        "input_ids": torch.tensor([pad_row(r, tokenizer.pad_token_id) for r in rows], dtype=torch.long),
        "attention_mask": torch.tensor([pad_row([1] * len(r), 0) for r in rows], dtype=torch.long),
    }
    if "token_type_ids" in features[0]:
        batch["token_type_ids"] = torch.tensor([pad_row(f["token_type_ids"], 0) for f in features], dtype=torch.long)
    if ponet_inputs and "segment_ids" in features[0]:
        batch["segment_ids"] = torch.tensor(
            pad_segment_ids([f["segment_ids"] for f in features], length, "left" if left else "right"),
            dtype=torch.long)
    if ponet_inputs and "sentence_structural_label" in features[0]:
        batch["sentence_structural_label"] = torch.tensor(
            [f["sentence_structural_label"] for f in features], dtype=torch.long)
    return batch


class DataCollatorForPoNetPretraining:
    """Pad a list of SSO examples (`pad_examples`) and mask them for MLM.

    `ponet_inputs=False` leaves out the SSO label and the segment ids (a masked LM other than PoNet). Masking:
    each non-special token is chosen with probability `mlm_probability` (with `whole_word_masking`, each word, i.e.
    a token and its `##` continuations); a chosen token becomes [MASK] 80% of the time, a random non-special token
    10%, and stays 10%; `labels` hold the original id there and -100 elsewhere. The random draws depend only on (seed, epoch, batch contents): see `set_epoch`.
    """

    def __init__(self, tokenizer, mlm_probability: float = 0.15, whole_word_masking: bool = False, seed: int = 0,
                 pad_to_multiple_of: int | None = None, mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
                 ponet_inputs: bool = True):
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("MLM needs a tokenizer with [MASK] and [PAD] tokens")
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        if mask_replace_prob + random_replace_prob > 1.0:
            raise ValueError("mask_replace_prob + random_replace_prob must be at most 1")
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.whole_word_masking = whole_word_masking
        self.seed = seed
        self.pad_to_multiple_of = pad_to_multiple_of
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob
        self.ponet_inputs = ponet_inputs
        self.epoch = 0
        vocab_size = len(tokenizer)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        special = torch.zeros(vocab_size, dtype=torch.bool)
        special[self.special_ids[self.special_ids < vocab_size]] = True
        self.replacement_ids = torch.nonzero(~special).flatten()  # random replacements are never special tokens
        self.is_continuation = None
        if whole_word_masking:
            tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
            self.is_continuation = torch.tensor([bool(t) and t.startswith("##") for t in tokens], dtype=torch.bool)

    def set_epoch(self, epoch: int) -> None:
        """Masks differ from epoch to epoch (dynamic masking) but are reproducible for a given epoch."""
        self.epoch = epoch

    def _generator(self, rows: list[list[int]]) -> torch.Generator:
        digest = hashlib.blake2b(digest_size=8)
        digest.update(np.asarray([self.seed, self.epoch, len(rows)], dtype=np.int64).tobytes())
        for row in rows:
            digest.update(np.asarray(row, dtype=np.int64).tobytes())
            digest.update(b"|")
        return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") & ((1 << 63) - 1))

    def pad(self, features: list[dict]) -> dict:
        """Pad without masking (`pad_examples`)."""
        return pad_examples(features, self.tokenizer, self.pad_to_multiple_of, self.ponet_inputs)

    def mask_tokens(self, input_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (masked input_ids, labels) for a padded batch."""
        special = torch.isin(input_ids, self.special_ids)
        if self.whole_word_masking:
            # A word starts at every non-continuation token; continuations follow their word's choice.
            starts = ~self.is_continuation[input_ids.clamp(max=len(self.is_continuation) - 1)] | special
            word_index = torch.cumsum(starts.long(), dim=1) - 1
            word_chosen = torch.rand(input_ids.shape, generator=generator) < self.mlm_probability
            chosen = torch.gather(word_chosen, 1, word_index) & ~special
        else:
            chosen = (torch.rand(input_ids.shape, generator=generator) < self.mlm_probability) & ~special
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
        draw = torch.rand(input_ids.shape, generator=generator)
        to_mask = chosen & (draw < self.mask_replace_prob)
        to_random = chosen & (draw >= self.mask_replace_prob) & (draw < self.mask_replace_prob + self.random_replace_prob)
        random_tokens = self.replacement_ids[
            torch.randint(len(self.replacement_ids), input_ids.shape, generator=generator)]
        masked = input_ids.clone()
        masked[to_mask] = self.tokenizer.mask_token_id
        masked[to_random] = random_tokens[to_random]
        return masked, labels

    def __call__(self, features: list[dict]) -> dict:
        batch = self.pad(features)
        generator = self._generator([list(f["input_ids"]) for f in features])
        batch["input_ids"], batch["labels"] = self.mask_tokens(batch["input_ids"], generator)
        return batch


class DataCollatorForCausalPretraining:
    """Pad a list of SSO examples for next-token prediction (a causal LM such as GPT-2): the text as it is,
    `labels` the `input_ids` themselves (the model shifts them) with -100 on the padding, and no token type ids
    (GPT-2 would embed them as words), SSO labels or segment ids. Padding is `pad_examples`'."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        if tokenizer.pad_token_id is None:
            raise ValueError("Padding needs a tokenizer with a [PAD] token")
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        batch = pad_examples(features, self.tokenizer, self.pad_to_multiple_of, ponet_inputs=False)
        batch.pop("token_type_ids", None)
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return batch


def pretraining_collator(objective: str, tokenizer, args, seed: int, pad_to_multiple_of: int | None = None):
    """The collator of `objective` (`pretraining.objective(model)`): "ponet" masks and keeps the SSO inputs, "mlm"
    masks without them, "clm" does not mask. Uses `args.mlm_probability` and `args.whole_word_masking`."""
    if objective == "clm":
        return DataCollatorForCausalPretraining(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    if objective not in ("ponet", "mlm"):
        raise ValueError(f"Unknown pretraining objective {objective!r}: expected 'ponet', 'mlm' or 'clm'")
    return DataCollatorForPoNetPretraining(tokenizer, args.mlm_probability, args.whole_word_masking, seed=seed,
                                           pad_to_multiple_of=pad_to_multiple_of, ponet_inputs=objective == "ponet")


__all__ = ["DataCollatorForCausalPretraining", "DataCollatorForPoNetPretraining", "pad_examples",
           "pretraining_collator"]
