"""Sentence pooling: turn token states `[batch, length, hidden]` into one vector per sequence.

Used by PoNet's sequence-level heads (`config.classifier_pooling`) and by the generic
backbone + pooling + classifier wrapper of the pooling study. Saved next to the weights for
`trust_remote_code` users, so it imports only torch.

Every mode honours the attention mask (1 = real token) and works with right and left padding.
"""

import torch
from torch import nn


POOLING_MODES = ("cls", "last", "mean", "max", "weighted_sum", "weighted_mean", "attention")


def parse_pooling_modes(modes) -> tuple[str, ...]:
    """`"mean+max"`, `"mean,max"` or `["mean", "max"]` -> `("mean", "max")`; unknown names raise ValueError."""
    if isinstance(modes, str):
        modes = modes.replace(",", "+").split("+")
    modes = tuple(m.strip() for m in modes)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if not modes or unknown or len(set(modes)) != len(modes):
        raise ValueError(
            f"Unknown or repeated pooling mode(s) {unknown or list(modes)}: choose from {POOLING_MODES}, "
            "several may be joined by '+'"
        )
    return modes


def first_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the first real token of each row (0 with right padding). `[batch, length]` -> `[batch]`."""
    return attention_mask.float().argmax(dim=1)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, for right and left padding. `[batch, length]` -> `[batch]`."""
    length = attention_mask.shape[1]
    return length - 1 - attention_mask.flip(1).float().argmax(dim=1)


def masked_softmax(scores: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the real tokens of each row, in float32; padding gets exactly 0. `[batch, length]`."""
    valid = attention_mask.bool()
    scores = scores.float().masked_fill(~valid, torch.finfo(torch.float32).min)
    return scores.softmax(dim=-1).masked_fill(~valid, 0.0)


class SequencePooler(nn.Module):
    """Pool token states into sentence vectors with one or several modes (concatenated in the given order).

    - `cls`: the first real token (or `cls_output` when the caller passes one, e.g. BERT/PoNet's pooler output)
    - `last`: the last real token
    - `mean` / `max`: masked mean / max over real tokens (max fills padding with the dtype's minimum)
    - `weighted_sum`: softmax-normalised learned weights, one score per token from its hidden state
    - `weighted_mean`: position-weighted mean (SGPT), weights 1..n over the real tokens only
    - `attention`: additive attention (as in hierarchical attention networks): a learned query scores
      `tanh(W h_i + b)` per token; the values are the token states. The `tanh` keeps it from collapsing into
      the linear scorer of `weighted_sum`.

    Args:
        hidden_size: width of the token states.
        modes: a mode name, several joined by `+`, or a sequence of names.
    """

    def __init__(self, hidden_size: int, modes="mean"):
        super().__init__()
        self.hidden_size = hidden_size
        self.modes = parse_pooling_modes(modes)
        self.output_size = hidden_size * len(self.modes)
        if "weighted_sum" in self.modes:
            self.weighted_sum_scorer = nn.Linear(hidden_size, 1)
        if "attention" in self.modes:
            self.attention_key = nn.Linear(hidden_size, hidden_size)
            # A bare Parameter: models that embed this pooler initialise it in their `_init_weights`.
            self.attention_query = nn.Parameter(torch.randn(hidden_size) * 0.02)

    def _scorer_input(self, hidden_states: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        # e.g. a bf16 frozen backbone feeding an fp32 pooler outside autocast
        return hidden_states.to(layer.weight.dtype)

    def weighted_sum_weights(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The `weighted_sum` mode's token weights, `[batch, length]`, summing to 1 over real tokens."""
        scores = self.weighted_sum_scorer(self._scorer_input(hidden_states, self.weighted_sum_scorer))
        return masked_softmax(scores.squeeze(-1), attention_mask)

    def attention_weights(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The `attention` mode's token weights, `[batch, length]`, summing to 1 over real tokens."""
        keys = torch.tanh(self.attention_key(self._scorer_input(hidden_states, self.attention_key)))
        scores = keys @ self.attention_query
        return masked_softmax(scores, attention_mask)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cls_output: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`hidden_states` `[batch, length, hidden]`, `attention_mask` `[batch, length]` -> `[batch, output_size]`."""
        batch, length, _ = hidden_states.shape
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=hidden_states.device)
        elif attention_mask.shape != (batch, length):
            raise ValueError(
                f"`attention_mask` has shape {tuple(attention_mask.shape)}, expected {(batch, length)} to match the "
                f"hidden states {tuple(hidden_states.shape)}"
            )
        valid = attention_mask.bool().unsqueeze(-1)  # [batch, length, 1]
        rows = torch.arange(batch, device=hidden_states.device)
        pooled = []
        for mode in self.modes:
            if mode == "cls":
                out = cls_output if cls_output is not None else hidden_states[rows, first_token_index(attention_mask)]
            elif mode == "last":
                out = hidden_states[rows, last_token_index(attention_mask)]
            elif mode == "mean":
                count = valid.sum(dim=1).clamp(min=1)
                out = hidden_states.masked_fill(~valid, 0.0).sum(dim=1, dtype=torch.float32) / count
            elif mode == "max":
                out = hidden_states.masked_fill(~valid, torch.finfo(hidden_states.dtype).min).amax(dim=1)
                # a row with no real token gets 0 (as `mean` gives), not the dtype's minimum
                out = out.masked_fill(~valid.any(dim=1), 0.0)
            elif mode == "weighted_mean":
                positions = attention_mask.long().cumsum(dim=1) * attention_mask.long()
                weights = positions.float() / positions.sum(dim=1, keepdim=True).clamp(min=1)
                out = torch.einsum("bl,blh->bh", weights, hidden_states.float())
            else:  # learned weights
                if mode == "weighted_sum":
                    weights = self.weighted_sum_weights(hidden_states, attention_mask)
                else:
                    weights = self.attention_weights(hidden_states, attention_mask)
                out = torch.einsum("bl,blh->bh", weights, hidden_states.float())
            pooled.append(out.to(hidden_states.dtype))
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=-1)


__all__ = ["POOLING_MODES", "SequencePooler", "parse_pooling_modes", "first_token_index", "last_token_index",
           "masked_softmax"]
