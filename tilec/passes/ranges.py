"""fold-ranges: decide integer comparisons from the ranges of the values they compare, once shapes and config are
bound. A block index runs over its grid extent, a loop variable over its bounds, a `T.Parallel` index over its
extent, and a let-bound value over the range of its expression; `kb * 64 + j < 4096` with kb < 64 and j < 64 is
then always true, so the mask it guards (`T.where`, an `if`) is dropped and the lowering emits no compare and
select per element; a loop whose stop never exceeds its start is dropped. Only integer comparisons are folded;
anything unknown (a loaded value, a float) stays."""
from __future__ import annotations

import dataclasses

from .. import ir
from .base import Pass
from .simplify import fold

Range = tuple  # (lo, hi), inclusive integers

_COMPARE = {"<": lambda a, b: (a[1] < b[0], a[0] >= b[1]), "<=": lambda a, b: (a[1] <= b[0], a[0] > b[1]),
            ">": lambda a, b: (a[0] > b[1], a[1] <= b[0]), ">=": lambda a, b: (a[0] >= b[1], a[1] < b[0])}


def value_range(e, env: dict) -> Range | None:
    """Inclusive integer bounds of `e` under `env` {var name: Range}, or None when unknown."""
    if isinstance(e, ir.Const):
        return (e.value, e.value) if ir.is_int(e.dtype) and not isinstance(e.value, bool) else None
    if isinstance(e, ir.Var):
        return env.get(e.name)
    if isinstance(e, ir.Cast) and ir.is_int(e.dtype) and ir.is_int(e.value.dtype):
        return value_range(e.value, env)
    if isinstance(e, ir.BinOp) and ir.is_int(e.dtype):
        a, b = value_range(e.lhs, env), value_range(e.rhs, env)
        if a is None or b is None:
            return None
        if e.op == "+":
            return a[0] + b[0], a[1] + b[1]
        if e.op == "-":
            return a[0] - b[1], a[1] - b[0]
        if e.op == "*":
            corners = [x * y for x in a for y in b]
            return min(corners), max(corners)
        if e.op == "max":
            return max(a[0], b[0]), max(a[1], b[1])
        if e.op == "min":
            return min(a[0], b[0]), min(a[1], b[1])
        # non-negative dividends only: the lowerings may truncate (C) where Python floors
        if e.op == "//" and b[0] == b[1] and b[0] > 0 and a[0] >= 0:
            return a[0] // b[0], a[1] // b[0]
        if e.op == "%" and b[0] == b[1] and b[0] > 0 and a[0] >= 0:
            return a if a[1] < b[0] else (0, b[0] - 1)
    return None


def fold_compare(e, env: dict):
    """A comparison whose answer the ranges decide becomes a bool Const, a min/max one side of which always wins
becomes that side, and `and`/`or` with a decided side shrink."""
    if isinstance(e, ir.BinOp) and e.op in _COMPARE:
        a, b = value_range(e.lhs, env), value_range(e.rhs, env)
        if a is not None and b is not None:
            always, never = _COMPARE[e.op](a, b)
            if always or never:
                return ir.Const(bool(always), "bool")
    if isinstance(e, ir.BinOp) and e.op in ("min", "max") and ir.is_int(e.dtype):
        a, b = value_range(e.lhs, env), value_range(e.rhs, env)
        if a is not None and b is not None:  # one side always wins: a clamp that never clamps
            if a[1] <= b[0]:
                return e.lhs if e.op == "min" else e.rhs
            if b[1] <= a[0]:
                return e.rhs if e.op == "min" else e.lhs
    if isinstance(e, ir.BinOp) and e.op in ("and", "or") and e.dtype == "bool":
        for known, other in ((e.lhs, e.rhs), (e.rhs, e.lhs)):
            if isinstance(known, ir.Const):
                if e.op == "and":
                    return other if known.value else known
                return known if known.value else other
    return fold(e)


def extent_range(start, stop, env) -> Range | None:
    lo, hi = value_range(start, env), value_range(stop, env)
    if lo is None or hi is None or hi[1] - 1 < lo[0]:
        return None
    return lo[0], hi[1] - 1


class FoldRanges(Pass):
    name = "fold-ranges"

    def run(self, kernel, ctx):
        env = {}
        for var, extent in zip(kernel.block_vars, kernel.grid):
            r = extent_range(ir.index(0), extent, env)
            if r is not None:
                env[var.name] = r
        return kernel.replace(body=self.body(kernel.body, env))

    def body(self, stmts, env: dict) -> tuple:
        env = dict(env)  # lets bind for the rest of their own body only
        out = []
        for stmt in stmts:
            stmt = ir.map_stmt_exprs(stmt, lambda e: fold_compare(e, env))
            if isinstance(stmt, ir.Let):
                r = value_range(stmt.value, env)
                if r is not None:
                    env[stmt.var.name] = r
                else:
                    env.pop(stmt.var.name, None)
            elif isinstance(stmt, ir.If) and isinstance(stmt.cond, ir.Const):
                out.extend(self.body(stmt.then_body if stmt.cond.value else stmt.else_body, env))
                continue
            elif isinstance(stmt, ir.If):
                stmt = dataclasses.replace(stmt, then_body=self.body(stmt.then_body, env),
                                           else_body=self.body(stmt.else_body, env))
            elif isinstance(stmt, ir.For):
                lo, hi = value_range(stmt.start, env), value_range(stmt.stop, env)
                if lo is not None and hi is not None and hi[1] <= lo[0]:
                    continue  # runs zero times for every block
                inner = dict(env)
                r = extent_range(stmt.start, stmt.stop, env)
                step = value_range(stmt.step, env)
                if r is not None and step == (1, 1):
                    inner[stmt.var.name] = r
                else:
                    inner.pop(stmt.var.name, None)
                stmt = dataclasses.replace(stmt, body=self.body(stmt.body, inner))
            elif isinstance(stmt, ir.Parallel):
                inner = dict(env)
                for var, extent in zip(stmt.vars, stmt.extents):
                    r = extent_range(ir.index(0), extent, env)
                    if r is None:
                        inner.pop(var.name, None)
                    else:
                        inner[var.name] = r
                stmt = dataclasses.replace(stmt, body=self.body(stmt.body, inner))
            out.append(stmt)
        return tuple(out)
