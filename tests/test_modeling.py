"""PoNet model: exact published semantics (against a naive reference written from the paper's equations), invariances,
half precision, checkpoint names, heads and losses, gradient checkpointing, errors."""

import dataclasses
import math

import pytest
import torch
from tolerance import assert_close
from safetensors.torch import save_file
from torch.nn import functional as F

import modeling_ponet as mp
from modeling_ponet import (
    PoNetConfig,
    PoNetForMaskedLM,
    PoNetForMultipleChoice,
    PoNetForPreTraining,
    PoNetForQuestionAnswering,
    PoNetForSequenceClassification,
    PoNetForTokenClassification,
    PoNetModel,
)
from modeling_ponet.modeling_ponet import build_mixer_inputs

from conftest import (CLS, PAD, REDUCTION, SEP, make_batch, naive_forward, naive_segments_from_special,
                      random_weights)


@pytest.fixture
def model_for(tiny_config):
    def make(**kwargs):
        kwargs.setdefault("hidden_dropout_prob", 0.0)
        return random_weights(PoNetModel(tiny_config(**kwargs))).eval()

    return make


# ------------------------------------------------------------------------------------------------------------
# Parity with the naive reference
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clsgsepg", [True, False])
def test_matches_naive_reference_with_padding_and_derived_segments(model_for, clsgsepg):
    model = model_for(clsgsepg=clsgsepg)
    ids, mask = make_batch()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_attentions=True)
        ref, ref_probs = naive_forward(model, ids, mask)
    real = mask.bool()
    assert_close(out.last_hidden_state[real], ref[real], reduction=REDUCTION)
    for probs, expected in zip(out.attentions, ref_probs):
        assert probs.shape == (2, 4, 12)
        assert_close(probs, expected, reduction=REDUCTION)
        assert probs[0, :, 6:].abs().max() == 0  # padding gets no attention


def test_matches_naive_reference_without_padding_or_mask(model_for):
    model = model_for()
    ids = make_batch()[0][1:]
    with torch.no_grad():
        assert_close(model(ids).last_hidden_state, naive_forward(model, ids)[0], reduction=REDUCTION)


