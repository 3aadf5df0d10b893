"""`config.sparse_prediction`: the MLM heads run only at labelled tokens, with the dense head's loss and gradients.

Off by default: without the option (and always without labels) the heads, the Auto classes and the fill-mask
pipeline give what they gave before.
"""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForPreTraining, pipeline

import modeling_ponet as mp


HEADS = {"pretraining": mp.PoNetForPreTraining, "mlm": mp.PoNetForMaskedLM}


def make_batch(tokenizer, vocab_size: int, batch: int = 3, length: int = 24):
    """Random words between [CLS] ... [SEP] ... [SEP], right padding in the last row, ~20% of real tokens labelled."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(10, vocab_size, (batch, length), generator=generator)
    ids[:, 0] = tokenizer.cls_token_id
    ids[:, length // 2] = tokenizer.sep_token_id
    ids[:, -1] = tokenizer.sep_token_id
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, length - 5:] = 0
    ids[-1, length - 5:] = tokenizer.pad_token_id
    labels = torch.where(torch.rand(batch, length, generator=generator) < 0.2, ids, -100)
    labels[mask == 0] = -100
    labels[0, 1] = ids[0, 1]  # at least one label
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "sentence_structural_label": torch.tensor([0, 1, 2])[:batch]}


def inputs_for(head: str, batch: dict) -> dict:
    return batch if head == "pretraining" else {k: v for k, v in batch.items() if k != "sentence_structural_label"}


def loss_and_grads(model, inputs):
    model.zero_grad(set_to_none=True)
    out = model(**inputs)
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("head", sorted(HEADS))
def test_sparse_prediction_gives_the_dense_loss_and_gradients(head, tiny_config, tiny_tokenizer):
    # No dropout, so that the two passes compute the same function (dropout masks would differ by RNG use only).
    config = tiny_config(hidden_dropout_prob=0.0)
    model = HEADS[head](config).float()
    batch = inputs_for(head, make_batch(tiny_tokenizer, config.vocab_size))
    dense_out, dense_grads = loss_and_grads(model, batch)
    model.config.sparse_prediction = True
    sparse_out, sparse_grads = loss_and_grads(model, batch)

    # float32 rounding of a sum over a few hundred terms: relative 1e-5, absolute scaled by each tensor's magnitude.
    torch.testing.assert_close(sparse_out.loss, dense_out.loss, rtol=1e-5, atol=1e-6 * dense_out.loss.abs().item())
    assert dense_grads.keys() == sparse_grads.keys() and len(dense_grads) == len(list(model.parameters()))
    for name, expected in dense_grads.items():
        scale = expected.abs().max().item()
        torch.testing.assert_close(sparse_grads[name], expected, rtol=1e-5, atol=1e-5 * scale + 1e-12, msg=name)
    logits_name = "prediction_logits" if head == "pretraining" else "logits"
    scored = batch["labels"] != -100
    # The sparse logits are the dense ones at the labelled tokens, in row-major order.
    torch.testing.assert_close(getattr(sparse_out, logits_name), getattr(dense_out, logits_name)[scored],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_the_decoder_never_computes_the_full_logits_and_the_backward_keeps_less(head, tiny_config, tiny_tokenizer):
    config = tiny_config(sparse_prediction=True)
    model = HEADS[head](config)
    batch = inputs_for(head, make_batch(tiny_tokenizer, config.vocab_size))
    n_scored = int((batch["labels"] != -100).sum())
    shapes = []
    model.cls.predictions.decoder.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))

    def saved_bytes() -> int:
        # What autograd keeps for the backward (distinct storages, parameters excluded): the dense head keeps its
        # [batch * length, vocab] scores for the loss's backward, the sparse one [labelled tokens, vocab].
        parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        storages = {}

        def pack(tensor):
            if tensor.untyped_storage().data_ptr() not in parameters:
                storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(**batch).loss.backward()
        return sum(storages.values())

    sparse = saved_bytes()
    assert shapes == [(n_scored, config.vocab_size)]
    model.config.sparse_prediction = False
    dense = saved_bytes()
    assert shapes[-1] == (*batch["labels"].shape, config.vocab_size)
    unlabelled = batch["labels"].numel() - n_scored
    assert dense - sparse >= unlabelled * config.vocab_size * 4  # at least one float32 [unlabelled, vocab] tensor


@pytest.mark.parametrize("head", sorted(HEADS))
def test_without_labels_or_with_the_option_off_the_logits_are_dense(head, tiny_config, tiny_tokenizer):
    assert mp.PoNetConfig().sparse_prediction is False
    config = tiny_config()
    model = HEADS[head](config).eval()
    batch = inputs_for(head, make_batch(tiny_tokenizer, config.vocab_size))
    name = "prediction_logits" if head == "pretraining" else "logits"
    with torch.no_grad():
        dense = getattr(model(**batch), name)
        model.config.sparse_prediction = True
        unlabelled = {k: v for k, v in batch.items() if k != "labels"}
        no_labels = getattr(model(**unlabelled), name)
    assert dense.shape == (*batch["labels"].shape, config.vocab_size)
    torch.testing.assert_close(no_labels, dense, rtol=0, atol=0)


def test_auto_classes_load_it_off_and_the_fill_mask_pipeline_does_not_change_with_it(tiny_config, tiny_tokenizer,
                                                                                     tmp_path):
    mp.PoNetForPreTraining(tiny_config()).save_pretrained(tmp_path / "off")
    tiny_tokenizer.save_pretrained(tmp_path / "off")
    # Folders saved before the option existed (the published checkpoint's) have no such key: off.
    config_file = tmp_path / "off" / "config.json"
    saved = json.loads(config_file.read_text())
    assert saved.pop("sparse_prediction") is False
    config_file.write_text(json.dumps(saved))
    assert AutoConfig.from_pretrained(tmp_path / "off").sparse_prediction is False
    for auto in (AutoModelForPreTraining, AutoModelForMaskedLM):
        assert auto.from_pretrained(tmp_path / "off").config.sparse_prediction is False

    model = AutoModelForPreTraining.from_pretrained(tmp_path / "off")
    model.config.sparse_prediction = True
    model.save_pretrained(tmp_path / "on")
    tiny_tokenizer.save_pretrained(tmp_path / "on")
    assert AutoModelForMaskedLM.from_pretrained(tmp_path / "on").config.sparse_prediction is True
    # The pipeline passes no labels: the same predictions, scores included, with the option on or off.
    text = "the quick [MASK] jumps over the lazy dog"
    off = pipeline("fill-mask", model=str(tmp_path / "off"), device="cpu")(text, top_k=5)
    on = pipeline("fill-mask", model=str(tmp_path / "on"), device="cpu")(text, top_k=5)
    assert [p["token"] for p in on] == [p["token"] for p in off]
    assert [p["score"] for p in on] == pytest.approx([p["score"] for p in off], rel=1e-6)


def test_a_non_bool_sparse_prediction_is_one_clear_error():
    with pytest.raises(ValueError, match="`sparse_prediction` must be a bool, got 'yes'"):
        mp.PoNetConfig(sparse_prediction="yes")


def test_a_saved_training_model_has_sparse_prediction_off_and_the_live_one_keeps_it(tiny_config, tiny_tokenizer,
                                                                                     tmp_path):
    from accelerate import Accelerator

    from ponet_training.engine.saving import save_model

    model = mp.PoNetForPreTraining(tiny_config(sparse_prediction=True))
    save_model(Accelerator(cpu=True), model, tiny_tokenizer, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["sparse_prediction"] is False
    assert model.config.sparse_prediction is True  # training goes on sparse after a checkpoint of the best model
