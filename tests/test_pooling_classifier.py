"""PooledSequenceClassifier: any backbone (encoder or decoder) + SequencePooler + a linear classifier."""

import logging
from types import SimpleNamespace

import pytest
import torch
from tolerance import assert_close
from torch.nn import functional as F
from transformers import AutoModel, BertConfig, BertModel, GPT2Config, GPT2Model, PreTrainedTokenizerFast
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from modeling_ponet import PoNetConfig, PoNetForSequenceClassification, PoNetModel
from ponet_training.models.pooled_classifier import PooledSequenceClassifier, ensure_pad_token


SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
LONGEST_SUM = 4 * 32  # the tiny GPT-2's MLP width, the widest sum of these backbones (tests/tolerance.py)


def tiny_bert(vocab_size=60):
    return BertModel(BertConfig(vocab_size=vocab_size, max_position_embeddings=32, pad_token_id=0, **SIZE))


def tiny_gpt2(vocab_size=60, pad_token_id=59):
    return GPT2Model(GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                bos_token_id=59, eos_token_id=59, pad_token_id=pad_token_id))


def batch_with_padding(lengths, length=7, vocab_size=60, padding_side="right", seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size - 1, (len(lengths), length), generator=gen)
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    for i, n in enumerate(lengths):
        if padding_side == "right":
            mask[i, :n] = 1
        else:
            mask[i, length - n:] = 1
    return ids.masked_fill(mask == 0, 0), mask


@pytest.mark.parametrize("make_backbone", [tiny_bert, tiny_gpt2], ids=["bert", "gpt2"])
def test_padded_batch_gives_the_logits_of_each_example_alone(make_backbone):
    model = PooledSequenceClassifier(make_backbone(), "cls+last+mean+max+weighted_sum+weighted_mean+attention",
                                     num_labels=3).eval()
    ids, mask = batch_with_padding([7, 3, 5])
    with torch.no_grad():
        batched = model(ids, mask).logits
        for i, n in enumerate([7, 3, 5]):
            alone = model(ids[i:i + 1, :n], mask[i:i + 1, :n]).logits
            assert_close(batched[i:i + 1], alone, reduction=LONGEST_SUM)  # another shape may take another GEMM kernel


def test_decoder_with_left_padding_pools_the_last_real_token():
    # Left padding, as for generation; positions counted over real tokens (passed through to the backbone).
    model = PooledSequenceClassifier(tiny_gpt2(), "last", num_labels=2).eval()
    ids, mask = batch_with_padding([7, 3], padding_side="left")
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        batched = model(ids, mask, position_ids=position_ids).pooled_output
        alone = model(ids[1:, 4:], mask[1:, 4:]).pooled_output
    assert_close(batched[1:], alone, reduction=LONGEST_SUM)  # another shape may take another GEMM kernel


def test_losses_follow_bert_problem_type_conventions():
    ids, mask = batch_with_padding([7, 3, 5, 2])
    backbone = tiny_bert()

    single = PooledSequenceClassifier(backbone, "mean", num_labels=3).eval()
    labels = torch.tensor([0, 2, 1, 2])
    out = single(ids, mask, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))

    regression = PooledSequenceClassifier(backbone, "mean", num_labels=1).eval()
    targets = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out = regression(ids, mask, labels=targets)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), targets))

    multi = PooledSequenceClassifier(backbone, "mean", num_labels=3).eval()
    multi_hot = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]])
    out = multi(ids, mask, labels=multi_hot)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi_hot))

    # The classifier's rule (transformers' sequence-classification loss) is PoNet's head's: same logits, same loss.
    for num_labels, wanted in ((3, labels), (3, multi_hot), (1, targets)):
        head = PoNetForSequenceClassification(PoNetConfig(vocab_size=60, num_labels=num_labels, **SIZE)).eval()
        out = head(ids, mask, labels=wanted)
        rule = SimpleNamespace(num_labels=num_labels, problem_type=None)
        torch.testing.assert_close(out.loss, ForSequenceClassificationLoss(wanted, out.logits, rule))
        assert head.config.problem_type == rule.problem_type
    with pytest.raises(ValueError, match="problem_type"):
        PooledSequenceClassifier(backbone, "mean", problem_type="ranking")


