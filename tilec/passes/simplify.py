"""simplify: fold constants and drop identities in index arithmetic; inline `if` on a constant condition;
drop loops that run zero times."""
from __future__ import annotations

import dataclasses
import math

from .. import ir
from .base import Pass

_FOLD = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "//": lambda a, b: a // b if b else None, "%": lambda a, b: a % b if b else None,
    "/": lambda a, b: a / b if b else None, "max": max, "min": min,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "and": lambda a, b: a and b, "or": lambda a, b: a or b,
}
_UNARY = {"neg": lambda x: -x, "not": lambda x: not x, "abs": abs, "exp": math.exp, "exp2": lambda x: 2.0 ** x,
          "sqrt": math.sqrt, "relu": lambda x: max(x, 0)}


def _const(value, dtype):
    if dtype == "bool":
        return ir.Const(bool(value), dtype)
    if ir.is_int(dtype):
        return ir.Const(int(value), dtype)
    return ir.Const(float(value), dtype)


def fold(e):
    """One bottom-up step for `ir.map_expr`."""
    if isinstance(e, ir.BinOp):
        a, b = e.lhs, e.rhs
        if isinstance(a, ir.Const) and isinstance(b, ir.Const):
            if ir.is_int(e.dtype) and e.op == "/":
                return e
            try:
                v = _FOLD[e.op](a.value, b.value)
            except (OverflowError, ValueError):
                v = None
            return e if v is None else _const(v, e.dtype)
        zero = lambda x: isinstance(x, ir.Const) and x.value == 0 and ir.is_int(x.dtype)  # noqa: E731
        one = lambda x: isinstance(x, ir.Const) and x.value == 1 and ir.is_int(x.dtype)  # noqa: E731
        if e.op == "+" and zero(b) or e.op in ("-",) and zero(b) or e.op in ("*", "//") and one(b):
            return a
        if e.op == "+" and zero(a) or e.op == "*" and one(a):
            return b
        if e.op == "*" and (zero(a) or zero(b)) and ir.is_int(e.dtype):
            return ir.Const(0, e.dtype)
        if e.op == "%" and one(b):
            return ir.Const(0, e.dtype)
        # (x + c1) + c2 -> x + (c1 + c2): keeps tile origins in canonical form
        if e.op == "+" and isinstance(b, ir.Const) and isinstance(a, ir.BinOp) and a.op == "+" and \
                isinstance(a.rhs, ir.Const) and ir.is_int(e.dtype):
            return ir.BinOp("+", a.lhs, ir.Const(a.rhs.value + b.value, e.dtype), e.dtype)
        return e
    if isinstance(e, ir.UnaryOp) and isinstance(e.operand, ir.Const) and e.op in _UNARY:
        try:
            return _const(_UNARY[e.op](e.operand.value), e.dtype)
        except (OverflowError, ValueError):
            return e
    if isinstance(e, ir.Cast) and isinstance(e.value, ir.Const):
        return _const(e.value.value, e.dtype)
    if isinstance(e, ir.Cast) and e.value.dtype == e.dtype:
        return e.value
    if isinstance(e, ir.Select) and isinstance(e.cond, ir.Const):
        return e.true_value if e.cond.value else e.false_value
    return e


def simplify_body(body) -> tuple:
    out = []
    for stmt in body:
        stmt = ir.map_stmt_exprs(stmt, fold)
        if isinstance(stmt, ir.If) and isinstance(stmt.cond, ir.Const):
            out.extend(simplify_body(stmt.then_body if stmt.cond.value else stmt.else_body))
            continue
        if isinstance(stmt, ir.For):
            if all(isinstance(x, ir.Const) for x in (stmt.start, stmt.stop)) and stmt.stop.value <= stmt.start.value:
                continue
            stmt = dataclasses.replace(stmt, body=simplify_body(stmt.body))
        elif isinstance(stmt, ir.Parallel):
            stmt = dataclasses.replace(stmt, body=simplify_body(stmt.body))
        elif isinstance(stmt, ir.If):
            stmt = dataclasses.replace(stmt, then_body=simplify_body(stmt.then_body),
                                       else_body=simplify_body(stmt.else_body))
        out.append(stmt)
    return tuple(out)


class Simplify(Pass):
    name = "simplify"

    def run(self, kernel, ctx):
        k = ir.map_kernel_exprs(kernel, fold)
        return k.replace(body=simplify_body(k.body))
