"""Scalar expressions -> LLVM instructions. `cg` is the KernelLowering (builder `cg.b`, scalar environment
`cg.env`, `cg.element_ptr`, `cg.intrinsic`)."""
from __future__ import annotations

from llvmlite import ir as llir

from tilec import ir
from tilec.errors import TilecLoweringError

from . import dtypes as dt
from . import vecmath

_ICMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}
# Python compares floats with ordered predicates except `!=`, which is true when either side is NaN.
_FCMP_ORDERED = ("<", "<=", ">", ">=", "==")
# exp/log go through vecmath (inline code the vectoriser widens), not llvm.exp (a libm call per element).
_FLOAT_INTRINSIC = {"sqrt": "llvm.sqrt", "abs": "llvm.fabs"}


def emit(cg, e):
    """The register value of expression `e`."""
    b = cg.b
    if isinstance(e, ir.Const):
        return constant(e.value, e.dtype)
    if isinstance(e, ir.Var):
        try:
            return cg.env[e.name]
        except KeyError:
            raise TilecLoweringError(f"{cg.kernel.name}: scalar '{e.name}' is used but never bound; "
                                     f"bind every dim and config before lowering (TileKernel.specialize)") from None
    if isinstance(e, ir.Load):
        return cg.load_element(e.buffer, [emit(cg, i) for i in e.indices])
    if isinstance(e, ir.Cast):
        return dt.cast(b, emit(cg, e.value), e.value.dtype, e.dtype)
    if isinstance(e, ir.Select):
        return b.select(emit(cg, e.cond), emit(cg, e.true_value), emit(cg, e.false_value))
    if isinstance(e, ir.UnaryOp):
        return unary(cg, e.op, emit(cg, e.operand), e.dtype)
    if isinstance(e, ir.BinOp):
        return binary(cg, e.op, emit(cg, e.lhs), emit(cg, e.rhs), e.lhs.dtype, e.dtype)
    raise TilecLoweringError(f"unknown expression {e!r}")


def constant(value, dtype: str):
    ty = dt.value_type(dtype)
    if dtype == "bool":
        return llir.Constant(ty, int(bool(value)))
    if dt.is_float(dtype):
        return llir.Constant(ty, float(value))
    return llir.Constant(ty, int(value))


def binary(cg, op, x, y, operand_dtype, dtype):
    b = cg.b
    if op in ir.LOGIC_OPS:
        return b.and_(x, y) if op == "and" else b.or_(x, y)
    if op in ir.COMPARE_OPS:
        if dt.is_float(operand_dtype):
            if op in _FCMP_ORDERED:
                return b.fcmp_ordered(op, x, y)
            return b.fcmp_unordered(op, x, y)
        if operand_dtype == "bool":
            return b.icmp_unsigned(_ICMP[op], x, y)
        return b.icmp_signed(_ICMP[op], x, y)
    if dt.is_float(dtype):
        return dt.round_to(b, float_arith(cg, op, x, y), dtype)
    return int_arith(cg, op, x, y)


def float_arith(cg, op, x, y):
    b = cg.b
    if op == "+":
        return b.fadd(x, y)
    if op == "-":
        return b.fsub(x, y)
    if op == "*":
        return b.fmul(x, y)
    if op == "/":
        return b.fdiv(x, y)
    if op in ("max", "min"):
        return cg.intrinsic("llvm.maxnum" if op == "max" else "llvm.minnum", x.type, [x, y])
    if op == "//":
        return cg.intrinsic("llvm.floor", x.type, [b.fdiv(x, y)])
    if op == "%":  # Python: the remainder takes the divisor's sign
        r = b.frem(x, y)
        zero = llir.Constant(x.type, 0.0)
        fix = b.and_(b.fcmp_ordered("!=", r, zero),
                     b.xor(b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
        return b.select(fix, b.fadd(r, y), r)
    raise TilecLoweringError(f"unknown float operator {op!r}")


def int_arith(cg, op, x, y):
    b = cg.b
    if op == "+":
        return b.add(x, y)
    if op == "-":
        return b.sub(x, y)
    if op == "*":
        return b.mul(x, y)
    if op in ("max", "min"):
        return b.select(b.icmp_signed(">" if op == "max" else "<", x, y), x, y)
    if op in ("//", "%"):
        return floor_divmod(b, x, y)[0 if op == "//" else 1]
    raise TilecLoweringError(f"integer operator {op!r} is not supported (use // for integer division)")


def floor_divmod(b, x, y):
    """Python's // and % for signed ints: C truncates toward zero, so step down when the signs differ."""
    q, r = b.sdiv(x, y), b.srem(x, y)
    zero = llir.Constant(x.type, 0)
    fix = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, y), zero))
    return b.sub(q, b.zext(fix, x.type)), b.select(fix, b.add(r, y), r)


def unary(cg, op, x, dtype):
    b = cg.b
    if op == "not":
        return b.not_(x)
    if not dt.is_float(dtype):
        if op == "neg":
            return b.neg(x)
        if op == "abs":
            return cg.intrinsic("llvm.abs", x.type, [x, llir.Constant(dt.I1, 0)])
        if op == "relu":
            zero = llir.Constant(x.type, 0)
            return b.select(b.icmp_signed(">", x, zero), x, zero)
        raise TilecLoweringError(f"{op} of an integer: cast to a float dtype first")
    one = llir.Constant(x.type, 1.0)
    if op == "neg":
        y = b.fneg(x)
    elif op in vecmath.FUNCTIONS:
        y = vecmath.emit(cg, op, x)
    elif op in _FLOAT_INTRINSIC:
        y = cg.intrinsic(_FLOAT_INTRINSIC[op], x.type, [x])
    elif op == "rsqrt":
        y = b.fdiv(one, cg.intrinsic("llvm.sqrt", x.type, [x]))
    elif op == "relu":
        y = cg.intrinsic("llvm.maxnum", x.type, [x, llir.Constant(x.type, 0.0)])
    elif op == "sigmoid":
        y = b.fdiv(one, b.fadd(one, vecmath.emit(cg, "exp", b.fneg(x))))
    elif op == "tanh":  # 1 - 2 / (exp(2x) + 1): finite for every x (exp overflow gives 1)
        e2x = vecmath.emit(cg, "exp", b.fmul(x, llir.Constant(x.type, 2.0)))
        y = b.fsub(one, b.fdiv(llir.Constant(x.type, 2.0), b.fadd(e2x, one)))
    else:
        raise TilecLoweringError(f"unknown unary operator {op!r}")
    return dt.round_to(b, y, dtype)
