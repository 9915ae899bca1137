"""Register-tensor layout for the Triton lowering: padded tile shapes and where a tile must be initialised.

Triton tensors need power-of-two dims (and >= 16 for `tl.dot` operands), so every tile dim and every Parallel axis
is padded. Dims that must agree (paired by a tile-to-tile copy, by a gemm, by a reduce, or indexed by the same
Parallel loop variable) are unified and padded alike; the lowering masks the padded lanes.
"""
from __future__ import annotations

from .. import ir

TILE_SCOPES = ("shared", "fragment")
DOT_MIN = 16  # tl.dot needs every operand dim >= 16


def next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def const_int(e) -> int:
    assert isinstance(e, ir.Const), f"expected a bound constant, got {e}"
    return int(e.value)


def non_unit(dims) -> list:
    return [d for d, n in enumerate(dims) if n != 1]


class Padding:
    """Union-find over "slots": ("buf", name, dim) for tile dims and ("par", id(stmt), axis) for Parallel axes."""

    def __init__(self, kernel: ir.Kernel):
        self.buffers = kernel.buffers()
        self.parent: dict = {}
        self.logical: dict = {}
        self.dot: set = set()
        for buf in self.buffers.values():
            if buf.scope in TILE_SCOPES:
                for d, n in enumerate(buf.shape):
                    self.add(("buf", buf.name, d), const_int(n))
        for stmt in ir.walk_stmts(kernel.body):
            self.visit(stmt)
        self.padded_size: dict = {}
        for slot in self.parent:
            root = self.find(slot)
            size = next_pow2(self.logical[slot])
            if slot in self.dot:
                size = max(size, DOT_MIN)
            self.padded_size[root] = max(self.padded_size.get(root, 1), size)

    # ------------------------------------------------------------------------------------------ union-find
    def add(self, slot, size: int):
        self.parent.setdefault(slot, slot)
        self.logical[slot] = size

    def find(self, slot):
        while self.parent[slot] != slot:
            self.parent[slot] = self.parent[self.parent[slot]]
            slot = self.parent[slot]
        return slot

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)

    def is_tile(self, name) -> bool:
        return self.buffers[name].scope in TILE_SCOPES

    def dims(self, name) -> list:
        return [const_int(n) for n in self.buffers[name].shape]

    # ------------------------------------------------------------------------------------------ constraints
    def visit(self, stmt):
        if isinstance(stmt, ir.Copy) and self.is_tile(stmt.src.buffer) and self.is_tile(stmt.dst.buffer):
            src, dst = self.dims(stmt.src.buffer), self.dims(stmt.dst.buffer)
            for a, b in zip(non_unit(src), non_unit(dst)):
                self.union(("buf", stmt.src.buffer, a), ("buf", stmt.dst.buffer, b))
        elif isinstance(stmt, ir.Gemm):
            am, ak = (1, 0) if stmt.transpose_a else (0, 1)
            bk, bn = (1, 0) if stmt.transpose_b else (0, 1)
            pairs = [((stmt.a, am), (stmt.c, 0)), ((stmt.b, bn), (stmt.c, 1)), ((stmt.a, ak), (stmt.b, bk))]
            for (x, dx), (y, dy) in pairs:
                self.union(("buf", x, dx), ("buf", y, dy))
            for name in (stmt.a, stmt.b, stmt.c):
                self.dot.update(("buf", name, d) for d in range(2))
        elif isinstance(stmt, ir.Reduce):
            kept = [d for d in range(len(self.dims(stmt.src))) if d != stmt.dim]
            if len(kept) == len(self.dims(stmt.dst)):
                for a, b in enumerate(kept):
                    self.union(("buf", stmt.src, b), ("buf", stmt.dst, a))
        elif isinstance(stmt, ir.Parallel):
            axes = {v: a for a, v in enumerate(stmt.vars)}
            for a, e in enumerate(stmt.extents):
                self.add(("par", id(stmt), a), const_int(e))
            for buf, indices in tile_accesses(stmt.body):
                if not self.is_tile(buf):
                    continue
                for d, i in enumerate(indices):
                    if i in axes:
                        self.union(("buf", buf, d), ("par", id(stmt), axes[i]))

    # ------------------------------------------------------------------------------------------ queries
    def tile_shape(self, name) -> tuple:
        return tuple(self.padded_size[self.find(("buf", name, d))] for d in range(len(self.dims(name))))

    def parallel_shape(self, stmt: ir.Parallel) -> tuple:
        return tuple(self.padded_size[self.find(("par", id(stmt), a))] for a in range(len(stmt.vars)))


