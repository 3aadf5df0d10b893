"""SequencePooler: every mode against a naive per-example computation that slices the real tokens (no masks)."""

import pytest
import torch
from tolerance import assert_close

from modeling_ponet.pooling import (
    POOLING_MODES,
    SequencePooler,
    first_token_index,
    last_token_index,
    masked_softmax,
    parse_pooling_modes,
)


HIDDEN = 8
LENGTHS = [5, 1, 3, 6]  # includes a single-token row and a row without padding
MAX_LEN = 6


def padded_batch(padding_side: str, dtype=torch.float32, pad_value: float = 1e4, seed: int = 0):
    """Random token states with `LENGTHS` real tokens per row; padding filled with huge values so any leak shows.

    Returns (hidden [B, L, H], mask [B, L], real: list of the [n_i, H] real-token slices in fp32).
    """
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.empty(len(LENGTHS), MAX_LEN, HIDDEN)
    mask = torch.zeros(len(LENGTHS), MAX_LEN, dtype=torch.long)
    real = []
    for i, n in enumerate(LENGTHS):
        tokens = torch.randn(n, HIDDEN, generator=gen)
        pad = pad_value * torch.sign(torch.randn(MAX_LEN - n, HIDDEN, generator=gen))
        if padding_side == "right":
            hidden[i] = torch.cat([tokens, pad])
            mask[i, :n] = 1
        else:
            hidden[i] = torch.cat([pad, tokens])
            mask[i, MAX_LEN - n:] = 1
        real.append(tokens)
    return hidden.to(dtype), mask, [r.to(dtype).float() for r in real]


def naive_pool(pooler: SequencePooler, mode: str, tokens: torch.Tensor) -> torch.Tensor:
    """One example, its real tokens only `[n, H]` (fp32), the textbook definition of each mode."""
    n = tokens.shape[0]
    if mode == "cls":
        return tokens[0]
    if mode == "last":
        return tokens[-1]
    if mode == "mean":
        return tokens.sum(0) / n
    if mode == "max":
        return torch.stack([max(tokens[:, j].tolist()) * torch.ones(()) for j in range(tokens.shape[1])])
    if mode == "weighted_mean":  # SGPT: weight i / sum(1..n) for the i-th real token (1-based)
        weights = torch.arange(1, n + 1, dtype=torch.float32)
        weights = weights / weights.sum()
        return (weights[:, None] * tokens).sum(0)
    if mode == "weighted_sum":
        layer = pooler.weighted_sum_scorer
        scores = tokens @ layer.weight.float()[0] + layer.bias.float()[0]
        return (torch.softmax(scores, 0)[:, None] * tokens).sum(0)
    if mode == "attention":
        keys = torch.tanh(tokens @ pooler.attention_key.weight.float().T + pooler.attention_key.bias.float())
        scores = keys @ pooler.attention_query.float()
        return (torch.softmax(scores, 0)[:, None] * tokens).sum(0)
    raise AssertionError(mode)


def make_pooler(modes) -> SequencePooler:
    pooler = SequencePooler(HIDDEN, modes)
    # Non-trivial learned weights, so that the learned modes do not start out as a plain mean.
    with torch.no_grad():
        for param in pooler.parameters():
            param.copy_(torch.randn_like(param))
    return pooler


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("mode", POOLING_MODES)
def test_each_mode_equals_naive_per_example_computation_fp32(mode, padding_side):
    pooler = make_pooler(mode)
    hidden, mask, real = padded_batch(padding_side)
    pooled = pooler(hidden, mask)
    assert pooled.shape == (len(LENGTHS), HIDDEN) and pooled.dtype == torch.float32
    expected = torch.stack([naive_pool(pooler, mode, tokens) for tokens in real])
    assert_close(pooled, expected, reduction=max(LENGTHS) * HIDDEN)  # sums over tokens of dot products over channels


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("mode", POOLING_MODES)
def test_each_mode_is_finite_and_close_to_naive_in_half_precision(mode, padding_side, dtype):
    # Padding near the half-precision maximum: a careless fill/sum would overflow to inf or NaN.
    pad_value = 6e4 if dtype == torch.float16 else 1e30
    pooler = make_pooler(mode)
    hidden, mask, real = padded_batch(padding_side, dtype=dtype, pad_value=pad_value)
    expected = torch.stack([naive_pool(pooler, mode, tokens) for tokens in real])  # fp32 on the rounded inputs
    pooled = pooler.to(dtype)(hidden, mask)
    assert pooled.dtype == dtype
    assert torch.isfinite(pooled).all()
    # the half-precision pooler against float32 on the same rounded inputs: ~20 float16 eps (9.8e-4) or ~13 bfloat16
    # eps (7.8e-3) at the unit scale of the inputs; each op rounds its output, and a softmax over <= 6 tokens is short
    tolerance = 2e-2 if dtype == torch.float16 else 1e-1
    torch.testing.assert_close(pooled.float(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_last_picks_the_last_real_token_under_both_padding_sides(padding_side):
    # Token state = its position, so the pooled value names the position picked.
    hidden, mask, _ = padded_batch(padding_side)
    positions = torch.arange(MAX_LEN, dtype=torch.float32)[None, :, None].expand(len(LENGTHS), MAX_LEN, HIDDEN)
    pooled = SequencePooler(HIDDEN, "last")(positions.clone(), mask)[:, 0]
    expected = [n - 1 if padding_side == "right" else MAX_LEN - 1 for n in LENGTHS]
    assert pooled.tolist() == expected
    assert last_token_index(mask).tolist() == expected
    assert first_token_index(mask).tolist() == [0 if padding_side == "right" else MAX_LEN - n for n in LENGTHS]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_weighted_sum_weights_are_a_softmax_over_real_tokens_only(padding_side):
    pooler = make_pooler("weighted_sum")
    hidden, mask, real = padded_batch(padding_side)
    weights = pooler.weighted_sum_weights(hidden, mask)
    assert weights.shape == mask.shape
    assert (weights[mask == 0] == 0).all()  # exactly zero, not just small
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(LENGTHS)))
    for i, tokens in enumerate(real):
        scores = pooler.weighted_sum_scorer(tokens).squeeze(-1)
        torch.testing.assert_close(weights[i][mask[i].bool()], torch.softmax(scores, 0))
    attention = make_pooler("attention").attention_weights(hidden, mask)
    assert (attention[mask == 0] == 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(len(LENGTHS)))


