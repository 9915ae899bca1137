"""Frontend: the kernel function's Python syntax tree (via `ast`, never tracing) -> `ir.Kernel`.

Config constants stay symbolic (`Var`s) here; the `bind` pass substitutes them with the dims.
Every unsupported construct raises `TilecSyntaxError` naming the user's file, line and source text.
"""
from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap

from . import ir
from . import language as T
from .errors import TilecSyntaxError, TilecTypeError
from .language.macro import Macro
from .language.tensor import TensorSpec
from .frontend_exprs import (_BINOPS, BufferRef, ExprParser, Indexed, LetBinding, LocalScalar, Slice)


MAX_MACRO_DEPTH = 16


@functools.lru_cache(maxsize=256)
def function_source(fn) -> tuple:
    """(file, source lines, first line, ast.FunctionDef) of fn: read and parsed once per function (a macro is
    inlined at every call)."""
    lines, first = inspect.getsourcelines(fn)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fdef = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return inspect.getsourcefile(fn) or "<unknown>", lines, first, fdef


class KernelParser(ExprParser):
    def __init__(self, fn):
        self.fn = fn
        self.fdef = self.load_function(fn)
        self.macro_stack: list = []  # names of the macros being inlined, innermost last
        self.env: list[dict] = []  # a stack of scopes
        self.used_names: set = set()
        self.depth = 0
        self.in_parallel = False

    # ------------------------------------------------------------------------------------------ errors & names
    def loc(self, node) -> str:
        return f"{self.file}:{self.first_line + node.lineno - 1}"

    def error(self, node, msg, cls=TilecSyntaxError):
        line = self.first_line + getattr(node, "lineno", 1) - 1
        idx = getattr(node, "lineno", 1) - 1
        text = self.source_lines[idx].strip() if 0 <= idx < len(self.source_lines) else ""
        return cls(f"{self.file}:{line}: {msg}\n    {text}")

    def fresh(self, name: str) -> str:
        candidate, n = name, 0
        while candidate in self.used_names:
            n += 1
            candidate = f"{name}_{n}"
        self.used_names.add(candidate)
        return candidate

    def bind(self, name, value):
        self.env[-1][name] = value

    def lookup(self, name, node):
        for scope in reversed(self.env):
            if name in scope:
                return scope[name]
        if name in self.pyenv:
            return self.pyenv[name]
        raise self.error(node, f"unknown name '{name}': a kernel body may use its parameters, dims, config "
                               f"constants, names it assigned, and module-level constants")

    # ------------------------------------------------------------------------------------------ signature
    def parse(self) -> ir.Kernel:
        sig = inspect.signature(self.fn)
        hints = self.fn.__annotations__
        params, dims, config = [], {}, []
        self.env.append({})
        for p in sig.parameters.values():
            node = next(a for a in self.fdef.args.args + self.fdef.args.kwonlyargs if a.arg == p.name)
            if p.kind is p.KEYWORD_ONLY:
                if p.default is p.empty:
                    raise self.error(node, f"config constant '{p.name}' needs a default value")
                value = p.default
                dtype = ("bool" if isinstance(value, bool) else "index" if isinstance(value, int)
                         else "float32" if isinstance(value, float) else None)
                if dtype is None:
                    raise self.error(node, f"config constant '{p.name}' = {value!r}: must be an int, float or bool")
                config.append(ir.ConfigParam(p.name, dtype, value))
                self.used_names.add(p.name)
                self.bind(p.name, ir.Var(p.name, dtype))
                continue
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise self.error(node, f"parameter '{p.name}': use positional tensor parameters and keyword-only "
                                       f"config constants (after '*')")
            spec = hints.get(p.name)
            if isinstance(spec, str):
                spec = eval(spec, self.pyenv)  # noqa: S307 - `from __future__ import annotations` leaves strings
            if not isinstance(spec, TensorSpec):
                raise self.error(node, f"parameter '{p.name}' needs an annotation T.Tensor[(dims...), dtype]")
            shape = []
            for d in spec.shape:
                if isinstance(d, str):
                    if d not in dims:
                        dims[d] = ir.Var(d, "index")
                        self.used_names.add(d)
                        self.bind(d, dims[d])
                    shape.append(dims[d])
                else:
                    shape.append(ir.index(d))
            buf = ir.Buffer(p.name, tuple(shape), spec.dtype, "global")
            self.used_names.add(p.name)
            self.bind(p.name, BufferRef(buf))
            params.append(buf)
        grid, block_vars, body = self.parse_body_top()
        return ir.Kernel(self.fn.__name__, tuple(params), tuple(dims.values()), tuple(config), grid, block_vars,
                         body, loc=self.loc(self.fdef))

    def parse_body_top(self):
        stmts = [s for s in self.fdef.body if not _is_docstring(s)]
        kernel_with = [s for s in stmts if isinstance(s, ast.With)]
        if len(stmts) != 1 or len(kernel_with) != 1:
            bad = next((s for s in stmts if not isinstance(s, ast.With)), self.fdef)
            raise self.error(bad, "a kernel body must be exactly one `with T.Kernel(...) as ...:` block")
        w = kernel_with[0]
        item = w.items[0]
        if len(w.items) != 1 or not isinstance(item.context_expr, ast.Call) or \
                self.resolve_callee(item.context_expr.func) is not T.Kernel:
            raise self.error(w, "expected `with T.Kernel(grid...) as (bx, by):`")
        call = item.context_expr
        if call.keywords and any(k.arg != "threads" for k in call.keywords):
            raise self.error(call, "T.Kernel takes the grid extents (and optionally threads=, ignored)")
        if not 1 <= len(call.args) <= 3:
            raise self.error(call, f"T.Kernel takes 1 to 3 grid extents, got {len(call.args)}")
        grid = tuple(self.index_expr(a) for a in call.args)
        target = item.optional_vars
        names = [target] if isinstance(target, ast.Name) else list(getattr(target, "elts", []))
        if target is None or not all(isinstance(n, ast.Name) for n in names) or len(names) != len(grid):
            raise self.error(w, f"bind the block indices: `as bx` or `as (bx, by, ...)`, one per grid extent "
                                f"({len(grid)})")
        block_vars = []
        for n in names:
            v = ir.Var(self.fresh(n.id), "index")
            self.bind(n.id, v)
            block_vars.append(v)
        body = self.parse_block(w.body)
        return grid, tuple(block_vars), body

    # ------------------------------------------------------------------------------------------ statements
    def parse_block(self, stmts) -> tuple:
        self.env.append({})
        self.depth += 1
        out = []
        try:
            for s in stmts:
                out.extend(self.parse_stmt(s))
        finally:
            self.env.pop()
            self.depth -= 1
        return tuple(out)

    def parse_stmt(self, node) -> list:
        if _is_docstring(node) or isinstance(node, ast.Pass):
            return []
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1:
                raise self.error(node, "chained assignment is not supported; assign one target at a time")
            return self.parse_assign(node.targets[0], node.value, node)
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            return self.parse_assign(node.target, node.value, node)
        if isinstance(node, ast.AugAssign):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.error(node, "unsupported augmented assignment operator")
            current = self.expr(node.target)
            return self.parse_assign(node.target, None, node, value=self.binop(op, current, self.expr(node.value),
                                                                                node))
        if isinstance(node, ast.For):
            return [self.parse_for(node)]
        if isinstance(node, ast.If):
            cond = self.expr(node.test)
            cond = cond if cond.dtype == "bool" else self.binop("!=", cond, ir.Const(0, cond.dtype), node)
            return [ir.If(cond, self.parse_block(node.body), self.parse_block(node.orelse), loc=self.loc(node))]
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            callee = self.resolve_callee(node.value.func, strict=False)
            if isinstance(callee, Macro):
                return self.inline_macro(callee, node.value)
            return self.parse_call_stmt(node.value)
        raise self.error(node, f"`{type(node).__name__}` statements are not supported in a kernel body "
                               f"(supported: assignment, for over T.Parallel/T.serial/T.Pipelined/range, if, "
                               f"T.copy/T.gemm/T.fill/T.clear/T.reduce_*/T.atomic_add calls)")

    def inline_macro(self, macro: Macro, call) -> list:
        """The macro's body parsed in place: its parameters bound to the caller's values (a named tile, scalar or
        let is passed as itself, any other argument as its expression), in a scope that sees nothing else of the
        caller's; errors inside it name the macro's own file and line."""
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            raise self.error(call, "*args/**kwargs are not supported in kernel calls")
        if len(self.macro_stack) >= MAX_MACRO_DEPTH:
            raise self.error(call, f"macros nested more than {MAX_MACRO_DEPTH} deep (a macro calls itself?)")
        try:
            bound = inspect.signature(macro.fn).bind(*call.args, **{k.arg: k.value for k in call.keywords})
        except TypeError as exc:
            raise self.error(call, f"{macro.fn.__name__}{inspect.signature(macro.fn)}: {exc}") from None
        bound.apply_defaults()
        scope = {name: self.macro_argument(arg) for name, arg in bound.arguments.items()}
        saved = (self.file, self.first_line, self.source_lines, self.pyenv, self.env)
        self.macro_stack.append(macro.fn.__name__)
        try:
            fdef = self.load_function(macro.fn)
            self.env = [scope]
            return list(self.parse_block(fdef.body))
        finally:
            self.macro_stack.pop()
            self.file, self.first_line, self.source_lines, self.pyenv, self.env = saved

    def macro_argument(self, arg):
        if not isinstance(arg, ast.AST):  # a default value of the macro's signature
            return arg
        if isinstance(arg, ast.Name):
            return self.lookup(arg.id, arg)  # the tile, scalar, let or constant itself: the macro may write it
        return self.value(arg)

    def load_function(self, fn) -> ast.FunctionDef:
        """Point the parser at fn's source (file, lines, globals and closure) and return its definition."""
        self.file, self.source_lines, self.first_line, fdef = function_source(fn)
        closure = inspect.getclosurevars(fn)  # read each time: closure values are the caller's to change
        self.pyenv = {**vars(builtins), **fn.__globals__, **closure.nonlocals}
        return fdef

    def parse_assign(self, target, value_node, node, value=None) -> list:
        loc = self.loc(node)
        if isinstance(target, ast.Name):
            name = target.id
            existing = next((scope[name] for scope in reversed(self.env) if name in scope), None)
            if isinstance(existing, LocalScalar):
                v = value if value is not None else self.expr(value_node)
                return [ir.Store(existing.buffer.name, (), self.coerce(v, existing.buffer.dtype), loc=loc)]
            if value is None and isinstance(value_node, ast.Call):
                callee = self.resolve_callee(value_node.func, strict=False)
                if callee in (T.alloc_shared, T.alloc_fragment, T.alloc_var):
                    return [self.parse_alloc(name, callee, value_node)]
            if isinstance(existing, (BufferRef, ir.Var)):
                raise self.error(node, f"'{name}' already names a buffer, parameter or loop variable; "
                                       f"pick another name")
            if isinstance(existing, LetBinding) and existing.depth != self.depth:
                raise self.error(node, f"'{name}' is reassigned inside a nested block; a value that changes "
                                       f"across iterations must be a scalar `{name} = T.alloc_var(dtype)`")
            v = value if value is not None else self.value(value_node)
            if isinstance(v, Indexed):
                v = self.load(v)
            if not isinstance(v, ir.EXPR_TYPES):
                self.bind(name, v)  # a Python-level value: dtype string, shape tuple, buffer alias
                return []
            if isinstance(v, ir.Const):
                self.bind(name, v)
                return []
            var = ir.Var(self.fresh(name), v.dtype)
            self.bind(name, LetBinding(var, self.depth))
            return [ir.Let(var, v, loc=loc)]
        if isinstance(target, ast.Subscript):
            dest = self.value(target)
            if not isinstance(dest, Indexed) or any(isinstance(i, Slice) for i in dest.items):
                raise self.error(node, "a subscript store writes one element: buf[i, j] = value")
            self.check_rank(dest, node)
            v = value if value is not None else self.expr(value_node)
            return [ir.Store(dest.buffer.name, dest.items, self.coerce(v, dest.buffer.dtype), loc=loc)]
        raise self.error(node, "assign to a name or to one element buf[i, j]; tuple targets are not supported")

    def parse_alloc(self, name, callee, call) -> ir.Alloc:
        args = self.bind_args(callee, call)
        loc = self.loc(call)
        if callee is T.alloc_var:
            dtype = self.dtype_arg(args["dtype"], call)
            init = None if args.get("init") is None else self.coerce(self.expr(args["init"]), dtype)
            buf = ir.Buffer(self.fresh(name), (), dtype, "local")
            self.bind(name, LocalScalar(buf))
            return ir.Alloc(buf, init, loc=loc)
        shape_v = self.value(args["shape"])
        shape_v = shape_v if isinstance(shape_v, (tuple, list)) else (shape_v,)
        shape = tuple(self.as_index(s, call) for s in shape_v)
        if not shape:
            raise self.error(call, "a tile needs at least one dimension; for a scalar use T.alloc_var(dtype)")
        dtype = self.dtype_arg(args["dtype"], call)
        scope = "shared" if callee is T.alloc_shared else "fragment"
        buf = ir.Buffer(self.fresh(name), shape, dtype, scope)
        self.bind(name, BufferRef(buf))
        return ir.Alloc(buf, loc=loc)

    def parse_for(self, node) -> ir.Stmt:
        loc = self.loc(node)
        if node.orelse:
            raise self.error(node, "for ... else is not supported")
        if not isinstance(node.iter, ast.Call):
            raise self.error(node, "loop over T.Parallel(...), T.serial(...), T.Pipelined(...) or range(...)")
        callee = self.resolve_callee(node.iter.func)
        if callee is T.Parallel:
            if self.in_parallel:
                raise self.error(node, "T.Parallel loops do not nest; use one T.Parallel(m, n) over all dims")
            if node.iter.keywords:
                raise self.error(node, "T.Parallel takes only extents")
            extents = tuple(self.index_expr(a) for a in node.iter.args)
            targets = [node.target] if isinstance(node.target, ast.Name) else list(getattr(node.target, "elts", []))
            if not extents or len(targets) != len(extents) or not all(isinstance(t, ast.Name) for t in targets):
                raise self.error(node, f"T.Parallel with {len(extents)} extents needs as many loop variables")
            self.env.append({})
            loop_vars = []
            for t in targets:
                v = ir.Var(self.fresh(t.id), "index")
                self.bind(t.id, v)
                loop_vars.append(v)
            self.in_parallel = True
            try:
                body = self.parse_block(node.body)
            finally:
                self.in_parallel = False
                self.env.pop()
            return ir.Parallel(tuple(loop_vars), extents, body, loc=loc)
        if callee not in (T.serial, T.Pipelined, range):
            raise self.error(node, "loop over T.Parallel(...), T.serial(...), T.Pipelined(...) or range(...)")
        if self.in_parallel:
            raise self.error(node, "sequential loops inside T.Parallel are not supported; put T.Parallel inside")
        if not isinstance(node.target, ast.Name):
            raise self.error(node, "a sequential loop binds one variable")
        if callee is range:
            if node.iter.keywords:
                raise self.error(node, "range() takes no keywords")
            pos, kw = node.iter.args, {}
        else:
            args = self.bind_args(callee, node.iter)
            pos = [args["start"]] + ([args["stop"]] if args.get("stop") is not None else [])
            pos += [args["step"]] if isinstance(args.get("step"), ast.AST) else []
            kw = args
        if not 1 <= len(pos) <= 3:
            raise self.error(node, "a loop takes (stop), (start, stop) or (start, stop, step)")
        bounds = [self.index_expr(a) for a in pos]
        start, stop, step = ((ir.index(0), bounds[0], ir.index(1)) if len(bounds) == 1 else
                             (bounds[0], bounds[1], bounds[2] if len(bounds) == 3 else ir.index(1)))
        kind, stages = "serial", ir.index(1)
        if callee is T.Pipelined:
            kind = "pipelined"
            ns = kw.get("num_stages", 2)
            stages = self.index_expr(ns) if isinstance(ns, ast.AST) else ir.index(ns)
        self.env.append({})
        var = ir.Var(self.fresh(node.target.id), "index")
        self.bind(node.target.id, var)
        try:
            body = self.parse_block(node.body)
        finally:
            self.env.pop()
        return ir.For(var, start, stop, step, body, kind, stages, loc=loc)

    def parse_call_stmt(self, call) -> list:
        callee = self.resolve_callee(call.func)
        loc = self.loc(call)
        name = getattr(callee, "_tilec_builtin", None)
        if name in ("alloc_shared", "alloc_fragment", "alloc_var"):
            raise self.error(call, f"assign the result: buf = T.{name}(...)")
        args = self.bind_args(callee, call)
        if callee is T.copy:
            src, dst = self.value(args["src"]), self.value(args["dst"])
            pad = None if args.get("pad") is None else self.expr(args["pad"])
            src_r, dst_r = self.regions(src, dst, call)
            if self.buffer_of(dst).scope == "global" and pad is not None:
                raise self.error(call, "pad= applies to loads from a global tensor, not to stores")
            if pad is not None:
                pad = self.coerce(pad, self.buffer_of(dst).dtype)
            return [ir.Copy(src_r, dst_r, pad, loc=loc)]
        if callee in (T.fill, T.clear):
            buf = self.local_buffer(args["buffer"], call, name)
            value = ir.Const(0, buf.dtype) if callee is T.clear else self.coerce(self.expr(args["value"]), buf.dtype)
            return [ir.Fill(buf.name, value, loc=loc)]
        if callee is T.gemm:
            a, b, c = (self.local_buffer(args[k], call, "gemm") for k in ("a", "b", "c"))
            for buf, role in ((a, "a"), (b, "b"), (c, "c")):
                if len(buf.shape) != 2:
                    raise self.error(call, f"T.gemm operand {role} '{buf.name}' must be a 2-D tile, "
                                           f"got rank {len(buf.shape)}", TilecTypeError)
            if c.scope != "fragment":
                raise self.error(call, f"T.gemm accumulates into a fragment; '{c.name}' is {c.scope} "
                                       f"(allocate it with T.alloc_fragment)", TilecTypeError)
            ta, tb = (self.const_bool(args.get(k, False), call, k) for k in ("transpose_a", "transpose_b"))
            return [ir.Gemm(a.name, b.name, c.name, ta, tb, loc=loc)]
        if callee in (T.reduce_max, T.reduce_sum, T.reduce_min):
            src = self.local_buffer(args["src"], call, name)
            dst = self.local_buffer(args["dst"], call, name)
            dim = args.get("dim", -1)
            dim = self.python_int(dim, call, "dim") if isinstance(dim, ast.AST) else dim
            rank = len(src.shape)
            if not -rank <= dim < rank:
                raise self.error(call, f"dim={dim} is out of range for the rank-{rank} tile '{src.name}'",
                                 TilecTypeError)
            dim %= rank
            if len(dst.shape) != rank - 1 and not (rank == 1 and len(dst.shape) == 1):
                raise self.error(call, f"T.{name} reduces rank {rank} to {rank - 1}; '{dst.name}' has rank "
                                       f"{len(dst.shape)}", TilecTypeError)
            clear = self.const_bool(args.get("clear", True), call, "clear")
            return [ir.Reduce(name.split("_")[1], src.name, dst.name, dim, clear, loc=loc)]
        if callee is T.atomic_add:
            dest = self.value(args["dst"])
            if not isinstance(dest, Indexed) or dest.buffer.scope != "global" or \
                    any(isinstance(i, Slice) for i in dest.items):
                raise self.error(call, "T.atomic_add's first argument is one global element: Out[i, j]")
            self.check_rank(dest, call)
            value = self.coerce(self.expr(args["value"]), dest.buffer.dtype)
            return [ir.AtomicAdd(dest.buffer.name, dest.items, value, loc=loc)]
        raise self.error(call, "this call has no effect as a statement; expected T.copy, T.gemm, T.fill, "
                               "T.clear, T.reduce_max/sum/min or T.atomic_add")

    # ------------------------------------------------------------------------------------------ call helpers
    def resolve_callee(self, func, strict=True):
        """The Python object a callee expression names (T.copy, range, ...), by lookup, never by calling."""
        try:
            if isinstance(func, ast.Name):
                obj = self.lookup(func.id, func)
            elif isinstance(func, ast.Attribute):
                obj = getattr(self.resolve_callee(func.value), func.attr)
            else:
                raise AttributeError
        except (AttributeError, TilecSyntaxError):
            if not strict:
                return None
            raise self.error(func, f"cannot resolve callee `{ast.unparse(func)}`; kernels call T.* functions, "
                                   f"range, min, max, abs and float")
        return obj

    def bind_args(self, callee, call) -> dict:
        sig = inspect.signature(getattr(callee, "__wrapped__", callee))
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            raise self.error(call, "*args/**kwargs are not supported in kernel calls")
        try:
            bound = sig.bind(*call.args, **{k.arg: k.value for k in call.keywords})
        except TypeError as exc:
            raise self.error(call, f"T.{getattr(callee, '_tilec_builtin', '?')}{sig}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def dtype_arg(self, node, call) -> str:
        v = self.value(node) if isinstance(node, ast.AST) else node
        if not isinstance(v, str) or v not in ir.DTYPES or v == "index":
            raise self.error(call, f"expected a dtype ({', '.join(T.DTYPES)}), got `{ast.unparse(node)}`",
                             TilecTypeError)
        return v

    def const_bool(self, node, call, what) -> bool:
        if isinstance(node, bool):
            return node
        v = self.value(node)
        if isinstance(v, ir.Const) and isinstance(v.value, bool):
            return v.value
        raise self.error(call, f"{what}= must be a literal True or False")

    def python_int(self, node, call, what) -> int:
        v = self.value(node)
        if isinstance(v, ir.Const) and isinstance(v.value, int) and not isinstance(v.value, bool):
            return v.value
        raise self.error(call, f"{what}= must be a literal integer")

    def local_buffer(self, node, call, what) -> ir.Buffer:
        v = self.value(node)
        if isinstance(v, BufferRef) and v.buffer.scope in ("shared", "fragment"):
            return v.buffer
        raise self.error(call, f"T.{what} takes a shared or fragment tile here; `{ast.unparse(node)}` is not one",
                         TilecTypeError)

    def buffer_of(self, v) -> ir.Buffer:
        return v.buffer

    def regions(self, src, dst, call):
        """Regions of a copy's two operands; a scalar-indexed operand takes its shape from the other one."""
        for v, role in ((src, "source"), (dst, "destination")):
            if not isinstance(v, (BufferRef, Indexed)) or v.buffer.scope == "local":
                raise self.error(call, f"T.copy {role} must be a tile or a tensor region", TilecTypeError)
            if isinstance(v, BufferRef) and v.buffer.scope == "global":
                pass  # a whole global tensor
        shapes = [self.explicit_shape(v, call) for v in (src, dst)]
        if shapes[0] is None and shapes[1] is None:
            raise self.error(call, "T.copy needs one operand with a known shape (a tile or a sliced region)")
        out = []
        for v, own, other in ((src, shapes[0], shapes[1]), (dst, shapes[1], shapes[0])):
            out.append(self.region(v, own if own is not None else other, call))
        return out

    def explicit_shape(self, v, call):
        if isinstance(v, BufferRef):
            return tuple(v.buffer.shape)
        if not any(isinstance(i, Slice) for i in v.items):
            return None
        self.check_rank(v, call)
        return tuple(self.slice_extent(i, d) for i, d in zip(v.items, v.buffer.shape) if isinstance(i, Slice))

    def slice_extent(self, s, dim):
        start = s.start if s.start is not None else ir.index(0)
        stop = s.stop if s.stop is not None else dim
        return self.binop("-", stop, start, None)

    def region(self, v, shape, call) -> ir.Region:
        buf = v.buffer
        rank = len(buf.shape)
        if isinstance(v, BufferRef):
            return ir.Region(buf.name, tuple(ir.index(0) for _ in range(rank)), tuple(buf.shape), tuple(range(rank)))
        self.check_rank(v, call)
        if any(isinstance(i, Slice) for i in v.items):
            origin = tuple(i.start if isinstance(i, Slice) and i.start is not None else
                           ir.index(0) if isinstance(i, Slice) else i for i in v.items)
            axes = tuple(d for d, i in enumerate(v.items) if isinstance(i, Slice))
            extents = tuple(self.slice_extent(i, d) if isinstance(i, Slice) else ir.index(1)
                            for i, d in zip(v.items, buf.shape))
            return ir.Region(buf.name, origin, extents, axes)
        if len(shape) > rank:
            raise self.error(call, f"'{buf.name}' has rank {rank} but the tile copied with it has rank "
                                   f"{len(shape)}", TilecTypeError)
        axes = tuple(range(rank - len(shape), rank))
        extents = tuple(ir.index(1) for _ in range(rank - len(shape))) + tuple(shape)
        return ir.Region(buf.name, tuple(v.items), extents, axes)

    def check_rank(self, v: Indexed, node):
        if len(v.items) != len(v.buffer.shape):
            raise self.error(node, f"'{v.buffer.name}' has rank {len(v.buffer.shape)}, indexed with "
                                   f"{len(v.items)} subscripts", TilecTypeError)

def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)




def parse_kernel(fn) -> ir.Kernel:
    """The IR of a `@tilec.kernel` function, config left symbolic."""
    return KernelParser(fn).parse()