def tile_accesses(body):
    """(buffer, indices) of every Load and Store/AtomicAdd target in a Parallel body, ifs included."""
    for stmt in ir.walk_stmts(body):
        exprs = []
        if isinstance(stmt, ir.Let):
            exprs = [stmt.value]
        elif isinstance(stmt, ir.If):
            exprs = [stmt.cond]
        elif isinstance(stmt, (ir.Store, ir.AtomicAdd)):
            yield stmt.buffer, stmt.indices
            exprs = [stmt.value, *stmt.indices]
        for e in exprs:
            for node in ir.walk_expr(e):
                if isinstance(node, ir.Load):
                    yield node.buffer, node.indices


# ---------------------------------------------------------------------------------------------- initialisation
def buffers_used(stmt) -> set:
    """Buffers a statement reads or writes (a Parallel counts as one statement; For/If only for their headers)."""
    names, exprs = set(), []
    if isinstance(stmt, (ir.Store, ir.AtomicAdd)):
        names.add(stmt.buffer)
        exprs = [stmt.value, *stmt.indices]
    elif isinstance(stmt, ir.Let):
        exprs = [stmt.value]
    elif isinstance(stmt, ir.Alloc):
        exprs = [stmt.init] if stmt.init is not None else []
    elif isinstance(stmt, ir.Copy):
        names |= {stmt.src.buffer, stmt.dst.buffer}
        exprs = [*stmt.src.origin, *stmt.dst.origin] + ([stmt.pad] if stmt.pad is not None else [])
    elif isinstance(stmt, ir.Fill):
        names.add(stmt.buffer)
        exprs = [stmt.value]
    elif isinstance(stmt, ir.Gemm):
        names |= {stmt.a, stmt.b, stmt.c}
    elif isinstance(stmt, ir.Reduce):
        names |= {stmt.src, stmt.dst}
    elif isinstance(stmt, ir.For):
        exprs = [stmt.start, stmt.stop, stmt.step]
    elif isinstance(stmt, ir.If):
        exprs = [stmt.cond]
    elif isinstance(stmt, ir.Parallel):
        for s in ir.walk_stmts(stmt.body):  # its ifs' branches too
            names |= buffers_used(s)
    for e in exprs:
        names |= {n.buffer for n in ir.walk_expr(e) if isinstance(n, ir.Load)}
    return names


def overwrites(stmt, name: str, buffers: dict) -> bool:
    """Does `stmt` write every element of tile `name` without reading it?"""
    if isinstance(stmt, ir.Fill):
        return stmt.buffer == name
    if isinstance(stmt, ir.Reduce):
        return stmt.dst == name and stmt.clear and stmt.src != name
    if isinstance(stmt, ir.Copy) and stmt.dst.buffer == name and stmt.src.buffer != name:
        shape = buffers[name].shape
        return all(o == ir.index(0) for o in stmt.dst.origin) and tuple(stmt.dst.extents) == tuple(shape)
    return False


def tiles_needing_init(kernel: ir.Kernel) -> set:
    """Tiles that must be given a value at their Alloc. The others are first fully overwritten at the top of the
    innermost block holding all their uses, so binding them there keeps them out of Triton's loop-carried values
    (a tile carried through a pipelined loop would defeat the pipeliner)."""
    buffers = kernel.buffers()
    paths: dict = {}

    def visit(body, prefix):
        for i, stmt in enumerate(body):
            for name in buffers_used(stmt):
                paths.setdefault(name, []).append(prefix + ((i, -1),))
            if not isinstance(stmt, ir.Parallel):
                for b, child in enumerate(ir.child_bodies(stmt)):
                    visit(child, prefix + ((i, b),))

    visit(kernel.body, ())
    need = set()
    for name, buf in buffers.items():
        if buf.scope not in TILE_SCOPES or name not in paths:
            continue
        uses = paths[name]
        common = 0
        while all(len(p) > common + 1 and p[common] == uses[0][common] for p in uses):
            common += 1
        first = min(uses)
        stmt = statement_at(kernel.body, first)
        if len(first) != common + 1 or not overwrites(stmt, name, buffers):
            need.add(name)
    return need


def statement_at(body, path):
    for i, b in path[:-1]:
        body = ir.child_bodies(body[i])[b]
    return body[path[-1][0]]
