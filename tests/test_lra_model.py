"""The LRA encoder (ponet_training.models.lra): one pre-LayerNorm shell whose mixer is PoNet's own, softmax
attention or FNet, checked against a naive example-by-example reference written here from the paper's description."""

import math

import pytest
import torch
from tolerance import assert_close
from torch.nn import functional as F

from modeling_ponet.modeling_ponet import PoNetPoolingMixer
from ponet_training.models.lra import LRA_MIXERS, LRAConfig, LRAForSequenceClassification


VOCAB = 257  # bytes + 1: ids 101 and 102 (CLS/SEP in bert-base-uncased) are ordinary bytes here
NEG = -10000.0


def make_model(mixer, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    config = LRAConfig(vocab_size=VOCAB, max_position_embeddings=32, mixer=mixer, segment_size=4, num_labels=3,
                       **kwargs)
    return LRAForSequenceClassification(config).to(dtype).eval()


def make_batch():
    torch.manual_seed(1)
    ids = torch.randint(1, VOCAB, (3, 13))
    ids[0, 2], ids[0, 3], ids[1, 7] = 101, 102, 101
    ids[1, 9:] = 0  # padding
    ids[2, 4:] = 0
    return ids


def naive_ponet(mixer, x, valid, block):
    """PoNet's mixer for one example `[length, hidden]`, token by token: GA, SMP over fixed blocks, LMP (window 3),
    PF; no CLS/SEP handling."""
    pooling = mixer.pooling
    heads = pooling.num_attention_heads
    length, hidden = x.shape
    d = hidden // heads
    Q, K, O = pooling.dense_q(x), pooling.dense_k(x), pooling.dense_o(x)
    S, Lc = pooling.dense_segment(x).clone(), pooling.dense_local(x).clone()
    real = [i for i in range(length) if valid[i]]
    g = torch.zeros(hidden, dtype=x.dtype)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        q = sum(Q[i, cols] for i in real) / len(real)
        scores = torch.stack([q @ K[i, cols] / math.sqrt(d) + (0.0 if valid[i] else NEG) for i in range(length)])
        a = scores.softmax(-1)
        g[cols] = sum(a[i] * K[i, cols] for i in range(length))
    for i in range(length):
        if not valid[i]:
            S[i], Lc[i] = NEG, NEG
    Y = torch.zeros_like(x)
    for i in range(length):
        members = [j for j in range(length) if j // block == i // block]
        s = torch.stack([S[j] for j in members]).max(0).values
        l = torch.stack([Lc[j] for j in range(max(0, i - 1), min(length, i + 2))]).max(0).values
        Y[i] = ((g + s) * O[i] + l) if valid[i] else 0.0
    return mixer.output(Y)


def naive_softmax(mixer, x, valid):
    heads = mixer.num_heads
    length, hidden = x.shape
    d = hidden // heads
    q, k, v = mixer.qkv(x).split(hidden, dim=-1)
    out = torch.zeros_like(x)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        for i in range(length):
            keys = [j for j in range(length) if valid[j]]
            a = torch.stack([q[i, cols] @ k[j, cols] / math.sqrt(d) for j in keys]).softmax(-1)
            out[i, cols] = sum(a[n] * v[j, cols] for n, j in enumerate(keys))
    return mixer.output(out)


def naive_fnet(x, valid):
    """Re(F_L X F_H) for the DFT matrices F_n = exp(-2 pi i jk / n), written with cosines and sines (X is real)."""
    def dft(n):
        angles = 2 * math.pi * torch.outer(torch.arange(n), torch.arange(n)).double() / n
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    zeroed = x * torch.tensor(valid, dtype=x.dtype)[:, None]
    (cos_l, sin_l), (cos_h, sin_h) = dft(x.shape[0]), dft(x.shape[1])
    return cos_l @ zeroed @ cos_h - sin_l @ zeroed @ sin_h


def naive_states(model, ids_row):
    """The encoder's output for one example `[length]` -> `[length, hidden]` (eval mode: no dropout)."""
    encoder = model.encoder
    valid = [bool(t != 0) for t in ids_row]
    x = encoder.embeddings.word_embeddings(ids_row) + encoder.embeddings.position_embeddings.weight[: len(ids_row)]
    for block in encoder.layers:
        h = block.mixer_norm(x)
        if model.config.mixer == "ponet":
            mixed = naive_ponet(block.mixer, h, valid, model.config.segment_size)
        elif model.config.mixer == "softmax":
            mixed = naive_softmax(block.mixer, h, valid)
        else:
            mixed = naive_fnet(h, valid)
        x = x + mixed
        x = x + block.feed_forward(block.feed_forward_norm(x))
    return encoder.final_norm(x) * torch.tensor(valid, dtype=x.dtype)[:, None]


@pytest.mark.parametrize("mixer", LRA_MIXERS)
def test_encoder_and_head_match_a_naive_reference(mixer):
    model = make_model(mixer)
    ids = make_batch()
    with torch.no_grad():
        states = model.encoder(ids).last_hidden_state
        logits = model(ids).logits
        for b in range(len(ids)):
            reference = naive_states(model, ids[b])
            assert_close(states[b], reference, reduction=128)
            # The published head: the mean over every position, padding rows (zero) included.
            assert_close(logits[b], model.classifier(reference.mean(dim=0)), reduction=128)


def test_the_ponet_mixer_is_the_package_one_with_no_cls_sep_handling():
    model = make_model("ponet")
    mixer = model.encoder.layers[0].mixer
    assert type(mixer.pooling) is PoNetPoolingMixer
    assert mixer.ponet_config.clsgsepg is False
    prepared = mixer.prepare(make_batch() != 0)
    # Ids 101/102 are in the batch; nothing but padding is kept out of the pooling.
    assert torch.equal(prepared.blocked, ~prepared.valid)


@pytest.mark.parametrize("mixer", ["ponet", "softmax"])
def test_padding_does_not_change_the_real_tokens(mixer):
    model = make_model(mixer)
    ids = make_batch()[1:2, :9]  # a row without padding
    padded = F.pad(ids, (0, 11))
    with torch.no_grad():
        short = model.encoder(ids).last_hidden_state
        long = model.encoder(padded).last_hidden_state
    assert_close(long[:, :9], short, reduction=128)
    assert torch.equal(long[:, 9:], torch.zeros_like(long[:, 9:]))


def test_mean_pooling_over_real_tokens_only_when_asked():
    model = make_model("ponet", classifier_pooling="mean")
    ids = make_batch()
    with torch.no_grad():
        states = model.encoder(ids).last_hidden_state
        pooled = model.pool(ids)
    counts = (ids != 0).sum(dim=1, keepdim=True)
    assert_close(pooled, states.sum(dim=1) / counts, reduction=16)


def test_eager_and_sdpa_softmax_agree():
    sdpa, eager = make_model("softmax"), make_model("softmax", softmax_implementation="eager")
    ids = make_batch()
    with torch.no_grad():
        assert_close(eager(ids).logits, sdpa(ids).logits, reduction=128)


def test_pair_head_sees_both_documents_and_their_products():
    model = make_model("ponet", pair=True)
    ids = make_batch()
    other = torch.roll(ids, 1, dims=0)
    with torch.no_grad():
        logits = model(ids, input_ids_2=other).logits
        a, b = model.pool(ids), model.pool(other)
        assert_close(logits, model.classifier(torch.cat([a, b, a * b, a - b], dim=-1)), reduction=256)
    with pytest.raises(ValueError, match="pair task"):
        model(ids)


@pytest.mark.parametrize("mixer, length", [(mixer, 13) for mixer in LRA_MIXERS] + [("ponet", 12)])
def test_training_gradients_match_the_naive_reference_in_float64(mixer, length):
    # The PoNet mixer trains through its hand-written backward; the reference through autograd. Its blocks of 4
    # tokens divide 12 (a reshape and a max) but not 13 (the segment table).
    model = make_model(mixer, dtype=torch.float64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.train()
    ids, labels = make_batch()[:, :length], torch.tensor([0, 1, 2])
    model(ids, labels=labels).loss.backward()
    fused = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    logits = torch.stack([model.classifier(naive_states(model, row).mean(dim=0)) for row in ids])
    F.cross_entropy(logits, labels).backward()
    # PoNet's global aggregation takes its softmax in float32 whatever the input dtype: float32 bounds for it.
    rtol = 1e-6 if mixer == "ponet" else 1e-10
    for name, p in model.named_parameters():
        torch.testing.assert_close(fused[name], p.grad, rtol=rtol, atol=rtol * p.grad.abs().max().item(), msg=name)


def test_gradient_checkpointing_gives_the_same_gradients():
    ids, labels = make_batch(), torch.tensor([0, 1, 2])
    grads = []
    for checkpointing in (False, True):
        model = make_model("ponet", hidden_dropout_prob=0.0).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        model(ids, labels=labels).loss.backward()
        grads.append([p.grad for p in model.parameters()])
    for plain, recomputed in zip(*grads):
        assert torch.equal(plain, recomputed)  # the same computation run twice


def test_save_and_load_round_trip(tmp_path):
    model = make_model("ponet", pair=True)
    model.save_pretrained(tmp_path)
    loaded = LRAForSequenceClassification.from_pretrained(tmp_path).eval()
    ids = make_batch()
    assert loaded.config.mixer == "ponet" and loaded.config.segment_size == 4
    with torch.no_grad():
        assert torch.equal(loaded(ids, input_ids_2=ids).logits, model(ids, input_ids_2=ids).logits)  # same weights


@pytest.mark.parametrize("kwargs, field", [
    (dict(mixer="nystrom"), "mixer"),
    (dict(classifier_pooling="cls"), "classifier_pooling"),
    (dict(hidden_size=63), "hidden_size"),
    (dict(local_window_size=2), "local_window_size"),
])
def test_bad_config_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LRAConfig(**kwargs)


def test_inputs_longer_than_the_position_table_raise():
    model = make_model("fnet")
    with pytest.raises(ValueError, match="position table has 32 rows"):
        model(torch.ones(1, 33, dtype=torch.long))