def test_weighted_mean_ignores_left_padding():
    # The same sentence, padded on the left or on the right, gets the same SGPT position weights.
    hidden_right, mask_right, _ = padded_batch("right")
    hidden_left, mask_left, _ = padded_batch("left")
    pooler = SequencePooler(HIDDEN, "weighted_mean")
    torch.testing.assert_close(pooler(hidden_right, mask_right), pooler(hidden_left, mask_left))


def test_modes_concatenate_in_the_given_order():
    hidden, mask, _ = padded_batch("left")
    combined = make_pooler("max+cls+weighted_sum")
    assert combined.modes == ("max", "cls", "weighted_sum") and combined.output_size == 3 * HIDDEN
    single = SequencePooler(HIDDEN, "weighted_sum")
    single.load_state_dict(combined.state_dict())
    expected = torch.cat([SequencePooler(HIDDEN, "max")(hidden, mask), SequencePooler(HIDDEN, "cls")(hidden, mask),
                          single(hidden, mask)], dim=-1)
    torch.testing.assert_close(combined(hidden, mask), expected)


def test_cls_uses_the_given_cls_output():
    hidden, mask, _ = padded_batch("right")
    cls_output = torch.randn(len(LENGTHS), HIDDEN)
    torch.testing.assert_close(SequencePooler(HIDDEN, "cls+mean")(hidden, mask, cls_output=cls_output)[:, :HIDDEN],
                               cls_output)


def test_no_mask_means_every_token_is_real():
    hidden = torch.randn(2, 4, HIDDEN)
    pooler = SequencePooler(HIDDEN, "mean+max+last")
    torch.testing.assert_close(pooler(hidden), torch.cat([hidden.mean(1), hidden.amax(1), hidden[:, -1]], -1))


def test_row_without_real_tokens_pools_to_zero_not_to_the_dtype_minimum():
    hidden = torch.randn(2, 3, HIDDEN, dtype=torch.float16)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    pooled = SequencePooler(HIDDEN, "mean+max+weighted_mean").half()(hidden, mask)
    assert torch.isfinite(pooled).all()
    assert (pooled[1] == 0).all()


def test_learned_modes_get_gradients_and_padding_gets_none():
    hidden, mask, _ = padded_batch("left")
    hidden.requires_grad_(True)
    pooler = make_pooler("weighted_sum+attention")
    pooler(hidden, mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pooler.parameters())
    assert (hidden.grad[mask == 0] == 0).all()


def test_masked_softmax_matches_softmax_of_the_real_scores():
    scores = torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    weights = masked_softmax(scores, mask)
    for i in range(3):
        torch.testing.assert_close(weights[i][mask[i].bool()], scores[i][mask[i].bool()].softmax(0))


def test_parse_pooling_modes_accepts_plus_comma_and_lists():
    assert parse_pooling_modes("mean+max") == ("mean", "max")
    assert parse_pooling_modes("mean, max") == ("mean", "max")
    assert parse_pooling_modes(["cls"]) == ("cls",)


@pytest.mark.parametrize("bad", ["average", "mean+avg", "mean+mean", ""])
def test_unknown_or_repeated_pooling_names_raise_a_clear_error(bad):
    with pytest.raises(ValueError, match="pooling mode.*choose from"):
        parse_pooling_modes(bad)
    with pytest.raises(ValueError, match="choose from"):
        SequencePooler(HIDDEN, bad)


def test_mask_of_the_wrong_shape_raises():
    with pytest.raises(ValueError, match="attention_mask"):
        SequencePooler(HIDDEN, "mean")(torch.randn(2, 4, HIDDEN), torch.ones(2, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_max_of_very_negative_real_tokens_is_not_clipped_by_the_padding_fill(dtype):
    # A fixed fill such as the published -10000 would win over real values below it.
    hidden = torch.full((1, 3, HIDDEN), -3e4).to(dtype)
    hidden[0, 2] = 0  # padding
    pooled = SequencePooler(HIDDEN, "max").to(dtype)(hidden, torch.tensor([[1, 1, 0]]))
    assert (pooled == hidden[0, 0]).all()