@pytest.mark.parametrize("clsgsepg", [True, False])
def test_matches_naive_reference_with_explicit_segment_ids(model_for, clsgsepg):
    model = model_for(clsgsepg=clsgsepg)
    ids, mask = make_batch()
    # sentence-level ids with gaps (7 -> compacted), CLS sharing the first sentence, padding sharing the last id
    segments = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 2, 2, 2, 2, 7, 7, 7, 9, 9, 9, 9]])
    with torch.no_grad():
        out = model(ids, attention_mask=mask, segment_ids=segments).last_hidden_state
        ref = naive_forward(model, ids, mask, segment_ids=segments)[0]
        derived = model(ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert_close(out[real], ref[real], reduction=REDUCTION)
    assert (out - derived)[real].abs().max() > 1e-3  # the segments really are used


@pytest.mark.parametrize("segment_size, length", [(4, 13), (4, 12), (2, 12), (3, 12), (6, 12), (12, 12), (20, 12)])
def test_matches_naive_reference_with_fixed_segment_size(model_for, segment_size, length):
    # Blocks that divide the length take the reshape-and-max path, the others (13 tokens) the segment table.
    model = model_for(segment_size=segment_size, clsgsepg=False)
    ids = torch.randint(5, 200, (2, length))  # LRA-style: the CLS/SEP ids are ordinary tokens (bytes, pixels) there
    ids[:, 0], ids[:, 5] = CLS, SEP
    mask = torch.ones_like(ids)
    mask[0, 9:] = 0
    with torch.no_grad():
        out = model(ids, attention_mask=mask).last_hidden_state
        ref = naive_forward(model, ids, mask)[0]
    assert_close(out[mask.bool()], ref[mask.bool()], reduction=REDUCTION)


def test_inputs_embeds_without_segment_info_uses_one_segment(model_for):
    model = model_for()
    embeds = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        out = model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        ref = naive_forward(model, inputs_embeds=embeds, attention_mask=mask)[0]
    assert_close(out[mask.bool()], ref[mask.bool()], reduction=REDUCTION)


def test_input_ids_and_their_embeddings_agree_when_segments_are_given(model_for):
    model = model_for(clsgsepg=False)
    ids, mask = make_batch()
    segments = mp.modeling_ponet.segment_ids_from_special_tokens((ids == CLS) | (ids == SEP))
    with torch.no_grad():
        from_ids = model(ids, attention_mask=mask).last_hidden_state
        from_embeds = model(inputs_embeds=model.embeddings.word_embeddings(ids), attention_mask=mask,
                            segment_ids=segments).last_hidden_state
    assert_close(from_ids[mask.bool()], from_embeds[mask.bool()], reduction=REDUCTION)


def test_derived_segments_match_the_published_example():
    ids = torch.tensor([[CLS, 7, 8, SEP, 9, SEP, PAD, PAD]])
    special = (ids == CLS) | (ids == SEP)
    assert mp.modeling_ponet.segment_ids_from_special_tokens(special).tolist() == [[0, 1, 1, 2, 3, 4, 5, 5]]


@pytest.mark.parametrize("window", [1, 5])
def test_local_window_size_is_respected(model_for, window):
    model = model_for(local_window_size=window)
    ids, mask = make_batch()
    with torch.no_grad():
        out = model(ids, attention_mask=mask).last_hidden_state
        ref = naive_forward(model, ids, mask)[0]
    assert_close(out[mask.bool()], ref[mask.bool()], reduction=REDUCTION)


# ------------------------------------------------------------------------------------------------------------
# Invariances
# ------------------------------------------------------------------------------------------------------------


def test_real_token_outputs_do_not_depend_on_padding_or_other_rows(model_for):
    model = model_for()
    ids, mask = make_batch()
    with torch.no_grad():
        base = model(ids, attention_mask=mask).last_hidden_state
        # more padding on both rows
        longer = torch.cat([ids, torch.full((2, 20), PAD)], dim=1)
        longer_out = model(longer, attention_mask=(longer != PAD).long()).last_hidden_state
        # the other row replaced by something else entirely
        other = ids.clone()
        other[1] = torch.tensor([CLS, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, SEP])
        other_out = model(other, attention_mask=(other != PAD).long()).last_hidden_state
        # the padding positions hold garbage ids
        garbage = ids.clone()
        garbage[0, 6:] = torch.tensor([CLS, SEP, 50, 51, 52, 53])
        garbage_out = model(garbage, attention_mask=mask).last_hidden_state
    real0 = mask[0].bool()
    assert_close(longer_out[:, :12][mask.bool()], base[mask.bool()], reduction=REDUCTION)
    assert_close(other_out[0][real0], base[0][real0], reduction=REDUCTION)
    assert_close(garbage_out[0][real0], base[0][real0], reduction=REDUCTION)


def test_batched_equals_one_by_one(model_for):
    model = model_for()
    ids, mask = make_batch()
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).last_hidden_state
        single = model(ids[:1, :6]).last_hidden_state
    assert_close(batched[0, :6], single[0], reduction=REDUCTION)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_with_heavy_padding_is_finite_and_close_to_fp32(tiny_config, dtype):
    model = PoNetModel(tiny_config(hidden_dropout_prob=0.0, max_position_embeddings=512)).eval()
    ids = torch.randint(5, 200, (3, 400))
    ids[:, 0] = CLS
    lengths = [7, 150, 400]
    for row, n in enumerate(lengths):
        ids[row, n - 1] = SEP
        ids[row, n:] = PAD
    mask = (ids != PAD).long()
    with torch.no_grad():
        ref = model(ids, attention_mask=mask).last_hidden_state
        half = model.to(dtype)(ids, attention_mask=mask, output_attentions=True)
    out = half.last_hidden_state.float()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(a.float()).all() for a in half.attentions)
    # Half precision against float32: about 20 float16 eps (9.8e-4) or 13 bfloat16 eps (7.8e-3) at the outputs'
    # unit scale (after LayerNorm): each op rounds its output, a few dozen roundings in sequence over 2 layers.
    tolerance = 0.02 if dtype == torch.float16 else 0.1
    assert (out - ref)[mask.bool()].abs().max() <= tolerance


