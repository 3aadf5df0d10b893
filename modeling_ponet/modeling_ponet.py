"""PyTorch PoNet model: "PoNet: Pooling Network for Efficient Token Mixing in Long Sequences" (Tan et al., ICLR
2022, https://arxiv.org/abs/2110.02442; original implementation https://github.com/lxchtan/PoNet).

PoNet is BERT with the self-attention block replaced by a pooling mixer made of four parts:
global aggregation (GA), segment max-pooling (SMP), local max-pooling (LMP) and pooling fusion (PF).
Its cost is linear in the sequence length. Parameter names follow the published checkpoint
(`chtan/ponet-base-uncased`), so it loads as it is.

Saved next to the weights for `trust_remote_code` users: it imports only torch, transformers and its two
sibling files (`configuration_ponet.py`, `pooling.py`). It runs on transformers 4.52+ and 5.x: the few names that
differ between the two majors are imported with a fallback below (docs/hub_files.md).
"""

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import ModelOutput, logging
from transformers.utils.generic import can_return_tuple

try:
    from transformers import initialization as init
except ImportError:  # transformers 4: plain torch initialisers (4.x runs `_init_weights` only on weights a checkpoint lacks)
    init = SimpleNamespace(
        normal_=nn.init.normal_, zeros_=nn.init.zeros_, ones_=nn.init.ones_,
        copy_=lambda tensor, other: tensor.copy_(other),
    )

from .configuration_ponet import PoNetConfig
from .pooling import SequencePooler, parse_pooling_modes


logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Segments and masks: computed once per forward pass, shared by every layer
# ----------------------------------------------------------------------------------------------------------------


def segment_ids_from_special_tokens(special_tokens_mask: torch.Tensor) -> torch.Tensor:
    """Derive segment ids from CLS/SEP positions, as the published model does.

    Every CLS and SEP is a segment of its own; the tokens between two of them form one segment (so the
    padding run after the last SEP is one more segment). `[CLS] a b [SEP] c [SEP] PAD PAD` -> `0 1 1 2 3 4 5 5`.

    Args:
        special_tokens_mask: bool `[batch, length]`, True at CLS/SEP.
    Returns:
        long `[batch, length]`, non-decreasing per row.
    """
    starts = special_tokens_mask.clone()
    starts[:, 1:] |= special_tokens_mask[:, :-1]  # the token after a CLS/SEP opens a segment too
    starts[:, 0] = False
    return starts.long().cumsum(dim=1)


