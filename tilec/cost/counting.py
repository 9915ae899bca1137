"""What a bound kernel does, counted from its IR: operations per kind, bytes per memory tier and the L2 reuse of
global loads, split into phases (each top-level loop is one phase, the rest of the body is another) so that the
model can time a pipelined main loop apart from its prologue and epilogue.

Global traffic of `T.copy` is clipped to the tensor bounds (out-of-bounds lanes are masked, so they move nothing):
the clipped element count is summed exactly over the grid and the loop iterations, one independent group of
variables at a time (numpy broadcasting). Index-driven loads inside `T.Parallel` (gathers) are charged whole
32-byte DRAM sectors: a contiguous run of the innermost loop variable shares sectors, anything else pays one
sector per element.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import ir

SECTOR = 32  # bytes: the DRAM/L2 access granularity of NVIDIA GPUs (CUDA best practices guide, "Coalesced Access")
MAX_ENUMERATION = 1 << 22  # points of one variable group we evaluate exactly; past that, masks are ignored
UNBOUNDED = float(1 << 40)  # a table value of unknown size, in a loop bound


class DataDependent(Exception):
    """An index or bound reads a tensor: its value is only known at run time."""


@dataclass
class Phase:
    name: str
    trips: float = 1.0  # iterations per block (the mean over the blocks when they differ)
    #: iterations of the longest block: blocks of uneven length (the last split of a split-KV decode, causal
    #: attention) finish at different times, and a wave lasts as long as its longest block
    trips_max: float = 1.0
    stages: int = 1
    pipelined: bool = False  # a T.Pipelined loop (num_stages may be 1)
    ops: Counter = field(default_factory=Counter)  # "matrix:<dtype>" / "vector:<dtype>" / "sfu" -> count
    loads: list = field(default_factory=list)  # (tensor, bytes through the cache tier, fraction missing it)
    store_bytes: float = 0.0
    #: bytes a block's statements read and write in its fragment and local tiles (T.copy, T.reduce, T.Parallel;
    #: not T.gemm, whose micro-kernel keeps its tiles in registers): a CPU core's L1 holds them, or its L2
    local_bytes: float = 0.0
    #: global tensor -> bytes stored to it (store_bytes split by tensor)
    stored: Counter = field(default_factory=Counter)
    shared_bytes: float = 0.0
    #: (m, n, k, compute itemsize, calls) of each T.gemm: a CPU core's time depends on the tile shape, not only FLOPs
    gemms: list = field(default_factory=list)
    #: the T.gemms' steps along k per block: one per k element on CUDA cores (float32/float64 operands: the Triton
    #: backend's exact dot is an FMA loop), one per 32 bytes of a row's k on tensor cores (an MMA instruction's k:
    #: 16 for bf16/fp16, PTX ISA "Matrix shape" of mma.sync and wgmma)
    gemm_k_steps: float = 0.0
    #: innermost-loop entries of T.copy (its rows): a CPU pays a fixed overhead per row
    copy_rows: float = 0.0
    #: global round trips one after another per iteration: 2 when a load's index reads a global table (a paged
    #: gather reads the page id, then the page)
    depth: int = 1
    #: elements loaded inside T.Parallel at an index read from a tile or tensor: a CPU gathers them lane by lane
    gathers: float = 0.0


@dataclass
class KernelCounts:
    grid: int
    phases: list
    smem_bytes: int  # per block, multi-buffering included
    fragment_bytes: int  # per block
    tensor_bytes: dict  # global tensor -> bytes
    notes: list
    #: a tile copied from a global tensor outside every loop (attention's Q): the Triton backend then keeps a
    #: persistent grid's loops apart instead of flattening them (lowering/triton_codegen.py)
    block_loads: bool = False


def _ival(e) -> int:
    return int(e.value)


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate(expr, env: dict, loads_as=None):
    """Evaluate an index expression with numpy; `env` maps names to arrays. Loads raise DataDependent unless
    `loads_as` gives their value."""
    if isinstance(expr, ir.Const):
        return expr.value
    if isinstance(expr, ir.Var):
        if expr.name not in env:
            raise DataDependent(expr.name)
        return env[expr.name]
    if isinstance(expr, ir.Load):
        if loads_as is None:
            raise DataDependent(expr.buffer)
        return loads_as(expr, env) if callable(loads_as) else loads_as
    if isinstance(expr, ir.Cast):
        return evaluate(expr.value, env, loads_as)
    if isinstance(expr, ir.Select):
        return np.where(evaluate(expr.cond, env, loads_as), evaluate(expr.true_value, env, loads_as),
                        evaluate(expr.false_value, env, loads_as))
    if isinstance(expr, ir.UnaryOp):
        x = evaluate(expr.operand, env, loads_as)
        return {"neg": np.negative, "not": np.logical_not, "abs": np.abs}.get(expr.op, lambda v: v)(x)
    a, b = evaluate(expr.lhs, env, loads_as), evaluate(expr.rhs, env, loads_as)
    op = expr.op
    if op in ("//", "%") or (op == "/" and ir.is_int(expr.dtype)):
        b = np.where(np.equal(b, 0), 1, b)
        return np.floor_divide(a, b) if op != "%" else np.mod(a, b)
    return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "max": np.maximum,
            "min": np.minimum, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal, "and": np.logical_and, "or": np.logical_or}[op](a, b)


def opaque_load(load: ir.Load, env: dict):
    """A table read in a tile's origin (a MoE schedule's row start): its value is unknown, but blocks that read the
    same entry get the same value, so they load the same tile. A key of the entry's indices stands for the value."""
    key = np.int64(abs(hash(load.buffer)) % 1000003)
    for i in load.indices:
        key = key * np.int64(1000003) + np.asarray(evaluate(i, env, opaque_load), dtype=np.int64)
    return key


