"""Host-side helpers of the ops: argument checks that name the argument and the expected shape, where an op's
kernel will run, and arrays of the caller's kind (NumPy -> NumPy, torch -> torch on the same device)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import TilecArgumentError
from ..settings import settings

FLOAT_DTYPES = ("float16", "bfloat16", "float32")
DENSE_DTYPES = FLOAT_DTYPES + ("float64",)  # gemm and softmax also take float64
SMALLEST_NORMAL_FP32 = float(np.finfo(np.float32).tiny)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def even_part(size: int, block: int, quantum: int) -> int:
    """The part size when `size` is split evenly into parts of at most `block`, rounded up to a multiple of
    `quantum` (300 rows in blocks of <= 256 by 16: two parts of 160, not 256 + 44)."""
    size = max(size, 1)
    return cdiv(cdiv(size, cdiv(size, block)), quantum) * quantum


def softmax_scale(op: str, q, scale: float | None, head_dim: int):
    """(q, scale) for the attention kernels, whose online softmax wants scale > 0 (it scales the raw row max, and
    a masked logit -inf times 0 would be NaN): scale defaults to 1/sqrt(head_dim), a negative one is applied as -q
    with -scale (the same logits), and 0 as the smallest normal float32, which leaves every logit 0 to fp32
    precision (uniform attention, as asked)."""
    scale = 1.0 / head_dim ** 0.5 if scale is None else float(scale)
    if not math.isfinite(scale):
        raise TilecArgumentError(f"{op}: 'scale' is {scale}; expected a finite number (default 1/sqrt(head dim) = "
                                 f"{1.0 / head_dim ** 0.5:.6g})")
    q, scale = (q, scale) if scale >= 0 else (-q, -scale)
    return q, max(scale, SMALLEST_NORMAL_FP32)


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


_dtype_names: dict = {}  # dtype object -> name: NumPy's dtype.name takes microseconds, a dict hit nanoseconds


def dtype_name(x) -> str:
    """'float32', 'int32', ... for a NumPy array or a torch tensor."""
    dt = x.dtype
    name = _dtype_names.get(dt)
    if name is None:
        name = _dtype_names[dt] = str(dt).removeprefix("torch.") if is_torch(x) else dt.name
    return name


def array_dtype(op: str, name: str, x) -> str:
    """dtype_name(x), after refusing anything but a NumPy array or a torch tensor (naming the argument)."""
    if is_torch(x) or isinstance(x, np.ndarray):
        return dtype_name(x)
    raise TilecArgumentError(f"{op}: '{name}' must be a NumPy array or a torch tensor, got {type(x).__name__}")


def canonical_dtype(op: str, dtype) -> str:
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


def check_array(op: str, name: str, x, rank: int, dtypes=None):
    """Refuse anything but a NumPy array or torch tensor of `rank` dims (and one of `dtypes`)."""
    if not (isinstance(x, np.ndarray) or is_torch(x)):
        raise TilecArgumentError(f"{op}: '{name}' must be a NumPy array or a torch tensor, got {type(x).__name__}")
    if x.ndim != rank:
        raise TilecArgumentError(f"{op}: '{name}' must have rank {rank}, got shape {tuple(x.shape)}")
    if dtypes is not None and dtype_name(x) not in dtypes:
        raise TilecArgumentError(f"{op}: '{name}' has dtype {dtype_name(x)}; expected one of {', '.join(dtypes)}")


def check_shape(op: str, name: str, x, expected: tuple, meaning: str):
    if tuple(x.shape) != tuple(expected):
        raise TilecArgumentError(f"{op}: '{name}' must have shape {tuple(expected)} ({meaning}), got "
                                 f"{tuple(x.shape)}")


def check_same_kind(op: str, named: dict):
    """All arguments NumPy, or all torch on one device."""
    places = {"numpy" if isinstance(x, np.ndarray) else x.device for x in named.values()}
    if len(places) > 1:  # the names are only spelled out for the message
        kinds = {n: ("numpy" if isinstance(x, np.ndarray) else f"torch:{x.device}") for n, x in named.items()}
        shown = ", ".join(f"{n} is {k}" for n, k in kinds.items())
        raise TilecArgumentError(f"{op}: pass all arrays as NumPy or all as torch tensors on one device ({shown})")


def as_int32(op: str, name: str, x):
    """A contiguous int32 copy/view of an integer index array (int64 from argsort or torch.topk is accepted)."""
    if not dtype_name(x).startswith(("int", "uint")):
        raise TilecArgumentError(f"{op}: '{name}' must hold integers (int32), got dtype {dtype_name(x)}")
    if is_torch(x):
        import torch

        return x.to(torch.int32).contiguous()
    return np.ascontiguousarray(x, dtype=np.int32)


def contiguous(x):
    return x.contiguous() if is_torch(x) else np.ascontiguousarray(x)


def host_numpy(x) -> np.ndarray:
    """The values on the host, for checks and schedules (a device sync for CUDA tensors)."""
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


def like(x, values: np.ndarray):
    """Host `values` as the same kind of array as `x` (torch: on x's device)."""
    if is_torch(x):
        import torch

        return torch.from_numpy(np.ascontiguousarray(values)).to(x.device)
    return np.ascontiguousarray(values)


def zeros(x, shape, dtype: str):
    """Zeros of `shape` and `dtype`, of x's kind and device."""
    return new_array(x, shape, dtype, "zeros")


def empty(x, shape, dtype: str):
    """Like `zeros` but uninitialised: for outputs a kernel writes whole (no fill kernel on the GPU)."""
    return new_array(x, shape, dtype, "empty")


def new_array(x, shape, dtype: str, how: str):
    """numpy.<how> or torch.<how> ("zeros", "empty") of x's kind and device; bfloat16 NumPy arrays via ml_dtypes."""
    if is_torch(x):
        import torch

        return getattr(torch, how)(shape, dtype=getattr(torch, dtype), device=x.device)
    if dtype == "bfloat16":
        import ml_dtypes  # NumPy has no bfloat16 of its own

        dtype = ml_dtypes.bfloat16
    return getattr(np, how)(shape, dtype=dtype)


def check_index_range(op: str, name: str, values: np.ndarray, lo: int, hi: int, meaning: str):
    """Every entry in [lo, hi); the message shows the first offender."""
    bad = (values < lo) | (values >= hi)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise TilecArgumentError(f"{op}: {name}[{', '.join(map(str, at))}] = {int(values[at])} is out of range; "
                                 f"{meaning} must lie in [{lo}, {hi - 1}] (check=False skips this check, unsafe: "
                                 f"an out-of-range index reads outside the tensor)")
