"""Expressions for the Triton lowering: IR scalars -> Triton source text.

Inside a `Parallel` every value is a register tensor of the Parallel's rank whose non-unit dims are the loop axes it
depends on (`Val.axes`); outside one, values are scalars. Index arithmetic is int32 except pointer offsets into
tensors of >= 2**31 elements, which are int64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import ir
from ..errors import TilecLoweringError, where
from .triton_layout import Padding, const_int

TL_DTYPE = {"float16": "tl.float16", "bfloat16": "tl.bfloat16", "float32": "tl.float32", "float64": "tl.float64",
            "int8": "tl.int8", "int32": "tl.int32", "int64": "tl.int64", "index": "tl.int32", "bool": "tl.int1"}
HALF = ("float16", "bfloat16")
INT64_OFFSETS_AT = 2 ** 31
BINOPS = {"+": "+", "-": "-", "*": "*", "/": "/", "//": "//", "%": "%", "<": "<", "<=": "<=", ">": ">",
          ">=": ">=", "==": "==", "!=": "!=", "and": "&", "or": "|"}
FLOAT_FNS = {"exp": "tl.exp", "exp2": "tl.exp2", "log": "tl.log", "log2": "tl.log2", "sqrt": "tl.sqrt",
             "rsqrt": "tl.rsqrt", "sigmoid": "tl.sigmoid"}


@dataclass(frozen=True)
class Val:
    code: str
    axes: frozenset  # the Parallel axes the value varies along; empty for a scalar
    dtype: str
    const: object = None  # the Python value of a constant


def literal(value, dtype) -> str:
    if dtype == "bool":
        return "True" if value else "False"
    if ir.is_int(dtype):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    return repr(value)


def cast(code: str, dtype: str) -> str:
    return f"tl.cast({code}, {TL_DTYPE[dtype]})"


def unparen(code: str) -> str:
    """Drop one pair of parentheses that wraps the whole expression."""
    if not (code.startswith("(") and code.endswith(")")):
        return code
    depth = 0
    for i, ch in enumerate(code):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(code) - 1:
            return code
    return code[1:-1]


def row_major_strides(shape) -> list:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


def expand(code: str, axis: int, rank: int) -> str:
    """A 1-D tensor laid along `axis` of a rank-`rank` tensor: x[:, None] style."""
    if rank == 1:
        return code
    return f"{code}[{', '.join(':' if a == axis else 'None' for a in range(rank))}]"


@dataclass
class ParallelScope:
    axes: dict  # loop var name -> axis
    shape: tuple  # padded
    extents: tuple  # logical
    vars: dict  # axis -> identifier of the loop var's tensor


class ExprLowering:
    def __init__(self, kernel: ir.Kernel):
        self.kernel = kernel
        self.buffers = kernel.buffers()
        self.padding = Padding(kernel)
        self.idents: dict = {}  # IR name -> Python identifier
        self.taken = {"tl", "triton", "float"}
        self.values: dict = {}  # Var name -> Val
        self.ranges: dict = {}  # Var name -> (lo, hi) when known
        self.par: ParallelScope | None = None
        #: inside a Parallel, the lanes where the enclosing `if`s hold (a bool Val), None outside any if
        self.cond: Val | None = None
        self.loc = kernel.loc

    # ------------------------------------------------------------------------------------------ names, errors
    def fresh(self, base: str) -> str:
        name, n = base, 0
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def ident(self, ir_name: str) -> str:
        if ir_name not in self.idents:
            self.idents[ir_name] = self.fresh(ir_name)
        return self.idents[ir_name]

    def error(self, msg: str) -> TilecLoweringError:
        return TilecLoweringError(f"{where(self.loc)}Triton backend: {msg}")

    # ------------------------------------------------------------------------------------------ expressions
    def expr(self, e) -> Val:
        if isinstance(e, ir.Const):
            return Val(literal(e.value, e.dtype), frozenset(), e.dtype, e.value)
        if isinstance(e, ir.Var):
            if e.name not in self.values:
                raise self.error(f"'{e.name}' is not bound here")
            return self.values[e.name]
        if isinstance(e, ir.BinOp):
            return self.binop(e)
        if isinstance(e, ir.UnaryOp):
            return self.unary(e)
        if isinstance(e, ir.Select):
            c, a, b = self.expr(e.cond), self.expr(e.true_value), self.expr(e.false_value)
            return Val(f"tl.where({unparen(c.code)}, {unparen(a.code)}, {unparen(b.code)})",
                       c.axes | a.axes | b.axes, e.dtype)
        if isinstance(e, ir.Cast):
            v = self.expr(e.value)
            code = f"({v.code} != 0)" if e.dtype == "bool" else cast(unparen(v.code), e.dtype)
            return Val(code, v.axes, e.dtype)
        if isinstance(e, ir.Load):
            return self.load(e)
        raise self.error(f"unknown expression {e!r}")

    def binop(self, e: ir.BinOp) -> Val:
        a, b = self.expr(e.lhs), self.expr(e.rhs)
        axes = a.axes | b.axes
        if e.op in ("max", "min"):
            return Val(f"tl.{e.op}imum({unparen(a.code)}, {unparen(b.code)})", axes, e.dtype)
        if e.op == "//" and ir.is_float(e.dtype):
            return Val(f"tl.floor({a.code} / {b.code})", axes, e.dtype)
        # Triton's integer // and % truncate toward zero; index arithmetic is non-negative, where both agree.
        return Val(f"({a.code} {BINOPS[e.op]} {b.code})", axes, e.dtype)

    def unary(self, e: ir.UnaryOp) -> Val:
        x = self.expr(e.operand)
        code = unparen(x.code)
        if e.op == "neg":
            return Val(f"(-{x.code})", x.axes, e.dtype)
        if e.op == "not":
            return Val(f"({x.code} == 0)", x.axes, e.dtype)
        if e.op == "abs":
            return Val(f"tl.abs({code})", x.axes, e.dtype)
        if e.op == "relu":
            return Val(f"tl.maximum({code}, {literal(0, e.dtype)})", x.axes, e.dtype)
        # Triton's transcendental functions take fp32/fp64 only: compute half types in fp32.
        wide = cast(code, "float32") if e.dtype in HALF else code
        out = (f"(2 * tl.sigmoid(2 * {wide}) - 1)" if e.op == "tanh" else f"{FLOAT_FNS[e.op]}({unparen(wide)})")
        return Val(cast(unparen(out), e.dtype) if e.dtype in HALF else out, x.axes, e.dtype)

    def load(self, e: ir.Load) -> Val:
        buf = self.buffers[e.buffer]
        if buf.scope == "local":
            return Val(self.ident(buf.name), frozenset(), buf.dtype)
        if buf.scope == "global":
            indices = [self.expr(i) for i in e.indices]
            highs = [self.highest(i) for i in e.indices]
            ptr, mask, axes = self.global_access(buf, indices, highs)
            if self.cond is not None:  # under a masked if: lanes where it fails must not touch memory
                ptr, axes = self.cover(ptr, axes, self.cond.axes), axes | self.cond.axes
                mask = f"{mask} & {self.cond.code}" if mask else self.cond.code
            if not mask:  # a scalar read (an index-table entry) or lanes proven in bounds
                return Val(f"tl.load({ptr})", axes, buf.dtype)
            return Val(f"tl.load({ptr}, mask={mask}, other={literal(0, buf.dtype)})", axes, buf.dtype)
        return self.tile_in_parallel(buf, e.indices)

    def cover(self, ptr: str, axes, need) -> str:
        """`ptr` (over `axes`) broadcast so that it also spans the Parallel axes in `need`."""
        if need <= axes:
            return ptr
        return f"tl.broadcast_to({ptr}, {tuple(n if a in axes | need else 1 for a, n in enumerate(self.par.shape))})"

    def tile_dims(self, buf: ir.Buffer, indices) -> list:
        """The Parallel axis each tile dim is indexed by, or None for a constant 0 on a dim of (padded) size 1;
        refuses anything else (a register tensor has no element-wise indexing)."""
        shape = self.padding.tile_shape(buf.name)
        dims = []
        for i, n in zip(indices, shape):
            if self.par and isinstance(i, ir.Var) and i.name in self.par.axes:
                dims.append(self.par.axes[i.name])
            elif isinstance(i, ir.Const) and i.value == 0 and n == 1:
                dims.append(None)
            else:
                dims.append(-1)
        axes = [a for a in dims if a is not None]
        if -1 in dims or len(set(axes)) != len(axes):
            shown = ", ".join(str(i.name) if isinstance(i, ir.Var) else
                              str(i.value) if isinstance(i, ir.Const) else "<expr>" for i in indices)
            raise self.error(f"tile '{buf.name}' is indexed as {buf.name}[{shown}]: a {buf.scope} tile lives in "
                             f"registers and can only be indexed by distinct T.Parallel loop variables (or 0 on a "
                             f"dim of size 1); copy it to a global tensor and load from there, or restructure as "
                             f"`for i, j in T.Parallel(...): ... {buf.name}[i, j] ...`")
        return dims

    def tile_in_parallel(self, buf: ir.Buffer, indices) -> Val:
        dims = self.tile_dims(buf, indices)
        code = self.ident(buf.name)
        axes = [a for a in dims if a is not None]
        if len(axes) < len(dims):  # drop the unit dims read at index 0 (all of them: a scalar)
            shape = self.padding.tile_shape(buf.name)
            code = f"tl.reshape({code}, {tuple(n for n, a in zip(shape, dims) if a is not None)})"
        if not axes:
            return Val(code, frozenset(), buf.dtype)
        order = sorted(range(len(axes)), key=lambda k: axes[k])
        if order != list(range(len(axes))):
            code = f"tl.permute({code}, {tuple(order)})"
        rank = len(self.par.shape)
        if len(axes) < rank:
            code = f"{code}[{', '.join(':' if a in axes else 'None' for a in range(rank))}]"
        return Val(code, frozenset(axes), buf.dtype)

    # ------------------------------------------------------------------------------------------ global memory
    def global_access(self, buf: ir.Buffer, indices: list, highs: list, lanes=None) -> tuple:
        """(pointer expression, mask expression or None, axes) for buf[indices]: each index a Val, with the
        largest value it can take where provable. Only indices that vary across lanes (`lanes[d]`, by default
        those over Parallel axes) are bounds-checked: a scalar index is trusted, as a scalar load is."""
        shape = [const_int(n) for n in buf.shape]
        lanes = lanes or [bool(v.axes) for v in indices]
        wide = math.prod(shape) >= INT64_OFFSETS_AT
        const_part, terms, masks, axes = 0, [], [], frozenset()
        for v, hi, varies, size, stride in zip(indices, highs, lanes, shape, row_major_strides(shape)):
            axes |= v.axes
            if v.const is not None:
                const_part += int(v.const) * stride
                continue
            code = cast(unparen(v.code), "int64") if wide else v.code
            terms.append(code if stride == 1 else f"{code} * {stride}")
            if varies and (hi is None or hi >= size):
                masks.append(f"({v.code} < {size})")
        if const_part or not terms:
            terms.append(str(const_part))
        ptr = f"{self.ident(buf.name)} + {' + '.join(terms)}" if terms != ["0"] else self.ident(buf.name)
        masks += self.active_masks(axes)
        return ptr, " & ".join(masks) or None, axes

    def active_masks(self, axes) -> list:
        """Masks that switch off the padded lanes of a Parallel's axes."""
        if self.par is None:
            return []
        return [f"({self.par.vars[a]} < {self.par.extents[a]})" for a in sorted(axes)
                if self.par.extents[a] < self.par.shape[a]]

    # ------------------------------------------------------------------------------------------ value ranges
    def bounds(self, e):
        """(lo, hi) of an index expression of constants, block indices and loop variables; None if unknown."""
        lo, hi = self.half_bounds(e)
        return None if lo is None or hi is None else (lo, hi)

    def highest(self, e):
        """The largest value index `e` can take, where provable (a data-dependent index clamped by T.min has one)."""
        return self.half_bounds(e)[1]

    def half_bounds(self, e) -> tuple:
        """(lo, hi), either None where unbounded: T.min(x, c) bounds x from above even when x is data."""
        if isinstance(e, ir.Const) and isinstance(e.value, int):
            return (e.value, e.value)
        if isinstance(e, ir.Var):
            return self.ranges.get(e.name) or (None, None)
        if isinstance(e, ir.Cast) and e.dtype in ir.INT_DTYPES:
            return self.half_bounds(e.value)
        if isinstance(e, ir.BinOp) and e.op in ("+", "-", "*", "//", "min", "max"):
            (alo, ahi), (blo, bhi) = self.half_bounds(e.lhs), self.half_bounds(e.rhs)
            if e.op == "min":
                return (None if alo is None or blo is None else min(alo, blo),
                        bhi if ahi is None else ahi if bhi is None else min(ahi, bhi))
            if e.op == "max":
                return (blo if alo is None else alo if blo is None else max(alo, blo),
                        None if ahi is None or bhi is None else max(ahi, bhi))
            if None in (alo, ahi, blo, bhi):
                return (None, None)
            if e.op == "+":
                return (alo + blo, ahi + bhi)
            if e.op == "-":
                return (alo - bhi, ahi - blo)
            if alo < 0 or blo <= 0:
                return (None, None)
            return (alo * blo, ahi * bhi) if e.op == "*" else (alo // bhi, ahi // blo)
        return (None, None)
