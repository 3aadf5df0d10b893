"""PoNet model configuration.

Saved next to the weights for `trust_remote_code` users: it imports only transformers and `pooling.py`, and runs on
transformers 4.52+ and 5.x (docs/hub_files.md).
"""

try:
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4 spells it PretrainedConfig
    from transformers import PretrainedConfig as PreTrainedConfig

from .pooling import parse_pooling_modes


# The Auto classes a saved PoNet folder maps to its own code, so that every head loads with
# `trust_remote_code=True` (transformers' `save_pretrained` would only record the saved class).
PONET_AUTO_MAP = {
    "AutoConfig": "configuration_ponet.PoNetConfig",
    "AutoModel": "modeling_ponet.PoNetModel",
    "AutoModelForPreTraining": "modeling_ponet.PoNetForPreTraining",
    "AutoModelForMaskedLM": "modeling_ponet.PoNetForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_ponet.PoNetForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_ponet.PoNetForTokenClassification",
    "AutoModelForMultipleChoice": "modeling_ponet.PoNetForMultipleChoice",
    "AutoModelForQuestionAnswering": "modeling_ponet.PoNetForQuestionAnswering",
}

class PoNetConfig(PreTrainedConfig):
    r"""
    Configuration of a PoNet model ([PoNet: Pooling Network for Efficient Token Mixing in Long
    Sequences](https://arxiv.org/abs/2110.02442)). The defaults give the published base model
    (`chtan/ponet-base-uncased`).

    Args:
        vocab_size (`int`, defaults to 30522): size of the WordPiece vocabulary (bert-base-uncased's).
        hidden_size (`int`, defaults to 768): width of the encoder.
        num_hidden_layers (`int`, defaults to 12): number of PoNet layers.
        num_attention_heads (`int`, defaults to 12): heads of the global aggregation; must divide `hidden_size`.
        intermediate_size (`int`, defaults to 3072): width of the feed-forward block.
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation.
        hidden_dropout_prob (`float`, defaults to 0.1): dropout on embeddings and residual branches.
        attention_probs_dropout_prob (`float`, defaults to 0.1): kept for BERT compatibility; PoNet has no
            attention-probability dropout (the published model does not use it).
        max_position_embeddings (`int`, defaults to 512): rows of the learned position table; longer inputs raise.
        type_vocab_size (`int`, defaults to 2): token type vocabulary.
        initializer_range (`float`, defaults to 0.02): std of the normal initialiser.
        layer_norm_eps (`float`, defaults to 1e-12): LayerNorm epsilon.
        pad_token_id / cls_token_id / sep_token_id (`int`, defaults to 0 / 101 / 102): special ids. CLS and SEP
            delimit the segments when no `segment_ids` are given (the published code hard-codes 101/102).
        clsgsepg (`bool`, defaults to `True`): keep CLS/SEP out of segment and local max-pooling (their pooled
            features are zeroed, and they do not feed their neighbours' local max).
        local_window_size (`int`, defaults to 3): odd window of the local max-pooling.
        segment_size (`int`, *optional*): when set and no `segment_ids` are passed, segments are fixed contiguous
            blocks of this many tokens (LRA-style inputs without CLS/SEP) instead of CLS/SEP-delimited spans. It
            needs `clsgsepg=False`: in such inputs the CLS/SEP ids are ordinary tokens (bytes, pixels), which
            `clsgsepg` would keep out of the pooling.
        classifier_pooling (`str` or list, defaults to `"cls"`): how sequence-level heads turn tokens into one
            vector: `"cls"` (the pooler, as published), `"last"`, `"mean"`, `"max"`, `"weighted_sum"`,
            `"weighted_mean"`, `"attention"`, or several joined by `"+"` (concatenated).
        classifier_dropout (`float`, *optional*): dropout before classification heads (defaults to
            `hidden_dropout_prob`).
        tie_word_embeddings (`bool`, defaults to `True`): tie the MLM decoder to the word embeddings.
        sparse_prediction (`bool`, defaults to `False`): when `labels` are given to the MLM heads, run the prediction
            head only at the labelled tokens (`labels != -100`), as ModernBERT's option of the same name: the same
            loss and gradients, without the `[batch, length, vocab_size]` logits; the logits returned are then
            `[labelled tokens, vocab_size]`. Calls without labels (inference, pipelines) are unchanged.
        bos_token_id / eos_token_id (`int`, *optional*): unused by PoNet (BERT-style inputs have none); kept so that
            transformers' generic checks find them, as on `BertConfig`.
    """

    model_type = "ponet"

    def __init__(
        self,
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        cls_token_id=101,
        sep_token_id=102,
        clsgsepg=True,
        local_window_size=3,
        segment_size=None,
        classifier_pooling="cls",
        classifier_dropout=None,
        tie_word_embeddings=True,
        sparse_prediction=False,
        bos_token_id=None,
        eos_token_id=None,
        **kwargs,
    ):
        # Every PoNet folder saves the full map, also one loaded from a folder with fewer entries (the published
        # checkpoint maps 4 Auto classes, to files it has); extra entries a folder may have are kept.
        kwargs["auto_map"] = {**(kwargs.get("auto_map") or {}), **PONET_AUTO_MAP}
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.pad_token_id = pad_token_id
        self.cls_token_id = cls_token_id
        self.sep_token_id = sep_token_id
        # Not used by PoNet; transformers' checks (e.g. the missing-attention-mask warning) read them.
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.clsgsepg = clsgsepg
        self.local_window_size = local_window_size
        self.segment_size = segment_size
        self.classifier_pooling = classifier_pooling
        self.classifier_dropout = classifier_dropout
        self.tie_word_embeddings = tie_word_embeddings
        self.sparse_prediction = sparse_prediction
        self.validate_ponet()

    def validate_ponet(self):
        """Raise a ValueError naming the field for any value the model cannot run with."""

        def positive_int(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            positive_int(name)
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                f"({self.num_attention_heads})"
            )
        positive_int("local_window_size")
        if self.local_window_size % 2 == 0:
            raise ValueError(f"`local_window_size` must be odd (a centred window), got {self.local_window_size}")
        if self.segment_size is not None:
            positive_int("segment_size")
            if self.clsgsepg is True:
                raise ValueError(
                    f"`segment_size` ({self.segment_size}) gives fixed segments for inputs without CLS/SEP, but "
                    f"`clsgsepg=True` would still treat ids {self.cls_token_id} and {self.sep_token_id} as CLS/SEP "
                    "(zeroing their pooled features): pass `clsgsepg=False` with `segment_size`"
                )
        for name in ("clsgsepg", "sparse_prediction"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool, got {getattr(self, name)!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value!r}")
        if self.classifier_dropout is not None and not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"`classifier_dropout` must be None or in [0, 1), got {self.classifier_dropout!r}")
        if not isinstance(self.hidden_act, str) and not callable(self.hidden_act):
            raise ValueError(f"`hidden_act` must be an activation name, got {self.hidden_act!r}")
        try:
            self.classifier_pooling = "+".join(parse_pooling_modes(self.classifier_pooling))
        except ValueError as err:
            raise ValueError(f"`classifier_pooling`: {err}") from None


__all__ = ["PoNetConfig", "PONET_AUTO_MAP"]
