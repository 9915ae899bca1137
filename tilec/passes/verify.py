"""verify: check the IR's invariants, so that a broken pass (or hand-written IR text) fails here, with the user's
file:line, rather than as wrong code in a lowering.

Checked: scoping (buffers and variables defined before use; an Alloc, Let or loop variable is visible only in the
body that binds it; each variable is bound once, each buffer name allocated once), memory tiers (what Gemm, Reduce,
Fill, Copy, AtomicAdd accept), dtypes (every expression's dtype agrees with its operands; indices are integers;
conditions are bool) and, where the sizes are constants (after `bind`), shapes (Gemm M/N/K, Copy extents against
the tile, Reduce dst = src without `dim`). With `scheduled=True` every pipelined loop must carry its stages.
"""
from __future__ import annotations

from .. import ir
from ..errors import TilecVerifyError, where
from ..printer import print_expr
from .base import Pass

ON_CHIP = ("shared", "fragment")
PARALLEL_BODY = (ir.Let, ir.Store, ir.AtomicAdd, ir.If)
REDUCE_OPS = ("max", "sum", "min")
LOOP_KINDS = ("serial", "pipelined")


def _const(e):
    return e.value if isinstance(e, ir.Const) else None


def _const_shape(shape):
    """The shape as ints when every dim is a constant, else None."""
    values = tuple(_const(d) for d in shape)
    return None if any(v is None for v in values) else values


