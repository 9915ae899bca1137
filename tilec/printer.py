"""The textual form of tilec's IR: `print_kernel(kernel)`; `tilec.ir_text.parse_kernel_text` reads it back.

    kernel @matmul
      dims %M, %K, %N
      config %block_m: index = 64, %num_stages: index = 2
      bound %M = 100, %K = 33                       (only once bound)
      param %A: float32[%M, %K] global
      grid %bx, %by in [(%N + 63) // 64, (%M + 63) // 64]
      launch persistent=false num_warps=4 order=grouped group_rows=8   (only once planned for a GPU)
    {
      %a = alloc float32[64, 32] shared stages=2
      fill %acc, 0.0
      for.pipelined %k = 0 to 3 step 1 num_stages=2 stages=[0, 0, 1] {
        copy %A[%by * 64 +: 64, %k * 32 +: 32] -> %a
        gemm %a, %b -> %acc
      }
      parallel %i, %j in [64, 64] { %C[%i, %j] = max(%acc[%i, %j], 0.0) }
    }

Scalars and buffers carry a `%` sigil. Expressions leave out the dtypes the reader can infer (a literal is index,
float32 or bool by its spelling; a variable has its definition's dtype; a load its buffer's; arithmetic its
operands'); any other dtype is written as a suffix `x:int32` (parenthesised for an operation: `(a + b):float16`).
Definitions take effect in text order after their own expressions, in one flat table: printer and reader agree on
that rule, so the text round-trips exactly even for IR that the verifier would reject.
`launch` is the plan-launch pass's `ir.LaunchPlan`; group_rows appears only when not 0.
A copy region prints as `%A[origin +: extent, ...]`; a dim without `+:` is not mapped (extent 1); `axes [...]`
appears only when the mapped dims are not that; a whole tile prints as just `%a`.
"""
from __future__ import annotations

import json
import numbers

from . import ir

INDENT = "  "
#: binding strength of each binary operator (higher binds tighter); max/min print as calls
_PREC = {"or": 1, "and": 2, **{op: 3 for op in ir.COMPARE_OPS}, "+": 4, "-": 4, "*": 5, "/": 5, "//": 5, "%": 5}
_ATOM = 6


