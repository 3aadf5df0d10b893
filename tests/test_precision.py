"""PoNet in low precision on CPU: bf16 autocast, bf16 weights and dynamic int8 give outputs close to float32 on
padded batches, padding stays invisible to real tokens, and a bf16-autocast training step gives float32's gradients
up to rounding.

Tolerances (max / mean absolute difference of the last hidden state over real tokens, outputs have unit scale after
LayerNorm): bf16 autocast 0.05 / 0.01, bf16 weights 0.1 / 0.015, int8 0.25 / 0.04; measured on this tiny model:
0.016 / 0.0024, 0.041 / 0.0051 and 0.088 / 0.015. The weights are initialised 5x larger than the default
(`initializer_range=0.1`) so that every layer's update is as large as its residual: with the default init the
float32 residual stream hides most low-precision error. Each precision is also compared with the same network
with the pooling removed ("floor"): PoNet's error must stay within 2x of the floor's, i.e. the pooling adds no
precision loss of its own beyond the network's matrix multiplies.
"""

import copy
import sys
from pathlib import Path

import pytest
import torch
from tolerance import assert_close
from torch import nn

from modeling_ponet import PoNetForPreTraining, PoNetForSequenceClassification, PoNetModel
from modeling_ponet.modeling_ponet import PoNetPoolingFunction, global_aggregation
from ponet_training.inference.precision import in_precision
from ponet_training.inference.quantization import quantize_dynamic_int8

# benchmarks/ is a folder of scripts, not a package (pysbd installs an unrelated top-level `benchmarks` package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from speed_measure import floor_mixer_class  # noqa: E402


CLS, SEP, PAD = 2, 3, 0  # tiny_tokenizer's ids
LENGTHS = [7, 120, 200]  # real tokens per row: heavy padding, a medium row, a row without padding
TOLERANCES = {"bf16_autocast": (0.05, 0.01), "bf16_weights": (0.1, 0.015), "int8": (0.25, 0.04)}


