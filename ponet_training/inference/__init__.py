"""Inference-only tools (no training script runs them): what each inference precision means, and dynamic int8.

- `precision.py`: `in_precision(model, precision)`, `INFERENCE_PRECISIONS`.
- `quantization.py`: `quantize_dynamic_int8(model)`.
"""
