"""Host-side helpers of the dense ops (gemm, softmax): the input's kind, where its kernel will run, and outputs of
the same kind (NumPy in -> NumPy out; torch in -> torch out on the same device)."""
from __future__ import annotations

import numpy as np

from ..errors import TilecArgumentError
from ..settings import settings

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


_dtype_names: dict = {}


def array_dtype(op: str, name: str, x) -> str:
    """tilec's name for x's dtype ('float16', 'bfloat16', 'float32', ...)."""
    if is_torch(x) or isinstance(x, np.ndarray):
        dt = x.dtype
        name = _dtype_names.get(dt)
        if name is None:  # NumPy's dtype.name takes microseconds; remembered per dtype object
            name = _dtype_names[dt] = str(dt).removeprefix("torch.") if is_torch(x) else dt.name
        return name
    raise TilecArgumentError(f"{op}: '{name}' must be a NumPy array or a torch tensor, got {type(x).__name__}")


def dtype_name(op: str, dtype) -> str:
    """'float16', np.float16, np.dtype('float16') or torch.float16 -> 'float16'."""
    if isinstance(dtype, str):
        return dtype
    if str(dtype).startswith("torch."):
        return str(dtype).removeprefix("torch.")
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise TilecArgumentError(f"{op}: {dtype!r} is not a dtype") from None


def backend_for(x, target: str | None) -> str:
    """Which default config fits: "llvm" (CPU), "triton" (CUDA) or "interpreter" (Triton on CPU tensors). Mirrors
    the runtime's choice: an explicit target, else TILEC_TARGET, else CUDA tensors -> triton, the rest -> llvm."""
    target = target or settings.target
    on_cuda = is_torch(x) and x.device.type == "cuda"
    if target is None:
        return "triton" if on_cuda else "llvm"
    if target == "triton":
        return "triton" if on_cuda else "interpreter"
    if target != "llvm":
        raise TilecArgumentError(f"target={target!r}: use 'llvm' or 'triton' (or leave it out)")
    return target


def empty_like_kind(x, shape, dtype: str):
    """An uninitialised array of x's kind (and device) with this shape and dtype."""
    if is_torch(x):
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype), device=x.device)
    if dtype == "bfloat16":
        import ml_dtypes  # NumPy has no bfloat16 of its own

        return np.empty(shape, dtype=ml_dtypes.bfloat16)
    return np.empty(shape, dtype=dtype)


def make_contiguous(x):
    return x.contiguous() if is_torch(x) else np.ascontiguousarray(x)
