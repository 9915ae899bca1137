"""Whole-tile statements for the Triton lowering: Copy (TMA tensor descriptors where the copy fits the engine, else
tl.load/tl.store with pointer arithmetic and masks, or a register assignment), Gemm (tl.dot) and Reduce
(tl.max/tl.sum/tl.min). Each takes the `KernelLowering` `lw`."""
from __future__ import annotations

import math

from .. import ir
from .triton_expr import TL_DTYPE, Val, cast, expand, literal, row_major_strides, unparen
from .triton_layout import TILE_SCOPES, const_int, non_unit

# The bulk tensor copy engine's limits (CUDA Driver API, cuTensorMapEncodeTiled): rank <= 5, each box dim <= 256,
# global strides multiples of 16 bytes; Triton also wants >= 16 bytes in the box's contiguous dim.
TMA_MAX_RANK, TMA_MAX_BOX, TMA_ALIGN = 5, 256, 16
REDUCE_FN = {"max": "tl.max", "sum": "tl.sum", "min": "tl.min"}
COMBINE = {"max": "tl.maximum({}, {})", "sum": "{} + {}", "min": "tl.minimum({}, {})"}


def lower_copy(lw, s: ir.Copy):
    src, dst = lw.buffers[s.src.buffer], lw.buffers[s.dst.buffer]
    zero_pad = s.pad is None or (isinstance(s.pad, ir.Const) and s.pad.value == 0)
    if src.scope == "global" and dst.scope in TILE_SCOPES and zero_pad and (desc := descriptor_for(lw, s.src, s.dst)):
        # TMA fills out-of-bounds elements with zeros: the pointer path's masked load with other=0
        lw.block_level_tile_load |= lw.loop_depth == 0
        value = f"{desc}.load([{', '.join(unparen(lw.expr(o).code) for o in s.src.origin)}])"
        shape = lw.padding.tile_shape(dst.name)
        if len(s.src.origin) != len(shape):
            value = f"tl.reshape({value}, {shape})"
        lw.emit(f"{lw.ident(dst.name)} = {value if src.dtype == dst.dtype else cast(value, dst.dtype)}")
    elif src.scope in TILE_SCOPES and dst.scope == "global" and (desc := descriptor_for(lw, s.dst, s.src)):
        # TMA clips the out-of-bounds part of the box: the pointer path's masked store
        value = lw.ident(src.name) if src.dtype == dst.dtype else cast(lw.ident(src.name), dst.dtype)
        block = lw.descriptor_blocks[desc]
        if len(block) != len(lw.padding.tile_shape(src.name)):
            value = f"tl.reshape({value}, {block})"
        lw.emit(f"{desc}.store([{', '.join(unparen(lw.expr(o).code) for o in s.dst.origin)}], {value})")
    elif src.scope == "global" and dst.scope in TILE_SCOPES:
        lw.block_level_tile_load |= lw.loop_depth == 0
        ptr, mask, active, whole = tile_pointers(lw, s.src, s.dst)
        # masked-off lanes get pad (or 0: padded K lanes then add nothing to a tl.dot)
        other = unparen(lw.expr(s.pad).code) if s.pad is not None else literal(0, src.dtype)
        value = f"tl.load({ptr}, mask={mask}, other={other})" if mask else f"tl.load({ptr})"
        if src.dtype != dst.dtype:
            value = cast(value, dst.dtype)
        name = lw.ident(dst.name)
        lw.emit(f"{name} = {value}" if whole else f"{name} = tl.where({active}, {value}, {name})")
    elif src.scope in TILE_SCOPES and dst.scope == "global":
        ptr, mask, _, _ = tile_pointers(lw, s.dst, s.src)
        value = lw.ident(src.name) if src.dtype == dst.dtype else cast(lw.ident(src.name), dst.dtype)
        lw.emit(f"tl.store({ptr}, {value}" + (f", mask={mask})" if mask else ")"))
    elif src.scope in TILE_SCOPES and dst.scope in TILE_SCOPES:
        copy_tile_to_tile(lw, s)
    else:
        raise lw.error(f"T.copy from '{src.name}' ({src.scope}) to '{dst.name}' ({dst.scope}) is not supported; "
                       f"copy global -> tile -> global")


