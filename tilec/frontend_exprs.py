"""The frontend's expressions: Python expression nodes -> IR `Expr`s (or the frontend values that name buffers,
regions and dtypes). A mixin of `KernelParser` (tilec/frontend.py), which supplies the scopes (`lookup`), error
locations (`error`) and regions."""
from __future__ import annotations

import ast
import builtins
import math
from dataclasses import dataclass

from . import ir
from .errors import TilecTypeError


# ---------------------------------------------------------------------------------------------- frontend values
@dataclass
class BufferRef:
    buffer: ir.Buffer


@dataclass
class Indexed:
    """`buf[items]` before we know whether it is an element read, a copy region or a store target."""
    buffer: ir.Buffer
    items: tuple  # of Expr or Slice
    node: ast.AST


@dataclass
class Slice:
    start: object  # Expr or None
    stop: object


@dataclass
class LocalScalar:
    """A name bound to a T.alloc_var scalar."""
    buffer: ir.Buffer


@dataclass
class LetBinding:
    var: ir.Var
    depth: int  # body nesting depth at which it was bound


_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


class ExprParser:
    """Expression translation; `KernelParser` mixes it in."""

    def value(self, node):
        """Translate an expression to an IR Expr or a frontend value (Indexed, BufferRef, dtype str, tuple)."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (bool, int, float, str)):
                return self.python_to_value(node.value, node)
            raise self.error(node, f"unsupported constant {node.value!r}")
        if isinstance(node, ast.Name):
            v = self.lookup(node.id, node)
            return self.python_to_value(v, node)
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.value(e) for e in node.elts)
        if isinstance(node, ast.Attribute):
            base = self.value(node.value) if not isinstance(node.value, ast.Name) or \
                any(node.value.id in s for s in self.env) else self.lookup(node.value.id, node.value)
            if isinstance(base, BufferRef):
                if node.attr == "dtype":
                    return base.buffer.dtype
                if node.attr == "shape":
                    return tuple(base.buffer.shape)
                raise self.error(node, f"a tensor has .dtype and .shape, not .{node.attr}")
            try:
                return self.python_to_value(getattr(base, node.attr), node)
            except AttributeError:
                raise self.error(node, f"unknown attribute `{ast.unparse(node)}`") from None
        if isinstance(node, ast.Subscript):
            base = self.value(node.value)
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if isinstance(base, tuple):  # A.shape[0]
                if len(items) != 1:
                    raise self.error(node, "index a shape with one integer")
                i = self.python_int(items[0], node, "shape index")
                return base[i]
            if isinstance(base, LocalScalar):
                return ir.Load(base.buffer.name, (), base.buffer.dtype)
            if not isinstance(base, BufferRef):
                raise self.error(node, f"`{ast.unparse(node.value)}` is not a tensor or tile")
            out = []
            for it in items:
                if isinstance(it, ast.Slice):
                    if it.step is not None:
                        raise self.error(node, "strided slices are not supported")
                    out.append(Slice(None if it.lower is None else self.index_expr(it.lower),
                                     None if it.upper is None else self.index_expr(it.upper)))
                else:
                    out.append(self.index_expr(it))
            return Indexed(base.buffer, tuple(out), node)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.error(node, f"operator `{type(node.op).__name__}` is not supported")
            return self.binop(op, self.expr(node.left), self.expr(node.right), node)
        if isinstance(node, ast.UnaryOp):
            x = self.expr(node.operand)
            if isinstance(node.op, ast.USub):
                return self.unary("neg", x, node)
            if isinstance(node.op, ast.UAdd):
                return x
            if isinstance(node.op, ast.Not):
                return self.unary("not", self.truth(x, node), node)
            raise self.error(node, "bitwise ~ is not supported")
        if isinstance(node, ast.Compare):
            result, left = None, self.expr(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.expr(right_node)
                c = self.binop(_CMPOPS[type(op)], left, right, node)
                result = c if result is None else self.binop("and", result, c, node)
                left = right
            return result
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            vals = [self.truth(self.expr(v), node) for v in node.values]
            out = vals[0]
            for v in vals[1:]:
                out = self.binop(op, out, v, node)
            return out
        if isinstance(node, ast.IfExp):
            return self.select(self.truth(self.expr(node.test), node), self.expr(node.body),
                               self.expr(node.orelse), node)
        if isinstance(node, ast.Call):
            return self.call_expr(node)
        raise self.error(node, f"`{type(node).__name__}` expressions are not supported in a kernel")

    def python_to_value(self, v, node):
        if isinstance(v, (BufferRef, LocalScalar, Indexed, tuple, str)) or isinstance(v, ir.EXPR_TYPES):
            if isinstance(v, LocalScalar):
                return ir.Load(v.buffer.name, (), v.buffer.dtype)
            return v
        if isinstance(v, LetBinding):
            return v.var
        if isinstance(v, bool):
            return ir.Const(v, "bool")
        if isinstance(v, int):
            return ir.Const(v, "index")
        if isinstance(v, float):
            return ir.Const(v, "float32")
        return v  # modules, builtins: only meaningful as callees

    def expr(self, node) -> ir.Expr:
        v = self.value(node)
        if isinstance(v, Indexed):
            return self.load(v)
        if not isinstance(v, ir.EXPR_TYPES):
            raise self.error(node, f"`{ast.unparse(node)}` is not a scalar or element value")
        return v

    def index_expr(self, node) -> ir.Expr:
        return self.as_index(self.expr(node), node)

    def as_index(self, v, node):
        if not isinstance(v, ir.EXPR_TYPES):
            raise self.error(node, f"expected an integer, got {v!r}")
        if not ir.is_int(v.dtype):
            raise self.error(node, f"expected an integer expression, got dtype {v.dtype}", TilecTypeError)
        return v if v.dtype == "index" else ir.Cast(v, "index") if not isinstance(v, ir.Const) else ir.index(v.value)

    def load(self, v: Indexed) -> ir.Expr:
        if any(isinstance(i, Slice) for i in v.items):
            raise self.error(v.node, "a slice is a region: use it in T.copy, not as a value")
        self.check_rank(v, v.node)
        return ir.Load(v.buffer.name, v.items, v.buffer.dtype)

    def truth(self, x, node):
        return x if x.dtype == "bool" else self.binop("!=", x, ir.Const(0, x.dtype), node)

    def call_expr(self, node) -> ir.Expr:
        callee = self.resolve_callee(node.func)
        if callee is float and len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
            return ir.Const(float(node.args[0].value), "float32")
        if callee in (builtins.min, builtins.max) and len(node.args) == 2 and not node.keywords:
            return self.binop(callee.__name__, self.expr(node.args[0]), self.expr(node.args[1]), node)
        if callee is builtins.abs and len(node.args) == 1:
            return self.unary("abs", self.expr(node.args[0]), node)
        name = getattr(callee, "_tilec_builtin", None)
        if name is None:
            raise self.error(node, f"`{ast.unparse(node.func)}` cannot be called in a kernel")
        args = self.bind_args(callee, node)
        if name in ir.UNARY_OPS:
            return self.unary(name, self.expr(args["x"]), node)
        if name in ("max", "min"):
            return self.binop(name, self.expr(args["a"]), self.expr(args["b"]), node)
        if name == "where":
            return self.select(self.truth(self.expr(args["cond"]), node), self.expr(args["a"]),
                               self.expr(args["b"]), node)
        if name == "cast":
            dtype = self.dtype_arg(args["dtype"], node)
            x = self.expr(args["x"])
            return ir.Const(_convert(x.value, dtype), dtype) if isinstance(x, ir.Const) else ir.Cast(x, dtype)
        if name == "ceildiv":
            a, b = self.index_expr(args["a"]), self.index_expr(args["b"])
            return self.binop("//", self.binop("-", self.binop("+", a, b, node), ir.index(1), node), b, node)
        if name == "infinity":
            return ir.Const(math.inf, self.dtype_arg(args["dtype"], node))
        raise self.error(node, f"T.{name}(...) is a statement, not a value")

    # ------------------------------------------------------------------------------------------ typing
    def binop(self, op, a, b, node) -> ir.Expr:
        if op in ir.LOGIC_OPS:
            if a.dtype != "bool" or b.dtype != "bool":
                raise self.error(node, f"`{op}` takes booleans", TilecTypeError)
            dtype = operand = "bool"
        else:
            operand = _literal_promote(a, b)
            if op == "/" and ir.is_int(operand):
                operand = "float32"
            if op in ("//", "%") and ir.is_float(operand) and node is not None:
                pass  # floor division of floats is allowed (Python semantics)
            dtype = "bool" if op in ir.COMPARE_OPS else operand
        a, b = self.coerce(a, operand), self.coerce(b, operand)
        if isinstance(a, ir.Const) and isinstance(b, ir.Const):
            folded = _fold(op, a.value, b.value)
            if folded is not None:
                return ir.Const(_convert(folded, dtype), dtype)
        return ir.BinOp(op, a, b, dtype)

    def unary(self, op, x, node) -> ir.Expr:
        dtype = x.dtype
        if op in ir.FLOAT_ONLY_UNARY and not ir.is_float(dtype):
            x, dtype = self.coerce(x, "float32"), "float32"
        if op == "not":
            dtype = "bool"
        if isinstance(x, ir.Const) and op in ("neg", "abs"):
            return ir.Const(-x.value if op == "neg" else builtins.abs(x.value), dtype)
        return ir.UnaryOp(op, x, dtype)

    def select(self, cond, a, b, node):
        dtype = _literal_promote(a, b)
        return ir.Select(cond, self.coerce(a, dtype), self.coerce(b, dtype), dtype)

    def coerce(self, x, dtype):
        if x.dtype == dtype:
            return x
        if isinstance(x, ir.Const):
            return ir.Const(_convert(x.value, dtype), dtype)
        return ir.Cast(x, dtype)


def _literal_promote(a, b) -> str:
    """Constants are weakly typed: they take the other operand's dtype when its kind can hold them."""
    if isinstance(a, ir.Const) and not isinstance(b, ir.Const):
        a, b = b, a
    if isinstance(b, ir.Const) and not isinstance(a, ir.Const):
        if ir.is_float(a.dtype) or (ir.is_int(a.dtype) and ir.is_int(b.dtype)) or a.dtype == b.dtype:
            return a.dtype
        if a.dtype == "bool" and ir.is_int(b.dtype):
            return b.dtype
        return "float32" if ir.is_float(b.dtype) else ir.promote(a.dtype, b.dtype)
    return ir.promote(a.dtype, b.dtype)


def _convert(value, dtype):
    if dtype == "bool":
        return bool(value)
    if ir.is_int(dtype):
        return int(value)
    return float(value)


def _fold(op, a, b):
    try:
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                "//": lambda: a // b, "%": lambda: a % b, "max": lambda: builtins.max(a, b),
                "min": lambda: builtins.min(a, b), "<": lambda: a < b, "<=": lambda: a <= b,
                ">": lambda: a > b, ">=": lambda: a >= b, "==": lambda: a == b, "!=": lambda: a != b,
                "and": lambda: a and b, "or": lambda: a or b}[op]()
    except (ZeroDivisionError, KeyError):
        return None