def free_vars(expr) -> set:
    return {e.name for e in ir.walk_expr(expr) if isinstance(e, ir.Var)}


def has_load(expr) -> bool:
    return any(isinstance(e, ir.Load) for e in ir.walk_expr(expr))


def clipped(origin, extent, size):
    return np.maximum(0, np.minimum(origin + extent, size) - np.maximum(origin, 0))


# ------------------------------------------------------------------------------------------------ the walk
class Counting:
    def __init__(self, kernel: ir.Kernel, wave_blocks: int, assume: dict | None = None, reuse_bytes: float = 0.0,
                 group_rows: int = 0):
        self.kernel = kernel
        #: cache a block keeps for itself between its loops (a core's L2; a GPU's L2 over the resident blocks): a
        #: later loop that copies tiles this block already copied, fitting there, reads them from the cache
        self.reuse_bytes = reuse_bytes
        self.copied: dict = {}  # tensor -> (phase, tile origins of block 0, bytes per block) of its first copy loop
        #: values of tensors read in loop bounds that the caller knows ({"CL": 4096}: every context length), as the
        #: op knows them on the host; a table read not named here is taken as large as a static cap allows
        self.assume = dict(assume or {})
        self.trips_max = 0
        self.buffers = kernel.buffers()
        self.grid = [_ival(g) for g in kernel.grid]
        self.blocks = math.prod(self.grid)
        self.wave_blocks = max(1, wave_blocks)
        self.notes: list = []
        self.block_loads = False
        self.lets: dict = {}
        #: loop variables in scope: name -> 1-d array of the values they take
        self.loops: dict = {}
        self.biggest_dim = max([v for k, v in kernel.bound if k in {d.name for d in kernel.dims}] or [1])
        # block index arrays in launch order (the first grid dim varies fastest)
        self.n_enumerated = max(1, min(self.blocks, MAX_ENUMERATION))
        lin = np.arange(self.n_enumerated)
        self.block_linear = {}
        if group_rows and len(self.grid) == 2 and min(self.grid) > 1:
            # the GPU backend's L2-friendly launch order (model.launch_group_rows): group_rows rows of blocks sweep
            # the columns together
            (bx, by), (gx, gy) = kernel.block_vars, self.grid
            first = lin // (group_rows * gx) * group_rows
            rows = np.minimum(gy - first, group_rows)
            self.block_linear[by.name] = first + (lin % (group_rows * gx)) % rows
            self.block_linear[bx.name] = (lin % (group_rows * gx)) // rows
            return
        for var, g in zip(kernel.block_vars, self.grid):
            self.block_linear[var.name] = lin % max(g, 1)
            lin = lin // max(g, 1)

    # ---------------------------------------------------------------------------------------------- helpers
    def subst(self, expr):
        return ir.map_expr(expr, lambda e: self.subst(self.lets[e.name])
                           if isinstance(e, ir.Var) and e.name in self.lets else e)

    def domain(self) -> dict:
        d = {v.name: np.arange(g) for v, g in zip(self.kernel.block_vars, self.grid)}
        d.update(self.loops)
        return d

    def executions(self) -> float:
        """How many times a statement at this point runs, all blocks together."""
        return self.blocks * math.prod(len(v) for v in self.loops.values())

    def extent(self, e) -> int:
        """A region extent: a Const, or an expression whose variables cancel (`h*4 + 4 - h*4` from a slice
        `h*4:h*4+4` that simplify left unfolded): its largest value at the first block and loop iteration."""
        if isinstance(e, ir.Const):
            return int(e.value)
        env = {**self.block_linear, **{k: v[0] for k, v in self.loops.items() if len(v)}}
        return int(np.max(evaluate(self.subst(e), env, loads_as=0)))

    def region_elements(self, region: ir.Region, shape) -> float:
        """Elements of `region` inside the tensor, summed over every block and loop iteration in scope."""
        domain = self.domain()
        axes = []  # (origin expr, extent, size, vars)
        unclipped = 1.0
        for o, e, n in zip(region.origin, region.extents, shape):
            o = self.subst(o)
            if has_load(o) or not free_vars(o) <= set(domain):
                unclipped *= self.extent(e)  # data-dependent origin: assume all in bounds
                continue
            axes.append((o, self.extent(e), _ival(n), free_vars(o)))
        # group axes that share variables (union-find over variable names)
        parent = {v: v for v in domain}

        def find(v):
            while parent[v] != v:
                v = parent[v]
            return v
        for *_, vs in axes:
            vs = sorted(vs)
            for v in vs[1:]:
                parent[find(v)] = find(vs[0])
        used = set().union(*(a[3] for a in axes)) if axes else set()
        total = unclipped * math.prod(len(domain[v]) for v in domain if v not in used)
        groups: dict = {}
        for a in axes:
            groups.setdefault(find(next(iter(a[3]))) if a[3] else None, []).append(a)
        for root, members in groups.items():
            if root is None:  # constant origin
                total *= math.prod(float(clipped(o.value if isinstance(o, ir.Const) else evaluate(o, {}), e, n))
                                   for o, e, n, _ in members)
                continue
            names = sorted(set().union(*(m[3] for m in members)))
            sizes = [len(domain[v]) for v in names]
            if math.prod(sizes) > MAX_ENUMERATION:
                total *= math.prod(sizes) * math.prod(e for _, e, _, _ in members)
                continue
            env = {v: domain[v].reshape([-1 if i == k else 1 for k in range(len(names))])
                   for i, v in enumerate(names)}
            prod = 1
            for o, e, n, _ in members:
                prod = prod * clipped(evaluate(o, env), e, n)
            total *= float(np.sum(np.broadcast_to(prod, sizes)))
        return total

    def miss_fraction(self, region: ir.Region, shape=None) -> float:
        """Fraction of the blocks whose copy of `region` misses the cache: blocks of one wave (consecutive in launch
        order) that load the same tile at the same iteration share one fetch. An origin read from a table (a MoE
        expert id) takes at most dim / extent distinct tiles along its dim, whatever the table holds."""
        env = dict(self.block_linear)
        env.update({k: v[0] for k, v in self.loops.items() if len(v)})
        n = self.n_enumerated
        origins = [self.subst(o) for o in region.origin]
        try:
            cols = [np.broadcast_to(np.asarray(evaluate(o, env, opaque_load), dtype=np.int64), (n,)) for o in origins]
        except DataDependent:  # an index read inside a T.Parallel's scope or another unknown
            return 1.0
        wave = np.arange(n) // self.wave_blocks
        distinct = np.unique(np.stack([wave, *cols], axis=1), axis=0).shape[0]
        read = [i for i, o in enumerate(origins) if has_load(o)]
        if read and shape is not None:
            rest = np.stack([wave] + [c for i, c in enumerate(cols) if i not in read], axis=1)
            tiles = math.prod(-(-_ival(shape[i]) // max(1, self.extent(region.extents[i]))) for i in read)
            distinct = min(distinct, np.unique(rest, axis=0).shape[0] * tiles)
            distinct = min(distinct, self.sorted_table_tiles(read, cols, rest, wave, tiles))
        return distinct / n

    @staticmethod
    def sorted_table_tiles(read, cols, rest, wave, tiles) -> int:
        """Distinct tiles over the waves when the origins read from a table come from a table in order (a MoE
        schedule lists each expert's row tiles one after another, tilec/ops/moe.tile_schedule): a wave that reads e
        of the table's E distinct entries meets about 1 + (e - 1) x tiles / E of the `tiles` values, not one per
        entry. H200 grouped GEMM (8 experts, 1474 blocks of 64 x 64): the expert's weight tile was counted a DRAM
        miss for every block, 416 MB for a 63 MB footprint."""
        entries = np.stack([cols[i] for i in read], axis=1)
        total = max(1, np.unique(entries, axis=0).shape[0])
        # per wave (rest's first column): entries seen, and tiles of the other origins
        waves, seen = np.unique(np.unique(np.column_stack([wave, entries]), axis=0)[:, 0], return_counts=True)
        other = dict(zip(*np.unique(np.unique(rest, axis=0)[:, 0], return_counts=True)))
        values = np.minimum(np.minimum(seen, tiles), 1 + np.ceil((seen - 1) * tiles / total))
        return int(sum(other[w] * v for w, v in zip(waves.tolist(), values.tolist())))

    def trips(self, loop: ir.For) -> np.ndarray:
        """The values a loop variable takes, its trip count the mean over the blocks (a bound that depends on the
        block index differs between blocks; self.trips_max keeps the longest block's). A bound that reads a tensor
        uses the value `assume` gives that tensor, else the largest dim (said in the notes)."""
        env = {**self.block_linear, **{k: v[0] for k, v in self.loops.items() if len(v)}}
        parts = [self.subst(x) for x in (loop.start, loop.stop, loop.step)]

        def per_block(values) -> np.ndarray:
            start, stop, step = (np.asarray(v, dtype=float) for v in values)
            return np.maximum(0, np.ceil((stop - start) / np.maximum(step, 1)))
        try:
            values = [evaluate(x, env) for x in parts]
            if any(free_vars(x) & set(self.block_linear) for x in parts):
                self.notes.append(f"{loop.loc}: loop bound depends on the block index; used its mean trip count")
        except DataDependent:
            # a bound capped by a static one (min(first + pages_per_split, pages)) runs to the cap, its table values
            # taken huge (each read its own value, ascending or descending: differences of two reads may count)
            # unless `assume` gives them; one the data alone sets runs to the largest dim. Capped means the trip
            # count stays put when the huge values double (a huge value divided by a page size is not capped)
            best, known = None, True
            for order in (0, 1, -1):
                seen: dict = {}  # each load its own index k, the same at both scales

                def bounds(scale, order=order, seen=seen):
                    def huge(load, env):
                        nonlocal known
                        if load.buffer in self.assume:
                            return self.assume[load.buffer]
                        known = False
                        k = seen.setdefault(repr(load), len(seen))
                        return scale * UNBOUNDED * (1 + order * k / 64)
                    return [evaluate(x, env, loads_as=huge) for x in parts]
                b = bounds(1.0)
                n = per_block(b).max(initial=0)
                capped = n < UNBOUNDED / 4 and n == per_block(bounds(2.0)).max(initial=0)
                if capped and (best is None or n > per_block(best).max(initial=0)):
                    best = b
            values = best if best is not None else [evaluate(x, env, loads_as=self.biggest_dim) for x in parts]
            if not known or best is None:
                self.notes.append(f"{loop.loc}: data-dependent loop bound; assumed its maximum "
                                  f"({int(per_block(values).max(initial=0))} trips)")
        counts = per_block(values)
        self.trips_max = float(counts.max(initial=0))
        start = int(np.mean(values[0])) if np.size(values[0]) else 0
        step = int(np.mean(values[2])) if np.size(values[2]) else 1
        return start + max(step, 1) * np.arange(int(round(float(np.mean(counts))) if counts.size else 0))

    # ---------------------------------------------------------------------------------------------- statements
    def run(self) -> KernelCounts:
        phases = [Phase("body")]
        self.top(self.kernel.body, phases)
        smem, frag = tile_bytes(self.kernel)
        tensors = {p.name: math.prod(_ival(d) for d in p.shape) * ir.ITEMSIZE[p.dtype] for p in self.kernel.params}
        return KernelCounts(self.blocks, [p for p in phases if p.ops or p.loads or p.store_bytes or p.trips != 1
                                          or p.shared_bytes], smem, frag, tensors, self.notes, self.block_loads)

    def top(self, body, phases):
        for stmt in body:
            if isinstance(stmt, ir.For):
                values = self.trips(stmt)
                stages = _ival(stmt.num_stages) if stmt.kind == "pipelined" else 1
                phase = Phase(f"loop {stmt.var.name}", trips=len(values), stages=stages,
                              pipelined=stmt.kind == "pipelined", trips_max=max(self.trips_max, len(values)))
                phases.append(phase)
                self.loops[stmt.var.name] = values
                self.body(stmt.body, phase)
                del self.loops[stmt.var.name]
            elif isinstance(stmt, ir.If):
                self.top(stmt.then_body, phases)
                self.top(stmt.else_body, phases)
            else:
                self.body((stmt,), phases[0])

    def body(self, body, phase: Phase):
        for stmt in body:
            if isinstance(stmt, ir.For):
                self.loops[stmt.var.name] = self.trips(stmt)
                self.body(stmt.body, phase)
                del self.loops[stmt.var.name]
            elif isinstance(stmt, ir.If):
                self.body(stmt.then_body, phase)
                self.body(stmt.else_body, phase)
            elif isinstance(stmt, ir.Let):
                self.lets[stmt.var.name] = stmt.value
                self.scalar_loads(stmt.value, phase)
            elif isinstance(stmt, (ir.Store, ir.AtomicAdd)):
                self.scalar_loads(stmt.value, phase)
            elif isinstance(stmt, ir.Copy):
                self.copy(stmt, phase)
            elif isinstance(stmt, ir.Gemm):
                self.gemm(stmt, phase)
            elif isinstance(stmt, ir.Reduce):
                src = self.buffers[stmt.src]
                n = math.prod(_ival(d) for d in src.shape) * self.executions()
                # vector work, max/min too: LLVM vectorises a llvm.maxnum/minnum reduction along the contiguous
                # dim (vector.reduce.fmax.v16f32 for znver4, v8f32 for Intel AVX-512 targets that prefer 256 bits)
                phase.ops[f"vector:{src.dtype}"] += n
                if src.scope == "shared":
                    phase.shared_bytes += n * ir.ITEMSIZE[src.dtype]
                elif src.scope in ("fragment", "local"):
                    phase.local_bytes += n * ir.ITEMSIZE[src.dtype]
            elif isinstance(stmt, ir.Parallel):
                self.parallel(stmt, phase)

    def scalar_loads(self, expr, phase):
        """A scalar read of a global tensor outside T.Parallel costs one sector."""
        for e in ir.walk_expr(expr):
            if isinstance(e, ir.Load) and self.buffers[e.buffer].scope == "global":
                phase.loads.append((e.buffer, SECTOR * self.executions(), 1.0))

    def copy(self, stmt: ir.Copy, phase):
        src, dst = self.buffers[stmt.src.buffer], self.buffers[stmt.dst.buffer]
        extents = [self.extent(e) for e in (stmt.dst if dst.scope != "global" else stmt.src).extents]
        phase.copy_rows += math.prod(extents[:-1]) * self.executions()
        for region, buf, other in ((stmt.src, src, stmt.dst), (stmt.dst, dst, stmt.src)):
            nbytes = math.prod(self.extent(e) for e in region.extents) * ir.ITEMSIZE[buf.dtype] * self.executions()
            if buf.scope == "shared":
                phase.shared_bytes += nbytes
            elif buf.scope in ("fragment", "local"):
                phase.local_bytes += nbytes
        if src.scope == "global":
            self.block_loads |= not self.loops
            nbytes = self.region_elements(stmt.src, src.shape) * ir.ITEMSIZE[src.dtype]
            miss = 0.0 if self.reread(stmt.src, src.name, nbytes, phase) else self.miss_fraction(stmt.src, src.shape)
            phase.loads.append((src.name, nbytes, miss))
        if dst.scope == "global":
            nbytes = self.region_elements(stmt.dst, dst.shape) * ir.ITEMSIZE[dst.dtype]
            phase.store_bytes += nbytes
            phase.stored[dst.name] += nbytes

    def tile_origins(self, region: ir.Region):
        """The origins block 0 copies `region` from over the enclosing loops, or None where an origin is data."""
        env = {k: v[:1] for k, v in self.block_linear.items()}
        names = list(self.loops)
        for axis, name in enumerate(names):  # each loop variable on its own axis: every combination
            shape = [1] * len(names)
            shape[axis] = len(self.loops[name])
            env[name] = np.asarray(self.loops[name]).reshape(shape)
        try:
            cols = [np.asarray(evaluate(self.subst(o), env, opaque_load)) for o in region.origin]
        except DataDependent:
            return None
        full = np.broadcast_shapes(*(c.shape for c in cols)) if cols else ()
        return frozenset(zip(*(np.broadcast_to(c, full).ravel().tolist() for c in cols)))

    def reread(self, region: ir.Region, name: str, nbytes: float, phase) -> bool:
        """Whether this copy re-reads tiles the block copied in an earlier loop and kept in its cache share (the
        second pass of a two-pass softmax over rows that fit), so they come from the cache, not DRAM."""
        origins = self.tile_origins(region)
        first = self.copied.get(name)
        if first is None:
            if origins is not None:
                self.copied[name] = (phase, origins, nbytes / max(self.blocks, 1))
            return False
        earlier, seen, per_block = first
        return (earlier is not phase and origins is not None and origins <= seen
                and per_block <= self.reuse_bytes)

    def gemm(self, stmt: ir.Gemm, phase):
        a, b, c = (self.buffers[n] for n in (stmt.a, stmt.b, stmt.c))
        m, n = (_ival(d) for d in c.shape)
        k = _ival(a.shape[0] if stmt.transpose_a else a.shape[1])
        phase.ops[f"gemm:{a.dtype}"] += 2 * m * n * k * self.executions()
        phase.gemms.append((m, n, k, 8 if "float64" in (a.dtype, b.dtype, c.dtype) else 4, self.executions()))
        cuda_cores = a.dtype in ("float32", "float64")
        phase.gemm_k_steps += (k if cuda_cores else -(-k * ir.ITEMSIZE[a.dtype] // 32)) * self.executions()
        for x in (a, b):
            if x.scope == "shared":
                phase.shared_bytes += math.prod(_ival(d) for d in x.shape) * ir.ITEMSIZE[x.dtype] * self.executions()

    def parallel(self, stmt: ir.Parallel, phase):
        extents = {v.name: _ival(e) for v, e in zip(stmt.vars, stmt.extents)}
        per_block = self.executions()
        elements = math.prod(extents.values()) * per_block
        inner = stmt.vars[-1].name
        saved = dict(self.lets)
        for s in ir.walk_stmts(stmt.body):
            if isinstance(s, ir.Let):
                self.lets[s.var.name] = s.value
            values = [s.value] if isinstance(s, (ir.Let, ir.Store, ir.AtomicAdd)) else \
                [s.cond] if isinstance(s, ir.If) else []
            for v in values:
                count_ops(v, phase.ops, elements)
                for e in ir.walk_expr(v):
                    if isinstance(e, ir.Load):
                        self.element_access(e.buffer, e.indices, extents, inner, per_block, phase, store=False)
            if isinstance(s, (ir.Store, ir.AtomicAdd)):
                self.element_access(s.buffer, s.indices, extents, inner, per_block, phase, store=True)
                if isinstance(s, ir.AtomicAdd):  # read-modify-write at the cache
                    self.element_access(s.buffer, s.indices, extents, inner, per_block, phase, store=False)
        self.lets = saved

    def element_access(self, name, indices, extents, inner, per_block, phase, store):
        buf = self.buffers[name]
        if buf.scope in ("fragment", "local"):
            used = set().union(*(free_vars(self.subst(i)) for i in indices)) & set(extents) if indices else set()
            phase.local_bytes += math.prod(extents[v] for v in used) * per_block * ir.ITEMSIZE[buf.dtype]
            return
        if buf.scope not in ("global", "shared"):
            return
        indices = [self.subst(i) for i in indices]
        if buf.scope == "global" and any(isinstance(e, ir.Load) and self.buffers[e.buffer].scope == "global"
                                         for i in indices for e in ir.walk_expr(i)):
            phase.depth = max(phase.depth, 2)
        used = set().union(*(free_vars(i) for i in indices)) & set(extents) if indices else set()
        distinct = math.prod(extents[v] for v in used) * per_block
        if buf.scope == "global" and not store and any(has_load(i) for i in indices):
            phase.gathers += distinct
        size = ir.ITEMSIZE[buf.dtype]
        if buf.scope == "shared":
            phase.shared_bytes += distinct * size
            return
        if inner in used and self.unit_stride(indices, inner, extents):
            run = extents[inner]
            nbytes = distinct / run * math.ceil(run * size / SECTOR) * SECTOR
        else:
            nbytes = distinct * max(size, SECTOR)
        if store:
            phase.store_bytes += nbytes
            phase.stored[name] += nbytes
            return
        taken = self.table_fraction(indices, extents) if buf.scope == "global" else 1.0
        phase.loads.append((name, nbytes * taken, 1.0))
        if taken < 1.0:  # the rows a constant index sends elsewhere all read the same row: cache hits
            phase.loads.append((name, nbytes * (1.0 - taken), 0.0))

    def table_fraction(self, indices, extents) -> float:
        """Fraction of a gather's elements whose index comes from its table: an index T.where(cond, table[...], c)
        (a paged decode's pages past the split's end read page 0) sends the rest to one constant row, which every
        block shares in the cache. cond is evaluated over the loop and T.Parallel variables it uses, with `assume`
        giving the tensors it reads; 1.0 when it cannot be."""
        for e in (x for i in indices for x in ir.walk_expr(i)):
            if not isinstance(e, ir.Select):
                continue
            sides = [has_load(e.true_value), has_load(e.false_value)]
            if sides.count(True) != 1 or not isinstance((e.false_value, e.true_value)[sides[1]], ir.Const):
                continue
            cond = self.subst(e.cond)
            domain = {**self.domain(), **{v: np.arange(n) for v, n in extents.items()}}
            names = sorted(free_vars(cond))
            if not set(names) <= set(domain) or math.prod(len(domain[v]) for v in names) > MAX_ENUMERATION:
                return 1.0
            env = {v: domain[v].reshape([-1 if i == k else 1 for k in range(len(names))]) for i, v in enumerate(names)}

            def known(load, env):
                if load.buffer not in self.assume:
                    raise DataDependent(load.buffer)
                return self.assume[load.buffer]
            try:
                value = evaluate(cond, env, known)
            except DataDependent:
                return 1.0
            shape = [len(domain[v]) for v in names]
            frac = float(np.mean(np.broadcast_to(np.asarray(value, dtype=bool), shape)))
            return frac if sides[0] else 1.0 - frac
        return 1.0

    def unit_stride(self, indices, inner, extents) -> bool:
        """The innermost loop variable walks the last index with step 1 and no other index."""
        if any(inner in free_vars(i) for i in indices[:-1]):
            return False
        env = {v: 0 for v in set().union(*(free_vars(i) for i in indices))}
        try:
            at0 = evaluate(indices[-1], env, loads_as=0)
            at1 = evaluate(indices[-1], {**env, inner: 1}, loads_as=0)
        except DataDependent:
            return False
        return np.all(np.asarray(at1) - np.asarray(at0) == 1)


def tile_bytes(kernel: ir.Kernel) -> tuple[int, int]:
    """(shared bytes with multi-buffering, fragment + local bytes) one block allocates."""
    smem = frag = 0
    for s in ir.walk_stmts(kernel.body):
        if isinstance(s, ir.Alloc):
            nbytes = math.prod(_ival(d) for d in s.buffer.shape) * ir.ITEMSIZE[s.buffer.dtype] * s.buffer.stages
            if s.buffer.scope == "shared":
                smem += nbytes
            elif s.buffer.scope in ("fragment", "local"):
                frag += nbytes
    return smem, frag


def count_ops(expr, ops: Counter, times: float):
    """Floating-point work of one elementwise expression, `times` times (index arithmetic is free)."""
    for e in ir.walk_expr(expr):
        if isinstance(e, ir.BinOp) and ir.is_float(e.dtype) or \
                isinstance(e, ir.BinOp) and e.op in ir.COMPARE_OPS and ir.is_float(e.lhs.dtype):
            ops[f"vector:{e.dtype if ir.is_float(e.dtype) else e.lhs.dtype}"] += times
        elif isinstance(e, ir.UnaryOp) and ir.is_float(e.dtype):
            ops["sfu" if e.op in ir.FLOAT_ONLY_UNARY else f"vector:{e.dtype}"] += times
        elif isinstance(e, ir.Select) and ir.is_float(e.dtype):
            ops[f"vector:{e.dtype}"] += times