def test_half_precision_training_step_gives_finite_gradients(tiny_config):
    model = PoNetForPreTraining(tiny_config(hidden_dropout_prob=0.0)).to(torch.bfloat16).train()
    ids, mask = make_batch()
    out = model(ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100),
                sentence_structural_label=torch.tensor([0, 2]))
    out.loss.backward()
    assert torch.isfinite(out.loss.float())
    assert all(torch.isfinite(p.grad.float()).all() for p in model.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------------------------------------
# The published checkpoint's names
# ------------------------------------------------------------------------------------------------------------


def published_state_dict(model: PoNetForPreTraining):
    """The state dict as the published file stores it: position_ids present, decoder weight stored untied."""
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    state.pop("cls.predictions.decoder.bias", None)  # the published file has only cls.predictions.bias
    state["ponet.embeddings.position_ids"] = torch.arange(model.config.max_position_embeddings).unsqueeze(0)
    state["cls.predictions.decoder.weight"] = model.ponet.embeddings.word_embeddings.weight.detach().clone()
    return state


EXPECTED_NAMES = {
    "ponet.embeddings.word_embeddings.weight",
    "ponet.embeddings.position_embeddings.weight",
    "ponet.embeddings.token_type_embeddings.weight",
    "ponet.embeddings.LayerNorm.weight",
    "ponet.embeddings.LayerNorm.bias",
    "ponet.pooler.dense.weight",
    "ponet.pooler.dense.bias",
    "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.transform.LayerNorm.bias",
    "cls.predictions.bias",
    "cls.seq_relationship.weight",
    "cls.seq_relationship.bias",
} | {
    f"ponet.encoder.layer.{n}.{part}.{kind}"
    for n in range(2)
    for part in (
        "attention.self.dense_local", "attention.self.dense_segment", "attention.self.dense_q",
        "attention.self.dense_k", "attention.self.dense_o", "attention.output.dense", "attention.output.LayerNorm",
        "intermediate.dense", "output.dense", "output.LayerNorm",
    )
    for kind in ("weight", "bias")
}


def test_parameter_names_are_the_published_ones(tiny_config):
    model = PoNetForPreTraining(tiny_config())
    names = set(model.state_dict()) - {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    assert names == EXPECTED_NAMES
    assert model.cls.seq_relationship.weight.shape == (3, 32)


def test_base_size_parameter_count_matches_the_published_model():
    with torch.device("meta"):
        model = PoNetModel(PoNetConfig())
    assert sum(p.numel() for p in model.parameters()) == 123_656_448


@pytest.mark.parametrize("head", [PoNetForPreTraining, PoNetModel, PoNetForSequenceClassification])
def test_published_state_dict_loads_without_missing_weights_and_reproduces_outputs(tiny_config, tmp_path, head):
    source = random_weights(PoNetForPreTraining(tiny_config(hidden_dropout_prob=0.0))).eval()
    source.config.save_pretrained(tmp_path)
    save_file(published_state_dict(source), tmp_path / "model.safetensors", metadata={"format": "pt"})

    loaded, info = head.from_pretrained(tmp_path, output_loading_info=True)
    loaded.eval()
    new_head_params = {"classifier.weight", "classifier.bias"} if head is PoNetForSequenceClassification else set()
    assert set(info["missing_keys"]) == new_head_params
    assert not info["mismatched_keys"]
    ids, mask = make_batch()
    with torch.no_grad():
        expected = source(ids, attention_mask=mask)
        got = loaded(ids, attention_mask=mask)
    if head is PoNetForPreTraining:
        assert_close(got.prediction_logits, expected.prediction_logits, reduction=REDUCTION)
        assert_close(got.seq_relationship_logits, expected.seq_relationship_logits, reduction=REDUCTION)
        assert loaded.cls.predictions.decoder.weight.data_ptr() == loaded.ponet.embeddings.word_embeddings.weight.data_ptr()
    else:
        base = expected_base = source.ponet(ids, attention_mask=mask)
        inner = loaded if head is PoNetModel else loaded.ponet
        got_base = inner(ids, attention_mask=mask)
        assert_close(got_base.last_hidden_state, base.last_hidden_state, reduction=REDUCTION)
        assert_close(got_base.pooler_output, expected_base.pooler_output, reduction=REDUCTION)


# ------------------------------------------------------------------------------------------------------------
# Heads, losses, gradient checkpointing
# ------------------------------------------------------------------------------------------------------------


def test_pretraining_loss_is_mlm_plus_sso(tiny_config):
    model = PoNetForPreTraining(tiny_config()).eval()
    ids, mask = make_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1] = ids[:, 1]
    sso = torch.tensor([1, 2])
    out = model(ids, attention_mask=mask, labels=labels, sentence_structural_label=sso)
    mlm = F.cross_entropy(out.prediction_logits.view(-1, model.config.vocab_size), labels.view(-1))
    sso_loss = F.cross_entropy(out.seq_relationship_logits, sso)
    # the same loss function on the same logits: torch's relative 1e-5 only absorbs the reshaping
    assert torch.allclose(out.mlm_loss, mlm) and torch.allclose(out.sso_loss, sso_loss)
    assert torch.allclose(out.loss, mlm + sso_loss)
    assert out.seq_relationship_logits.shape == (2, 3)
    as_tuple = model(ids, attention_mask=mask, labels=labels, sentence_structural_label=sso, return_dict=False)
    assert torch.allclose(as_tuple[0], out.loss) and torch.allclose(as_tuple[3], out.prediction_logits)


def head_cases(tiny_config):
    ids, mask = make_batch()
    return [
        (PoNetForPreTraining(tiny_config()), dict(labels=ids, sentence_structural_label=torch.tensor([0, 1]))),
        (PoNetForMaskedLM(tiny_config()), dict(labels=ids)),
        (PoNetForSequenceClassification(tiny_config(num_labels=3)), dict(labels=torch.tensor([0, 2]))),
        (PoNetForTokenClassification(tiny_config(num_labels=5)), dict(labels=ids % 5)),
        (PoNetForQuestionAnswering(tiny_config()), dict(start_positions=torch.tensor([1, 2]),
                                                        end_positions=torch.tensor([2, 4]))),
    ]


def test_every_head_computes_a_loss_and_backpropagates(tiny_config):
    ids, mask = make_batch()
    for model, labels in head_cases(tiny_config):
        out = model(ids, attention_mask=mask, **labels)
        out.loss.backward()
        assert torch.isfinite(out.loss)
        grads = [p.grad for p in model.ponet.parameters() if p.requires_grad]
        assert all(g is not None for g in grads), type(model).__name__
        assert any(g.abs().sum() > 0 for g in grads)
    choice = PoNetForMultipleChoice(tiny_config())
    mc_ids = torch.stack([ids, ids.flip(0)])  # [batch=2, choices=2, length]
    out = choice(mc_ids, attention_mask=(mc_ids != PAD).long(), labels=torch.tensor([1, 0]))
    out.loss.backward()
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)