def padded_batch(vocab_size: int, seed: int = 0):
    """[CLS] words ... [SEP] rows of `LENGTHS` real tokens (with a few inner [SEP]s: several segments), right-padded."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (len(LENGTHS), max(LENGTHS)), generator=generator)
    ids[:, 0] = CLS
    for row, n in enumerate(LENGTHS):
        inner = ids[row, 1 : n - 1]
        inner[torch.rand(inner.shape, generator=generator) < 0.05] = SEP
        ids[row, n - 1] = SEP
        ids[row, n:] = PAD
    return ids, (ids != PAD).long()


def without_pooling(model: PoNetModel) -> PoNetModel:
    floor = copy.deepcopy(model)
    mixer_class = floor_mixer_class()
    for layer in floor.encoder.layer:
        layer.attention.self = mixer_class(layer.attention.self)
    return floor


def last_hidden(model, precision, ids, mask, **kwargs):
    model, context = in_precision(model, precision)
    with torch.no_grad(), context:
        return model(ids, attention_mask=mask, **kwargs).last_hidden_state.float()


@pytest.fixture
def model_and_batch(tiny_config):
    config = tiny_config(hidden_dropout_prob=0.0, initializer_range=0.1, max_position_embeddings=256)
    model = PoNetModel(config).eval()
    return model, *padded_batch(config.vocab_size)


@pytest.mark.parametrize("precision", list(TOLERANCES))
def test_low_precision_output_is_close_to_fp32_on_real_tokens(model_and_batch, precision):
    model, ids, mask = model_and_batch
    reference = last_hidden(model, "fp32", ids, mask)
    out = last_hidden(model, precision, ids, mask)
    error = (out - reference)[mask.bool()].abs()
    assert torch.isfinite(out).all()
    max_tolerance, mean_tolerance = TOLERANCES[precision]
    assert error.max() <= max_tolerance and error.mean() <= mean_tolerance, (error.max(), error.mean())


@pytest.mark.parametrize("precision", list(TOLERANCES))
def test_the_pooling_adds_no_low_precision_error_beyond_the_floor_networks(model_and_batch, precision):
    model, ids, mask = model_and_batch
    real = mask.bool()
    errors = {}
    for name, network in (("ponet", model), ("floor", without_pooling(model))):
        reference = last_hidden(network, "fp32", ids, mask)
        errors[name] = (last_hidden(network, precision, ids, mask) - reference)[real].abs().mean()
    assert errors["ponet"] <= 2 * errors["floor"], errors


@pytest.mark.parametrize("precision", ["bf16_autocast", "bf16_weights"])
def test_in_bf16_padding_never_reaches_real_tokens(model_and_batch, precision):
    """Exact in bf16 as in fp32: garbage in the padding, or no padding at all, leaves the real tokens unchanged."""
    model, ids, mask = model_and_batch
    padded = last_hidden(model, precision, ids, mask)
    garbage = ids.masked_fill(mask == 0, 7)
    # exact: the same shapes take the same kernels and the same order of sums, and padding enters only as exact zeros
    assert torch.equal(last_hidden(model, precision, garbage, mask)[mask.bool()], padded[mask.bool()])
    for row, n in enumerate(LENGTHS[:2]):
        alone = last_hidden(model, precision, ids[row : row + 1, :n], mask[row : row + 1, :n])
        # Another shape may take another kernel: in bf16 the rounding of each op's output (sums accumulate in float32)
        # sets the bound, a few bf16 steps at the largest magnitude (one step is 1.6e-2 at |x| in [2, 4)).
        assert_close(alone[0], padded[row, :n], dtype=torch.bfloat16)


def test_in_int8_padding_moves_real_tokens_only_within_the_int8_tolerance(model_and_batch):
    """Dynamic int8 scales each GEMM's input by its largest value over the whole batch, padding rows included, so
    padding changes real tokens by rounding (not exact as in bf16), never by more than int8's own error."""
    model, ids, mask = model_and_batch
    quantized = quantize_dynamic_int8(model)
    padded = last_hidden(quantized, "fp32", ids, mask)
    garbage = ids.masked_fill(mask == 0, 7)
    max_tolerance, _ = TOLERANCES["int8"]
    assert (last_hidden(quantized, "fp32", garbage, mask) - padded)[mask.bool()].abs().max() <= max_tolerance
    n = LENGTHS[0]
    alone = last_hidden(quantized, "fp32", ids[:1, :n], mask[:1, :n])
    assert (alone[0] - padded[0, :n]).abs().max() <= max_tolerance


@pytest.mark.parametrize("precision", ["bf16_autocast", "bf16_weights"])
def test_bf16_global_aggregation_probabilities_ignore_padding_and_sum_to_one(model_and_batch, precision):
    model, ids, mask = model_and_batch
    model, context = in_precision(model, precision)
    with torch.no_grad(), context:
        attentions = model(ids, attention_mask=mask, output_attentions=True).attentions
    for probs in attentions:  # [batch, heads, length]
        probs = probs.float()
        assert torch.isfinite(probs).all()
        assert (probs * (1 - mask[:, None, :])).abs().max() == 0  # masked out, not small: exact
        # each probability rounded to bf16 (relative 2**-8) moves a sum of 1 by at most 3.9e-3: 2e-2 is 5x that
        assert torch.allclose(probs.sum(-1), torch.ones_like(probs.sum(-1)), atol=2e-2)


def test_bf16_autocast_training_step_gives_fp32_gradients_up_to_rounding(tiny_config):
    config = tiny_config(hidden_dropout_prob=0.0, initializer_range=0.1, max_position_embeddings=256)
    model = PoNetForPreTraining(config).train()
    ids, mask = padded_batch(config.vocab_size)
    labels = ids.masked_fill(mask == 0, -100)

    def loss_and_gradients(autocast: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(ids, attention_mask=mask, labels=labels, sentence_structural_label=torch.tensor([0, 2, 1]))
        out.loss.backward()
        return out.loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss32, grads32 = loss_and_gradients(False)
    loss16, grads16 = loss_and_gradients(True)
    assert grads16.keys() == grads32.keys()
    assert abs(loss16 - loss32) <= 0.01 * abs(loss32)
    for name, grad in grads32.items():
        assert grads16[name].dtype == torch.float32 and torch.isfinite(grads16[name]).all(), name
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), grads16[name].flatten(), dim=0)
        assert cosine >= 0.99, (name, cosine)


