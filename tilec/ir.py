"""tilec's IR: plain dataclasses. It is the one contract between the frontend, the passes and the lowerings.

A `Kernel` has global tensor parameters (buffers of scope "global"), symbolic dims, compile-time config constants,
a launch grid (once planned for a GPU, with a `LaunchPlan`) and a body of statements. Scalars are expressions
(`Expr`); tiles are named buffers allocated by `Alloc` in scope "shared", "fragment" or "local" (a mutable scalar,
shape ()). Statements refer to buffers by name.

Index arithmetic has dtype "index" (a lowering picks its width). Every statement carries `loc` ("file:line") so
that a pass or a lowering can point at the user's source; `loc` takes no part in equality.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterator, Union

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int8", "int32", "int64", "index")
DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int8": 1, "int32": 4, "int64": 8,
            "index": 8, "bool": 1}
SCOPES = ("global", "shared", "fragment", "local")


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


# --------------------------------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Const:
    value: Union[int, float, bool]
    dtype: str


@dataclass(frozen=True)
class Var:
    """A scalar symbol: dim, config constant, block index, loop variable or let-bound value."""
    name: str
    dtype: str


@dataclass(frozen=True)
class BinOp:
    """op in + - * / // % < <= > >= == != and or max min (max/min are elementwise binary)."""
    op: str
    lhs: "Expr"
    rhs: "Expr"
    dtype: str


@dataclass(frozen=True)
class UnaryOp:
    """op in neg not exp exp2 log log2 sqrt rsqrt abs relu sigmoid tanh."""
    op: str
    operand: "Expr"
    dtype: str


@dataclass(frozen=True)
class Select:
    cond: "Expr"
    true_value: "Expr"
    false_value: "Expr"
    dtype: str


@dataclass(frozen=True)
class Cast:
    value: "Expr"
    dtype: str


@dataclass(frozen=True)
class Load:
    """Read one element of a buffer (any scope). Inside `Parallel`, indices may use the loop variables."""
    buffer: str
    indices: tuple
    dtype: str


Expr = Union[Const, Var, BinOp, UnaryOp, Select, Cast, Load]
EXPR_TYPES = (Const, Var, BinOp, UnaryOp, Select, Cast, Load)

ARITH_OPS = ("+", "-", "*", "/", "//", "%", "max", "min")
COMPARE_OPS = ("<", "<=", ">", ">=", "==", "!=")
LOGIC_OPS = ("and", "or")
UNARY_OPS = ("neg", "not", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "abs", "relu", "sigmoid", "tanh")
FLOAT_ONLY_UNARY = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sigmoid", "tanh")


# --------------------------------------------------------------------------------------------------- buffers
@dataclass(frozen=True)
class Buffer:
    name: str
    shape: tuple  # of Expr
    dtype: str
    scope: str
    #: >1 after software pipelining: the buffer is multi-buffered in `stages` copies.
    stages: int = 1


@dataclass(frozen=True)
class Region:
    """A box of a buffer: `origin` and `extents` have the buffer's rank; `axes` lists the buffer dims that map, in
    order, to the other operand's dims (the rest have extent 1). A whole local buffer has origin 0 and all axes."""
    buffer: str
    origin: tuple
    extents: tuple
    axes: tuple


# --------------------------------------------------------------------------------------------------- statements
def _loc():
    return field(default=None, compare=False)


@dataclass(frozen=True)
class Alloc:
    buffer: Buffer
    init: "Expr | None" = None  # only for scope "local"
    loc: str | None = _loc()


@dataclass(frozen=True)
class Let:
    """Bind an immutable scalar: `var` = `value` for the rest of the enclosing body."""
    var: Var
    value: Expr
    loc: str | None = _loc()


@dataclass(frozen=True)
class Store:
    """Write one element of a buffer (a local scalar has indices ())."""
    buffer: str
    indices: tuple
    value: Expr
    loc: str | None = _loc()


@dataclass(frozen=True)
class AtomicAdd:
    buffer: str
    indices: tuple
    value: Expr
    loc: str | None = _loc()


@dataclass(frozen=True)
class Copy:
    src: Region
    dst: Region
    pad: "Expr | None" = None
    loc: str | None = _loc()


@dataclass(frozen=True)
class Fill:
    buffer: str
    value: Expr
    loc: str | None = _loc()


@dataclass(frozen=True)
class Gemm:
    """c += op(a) @ op(b), op = transpose when the flag says so."""
    a: str
    b: str
    c: str
    transpose_a: bool = False
    transpose_b: bool = False
    loc: str | None = _loc()


