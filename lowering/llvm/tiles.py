"""Tile statements as loop nests: Copy (with out-of-bounds masking of global regions), Fill, Reduce, and the
prefetches of a pipelined loop's producer copies.

Masking is hoisted out of the innermost loop: for each row we compute once the in-bounds column range [lo, hi),
then run plain loops over [0, lo) (pad), [lo, hi) (copy) and [hi, E) (pad), which LLVM vectorises.
"""
from __future__ import annotations

from math import prod

from llvmlite import ir as llir

from tilec import ir
from tilec.errors import TilecLoweringError, where

from . import dtypes as dt
from . import expr as ex

LINE = 64  # bytes per cache line (x86-64)


class RegionAccess:
    """Addresses and bounds of one side of a copy, given the tile indices."""

    def __init__(self, cg, region: ir.Region):
        self.cg, self.region = cg, region
        self.name = region.buffer
        self.buf = cg.buffers[region.buffer]
        self.is_global = self.buf.scope == "global"
        self.shape, self.strides = cg.shapes[self.name], cg.strides[self.name]
        self.origin = [cg.index(ex.emit(cg, o)) for o in region.origin]
        self.axes = region.axes
        b = cg.b
        offset = llir.Constant(dt.I64, 0)
        for o, stride in zip(self.origin, self.strides):
            offset = b.add(offset, b.mul(o, llir.Constant(dt.I64, stride)))
        self.base_offset = offset

    def ptr(self, idx, inbounds=True):
        b = self.cg.b
        offset = self.base_offset
        for i, ax in zip(idx, self.axes):
            offset = b.add(offset, b.mul(i, llir.Constant(dt.I64, self.strides[ax])))
        return b.gep(self.cg.ptrs[self.name], [offset], source_etype=dt.mem_type(self.buf.dtype), inbounds=inbounds)

    def fixed_dims_ok(self):
        """The dims the tile does not span must be in bounds (checked once per copy)."""
        ok = llir.Constant(dt.I1, 1)
        for d, (o, n) in enumerate(zip(self.origin, self.shape)):
            if d not in self.axes:
                ok = self.cg.b.and_(ok, self.cg.b.icmp_unsigned("<", o, llir.Constant(dt.I64, n)))
        return ok

    def row_ok(self, outer_idx):
        b, ok = self.cg.b, llir.Constant(dt.I1, 1)
        for i, ax in zip(outer_idx, self.axes):
            pos = b.add(self.origin[ax], i)  # unsigned compare also rejects negative positions
            ok = b.and_(ok, b.icmp_unsigned("<", pos, llir.Constant(dt.I64, self.shape[ax])))
        return ok

    def inner_range(self, extent: int):
        """[lo, hi) of the innermost tile index that falls inside the tensor."""
        b = self.cg.b
        ax = self.axes[-1]
        o = self.origin[ax]
        zero, e = llir.Constant(dt.I64, 0), llir.Constant(dt.I64, extent)
        lo = _smin(b, _smax(b, b.neg(o), zero), e)
        hi = _smax(b, _smin(b, b.sub(llir.Constant(dt.I64, self.shape[ax]), o), e), lo)
        return lo, hi


def _smax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def _smin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def tile_extents(cg, s: ir.Copy) -> list:
    """The copied tile's shape: the extents along the axes of whichever side has constant ones."""
    for r in (s.dst, s.src):
        ext = [r.extents[a] for a in r.axes]
        if all(isinstance(e, ir.Const) for e in ext):
            if len(s.src.axes) != len(s.dst.axes):
                raise TilecLoweringError(f"{where(s.loc)}T.copy between regions of rank {len(s.src.axes)} and "
                                         f"{len(s.dst.axes)}; both sides must span the same number of dims")
            return [int(e.value) for e in ext]
    raise TilecLoweringError(f"{where(s.loc)}T.copy: the tile shape must be a compile-time constant; copy into or "
                             f"from a tile (whose shape is constant) or use constant slice extents")