def test_heads_that_do_not_use_the_pooler_do_not_build_it(tiny_config):
    assert PoNetForMaskedLM(tiny_config()).ponet.pooler is None
    assert PoNetForTokenClassification(tiny_config()).ponet.pooler is None
    assert PoNetForQuestionAnswering(tiny_config()).ponet.pooler is None
    assert PoNetForSequenceClassification(tiny_config(classifier_pooling="mean")).ponet.pooler is None
    assert PoNetForSequenceClassification(tiny_config()).ponet.pooler is not None
    assert PoNetForPreTraining(tiny_config()).ponet.pooler is not None


def test_sequence_classification_problem_types_follow_bert(tiny_config):
    ids, mask = make_batch()
    regression = PoNetForSequenceClassification(tiny_config(num_labels=1)).eval()
    target = torch.tensor([0.5, -1.0])
    out = regression(ids, attention_mask=mask, labels=target)
    assert regression.config.problem_type == "regression"
    assert torch.allclose(out.loss, F.mse_loss(out.logits.squeeze(), target))

    single = PoNetForSequenceClassification(tiny_config(num_labels=3)).eval()
    out = single(ids, attention_mask=mask, labels=torch.tensor([2, 0]))
    assert single.config.problem_type == "single_label_classification"
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, torch.tensor([2, 0])))

    multi = PoNetForSequenceClassification(tiny_config(num_labels=3)).eval()
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    out = multi(ids, attention_mask=mask, labels=target)
    assert multi.config.problem_type == "multi_label_classification"
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(out.logits, target))


@pytest.mark.parametrize("pooling", ["cls", "mean", "max+weighted_sum", "cls+attention"])
def test_classifier_pooling_feeds_the_classifier(tiny_config, pooling):
    model = PoNetForSequenceClassification(tiny_config(classifier_pooling=pooling, num_labels=2)).eval()
    ids, mask = make_batch()
    with torch.no_grad():
        base = model.ponet(ids, attention_mask=mask)
        pooled = model.pooling(base.last_hidden_state, mask, cls_output=base.pooler_output)
        logits = model(ids, attention_mask=mask).logits
    assert model.classifier.in_features == 32 * len(pooling.split("+"))
    assert_close(logits, model.classifier(pooled), reduction=REDUCTION)
    if pooling == "cls":
        assert torch.allclose(pooled, base.pooler_output)  # the published pooler, as published


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config):
    torch.manual_seed(0)
    model = PoNetForPreTraining(tiny_config(hidden_dropout_prob=0.0)).train()
    ids, mask = make_batch()
    kwargs = dict(attention_mask=mask, labels=ids, sentence_structural_label=torch.tensor([0, 1]))

    def grads():
        model.zero_grad()
        model(ids, **kwargs).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.ponet.encoder.layer)
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert_close(plain[name], checkpointed[name], reduction=REDUCTION, msg=name)


