"""Launch arguments: which backend runs a call (`pick_backend`) and the dim values the arguments bind, after checking
each argument against its parameter (`bind_arguments`).

Backend choice, when the call does not name a target (nor TILEC_TARGET does): any torch CUDA tensor -> "triton",
anything else -> "llvm". torch CPU tensors run on "llvm" as zero-copy NumPy views (so `tilec.ops` and kernels
take them without a target), or on Triton's interpreter with target="triton". An explicit target must fit the
arguments; `bind_arguments` says which argument does not and what to pass instead.

torch is never imported here: a tensor is recognised by its type's module, and its dtype and device are read off it.
"""
from __future__ import annotations

import numpy as np

from tilec import ir
from tilec.errors import TilecArgumentError, TilecBackendUnavailable

BACKENDS = ("llvm", "triton")
#: the dtypes a parameter may have (T.Tensor refuses the rest)
PARAM_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "bool")


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def device_of(x) -> str:
    """'cpu' for NumPy arrays, else the torch device ('cpu', 'cuda:0', ...)."""
    return str(x.device) if is_torch(x) else "cpu"


def pick_backend(args, target: str | None) -> str:
    """"llvm" or "triton" for a call with these arguments; an explicit `target` wins (bind_arguments checks that
    the arguments fit it)."""
    if target is not None:
        if target not in BACKENDS:
            raise TilecArgumentError(f"target={target!r} is not a backend; use one of "
                                     f"{', '.join(map(repr, BACKENDS))} (or leave it out to choose by the arguments)")
        return target
    on_cuda = any(is_torch(a) and a.device.type == "cuda" for a in args)
    return "triton" if on_cuda else "llvm"


def dtype_of(x) -> str:
    """tilec's name for an array's dtype: 'float32', 'bfloat16' (ml_dtypes or torch), ..."""
    dt = x.dtype
    name = _dtype_names.get(dt)
    if name is None:  # NumPy's dtype.name takes microseconds; remembered per dtype object
        name = _dtype_names[dt] = str(dt).removeprefix("torch.") if is_torch(x) else dt.name
    return name


_dtype_names: dict = {}


def bind_arguments(kernel_ir: ir.Kernel, args, backend: str) -> dict:
    """{dim name: int} from the arguments' shapes, after checking count, kind, device, dtype, rank, fixed dims,
    symbolic-dim consistency, layout and writability. Every failure names the argument and what would be right."""
    where = kernel_ir.name
    params = kernel_ir.params
    if len(args) != len(params):
        names = ", ".join(p.name for p in params)
        raise TilecArgumentError(f"{where} takes {len(params)} argument{'s' * (len(params) != 1)} ({names}), "
                                 f"got {len(args)}")
    for p, a in zip(params, args):
        check_kind(where, p, a, backend)
    check_one_device(where, params, args)
    written = written_params(kernel_ir)
    dims: dict = {}
    set_by: dict = {}  # dim name -> (argument name, axis) that set it, for the mismatch message
    for p, a in zip(params, args):
        check_dtype(where, p, a, backend)
        shape = tuple(int(n) for n in a.shape)
        if len(shape) != len(p.shape):
            raise TilecArgumentError(f"{where}: argument '{p.name}' must have rank {len(p.shape)} "
                                     f"(declared shape {param_shape_text(p)}), got shape {shape}")
        for axis, (want, got) in enumerate(zip(p.shape, shape)):
            if isinstance(want, ir.Var):
                if want.name not in dims:
                    dims[want.name], set_by[want.name] = got, (p.name, axis)
                elif dims[want.name] != got:
                    first, first_axis = set_by[want.name]
                    raise TilecArgumentError(
                        f"{where}: argument '{p.name}' dim {axis} ({want.name}) is {got} but argument '{first}' set "
                        f"{want.name} = {dims[want.name]} (dim {first_axis}); expected shape "
                        f"{param_shape_text(p, dims)}")
            elif got != ir.const_value(want):
                raise TilecArgumentError(f"{where}: argument '{p.name}' dim {axis} must be {ir.const_value(want)} "
                                         f"(declared shape {param_shape_text(p)}), got shape {shape}")
        check_layout(where, p, a, p.name in written)
    missing = [d.name for d in kernel_ir.dims if d.name not in dims]
    if missing:  # the frontend makes dims only from parameter shapes, so this is an IR built by hand
        raise TilecArgumentError(f"{where}: dims {', '.join(missing)} appear in no parameter's shape")
    return dims


# ---------------------------------------------------------------------------------------------- single checks
def check_kind(where: str, p: ir.Buffer, a, backend: str) -> None:
    """NumPy array or torch tensor, on a device the backend runs on."""
    if not (isinstance(a, np.ndarray) or is_torch(a)):
        raise TilecArgumentError(f"{where}: argument '{p.name}' must be a NumPy array or a torch tensor "
                                 f"of shape {param_shape_text(p)} and dtype {p.dtype}, got {type(a).__name__}")
    if backend == "triton" and not is_torch(a):
        raise TilecArgumentError(f"{where}: argument '{p.name}' is a NumPy array, but target='triton' (from the call or "
                                 f"TILEC_TARGET) takes torch tensors: pass torch.from_numpy({p.name}) (.cuda() for the GPU), or use "
                                 f"target='llvm' for NumPy arrays")
    if backend == "llvm" and device_of(a) != "cpu":
        raise TilecArgumentError(f"{where}: argument '{p.name}' is on {device_of(a)}, but target='llvm' runs on "
                                 f"the CPU: pass {p.name}.cpu(), or use target='triton' for CUDA tensors")


