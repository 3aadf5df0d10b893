"""Dynamic int8 quantization of a model's Linear layers, for inference on CPU.

`quantize_dynamic_int8(model)` returns a copy whose `nn.Linear` layers keep int8 weights (one scale per output
channel) and quantize their input on the fly, so every GEMM runs in int8 (fbgemm / oneDNN). LayerNorm,
embeddings, GELU and PoNet's pooling stay in float32. CPU only, inference only (no backward through int8).

Why `torch.ao.quantization.quantize_dynamic` and not torchao's `quantize_`: with torch 2.13 on CPU, torchao
0.18's int8 dynamic-activation config runs eager GEMMs *slower* than float32 (it needs `torch.compile` to fuse),
while torch.ao's dynamic Linear is about 3x faster than float32 on an AVX512-VNNI CPU. torch.ao's eager
quantization is deprecated in favour of torchao and prints warnings, which are silenced here.

PoNet's mixer computes its five projections as three GEMMs over concatenated weights (`projections()`), which
reads `layer.weight` tensors that a quantized Linear does not have. Each mixer therefore gets int8 copies of
those three fused GEMMs and a `projections` that uses them (same arithmetic, same outputs up to int8 rounding).
"""

import copy
import types
import warnings

import torch
from torch import nn


def _fused_linear(*layers: nn.Linear) -> nn.Linear:
    """One float Linear whose output is the concatenation of `layers`' outputs."""
    weight = torch.cat([layer.weight.detach() for layer in layers])
    bias = torch.cat([layer.bias.detach() for layer in layers])
    fused = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused


def _int8_projections(self, hidden_states):
    return self.int8_key_gate(hidden_states), self.dense_segment(hidden_states), self.int8_query_local(hidden_states)


def _is_ponet_mixer(module: nn.Module) -> bool:
    # By name, so that this works with the package's class and with a Hub checkpoint's remote-code copy of it.
    return type(module).__name__ == "PoNetPoolingMixer" and hasattr(module, "projections")


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` (float32, CPU) with every `nn.Linear` in dynamic int8; `model` itself is unchanged.

    Use it for inference: `model.eval()` is applied, and the copy has no gradients through its Linear layers.
    """
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("quantize_dynamic_int8 runs on CPU only: move the model with `.cpu()` first")
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("quantize_dynamic_int8 expects float32 weights: call `.float()` first")
    model = copy.deepcopy(model).eval()
    mixers = [m for m in model.modules() if _is_ponet_mixer(m)]
    for mixer in mixers:
        mixer.int8_key_gate = _fused_linear(mixer.dense_k, mixer.dense_o)
        mixer.int8_query_local = _fused_linear(mixer.dense_q, mixer.dense_local)
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    # quantize_dynamic swaps submodules only: a bare Linear goes in a container so that it is swapped too.
    holder = nn.Sequential(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices (see the module docstring)
        torch.ao.quantization.quantize_dynamic(holder, {nn.Linear: qconfig}, dtype=torch.qint8, inplace=True)
    model = holder[0]
    left = [name or "the model itself" for name, module in model.named_modules() if type(module) is nn.Linear]
    if left:
        raise RuntimeError(f"quantize_dynamic_int8 left float Linear layers: {', '.join(left)}")
    for mixer in mixers:
        # An instance attribute shadows the class's fused-float `projections`.
        mixer.projections = types.MethodType(_int8_projections, mixer)
    return model
