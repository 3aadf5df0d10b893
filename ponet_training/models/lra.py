"""The Long Range Arena encoder: one shell for every mixer, as the PoNet paper's LRA comparison ran it.

The shell (the same for every mixer, so that only the token mixing differs between two runs):
token embedding + learned absolute positions (no token-type table, no embedding LayerNorm), dropout; pre-LayerNorm
blocks `x = x + Drop(Mixer(LN(x)))`, `x = x + Drop(W2 Drop(GELU(W1 LN(x))))`; a final LayerNorm; the output
zeroed at padding. The classifier head is a mean over positions, then Linear-ReLU-Linear; for pair tasks
(Retrieval) both documents go through the same encoder and the head sees `[a, b, a * b, a - b]`.

Mixers, by name (`LRAConfig.mixer`):
- `ponet`: the package's own `PoNetPoolingMixer` (global aggregation, segment max-pooling over fixed blocks of
  `segment_size` tokens, local max-pooling, pooling fusion; no CLS/SEP), then an output Linear.
- `softmax`: multi-head softmax attention over the real tokens (a key-padding mask), attention dropout, an output
  Linear; `softmax_implementation` "sdpa" (`scaled_dot_product_attention`) or "eager" (the score matrix written
  out, as the published LRA code).
- `fnet`: the real part of the 2-D discrete Fourier transform over the sequence and hidden dimensions, no
  parameters (padding rows are zeroed before the transform; the transform still spans the padded length).

These are transformers models (`save_pretrained` / `from_pretrained`, gradient checkpointing, Accelerate), not
registered with the Auto classes: load a saved one with `LRAForSequenceClassification.from_pretrained(folder)`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

from modeling_ponet.configuration_ponet import PoNetConfig
from modeling_ponet.modeling_ponet import PoNetMixerInputs, PoNetPoolingMixer, build_mixer_inputs


LRA_MIXERS = ("ponet", "softmax", "fnet")
# "mean_with_padding": the published head (sum over all positions / length, padding rows being zero);
# "mean": over the real tokens only.
LRA_POOLING = ("mean_with_padding", "mean")


class LRAConfig(PreTrainedConfig):
    r"""
    Configuration of an LRA encoder and classifier. The defaults are the PoNet paper's LRA model (every task).

    Args:
        vocab_size (`int`): ids, padding (`pad_token_id`, 0) included.
        max_position_embeddings (`int`): rows of the learned position table (the published code: the longest
            input rounded up to a power of two).
        mixer (`str`, defaults to `"ponet"`): one of `LRA_MIXERS`.
        hidden_size / num_hidden_layers / num_attention_heads / intermediate_size: 64 / 2 / 2 / 128.
        hidden_dropout_prob (`float`, 0.1): dropout on the embeddings and both residual branches (and inside the
            feed-forward block).
        attention_probs_dropout_prob (`float`, 0.1): dropout on the softmax mixer's probabilities.
        segment_size (`int`, *optional*): PoNet's fixed segment blocks (default: the whole sequence, one block).
        local_window_size (`int`, 3): PoNet's local max-pooling window.
        softmax_implementation (`str`, `"sdpa"`): `"sdpa"` or `"eager"` for the softmax mixer.
        classifier_hidden_size (`int`, 128): width of the head's hidden layer.
        classifier_pooling (`str`, `"mean_with_padding"`): one of `LRA_POOLING`.
        pair (`bool`, False): a dual encoder over two documents (Retrieval).
        num_labels (`int`): classes.
        initializer_range (`float`, 0.02): std of the embeddings' normal initialisation (Linear layers keep
            PyTorch's default, as the published code).
        layer_norm_eps (`float`, 1e-5).
    """

    model_type = "lra_encoder"

    def __init__(self, vocab_size=257, max_position_embeddings=1024, mixer="ponet", hidden_size=64,
                 num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, segment_size=None, local_window_size=3,
                 softmax_implementation="sdpa", classifier_hidden_size=128, classifier_pooling="mean_with_padding",
                 pair=False, initializer_range=0.02, layer_norm_eps=1e-5, pad_token_id=0, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.mixer = mixer
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.segment_size = segment_size
        self.local_window_size = local_window_size
        self.softmax_implementation = softmax_implementation
        self.classifier_hidden_size = classifier_hidden_size
        self.classifier_pooling = classifier_pooling
        self.pair = pair
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.validate_lra()

    def validate_lra(self):
        """Raise a ValueError naming the field for a value the encoder cannot run with."""
        for name, allowed in (("mixer", LRA_MIXERS), ("classifier_pooling", LRA_POOLING),
                              ("softmax_implementation", ("sdpa", "eager"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                             f"({self.num_attention_heads})")
        if self.mixer == "ponet":
            self.ponet_mixer_config()  # PoNet's own checks of the window and the block size

    def ponet_mixer_config(self) -> PoNetConfig:
        """The `PoNetConfig` the PoNet mixer and its inputs are built from: no CLS/SEP handling (LRA inputs are
        bytes, pixels or ListOps symbols) and fixed blocks (one block of the whole table when `segment_size` is
        unset)."""
        return PoNetConfig(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                           num_attention_heads=self.num_attention_heads, local_window_size=self.local_window_size,
                           segment_size=self.segment_size or self.max_position_embeddings, clsgsepg=False,
                           pad_token_id=self.pad_token_id, max_position_embeddings=self.max_position_embeddings)


# ----------------------------------------------------------------------------------------------------------------
# The mixers. `prepare(valid)` turns the validity mask (bool `[batch, length]`) into what the mixer's `forward` takes
# besides the hidden states, once per forward pass for every layer; `forward(hidden_states, prepared)` ->
# `[batch, length, hidden]`.
# ----------------------------------------------------------------------------------------------------------------


class LRAPoNetMixer(nn.Module):
    """PoNet's pooling mixer (the package's `PoNetPoolingMixer`) over fixed blocks, then an output Linear."""

    def __init__(self, config: LRAConfig):
        super().__init__()
        self.ponet_config = config.ponet_mixer_config()
        self.pooling = PoNetPoolingMixer(self.ponet_config)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def prepare(self, valid: torch.Tensor) -> PoNetMixerInputs:
        # No input ids: nothing is CLS/SEP; the segments are the config's fixed blocks.
        return build_mixer_inputs(self.ponet_config, None, valid, None, *valid.shape, valid.device)

    def forward(self, hidden_states: torch.Tensor, mixer_inputs: PoNetMixerInputs) -> torch.Tensor:
        return self.output(self.pooling(hidden_states, mixer_inputs)[0])


class LRASoftmaxMixer(nn.Module):
    """Multi-head softmax self-attention over the real tokens, attention dropout, an output Linear."""

    def __init__(self, config: LRAConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.dropout = config.attention_probs_dropout_prob
        self.implementation = config.softmax_implementation
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def prepare(self, valid: torch.Tensor) -> torch.Tensor:
        return valid

    def forward(self, hidden_states: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = hidden_states.shape
        query, key, value = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        key_mask = valid[:, None, None, :]  # [batch, 1, 1, length]: True where a key may be attended
        dropout = self.dropout if self.training else 0.0
        if self.implementation == "sdpa":
            mixed = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask, dropout_p=dropout)
        else:
            scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
            scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
            mixed = F.dropout(scores.softmax(dim=-1), dropout, self.training) @ value
        return self.output(mixed.transpose(1, 2).reshape(batch, length, hidden))


class LRAFourierMixer(nn.Module):
    """FNet's token mixing: the real part of the 2-D DFT over sequence and hidden, at least in float32 (no
    parameters)."""

    def __init__(self, config: LRAConfig):
        super().__init__()

    def prepare(self, valid: torch.Tensor) -> torch.Tensor:
        return valid

    def forward(self, hidden_states: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # At least float32: the FFT has no half-precision kernel on CPU.
        zeroed = hidden_states.to(torch.promote_types(hidden_states.dtype, torch.float32))
        zeroed = zeroed.masked_fill(~valid.unsqueeze(-1), 0.0)
        return torch.fft.fft2(zeroed, dim=(-2, -1)).real.to(hidden_states.dtype)


MIXER_CLASSES = {"ponet": LRAPoNetMixer, "softmax": LRASoftmaxMixer, "fnet": LRAFourierMixer}


# ----------------------------------------------------------------------------------------------------------------
# The shell, in the order data flows
# ----------------------------------------------------------------------------------------------------------------


class LRAEmbeddings(nn.Module):
    """Token + learned absolute position embeddings, then dropout (no token types, no LayerNorm)."""

    def __init__(self, config: LRAConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        return self.dropout(self.word_embeddings(input_ids) + self.position_embeddings(positions))


class LRABlock(GradientCheckpointingLayer):
    """One pre-LayerNorm block: `x + Drop(Mixer(LN(x)))`, then `x + Drop(FFN(LN(x)))`."""

    def __init__(self, config: LRAConfig):
        super().__init__()
        self.mixer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mixer = MIXER_CLASSES[config.mixer](config)
        self.mixer_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size), nn.GELU(),
            nn.Dropout(config.hidden_dropout_prob), nn.Linear(config.intermediate_size, config.hidden_size),
            nn.Dropout(config.hidden_dropout_prob),
        )

    def forward(self, hidden_states: torch.Tensor, prepared) -> torch.Tensor:
        """`prepared`: what `self.mixer.prepare(valid)` returned (the same for every layer)."""
        hidden_states = hidden_states + self.mixer_dropout(self.mixer(self.mixer_norm(hidden_states), prepared))
        return hidden_states + self.feed_forward(self.feed_forward_norm(hidden_states))


class LRAPreTrainedModel(PreTrainedModel):
    config_class = LRAConfig
    config: LRAConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LRABlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        # The published LRA code draws the embeddings from N(0, 0.02) and keeps PyTorch's defaults elsewhere.
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)


class LRAEncoder(LRAPreTrainedModel):
    """The shell: embeddings, `num_hidden_layers` pre-LN blocks of `config.mixer`, a final LayerNorm; the output is
    zero at padding."""

    def __init__(self, config: LRAConfig):
        super().__init__(config)
        self.embeddings = LRAEmbeddings(config)
        self.layers = nn.ModuleList([LRABlock(config) for _ in range(config.num_hidden_layers)])
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> BaseModelOutput:
        """`input_ids` `[batch, length]` (0 = padding unless `attention_mask` says otherwise) ->
        `last_hidden_state` `[batch, length, hidden]`."""
        length = input_ids.shape[1]
        if length > self.config.max_position_embeddings:
            raise ValueError(f"The input has {length} tokens but the position table has "
                             f"{self.config.max_position_embeddings} rows (`config.max_position_embeddings`)")
        valid = (input_ids != self.config.pad_token_id) if attention_mask is None else attention_mask.bool()
        hidden_states = self.embeddings(input_ids)
        prepared = self.layers[0].mixer.prepare(valid)  # every layer's mixer is of the same kind
        for layer in self.layers:
            hidden_states = layer(hidden_states, prepared)
        hidden_states = self.final_norm(hidden_states) * valid.unsqueeze(-1).to(hidden_states.dtype)
        return BaseModelOutput(last_hidden_state=hidden_states)


class LRAForSequenceClassification(LRAPreTrainedModel):
    """The LRA classifier: the encoder, a mean over positions and Linear-ReLU-Linear; with `config.pair`, both
    documents through the one encoder and the head on `[a, b, a * b, a - b]`."""

    def __init__(self, config: LRAConfig):
        super().__init__(config)
        self.encoder = LRAEncoder(config)
        features = config.hidden_size * (4 if config.pair else 1)
        self.classifier = nn.Sequential(nn.Linear(features, config.classifier_hidden_size), nn.ReLU(),
                                        nn.Linear(config.classifier_hidden_size, config.num_labels))
        self.post_init()

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One vector per sequence `[batch, hidden]`: the mean of the encoder's output over positions."""
        states = self.encoder(input_ids, attention_mask).last_hidden_state
        if self.config.classifier_pooling == "mean_with_padding":  # padding rows are zero: sum / length
            return states.mean(dim=1)
        valid = (input_ids != self.config.pad_token_id) if attention_mask is None else attention_mask.bool()
        return states.sum(dim=1) / valid.sum(dim=1, keepdim=True).clamp(min=1).to(states.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                input_ids_2: torch.Tensor | None = None, attention_mask_2: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        """`input_ids` `[batch, length]` (and `input_ids_2` for pair tasks), `labels` `[batch]` -> `logits`
        `[batch, num_labels]` and, with labels, the cross-entropy `loss`."""
        if self.config.pair != (input_ids_2 is not None):
            raise ValueError("A pair task (config.pair) takes `input_ids` and `input_ids_2`; a single-sequence task "
                             "takes `input_ids` only")
        features = self.pool(input_ids, attention_mask)
        if self.config.pair:
            other = self.pool(input_ids_2, attention_mask_2)
            features = torch.cat([features, other, features * other, features - other], dim=-1)
        logits = self.classifier(features)
        loss = None
        if labels is not None:  # in float32 at least (half-precision logits under autocast)
            loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = ["LRAConfig", "LRAEncoder", "LRAForSequenceClassification", "LRA_MIXERS", "LRA_POOLING", "MIXER_CLASSES"]