def paired_axes(lw, g: ir.Region, t: ir.Region) -> list:
    """(global dim, tile dim) pairs of a copy's two regions."""
    ga, ta = list(g.axes), list(t.axes)
    if len(ga) != len(ta):  # one side spelled out unit dims the other left implicit
        ga = [d for d in ga if g.extents[d] != ir.index(1)]
        ta = [d for d in ta if t.extents[d] != ir.index(1)]
    if len(ga) != len(ta):
        raise lw.error(f"T.copy between '{g.buffer}' and '{t.buffer}': the regions have different ranks "
                       f"({len(ga)} vs {len(ta)} non-unit dims); slice both sides to the same shape")
    return list(zip(ga, ta))


def descriptor_for(lw, g: ir.Region, t: ir.Region):
    """The name of a tensor descriptor that copies whole tile region `t` to or from global region `g`, or None
    where the copy does not fit TMA: the tile's dims must map in order onto the tensor's trailing dims, and the tile
    must need no padding (TMA moves the whole box; padded lanes would reach memory)."""
    gbuf, tbuf = lw.buffers[g.buffer], lw.buffers[t.buffer]
    if not lw.options.descriptors or gbuf.dtype == "bool":
        return None
    dims, gshape = [const_int(n) for n in tbuf.shape], [const_int(n) for n in gbuf.shape]
    whole = all(o == ir.index(0) for o in t.origin) and tuple(t.extents) == tuple(tbuf.shape)
    if not whole or tuple(dims) != lw.padding.tile_shape(tbuf.name) or len(gshape) > TMA_MAX_RANK:
        return None
    pairs = paired_axes(lw, g, t)
    g_axes, t_axes = [d for d, _ in pairs], [k for _, k in pairs]
    rank = len(gshape)
    if g_axes != list(range(rank - len(pairs), rank)) or t_axes != sorted(t_axes):
        return None
    if any(n != 1 for k, n in enumerate(dims) if k not in t_axes):
        return None
    block = [1] * (rank - len(pairs)) + [dims[k] for k in t_axes]
    if any(not isinstance(e, ir.Const) or const_int(e) != n for e, n in zip(g.extents, block)):
        return None
    if any(b >= 2 * n for b, n in zip(block, gshape)):
        # a box at least twice the tensor is mostly out of bounds, and TMA's zero fill of those rows is slow: a GEMM
        # with M=16 on 256x32 tiles ran 106 us with descriptors and 43 us with masked pointer loads (H200, Triton
        # 3.6, N=K=4096; 128x64 tiles 37 us against 24; results/h200/skinny_tma_2026-12-02.json)
        return None
    size = ir.ITEMSIZE[gbuf.dtype]
    strides = row_major_strides(gshape)
    if (max(block) > TMA_MAX_BOX or block[-1] * size < TMA_ALIGN
            or any(st * size % TMA_ALIGN for st in strides[:-1])):
        return None
    return lw.descriptor(gbuf, gshape, strides, block)