def test_hidden_states_and_return_dict_false(model_for):
    model = model_for()
    ids, mask = make_batch()
    out = model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)  # the same tensor: exact
    as_tuple = model(ids, attention_mask=mask, return_dict=False)  # the same call again: exact
    assert torch.equal(as_tuple[0], out.last_hidden_state) and torch.equal(as_tuple[1], out.pooler_output)


def test_resize_position_embeddings_tiles_the_learned_rows(tiny_config):
    model = PoNetForSequenceClassification(tiny_config(max_position_embeddings=16))
    old = model.ponet.embeddings.position_embeddings.weight.detach().clone()
    model.resize_position_embeddings(40)
    new = model.ponet.embeddings.position_embeddings.weight
    assert new.shape == (40, 32) and model.config.max_position_embeddings == 40
    assert torch.equal(new[:16], old) and torch.equal(new[16:32], old) and torch.equal(new[32:], old[:8])
    ids = torch.randint(5, 200, (1, 40))
    assert model(ids).logits.shape == (1, 2)


# ------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(hidden_size=30, num_attention_heads=4), "hidden_size"),
        (dict(local_window_size=4), "local_window_size"),
        (dict(local_window_size=0), "local_window_size"),
        (dict(segment_size=0), "segment_size"),
        (dict(classifier_pooling="median"), "classifier_pooling"),
        (dict(clsgsepg="yes"), "clsgsepg"),
        (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
        (dict(num_hidden_layers=0), "num_hidden_layers"),
        (dict(max_position_embeddings=-1), "max_position_embeddings"),
    ],
)
def test_bad_config_values_raise_an_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PoNetConfig(**kwargs)


def test_fixed_segments_with_cls_sep_handling_are_refused():
    # LRA inputs have no CLS/SEP: with clsgsepg the bytes or grey levels 101/102 would silently lose their pooling.
    with pytest.raises(ValueError, match="pass `clsgsepg=False` with `segment_size`"):
        PoNetConfig(segment_size=33)
    assert PoNetConfig(segment_size=33, clsgsepg=False).segment_size == 33


def test_inputs_longer_than_the_position_table_raise(tiny_config):
    model = PoNetModel(tiny_config(max_position_embeddings=16))
    with pytest.raises(ValueError, match="position table has 16 rows"):
        model(torch.randint(5, 200, (1, 17)))


def test_decreasing_or_misshapen_segment_ids_raise(model_for):
    model = model_for()
    ids, mask = make_batch()
    with pytest.raises(ValueError, match="non-decreasing"):
        model(ids, attention_mask=mask, segment_ids=torch.arange(12).flip(0).expand(2, 12))
    with pytest.raises(ValueError, match="segment_ids"):
        model(ids, attention_mask=mask, segment_ids=torch.zeros(2, 5, dtype=torch.long))


def test_input_ids_and_inputs_embeds_are_exclusive(model_for):
    model = model_for()
    ids, _ = make_batch()
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(ids, inputs_embeds=torch.randn(2, 12, 32))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model()


# ------------------------------------------------------------------------------------------------------------
# The mixer's hand-written backward: gradients against autograd through a naive mixer
# ------------------------------------------------------------------------------------------------------------