def test_frozen_backbone_trains_only_the_head():
    model = PooledSequenceClassifier(tiny_bert(), "weighted_sum", num_labels=2, freeze_backbone=True)
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.head_state_dict().items()}
    model.train()
    assert not model.backbone.training  # no dropout in the frozen feature extractor
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, mask = batch_with_padding([7, 3, 5, 2])
    for _ in range(2):
        model(ids, mask, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, backbone_before[key], rtol=0, atol=0)
    assert all(not torch.equal(v, head_before[k]) for k, v in model.head_state_dict().items())
    head_size = sum(p.numel() for m in model.head_modules() for p in m.parameters())
    assert model.num_trainable_parameters() == head_size == (32 + 1) + (2 * 32 + 2)


def test_full_fine_tuning_trains_the_backbone_and_freezes_only_an_unused_bert_pooler():
    model = PooledSequenceClassifier(tiny_bert(), "mean", num_labels=2)
    ids, mask = batch_with_padding([7, 3])
    model(ids, mask, labels=torch.tensor([0, 1])).loss.backward()
    assert model.backbone.embeddings.word_embeddings.weight.grad is not None
    # BERT's pooler output is not used by `mean`: frozen, so DDP does not wait for its gradients.
    assert not any(p.requires_grad for p in model.backbone.pooler.parameters())
    with_cls = PooledSequenceClassifier(tiny_bert(), "cls", num_labels=2)
    with_cls(ids, mask, labels=torch.tensor([0, 1])).loss.backward()
    assert with_cls.backbone.pooler.dense.weight.grad is not None


def test_cls_uses_the_backbone_pooler_output_when_it_has_one(tiny_config):
    backbone = PoNetModel(tiny_config()).eval()
    model = PooledSequenceClassifier(backbone, "cls", num_labels=2).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 14, 3, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        out = model(ids, mask)
        expected = backbone(input_ids=ids, attention_mask=mask).pooler_output
    torch.testing.assert_close(out.pooled_output, expected, rtol=0, atol=0)  # the same backbone call: exact
    first = PooledSequenceClassifier(backbone, "cls", num_labels=2, cls_from_pooler=False).eval()
    with torch.no_grad():
        # the same call twice: exact
        torch.testing.assert_close(first(ids, mask).pooled_output, first(ids, mask).hidden_states[:, 0], rtol=0, atol=0)


def test_backbone_without_pad_token_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no pad token.*pad_token = tokenizer.eos_token.*pad_token_id"):
        PooledSequenceClassifier(tiny_gpt2(pad_token_id=None), "last")


def test_unknown_pooling_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'avg'.*choose from"):
        PooledSequenceClassifier(tiny_bert(), "mean+avg")


def test_ensure_pad_token_uses_eos_for_decoders_and_says_so(caplog):
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel()
    bpe.train_from_iterator(["a small corpus for a tokenizer"] * 3,
                            trainers.BpeTrainer(vocab_size=280, special_tokens=["<eos>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    config = tiny_gpt2(pad_token_id=None).config
    with pytest.raises(ValueError, match="no pad token"):
        ensure_pad_token(PreTrainedTokenizerFast(tokenizer_object=bpe), config, use_eos_as_pad=True)  # no EOS either
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")
    with pytest.raises(ValueError, match="no pad token"):
        ensure_pad_token(tokenizer, config)  # EOS only when asked for
    caplog.set_level(logging.INFO)
    ensure_pad_token(tokenizer, config, use_eos_as_pad=True)
    assert tokenizer.pad_token == "<eos>" and config.pad_token_id == tokenizer.eos_token_id
    assert "using its EOS token '<eos>' as padding" in caplog.text


def test_save_and_reload_keep_the_trained_head(tmp_path, tiny_config):
    import modeling_ponet  # noqa: F401  (AutoModel knows PoNet)

    model = PooledSequenceClassifier(PoNetModel(tiny_config()), "mean+attention", num_labels=3,
                                     id2label={0: "neg", 1: "neu", 2: "pos"}).eval()
    model.save_pretrained(tmp_path)
    reloaded = PooledSequenceClassifier.from_pretrained(tmp_path).eval()
    assert (reloaded.pooling, reloaded.num_labels, reloaded.id2label) == ("mean+attention", 3, model.id2label)
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 14, 3, 0]])
    with torch.no_grad():
        # a save/load round trip of the same weights, the same computation: exact
        torch.testing.assert_close(reloaded(ids, (ids != 0).long()).logits, model(ids, (ids != 0).long()).logits,
                                   rtol=0, atol=0)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "PoNetModel"  # the backbone folder stays standard
    with pytest.raises(ValueError, match="trained head for pooling='mean\\+attention'"):
        PooledSequenceClassifier.from_pretrained(tmp_path, pooling="max")