def tile_pointers(lw, g: ir.Region, t: ir.Region) -> tuple:
    """Pointers and masks for the elements of tile region `t` in global region `g`: (ptr, mask or None, mask of
    the tile lanes the region covers or None, whether the region is the whole tile)."""
    gbuf, tbuf = lw.buffers[g.buffer], lw.buffers[t.buffer]
    shape = lw.padding.tile_shape(tbuf.name)
    dims = [const_int(n) for n in tbuf.shape]
    if not all(isinstance(e, ir.Const) for e in (*t.origin, *t.extents)):
        raise lw.error(f"the region of tile '{tbuf.name}' in T.copy must have constant bounds")
    t_origin, t_ext = [int(e.value) for e in t.origin], [int(e.value) for e in t.extents]
    pairs = dict(paired_axes(lw, g, t))
    rank = len(shape)
    lanes, active = {}, []
    for k in range(rank):
        lo, hi = t_origin[k], t_origin[k] + t_ext[k]
        if k in pairs.values() or (lo, hi) != (0, shape[k]):
            lanes[k] = lw.fresh(f"{tbuf.name}_i{k}")
            lw.emit(f"{lanes[k]} = {expand(f'tl.arange(0, {shape[k]})', k, rank)}")
        if (lo, hi) != (0, shape[k]):
            active += [f"({lanes[k]} >= {lo})"] * (lo > 0) + [f"({lanes[k]} < {hi})"] * (hi < shape[k])
    indices, highs, varies = [], [], []
    for d, origin in enumerate(g.origin):
        ov = lw.expr(origin)
        ob = lw.bounds(origin)
        k = next((k for gd, k in pairs.items() if gd == d), None)
        varies.append(k is not None)
        if k is None:
            indices.append(ov)
            highs.append(ob[1] if ob else None)
            continue
        lane = lanes[k] if t_origin[k] == 0 else f"({lanes[k]} - {t_origin[k]})"
        code = lane if ov.const == 0 else f"({ov.code} + {lane})"
        indices.append(Val(code, frozenset(), "index"))
        # the largest lane that reaches memory: the region's last one when masked, else the padded last one
        last = t_ext[k] - 1 if (t_origin[k], t_origin[k] + t_ext[k]) != (0, shape[k]) else shape[k] - 1
        highs.append(ob[1] + last if ob else None)
    ptr, gmask, _ = lw.global_access(gbuf, indices, highs, varies)
    if any(shape[k] > 1 and k not in pairs.values() for k in range(rank)) or not pairs:
        ptr = f"tl.broadcast_to({ptr}, {shape})"
    mask = " & ".join(([gmask] if gmask else []) + active) or None
    whole = t_origin == [0] * rank and t_ext == dims
    return ptr, mask, " & ".join(active) or None, whole


def copy_tile_to_tile(lw, s: ir.Copy):
    src, dst = lw.buffers[s.src.buffer], lw.buffers[s.dst.buffer]
    for r, buf in ((s.src, src), (s.dst, dst)):
        if any(o != ir.index(0) for o in r.origin) or tuple(r.extents) != tuple(buf.shape):
            raise lw.error(f"T.copy between tiles copies whole tiles; '{buf.name}' is sliced here (registers "
                           f"cannot be sliced): use T.Parallel with index arithmetic on a global tensor instead")
    sdims, ddims = [const_int(n) for n in src.shape], [const_int(n) for n in dst.shape]
    sshape, dshape = lw.padding.tile_shape(src.name), lw.padding.tile_shape(dst.name)
    if [sdims[d] for d in non_unit(sdims)] != [ddims[d] for d in non_unit(ddims)]:
        raise lw.error(f"T.copy from tile '{src.name}' {tuple(sdims)} to tile '{dst.name}' {tuple(ddims)}: the "
                       f"shapes differ beyond unit dims")
    code = lw.ident(src.name)
    if src.dtype != dst.dtype:
        code = cast(code, dst.dtype)
    if sshape != dshape:
        if [n for n in sshape if n != 1] != [n for n in dshape if n != 1]:
            raise lw.error(f"T.copy from tile '{src.name}' to '{dst.name}': their padded register shapes "
                           f"{sshape} and {dshape} cannot be reshaped into each other; use equal tile shapes")
        code = f"tl.reshape({code}, {dshape})"
    lw.emit(f"{lw.ident(dst.name)} = {code}")


def lane_mask(dim: int, padded: tuple, logical: int) -> str:
    """`tl.where`-ready mask of the lanes < logical along `dim` of a tile with padded shape `padded`."""
    return f"({expand(f'tl.arange(0, {padded[dim]})', dim, len(padded))} < {logical})"


