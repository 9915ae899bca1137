"""A fully bound `ir.Kernel` -> one LLVM function (llvmlite.ir), returned as LLVM IR text.

The function is `void tilec_<name>(ptr params..., i64 block_begin, i64 block_end, ptr scratch)`: it runs the
blocks with linear ids in [block_begin, block_end) one after another (block index 0 varies fastest). Shared and
fragment tiles live in `scratch`, a per-thread buffer the launcher allocates (64-byte aligned, `scratch_layout`
says where each tile sits); local scalars are allocas that mem2reg turns into registers.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from math import prod

from llvmlite import ir as llir

from tilec import ir
from tilec.errors import TilecLoweringError, where

from . import dtypes as dt
from . import expr as ex
from . import gemm, tiles

ALIGN = 64  # cache line and AVX-512 vector size


@dataclass(frozen=True)
class ScratchLayout:
    offsets: dict  # buffer name or ("gemm", i) -> byte offset in the per-thread scratch
    size: int


def const_int(e, what: str, loc=None) -> int:
    if not isinstance(e, ir.Const):
        raise TilecLoweringError(f"{where(loc)}{what} must be a compile-time constant once bound, got {e!r}")
    return int(e.value)


def shape_of(buf: ir.Buffer, loc=None) -> tuple:
    return tuple(const_int(d, f"dimension of '{buf.name}'", loc) for d in buf.shape)


def grid_sizes(kernel: ir.Kernel) -> tuple:
    return tuple(const_int(g, "grid extent", kernel.loc) for g in kernel.grid)


def symbol_name(kernel: ir.Kernel) -> str:
    return "tilec_" + re.sub(r"\W", "_", kernel.name)


def scratch_layout(kernel: ir.Kernel) -> ScratchLayout:
    """Byte offsets of the shared/fragment tiles and of each gemm's packed B panel. A pipelined shared tile keeps
    one copy: the CPU runs stages back to back (prefetching ahead) instead of overlapping them in hardware."""
    offsets, size = {}, 0

    def place(key, nbytes):
        nonlocal size
        offsets[key] = size
        size += -(-nbytes // ALIGN) * ALIGN

    buffers = kernel.buffers()
    for i, stmt in enumerate(ir.walk_stmts(kernel.body)):
        if isinstance(stmt, ir.Alloc) and stmt.buffer.scope in ("shared", "fragment"):
            buf = stmt.buffer
            place(buf.name, prod(shape_of(buf, stmt.loc)) * ir.ITEMSIZE[buf.dtype])
        elif isinstance(stmt, ir.Gemm):
            place(("gemm", i), gemm.packed_b_bytes(stmt, buffers))
    return ScratchLayout(offsets, max(size, ALIGN))


class KernelLowering:
    def __init__(self, kernel: ir.Kernel):
        self.kernel = kernel
        self.buffers = kernel.buffers()
        self.layout = scratch_layout(kernel)
        self.module = llir.Module(name=kernel.name)
        self.env: dict = {}  # scalar name -> register value
        self.ptrs: dict = {}  # buffer name -> base pointer
        self.strides: dict = {}  # buffer name -> element strides (row-major)
        self.shapes: dict = {}
        self._intrinsics: dict = {}
        self.gemm_scratch: dict = {}  # id(Gemm stmt) -> packed-B pointer
        self.scratch_regions: dict = {}  # id(base pointer of a tile or packed panel) -> its alias scope name

    # ------------------------------------------------------------------------------------------ entry point
    def lower(self) -> str:
        from llvmlite import binding as llvm

        self.module.triple = llvm.get_process_triple()
        k = self.kernel
        argtys = [dt.PTR] * len(k.params) + [dt.I64, dt.I64, dt.PTR]
        fn = llir.Function(self.module, llir.FunctionType(llir.VoidType(), argtys), symbol_name(k))
        fn.attributes.add("nounwind")
        for a in list(fn.args[:len(k.params)]) + [fn.args[-1]]:
            a.add_attribute("noalias")
        fn.args[-1].attributes.align = ALIGN
        self.fn = fn
        self.entry = fn.append_basic_block("entry")
        self.b = llir.IRBuilder(self.entry)
        for p, arg in zip(k.params, fn.args):
            self.register(p, arg, k.loc)
        scratch = fn.args[-1]
        for i, stmt in enumerate(ir.walk_stmts(k.body)):
            if isinstance(stmt, ir.Alloc) and stmt.buffer.scope in ("shared", "fragment"):
                ptr = self.byte_offset(scratch, self.layout.offsets[stmt.buffer.name])
                self.register(stmt.buffer, ptr, stmt.loc)
                self.scratch_regions[id(ptr)] = f"tile.{stmt.buffer.name}"
            elif isinstance(stmt, ir.Gemm):
                ptr = self.gemm_scratch[id(stmt)] = self.byte_offset(scratch, self.layout.offsets[("gemm", i)])
                self.scratch_regions[id(ptr)] = f"gemm.{i}"
        begin, end = fn.args[len(k.params)], fn.args[len(k.params) + 1]
        with self.for_range(begin, end, name="block") as bid:
            rest = bid
            sizes = grid_sizes(k)
            for d, (var, n) in enumerate(zip(k.block_vars, sizes)):
                last = d == len(sizes) - 1
                self.env[var.name] = rest if last else self.b.urem(rest, llir.Constant(dt.I64, n))
                if not last:
                    rest = self.b.udiv(rest, llir.Constant(dt.I64, n))
            self.body(k.body)
        self.b.ret_void()
        self.tag_scratch_accesses()
        return str(self.module)

    def tag_scratch_accesses(self):
        """Tiles sit in disjoint parts of the one scratch buffer, which alias analysis cannot see: a loop that
        reads one tile and writes another (x[i, j] = exp(x[i, j] - m[i])) would stay scalar. Each tile gets an
        alias scope, and every load/store through it says it aliases no other tile."""
        names = sorted(set(self.scratch_regions.values()))
        if len(names) < 2:
            return
        m = self.module
        domain = m.add_metadata([llir.MetaDataString(m, f"{symbol_name(self.kernel)}.scratch")])
        scopes = {n: m.add_metadata([llir.MetaDataString(m, f"{symbol_name(self.kernel)}.{n}"), domain])
                  for n in names}
        own = {n: m.add_metadata([scopes[n]]) for n in names}
        others = {n: m.add_metadata([scopes[o] for o in names if o != n]) for n in names}
        for block in self.fn.blocks:
            for instr in block.instructions:
                if isinstance(instr, (llir.LoadInstr, llir.StoreInstr)):
                    name = self.scratch_region(instr.operands[-1])  # the address operand
                    if name is not None:
                        instr.set_metadata("alias.scope", own[name])
                        instr.set_metadata("noalias", others[name])

    def scratch_region(self, ptr):
        """The scope name of the tile `ptr` points into (following GEPs to its base), or None."""
        while id(ptr) not in self.scratch_regions:
            if not isinstance(ptr, llir.GEPInstr):
                return None
            ptr = ptr.pointer
        return self.scratch_regions[id(ptr)]

    def register(self, buf: ir.Buffer, ptr, loc):
        shape = shape_of(buf, loc)
        self.ptrs[buf.name], self.shapes[buf.name] = ptr, shape
        self.strides[buf.name] = tuple(prod(shape[i + 1:]) for i in range(len(shape)))

    def byte_offset(self, ptr, nbytes: int):
        return self.b.gep(ptr, [llir.Constant(dt.I64, nbytes)], source_etype=dt.I8, inbounds=True)

    # ------------------------------------------------------------------------------------------ helpers
    def intrinsic(self, name: str, ret, args, overload=None):
        """Call an overloaded LLVM intrinsic; its name gets the type suffix of `overload` (default: `ret`)."""
        ty = overload or ret
        full = f"{name}.{_type_suffix(ty)}" if ty is not None else name
        fn = self._intrinsics.get(full)
        if fn is None:
            fn = llir.Function(self.module, llir.FunctionType(ret, [a.type for a in args]), full)
            self._intrinsics[full] = fn
        return self.b.call(fn, args)

    def index(self, value):
        """An index value as i64 (indices loaded from int32 tensors arrive narrower)."""
        return value if value.type.width == 64 else self.b.sext(value, dt.I64)

    def element_ptr(self, name: str, indices):
        """Pointer to element `indices` (i64 values) of a buffer."""
        base = self.ptrs[name]
        if not indices:
            return base
        offset = None
        for idx, stride in zip(indices, self.strides[name]):
            term = self.index(idx)
            if stride != 1:
                term = self.b.mul(term, llir.Constant(dt.I64, stride))
            offset = term if offset is None else self.b.add(offset, term)
        return self.b.gep(base, [offset], source_etype=dt.mem_type(self.buffers[name].dtype), inbounds=True)

    def global_access(self, name: str, index_values):
        """(pointer, in-bounds flag or None) for one element of a global tensor. Global element accesses are
        bounds-checked (the IR's contract): the pointer is built from indices clamped into the tensor, so a
        masked-off lane never touches memory outside it; the flag says whether the real index was inside."""
        if self.buffers[name].scope != "global" or not index_values:
            return self.element_ptr(name, index_values), None
        b, ok, clamped = self.b, None, []
        for idx, dim in zip(index_values, self.shapes[name]):
            idx = self.index(idx)
            top = llir.Constant(dt.I64, max(dim - 1, 0))
            inside = b.icmp_unsigned("<", idx, llir.Constant(dt.I64, dim))  # unsigned: negatives are huge
            ok = inside if ok is None else b.and_(ok, inside)
            lo = b.select(b.icmp_signed("<", idx, llir.Constant(dt.I64, 0)), llir.Constant(dt.I64, 0), idx)
            clamped.append(b.select(b.icmp_signed(">", lo, top), top, lo))
        return self.element_ptr(name, clamped), ok

    def load_element(self, name: str, index_values):
        dtype = self.buffers[name].dtype
        ptr, ok = self.global_access(name, index_values)
        if ok is None:
            return dt.load(self.b, ptr, dtype)
        if 0 in self.shapes[name]:  # an empty tensor has no element to read even when clamped
            return dt.zero(dtype)
        return self.b.select(ok, dt.load(self.b, ptr, dtype), dt.zero(dtype))

    def store_element(self, name: str, index_values, emit_store):
        ptr, ok = self.global_access(name, index_values)
        if ok is None:
            emit_store(ptr)
        else:
            with self.b.if_then(ok):
                emit_store(ptr)

    def i64(self, value):
        return value if isinstance(value, llir.Value) else llir.Constant(dt.I64, value)

    @contextlib.contextmanager
    def for_range(self, start, stop, step=1, name="i"):
        """`for iv in range(start, stop, step)` as an LLVM loop; a negative step must be a Python int."""
        b = self.b
        start, stop, step_v = self.i64(start), self.i64(stop), self.i64(step)
        pre = b.block
        header = self.fn.append_basic_block(f"{name}.head")
        body = self.fn.append_basic_block(f"{name}.body")
        exit_ = self.fn.append_basic_block(f"{name}.exit")
        b.branch(header)
        b.position_at_end(header)
        iv = b.phi(dt.I64, name=name)
        iv.add_incoming(start, pre)
        down = isinstance(step, int) and step < 0
        b.cbranch(b.icmp_signed(">" if down else "<", iv, stop), body, exit_)
        b.position_at_end(body)
        yield iv
        iv.add_incoming(b.add(iv, step_v), b.block)
        b.branch(header)
        self.fn.blocks.remove(exit_)  # keep blocks in program order: the exit after the body's blocks
        self.fn.blocks.append(exit_)
        b.position_at_end(exit_)

    def local_alloca(self, buf: ir.Buffer):
        with self.b.goto_block(self.entry):
            self.b.position_at_start(self.entry)
            slot = self.b.alloca(dt.mem_type(buf.dtype), name=buf.name)
        return slot

    # ------------------------------------------------------------------------------------------ statements
    def body(self, stmts):
        for stmt in stmts:
            self.stmt(stmt)

    def stmt(self, s):
        b = self.b
        if isinstance(s, ir.Alloc):
            if s.buffer.scope == "local":
                slot = self.local_alloca(s.buffer)
                self.ptrs[s.buffer.name], self.shapes[s.buffer.name], self.strides[s.buffer.name] = slot, (), ()
                init = ex.emit(self, s.init) if s.init is not None else dt.zero(s.buffer.dtype)
                dt.store(b, init, slot, s.buffer.dtype)
        elif isinstance(s, ir.Let):
            self.env[s.var.name] = ex.emit(self, s.value)
        elif isinstance(s, ir.Store):
            value = ex.emit(self, s.value)
            self.store_element(s.buffer, [ex.emit(self, i) for i in s.indices],
                               lambda ptr: dt.store(b, value, ptr, self.buffers[s.buffer].dtype))
        elif isinstance(s, ir.AtomicAdd):
            self.atomic_add(s)
        elif isinstance(s, ir.Copy):
            tiles.lower_copy(self, s)
        elif isinstance(s, ir.Fill):
            tiles.lower_fill(self, s)
        elif isinstance(s, ir.Reduce):
            tiles.lower_reduce(self, s)
        elif isinstance(s, ir.Gemm):
            gemm.lower_gemm(self, s, self.gemm_scratch[id(s)])
        elif isinstance(s, ir.For):
            self.lower_for(s)
        elif isinstance(s, ir.Parallel):
            self.lower_parallel(s.vars, s.extents, s.body)
        elif isinstance(s, ir.If):
            cond = ex.emit(self, s.cond)
            if s.else_body:
                with b.if_else(cond) as (then, otherwise):
                    with then:
                        self.body(s.then_body)
                    with otherwise:
                        self.body(s.else_body)
            else:
                with b.if_then(cond):
                    self.body(s.then_body)
        else:
            raise TilecLoweringError(f"{where(getattr(s, 'loc', None))}LLVM backend: unknown statement {s!r}")

    def atomic_add(self, s: ir.AtomicAdd):
        dtype = self.buffers[s.buffer].dtype
        if dtype in ("bfloat16", "bool"):
            raise TilecLoweringError(f"{where(s.loc)}T.atomic_add on a {dtype} tensor is not supported by the LLVM "
                                     f"backend; accumulate into a float32 or float16 tensor")
        value = dt.to_memory(self.b, ex.emit(self, s.value), dtype)
        self.store_element(s.buffer, [ex.emit(self, i) for i in s.indices],
                           lambda ptr: self.b.atomic_rmw("fadd" if dt.is_float(dtype) else "add", ptr, value,
                                                         "monotonic"))

    def lower_for(self, s: ir.For):
        step = s.step.value if isinstance(s.step, ir.Const) else ex.emit(self, s.step)
        start, stop = ex.emit(self, s.start), ex.emit(self, s.stop)
        stages = const_int(s.num_stages, "num_stages", s.loc) if s.kind == "pipelined" else 1
        producers = [x for x, st in zip(s.body, s.stages) if st == 0] if stages > 1 else []
        with self.for_range(start, stop, step, name=s.var.name) as iv:
            if producers:  # the software-pipeline's stage 0: fetch the copies' rows `stages - 1` iterations ahead
                ahead = self.b.add(iv, self.b.mul(self.i64(step), self.i64(stages - 1)))
                in_range = self.b.icmp_signed("<" if not (isinstance(step, int) and step < 0) else ">", ahead, stop)
                with self.b.if_then(in_range, likely=True):
                    self.env[s.var.name] = ahead
                    for copy in producers:
                        tiles.prefetch_source(self, copy)
            self.env[s.var.name] = iv
            self.body(s.body)

    def lower_parallel(self, vars_, extents, body):
        if not vars_:
            self.body(body)
            return
        with self.for_range(0, ex.emit(self, extents[0]), name=vars_[0].name) as iv:
            self.env[vars_[0].name] = iv
            self.lower_parallel(vars_[1:], extents[1:], body)


def _type_suffix(ty) -> str:
    if isinstance(ty, llir.VectorType):
        return f"v{ty.count}{_type_suffix(ty.element)}"
    if isinstance(ty, llir.PointerType):
        return "p0"
    if isinstance(ty, llir.HalfType):
        return "f16"
    if isinstance(ty, llir.FloatType):
        return "f32"
    if isinstance(ty, llir.DoubleType):
        return "f64"
    return f"i{ty.width}"


def lower(kernel: ir.Kernel) -> str:
    """LLVM IR text of a fully bound kernel (from `TileKernel.specialize(dims, config, "llvm")`)."""
    return KernelLowering(kernel).lower()
