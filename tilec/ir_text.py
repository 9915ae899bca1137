"""Read the textual IR that `tilec.printer.print_kernel` writes: `parse_kernel_text(text) -> ir.Kernel`.

The grammar (tilec/ir.lark) is parsed by lark's LALR parser, built once on first use. A second step, `_Reader`,
walks the tree in text order, keeping the same flat tables of variables and buffers as the printer so that it
infers exactly the dtypes the printer left out. Every error is a TilecParseError that names line and column.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from importlib import resources

import lark

from . import ir
from .errors import TilecParseError
from .printer import inferred_dtype, literal_dtype

_CALL_BINOPS = ("max", "min")


@functools.lru_cache(maxsize=None)
def _parser() -> lark.Lark:
    grammar = resources.files("tilec").joinpath("ir.lark").read_text()
    return lark.Lark(grammar, parser="lalr", maybe_placeholders=True, propagate_positions=True)


def parse_kernel_text(text: str) -> ir.Kernel:
    """The kernel that `text` describes (locs come from the optional `loc("...")` suffixes)."""
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as e:
        raise TilecParseError(f"line {e.line}, column {e.column}: {_describe(e)}\n{e.get_context(text)}") from None
    return _Reader().kernel(tree)


def _describe(e: lark.UnexpectedInput) -> str:
    if isinstance(e, lark.UnexpectedToken):
        if e.token.type == "$END":
            return "unexpected end of text"
        expected = ", ".join(sorted(_spell(name) for name in (e.accepts or e.expected)))
        return f"unexpected {e.token.value!r}; expected one of: {expected}"
    if isinstance(e, lark.UnexpectedCharacters):
        return f"unexpected character {e.char!r}"
    return "unexpected end of text"


_TOKEN_WORDS = {"VAR": "%name", "KERNEL_NAME": "@name", "NAME": "a name", "NUMBER": "a number", "INT": "an integer",
                "ESCAPED_STRING": "a string", "FOR": "for", "CMP_OP": "a comparison", "ADD_OP": "+ or -",
                "MUL_OP": "* / // %", "TRANSPOSE": "transpose_a/b"}


def _spell(terminal: str) -> str:
    """How a terminal looks in the text, for error messages."""
    if terminal in _TOKEN_WORDS:
        return _TOKEN_WORDS[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return repr(pattern.value) if pattern.type == "str" else terminal


def _pos(node) -> str:
    if isinstance(node, lark.Token):
        return f"line {node.line}, column {node.column}"
    if isinstance(node, lark.Tree) and not node.meta.empty:
        return f"line {node.meta.line}, column {node.meta.column}"
    return "somewhere"


def _error(node, msg) -> TilecParseError:
    return TilecParseError(f"{_pos(node)}: {msg}")


def _name(token) -> str:
    """A `%name` or `@name` token without its sigil."""
    return str(token)[1:]


def _check_dtype(token) -> str:
    if str(token) not in ir.DTYPES:
        raise _error(token, f"unknown dtype {str(token)!r}; dtypes are {', '.join(ir.DTYPES)}")
    return str(token)


def _literal(tree):
    sign, token = tree.children
    text = str(token)
    if token.type == "NAME":
        if text in ("true", "false") and sign is None:
            return text == "true"
        if text not in ("inf", "nan"):
            raise _error(token, f"unknown word {text!r} in an expression; a literal is a number, true, false, "
                                f"inf or nan, a variable is %name, a call name(...)")
        value = float(text)
    else:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    return -value if sign is not None else value


def _int_list(tree) -> tuple:
    return tuple(int(t) for t in tree.children if t is not None)


class _Reader:
    def __init__(self):
        self.vars: dict = {}  # name -> dtype
        self.buffers: dict = {}  # name -> Buffer

    # ------------------------------------------------------------------------------------------ expressions
    def expr(self, t, dtype=None):
        """Read one expression; `dtype` is its `:dtype` suffix when it has one."""
        kind = t.data
        if kind == "annotate":
            atom, token = t.children
            return self.expr(atom, _check_dtype(token))
        if kind == "literal":
            value = _literal(t)
            return ir.Const(value, dtype or literal_dtype(value))
        if kind == "var":
            (token,) = t.children
            name = _name(token)
            dtype = dtype or self.vars.get(name)
            if dtype is None:
                raise _error(token, f"variable %{name} is not defined above; give its dtype as %{name}:index")
            return ir.Var(name, dtype)
        if kind == "load":
            token, indices = t.children
            e = ir.Load(_name(token), self.exprs(indices), "")
        elif kind in ("binop", "logic_or", "logic_and"):
            if kind == "binop":
                lhs, op, rhs = t.children
                op = str(op)
            else:
                (lhs, rhs), op = t.children, "or" if kind == "logic_or" else "and"
            e = ir.BinOp(op, self.expr(lhs), self.expr(rhs), "")
        elif kind == "call":
            e = self.call(t)
        else:
            raise _error(t, f"unexpected {kind}")  # the grammar produces nothing else
        inferred = dtype or inferred_dtype(e, self.vars, self.buffers)
        if inferred is None:
            what = f"buffer %{e.buffer}" if isinstance(e, ir.Load) else "operand dtypes"
            raise _error(t, f"cannot infer the dtype ({what} unknown here); add a suffix like :float32")
        return _with_dtype(e, inferred)

    def call(self, t):
        token, args_tree = t.children
        fn = str(token)
        args = self.exprs(args_tree)
        arity = 3 if fn == "select" else 2 if fn in _CALL_BINOPS else 1
        if fn not in ir.UNARY_OPS + _CALL_BINOPS + ("select",) + ir.DTYPES:
            raise _error(token, f"unknown function {fn!r}; known: {', '.join(ir.UNARY_OPS + _CALL_BINOPS)}, "
                                f"select, and a dtype name for a cast")
        if len(args) != arity:
            raise _error(token, f"{fn}(...) takes {arity} argument(s), got {len(args)}")
        if fn in ir.DTYPES:
            return ir.Cast(args[0], fn)
        if fn in _CALL_BINOPS:
            return ir.BinOp(fn, args[0], args[1], "")
        if fn == "select":
            return ir.Select(*args, "")
        return ir.UnaryOp(fn, args[0], "")

    def exprs(self, t) -> tuple:
        return () if t is None else tuple(self.expr(c) for c in t.children)

    # ------------------------------------------------------------------------------------------ pieces
    def var_def(self, t, default="index") -> ir.Var:
        token, dtype = t.children
        var = ir.Var(_name(token), _check_dtype(dtype) if dtype is not None else default)
        self.vars[var.name] = var.dtype
        return var

    def var_defs(self, t) -> tuple:
        return () if t is None else tuple(self.var_def(c) for c in t.children)

    def buffer_type(self, name, t) -> ir.Buffer:
        dtype, shape, scope, stages = t.children
        if str(scope) not in ir.SCOPES:
            raise _error(scope, f"unknown memory scope {str(scope)!r}; scopes are {', '.join(ir.SCOPES)}")
        return ir.Buffer(_name(name), self.exprs(shape), _check_dtype(dtype), str(scope),
                         1 if stages is None else int(stages))

    def region(self, t) -> ir.Region:
        token, dims, axes = t.children
        name = _name(token)
        if dims is None:
            buf = self.buffers.get(name)
            if buf is None:
                raise _error(token, f"buffer %{name} is not defined above; write the region as "
                                    f"%{name}[origin +: extent, ...]")
            rank = len(buf.shape)
            return ir.Region(name, tuple(ir.index(0) for _ in range(rank)), tuple(buf.shape), tuple(range(rank)))
        origin, extents, mapped = [], [], []
        for d, dim in enumerate(c for c in dims.children if c is not None):
            start, extent = dim.children
            origin.append(self.expr(start))
            extents.append(ir.index(1) if extent is None else self.expr(extent))
            if extent is not None:
                mapped.append(d)
        return ir.Region(name, tuple(origin), tuple(extents), _int_list(axes) if axes is not None else tuple(mapped))

    # ------------------------------------------------------------------------------------------ statements
    def block(self, t) -> tuple:
        return tuple(self.stmt(c) for c in t.children)

    def stmt(self, t):
        kind, c = t.data, t.children
        loc = _loc(c[-1]) if kind not in ("for_", "parallel", "if_") else None
        if kind == "alloc":
            buf = self.buffer_type(c[0], c[1])
            init = None if c[2] is None else self.expr(c[2])
            self.buffers[buf.name] = buf
            return ir.Alloc(buf, init, loc=loc)
        if kind == "let":
            value = self.expr(c[2])
            var = ir.Var(_name(c[0]), _check_dtype(c[1]))
            self.vars[var.name] = var.dtype
            return ir.Let(var, value, loc=loc)
        if kind in ("store", "atomic_add"):
            cls = ir.Store if kind == "store" else ir.AtomicAdd
            return cls(_name(c[0]), self.exprs(c[1]), self.expr(c[2]), loc=loc)
        if kind == "copy":
            src, dst = self.region(c[0]), self.region(c[1])
            return ir.Copy(src, dst, None if c[2] is None else self.expr(c[2]), loc=loc)
        if kind == "fill":
            return ir.Fill(_name(c[0]), self.expr(c[1]), loc=loc)
        if kind == "gemm":
            flags = {str(f.children[0]) for f in c[3:-1]}
            return ir.Gemm(_name(c[0]), _name(c[1]), _name(c[2]), "transpose_a" in flags, "transpose_b" in flags,
                           loc=loc)
        if kind == "reduce":
            op, src, dst, sign, dim, accumulate = c[:6]
            return ir.Reduce(str(op), _name(src), _name(dst), -int(dim) if sign is not None else int(dim),
                             accumulate is None, loc=loc)
        if kind == "for_":
            head, var, start, stop, step, num_stages, stages, loc_t, body = c
            bounds = [self.expr(x) for x in (start, stop, step)]
            ns = ir.index(1) if num_stages is None else self.expr(num_stages)
            kind_name = str(head).partition(".")[2] or "serial"
            var = self.var_def(var)
            return ir.For(var, *bounds, self.block(body), kind_name, ns,
                          () if stages is None else _int_list(stages), loc=_loc(loc_t))
        if kind == "parallel":
            var_defs, extents, loc_t, body = c
            extents = self.exprs(extents)
            return ir.Parallel(self.var_defs(var_defs), extents, self.block(body), loc=_loc(loc_t))
        if kind == "if_":
            cond, loc_t, then_body, else_body = c
            cond = self.expr(cond)
            return ir.If(cond, self.block(then_body), () if else_body is None else self.block(else_body),
                         loc=_loc(loc_t))
        raise _error(t, f"unexpected {kind}")  # the grammar produces nothing else

    def kernel(self, t) -> ir.Kernel:
        name, loc_t, *rest = t.children
        headers = [h for h in rest if h.data in ("dims", "config", "bound", "param", "grid", "launch")]
        body = rest[len(headers):]
        fields = {"dims": (), "config": (), "bound": (), "grid": (), "block_vars": (), "launch": None}
        params, seen = [], set()
        for h in headers:
            if h.data in seen and h.data != "param":
                raise _error(h, f"a second '{h.data}' line; put all of them on one")
            seen.add(h.data)
            if h.data == "dims":
                fields["dims"] = self.var_defs(h.children[0])
            elif h.data == "config":
                fields["config"] = tuple(self.config_param(p) for p in h.children)
            elif h.data == "bound":
                fields["bound"] = tuple((_name(b.children[0]), _literal(b.children[1])) for b in h.children)
            elif h.data == "param":
                buf = self.buffer_type(h.children[0], h.children[1])
                self.buffers[buf.name] = buf
                params.append(buf)
            elif h.data == "launch":
                fields["launch"] = _launch_plan(h)
            else:
                var_defs, extents = h.children
                fields["grid"] = self.exprs(extents)
                fields["block_vars"] = self.var_defs(var_defs)
        return ir.Kernel(_name(name), tuple(params), fields["dims"], fields["config"], fields["grid"],
                         fields["block_vars"], tuple(self.stmt(s) for s in body), fields["bound"],
                         fields["launch"], loc=_loc(loc_t))

    def config_param(self, t) -> ir.ConfigParam:
        token, dtype, value = t.children
        self.vars[_name(token)] = _check_dtype(dtype)
        return ir.ConfigParam(_name(token), str(dtype), _literal(value))


#: a `launch` line's attributes -> LaunchPlan fields; group_rows may be left out (0)
_LAUNCH_FIELDS = {"persistent": "persistent", "num_warps": "num_warps", "order": "block_order",
                  "group_rows": "group_rows"}
_LAUNCH_WORDS = {"persistent": ("true", "false"), "order": ir.BLOCK_ORDERS}  # the others take integers


def _launch_plan(h) -> ir.LaunchPlan:
    values = {}
    for attr in h.children:
        key, token = attr.children
        name, text = str(key), str(token)
        if name not in _LAUNCH_FIELDS:
            raise _error(key, f"unknown launch attribute {name!r}; they are {', '.join(_LAUNCH_FIELDS)}")
        if _LAUNCH_FIELDS[name] in values:
            raise _error(key, f"a second {name}= on the launch line")
        words = _LAUNCH_WORDS.get(name)
        if (text not in words) if words else token.type != "INT":
            raise _error(token, f"launch {name}={text}: expected {' or '.join(words) if words else 'an integer'}")
        values[_LAUNCH_FIELDS[name]] = (text == "true" if name == "persistent" else text) if words else int(text)
    missing = [n for n in ("persistent", "num_warps", "order") if _LAUNCH_FIELDS[n] not in values]
    if missing:
        raise _error(h, f"the launch line lacks {', '.join(missing)}")
    return ir.LaunchPlan(**values)


def _loc(t):
    return None if t is None else json.loads(str(t.children[0]))


def _with_dtype(e, dtype):
    return dataclasses.replace(e, dtype=dtype)
