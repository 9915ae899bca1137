"""`T.gemm` (c += op(a) @ op(b)) as a register-blocked micro-kernel with explicit vector types.

B is first packed into panels of NR = 2 vectors' worth of columns, converted to the compute dtype (float32, or
float64 when an operand is float64): panel p holds b[k, p*NR:(p+1)*NR] for k = 0..K-1 contiguously. Packing costs
K*N moves per gemm (1/M of its FMAs), turns transpose_b and float16/bfloat16 into plain vector loads, and keeps the
panel the inner loop streams through contiguous, so it stays in L1 without cache-set conflicts.

The micro-kernel keeps a rows x NR block of c in vector registers across the whole K loop: per k it loads the
panel's vectors once, broadcasts a[i, k] for each row and issues one `llvm.fma` per accumulator. Columns left
over after the full panels use a narrower panel split into power-of-two vector widths (no masks, no overreads).
"""
from __future__ import annotations

from llvmlite import ir as llir

from tilec import ir
from tilec.errors import TilecLoweringError, where

from . import dtypes as dt

#: lanes per vector: AVX-512 holds 16 float32 or 8 float64 (the host has avx512f; Zen 4 executes a 512-bit FMA
#: as two 256-bit halves, AMD "Software Optimization Guide for the AMD Zen4 Microarchitecture", sec. 2.11).
LANES = {"float32": 16, "float64": 8}
VECTORS_PER_ROW = 2
#: accumulator vectors held in registers (x86-64 with AVX-512 has 32 vector registers; the rest hold the B
#: vectors, the broadcast and addresses).
ACC_VECTORS = 24


def shapes(s: ir.Gemm, buffers) -> tuple:
    """(M, N, K) of a gemm, checking that the operand shapes agree."""
    a, b, c = (tuple(int(d.value) for d in buffers[n].shape) for n in (s.a, s.b, s.c))
    m, ka = (a[1], a[0]) if s.transpose_a else a
    kb, n = (b[1], b[0]) if s.transpose_b else b
    if ka != kb or c != (m, n):
        raise TilecLoweringError(f"{where(s.loc)}T.gemm shapes do not agree: op(a) is {m}x{ka}, op(b) is {kb}x{n}, "
                                 f"c is {c[0]}x{c[1]}; c must be {m}x{n} and the inner dims equal")
    return m, n, ka


def compute_dtype(s: ir.Gemm, buffers) -> str:
    kinds = [buffers[n].dtype for n in (s.a, s.b, s.c)]
    if not all(dt.is_float(k) for k in kinds):
        raise TilecLoweringError(f"{where(s.loc)}the LLVM backend's T.gemm takes float tiles; got "
                                 f"{', '.join(kinds)} (cast integer tiles to float32 first)")
    return "float64" if "float64" in kinds else "float32"


def packed_b_bytes(s: ir.Gemm, buffers) -> int:
    m, n, k = shapes(s, buffers)
    return k * n * ir.ITEMSIZE[compute_dtype(s, buffers)]