@dataclass(frozen=True)
class Reduce:
    """dst = op over `dim` of src; with clear=False, dst = op(dst, that). op in max sum min."""
    op: str
    src: str
    dst: str
    dim: int
    clear: bool = True
    loc: str | None = _loc()


@dataclass(frozen=True)
class For:
    """kind "serial" or "pipelined". After the pipelining pass, `stages` holds, per body statement, the pipeline
    stage it runs in (0 = producer copies, num_stages-1 = consumers); () before it."""
    var: Var
    start: Expr
    stop: Expr
    step: Expr
    body: tuple
    kind: str = "serial"
    num_stages: Expr = Const(1, "index")  # a Const once config is bound
    stages: tuple = ()
    loc: str | None = _loc()


@dataclass(frozen=True)
class Parallel:
    """Elementwise loop nest over tile indices; the body holds Let/Store/AtomicAdd/If only."""
    vars: tuple  # of Var
    extents: tuple  # of Expr
    body: tuple
    loc: str | None = _loc()


@dataclass(frozen=True)
class If:
    cond: Expr
    then_body: tuple
    else_body: tuple = ()
    loc: str | None = _loc()


Stmt = Union[Alloc, Let, Store, AtomicAdd, Copy, Fill, Gemm, Reduce, For, Parallel, If]
STMT_TYPES = (Alloc, Let, Store, AtomicAdd, Copy, Fill, Gemm, Reduce, For, Parallel, If)


@dataclass(frozen=True)
class ConfigParam:
    name: str
    dtype: str  # "index", "float32" or "bool"
    value: Union[int, float, bool]  # the default, or the bound value after binding


#: how program ids map to block indices: "grouped" (rows of blocks sweep the columns together, for L2), "flat" (one
#: launch dim) or "direct" (one launch dim per grid dim)
BLOCK_ORDERS = ("grouped", "flat", "direct")


@dataclass(frozen=True)
class LaunchPlan:
    """How a GPU backend launches the kernel, decided by the plan-launch pass: `persistent` (one program per SM
    strides over the blocks), warps per block, the block order (BLOCK_ORDERS) and, for "grouped", the rows of
    blocks that sweep the columns together (0 otherwise)."""
    persistent: bool
    num_warps: int
    block_order: str
    group_rows: int = 0


@dataclass(frozen=True)
class Kernel:
    name: str
    params: tuple  # of Buffer, scope "global"
    dims: tuple  # of Var (dtype "index"): the symbolic dims, in order of first appearance
    config: tuple  # of ConfigParam
    grid: tuple  # of Expr
    block_vars: tuple  # of Var, one per grid dimension
    body: tuple
    #: dim and config values once bound ({} before); lowerings read sizes from here and from Consts.
    bound: tuple = ()
    #: the launch decisions (plan-launch pass, GPU targets); None before it and on a CPU
    launch: LaunchPlan | None = None
    loc: str | None = _loc()

    def replace(self, **changes) -> "Kernel":
        return dataclasses.replace(self, **changes)

    def buffers(self) -> dict:
        """Every buffer by name: the params and every Alloc anywhere in the body."""
        table = {b.name: b for b in self.params}
        for stmt in walk_stmts(self.body):
            if isinstance(stmt, Alloc):
                table[stmt.buffer.name] = stmt.buffer
        return table

    @property
    def bound_values(self) -> dict:
        return dict(self.bound)


# --------------------------------------------------------------------------------------------------- traversal
def expr_children(e) -> tuple:
    """The operand expressions of one expression (a load's indices included)."""
    if isinstance(e, BinOp):
        return e.lhs, e.rhs
    if isinstance(e, UnaryOp):
        return (e.operand,)
    if isinstance(e, Cast):
        return (e.value,)
    if isinstance(e, Select):
        return e.cond, e.true_value, e.false_value
    if isinstance(e, Load):
        return tuple(e.indices)
    return ()


def walk_stmts(body) -> Iterator:
    """Every statement, pre-order, nested bodies included."""
    for stmt in body:
        yield stmt
        for child in child_bodies(stmt):
            yield from walk_stmts(child)


def child_bodies(stmt) -> tuple:
    if isinstance(stmt, (For, Parallel)):
        return (stmt.body,)
    if isinstance(stmt, If):
        return (stmt.then_body, stmt.else_body)
    return ()


def walk_expr(expr) -> Iterator:
    yield expr
    if isinstance(expr, BinOp):
        yield from walk_expr(expr.lhs)
        yield from walk_expr(expr.rhs)
    elif isinstance(expr, UnaryOp):
        yield from walk_expr(expr.operand)
    elif isinstance(expr, Cast):
        yield from walk_expr(expr.value)
    elif isinstance(expr, Select):
        for e in (expr.cond, expr.true_value, expr.false_value):
            yield from walk_expr(e)
    elif isinstance(expr, Load):
        for e in expr.indices:
            yield from walk_expr(e)


