"""A float32 model at an inference precision on CPU: the one definition of what each precision name means, shared by
experiments/precision_accuracy.py and the precision tests (benchmarks/bench_speed.py also measures training steps
and CUDA, and builds its models at each precision itself).

  fp32           the model as it is.
  bf16_autocast  float32 weights under `torch.autocast("cpu", dtype=torch.bfloat16)` (what Accelerate's
                 `--mixed_precision bf16` runs): the matrix multiplies in bfloat16, LayerNorm and softmax in float32.
  bf16_weights   a copy cast to bfloat16 (`.to(torch.bfloat16)`): half the memory, every op in bfloat16.
  int8           a copy with every Linear in dynamic int8 (`quantize_dynamic_int8`).
"""

import copy
from contextlib import nullcontext

import torch
from torch import nn

from ponet_training.inference.quantization import quantize_dynamic_int8


INFERENCE_PRECISIONS = ("fp32", "bf16_autocast", "bf16_weights", "int8")


def in_precision(model: nn.Module, precision: str):
    """(the model to call, the context to call it in) for `precision`; `model` itself is never changed."""
    if precision == "fp32":
        return model, nullcontext()
    if precision == "bf16_autocast":
        return model, torch.autocast("cpu", dtype=torch.bfloat16)
    if precision == "bf16_weights":
        return copy.deepcopy(model).to(torch.bfloat16), nullcontext()
    if precision == "int8":
        return quantize_dynamic_int8(model), nullcontext()
    raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(INFERENCE_PRECISIONS)}")