def split_widths(n: int, lanes: int) -> list:
    """Vector widths covering n columns: full vectors, then descending powers of two."""
    widths = [lanes] * (n // lanes)
    rest, w = n % lanes, lanes // 2
    while rest:
        if rest >= w:
            widths.append(w)
            rest -= w
        w //= 2
    return widths


class GemmEmitter:
    def __init__(self, cg, s: ir.Gemm, packed):
        self.cg, self.s, self.b = cg, s, cg.b
        self.m, self.n, self.k = shapes(s, cg.buffers)
        self.ct = compute_dtype(s, cg.buffers)
        self.lanes = LANES[self.ct]
        self.nr = self.lanes * VECTORS_PER_ROW
        self.cty = dt.value_type(self.ct)
        self.packed = packed
        self.a_dtype, self.b_dtype, self.c_dtype = (cg.buffers[x].dtype for x in (s.a, s.b, s.c))

    def i64(self, v):
        return self.cg.i64(v)

    def at(self, name_or_ptr, dtype, offset):
        ptr = self.cg.ptrs[name_or_ptr] if isinstance(name_or_ptr, str) else name_or_ptr
        return self.b.gep(ptr, [offset], source_etype=dt.mem_type(dtype), inbounds=True)

    # ------------------------------------------------------------------------------------------ packing B
    def b_element(self, k, j):
        """op(b)[k, j] converted to the compute dtype."""
        b = self.b
        row, col, width = (j, k, self.k) if self.s.transpose_b else (k, j, self.n)
        off = b.add(b.mul(row, self.i64(width)), col)
        return dt.cast(b, dt.load(b, self.at(self.s.b, self.b_dtype, off), self.b_dtype), self.b_dtype, self.ct)

    def pack_panel(self, j0, base, width):
        """packed[base + k*width + jj] = op(b)[k, j0 + jj]."""
        b, cg = self.b, self.cg
        with cg.for_range(0, self.k, name="pk") as k:
            row = b.add(base, b.mul(k, self.i64(width)))
            with cg.for_range(0, width, name="pj") as jj:
                value = self.b_element(k, b.add(j0, jj))
                dt.store(b, value, self.at(self.packed, self.ct, b.add(row, jj)), self.ct)

    # ------------------------------------------------------------------------------------------ micro-kernel
    def splat(self, x, width):
        b = self.b
        vty = llir.VectorType(self.cty, width)
        one = b.insert_element(llir.Constant(vty, None), x, llir.Constant(dt.I32, 0))
        return b.shuffle_vector(one, llir.Constant(vty, None), llir.Constant(llir.VectorType(dt.I32, width),
                                                                            [0] * width))

    def a_element(self, i, k):
        b = self.b
        off = b.add(b.mul(k, self.i64(self.m)), i) if self.s.transpose_a else b.add(b.mul(i, self.i64(self.k)), k)
        return dt.cast(b, dt.load(b, self.at(self.s.a, self.a_dtype, off), self.a_dtype), self.a_dtype, self.ct)

    def c_ptr(self, i, j):
        return self.at(self.s.c, self.c_dtype, self.b.add(self.b.mul(i, self.i64(self.n)), j))

    def micro(self, rows: int, widths: list, i0, j0, panel_base, panel_width: int):
        """c[i0:i0+rows, j0:j0+sum(widths)] += a[i0:i0+rows, :] @ panel, accumulating in registers."""
        b, cg = self.b, self.cg
        offsets = [sum(widths[:v]) for v in range(len(widths))]
        c_ptrs = [[self.c_ptr(b.add(i0, self.i64(r)), b.add(j0, self.i64(o))) for o in offsets]
                  for r in range(rows)]
        init = [[dt.cast(b, dt.load(b, p, self.c_dtype, lanes=w), self.c_dtype, self.ct)
                 for p, w in zip(row, widths)] for row in c_ptrs]
        pre = b.block
        loop = cg.fn.append_basic_block("mk.k")
        done = cg.fn.append_basic_block("mk.done")
        b.branch(loop)
        b.position_at_end(loop)
        k = b.phi(dt.I64, name="k")
        k.add_incoming(self.i64(0), pre)
        accs = [[b.phi(v.type) for v in row] for row in init]
        for row, row_init in zip(accs, init):
            for phi, v in zip(row, row_init):
                phi.add_incoming(v, pre)
        panel_row = b.add(panel_base, b.mul(k, self.i64(panel_width)))
        bvecs = [b.load(self.at(self.packed, self.ct, b.add(panel_row, self.i64(o))),
                        typ=llir.VectorType(self.cty, w), align=ir.ITEMSIZE[self.ct]) for o, w in zip(offsets, widths)]
        new = []
        for r in range(rows):
            a = self.a_element(b.add(i0, self.i64(r)), k)
            splats = {w: self.splat(a, w) for w in set(widths)}
            new.append([cg.intrinsic("llvm.fma", acc.type, [splats[w], bv, acc])
                        for acc, bv, w in zip(accs[r], bvecs, widths)])
        k_next = b.add(k, self.i64(1))
        k.add_incoming(k_next, b.block)
        for row, row_new in zip(accs, new):
            for phi, v in zip(row, row_new):
                phi.add_incoming(v, b.block)
        b.cbranch(b.icmp_signed("<", k_next, self.i64(self.k)), loop, done)
        b.position_at_end(done)
        for row_ptrs, row_acc in zip(c_ptrs, new):  # the values after the last k, not the phis
            for p, acc in zip(row_ptrs, row_acc):
                dt.store(b, dt.cast(b, acc, self.ct, self.c_dtype), p, self.c_dtype)

    def column_chunk(self, widths, j0, panel_base, panel_width):
        """All rows of c against one panel: full row blocks in a loop, then the leftover rows."""
        rows = max(1, min(self.m, ACC_VECTORS // len(widths)))
        full = self.m - self.m % rows
        if full:
            with self.cg.for_range(0, full, rows, name="mi") as i0:
                self.micro(rows, widths, i0, j0, panel_base, panel_width)
        if self.m % rows:
            self.micro(self.m % rows, widths, self.i64(full), j0, panel_base, panel_width)

    def emit(self):
        b, nr = self.b, self.nr
        panels, tail = divmod(self.n, nr)
        if panels:
            with self.cg.for_range(0, panels, name="np") as p:
                j0, base = b.mul(p, self.i64(nr)), b.mul(p, self.i64(nr * self.k))
                self.pack_panel(j0, base, nr)
                self.column_chunk([self.lanes] * VECTORS_PER_ROW, j0, base, nr)
        if tail:
            j0, base = self.i64(panels * nr), self.i64(panels * nr * self.k)
            self.pack_panel(j0, base, tail)
            self.column_chunk(split_widths(tail, self.lanes), j0, base, tail)


def lower_gemm(cg, s: ir.Gemm, packed_ptr):
    GemmEmitter(cg, s, packed_ptr).emit()