def lower_gemm(lw, s: ir.Gemm):
    a, b, c = (lw.buffers[n] for n in (s.a, s.b, s.c))
    k_dim_a, k_dim_b = (0 if s.transpose_a else 1), (1 if s.transpose_b else 0)
    in_dtype = ir.promote(a.dtype, b.dtype)
    operands = []
    for buf, k_dim, trans in ((a, k_dim_a, s.transpose_a), (b, k_dim_b, s.transpose_b)):
        code = lw.ident(buf.name)
        shape = lw.padding.tile_shape(buf.name)
        k = const_int(buf.shape[k_dim])
        if k < shape[k_dim]:  # padded K lanes may hold anything: zero them so they add nothing
            code = f"tl.where({lane_mask(k_dim, shape, k)}, {code}, {literal(0, buf.dtype)})"
        if buf.dtype != in_dtype:
            code = cast(code, in_dtype)
        operands.append(f"tl.trans({code})" if trans else code)
    acc = lw.ident(c.name)
    if in_dtype == "float64":
        # Triton 3.6's tl.dot rejects fp64 operands (semantic.dot asserts; seen on an H200, 2026-12-02): an explicit
        # broadcast product summed over K, on the CUDA cores like any exact dot. Its [M, K, N] product lives in
        # registers, so fp64 GEMMs want small tiles (ops.gemm picks them)
        product = f"tl.sum({operands[0]}[:, :, None] * {operands[1]}[None, :, :], axis=1)"
        total = f"{acc} + {product}"
        lw.emit(f"{acc} = {total if c.dtype == 'float64' else cast(total, c.dtype)}")
        return
    # fp32 inputs: exact fp32 products (not TF32), so results match a float32 reference
    precise = ', input_precision="ieee"' if in_dtype == "float32" else ""
    accumulate_in_place = ((c.dtype == "float32" and in_dtype in ("float16", "bfloat16", "float32"))
                           or (c.dtype == "int32" and in_dtype == "int8"))
    if accumulate_in_place:
        lw.emit(f"{acc} = tl.dot({operands[0]}, {operands[1]}, {acc}{precise})")
    else:
        lw.emit(f"{acc} = {cast(f'{acc} + tl.dot({operands[0]}, {operands[1]}{precise})', c.dtype)}")


def lower_reduce(lw, s: ir.Reduce):
    src, dst = lw.buffers[s.src], lw.buffers[s.dst]
    shape, dshape = lw.padding.tile_shape(src.name), lw.padding.tile_shape(dst.name)
    n = const_int(src.shape[s.dim])
    code = lw.ident(src.name)
    if src.dtype != dst.dtype:
        code = cast(code, dst.dtype)
    if n < shape[s.dim]:  # padded lanes must not count: give them the reduction's identity
        code = f"tl.where({lane_mask(s.dim, shape, n)}, {code}, {identity(s.op, dst.dtype)})"
    red = f"{REDUCE_FN[s.op]}({code}, axis={s.dim})"
    kept = tuple(shape[d] for d in range(len(shape)) if d != s.dim)
    if kept != dshape:
        if math.prod(kept) != 1:
            raise lw.error(f"T.reduce_{s.op} of '{src.name}' {shape} along dim {s.dim} gives shape {kept}, which "
                           f"does not fit '{dst.name}' {dshape}")
        red = f"tl.zeros({dshape}, {TL_DTYPE[dst.dtype]}) + {red}"
    name = lw.ident(dst.name)
    if not s.clear:
        red = COMBINE[s.op].format(name, red)
    lw.emit(f"{name} = {cast(red, dst.dtype)}")


def identity(op: str, dtype: str) -> str:
    if op == "sum":
        return literal(0, dtype)
    if ir.is_float(dtype):
        return literal(-math.inf if op == "max" else math.inf, dtype)
    bits = 8 * ir.ITEMSIZE[dtype]
    return str(-(2 ** (bits - 1)) if op == "max" else 2 ** (bits - 1) - 1)