def amax_reference_mixer(mixer, x, valid, special, segments, clsgsepg, window, num_heads):
    """Like `naive_mixer` (spec steps 1-6, one example) but with `amax`, whose gradient splits ties evenly."""
    length, hidden = x.shape
    d = hidden // num_heads
    Q, K, O = mixer.dense_q(x), mixer.dense_k(x), mixer.dense_o(x)
    S, Lc = mixer.dense_segment(x), mixer.dense_local(x)
    real = [i for i in range(length) if valid[i]]
    g = []
    for h in range(num_heads):
        cols = slice(h * d, (h + 1) * d)
        q = torch.stack([Q[i, cols] for i in real]).mean(0)
        a = torch.stack([q @ K[i, cols] / math.sqrt(d) for i in real]).softmax(-1)
        g.append((a[:, None] * torch.stack([K[i, cols] for i in real])).sum(0))
    g = torch.cat(g)
    rows = []
    for i in range(length):
        if not valid[i]:
            rows.append(torch.zeros(hidden))
            continue
        blocked_i = clsgsepg and special[i]
        members = [j for j in real if segments[j] == segments[i]]
        s_max = torch.zeros(hidden) if blocked_i else torch.stack([S[j] for j in members]).amax(0)
        window_members = [j for j in range(max(0, i - window // 2), min(length, i + window // 2 + 1))
                          if valid[j] and not (clsgsepg and special[j])]
        l_max = torch.zeros(hidden) if blocked_i else torch.stack([Lc[j] for j in window_members]).amax(0)
        rows.append((g + s_max) * O[i] + l_max)
    return torch.stack(rows)


# A mixer weight's gradient sums over every token of the 2 x 12 batch, each term a sum over the 32 channels.
GRADIENT_REDUCTION = 2 * 12 * 32


def mixer_gradients(model, ids, mask, segment_ids, x, weights, reference):
    """The output Y and the gradients of `sum(weights * Y)` w.r.t. x and the mixer parameters, from the model's mixer
    or the reference."""
    mixer = model.encoder.layer[0].attention.self
    config = model.config
    x = x.clone().requires_grad_(True)
    mixer.zero_grad()
    if reference:
        batch, length = ids.shape
        out = []
        for b in range(batch):
            valid = [bool(v) for v in mask[b]]
            special = [int(t) in (config.cls_token_id, config.sep_token_id) for t in ids[b]]
            if segment_ids is not None:
                segments = [int(s) for s in segment_ids[b]]
            elif config.segment_size is not None:
                segments = [i // config.segment_size for i in range(length)]
            else:
                segments = naive_segments_from_special(special)
            out.append(amax_reference_mixer(mixer, x[b], valid, special, segments, config.clsgsepg,
                                            config.local_window_size, config.num_attention_heads))
        out = torch.stack(out)
    else:
        inputs = build_mixer_inputs(model.config, ids, mask, segment_ids, *ids.shape, ids.device)
        out = mixer(x, inputs)[0]
    (out * weights).sum().backward()
    grads = {"output": out.detach(), "x": x.grad}
    grads.update({name: p.grad.clone() for name, p in mixer.named_parameters()})
    return grads


@pytest.mark.parametrize("clsgsepg, window, explicit_segments", [
    (True, 3, False), (False, 3, False), (True, 3, True), (False, 1, True), (True, 5, False), (False, 7, False),
    (True, 9, False), (False, 9, True), (True, 15, False),
])
def test_mixer_backward_matches_autograd_through_the_naive_mixer(model_for, clsgsepg, window, explicit_segments):
    model = model_for(clsgsepg=clsgsepg, local_window_size=window).train()
    ids, mask = make_batch()
    segments = None
    if explicit_segments:  # CLS shares the first sentence's segment, padding the last one's
        segments = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 2, 2, 2, 2, 7, 7, 7, 9, 9, 9, 9]])
    torch.manual_seed(1)
    x, weights = torch.randn(2, 12, 32), torch.randn(2, 12, 32)
    ours = mixer_gradients(model, ids, mask, segments, x, weights, reference=False)
    expected = mixer_gradients(model, ids, mask, segments, x, weights, reference=True)
    for name in expected:
        assert_close(ours[name], expected[name], reduction=GRADIENT_REDUCTION, msg=name)


@pytest.mark.parametrize("window", [1, 3, 5, 7, 9, 15])
def test_mixer_backward_splits_tied_maxima_evenly(model_for, window):
    model = model_for(local_window_size=window)
    mixer = model.encoder.layer[0].attention.self
    with torch.no_grad():  # every token of a segment / window ties: S and Lc are their biases
        mixer.dense_segment.weight.zero_()
        mixer.dense_local.weight.zero_()
    ids, mask = make_batch()
    torch.manual_seed(2)
    x, weights = torch.randn(2, 12, 32), torch.randn(2, 12, 32)
    ours = mixer_gradients(model, ids, mask, None, x, weights, reference=False)
    expected = mixer_gradients(model, ids, mask, None, x, weights, reference=True)
    for name in expected:
        assert_close(ours[name], expected[name], reduction=GRADIENT_REDUCTION, msg=name)
    assert ours["dense_segment.weight"].abs().max() > 0 and ours["dense_local.weight"].abs().max() > 0


