"""Any Hugging Face backbone + `SequencePooler` + a linear classifier, for encoders and decoders alike.

`PooledSequenceClassifier` puts one pooling head on top of whatever `AutoModel` returns (BERT, PoNet,
RoBERTa, GPT-2, Llama, ...), so that the pooling strategy is the only thing that changes between two
runs of the pooling study. The loss is transformers' own sequence-classification loss (`ForSequenceClassificationLoss`,
the `problem_type` rule of BERT and of `PoNetForSequenceClassification`: regression / single-label / multi-label
classification), and `freeze_backbone=True` gives the linear-probe regime (only the pooler's learned weights, if
any, and the classifier train).

- `PooledSequenceClassifier`, `PooledClassifierOutput`.
- `ensure_pad_token(tokenizer, config, use_eos_as_pad)`.
"""

import json
import logging
import os
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from transformers.utils import ModelOutput

from modeling_ponet.pooling import SequencePooler, parse_pooling_modes


logger = logging.getLogger(__name__)

HEAD_CONFIG_NAME = "pooled_classifier_config.json"
HEAD_WEIGHTS_NAME = "pooled_classifier_head.safetensors"
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


@dataclass
class PooledClassifierOutput(ModelOutput):
    """Output of `PooledSequenceClassifier`.

    Args:
        loss: `[]`, present when `labels` are given.
        logits: `[batch, num_labels]`.
        pooled_output: `[batch, pooler.output_size]`, the sentence vectors fed to the classifier.
        hidden_states: the backbone's last hidden states `[batch, length, hidden]`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None


def missing_pad_token_message(name: str) -> str:
    return (
        f"{name} has no pad token, so batches of different lengths cannot be padded and masked. Set one "
        "before building the classifier; for decoders such as GPT-2 the usual choice is the EOS token: "
        "`tokenizer.pad_token = tokenizer.eos_token` and `config.pad_token_id = tokenizer.eos_token_id` "
        "(the attention mask, not the token id, tells the pooler which tokens are padding)."
    )


def ensure_pad_token(
    tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig | None = None, use_eos_as_pad: bool = False
) -> PreTrainedTokenizerBase:
    """Make sure `tokenizer` (and `config`, when given) have a pad token, or raise a ValueError saying how to set one.

    With `use_eos_as_pad=True`, a tokenizer without a pad token but with an EOS token gets EOS as its pad token
    (logged), as is usual for GPT-2 and other decoders. `config.pad_token_id` is then set to the tokenizer's.
    """
    name = getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
    if tokenizer.pad_token is None:
        if use_eos_as_pad and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
            logger.info(f"Tokenizer {name!r} has no pad token: using its EOS token {tokenizer.eos_token!r} as padding")
        else:
            raise ValueError(missing_pad_token_message(f"The tokenizer {name!r}"))
    if config is not None and config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def _default_dropout(config: PretrainedConfig) -> float:
    for name in ("classifier_dropout", "hidden_dropout_prob", "hidden_dropout", "resid_pdrop", "dropout"):
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.1


class PooledSequenceClassifier(nn.Module):
    """A backbone returning token states, a `SequencePooler` and a linear classifier.

    Args:
        backbone: a model whose output has `last_hidden_state` `[batch, length, hidden]` (what `AutoModel` gives
            for encoders and decoders). Its config must have a `pad_token_id` (see `ensure_pad_token`).
        pooling: a pooling mode of `POOLING_MODES`, or several joined by `+` (concatenated).
        num_labels: number of outputs; 1 means regression.
        problem_type: `"regression"`, `"single_label_classification"` or `"multi_label_classification"`;
            inferred from `num_labels` and the labels' dtype when None (as in `BertForSequenceClassification`).
        classifier_dropout: dropout on the pooled vector; defaults to the backbone config's classifier/hidden dropout.
        freeze_backbone: linear-probe regime: the backbone gets no gradients and stays in eval mode (no dropout)
            even under `.train()`; the pooler's own weights (`weighted_sum`, `attention`) and the classifier train.
        cls_from_pooler: for the `cls` mode, use the backbone's `pooler_output` when it has one (BERT's and PoNet's
            `tanh(Dense(h[CLS]))`, what their sequence-classification heads use); otherwise the first real token.
        id2label: optional label names, stored with the saved head.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        pooling="mean",
        num_labels: int = 2,
        problem_type: str | None = None,
        classifier_dropout: float | None = None,
        freeze_backbone: bool = False,
        cls_from_pooler: bool = True,
        id2label: dict | None = None,
    ):
        super().__init__()
        config = backbone.config
        if getattr(config, "is_encoder_decoder", False):
            raise ValueError(
                f"{type(backbone).__name__} is an encoder-decoder model; pass its encoder as the backbone "
                "(e.g. `T5EncoderModel`) so that it returns one sequence of token states"
            )
        if config.pad_token_id is None:
            raise ValueError(missing_pad_token_message(f"The backbone {config.name_or_path or type(backbone).__name__!r}"))
        if problem_type is not None and problem_type not in PROBLEM_TYPES:
            raise ValueError(f"Unknown problem_type {problem_type!r}: choose from {PROBLEM_TYPES}")
        if not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"`num_labels` must be a positive integer, got {num_labels!r}")
        hidden_size = getattr(config, "hidden_size", None)
        if hidden_size is None:
            raise ValueError(f"Cannot tell the hidden size of {type(backbone).__name__}: its config has no `hidden_size`")

        self.backbone = backbone
        self.pooling = "+".join(parse_pooling_modes(pooling))
        self.num_labels = num_labels
        self.problem_type = problem_type
        self.classifier_dropout = _default_dropout(config) if classifier_dropout is None else classifier_dropout
        self.freeze_backbone = freeze_backbone
        self.cls_from_pooler = cls_from_pooler
        self.id2label = {int(k): v for k, v in id2label.items()} if id2label else None
        self._warned_no_mask = False

        self.pooler = SequencePooler(hidden_size, self.pooling)
        self.dropout = nn.Dropout(self.classifier_dropout)
        self.classifier = nn.Linear(self.pooler.output_size, num_labels)
        std = getattr(config, "initializer_range", None) or 0.02
        for module in self.head_modules():
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.normal_(sub.weight, mean=0.0, std=std)
                    if sub.bias is not None:
                        nn.init.zeros_(sub.bias)
        if hasattr(self.pooler, "attention_query"):
            nn.init.normal_(self.pooler.attention_query, mean=0.0, std=std)
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        own_pooler = getattr(self.backbone, "pooler", None)
        if isinstance(own_pooler, nn.Module) and not ("cls" in self.pooler.modes and cls_from_pooler):
            # BERT/PoNet's pooler is computed but unused here: without gradients it would stall DDP.
            own_pooler.requires_grad_(False)

    @property
    def config(self) -> PretrainedConfig:
        """The backbone's config."""
        return self.backbone.config

    def head_modules(self) -> list[nn.Module]:
        """The modules on top of the backbone (pooler and classifier)."""
        return [self.pooler, self.classifier]

    def num_trainable_parameters(self) -> int:
        """Parameters that receive gradients (everything, or only the head when the backbone is frozen)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # a frozen backbone is a fixed feature extractor: no dropout
        return self

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        pooling=None,
        num_labels: int | None = None,
        config: PretrainedConfig | None = None,
        trust_remote_code: bool = False,
        backbone_kwargs: dict | None = None,
        **kwargs,
    ) -> "PooledSequenceClassifier":
        """Load the backbone with `AutoModel.from_pretrained` and add a new pooling head.

        When `model_name_or_path` is a folder written by `save_pretrained` of this class, its trained head
        (pooling, classifier weights, labels) is loaded too; `pooling` / `num_labels` may then be left None.
        `config` overrides the backbone's config (e.g. one with `pad_token_id` set); other kwargs go to `__init__`.
        """
        head_config = {}
        head_config_file = os.path.join(str(model_name_or_path), HEAD_CONFIG_NAME)
        if os.path.isfile(head_config_file):
            with open(head_config_file) as f:
                head_config = json.load(f)
        if config is None:
            config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        backbone = AutoModel.from_pretrained(
            model_name_or_path, config=config, trust_remote_code=trust_remote_code, **(backbone_kwargs or {})
        )
        settings = {k: v for k, v in head_config.items() if k != "format_version"}
        settings.update({k: v for k, v in dict(pooling=pooling, num_labels=num_labels, **kwargs).items() if v is not None})
        settings.setdefault("pooling", "mean")
        settings.setdefault("num_labels", 2)
        model = cls(backbone, **settings)
        if head_config:
            if (settings["pooling"], settings["num_labels"]) != (head_config["pooling"], head_config["num_labels"]):
                raise ValueError(
                    f"{model_name_or_path} holds a trained head for pooling={head_config['pooling']!r}, "
                    f"num_labels={head_config['num_labels']}; it cannot be loaded as pooling={settings['pooling']!r}, "
                    f"num_labels={settings['num_labels']}"
                )
            from safetensors.torch import load_file

            state = load_file(os.path.join(str(model_name_or_path), HEAD_WEIGHTS_NAME))
            model.load_head_state_dict(state)
        return model

    def head_state_dict(self) -> dict:
        """State dict of the pooler and the classifier (prefixed `pooler.` / `classifier.`)."""
        state = {f"pooler.{k}": v for k, v in self.pooler.state_dict().items()}
        state.update({f"classifier.{k}": v for k, v in self.classifier.state_dict().items()})
        return state

    def load_head_state_dict(self, state: dict):
        """Load what `head_state_dict` returned; missing or unexpected keys raise."""
        pooler = {k[len("pooler."):]: v for k, v in state.items() if k.startswith("pooler.")}
        classifier = {k[len("classifier."):]: v for k, v in state.items() if k.startswith("classifier.")}
        if len(pooler) + len(classifier) != len(state):
            raise ValueError(f"Unexpected keys in the head state dict: {sorted(set(state) - set(self.head_state_dict()))}")
        self.pooler.load_state_dict(pooler)
        self.classifier.load_state_dict(classifier)

    def save_pretrained(self, save_directory: str, **kwargs):
        """Save the backbone (`save_pretrained`, kwargs passed on), the head weights and the head settings."""
        from safetensors.torch import save_file

        os.makedirs(save_directory, exist_ok=True)
        self.backbone.save_pretrained(save_directory, **kwargs)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.head_state_dict().items()},
                  os.path.join(save_directory, HEAD_WEIGHTS_NAME))
        head_config = dict(
            format_version=1,
            pooling=self.pooling,
            num_labels=self.num_labels,
            problem_type=self.problem_type,
            classifier_dropout=self.classifier_dropout,
            freeze_backbone=self.freeze_backbone,
            cls_from_pooler=self.cls_from_pooler,
            id2label=self.id2label,
        )
        with open(os.path.join(save_directory, HEAD_CONFIG_NAME), "w") as f:
            json.dump(head_config, f, indent=2)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        last_hidden_state: torch.Tensor | None = None,
        pooler_output: torch.Tensor | None = None,
        **backbone_inputs,
    ) -> PooledClassifierOutput:
        """Classify sequences. `input_ids` / `attention_mask` `[batch, length]` (1 = real token; None means no
        padding); other keyword arguments (`token_type_ids`, PoNet's `segment_ids`, `inputs_embeds`, ...) go to
        the backbone. `last_hidden_state` `[batch, length, hidden]` (and `pooler_output` `[batch, hidden]`): the
        backbone's outputs computed beforehand (a frozen backbone), used instead of running it. `labels`: `[batch]`
        class ids, `[batch]` / `[batch, 1]` floats for regression, or `[batch, num_labels]` multi-hot floats."""
        if (attention_mask is None and input_ids is not None and not self._warned_no_mask
                and (input_ids == self.config.pad_token_id).any()):
            self._warned_no_mask = True
            logger.warning(
                "Some input_ids equal the pad token id but no attention_mask was given: every token is pooled. "
                "Pass the tokenizer's attention_mask."
            )
        backbone_inputs = {k: v for k, v in backbone_inputs.items() if v is not None}
        if last_hidden_state is not None:  # the frozen backbone's states, computed beforehand
            hidden_states, cls_output = last_hidden_state, pooler_output if self.cls_from_pooler else None
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
                outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                        **backbone_inputs)
            hidden_states = outputs.last_hidden_state
            cls_output = getattr(outputs, "pooler_output", None) if self.cls_from_pooler else None
        if attention_mask is not None:
            attention_mask = attention_mask.to(hidden_states.device)
        pooled = self.pooler(hidden_states, attention_mask, cls_output=cls_output)
        logits = self.classifier(self.dropout(pooled.to(self.classifier.weight.dtype)))

        loss = None
        if labels is not None:
            if labels.is_floating_point():  # regression / multi-hot targets in the logits' dtype
                labels = labels.to(logits.dtype)
            # The problem type is inferred per call when not set (this head has no config of its own to keep it in).
            rule = SimpleNamespace(num_labels=self.num_labels, problem_type=self.problem_type)
            loss = ForSequenceClassificationLoss(labels, logits, rule)
        return PooledClassifierOutput(loss=loss, logits=logits, pooled_output=pooled, hidden_states=hidden_states)


__all__ = ["PooledSequenceClassifier", "PooledClassifierOutput", "ensure_pad_token", "PROBLEM_TYPES"]