class Verifier:
    def __init__(self, kernel: ir.Kernel, scheduled: bool):
        self.kernel = kernel
        self.scheduled = scheduled
        self.loc = kernel.loc
        self.var_scopes: list = [{}]  # name -> dtype, innermost last
        self.buffer_scopes: list = [{}]  # name -> Buffer
        self.bound_names: set = set()  # every variable bound so far (SSA)
        self.buffer_names: set = set()  # every buffer declared so far

    def fail(self, msg):
        raise TilecVerifyError(f"{where(self.loc)}{msg} (kernel '{self.kernel.name}')")

    # ------------------------------------------------------------------------------------------ scopes
    def declare_var(self, var: ir.Var, what: str):
        if var.dtype not in ir.DTYPES:
            self.fail(f"{what} %{var.name} has unknown dtype {var.dtype!r}")
        if var.name in self.bound_names:
            self.fail(f"{what} %{var.name} is bound a second time; each variable is bound once (SSA)")
        self.bound_names.add(var.name)
        self.var_scopes[-1][var.name] = var.dtype

    def declare_buffer(self, buf: ir.Buffer, what: str):
        if buf.name in self.buffer_names:
            self.fail(f"{what} '{buf.name}' is declared a second time; buffer names are unique in a kernel")
        if buf.dtype not in ir.DTYPES or buf.dtype == "index":
            self.fail(f"{what} '{buf.name}' has dtype {buf.dtype!r}; use one of the element dtypes")
        if not isinstance(buf.stages, int) or buf.stages < 1:
            self.fail(f"{what} '{buf.name}' has stages={buf.stages!r}; it must be an int >= 1")
        for d in buf.shape:
            self.index_expr(d, f"a dim of '{buf.name}'")
        self.buffer_names.add(buf.name)
        self.buffer_scopes[-1][buf.name] = buf

    def buffer(self, name: str, what: str) -> ir.Buffer:
        for scope in reversed(self.buffer_scopes):
            if name in scope:
                return scope[name]
        self.fail(f"{what} uses buffer '{name}', which is not defined here (undeclared, or allocated in a block "
                  f"that has ended)")

    def nested(self, body, check_stmt=None):
        """Check `body` in a new scope: what it binds is not visible after it."""
        self.var_scopes.append({})
        self.buffer_scopes.append({})
        for stmt in body:
            (check_stmt or self.stmt)(stmt)
        self.var_scopes.pop()
        self.buffer_scopes.pop()

    # ------------------------------------------------------------------------------------------ expressions
    def expr(self, e, what: str):
        if not isinstance(e, ir.EXPR_TYPES):
            self.fail(f"{what}: {e!r} is not a scalar expression")
        if e.dtype not in ir.DTYPES:
            self.fail(f"{what}: {print_expr(e)} has unknown dtype {e.dtype!r}")
        for child in ir.expr_children(e):
            self.expr(child, what)
        bad = self.expr_problem(e)
        if bad:
            self.fail(f"{what}: {print_expr(e)}: {bad}")

    def expr_problem(self, e):
        """What is wrong with `e` itself (its children already checked), or None."""
        if isinstance(e, ir.Const):
            v = e.value
            ok = (isinstance(v, bool) if e.dtype == "bool" else
                  isinstance(v, int) and not isinstance(v, bool) if ir.is_int(e.dtype) else
                  isinstance(v, (int, float)) and not isinstance(v, bool))
            return None if ok else f"constant {v!r} does not fit dtype {e.dtype}"
        if isinstance(e, ir.Var):
            dtype = next((s[e.name] for s in reversed(self.var_scopes) if e.name in s), None)
            if dtype is None:
                return f"variable %{e.name} is used before its definition or outside its scope"
            return None if dtype == e.dtype else f"%{e.name} is {dtype} where it is defined, {e.dtype} here"
        if isinstance(e, ir.Load):
            buf = self.buffer(e.buffer, "a load")
            return self.access_problem(buf, e.indices) or (
                None if e.dtype == buf.dtype else f"a load of {buf.dtype} buffer '{buf.name}' has dtype {e.dtype}")
        if isinstance(e, ir.BinOp):
            a, b = e.lhs.dtype, e.rhs.dtype
            if e.op in ir.LOGIC_OPS:
                return None if a == b == e.dtype == "bool" else f"'{e.op}' takes and gives bool"
            if e.op in ir.COMPARE_OPS:
                return (f"a comparison gives bool, not {e.dtype}" if e.dtype != "bool" else
                        None if a == b else f"compares {a} with {b}; cast one side")
            if e.op not in ir.ARITH_OPS:
                return f"unknown binary op '{e.op}'"
            if a == "bool" or b == "bool":
                return f"'{e.op}' on bool operands"
            return None if a == b == e.dtype else f"'{e.op}' of {a} and {b} typed {e.dtype}; operands and result " \
                                                   f"share one dtype (insert a cast)"
        if isinstance(e, ir.UnaryOp):
            x = e.operand.dtype
            if e.op not in ir.UNARY_OPS:
                return f"unknown unary op '{e.op}'"
            if e.op == "not":
                return None if x == e.dtype == "bool" else "'not' takes and gives bool"
            if e.op in ir.FLOAT_ONLY_UNARY and not ir.is_float(x):
                return f"'{e.op}' needs a float operand, got {x}"
            if x == "bool":
                return f"'{e.op}' on a bool operand"
            return None if x == e.dtype else f"'{e.op}' of {x} typed {e.dtype}"
        if isinstance(e, ir.Select):
            if e.cond.dtype != "bool":
                return f"select's condition is {e.cond.dtype}, not bool"
            a, b = e.true_value.dtype, e.false_value.dtype
            return None if a == b == e.dtype else f"select of {a} and {b} typed {e.dtype}"
        return None  # Cast: any dtype to any dtype

    def index_expr(self, e, what: str):
        self.expr(e, what)
        if not ir.is_int(e.dtype):
            self.fail(f"{what}: {print_expr(e)} is {e.dtype}; indices and sizes are integers")

    def access_problem(self, buf: ir.Buffer, indices):
        """What is wrong with `buf[indices]` as one element, or None."""
        if len(indices) != len(buf.shape):
            return f"'{buf.name}' has rank {len(buf.shape)} but is indexed with {len(indices)} indices"
        for i in indices:
            if not isinstance(i, ir.EXPR_TYPES) or not ir.is_int(i.dtype):
                return f"an index into '{buf.name}' is not an integer scalar: {i!r}"
        return None

    # ------------------------------------------------------------------------------------------ statements
    def stmt(self, s):
        if not isinstance(s, ir.STMT_TYPES):
            self.fail(f"{s!r} is not a statement")
        self.loc = s.loc
        getattr(self, "stmt_" + type(s).__name__.lower())(s)

    def stmt_alloc(self, s: ir.Alloc):
        buf = s.buffer
        if buf.scope not in ("shared", "fragment", "local"):
            self.fail(f"alloc of '{buf.name}' in scope {buf.scope!r}; allocate shared, fragment or local")
        if (buf.scope == "local") != (len(buf.shape) == 0):
            self.fail(f"'{buf.name}': a local buffer is a scalar (shape ()) and a tile has at least one dim")
        if s.init is not None:
            if buf.scope != "local":
                self.fail(f"only a local scalar takes an init value; '{buf.name}' is {buf.scope}")
            self.value(s.init, buf.dtype, f"init of '{buf.name}'")
        if buf.stages > 1 and buf.scope != "shared":
            self.fail(f"'{buf.name}' is multi-buffered (stages={buf.stages}) but only shared tiles are")
        self.declare_buffer(buf, "alloc")

    def stmt_let(self, s: ir.Let):
        self.expr(s.value, f"let %{s.var.name}")
        if s.value.dtype != s.var.dtype:
            self.fail(f"let %{s.var.name}: {s.var.dtype} is bound to a {s.value.dtype} value")
        self.declare_var(s.var, "let")

    def value(self, e, dtype: str, what: str):
        self.expr(e, what)
        if e.dtype != dtype:
            self.fail(f"{what}: the value {print_expr(e)} is {e.dtype} but the buffer holds {dtype}; cast it")

    def element_write(self, s, what: str) -> ir.Buffer:
        buf = self.buffer(s.buffer, what)
        for i in s.indices:
            if isinstance(i, ir.EXPR_TYPES):
                self.expr(i, f"{what} into '{buf.name}'")
        bad = self.access_problem(buf, s.indices)
        if bad:
            scalar = " (a store into a global tensor writes one element: all indices scalar)" \
                if buf.scope == "global" else ""
            self.fail(f"{what}: {bad}{scalar}")
        self.value(s.value, buf.dtype, f"{what} into '{buf.name}'")
        return buf

    def stmt_store(self, s: ir.Store):
        self.element_write(s, "store")

    def stmt_atomicadd(self, s: ir.AtomicAdd):
        buf = self.element_write(s, "atomic_add")
        if buf.scope != "global" or buf.dtype == "bool":
            self.fail(f"atomic_add needs a numeric global tensor; '{buf.name}' is {buf.scope} {buf.dtype}")

    def stmt_fill(self, s: ir.Fill):
        buf = self.buffer(s.buffer, "fill")
        if buf.scope not in ON_CHIP:
            self.fail(f"fill writes a shared or fragment tile; '{buf.name}' is {buf.scope}")
        self.value(s.value, buf.dtype, f"fill of '{buf.name}'")

    def stmt_gemm(self, s: ir.Gemm):
        a, b, c = (self.buffer(n, "gemm") for n in (s.a, s.b, s.c))
        if c.scope != "fragment":
            self.fail(f"gemm accumulates into a fragment; '{c.name}' is {c.scope}")
        for buf, role in ((a, "a"), (b, "b")):
            if buf.scope not in ON_CHIP:
                self.fail(f"gemm operand {role} must be a shared or fragment tile; '{buf.name}' is {buf.scope}")
        for buf in (a, b, c):
            if len(buf.shape) != 2:
                self.fail(f"gemm takes 2-D tiles; '{buf.name}' has rank {len(buf.shape)}")
        sa, sb, sc = (_const_shape(x.shape) for x in (a, b, c))
        if sa and sb and sc:
            (m, k) = sa[::-1] if s.transpose_a else sa
            (k2, n) = sb[::-1] if s.transpose_b else sb
            if k != k2 or sc != (m, n):
                ta, tb = (".T" if t else "" for t in (s.transpose_a, s.transpose_b))
                self.fail(f"gemm shapes disagree: {a.name}{ta} is {m}x{k}, {b.name}{tb} is {k2}x{n}, "
                          f"{c.name} is {sc[0]}x{sc[1]}; need (M, K) @ (K, N) -> (M, N)")

    def stmt_reduce(self, s: ir.Reduce):
        src, dst = self.buffer(s.src, "reduce"), self.buffer(s.dst, "reduce")
        if s.op not in REDUCE_OPS:
            self.fail(f"unknown reduce op '{s.op}'; use one of {', '.join(REDUCE_OPS)}")
        for buf in (src, dst):
            if buf.scope not in ON_CHIP:
                self.fail(f"reduce works on shared or fragment tiles; '{buf.name}' is {buf.scope}")
        rank = len(src.shape)
        if not (isinstance(s.dim, int) and 0 <= s.dim < rank):
            self.fail(f"reduce dim={s.dim!r} is out of range for the rank-{rank} tile '{src.name}'")
        want_rank = max(rank - 1, 1)
        if len(dst.shape) != want_rank:
            self.fail(f"reduce over dim {s.dim} of rank-{rank} '{src.name}' needs a rank-{want_rank} destination; "
                      f"'{dst.name}' has rank {len(dst.shape)}")
        ss, ds = _const_shape(src.shape), _const_shape(dst.shape)
        if ss and ds:
            want = ss[:s.dim] + ss[s.dim + 1:] or (1,)
            if ds != want:
                self.fail(f"reduce of '{src.name}' {list(ss)} over dim {s.dim} gives {list(want)}, but "
                          f"'{dst.name}' is {list(ds)}")

    def stmt_copy(self, s: ir.Copy):
        src, dst = self.buffer(s.src.buffer, "copy"), self.buffer(s.dst.buffer, "copy")
        for buf in (src, dst):
            if buf.scope == "local":
                self.fail(f"copy moves tiles; '{buf.name}' is a local scalar (assign it instead)")
        if src.scope == "global" and dst.scope == "global":
            self.fail(f"copy from global '{src.name}' to global '{dst.name}': one side must be a shared or "
                      f"fragment tile")
        src_extents = self.region(s.src, src)
        dst_extents = self.region(s.dst, dst)
        if len(src_extents) != len(dst_extents):
            self.fail(f"copy maps {len(src_extents)} dims of '{src.name}' onto {len(dst_extents)} dims of "
                      f"'{dst.name}'")
        for d, (x, y) in enumerate(zip(src_extents, dst_extents)):
            if _const(x) is not None and _const(y) is not None and x.value != y.value:
                self.fail(f"copy extents disagree along mapped dim {d}: '{src.name}' gives {x.value}, "
                          f"'{dst.name}' takes {y.value}")
        if s.pad is not None:
            if src.scope != "global":
                self.fail(f"pad= applies to loads from a global tensor; '{src.name}' is {src.scope}")
            self.value(s.pad, dst.dtype, f"pad of the copy into '{dst.name}'")

    def region(self, r: ir.Region, buf: ir.Buffer) -> list:
        """Check a copy region; returns its extents along the mapped axes."""
        rank, what = len(buf.shape), f"copy region of '{buf.name}'"
        if len(r.origin) != rank or len(r.extents) != rank:
            self.fail(f"{what}: origin and extents need rank {rank}, got {len(r.origin)} and {len(r.extents)}")
        if len(set(r.axes)) != len(r.axes) or not all(isinstance(a, int) and 0 <= a < rank for a in r.axes):
            self.fail(f"{what}: axes {list(r.axes)} must be distinct dims of a rank-{rank} buffer")
        for e in r.origin + r.extents:
            self.index_expr(e, what)
        for d in range(rank):
            o, n = _const(r.origin[d]), _const(r.extents[d])
            if d not in r.axes and n is not None and n != 1:
                self.fail(f"{what}: dim {d} is not mapped, so its extent must be 1, not {n}")
            size = _const(buf.shape[d])
            if buf.scope in ON_CHIP and None not in (o, n, size) and not (0 <= o and o + n <= size):
                self.fail(f"{what}: [{o}, {o + n}) along dim {d} is outside the tile's {size}")
        return [r.extents[a] for a in r.axes]

    def stmt_for(self, s: ir.For):
        for e, what in ((s.start, "start"), (s.stop, "stop"), (s.step, "step"), (s.num_stages, "num_stages")):
            self.index_expr(e, f"loop %{s.var.name} {what}")
        if s.kind not in LOOP_KINDS:
            self.fail(f"loop %{s.var.name} has kind {s.kind!r}; kinds are {', '.join(LOOP_KINDS)}")
        if _const(s.step) == 0:
            self.fail(f"loop %{s.var.name} has step 0")
        ns = _const(s.num_stages)
        if ns is not None and ns < 1:
            self.fail(f"loop %{s.var.name} has num_stages={ns}; it must be >= 1")
        if s.stages or (self.scheduled and s.kind == "pipelined" and s.body):
            if s.kind != "pipelined":
                self.fail(f"serial loop %{s.var.name} carries pipeline stages {list(s.stages)}")
            if len(s.stages) != len(s.body):
                self.fail(f"pipelined loop %{s.var.name} has {len(s.stages)} stage numbers for {len(s.body)} body "
                          f"statements (software-pipeline gives one per statement)")
            if ns is not None and not all(isinstance(x, int) and 0 <= x < ns for x in s.stages):
                self.fail(f"pipelined loop %{s.var.name}: stages {list(s.stages)} must lie in [0, {ns})")
        if not ir.is_int(s.var.dtype):
            self.fail(f"loop variable %{s.var.name} is {s.var.dtype}; it must be an integer")
        self.var_scopes.append({})
        self.declare_var(s.var, "loop variable")
        self.nested(s.body)
        self.var_scopes.pop()

    def stmt_parallel(self, s: ir.Parallel):
        if not s.vars or len(s.vars) != len(s.extents):
            self.fail(f"parallel has {len(s.vars)} loop variables for {len(s.extents)} extents (need >= 1, equal)")
        for e in s.extents:
            self.index_expr(e, "parallel extent")
        self.var_scopes.append({})
        for v in s.vars:
            if not ir.is_int(v.dtype):
                self.fail(f"parallel variable %{v.name} is {v.dtype}; it must be an integer")
            self.declare_var(v, "parallel variable")
        self.nested(s.body, self.parallel_stmt)
        self.var_scopes.pop()

    def parallel_stmt(self, s):
        if not isinstance(s, PARALLEL_BODY):
            self.loc = getattr(s, "loc", self.loc)
            self.fail(f"{type(s).__name__} inside parallel; its body holds let, store, atomic_add and if only")
        if isinstance(s, ir.If):
            self.loc = s.loc
            self.condition(s.cond)
            self.nested(s.then_body, self.parallel_stmt)
            self.nested(s.else_body, self.parallel_stmt)
        else:
            self.stmt(s)

    def condition(self, cond):
        self.expr(cond, "if condition")
        if cond.dtype != "bool":
            self.fail(f"if condition {print_expr(cond)} is {cond.dtype}, not bool")

    def stmt_if(self, s: ir.If):
        self.condition(s.cond)
        self.nested(s.then_body)
        self.nested(s.else_body)

    # ------------------------------------------------------------------------------------------ kernel
    def run(self):
        k = self.kernel
        for d in k.dims:
            if d.dtype != "index":
                self.fail(f"dim %{d.name} is {d.dtype}; dims are index")
            self.declare_var(d, "dim")
        for c in k.config:
            self.declare_var(ir.Var(c.name, c.dtype), "config constant")
            bad = self.expr_problem(ir.Const(c.value, c.dtype))
            if bad:
                self.fail(f"config constant {c.name}: {bad}")
        known = {d.name for d in k.dims} | {c.name for c in k.config}
        for name, _ in k.bound:
            if name not in known:
                self.fail(f"bound value for '{name}', which is neither a dim nor a config constant")
        for p in k.params:
            if p.scope != "global":
                self.fail(f"parameter '{p.name}' is {p.scope}; kernel parameters are global tensors")
            self.declare_buffer(p, "parameter")
        if not 1 <= len(k.grid) <= 3 or len(k.grid) != len(k.block_vars):
            self.fail(f"the grid has {len(k.grid)} extents and {len(k.block_vars)} block indices (1 to 3, equal)")
        for e in k.grid:
            self.index_expr(e, "grid extent")
        for v in k.block_vars:
            if not ir.is_int(v.dtype):
                self.fail(f"block index %{v.name} is {v.dtype}; it must be an integer")
            self.declare_var(v, "block index")
        if k.launch is not None:
            self.launch_plan(k.launch, len(k.grid))
        self.nested(k.body)

    def launch_plan(self, plan: ir.LaunchPlan, rank: int):
        if plan.block_order not in ir.BLOCK_ORDERS:
            self.fail(f"launch order {plan.block_order!r}; orders are {', '.join(ir.BLOCK_ORDERS)}")
        if plan.num_warps < 1 or plan.num_warps & (plan.num_warps - 1):
            self.fail(f"launch num_warps={plan.num_warps}; it must be a power of two")
        if (plan.block_order == "grouped") != (plan.group_rows > 0):
            self.fail(f"launch order={plan.block_order} with group_rows={plan.group_rows}: a grouped order needs "
                      f"group_rows > 0, the others 0")
        if plan.block_order == "grouped" and rank != 2:
            self.fail(f"launch order=grouped on a grid of {rank} dims; grouping needs 2")


def verify(kernel: ir.Kernel, scheduled: bool = False) -> None:
    """Raise TilecVerifyError (with the statement's file:line) on the first broken invariant. `scheduled=True`
    (after software-pipeline) also requires every pipelined loop to carry one stage number per statement."""
    Verifier(kernel, scheduled).run()


class Verify(Pass):
    name = "verify"

    def __init__(self, scheduled: bool = False):
        self.scheduled = scheduled

    def run(self, kernel, ctx):
        verify(kernel, self.scheduled)
        return kernel