@pytest.mark.parametrize("segment_size, length", [(2, 12), (3, 12), (6, 12), (12, 12), (5, 12)])
@pytest.mark.parametrize("ties", [False, True])
def test_mixer_backward_over_fixed_blocks_matches_autograd_through_the_naive_mixer(model_for, segment_size, length,
                                                                                     ties):
    # Blocks that divide the length (a reshape and a max, and its own backward) and one that does not (5: the table).
    model = model_for(segment_size=segment_size, clsgsepg=False).train()
    mixer = model.encoder.layer[0].attention.self
    if ties:  # every token of a block / window ties: S and Lc are their biases
        with torch.no_grad():
            mixer.dense_segment.weight.zero_()
            mixer.dense_local.weight.zero_()
    ids, mask = (t[:, :length] for t in make_batch())
    torch.manual_seed(4)
    x, weights = torch.randn(2, length, 32), torch.randn(2, length, 32)
    ours = mixer_gradients(model, ids, mask, None, x, weights, reference=False)
    expected = mixer_gradients(model, ids, mask, None, x, weights, reference=True)
    for name in expected:
        assert_close(ours[name], expected[name], reduction=GRADIENT_REDUCTION, msg=name)


@pytest.mark.parametrize("config_kwargs", [{}, {"clsgsepg": False}, {"segment_size": 3, "clsgsepg": False}])
def test_mixer_over_runs_of_examples_equals_the_whole_batch_at_once(model_for, monkeypatch, config_kwargs):
    # On CPU the pooling runs over a few examples at a time (`_CPU_ROWS_ELEMENTS`): one at a time here.
    model = model_for(**config_kwargs).train()
    ids, mask = make_batch()
    ids, mask = torch.cat([ids, ids.flip(0), ids]), torch.cat([mask, mask.flip(0), mask])
    torch.manual_seed(5)
    x, weights = torch.randn(6, 12, 32), torch.randn(6, 12, 32)
    whole = mixer_gradients(model, ids, mask, None, x, weights, reference=False)
    monkeypatch.setattr(mp.modeling_ponet, "_CPU_ROWS_ELEMENTS", 1)
    assert len(mp.modeling_ponet._example_runs(6, 12, 32, torch.device("cpu"))) == 6
    runs = mixer_gradients(model, ids, mask, None, x, weights, reference=False)
    for name in whole:
        assert_close(runs[name], whole[name], reduction=GRADIENT_REDUCTION, msg=name)


@pytest.mark.parametrize("config_kwargs", [{"clsgsepg": False}, {"segment_size": 4, "clsgsepg": False}])
def test_a_mask_of_ones_gives_what_no_mask_gives(model_for, config_kwargs):
    # Without a mask (and without blocked CLS/SEP) the mixers skip every mask: the same numbers, forward and backward.
    model = model_for(**config_kwargs).train()
    ids = make_batch()[0][1:]
    torch.manual_seed(6)
    x, weights = torch.randn(1, 12, 32), torch.randn(1, 12, 32)
    unmasked = build_mixer_inputs(model.config, ids, None, None, *ids.shape, ids.device)
    assert not unmasked.any_blocked
    ones = torch.ones_like(ids)
    assert build_mixer_inputs(model.config, ids, ones, None, *ids.shape, ids.device).any_blocked is False
    masked = build_mixer_inputs(model.config, ids, torch.ones_like(ids), None, *ids.shape, ids.device)
    masked = dataclasses.replace(masked, any_blocked=True)  # force the masked path on the same inputs
    mixer = model.encoder.layer[0].attention.self

    def run(inputs):
        mixer.zero_grad()
        leaf = x.clone().requires_grad_(True)
        out = mixer(leaf, inputs)[0]
        (out * weights).sum().backward()
        return [out.detach(), leaf.grad] + [p.grad.clone() for p in mixer.parameters()]

    for skipped, masked_result in zip(run(unmasked), run(masked)):
        assert torch.equal(skipped, masked_result)  # the same arithmetic: masks of ones change nothing