def loop_nest(cg, extents, fn, names="t"):
    """Run fn(idx values) over the index space `extents` (ints or i64 values)."""
    def rec(level, idx):
        if level == len(extents):
            fn(idx)
            return
        with cg.for_range(0, extents[level], name=f"{names}{level}") as iv:
            rec(level + 1, idx + [iv])
    rec(0, [])


def lower_copy(cg, s: ir.Copy):
    b = cg.b
    ext = tile_extents(cg, s)
    src, dst = RegionAccess(cg, s.src), RegionAccess(cg, s.dst)
    checked = [r for r in (src, dst) if r.is_global]
    sdt, ddt = src.buf.dtype, dst.buf.dtype
    pad = dt.to_memory(b, ex.emit(cg, s.pad) if s.pad is not None else dt.zero(ddt), ddt)
    inner = ext[-1]
    e = llir.Constant(dt.I64, inner)

    def move(idx):
        raw = b.load(src.ptr(idx), typ=dt.mem_type(sdt))
        if sdt != ddt:
            raw = dt.to_memory(b, dt.cast(b, dt.from_memory(b, raw, sdt), sdt, ddt), ddt)
        b.store(raw, dst.ptr(idx))

    def fill_pad(outer, lo, hi):
        with cg.for_range(lo, hi, name="pad") as j:
            b.store(pad, dst.ptr(outer + [j]))

    if not checked:
        loop_nest(cg, ext, move, "cp")
        return
    fixed_ok = checked[0].fixed_dims_ok()
    lo, hi = checked[0].inner_range(inner)
    for r in checked[1:]:
        fixed_ok = b.and_(fixed_ok, r.fixed_dims_ok())
        lo2, hi2 = r.inner_range(inner)
        lo, hi = _smax(b, lo, lo2), _smax(b, _smin(b, hi, hi2), _smax(b, lo, lo2))

    def row(outer):
        ok = fixed_ok
        for r in checked:
            ok = b.and_(ok, r.row_ok(outer))
        if dst.is_global:  # stores outside the tensor are skipped
            with b.if_then(ok):
                with cg.for_range(lo, hi, name="cp") as j:
                    move(outer + [j])
            return
        with b.if_else(ok) as (inside, outside):
            with inside:
                fill_pad(outer, 0, lo)
                with cg.for_range(lo, hi, name="cp") as j:
                    move(outer + [j])
                fill_pad(outer, hi, e)
            with outside:
                fill_pad(outer, 0, e)

    loop_nest(cg, ext[:-1], row, "row")


