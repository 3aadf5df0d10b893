"""LoRA adapters (PEFT) on PoNet's mixer projections take effect: gradients, training, merging, default targets."""

import pytest
import torch
from tolerance import assert_close
from conftest import REDUCTION, make_batch, naive_forward, random_weights
from torch import nn

import modeling_ponet as mp


peft = pytest.importorskip("peft")
from peft import LoraConfig, get_peft_model  # noqa: E402


PROJECTIONS = ("dense_q", "dense_k", "dense_o", "dense_segment", "dense_local")


def classifier(tiny_config):
    # mean pooling: with the CLS pooler, the last layer's SMP and LMP (zero at CLS) could not reach the loss
    config = tiny_config(hidden_dropout_prob=0.0, num_labels=2, classifier_pooling="mean")
    return random_weights(mp.PoNetForSequenceClassification(config))


def adapters(model):
    """{module name: lora module} of every adapted projection."""
    return {name: module for name, module in model.named_modules() if hasattr(module, "lora_A")}


def test_peft_knows_ponets_default_lora_targets(tiny_config):
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    assert set(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING["ponet"]) == set(PROJECTIONS)
    model = get_peft_model(classifier(tiny_config), LoraConfig(r=4, task_type="SEQ_CLS"))  # no target_modules
    adapted = sorted(name.split(".")[-1] for name in adapters(model))
    assert adapted == sorted(PROJECTIONS * tiny_config().num_hidden_layers)


@pytest.mark.parametrize("init_lora_weights", [True, False])
def test_every_adapter_gets_a_nonzero_gradient(tiny_config, init_lora_weights):
    config = LoraConfig(r=4, target_modules=list(PROJECTIONS), init_lora_weights=init_lora_weights)
    model = get_peft_model(classifier(tiny_config), config).train()
    ids, mask = make_batch()
    model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1])).loss.backward()
    found = adapters(model)
    assert len(found) == 5 * tiny_config().num_hidden_layers
    for name, module in found.items():
        # LoRA's B starts at zero, so A's gradient is zero until B moves; with random B both must get one.
        factors = [module.lora_B] if init_lora_weights else [module.lora_A, module.lora_B]
        for factor in factors:
            grad = factor["default"].weight.grad
            assert grad is not None and grad.abs().max() > 0, name


@pytest.mark.parametrize("target", [[name] for name in PROJECTIONS] + [None])
def test_trained_adapters_change_the_model_and_merge_into_the_same_model(tiny_config, target):
    base = classifier(tiny_config)
    ids, mask = make_batch()
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        before = base.eval()(input_ids=ids, attention_mask=mask).logits
    model = get_peft_model(base, LoraConfig(r=4, target_modules=target, task_type="SEQ_CLS")).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        unmerged = model(input_ids=ids, attention_mask=mask).logits
        merged_model = model.merge_and_unload()
        merged = merged_model(input_ids=ids, attention_mask=mask).logits
    assert (unmerged - before).abs().max() > 1e-3  # the adapters (and the head) trained
    assert_close(merged, unmerged, reduction=REDUCTION)
    mixer = merged_model.ponet.encoder.layer[0].attention.self
    assert all(type(getattr(mixer, name)) is nn.Linear for name in PROJECTIONS)  # back on the fused GEMMs


class ShiftedLinear(nn.Linear):
    """A wrapped projection: `Linear(x) + 1`."""

    def forward(self, x):
        return super().forward(x) + 1.0


@pytest.mark.parametrize("name", PROJECTIONS)
def test_a_wrapped_projection_is_called_as_a_module(model_for, name):
    model = model_for()
    ids, mask = make_batch()
    for layer in model.encoder.layer:
        mixer = layer.attention.self
        plain = getattr(mixer, name)
        wrapped = ShiftedLinear(plain.in_features, plain.out_features)
        wrapped.load_state_dict(plain.state_dict())
        setattr(mixer, name, wrapped)
    with torch.no_grad():
        out = model(ids, attention_mask=mask).last_hidden_state
        reference = naive_forward(model, ids, mask)[0]  # calls every projection as a module
    assert_close(out[mask.bool()], reference[mask.bool()], reduction=REDUCTION)


@pytest.fixture
def model_for(tiny_config):
    def make(**kwargs):
        kwargs.setdefault("hidden_dropout_prob", 0.0)
        return random_weights(mp.PoNetModel(tiny_config(**kwargs))).eval()

    return make