def fixed_segment_ids(batch_size: int, length: int, segment_size: int, device) -> torch.Tensor:
    """Contiguous segments of `segment_size` tokens (LRA-style inputs without CLS/SEP). -> long `[batch, length]`."""
    return (torch.arange(length, device=device) // segment_size).expand(batch_size, length)


@dataclass
class PoNetMixerInputs:
    """What every layer's mixer needs besides the hidden states, built once by `PoNetModel`.

    Attributes:
        valid: bool `[batch, length, 1]`, True at real (non-padding) tokens.
        blocked: bool `[batch, length, 1]`, True at padding, and at CLS/SEP when `config.clsgsepg`: these rows
            do not feed the local max, and their SMP and LMP features are zeroed.
        segment_index: long `[batch * length]`, each real token's segment as a row of a `[batch * length + 1]`
            table (row `b` uses entries `b * length ... b * length + length - 1`), so one scatter covers the batch;
            padding tokens point at the extra last row, so they never reach a real token's segment maximum.
            None when the segments are fixed blocks (`block_size`).
        block_size: the segments are contiguous blocks of this many tokens (it divides the length): segment
            max-pooling is then a reshape and a max. None for any other segments.
        any_blocked: whether any row is blocked; False lets the mixers skip their masks.
        output_attentions: whether the mixers return their GA probabilities (differentiable ones).
    """

    valid: torch.Tensor
    blocked: torch.Tensor
    segment_index: torch.Tensor | None = None
    block_size: int | None = None
    any_blocked: bool = True
    output_attentions: bool = False


def compact_segment_ids(segment_ids: torch.Tensor) -> torch.Tensor:
    """Renumber non-decreasing segment ids per row as 0, 1, 2, ... (so every id is below the length)."""
    changes = torch.zeros_like(segment_ids, dtype=torch.bool)
    changes[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    return changes.long().cumsum(dim=1)


def build_mixer_inputs(
    config: PoNetConfig,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    segment_ids: torch.Tensor | None,
    batch: int,
    length: int,
    device,
    output_attentions: bool = False,
) -> PoNetMixerInputs:
    """Validity, CLS/SEP and segment tensors for every layer (see `PoNetMixerInputs`), from `config`'s special ids,
    `clsgsepg` and `segment_size`. Used by `PoNetModel` and by any encoder that reuses `PoNetPoolingMixer`."""
    if attention_mask is None:
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
    else:
        if attention_mask.shape != (batch, length):
            raise ValueError(f"`attention_mask` has shape {tuple(attention_mask.shape)}, expected {(batch, length)}")
        valid = attention_mask.bool()

    special = None
    if input_ids is not None:
        special = (input_ids == config.cls_token_id) | (input_ids == config.sep_token_id)

    if segment_ids is not None:
        if segment_ids.shape != (batch, length):
            raise ValueError(f"`segment_ids` has shape {tuple(segment_ids.shape)}, expected {(batch, length)}")
        if not torch.compiler.is_compiling() and bool((segment_ids[:, 1:] < segment_ids[:, :-1]).any()):
            raise ValueError("`segment_ids` must be non-decreasing along each row (contiguous segments)")
        segment_ids = compact_segment_ids(segment_ids)
    block_size = None
    if segment_ids is None and (config.segment_size is not None or special is None):
        # Fixed blocks; inputs_embeds without segment information are one block of the whole sequence.
        size = min(config.segment_size or length, length)
        if length % size == 0:
            block_size = size
        else:  # a shorter last block: through the segment table
            segment_ids = fixed_segment_ids(batch, length, size, device)
    elif segment_ids is None:
        segment_ids = segment_ids_from_special_tokens(special)

    segment_index = None
    if block_size is None:
        # One table row per (example, segment); padding tokens all point at the extra last row.
        row_offsets = torch.arange(batch, device=device).unsqueeze(1) * length
        segment_index = torch.where(valid, segment_ids + row_offsets, batch * length).reshape(-1)

    blocked = ~valid
    clsgsepg = config.clsgsepg and special is not None
    if clsgsepg:
        blocked = blocked | special
    # Known without looking when nothing can be blocked; else one look per forward pass (the masked path under
    # torch.compile, which cannot branch on data).
    any_blocked = (attention_mask is not None or clsgsepg) and (
        torch.compiler.is_compiling() or bool(blocked.any())
    )
    return PoNetMixerInputs(
        valid=valid.unsqueeze(-1),
        blocked=blocked.unsqueeze(-1),
        segment_index=segment_index,
        block_size=block_size,
        any_blocked=any_blocked,
        output_attentions=output_attentions,
    )


# ----------------------------------------------------------------------------------------------------------------
# The pooling operations of the mixer
# ----------------------------------------------------------------------------------------------------------------
# Written for speed without changing the published arithmetic: the projections are views of the GEMM outputs
# (no copies), per-head products are GEMMs against block-diagonal matrices (no permutes), segment maxima go
# through a table with one row per segment, the window max is an in-place max of shifted slices, and full-size
# intermediates are reused in place. `PoNetPoolingFunction` below gives them a hand-written backward.


def _block_diagonal(vectors: torch.Tensor, num_heads: int) -> torch.Tensor:
    """`[batch, hidden]` -> `[batch, hidden, heads]` holding head h's slice in column h, zeros elsewhere."""
    batch, hidden = vectors.shape
    eye = torch.eye(num_heads, dtype=vectors.dtype, device=vectors.device)
    return (vectors.view(batch, num_heads, hidden // num_heads, 1) * eye.view(1, num_heads, 1, num_heads)).view(
        batch, hidden, num_heads
    )


def _diagonal_blocks(per_head: torch.Tensor) -> torch.Tensor:
    """`[batch, heads, hidden]` (row h computed for every head) -> `[batch, hidden]` keeping head h's slice of row h."""
    batch, num_heads, hidden = per_head.shape
    blocks = per_head.view(batch, num_heads, num_heads, hidden // num_heads).diagonal(dim1=1, dim2=2)
    return blocks.transpose(1, 2).reshape(batch, hidden)


def _mean_weights(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`[batch, length, 1]` weights valid / count of a masked mean, divided in float32 and rounded once to `dtype`
    (bfloat16 holds integers exactly only up to 256: 257 tokens would count as 256). A row of padding only gets
    weights 0 rather than 0 / 0: its output is zeroed anyway, and must not be NaN."""
    count = valid.sum(dim=1, keepdim=True, dtype=torch.float32).clamp_(min=1)
    return (valid / count).to(dtype)


def _per_head_dot(tokens: torch.Tensor, vectors: torch.Tensor, num_heads: int) -> torch.Tensor:
    """`[batch, length, hidden]` . `[batch, hidden]` per head -> `[batch, length, heads]`. float32 and float64: a
    product and a sum over each head's channels (an `[L, hidden] @ [hidden, heads]` GEMM is slow for so few
    columns); lower precisions: that GEMM, which sums in float32 where the product would round each term."""
    if tokens.dtype in (torch.float32, torch.float64):
        batch, length, hidden = tokens.shape
        per_head = tokens.unflatten(-1, (num_heads, -1)) * vectors.view(batch, 1, num_heads, -1)
        return per_head.sum(dim=-1)
    return torch.bmm(tokens, _block_diagonal(vectors, num_heads))


def global_aggregation(
    query: torch.Tensor, key: torch.Tensor, valid: torch.Tensor, num_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """GA: a masked mean of the queries attends over the keys; the keys are also the values.

    Args:
        query, key: `[batch, length, hidden]` projections (strided views are fine).
        valid: bool `[batch, length, 1]`.
        num_heads: heads the hidden width is split into.
    Returns:
        `g` `[batch, hidden]` (one vector per sequence and head, heads merged); the attention probabilities
        `[batch, heads, length]` in the dtype of `key`, the very tensor `g` is computed from (so they are
        differentiable, like other models' attentions); the same probabilities as float32 `[batch, length, heads]`
        and the mean query `[batch, hidden]` (both for the hand-written backward).
    """
    hidden = key.shape[-1]
    # Stage 1: the masked mean as one GEMM with weights valid / count (a mean cannot overflow in half precision).
    mean_query = torch.bmm(_mean_weights(valid, query.dtype).transpose(1, 2), query).squeeze(1)
    # Stage 2: the mean query attends over the keys: `[L, hidden] @ [hidden, heads]` keeps the heads apart.
    scores = _per_head_dot(key, mean_query, num_heads).float() / math.sqrt(hidden // num_heads)
    probs = scores.masked_fill_(~valid, torch.finfo(torch.float32).min).softmax(dim=1)
    attentions = probs.to(key.dtype).transpose(1, 2)
    g = _diagonal_blocks(torch.bmm(attentions, key))
    return g, attentions, probs, mean_query


def _into(out: torch.Tensor, op, *args) -> torch.Tensor:
    """`op(*args)` written into `out`, a strided view: as `out=` in eager mode, by a copy under torch.compile (which
    takes no strided `out=`)."""
    if torch.compiler.is_compiling():
        return out.copy_(op(*args))
    return op(*args, out=out)


def _by_segment(x: torch.Tensor, mixer_inputs: PoNetMixerInputs) -> torch.Tensor:
    """`[batch, length, hidden]` -> `[batch, segments, tokens, hidden]`, a view: the fixed blocks of
    `mixer_inputs.block_size` tokens, else one row per token (whose segment maxima are then gathered per token)."""
    return x.unflatten(1, (-1, mixer_inputs.block_size or 1))


def segment_max_pooling(features: torch.Tensor, mixer_inputs: PoNetMixerInputs) -> torch.Tensor:
    """SMP: the elementwise max of `features` over each segment; padding never counts.

    Args:
        features: `[batch, length, hidden]`.
    Returns:
        the maxima in the layout of `_by_segment`, to broadcast against it: `[batch, length / block, 1, hidden]`
        for fixed blocks (a reshape and a max), else `[batch, length, 1, hidden]`, gathered per token from a table
        with a row per segment (at padding rows: the max over the batch's padding, never used).
    """
    batch, length, hidden = features.shape
    if mixer_inputs.block_size is not None:
        if mixer_inputs.any_blocked:
            features = features.masked_fill(~mixer_inputs.valid, torch.finfo(features.dtype).min)
        blocks = _by_segment(features, mixer_inputs)
        size = blocks.shape[2]
        if size > 4:
            return blocks.amax(dim=2, keepdim=True)
        # Small blocks: a max of slices is faster than a reduction.
        maxima = blocks[:, :, 0].clone() if size == 1 else torch.maximum(blocks[:, :, 0], blocks[:, :, 1])
        for k in range(2, size):
            torch.maximum(maxima, blocks[:, :, k], out=maxima)
        return maxima.unsqueeze(2)
    # The table has a row per possible segment; only the rows that receive a token are written or read.
    table = features.new_empty(batch * length + 1, hidden)
    table.scatter_reduce_(
        0, mixer_inputs.segment_index[:, None].expand(-1, hidden), features.reshape(batch * length, hidden), "amax",
        include_self=False,
    )
    return table.index_select(0, mixer_inputs.segment_index).view(batch, length, 1, hidden)


def local_max_pooling(features: torch.Tensor, window_size: int) -> torch.Tensor:
    """LMP: a sliding max over `window_size` tokens (stride 1, centred; edges do not count).

    Args:
        features: `[batch, length, hidden]` (strided views are fine); rows that must not count are already filled
            with the dtype minimum.
    Returns:
        a new contiguous `[batch, length, hidden]`.
    """
    out = torch.empty(features.shape, dtype=features.dtype, device=features.device)
    half = window_size // 2
    if half == 0 or features.shape[1] == 1:
        return out.copy_(features)
    _into(out[:, 1:], torch.maximum, features[:, 1:], features[:, :-1])  # with the token before ...
    out[:, :1] = features[:, :1]
    out[:, :-1].clamp_(min=features[:, 1:])  # ... and after; then further offsets, in place
    for shift in range(2, half + 1):
        out[:, shift:].clamp_(min=features[:, :-shift])
        out[:, :-shift].clamp_(min=features[:, shift:])
    return out


def _gate_factor(g: torch.Tensor, segment_max: torch.Tensor, mixer_inputs: PoNetMixerInputs) -> torch.Tensor:
    """`g + S`, S the segment maxima (`segment_max_pooling`) zeroed at blocked rows: PF's factor of the gate O, in
    the layout of `_by_segment` (a new tensor; padding rows are zeroed in the output, not here)."""
    if mixer_inputs.any_blocked and mixer_inputs.block_size is None:  # per token: CLS/SEP rows may be blocked
        segment_max = segment_max.masked_fill(mixer_inputs.blocked.unsqueeze(-1), 0)
        return segment_max.add_(g[:, None, None, :])
    return segment_max + g[:, None, None, :]


def pooling_fusion(g, out_gate, segment, local, mixer_inputs: PoNetMixerInputs, window, out=None, argmax_bits=None):
    """SMP, LMP and PF given the GA vector `g`: `Y = (g + S) * O + L`, S and L zero at blocked rows, Y zero at
    padding.

    Returns Y `[batch, length, hidden]` (written into `out` when given); with `argmax_bits`, writes
    `_local_argmax_bits` of the local max into it (for the backward).
    """
    factor = _gate_factor(g, segment_max_pooling(segment, mixer_inputs), mixer_inputs)
    if out is None:
        out = torch.empty(out_gate.shape, dtype=out_gate.dtype, device=out_gate.device)
    torch.mul(_by_segment(out_gate, mixer_inputs), factor, out=_by_segment(out, mixer_inputs))
    del factor
    # LMP over the local features with blocked rows at the dtype minimum, then zeroed at blocked rows.
    blocked = mixer_inputs.blocked
    masked_local = local.masked_fill(blocked, torch.finfo(local.dtype).min) if mixer_inputs.any_blocked else local
    pooled_local = local_max_pooling(masked_local, window)
    if argmax_bits is not None:
        _local_argmax_bits(masked_local, pooled_local, window, out=argmax_bits)
    if mixer_inputs.any_blocked:
        if mixer_inputs.block_size is None:  # blocked CLS/SEP rows keep g * O (fixed blocks: blocked = padding)
            pooled_local.masked_fill_(blocked, 0)
        return out.add_(pooled_local).masked_fill_(~mixer_inputs.valid, 0)
    return out.add_(pooled_local)


def _local_argmax_bits(features: torch.Tensor, pooled: torch.Tensor, window_size: int, out=None) -> torch.Tensor:
    """uint8 `[ceil(window / 8), batch, length, hidden]` (into `out` when given): bit `k % 8` of byte `k // 8` says
    that token `i + k - window // 2` holds the window max of token `i` (one byte per element up to window 7)."""
    half, length = window_size // 2, features.shape[1]
    if out is None:
        out = torch.empty((window_size + 7) // 8, *features.shape, dtype=torch.uint8, device=features.device)
    out.zero_()
    equal = torch.empty(features.shape, dtype=torch.uint8, device=features.device)
    for k in range(window_size):
        shift = k - half  # token i + shift
        if abs(shift) >= length:
            continue
        rows, source = slice(max(0, -shift), length - max(0, shift)), slice(max(0, shift), length + min(0, shift))
        _into(equal[:, rows], torch.eq, features[:, source], pooled[:, rows])
        out[k // 8][:, rows] |= equal[:, rows].bitwise_left_shift_(k % 8)
    return out


def _argmax_bit(bits: torch.Tensor, k: int, rows: slice = slice(None)) -> torch.Tensor:
    """Bit `k` of `_local_argmax_bits` (0 or 1, uint8) at token rows `rows`."""
    return bits[k // 8][:, rows] >> (k % 8) & 1


def _pooling_backward(grad_mixed, ko, segment, bits, g, mixer_inputs, window, grad_ko, grad_segment, grad_local):
    """The backward of `pooling_fusion`: writes dO into the gate half of `grad_ko`, dS into `grad_segment` and dLc
    into `grad_local`; returns dg (float32 `[batch, hidden]`)."""
    batch, length, hidden = segment.shape
    dtype, valid, blocked = ko.dtype, mixer_inputs.valid, mixer_inputs.blocked
    out_gate, grad_gate = ko.chunk(2, dim=-1)[1], grad_ko.chunk(2, dim=-1)[1]
    fixed, any_blocked = mixer_inputs.block_size is not None, mixer_inputs.any_blocked

    def by_segment(x):
        return _by_segment(x, mixer_inputs)

    grad = grad_mixed.masked_fill(~valid, 0) if any_blocked else grad_mixed  # padding rows of Y are constant zeros

    # The gate: dO = dY * (g + S).
    segment_max = segment_max_pooling(segment, mixer_inputs)
    _into(by_segment(grad_gate), torch.mul, by_segment(grad), _gate_factor(g, segment_max, mixer_inputs))

    # GA vector: dg = sum over tokens of dY * O. SMP: dS_max = dY * O at kept rows, summed per segment and shared
    # among the tokens that hold the max (never padding).
    work = grad * out_gate
    is_max = torch.empty(segment.shape, dtype=torch.uint8, device=segment.device)
    torch.eq(by_segment(segment), segment_max, out=by_segment(is_max))
    if fixed:
        sums = by_segment(work).sum(dim=2, keepdim=True, dtype=torch.float32)
        grad_g = sums.sum(dim=(1, 2))
        if any_blocked:
            is_max.mul_(valid.view(torch.uint8))
        ties = by_segment(is_max).sum(dim=2, keepdim=True, dtype=torch.float32).clamp_(min=1)
        torch.mul(by_segment(is_max), sums.div_(ties).to(dtype), out=by_segment(grad_segment))
    else:
        grad_g = work.sum(dim=1, dtype=torch.float32)
        if any_blocked:
            work.masked_fill_(blocked, 0)
        table = torch.zeros(batch * length + 1, hidden, dtype=dtype, device=ko.device)
        table.index_add_(0, mixer_inputs.segment_index, work.view(batch * length, hidden))
        ties = torch.zeros_like(table).index_add_(0, mixer_inputs.segment_index, is_max.view(-1, hidden).to(dtype))
        table.div_(ties.clamp_(min=1))
        torch.index_select(table, 0, mixer_inputs.segment_index, out=grad_segment.view(-1, hidden))
        grad_segment.mul_(is_max)
    del work, is_max

    # LMP: the window max's gradient goes to the tokens holding it (split among ties), none to blocked rows.
    half = window // 2
    counts = _argmax_bit(bits, 0)
    for k in range(1, window):
        counts += _argmax_bit(bits, k)
    if any_blocked and not fixed:  # CLS/SEP rows may be blocked (fixed blocks: `grad` is zero there)
        grad = grad.masked_fill(blocked, 0)
    share = grad / counts.clamp_(min=1)
    _into(grad_local, torch.mul, share, _argmax_bit(bits, half))
    for shift in range(1, half + 1):
        grad_local[:, shift:] += share[:, :-shift] * _argmax_bit(bits, half + shift, slice(None, -shift))
        grad_local[:, :-shift] += share[:, shift:] * _argmax_bit(bits, half - shift, slice(shift, None))
    return grad_g


def _global_aggregation_backward(grad_g, key, probs, mean_query, valid, num_heads, grad_key, grad_query):
    """The backward of `global_aggregation` (float32 around the softmax) from dg: writes dK into `grad_key` and dQ
    into `grad_query`. probs `[batch, length, heads]`, g = sum_l probs * K per head, scores = K . mean_query * scale.
    """
    dtype, hidden = key.dtype, key.shape[-1]
    grad_g_heads = _block_diagonal(grad_g, num_heads)  # [batch, hidden, heads]
    grad_probs = _per_head_dot(key, grad_g.to(dtype), num_heads).float()
    grad_scores = probs * (grad_probs - (probs * grad_probs).sum(dim=1, keepdim=True))
    grad_scores *= 1.0 / math.sqrt(hidden // num_heads)
    # dK = probs @ blockdiag(dg)^T + dscores @ blockdiag(mean_query)^T, as one GEMM.
    left = torch.cat([probs, grad_scores], dim=-1).to(dtype)
    right = torch.cat([grad_g_heads, _block_diagonal(mean_query.float(), num_heads)], dim=-1).transpose(1, 2)
    grad_key.copy_(torch.bmm(left, right.to(dtype)))
    grad_mean_query = _diagonal_blocks(torch.bmm(grad_scores.to(dtype).transpose(1, 2), key))
    grad_query.copy_(grad_mean_query.unsqueeze(1).expand_as(grad_query)).mul_(_mean_weights(valid, dtype))


# On CPU the pooling runs over a few examples at a time: its intermediates then stay in cache, and below the size
# (32 MiB) from which the C allocator maps fresh pages for every tensor (hundreds of page faults per megabyte).
_CPU_ROWS_ELEMENTS = 2**20


def _example_runs(batch: int, length: int, hidden: int, device: torch.device) -> list[slice]:
    """Runs of examples of about `_CPU_ROWS_ELEMENTS` elements on CPU; the whole batch elsewhere."""
    step = batch if device.type != "cpu" else max(1, _CPU_ROWS_ELEMENTS // (length * hidden))
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


def _inputs_of_examples(mixer_inputs: PoNetMixerInputs, rows: slice, length: int) -> PoNetMixerInputs:
    """`mixer_inputs` of the examples `rows` (the segment table's rows renumbered from 0)."""
    index = mixer_inputs.segment_index
    if index is not None:
        count = rows.stop - rows.start
        index = (index[rows.start * length : rows.stop * length] - rows.start * length).clamp_(max=count * length)
    return PoNetMixerInputs(mixer_inputs.valid[rows], mixer_inputs.blocked[rows], index, mixer_inputs.block_size,
                            mixer_inputs.any_blocked)


class PoNetPoolingFunction(torch.autograd.Function):
    """The pooling part of the mixer (everything after the projections) with a hand-written backward.

    Inputs are the projection GEMM outputs `ko = [K | O]` `[batch, length, 2 * hidden]` and `segment` (S)
    `[batch, length, hidden]`, which the backward needs and so are saved, and `ql = [Q | Lc]`
    `[batch, length, 2 * hidden]`, which is not saved: the backward only needs the mean query and one byte per
    element (per 8 window offsets) saying which tokens hold each window max. Autograd through the plain ops would
    instead keep several full-size masks, maxima and products per layer. Maxima shared by ties split the gradient
    evenly, as `amax` does. When `g` is given, GA was computed (and is differentiated) by autograd outside, and
    the backward returns its gradient instead of going through GA. The mixer inputs come as their fields
    (`PoNetMixerInputs`), so that torch.compile sees plain tensors and constants.
    """

    @staticmethod
    def forward(ctx, ko, segment, ql, g, valid, blocked, segment_index, block_size, any_blocked, num_heads, window):
        mixer_inputs = PoNetMixerInputs(valid, blocked, segment_index, block_size, any_blocked)
        batch, length, hidden = segment.shape
        ctx.ga_inside = g is None
        mixed = torch.empty_like(segment)
        bits = torch.empty((window + 7) // 8, batch, length, hidden, dtype=torch.uint8, device=segment.device)
        global_parts = []
        for rows in _example_runs(batch, length, hidden, segment.device):
            part = _inputs_of_examples(mixer_inputs, rows, length)
            key, out_gate = ko[rows].chunk(2, dim=-1)
            query, local = ql[rows].chunk(2, dim=-1)
            if ctx.ga_inside:
                g_rows, _, probs, mean_query = global_aggregation(query, key, part.valid, num_heads)
                global_parts.append((g_rows, probs, mean_query))
            else:
                g_rows = g[rows]
            pooling_fusion(g_rows, out_gate, segment[rows], local, part, window, out=mixed[rows],
                           argmax_bits=bits[:, rows])
        probs = mean_query = None
        if ctx.ga_inside:
            g, probs, mean_query = (torch.cat(parts) for parts in zip(*global_parts))
        ctx.save_for_backward(ko, segment, bits, probs, mean_query, g, valid, blocked, segment_index)
        ctx.block_size, ctx.any_blocked, ctx.num_heads, ctx.window = block_size, any_blocked, num_heads, window
        return mixed

    @staticmethod
    def backward(ctx, grad_mixed):
        ko, segment, bits, probs, mean_query, g, valid, blocked, segment_index = ctx.saved_tensors
        mixer_inputs = PoNetMixerInputs(valid, blocked, segment_index, ctx.block_size, ctx.any_blocked)
        batch, length, hidden = segment.shape
        grad_ko, grad_segment, grad_ql = torch.empty_like(ko), torch.empty_like(segment), torch.empty_like(ko)
        grad_g = torch.empty(batch, hidden, dtype=torch.float32, device=ko.device)
        for rows in _example_runs(batch, length, hidden, segment.device):
            part = _inputs_of_examples(mixer_inputs, rows, length)
            grad_key, _ = grad_ko[rows].chunk(2, dim=-1)
            grad_query, grad_local = grad_ql[rows].chunk(2, dim=-1)
            grad_g[rows] = _pooling_backward(grad_mixed[rows], ko[rows], segment[rows], bits[:, rows], g[rows], part,
                                             ctx.window, grad_ko[rows], grad_segment[rows], grad_local)
            if ctx.ga_inside:
                _global_aggregation_backward(grad_g[rows], ko[rows].chunk(2, dim=-1)[0], probs[rows],
                                             mean_query[rows], part.valid, ctx.num_heads, grad_key, grad_query)
        if not ctx.ga_inside:  # autograd takes dg through GA
            grad_ko.chunk(2, dim=-1)[0].zero_()
            grad_ql.chunk(2, dim=-1)[0].zero_()
            return (grad_ko, grad_segment, grad_ql, grad_g.to(g.dtype)) + (None,) * 7
        return (grad_ko, grad_segment, grad_ql) + (None,) * 8


# ----------------------------------------------------------------------------------------------------------------
# Modules, in the order data flows
# ----------------------------------------------------------------------------------------------------------------


class PoNetEmbeddings(nn.Module):
    """Word + learned absolute position + token type embeddings, then LayerNorm and dropout (as BERT)."""

    def __init__(self, config: PoNetConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns `[batch, length, hidden]`."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, length = inputs_embeds.shape[:2]
        if position_ids is None:
            position_ids = self.position_ids[:, :length]
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, length), dtype=torch.long, device=inputs_embeds.device)
        embeddings = (
            inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        )
        return self.dropout(self.LayerNorm(embeddings))


class PoNetProjectionsFunction(torch.autograd.Function):
    """The mixer's five projections of one input as three GEMMs, `[K | O]`, S and `[Q | Lc]` (rows of `weight`
    `[5 * hidden, hidden]` and `bias` in that order), with one input gradient: the backward adds the three GEMMs'
    input gradients into one tensor (`addmm_`) where three `nn.Linear` would each allocate one and autograd would
    then add them up."""

    @staticmethod
    def forward(ctx, hidden_states, weight, bias):
        hidden = weight.shape[1]
        ctx.save_for_backward(hidden_states, weight)
        rows = hidden_states.reshape(-1, hidden)
        return tuple(
            torch.addmm(bias[part], rows, weight[part].t()).view(*hidden_states.shape[:-1], -1)
            for part in _projection_parts(hidden)
        )

    @staticmethod
    def backward(ctx, *grads):
        hidden_states, weight = ctx.saved_tensors
        hidden = weight.shape[1]
        rows = hidden_states.reshape(-1, hidden)
        grad_input = None
        grad_weight, grad_bias = torch.zeros_like(weight), weight.new_zeros(weight.shape[0])
        for grad, part in zip(grads, _projection_parts(hidden)):
            if grad is None:
                continue
            grad = grad.reshape(-1, grad.shape[-1])
            if ctx.needs_input_grad[0]:
                grad_input = torch.mm(grad, weight[part]) if grad_input is None else grad_input.addmm_(grad, weight[part])
            torch.mm(grad.t(), rows, out=grad_weight[part])
            torch.sum(grad, dim=0, out=grad_bias[part])
        if grad_input is not None:
            grad_input = grad_input.view(hidden_states.shape)
        return grad_input, grad_weight, grad_bias


def _projection_parts(hidden: int) -> tuple[slice, slice, slice]:
    """The rows of `[K | O]`, S and `[Q | Lc]` in the five projections' stacked weight."""
    return slice(0, 2 * hidden), slice(2 * hidden, 3 * hidden), slice(3 * hidden, 5 * hidden)


class PoNetPoolingMixer(nn.Module):
    """The token mixer that replaces self-attention: GA, SMP and LMP fused by PF.

    `Y_h = (g_h + S_h) * O_h + L_h` per head h, where `g` is the global aggregation, `S` the segment max of
    `dense_segment(x)`, `L` the local max of `dense_local(x)` and `O = dense_o(x)`. The five projections run
    as three matrix multiplies (see `projections`); their parameters keep the published names.
    """

    def __init__(self, config: PoNetConfig):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.local_window_size = config.local_window_size
        hidden = config.hidden_size
        self.dense_q = nn.Linear(hidden, hidden)
        self.dense_k = nn.Linear(hidden, hidden)
        self.dense_o = nn.Linear(hidden, hidden)
        self.dense_segment = nn.Linear(hidden, hidden)
        self.dense_local = nn.Linear(hidden, hidden)

    def projections(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`[K | O]` `[batch, length, 2 * hidden]`, S `[batch, length, hidden]` and `[Q | Lc]` `[batch, length, 2 * hidden]`.

        Three GEMMs rather than five when the projections are plain `nn.Linear` (`PoNetProjectionsFunction`): the
        pooling's backward keeps only the first two. Wrapped projections (PEFT adapters, quantized layers) are called
        as modules, so that their wrappers take effect.
        """
        layers = (self.dense_k, self.dense_o, self.dense_segment, self.dense_q, self.dense_local)
        if any(type(layer) is not nn.Linear for layer in layers):
            key, out_gate, segment, query, local = (layer(hidden_states) for layer in layers)
            return torch.cat([key, out_gate], dim=-1), segment, torch.cat([query, local], dim=-1)
        weight = torch.cat([layer.weight for layer in layers])
        bias = torch.cat([layer.bias for layer in layers])
        device_type = hidden_states.device.type
        if torch.is_autocast_enabled(device_type):
            # One cast for the three GEMMs: autocast would cast the input once per GEMM (and, in the backward,
            # cast each GEMM's input gradient back and add the three in float32).
            dtype = torch.get_autocast_dtype(device_type)
            hidden_states, weight, bias = hidden_states.to(dtype), weight.to(dtype), bias.to(dtype)
        return PoNetProjectionsFunction.apply(hidden_states, weight, bias)

    def forward(
        self, hidden_states: torch.Tensor, mixer_inputs: PoNetMixerInputs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`[batch, length, hidden]` -> mixed `[batch, length, hidden]` and, with `mixer_inputs.output_attentions`,
        the GA probabilities `[batch, heads, length]` (else None)."""
        ko, segment, ql = self.projections(hidden_states)
        key, out_gate = ko.chunk(2, dim=-1)
        query, local = ql.chunk(2, dim=-1)
        heads, window = self.num_attention_heads, self.local_window_size
        output_attentions = mixer_inputs.output_attentions
        fields = (mixer_inputs.valid, mixer_inputs.blocked, mixer_inputs.segment_index, mixer_inputs.block_size,
                  mixer_inputs.any_blocked, heads, window)
        training = torch.is_grad_enabled() and (ko.requires_grad or segment.requires_grad or ql.requires_grad)
        if training and not output_attentions:  # all four parts with the hand-written backward
            return PoNetPoolingFunction.apply(ko, segment, ql, None, *fields), None
        # Global aggregation (GA) through autograd: the probabilities it returns are what `g` is computed from.
        g, attentions = global_aggregation(query, key, mixer_inputs.valid, heads)[:2]
        if training:  # segment max-pooling, local max-pooling and pooling fusion with the hand-written backward
            mixed = PoNetPoolingFunction.apply(ko, segment, ql, g, *fields)
        else:  # segment max-pooling (SMP), local max-pooling (LMP) and pooling fusion (PF)
            mixed = pooling_fusion(g, out_gate, segment, local, mixer_inputs, window)
        return mixed, attentions if output_attentions else None


# Copied from transformers.models.bert.modeling_bert.BertSelfOutput with Bert->PoNet
class PoNetSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class PoNetAttention(nn.Module):
    """The mixing block: `LN(x + Drop(Dense(Mix(x))))`. Named `attention` for checkpoint compatibility."""

    def __init__(self, config: PoNetConfig):
        super().__init__()
        self.self = PoNetPoolingMixer(config)
        self.output = PoNetSelfOutput(config)

    def forward(self, hidden_states, mixer_inputs):
        mixed, attention_probs = self.self(hidden_states, mixer_inputs)
        return self.output(mixed, hidden_states), attention_probs


# Copied from transformers.models.bert.modeling_bert.BertIntermediate with Bert->PoNet
class PoNetIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        if isinstance(config.hidden_act, str):
            self.intermediate_act_fn = ACT2FN[config.hidden_act]
        else:
            self.intermediate_act_fn = config.hidden_act

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.intermediate_act_fn(hidden_states)
        return hidden_states


# Copied from transformers.models.bert.modeling_bert.BertOutput with Bert->PoNet
class PoNetOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class PoNetLayer(GradientCheckpointingLayer):
    """One post-LayerNorm PoNet layer: pooling mixer block, then feed-forward block."""

    def __init__(self, config: PoNetConfig):
        super().__init__()
        self.attention = PoNetAttention(config)
        self.intermediate = PoNetIntermediate(config)
        self.output = PoNetOutput(config)

    def forward(self, hidden_states: torch.Tensor, mixer_inputs: PoNetMixerInputs):
        """`[batch, length, hidden]` -> (`[batch, length, hidden]`, GA probabilities `[batch, heads, length]` or None)."""
        attention_output, attention_probs = self.attention(hidden_states, mixer_inputs)
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return layer_output, attention_probs


class PoNetEncoder(nn.Module):
    def __init__(self, config: PoNetConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([PoNetLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        mixer_inputs: PoNetMixerInputs,
        output_hidden_states: bool = False,
    ) -> BaseModelOutput:
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if mixer_inputs.output_attentions else None
        for layer in self.layer:
            hidden_states, attention_probs = layer(hidden_states, mixer_inputs)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
            if mixer_inputs.output_attentions:
                all_attentions = all_attentions + (attention_probs,)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


# Copied from transformers.models.bert.modeling_bert.BertPooler with Bert->PoNet
class PoNetPooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # We "pool" the model by simply taking the hidden state corresponding
        # to the first token.
        first_token_tensor = hidden_states[:, 0]
        pooled_output = self.dense(first_token_tensor)
        pooled_output = self.activation(pooled_output)
        return pooled_output


# Copied from transformers.models.bert.modeling_bert.BertPredictionHeadTransform with Bert->PoNet
class PoNetPredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        if isinstance(config.hidden_act, str):
            self.transform_act_fn = ACT2FN[config.hidden_act]
        else:
            self.transform_act_fn = config.hidden_act
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.transform_act_fn(hidden_states)
        hidden_states = self.LayerNorm(hidden_states)
        return hidden_states


# Copied from transformers.models.bert.modeling_bert.BertLMPredictionHead with Bert->PoNet
class PoNetLMPredictionHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.transform = PoNetPredictionHeadTransform(config)

        # The output weights are the same as the input embeddings, but there is
        # an output-only bias for each token.
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def _tie_weights(self):
        # transformers 4 ties the decoder bias through this hook; 5 through `_tied_weights_keys` (and never calls it)
        self.decoder.bias = self.bias

    def forward(self, hidden_states):
        hidden_states = self.transform(hidden_states)
        hidden_states = self.decoder(hidden_states)
        return hidden_states


# Copied from transformers.models.bert.modeling_bert.BertOnlyMLMHead with Bert->PoNet
class PoNetOnlyMLMHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.predictions = PoNetLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        prediction_scores = self.predictions(sequence_output)
        return prediction_scores


class PoNetPreTrainingHeads(nn.Module):
    """MLM head and the 3-way sentence structural objective (SSO) head (BERT's has a 2-way NSP head)."""

    def __init__(self, config: PoNetConfig):
        super().__init__()
        self.predictions = PoNetLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 3)

    def forward(self, sequence_output, pooled_output):
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)

# ----------------------------------------------------------------------------------------------------------------
# Pretrained model base and the bare model
# ----------------------------------------------------------------------------------------------------------------


class PoNetPreTrainedModel(PreTrainedModel):
    config_class = PoNetConfig
    config: PoNetConfig
    base_model_prefix = "ponet"
    supports_gradient_checkpointing = True
    _no_split_modules = ["PoNetEmbeddings", "PoNetLayer"]
    # The published checkpoint stores the (non-persistent here) position id buffer.
    _keys_to_ignore_on_load_unexpected = [r"position_ids"]

    @torch.no_grad()
    def _init_weights(self, module):
        # BERT's initialisation, written out: transformers 4 before 4.54 has no default one to inherit.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            # a slice loses transformers 5's initialised flag, so check it on the weight (as transformers does)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if isinstance(module, PoNetLMPredictionHead):
            init.zeros_(module.bias)
        elif isinstance(module, PoNetEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
        elif isinstance(module, SequencePooler) and hasattr(module, "attention_query"):
            init.normal_(module.attention_query, mean=0.0, std=self.config.initializer_range)

    def resize_position_embeddings(self, new_num_position_embeddings: int):
        """Extend (or cut) the learned position table to `new_num_position_embeddings` rows.

        Longer tables are filled by tiling the learned rows (row `i` copies row `i % old_size`), as the published
        long-document models were built from the 512-position checkpoint. Updates `config.max_position_embeddings`.
        """
        embeddings = self.base_model.embeddings
        old = embeddings.position_embeddings.weight
        old_size = old.shape[0]
        if new_num_position_embeddings == old_size:
            return
        if new_num_position_embeddings < 1:
            raise ValueError(f"`new_num_position_embeddings` must be positive, got {new_num_position_embeddings}")
        rows = torch.arange(new_num_position_embeddings, device=old.device) % old_size
        new = nn.Embedding(new_num_position_embeddings, old.shape[1], device=old.device, dtype=old.dtype)
        with torch.no_grad():
            new.weight.copy_(old[rows])
        embeddings.position_embeddings = new
        embeddings.register_buffer(
            "position_ids",
            torch.arange(new_num_position_embeddings, device=old.device).expand((1, -1)),
            persistent=False,
        )
        self.config.max_position_embeddings = new_num_position_embeddings
        logger.info(
            f"Resized the position table from {old_size} to {new_num_position_embeddings} rows by tiling the learned rows"
        )

    def get_position_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.position_embeddings


class PoNetModel(PoNetPreTrainedModel):
    """The bare PoNet encoder, returning token states and (optionally) the pooled first token."""

    def __init__(self, config: PoNetConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.config = config
        self.embeddings = PoNetEmbeddings(config)
        self.encoder = PoNetEncoder(config)
        self.pooler = PoNetPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> tuple | BaseModelOutputWithPooling:
        r"""
        Args:
            input_ids (`torch.LongTensor` `[batch, length]`): token ids (or pass `inputs_embeds`).
            attention_mask (`[batch, length]`): 1 for real tokens, 0 for padding.
            token_type_ids (`torch.LongTensor` `[batch, length]`): sentence A/B ids.
            segment_ids (`torch.LongTensor` `[batch, length]`): segments for segment max-pooling (e.g. sentence
                ids), non-decreasing per row. When absent: fixed blocks of `config.segment_size` if set, else
                derived from the CLS/SEP ids, else (with `inputs_embeds` only) one segment.
            position_ids (`torch.LongTensor` `[batch, length]`): positions (default `0 .. length - 1`).
            inputs_embeds (`[batch, length, hidden]`): embeddings instead of `input_ids`.
            output_attentions: also return the global-aggregation probabilities of every layer,
                each `[batch, heads, length]`.
            output_hidden_states: also return the embeddings and every layer's output, each `[batch, length, hidden]`.
            return_dict: `False` for a tuple of the non-None outputs (as every transformers model).

        Returns:
            `BaseModelOutputWithPooling`: `last_hidden_state` `[batch, length, hidden]`, `pooler_output`
            `[batch, hidden]` (None without a pooler), `hidden_states`, `attentions`.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )

        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if input_ids is not None:
            self.warn_if_padding_and_no_attention_mask(input_ids, attention_mask)
            batch, length = input_ids.shape
            device = input_ids.device
        else:
            batch, length = inputs_embeds.shape[:2]
            device = inputs_embeds.device
        if position_ids is None and length > self.config.max_position_embeddings:
            raise ValueError(
                f"The input has {length} tokens but the position table has {self.config.max_position_embeddings} "
                "rows (`config.max_position_embeddings`): truncate the input (e.g. `max_length`) or extend the "
                "table with `model.resize_position_embeddings(n)`"
            )

        mixer_inputs = build_mixer_inputs(
            self.config, input_ids, attention_mask, segment_ids, batch, length, device, output_attentions
        )
        embedding_output = self.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
        )
        encoder_outputs = self.encoder(
            embedding_output,
            mixer_inputs,
            output_hidden_states=output_hidden_states,
        )
        sequence_output = encoder_outputs.last_hidden_state
        pooled_output = self.pooler(sequence_output) if self.pooler is not None else None
        return BaseModelOutputWithPooling(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
        )


# ----------------------------------------------------------------------------------------------------------------
# Task heads
# ----------------------------------------------------------------------------------------------------------------


def labelled_tokens(sequence_output: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse prediction: the states `[n, hidden]` and labels `[n]` of the n tokens whose label is not -100
    (row-major order). The MLM loss only scores these, so the head need not run anywhere else."""
    scored = labels != -100
    return sequence_output[scored], labels[scored]


@dataclass
class PoNetForPreTrainingOutput(ModelOutput):
    """
    Output of [`PoNetForPreTraining`].

    Args:
        loss (`torch.FloatTensor` `()`, with labels): `mlm_loss + sso_loss` (of the labels given).
        mlm_loss (`torch.FloatTensor` `()`, with `labels`): masked language modelling loss.
        sso_loss (`torch.FloatTensor` `()`, with `sentence_structural_label`): sentence structural objective loss.
        prediction_logits (`[batch, length, vocab_size]`): MLM scores. With `config.sparse_prediction` and `labels`,
            `[labelled tokens, vocab_size]`: the scores of the tokens with a label, in row-major order.
        seq_relationship_logits (`[batch, 3]`): SSO scores (0 = in order, 1 = swapped, 2 = from another document).
        hidden_states, attentions: as in [`PoNetModel`].
    """

    loss: torch.FloatTensor | None = None
    mlm_loss: torch.FloatTensor | None = None
    sso_loss: torch.FloatTensor | None = None
    prediction_logits: torch.FloatTensor | None = None
    seq_relationship_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class PoNetForPreTraining(PoNetPreTrainedModel):
    """PoNet with the pretraining heads: masked language modelling + the 3-way sentence structural objective."""

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "ponet.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: PoNetConfig):
        super().__init__(config)
        self.ponet = PoNetModel(config)
        self.cls = PoNetPreTrainingHeads(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        segment_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        sentence_structural_label=None,
        **kwargs,
    ) -> tuple | PoNetForPreTrainingOutput:
        r"""
        labels (`torch.LongTensor` `[batch, length]`): MLM targets, -100 where no prediction is scored. With
            `config.sparse_prediction`, the MLM head runs at the labelled tokens only (see `prediction_logits`).
        sentence_structural_label (`torch.LongTensor` `[batch]`): SSO targets in {0, 1, 2}.
        """
        outputs = self.ponet(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            segment_ids=segment_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        sequence_output = outputs.last_hidden_state
        if self.config.sparse_prediction and labels is not None:
            sequence_output, labels = labelled_tokens(sequence_output, labels)
        prediction_scores, sso_scores = self.cls(sequence_output, outputs.pooler_output)

        mlm_loss = sso_loss = total_loss = None
        loss_fct = CrossEntropyLoss()
        if labels is not None:
            mlm_loss = loss_fct(prediction_scores.view(-1, self.config.vocab_size), labels.view(-1))
        if sentence_structural_label is not None:
            sso_loss = loss_fct(sso_scores.view(-1, 3), sentence_structural_label.view(-1))
        if mlm_loss is not None or sso_loss is not None:
            total_loss = sum(loss for loss in (mlm_loss, sso_loss) if loss is not None)

        return PoNetForPreTrainingOutput(
            loss=total_loss,
            mlm_loss=mlm_loss,
            sso_loss=sso_loss,
            prediction_logits=prediction_scores,
            seq_relationship_logits=sso_scores,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class PoNetForMaskedLM(PoNetPreTrainedModel):
    """PoNet with the masked language modelling head (no pooler)."""

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "ponet.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: PoNetConfig):
        super().__init__(config)
        self.ponet = PoNetModel(config, add_pooling_layer=False)
        self.cls = PoNetOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        segment_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        **kwargs,
    ) -> tuple | MaskedLMOutput:
        r"""
        labels (`torch.LongTensor` `[batch, length]`): MLM targets, -100 where no prediction is scored.

        Returns `MaskedLMOutput` with `logits` `[batch, length, vocab_size]`; with `config.sparse_prediction` and
        `labels`, `[labelled tokens, vocab_size]` (the tokens with a label, row-major), computed only there.
        """
        outputs = self.ponet(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            segment_ids=segment_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        sequence_output = outputs.last_hidden_state
        if self.config.sparse_prediction and labels is not None:
            sequence_output, labels = labelled_tokens(sequence_output, labels)
        prediction_scores = self.cls(sequence_output)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(prediction_scores.view(-1, self.config.vocab_size), labels.view(-1))
        return MaskedLMOutput(
            loss=loss, logits=prediction_scores, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class PoNetSequencePoolingMixin:
    """Shared by the sequence-level heads: one vector per sequence, as `config.classifier_pooling` says.

    `cls` is the published pooler (`tanh(Dense(h[:, 0]))`); the other modes come from `SequencePooler`.
    The model only builds a pooler when `cls` is among the modes.
    """

    def _build_sequence_pooling(self, config: PoNetConfig):
        modes = parse_pooling_modes(config.classifier_pooling)
        self.ponet = PoNetModel(config, add_pooling_layer="cls" in modes)
        self.pooling = SequencePooler(config.hidden_size, modes)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        return self.pooling.output_size

    def _pool(self, outputs, attention_mask):
        return self.pooling(outputs.last_hidden_state, attention_mask, cls_output=outputs.pooler_output)


class PoNetForSequenceClassification(PoNetSequencePoolingMixin, PoNetPreTrainedModel):
    """PoNet with a classification/regression head on the pooled sequence (`config.classifier_pooling`)."""

    def __init__(self, config: PoNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        pooled_size = self._build_sequence_pooling(config)
        self.classifier = nn.Linear(pooled_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        segment_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        **kwargs,
    ) -> tuple | SequenceClassifierOutput:
        r"""
        labels (`[batch]`, or `[batch, num_labels]` for multi-label): class ids in `[0, num_labels)`; float targets
            when `num_labels == 1` (regression). `config.problem_type` is inferred as in BERT when unset.
        """
        outputs = self.ponet(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            segment_ids=segment_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(self._pool(outputs, attention_mask)))

        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif self.num_labels > 1 and labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss_fct = MSELoss()
                loss = loss_fct(logits.squeeze(), labels.squeeze()) if self.num_labels == 1 else loss_fct(logits, labels)
            elif self.config.problem_type == "single_label_classification":
                loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits, labels)

        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class PoNetForMultipleChoice(PoNetSequencePoolingMixin, PoNetPreTrainedModel):
    """PoNet with a multiple-choice head: one score per (question, choice) sequence, softmax over choices."""

    def __init__(self, config: PoNetConfig):
        super().__init__(config)
        pooled_size = self._build_sequence_pooling(config)
        self.classifier = nn.Linear(pooled_size, 1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        segment_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        **kwargs,
    ) -> tuple | MultipleChoiceModelOutput:
        r"""
        Inputs are `[batch, num_choices, length]` (`inputs_embeds`: `[batch, num_choices, length, hidden]`).
        labels (`torch.LongTensor` `[batch]`): the index of the right choice.
        """
        reference = input_ids if input_ids is not None else inputs_embeds
        num_choices = reference.shape[1]

        def flat(t):
            return None if t is None else t.reshape(-1, *t.shape[2:])

        attention_mask = flat(attention_mask)
        outputs = self.ponet(
            flat(input_ids),
            attention_mask=attention_mask,
            token_type_ids=flat(token_type_ids),
            segment_ids=flat(segment_ids),
            position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds),
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(self._pool(outputs, attention_mask)))
        reshaped_logits = logits.view(-1, num_choices)
        loss = CrossEntropyLoss()(reshaped_logits, labels) if labels is not None else None

        return MultipleChoiceModelOutput(
            loss=loss, logits=reshaped_logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class PoNetForTokenClassification(PoNetPreTrainedModel):
    """PoNet with a per-token classification head (no pooler)."""

    def __init__(self, config: PoNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.ponet = PoNetModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        segment_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        **kwargs,
    ) -> tuple | TokenClassifierOutput:
        r"""labels (`torch.LongTensor` `[batch, length]`): class ids, -100 where no prediction is scored."""
        outputs = self.ponet(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            segment_ids=segment_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1)) if labels is not None else None
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class PoNetForQuestionAnswering(PoNetPreTrainedModel):
    """PoNet with a span-extraction head: start and end logits per token (no pooler)."""

    def __init__(self, config: PoNetConfig):
        super().__init__(config)
        self.num_labels = 2
        self.ponet = PoNetModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        segment_ids=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        **kwargs,
    ) -> tuple | QuestionAnsweringModelOutput:
        r"""start_positions / end_positions (`torch.LongTensor` `[batch]`): the answer span; out-of-range is ignored."""
        outputs = self.ponet(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            segment_ids=segment_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).split(1, dim=-1)
        start_logits = start_logits.squeeze(-1).contiguous()
        end_logits = end_logits.squeeze(-1).contiguous()

        total_loss = None
        if start_positions is not None and end_positions is not None:
            ignored_index = start_logits.size(1)
            start_positions = start_positions.view(-1).clamp(0, ignored_index)
            end_positions = end_positions.view(-1).clamp(0, ignored_index)
            loss_fct = CrossEntropyLoss(ignore_index=ignored_index)
            total_loss = (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2

        return QuestionAnsweringModelOutput(
            loss=total_loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "PoNetForMaskedLM",
    "PoNetForMultipleChoice",
    "PoNetForPreTraining",
    "PoNetForPreTrainingOutput",
    "PoNetForQuestionAnswering",
    "PoNetForSequenceClassification",
    "PoNetForTokenClassification",
    "PoNetModel",
    "PoNetPreTrainedModel",
]