def prefetch_source(cg, s: ir.Copy):
    """Prefetch (into L2) the cache lines of a copy's global source rows."""
    src = RegionAccess(cg, s.src)
    if not src.is_global:
        return
    ext = tile_extents(cg, s)
    b = cg.b
    lines = -(-ext[-1] * ir.ITEMSIZE[src.buf.dtype] // LINE)
    stride = LINE // ir.ITEMSIZE[src.buf.dtype]

    def row(outer):
        with b.if_then(b.and_(src.fixed_dims_ok(), src.row_ok(outer))):
            with cg.for_range(0, lines, name="pf") as line:
                ptr = src.ptr(outer + [b.mul(line, llir.Constant(dt.I64, stride))], inbounds=False)
                args = [ptr, llir.Constant(dt.I32, 0), llir.Constant(dt.I32, 2), llir.Constant(dt.I32, 1)]
                cg.intrinsic("llvm.prefetch", llir.VoidType(), args, overload=dt.PTR)

    loop_nest(cg, ext[:-1], row, "pfrow")


def lower_fill(cg, s: ir.Fill):
    buf = cg.buffers[s.buffer]
    b = cg.b
    value = dt.to_memory(b, ex.emit(cg, s.value), buf.dtype)
    with cg.for_range(0, prod(cg.shapes[s.buffer]), name="fill") as i:
        b.store(value, b.gep(cg.ptrs[s.buffer], [i], source_etype=dt.mem_type(buf.dtype), inbounds=True))


_REDUCE_INIT = {"sum": 0.0, "max": float("-inf"), "min": float("inf")}
# Reassociation lets LLVM vectorise a running sum; tile reductions have no defined order anyway.
_REASSOC = ("reassoc", "nsz")


def lower_reduce(cg, s: ir.Reduce):
    b = cg.b
    sbuf, dbuf = cg.buffers[s.src], cg.buffers[s.dst]
    shape = cg.shapes[s.src]
    sdt, ddt = sbuf.dtype, dbuf.dtype
    if s.op not in _REDUCE_INIT:
        raise TilecLoweringError(f"{where(s.loc)}unknown reduction {s.op!r}; use max, sum or min")
    init = _identity(s.op, ddt)

    def combine(acc, x):
        if dt.is_float(ddt):
            if s.op == "sum":
                return b.fadd(acc, x, flags=_REASSOC)
            return cg.intrinsic("llvm.maxnum" if s.op == "max" else "llvm.minnum", acc.type, [acc, x])
        if s.op == "sum":
            return b.add(acc, x)
        return b.select(b.icmp_signed(">" if s.op == "max" else "<", acc, x), acc, x)

    def dst_ptr(idx):
        kept = [i for d, i in enumerate(idx) if d != s.dim]
        return cg.element_ptr(s.dst, kept or [llir.Constant(dt.I64, 0)])

    def src_value(idx):
        return dt.cast(b, dt.load(b, cg.element_ptr(s.src, idx), sdt), sdt, ddt)

    def finish(ptr, acc):
        if not s.clear:
            acc = combine(dt.load(b, ptr, ddt), acc)
        dt.store(b, dt.round_to(b, acc, ddt), ptr, ddt)

    if s.dim == len(shape) - 1:  # a register accumulator per output element
        def row(outer):
            slot = cg.local_alloca(ir.Buffer("acc", (), ddt, "local"))
            dt.store(b, init, slot, ddt)
            with cg.for_range(0, shape[-1], name="red") as j:
                dt.store(b, combine(dt.load(b, slot, ddt), src_value(outer + [j])), slot, ddt)
            finish(dst_ptr(outer + [None]), dt.load(b, slot, ddt))
        loop_nest(cg, list(shape[:-1]), row, "rrow")
        return
    # Reducing an outer dim with clear: accumulate whole rows into dst, so the inner loop runs along contiguous
    # rows of both tiles (vectorisable).
    if s.clear:
        loop_nest(cg, [n for d, n in enumerate(shape) if d != s.dim],
                  lambda idx: dt.store(b, init, cg.element_ptr(s.dst, idx), ddt), "rinit")

        def accumulate(idx):
            ptr = dst_ptr(idx)
            dt.store(b, combine(dt.load(b, ptr, ddt), src_value(idx)), ptr, ddt)
        loop_nest(cg, list(shape), accumulate, "racc")
        return

    def element(outer):  # clear=False over an outer dim: one register accumulator per output element
        slot = cg.local_alloca(ir.Buffer("acc", (), ddt, "local"))
        dt.store(b, init, slot, ddt)
        with cg.for_range(0, shape[s.dim], name="red") as r:
            full = outer[:s.dim] + [r] + outer[s.dim:]
            dt.store(b, combine(dt.load(b, slot, ddt), src_value(full)), slot, ddt)
        finish(cg.element_ptr(s.dst, outer), dt.load(b, slot, ddt))
    loop_nest(cg, [n for d, n in enumerate(shape) if d != s.dim], element, "rel")


def _identity(op: str, dtype: str):
    if dt.is_float(dtype):
        return llir.Constant(dt.value_type(dtype), _REDUCE_INIT[op])
    bits = dt.value_type(dtype).width
    value = {"sum": 0, "max": -(1 << (bits - 1)), "min": (1 << (bits - 1)) - 1}[op]
    return llir.Constant(dt.value_type(dtype), value)