def literal_text(value) -> str:
    """A Python scalar as the text format writes it; floats use repr so they read back bit-exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return repr(float(value))


def literal_dtype(value) -> str:
    """The dtype a literal has when no `:dtype` suffix follows it."""
    if isinstance(value, bool):
        return "bool"
    return "index" if isinstance(value, numbers.Integral) else "float32"


def inferred_dtype(expr, vars: dict, buffers: dict):
    """The dtype the reader assigns to `expr` without a suffix (its children already read), or None."""
    if isinstance(expr, ir.Const):
        return literal_dtype(expr.value)
    if isinstance(expr, ir.Var):
        return vars.get(expr.name)
    if isinstance(expr, ir.Load):
        buf = buffers.get(expr.buffer)
        return buf.dtype if buf is not None else None
    if isinstance(expr, ir.BinOp):
        if expr.op in ir.COMPARE_OPS or expr.op in ir.LOGIC_OPS:
            return "bool"
        a, b = expr.lhs.dtype, expr.rhs.dtype
        if a == b:
            return a
        return ir.promote(a, b) if a in ir.DTYPES and b in ir.DTYPES else None
    if isinstance(expr, ir.UnaryOp):
        return "bool" if expr.op == "not" else expr.operand.dtype
    if isinstance(expr, ir.Select):
        return expr.true_value.dtype
    if isinstance(expr, ir.Cast):
        return expr.dtype
    raise TypeError(f"not an IR expression: {expr!r}")


def whole_region(region: ir.Region, buffer) -> bool:
    """True when `region` covers all of `buffer` (then it prints as just the name)."""
    rank = len(buffer.shape)
    return (region.origin == tuple(ir.index(0) for _ in range(rank)) and region.extents == tuple(buffer.shape)
            and region.axes == tuple(range(rank)))


class Printer:
    def __init__(self, locs: bool = False):
        self.locs = locs
        self.vars: dict = {}  # name -> dtype, as the reader will know them
        self.buffers: dict = {}  # name -> Buffer
        self.lines: list = []

    # ------------------------------------------------------------------------------------------ expressions
    def expr(self, e, prec: int = 0) -> str:
        """`e` as text, in parentheses when it binds looser than `prec`."""
        text, own = self._expr(e)
        default = inferred_dtype(e, self.vars, self.buffers)
        if default != e.dtype:
            text, own = (f"({text})" if own < _ATOM else text) + f":{e.dtype}", _ATOM
        return f"({text})" if own < prec else text

    def _expr(self, e) -> tuple:
        if isinstance(e, ir.Const):
            return literal_text(e.value), _ATOM
        if isinstance(e, ir.Var):
            return f"%{e.name}", _ATOM
        if isinstance(e, ir.Load):
            return f"%{e.buffer}[{self.exprs(e.indices)}]", _ATOM
        if isinstance(e, ir.BinOp):
            if e.op not in _PREC:
                return f"{e.op}({self.expr(e.lhs)}, {self.expr(e.rhs)})", _ATOM
            p = _PREC[e.op]
            left = self.expr(e.lhs, p + 1 if e.op in ir.COMPARE_OPS else p)
            return f"{left} {e.op} {self.expr(e.rhs, p + 1)}", p
        if isinstance(e, ir.UnaryOp):
            return f"{e.op}({self.expr(e.operand)})", _ATOM
        if isinstance(e, ir.Select):
            return f"select({self.exprs((e.cond, e.true_value, e.false_value))})", _ATOM
        if isinstance(e, ir.Cast):
            return f"{e.dtype}({self.expr(e.value)})", _ATOM
        raise TypeError(f"not an IR expression: {e!r}")

    def exprs(self, es) -> str:
        return ", ".join(self.expr(e) for e in es)

    # ------------------------------------------------------------------------------------------ pieces
    def var_def(self, v: ir.Var, default: str = "index") -> str:
        self.vars[v.name] = v.dtype
        return f"%{v.name}" if v.dtype == default else f"%{v.name}: {v.dtype}"

    def buffer_type(self, b: ir.Buffer) -> str:
        stages = f" stages={b.stages}" if b.stages != 1 else ""
        return f"{b.dtype}[{self.exprs(b.shape)}] {b.scope}{stages}"

    def region(self, r: ir.Region) -> str:
        buf = self.buffers.get(r.buffer)
        if buf is not None and whole_region(r, buf):
            return f"%{r.buffer}"
        rank = len(r.origin)
        if len(r.extents) != rank:
            raise ValueError(f"region of '{r.buffer}' has {rank} origins but {len(r.extents)} extents")
        compact = (list(r.axes) == sorted(set(r.axes)) and all(0 <= a < rank for a in r.axes)
                   and all(r.extents[d] == ir.index(1) for d in range(rank) if d not in r.axes))
        dims = []
        for d in range(rank):
            origin = self.expr(r.origin[d])
            mapped = d in r.axes or not compact
            dims.append(f"{origin} +: {self.expr(r.extents[d])}" if mapped else origin)
        axes = "" if compact else f" axes [{', '.join(map(str, r.axes))}]"
        return f"%{r.buffer}[{', '.join(dims)}]{axes}"

    def loc(self, obj) -> str:
        return f" loc({json.dumps(obj.loc)})" if self.locs and obj.loc is not None else ""

    def emit(self, depth: int, text: str):
        self.lines.append(INDENT * depth + text)

    # ------------------------------------------------------------------------------------------ statements
    def block(self, body, depth: int):
        for stmt in body:
            self.stmt(stmt, depth)

    def stmt(self, s, depth: int):
        loc = self.loc(s)
        if isinstance(s, ir.Alloc):
            init = f" init {self.expr(s.init)}" if s.init is not None else ""
            self.emit(depth, f"%{s.buffer.name} = alloc {self.buffer_type(s.buffer)}{init}{loc}")
            self.buffers[s.buffer.name] = s.buffer
        elif isinstance(s, ir.Let):
            value = self.expr(s.value)
            self.emit(depth, f"let {self.var_def(s.var, default=None)} = {value}{loc}")
        elif isinstance(s, ir.Store):
            self.emit(depth, f"%{s.buffer}[{self.exprs(s.indices)}] = {self.expr(s.value)}{loc}")
        elif isinstance(s, ir.AtomicAdd):
            self.emit(depth, f"atomic_add %{s.buffer}[{self.exprs(s.indices)}], {self.expr(s.value)}{loc}")
        elif isinstance(s, ir.Copy):
            pad = f" pad {self.expr(s.pad)}" if s.pad is not None else ""
            self.emit(depth, f"copy {self.region(s.src)} -> {self.region(s.dst)}{pad}{loc}")
        elif isinstance(s, ir.Fill):
            self.emit(depth, f"fill %{s.buffer}, {self.expr(s.value)}{loc}")
        elif isinstance(s, ir.Gemm):
            flags = "".join(f" {f}" for f in ("transpose_a", "transpose_b") if getattr(s, f))
            self.emit(depth, f"gemm %{s.a}, %{s.b} -> %{s.c}{flags}{loc}")
        elif isinstance(s, ir.Reduce):
            acc = "" if s.clear else " accumulate"
            self.emit(depth, f"reduce {s.op} %{s.src} -> %{s.dst} dim={s.dim}{acc}{loc}")
        elif isinstance(s, ir.For):
            head = "for" if s.kind == "serial" else f"for.{s.kind}"
            bounds = f"{self.expr(s.start)} to {self.expr(s.stop)} step {self.expr(s.step)}"
            if s.num_stages != ir.index(1):
                bounds += f" num_stages={self.expr(s.num_stages)}"
            if s.stages:
                bounds += f" stages=[{', '.join(map(str, s.stages))}]"
            self.emit(depth, f"{head} {self.var_def(s.var)} = {bounds}{loc} {{")
            self.block(s.body, depth + 1)
            self.emit(depth, "}")
        elif isinstance(s, ir.Parallel):
            extents = self.exprs(s.extents)
            names = ", ".join(self.var_def(v) for v in s.vars)
            self.emit(depth, f"parallel {names} in [{extents}]{loc} {{")
            self.block(s.body, depth + 1)
            self.emit(depth, "}")
        elif isinstance(s, ir.If):
            self.emit(depth, f"if {self.expr(s.cond)}{loc} {{")
            self.block(s.then_body, depth + 1)
            if s.else_body:
                self.emit(depth, "} else {")
                self.block(s.else_body, depth + 1)
            self.emit(depth, "}")
        else:
            raise TypeError(f"not an IR statement: {s!r}")

    def kernel(self, k: ir.Kernel) -> str:
        self.emit(0, f"kernel @{k.name}{self.loc(k)}")
        if k.dims:
            self.emit(1, "dims " + ", ".join(self.var_def(d) for d in k.dims))
        if k.config:
            params = []
            for c in k.config:
                self.vars[c.name] = c.dtype
                params.append(f"%{c.name}: {c.dtype} = {literal_text(c.value)}")
            self.emit(1, "config " + ", ".join(params))
        if k.bound:
            self.emit(1, "bound " + ", ".join(f"%{name} = {literal_text(v)}" for name, v in k.bound))
        for p in k.params:
            self.emit(1, f"param %{p.name}: {self.buffer_type(p)}")
            self.buffers[p.name] = p
        extents = self.exprs(k.grid)
        names = "".join(f"{self.var_def(v)}, " for v in k.block_vars)[:-2]
        self.emit(1, f"grid {names + ' ' if names else ''}in [{extents}]")
        if k.launch is not None:
            self.emit(1, launch_text(k.launch))
        self.emit(0, "{")
        self.block(k.body, 1)
        self.emit(0, "}")
        return "\n".join(self.lines) + "\n"


def launch_text(plan: ir.LaunchPlan) -> str:
    group = f" group_rows={plan.group_rows}" if plan.group_rows else ""
    return (f"launch persistent={literal_text(plan.persistent)} num_warps={plan.num_warps} "
            f"order={plan.block_order}{group}")


def print_kernel(kernel: ir.Kernel, locs: bool = False) -> str:
    """The kernel as text; with `locs=True` every statement ends with `loc("file:line")`."""
    return Printer(locs).kernel(kernel)


def print_expr(expr) -> str:
    """One expression as text (variables and buffers it uses are taken as undeclared)."""
    return Printer().expr(expr)
