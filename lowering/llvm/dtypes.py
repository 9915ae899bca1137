"""tilec dtypes as LLVM types, and conversions between them.

Every dtype has a memory type (how an element is stored) and a value type (how it lives in registers). float16
and bfloat16 values are held as float32 in registers and rounded back to their format after each operation, so
all float math runs on f32/f64 (LLVM's intrinsics and the vectoriser handle those well). bool is i8 in memory and
i1 in registers. The helpers work on scalars and on vectors of these types alike.
"""
from __future__ import annotations

from llvmlite import ir

from tilec.errors import TilecLoweringError

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
NARROW = ("float16", "bfloat16")

_MEM = {"bool": I8, "int8": I8, "int32": I32, "int64": I64, "index": I64,
        "float16": F16, "bfloat16": I16, "float32": F32, "float64": F64}
_VALUE = {**_MEM, "bool": I1, "float16": F32, "bfloat16": F32}


def mem_type(dtype: str) -> ir.Type:
    try:
        return _MEM[dtype]
    except KeyError:
        raise TilecLoweringError(f"the LLVM backend has no dtype {dtype!r}") from None


def value_type(dtype: str) -> ir.Type:
    return _VALUE[dtype]


def vec(ty: ir.Type, lanes: int | None) -> ir.Type:
    return ty if lanes is None else ir.VectorType(ty, lanes)


def lanes_of(value) -> int | None:
    return value.type.count if isinstance(value.type, ir.VectorType) else None


def const(ty: ir.Type, value, lanes: int | None = None):
    """A scalar constant, or a splat vector constant when `lanes` is given."""
    if lanes is None:
        return ir.Constant(ty, value)
    return ir.Constant(ir.VectorType(ty, lanes), [value] * lanes)


def const_like(value, ty: ir.Type, c):
    """A constant of element type `ty` with the same lane count as `value`."""
    return const(ty, c, lanes_of(value))


def zero(dtype: str, lanes: int | None = None):
    ty = value_type(dtype)
    return const(ty, 0.0 if isinstance(ty, (ir.FloatType, ir.DoubleType)) else 0, lanes)


# ---------------------------------------------------------------------------------------------- bfloat16 bits
def bf16_bits_to_f32(b: ir.IRBuilder, bits):
    """bfloat16 is the upper half of a float32: widen and shift."""
    n = lanes_of(bits)
    wide = b.zext(bits, vec(I32, n))
    return b.bitcast(b.shl(wide, const(I32, 16, n)), vec(F32, n))


def f32_to_bf16_bits(b: ir.IRBuilder, x):
    """Round to nearest even: add 0x7fff plus the lowest kept bit, then drop the low 16 bits; NaN stays NaN."""
    n = lanes_of(x)
    bits = b.bitcast(x, vec(I32, n))
    lsb = b.and_(b.lshr(bits, const(I32, 16, n)), const(I32, 1, n))
    rounded = b.lshr(b.add(bits, b.add(lsb, const(I32, 0x7FFF, n))), const(I32, 16, n))
    is_nan = b.fcmp_unordered("uno", x, x)
    return b.trunc(b.select(is_nan, const(I32, 0x7FC0, n), rounded), vec(I16, n))


def round_to(b: ir.IRBuilder, x, dtype: str):
    """Round an f32 register value to float16/bfloat16 precision (it stays f32); other dtypes pass through."""
    n = lanes_of(x)
    if dtype == "float16":
        return b.fpext(b.fptrunc(x, vec(F16, n)), vec(F32, n))
    if dtype == "bfloat16":
        return bf16_bits_to_f32(b, f32_to_bf16_bits(b, x))
    return x


# ---------------------------------------------------------------------------------------------- memory <-> value
def from_memory(b: ir.IRBuilder, raw, dtype: str):
    """A loaded memory-typed value as a register value."""
    n = lanes_of(raw)
    if dtype == "bool":
        return b.icmp_unsigned("!=", raw, const(I8, 0, n))
    if dtype == "float16":
        return b.fpext(raw, vec(F32, n))
    if dtype == "bfloat16":
        return bf16_bits_to_f32(b, raw)
    return raw


def to_memory(b: ir.IRBuilder, value, dtype: str):
    n = lanes_of(value)
    if dtype == "bool":
        return b.zext(value, vec(I8, n))
    if dtype == "float16":
        return b.fptrunc(value, vec(F16, n))
    if dtype == "bfloat16":
        return f32_to_bf16_bits(b, value)
    return value


def load(b: ir.IRBuilder, ptr, dtype: str, lanes: int | None = None):
    mt = mem_type(dtype)
    raw = b.load(ptr, typ=vec(mt, lanes), align=_align(dtype))
    return from_memory(b, raw, dtype)


def store(b: ir.IRBuilder, value, ptr, dtype: str):
    b.store(to_memory(b, value, dtype), ptr, align=_align(dtype))


def _align(dtype: str) -> int:
    return {"bool": 1, "int8": 1, "float16": 2, "bfloat16": 2, "int32": 4, "float32": 4}.get(dtype, 8)


# ---------------------------------------------------------------------------------------------- casts
def is_float(dtype: str) -> bool:
    return dtype in ("float16", "bfloat16", "float32", "float64")


def cast(b: ir.IRBuilder, x, src: str, dst: str):
    """Convert register value `x` of dtype `src` to dtype `dst` (C semantics: float -> int truncates)."""
    if src == dst:
        return x
    n = lanes_of(x)
    dty = vec(value_type(dst), n)
    if dst == "bool":
        if is_float(src):
            return b.fcmp_unordered("!=", x, const_like(x, x.type.element if n else x.type, 0.0))
        return b.icmp_unsigned("!=", x, ir.Constant(x.type, None))
    if src == "bool":
        return round_to(b, b.uitofp(x, dty), dst) if is_float(dst) else b.zext(x, dty)
    if is_float(src) and is_float(dst):
        sw, dw = _float_width(x.type), _float_width(dty)
        y = x if sw == dw else b.fpext(x, dty) if dw > sw else b.fptrunc(x, dty)
        return round_to(b, y, dst)
    if is_float(dst):
        return round_to(b, b.sitofp(x, dty), dst)
    if is_float(src):
        return b.fptosi(x, dty)
    sw, dw = _elem(x.type).width, _elem(dty).width
    return x if sw == dw else b.sext(x, dty) if dw > sw else b.trunc(x, dty)


def _float_width(ty) -> int:
    return 64 if isinstance(_elem(ty), ir.DoubleType) else 32


def _elem(ty):
    return ty.element if isinstance(ty, ir.VectorType) else ty