def test_joint_projections_match_five_linear_layers_forward_and_backward(model_for):
    model = model_for().train()
    mixer = model.encoder.layer[0].attention.self
    torch.manual_seed(7)
    x = torch.randn(2, 12, 32)
    grads = {}
    for joint in (True, False):
        mixer.zero_grad()
        leaf = x.clone().requires_grad_(True)
        if joint:
            ko, segment, ql = mixer.projections(leaf)
            assert type(ko.grad_fn).__name__ == "PoNetProjectionsFunctionBackward"
        else:
            layers = (mixer.dense_k, mixer.dense_o, mixer.dense_segment, mixer.dense_q, mixer.dense_local)
            key, gate, segment, query, local = (F.linear(leaf, layer.weight, layer.bias) for layer in layers)
            ko, ql = torch.cat([key, gate], dim=-1), torch.cat([query, local], dim=-1)
        torch.manual_seed(8)
        loss = sum((t * torch.randn_like(t)).sum() for t in (ko, segment, ql))
        loss.backward()
        grads[joint] = [leaf.grad, ko.detach(), segment.detach(), ql.detach()] + [
            p.grad.clone() for p in mixer.parameters()]
    for joint, separate in zip(grads[True], grads[False]):
        assert_close(joint, separate, reduction=3 * 2 * 12)


def test_mixer_backward_with_attentions_requested_matches_the_fused_backward(model_for):
    model = model_for().train()
    ids, mask = make_batch()
    inputs = build_mixer_inputs(model.config, ids, mask, None, *ids.shape, ids.device)
    mixer = model.encoder.layer[0].attention.self
    torch.manual_seed(3)
    x, weights = torch.randn(2, 12, 32), torch.randn(2, 12, 32)

    def grads(output_attentions):
        mixer.zero_grad()
        leaf = x.clone().requires_grad_(True)
        mixed, attentions = mixer(leaf, dataclasses.replace(inputs, output_attentions=output_attentions))
        assert (attentions is not None) == output_attentions
        (mixed * weights).sum().backward()
        return [leaf.grad] + [p.grad.clone() for p in mixer.parameters()]

    for fused, via_autograd_ga in zip(grads(False), grads(True)):
        assert_close(fused, via_autograd_ga, reduction=GRADIENT_REDUCTION)


def test_returned_attentions_are_differentiable(model_for):
    model = model_for().train()
    ids, mask = make_batch()
    out = model(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    attentions, hidden = out.attentions[0], out.hidden_states[1]
    attentions.retain_grad()
    hidden.retain_grad()
    out.last_hidden_state[mask.bool()].sum().backward()
    assert attentions.grad is not None and attentions.grad.abs().max() > 0
    assert hidden.grad is not None and hidden.grad.abs().max() > 0
    # an attribution that rescales the probabilities changes the output: they are what GA is computed from
    assert attentions.grad_fn is not None


def test_an_all_padding_row_is_finite_and_changes_nothing_else(tiny_config):
    model = random_weights(PoNetForMaskedLM(tiny_config(hidden_dropout_prob=0.0))).train()
    ids, mask = make_batch()
    labels = ids.masked_fill(mask == 0, -100)

    def run(ids, mask, labels):
        model.zero_grad()
        out = model(ids, attention_mask=mask, labels=labels, output_hidden_states=True)
        out.loss.backward()
        return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    base, base_grads = run(ids, mask, labels)
    padded_ids = torch.cat([ids, torch.full((1, 12), PAD)])
    out, grads = run(padded_ids, torch.cat([mask, torch.zeros(1, 12, dtype=torch.long)]),
                     torch.cat([labels, torch.full((1, 12), -100)]))
    assert all(torch.isfinite(h).all() for h in out.hidden_states) and torch.isfinite(out.logits).all()
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert_close(out.loss, base.loss, reduction=REDUCTION)
    assert_close(out.logits[:2][mask.bool()], base.logits[mask.bool()], reduction=REDUCTION)
    assert grads.keys() == base_grads.keys()
    for name in grads:
        assert_close(grads[name], base_grads[name], reduction=REDUCTION, msg=name)


def test_padded_input_ids_without_attention_mask_warn_as_in_bert(model_for):
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging

    model = model_for()
    ids = make_batch()[0]  # the first row ends with padding
    logger = logging.get_logger("transformers.modeling_utils")
    logger.warning_once.cache_clear()  # a one-time warning: another test may have shown it already
    with CaptureLogger(logger) as captured:
        out = model(ids)
    assert "padding" in captured.out and "attention_mask" in captured.out
    assert torch.isfinite(out.last_hidden_state).all()


def test_mixer_compiles_without_graph_breaks(model_for):
    model = model_for()
    mixer = model.encoder.layer[0].attention.self
    ids, mask = make_batch()
    inputs = build_mixer_inputs(model.config, ids, mask, None, 2, 12, "cpu")
    x = torch.randn(2, 12, 32, requires_grad=True)
    explanation = torch._dynamo.explain(mixer)(x, inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
