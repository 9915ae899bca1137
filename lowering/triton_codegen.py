"""Statements for the Triton lowering: a fully bound `ir.Kernel` -> the source of one `@triton.jit` function.

Shared and fragment tiles are register tensors (Triton places shared memory itself), padded to power-of-two shapes
(see triton_layout); local scalars are Python variables carried through loops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import ir
from ..errors import TilecLoweringError
from .triton_expr import TL_DTYPE, ExprLowering, ParallelScope, Val, cast, expand, unparen
from .triton_layout import const_int, tiles_needing_init
from .triton_tiles import lower_copy, lower_gemm, lower_reduce


@dataclass(frozen=True)
class Options:
    """How `lower` writes a kernel. descriptors: tile copies that fit the bulk tensor copy engine (TMA) go through
    tensor descriptors. persistent: one program per SM loops over the blocks (None: as the kernel's launch plan
    says). warp_specialize: Triton splits the persistent loop into producer and consumer warps."""
    descriptors: bool = True
    persistent: bool | None = None
    warp_specialize: bool = False

    def header(self) -> str:
        return (f"# lowered with descriptors={self.descriptors}, persistent={self.persistent}, "
                f"warp_specialize={self.warp_specialize}")


def launch_plan(kernel: ir.Kernel) -> ir.LaunchPlan:
    """The plan-launch pass's decisions, which the lowering follows (it makes none of its own)."""
    if kernel.launch is None:
        raise TilecLoweringError(f"{kernel.name}: the kernel has no launch plan; the Triton backend lowers kernels "
                                 f"specialized for a GPU target (kernel.specialize(dims, config, 'triton'), whose "
                                 f"plan-launch pass decides the launch)")
    return kernel.launch


def launch_grid(kernel: ir.Kernel) -> tuple:
    sizes = tuple(const_int(g) for g in kernel.grid)
    return sizes if launch_plan(kernel).block_order == "direct" else (math.prod(sizes),)