def check_one_device(where: str, params, args) -> None:
    seen: dict = {}
    for p, a in zip(params, args):
        if is_torch(a):
            seen.setdefault(device_of(a), p.name)
    if len(seen) > 1:
        (d0, n0), (d1, n1) = list(seen.items())[:2]
        raise TilecArgumentError(f"{where}: all tensors must be on one device, but argument '{n0}' is on {d0} and "
                                 f"argument '{n1}' on {d1}: move them with .to('{d0}')")


def check_dtype(where: str, p: ir.Buffer, a, backend: str) -> None:
    got = dtype_of(a)
    if got == p.dtype:
        return
    if p.dtype == "bfloat16" and not is_torch(a) and not ml_dtypes_available():
        raise TilecBackendUnavailable(f"{where}: argument '{p.name}' is bfloat16; NumPy arrays of bfloat16 need "
                                      f"ml_dtypes: pip install ml_dtypes (or tilec[bf16]), then pass "
                                      f"{p.name}.astype(ml_dtypes.bfloat16)")
    fix = f"{p.name}.to(torch.{p.dtype})" if is_torch(a) else f"{p.name}.astype({numpy_dtype_text(p.dtype)})"
    raise TilecArgumentError(f"{where}: argument '{p.name}' must have dtype {p.dtype}, got {got}: pass {fix}")


def check_layout(where: str, p: ir.Buffer, a, written: bool) -> None:
    """The lowerings address tensors as dense row-major memory with their natural alignment."""
    if is_torch(a):
        if not a.is_contiguous():
            raise TilecArgumentError(f"{where}: argument '{p.name}' must be C-contiguous (row-major), got strides "
                                     f"{tuple(a.stride())}: pass {p.name}.contiguous()")
        return
    if not a.flags.c_contiguous:
        raise TilecArgumentError(f"{where}: argument '{p.name}' must be C-contiguous (row-major), got strides "
                                 f"{a.strides} (bytes): pass np.ascontiguousarray({p.name})")
    if not a.flags.aligned:
        raise TilecArgumentError(f"{where}: argument '{p.name}' is not aligned to its {a.dtype.itemsize}-byte "
                                 f"elements: pass a copy, {p.name}.copy()")
    if written and not a.flags.writeable:
        raise TilecArgumentError(f"{where}: argument '{p.name}' is read-only but the kernel writes it: pass a "
                                 f"writable array, e.g. {p.name}.copy()")


# ---------------------------------------------------------------------------------------------- helpers
_written_memo: dict = {}  # id(kernel IR) -> (kernel IR, names): the generic IR lives as long as its TileKernel


def written_params(kernel_ir: ir.Kernel) -> frozenset:
    """Names of the parameters the kernel stores to (copy destination, element store, atomic add)."""
    hit = _written_memo.get(id(kernel_ir))
    if hit is not None and hit[0] is kernel_ir:
        return hit[1]
    names = {p.name for p in kernel_ir.params}
    written = set()
    for s in ir.walk_stmts(kernel_ir.body):
        if isinstance(s, ir.Copy):
            written.add(s.dst.buffer)
        elif isinstance(s, (ir.Store, ir.AtomicAdd)):
            written.add(s.buffer)
    result = frozenset(written & names)
    _written_memo[id(kernel_ir)] = (kernel_ir, result)
    return result


def param_shape_text(p: ir.Buffer, dims: dict | None = None) -> str:
    """'(M, K)' for a parameter's declared shape, with known dim values filled in: '(63, K)'."""
    dims = dims or {}
    parts = []
    for d in p.shape:
        if isinstance(d, ir.Var):
            parts.append(str(dims.get(d.name, d.name)))
        else:
            parts.append(str(ir.const_value(d)))
    return f"({', '.join(parts)}{',' * (len(parts) == 1)})"


def numpy_dtype_text(dtype: str) -> str:
    if dtype == "bfloat16":
        return "ml_dtypes.bfloat16"
    return "bool" if dtype == "bool" else f"np.{dtype}"


def ml_dtypes_available() -> bool:
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return False
    return True


def as_numpy_views(args) -> tuple:
    """torch CPU tensors as NumPy arrays over the same memory (the LLVM launcher reads only data pointers, so a
    bfloat16 tensor travels as int16)."""
    out = []
    for a in args:
        if is_torch(a):
            import torch  # already imported: `a` is a torch tensor

            a = a.detach()
            out.append((a.view(torch.int16) if a.dtype == torch.bfloat16 else a).numpy())
        else:
            out.append(a)
    return tuple(out)
