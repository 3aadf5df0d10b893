"""Float comparisons for the suite: tolerances that follow from the dtype and the magnitude of what is compared.

Two computations of the same value that differ only in the order of their sums (another GEMM kernel, AVX2 vs
AVX-512 vs AMX, another thread count, another process or transformers version) differ by rounding. One sum of
`reduction` terms is off by about `eps * sqrt(reduction) * |terms|` (rounding errors add like a random walk; the
worst case, `eps * reduction`, needs every error to have the same sign). We allow `SLACK` times that, relative to
each element (`rtol`) and, for elements near zero where cancellation leaves the large terms' error behind, relative
to the largest magnitude of the expected tensor (`atol`). LayerNorm renormalises after every layer, so the longest
single sum of a layer (usually `intermediate_size`), not the depth, sets `reduction` for a whole model.

A bug (a wrong mask, a padding leak, a missing bias) moves results by a sizeable fraction of their scale, far above
these bounds. Results of one computation repeated (a save/load round trip, the same call twice, a copy) are compared
exactly instead, and say so where they are.
"""

import math

import torch


SLACK = 8  # headroom over the random-walk estimate: it covers eps * sqrt(n) fluctuations up to ~8 sigma


def float_tolerance(expected: torch.Tensor, *, reduction: int = 1, dtype: torch.dtype | None = None) -> tuple[float, float]:
    """(rtol, atol) for comparing a recomputation of `expected` (its dtype unless `dtype` is given)."""
    eps = torch.finfo(dtype or expected.dtype).eps
    rtol = SLACK * eps * math.sqrt(reduction)
    scale = expected.detach().abs().max().item() if expected.numel() else 0.0
    return rtol, rtol * max(scale, torch.finfo(torch.float32).tiny)


def assert_close(actual, expected, *, reduction: int = 1, dtype: torch.dtype | None = None, msg=None):
    """`torch.testing.assert_close` at `float_tolerance(expected, reduction=..., dtype=...)`."""
    expected = torch.as_tensor(expected)
    rtol, atol = float_tolerance(expected, reduction=reduction, dtype=dtype)
    torch.testing.assert_close(torch.as_tensor(actual), expected, rtol=rtol, atol=atol, msg=msg)