class KernelLowering(ExprLowering):
    def __init__(self, kernel: ir.Kernel, options: Options = Options()):
        super().__init__(kernel)
        self.plan = launch_plan(kernel)
        persistent = self.plan.persistent if options.persistent is None else options.persistent
        self.options = Options(options.descriptors, persistent, options.warp_specialize and persistent)
        self.need_init = tiles_needing_init(kernel)
        self.lines: list = []
        self.prologue: list = []  # tensor descriptors, made once per program ahead of every loop
        self.descriptors: dict = {}  # (buffer, block shape) -> descriptor name
        self.descriptor_blocks: dict = {}  # descriptor name -> block shape
        self.depth = 1
        self.loop_depth = 0  # For loops around the statement being lowered
        self.persistent_loop = None  # index of the persistent loop's line
        self.block_level_tile_load = False  # a tile load outside every loop of the block body

    def emit(self, line: str):
        self.lines.append("    " * self.depth + line)

    def source(self) -> str:
        k = self.kernel
        params = [self.ident(p.name) for p in k.params]
        name = self.fresh(k.name)
        if self.options.persistent:
            params.append("NUM_SMS: tl.constexpr")
        self.block_indices()
        self.body(k.body)
        if self.persistent_loop is not None and self.block_level_tile_load:
            # a tile loaded outside the inner loop of a flattened nest (attention's Q tile): Triton 3.9 fails to
            # lower it as a TMA load, and Triton 3.6 on an H200 computed wrong rows with it as a pointer load (flash
            # attention, 128 x 64 tiles, 21 of 65536 rows off; right with the loops apart, 2026-12-02). Such a kernel
            # keeps its loops apart
            self.lines[self.persistent_loop] = self.lines[self.persistent_loop].replace(", flatten=True", "")
        head = ["import triton", "import triton.language as tl", "", "",
                f"# tilec kernel {k.name}: {', '.join(f'{n}={v}' for n, v in k.bound)}", self.options.header(),
                "@triton.jit", f"def {name}({', '.join(params)}):"]
        return "\n".join(head + ["    " + line for line in self.prologue] + self.lines) + "\n"

    def descriptor(self, buf: ir.Buffer, shape: list, strides: list, block: list) -> str:
        """The name of a tensor descriptor for `buf` with this block shape, made in the prologue."""
        key = (buf.name, tuple(block))
        if key not in self.descriptors:
            name = self.descriptors[key] = self.fresh(f"{buf.name}_desc")
            self.descriptor_blocks[name] = list(block)
            self.prologue.append(f"{name} = tl.make_tensor_descriptor({self.ident(buf.name)}, shape={shape}, "
                                 f"strides={strides}, block_shape={block})")
        return self.descriptors[key]

    def block_indices(self):
        k, order, group_rows = self.kernel, self.plan.block_order, self.plan.group_rows
        sizes = [const_int(g) for g in k.grid]
        names = [self.ident(v.name) for v in k.block_vars]
        for v, n in zip(k.block_vars, sizes):
            self.ranges[v.name] = (0, n - 1)
            self.values[v.name] = Val(self.ident(v.name), frozenset(), "index")
        if self.options.persistent:
            # NUM_SMS programs stride over the blocks; Triton flattens this loop with the pipelined one inside, so
            # the next block's first loads overlap this block's last MMAs and its epilogue
            pid = self.fresh("block_id")
            ws = ", warp_specialize=True" if self.options.warp_specialize else ""
            self.persistent_loop = len(self.lines)  # flatten=True is taken back if the body rules it out
            self.emit(f"for {pid} in tl.range(tl.program_id(0), {math.prod(sizes)}, NUM_SMS, flatten=True{ws}):")
            self.depth += 1
            order = "flat" if order == "direct" else order
        elif order == "direct":
            for d, name in enumerate(names):
                self.emit(f"{name} = tl.program_id({d})")
            return
        else:
            pid = self.fresh("pid")
            self.emit(f"{pid} = tl.program_id(0)")
        if order == "flat":
            stride = 1
            for d, (name, n) in enumerate(zip(names, sizes)):
                step = f"{pid} // {stride}" if stride > 1 else pid
                self.emit(f"{name} = {step}" + (f" % {n}" if d < len(names) - 1 else ""))
                stride *= n
            return
        (bx, by), (gx, gy) = names, sizes
        self.emit(f"# grouped order: {group_rows} rows of blocks ({by}) sweep the columns ({bx}) together, for L2")
        group, first, rows = self.fresh("group"), self.fresh("first_row"), self.fresh("group_rows")
        self.emit(f"{group} = {pid} // {group_rows * gx}")
        self.emit(f"{first} = {group} * {group_rows}")
        self.emit(f"{rows} = tl.minimum({gy} - {first}, {group_rows})")
        self.emit(f"{by} = {first} + ({pid} % {group_rows * gx}) % {rows}")
        self.emit(f"{bx} = ({pid} % {group_rows * gx}) // {rows}")

    # ------------------------------------------------------------------------------------------ statements
    def body(self, stmts):
        before = len(self.lines)
        for s in stmts:
            self.loc = s.loc or self.loc
            getattr(self, "stmt_" + type(s).__name__.lower())(s)
        if len(self.lines) == before:
            self.emit("pass")

    def stmt_alloc(self, s: ir.Alloc):
        buf, name = s.buffer, self.ident(s.buffer.name)
        if buf.scope == "local":
            init = s.init if s.init is not None else ir.Const(0, buf.dtype)
            self.assign_scalar(name, self.expr(init), buf.dtype)
        elif buf.name in self.need_init:
            self.emit(f"{name} = tl.zeros({self.padding.tile_shape(buf.name)}, {TL_DTYPE[buf.dtype]})")

    def assign_scalar(self, name: str, v: Val, dtype: str):
        # typed from the start: a loop-carried value must keep one Triton type
        if v.const is not None:
            self.emit(f"{name} = tl.full((), {v.code}, {TL_DTYPE[dtype]})")
        else:
            self.emit(f"{name} = {cast(unparen(v.code), dtype)}")

    def stmt_let(self, s: ir.Let):
        v = self.expr(s.value)
        name = self.ident(s.var.name)
        self.emit(f"{name} = {unparen(v.code)}")
        self.values[s.var.name] = Val(name, v.axes, s.value.dtype)
        if self.par is None and (b := self.bounds(s.value)) is not None:
            self.ranges[s.var.name] = b

    def stmt_store(self, s: ir.Store, atomic: bool = False):
        buf = self.buffers[s.buffer]
        v = self.expr(s.value)
        if buf.scope == "local":
            self.store_scalar(buf, v)
        elif buf.scope == "global":
            self.store_global(buf, s.indices, v, atomic)
        else:
            self.store_tile(buf, s.indices, v)

    def stmt_atomicadd(self, s: ir.AtomicAdd):
        self.stmt_store(s, atomic=True)

    def store_scalar(self, buf, v: Val):
        name, cond = self.ident(buf.name), self.cond
        if v.axes:
            raise self.error(f"scalar '{buf.name}' is assigned a per-element value inside T.Parallel; reduce "
                             f"the tile with T.reduce_sum/max/min instead")
        if cond is None:
            self.assign_scalar(name, v, buf.dtype)
        elif cond.axes:
            raise self.error(f"scalar '{buf.name}' is assigned under an if whose condition differs between "
                             f"T.Parallel lanes; write a tile element instead, or reduce with T.reduce_*")
        else:
            value = unparen(v.code) if v.dtype == buf.dtype else cast(unparen(v.code), buf.dtype)
            self.emit(f"{name} = tl.where({cond.code}, {value}, {name})")

    def store_global(self, buf, indices, v: Val, atomic: bool):
        idx = [self.expr(i) for i in indices]
        highs = [self.highest(i) for i in indices]
        ptr, mask, axes = self.global_access(buf, idx, highs)
        value = unparen(v.code) if v.dtype == buf.dtype else cast(unparen(v.code), buf.dtype)
        need = v.axes | (self.cond.axes if self.cond else frozenset())
        ptr = self.cover(ptr, axes, need)  # the pointer must cover every lane of the value and the condition
        masks = [mask] + self.active_masks(need - axes)
        if self.cond is not None:
            masks.append(self.cond.code)
        mask = " & ".join(m for m in masks if m)
        call = "tl.atomic_add" if atomic else "tl.store"
        self.emit(f"{call}({ptr}, {value}" + (f", mask={mask})" if mask else ")"))

    def store_tile(self, buf, indices, v: Val):
        if self.par is None and not all(isinstance(i, ir.Const) for i in indices):
            raise self.error(f"tile '{buf.name}' is written one element at a time outside T.Parallel; write "
                             f"`for i, j in T.Parallel(...): {buf.name}[i, j] = ...`")
        dims = self.tile_dims(buf, indices)
        axes = [a for a in dims if a is not None]
        if not v.axes <= set(axes):
            raise self.error(f"'{buf.name}' is indexed by fewer loop variables than its value depends on: every "
                             f"lane would race to write one element; reduce with T.reduce_* instead")
        cond = self.cond
        if cond is not None and not cond.axes <= set(axes):
            raise self.error(f"'{buf.name}' is written under an if whose condition depends on a loop variable "
                             f"that does not index it: lanes would race to write one element")
        name, shape = self.ident(buf.name), self.padding.tile_shape(buf.name)
        code = unparen(v.code) if v.dtype == buf.dtype else cast(unparen(v.code), buf.dtype)
        sizes = [const_int(n) for n, a in zip(buf.shape, dims) if a is not None]
        partial = [a for k, a in enumerate(axes) if self.par.extents[a] < sizes[k]]
        if partial:  # the Parallel covers part of the tile: keep the rest
            if axes != list(range(len(self.par.shape))) or len(axes) < len(dims):
                raise self.error(f"a T.Parallel that covers only part of tile '{buf.name}' must index it with "
                                 f"all its loop variables, in order")
            mask = [f"({self.par.vars[a]} < {self.par.extents[a]})" for a in partial] + ([cond.code] if cond else [])
            self.emit(f"{name} = tl.where({' & '.join(mask)}, {code}, {name})")
            return
        if cond is not None:  # lanes where the condition fails keep the old element
            code = f"tl.where({cond.code}, {code}, {self.tile_in_parallel(buf, indices).code})"
            v = Val(code, frozenset(axes), buf.dtype)
        if not axes:  # a unit tile, e.g. m[0] = x for m of shape (1,)
            self.emit(f"{name} = tl.full({shape}, {code}, {TL_DTYPE[buf.dtype]})")
            return
        # to the tile's layout: the Parallel's shape on the tile's axes, unit dims dropped, dims in tile order
        rank = len(self.par.shape)
        if v.axes != set(axes):
            code = f"tl.broadcast_to({code}, {tuple(self.par.shape[a] if a in axes else 1 for a in range(rank))})"
        ordered = sorted(axes)
        if len(axes) < rank:
            code = f"tl.reshape({code}, {tuple(self.par.shape[a] for a in ordered)})"
        if ordered != axes:
            code = f"tl.permute({code}, {tuple(ordered.index(a) for a in axes)})"
        if len(axes) < len(dims):  # the unit dims indexed by 0
            code = f"tl.reshape({code}, {shape})"
        self.emit(f"{name} = {code}")

    def stmt_fill(self, s: ir.Fill):
        buf = self.buffers[s.buffer]
        shape, v = self.padding.tile_shape(buf.name), self.expr(s.value)
        value = v.code if v.const is not None else f"{cast(unparen(v.code), buf.dtype)}"
        fill = (f"tl.full({shape}, {value}, {TL_DTYPE[buf.dtype]})" if v.const is not None else
                f"tl.zeros({shape}, {TL_DTYPE[buf.dtype]}) + {value}")
        self.emit(f"{self.ident(buf.name)} = {fill}")

    def stmt_for(self, s: ir.For):
        start, stop, step = (unparen(self.expr(e).code) for e in (s.start, s.stop, s.step))
        lo, hi, st = self.bounds(s.start), self.bounds(s.stop), self.bounds(s.step)
        if lo is not None and hi is not None and st is not None and st[0] > 0:
            self.ranges[s.var.name] = (lo[0], hi[1] - 1)
        var = self.ident(s.var.name)
        self.values[s.var.name] = Val(var, frozenset(), "index")
        if s.kind == "pipelined":
            # tl.range hands num_stages to Triton's software pipeliner (multi-buffered async copies)
            self.emit(f"for {var} in tl.range({start}, {stop}, {step}, num_stages={const_int(s.num_stages)}):")
        else:
            self.emit(f"for {var} in range({start}, {stop}, {step}):")
        self.depth += 1
        self.loop_depth += 1
        self.body(s.body)
        self.loop_depth -= 1
        self.depth -= 1

    def stmt_if(self, s: ir.If):
        if self.par is not None:
            self.masked_if(s)
            return
        self.emit(f"if {unparen(self.expr(s.cond).code)}:")
        self.depth += 1
        self.body(s.then_body)
        self.depth -= 1
        if s.else_body:
            self.emit("else:")
            self.depth += 1
            self.body(s.else_body)
            self.depth -= 1

    def masked_if(self, s: ir.If):
        """An if inside T.Parallel picks lanes, not a path: both branches run under masks (stores masked, tile
        writes through tl.where, loads masked so that a failing lane reads no memory)."""
        c = self.expr(s.cond)
        name = self.fresh("cond")
        self.emit(f"{name} = {unparen(c.code)}")  # evaluated once: the branch may write what it reads
        self.masked_branch(s.then_body, Val(name, c.axes, "bool"))
        if s.else_body:
            self.masked_branch(s.else_body, Val(f"~{name}", c.axes, "bool"))

    def masked_branch(self, stmts, cond: Val):
        outer = self.cond
        if outer is not None:  # nested: both conditions hold
            name = self.fresh("mask")
            self.emit(f"{name} = {outer.code} & {cond.code}")
            cond = Val(name, outer.axes | cond.axes, "bool")
        self.cond = cond
        try:
            for s in stmts:
                self.loc = s.loc or self.loc
                getattr(self, "stmt_" + type(s).__name__.lower())(s)
        finally:
            self.cond = outer

    def stmt_parallel(self, s: ir.Parallel):
        shape = self.padding.parallel_shape(s)
        extents = tuple(const_int(e) for e in s.extents)
        scope = ParallelScope({v.name: a for a, v in enumerate(s.vars)}, shape, extents, {})
        for a, v in enumerate(s.vars):
            name = self.ident(v.name)
            self.emit(f"{name} = {expand(f'tl.arange(0, {shape[a]})', a, len(shape))}")
            scope.vars[a] = name
            self.values[v.name] = Val(name, frozenset([a]), "index")
            self.ranges[v.name] = (0, extents[a] - 1)
        self.par = scope
        try:
            self.body(s.body)
        finally:
            self.par = None

    def stmt_copy(self, s: ir.Copy):
        lower_copy(self, s)

    def stmt_gemm(self, s: ir.Gemm):
        lower_gemm(self, s)

    def stmt_reduce(self, s: ir.Reduce):
        lower_reduce(self, s)