def map_expr(expr, fn: Callable):
    """Rebuild `expr` bottom-up, applying `fn` to each rebuilt node."""
    if isinstance(expr, BinOp):
        expr = BinOp(expr.op, map_expr(expr.lhs, fn), map_expr(expr.rhs, fn), expr.dtype)
    elif isinstance(expr, UnaryOp):
        expr = UnaryOp(expr.op, map_expr(expr.operand, fn), expr.dtype)
    elif isinstance(expr, Cast):
        expr = Cast(map_expr(expr.value, fn), expr.dtype)
    elif isinstance(expr, Select):
        expr = Select(map_expr(expr.cond, fn), map_expr(expr.true_value, fn), map_expr(expr.false_value, fn),
                      expr.dtype)
    elif isinstance(expr, Load):
        expr = Load(expr.buffer, tuple(map_expr(i, fn) for i in expr.indices), expr.dtype)
    return fn(expr)


def map_stmt_exprs(stmt, fn: Callable):
    """Apply `map_expr(., fn)` to every expression a statement holds (nested bodies included)."""
    m = lambda e: None if e is None else map_expr(e, fn)  # noqa: E731
    mt = lambda es: tuple(m(e) for e in es)  # noqa: E731
    mb = lambda body: tuple(map_stmt_exprs(s, fn) for s in body)  # noqa: E731
    mbuf = lambda b: dataclasses.replace(b, shape=mt(b.shape))  # noqa: E731
    mreg = lambda r: dataclasses.replace(r, origin=mt(r.origin), extents=mt(r.extents))  # noqa: E731
    if isinstance(stmt, Alloc):
        return dataclasses.replace(stmt, buffer=mbuf(stmt.buffer), init=m(stmt.init))
    if isinstance(stmt, Let):
        return dataclasses.replace(stmt, var=m(stmt.var), value=m(stmt.value))
    if isinstance(stmt, (Store, AtomicAdd)):
        return dataclasses.replace(stmt, indices=mt(stmt.indices), value=m(stmt.value))
    if isinstance(stmt, Copy):
        return dataclasses.replace(stmt, src=mreg(stmt.src), dst=mreg(stmt.dst), pad=m(stmt.pad))
    if isinstance(stmt, Fill):
        return dataclasses.replace(stmt, value=m(stmt.value))
    if isinstance(stmt, For):
        return dataclasses.replace(stmt, var=m(stmt.var), start=m(stmt.start), stop=m(stmt.stop),
                                   step=m(stmt.step), num_stages=m(stmt.num_stages), body=mb(stmt.body))
    if isinstance(stmt, Parallel):
        return dataclasses.replace(stmt, vars=mt(stmt.vars), extents=mt(stmt.extents), body=mb(stmt.body))
    if isinstance(stmt, If):
        return dataclasses.replace(stmt, cond=m(stmt.cond), then_body=mb(stmt.then_body),
                                   else_body=mb(stmt.else_body))
    return stmt  # Gemm, Reduce: names only


def map_kernel_exprs(kernel: Kernel, fn: Callable) -> Kernel:
    mt = lambda es: tuple(map_expr(e, fn) for e in es)  # noqa: E731
    return kernel.replace(
        params=tuple(dataclasses.replace(p, shape=mt(p.shape)) for p in kernel.params),
        grid=mt(kernel.grid),
        body=tuple(map_stmt_exprs(s, fn) for s in kernel.body))


# --------------------------------------------------------------------------------------------------- dtypes
_FLOAT_RANK = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}
_INT_RANK = {"bool": 0, "int8": 1, "int32": 2, "index": 3, "int64": 4}


def promote(a: str, b: str) -> str:
    """Result dtype of a binary arithmetic op on two (non-literal) operands."""
    if a == b:
        return a
    if is_float(a) and is_float(b):
        if _FLOAT_RANK[a] == _FLOAT_RANK[b]:  # float16 with bfloat16
            return "float32"
        return a if _FLOAT_RANK[a] > _FLOAT_RANK[b] else b
    if is_float(a):
        return a
    if is_float(b):
        return b
    return a if _INT_RANK[a] >= _INT_RANK[b] else b


def const_value(expr):
    """The Python value of a constant expression, else None."""
    return expr.value if isinstance(expr, Const) else None


def index(value: int) -> Const:
    return Const(int(value), "index")