def test_int8_quantizes_every_linear_layer_and_leaves_the_original_model_alone(tiny_config):
    config = tiny_config(hidden_dropout_prob=0.0, initializer_range=0.1, max_position_embeddings=256, num_labels=3)
    model = PoNetForSequenceClassification(config).eval()
    ids, mask = padded_batch(config.vocab_size)
    with torch.no_grad():
        before = model(ids, attention_mask=mask).logits
        quantized = quantize_dynamic_int8(model)
        after = model(ids, attention_mask=mask).logits
        logits = quantized(ids, attention_mask=mask).logits
    assert torch.equal(before, after)  # the original model is untouched
    assert not [name for name, module in quantized.named_modules() if type(module) is nn.Linear]
    assert (logits - before).abs().max() <= TOLERANCES["int8"][0]


def test_int8_quantizes_a_bare_linear_layer_too():
    linear = nn.Linear(16, 8)
    quantized = quantize_dynamic_int8(linear)
    assert type(quantized) is not nn.Linear and type(linear) is nn.Linear
    x = torch.randn(4, 16)
    # int8 steps of the input (max|x| / 127 ~ 0.03) and weights, over 16 terms of unit scale: ~0.01; 0.05 leaves 5x
    assert (quantized(x) - linear(x)).abs().max() <= 0.05


def test_int8_refuses_models_it_cannot_quantize(tiny_config):
    model = PoNetModel(tiny_config())
    with pytest.raises(ValueError, match="float32"):
        quantize_dynamic_int8(copy.deepcopy(model).to(torch.bfloat16))
    with pytest.raises(ValueError, match="CPU"):
        quantize_dynamic_int8(model.to("meta"))


def test_bf16_masked_mean_counts_long_rows_exactly():
    """257 tokens are 257 (bfloat16 holds integers exactly only up to 256): the mean of 257 threes is 3."""
    n = 257
    query = torch.full((1, n, 8), 3.0, dtype=torch.bfloat16)
    key = torch.randn(1, n, 8).to(torch.bfloat16)
    mean_query = global_aggregation(query, key, torch.ones(1, n, 1, dtype=torch.bool), num_heads=2)[3]
    assert torch.equal(mean_query, torch.full_like(mean_query, 3.0))


def test_bf16_hand_written_backward_divides_the_mean_gradient_by_the_true_count():
    """The backward of the masked mean over 257 tokens divides by 257, not 256. A case worked out by hand (one
    head per channel, zero queries, the first token's key 1 and the others 0, upstream gradient 1, gate 1 but 0 at
    the last token so that the GA output's gradient is 256, exact in bfloat16): the mean query's gradient is
    256**2 / 257**2 per channel, so every token's query gradient is 256**2 / 257**3."""
    n, hidden = 257, 4
    ko = torch.ones(1, n, 2 * hidden, dtype=torch.bfloat16)  # [K | O]
    ko[:, 1:, :hidden] = 0
    ko[:, -1, hidden:] = 0
    ql = torch.zeros(1, n, 2 * hidden, dtype=torch.bfloat16, requires_grad=True)  # [Q | Lc]
    segment = torch.zeros(1, n, hidden, dtype=torch.bfloat16)
    valid = torch.ones(1, n, 1, dtype=torch.bool)
    segment_index = torch.zeros(n, dtype=torch.long)
    mixed = PoNetPoolingFunction.apply(ko, segment, ql, None, valid, ~valid, segment_index, None, False, hidden, 3)
    mixed.sum().backward()
    query_gradient = ql.grad[..., :hidden]
    assert torch.equal(query_gradient, torch.full_like(query_gradient, 256**2 / 257**3))


def test_in_precision_copies_for_bf16_weights_and_names_unknown_precisions(tiny_config):
    model = PoNetModel(tiny_config())
    cast, _ = in_precision(model, "bf16_weights")
    assert cast is not model and next(cast.parameters()).dtype == torch.bfloat16
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="fp16.*choose from fp32, bf16_autocast, bf16_weights, int8"):
        in_precision(model, "fp16")
