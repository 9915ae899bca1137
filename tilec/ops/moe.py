"""Mixture-of-experts building blocks: a grouped GEMM over rows sorted by expert, and the permute / unpermute that
sort tokens into expert order and combine the expert outputs back with the router weights.

grouped_gemm runs a tile schedule: one row of `Sched` per (expert, block of block_m rows) tile, holding
(expert, first row, end row), made on the host for NumPy and by a kernel on the device for torch (no sync).
Empty experts get no tiles. A tile's last block may run past its expert's end into
the next expert's rows: those rows are computed (with the wrong weights) but must not be stored, so the store sits
under an `if` inside T.Parallel (a masked store on Triton).
"""
import functools

import numpy as np

import tilec
import tilec.language as T

from ..settings import settings
from . import _host
from ._host import backend_for, cdiv, even_part


@functools.cache
def grouped_gemm_kernel(dtype: str):
    @tilec.kernel
    def grouped_gemm_fwd(X: T.Tensor[("M", "K"), dtype], W: T.Tensor[("E", "K", "N"), dtype],
                         Sched: T.Tensor[("NT", 3), "int32"], Y: T.Tensor[("M", "N"), dtype], *,
                         block_m: int = 64, block_n: int = 64, block_k: int = 32, num_stages: int = 2,
                         spare_rows: bool = False):
        with T.Kernel(T.ceildiv(N, block_n), NT) as (bx, tile):
            e = Sched[tile, 0]
            r0 = Sched[tile, 1]
            r1 = Sched[tile, 2]
            a = T.alloc_shared((block_m, block_k), dtype)
            b = T.alloc_shared((block_k, block_n), dtype)
            acc = T.alloc_fragment((block_m, block_n), "float32")
            T.clear(acc)
            # a schedule built on the GPU has spare rows (r0 = r1): their loop runs once (never zero times, which a
            # flattened persistent loop handles less surely) and their store is masked
            # (a host-made schedule has none: its loop length stays a constant the compiler can unroll around)
            steps = T.max(T.ceildiv(K, block_k) * T.min(T.max(r1 - r0, 0), 1), 1) if spare_rows else T.ceildiv(
                K, block_k)
            for kb in T.Pipelined(steps, num_stages=num_stages):
                T.copy(X[r0, kb * block_k], a)
                T.copy(W[e, kb * block_k, bx * block_n], b)
                T.gemm(a, b, acc)
            for i, j in T.Parallel(block_m, block_n):
                if r0 + i < r1:  # rows past this expert's end are the next expert's, or nobody's
                    Y[r0 + i, bx * block_n + j] = acc[i, j]

    return grouped_gemm_fwd


@functools.cache
def tile_schedule_kernel():
    @tilec.kernel
    def moe_tile_schedule(Offsets: T.Tensor[("E",), "int32"], Main: T.Tensor[("NM", 3), "int32"],
                          Rest: T.Tensor[("NR", 3), "int32"], *, block_m: int = 64, rows: int = 0):
        """Sched rows (expert, first row, end row) per block_m rows of each expert, in order: the first NM in Main,
        the others in Rest, then spare rows (E-1, end, end) where end is the last expert's end row (the rows past
        it belong to no expert). Offsets are clipped to [previous end, rows]: unchecked ones still give at most
        NM + NR - 1 tiles inside the rows when NM = ceil(rows / block_m) and NR = E, so Rest's last row is always
        spare (moe_zero_rows reads end there)."""
        with T.Kernel(1) as _:
            n = T.alloc_var("int32")  # rows written so far
            start = T.alloc_var("int32")
            n = 0
            start = 0
            for e in T.serial(E):
                end = T.max(T.min(Offsets[e], rows), start)
                for t in T.serial(T.ceildiv(end - start, block_m)):
                    if n < NM:
                        Main[n, 0] = e
                        Main[n, 1] = start + t * block_m
                        Main[n, 2] = end
                    else:
                        Rest[n - NM, 0] = e
                        Rest[n - NM, 1] = start + t * block_m
                        Rest[n - NM, 2] = end
                    n = n + 1
                start = end
            for t in T.serial(T.min(n, NM), NM):
                Main[t, 0] = E - 1
                Main[t, 1] = start
                Main[t, 2] = start
            for t in T.serial(T.max(n - NM, 0), NR):
                Rest[t, 0] = E - 1
                Rest[t, 1] = start
                Rest[t, 2] = start

    return moe_tile_schedule


@functools.cache
def zero_rows_kernel(dtype: str):
    @tilec.kernel
    def moe_zero_rows(Rest: T.Tensor[("NR", 3), "int32"], Y: T.Tensor[("M", "N"), dtype], *, block_r: int = 32,
                      block_n: int = 256):
        """Y[r, :] = 0 for r >= Rest[NR-1, 1], the end of the rows the experts cover (a spare schedule row)."""
        with T.Kernel(T.ceildiv(M, block_r)) as by:
            end = Rest[NR - 1, 1]
            if by * block_r + block_r > end:  # blocks of covered rows (usually all) leave at once
                for c in T.serial(T.ceildiv(N, block_n)):
                    for i, j in T.Parallel(block_r, block_n):
                        if by * block_r + i >= end:
                            Y[by * block_r + i, c * block_n + j] = 0

    return moe_zero_rows


@functools.cache
def gather_rows_kernel(dtype: str):
    @tilec.kernel
    def moe_gather_rows(X: T.Tensor[("S", "H"), dtype], Src: T.Tensor[("R",), "int32"],
                        Out: T.Tensor[("R", "H"), dtype], *, block_r: int = 16, block_h: int = 128):
        """Out[r, :] = X[Src[r], :]."""
        with T.Kernel(T.ceildiv(H, block_h), T.ceildiv(R, block_r)) as (bx, by):
            src = T.alloc_fragment((block_r,), "int32")
            rows = T.alloc_shared((block_r, block_h), dtype)
            T.copy(Src[by * block_r], src)  # lanes past R read 0: a valid row, never stored
            for i, j in T.Parallel(block_r, block_h):
                rows[i, j] = X[src[i], T.min(bx * block_h + j, H - 1)]
            T.copy(rows, Out[by * block_r, bx * block_h])

    return moe_gather_rows


@functools.cache
def combine_rows_kernel(dtype: str):
    @tilec.kernel
    def moe_combine_rows(Y: T.Tensor[("R", "N"), dtype], Inv: T.Tensor[("S", "TOPK"), "int32"],
                         Wt: T.Tensor[("S", "TOPK"), "float32"], Out: T.Tensor[("S", "N"), dtype], *,
                         block_s: int = 16, block_n: int = 128):
        """Out[s, :] = sum_k Wt[s, k] * Y[Inv[s, k], :], accumulated in fp32."""
        with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(S, block_s)) as (bx, by):
            acc = T.alloc_fragment((block_s, block_n), "float32")
            T.clear(acc)
            for k in T.serial(TOPK):
                for i, j in T.Parallel(block_s, block_n):
                    s = T.min(by * block_s + i, S - 1)  # clamped: lanes past S are computed, never stored
                    acc[i, j] += Wt[s, k] * Y[Inv[s, k], T.min(bx * block_n + j, N - 1)]
            T.copy(acc, Out[by * block_s, bx * block_n])

    return moe_combine_rows


def default_config(m: int, experts: int, where: str, n: int = 512, k: int = 1024) -> dict:
    """Tiles by rows per expert. GPU, measured on an H200 (bf16, E=64, K=7168, N=2048, 2026-11-29; TFLOP/s):
    16 rows per expert, weight streaming: 32x128x128 x4 stages 44.8 (64x64x32 x2: 11.6); 128 and 512 rows:
    128x256x64 x3 stages 332 and 621 (64x64x32: 48 and 54). The interpreter keeps small tiles: it runs each block
    as NumPy calls. CPU: see cpu_config."""
    if where == "llvm":
        return cpu_config(m, experts, n, k)
    if where != "triton":
        return {"block_m": 64, "block_n": 64, "block_k": 32, "num_stages": 2}
    if m <= 32 * max(experts, 1):
        return {"block_m": 32, "block_n": 128, "block_k": 128, "num_stages": 4}
    return {"block_m": 128, "block_n": 256, "block_k": 64, "num_stages": 3}


def cpu_config(m: int, experts: int, n: int, k: int) -> dict:
    """LLVM tiles. block_m: the mean rows per expert (16 to 128, a multiple of 16), since a tile's rows past its
    expert's end are computed for nothing; block_n: whole rows of W up to 512 columns, read as one stream;
    block_k 128; no software prefetch (num_stages 1): its burst of one step's W lines ahead did not beat the
    hardware prefetcher. 2-core Zen 4 VM, fp32, K1024 N512, min of 11-21 interleaved calls under other load,
    2026-11-29: E16 x 64 rows: 64x512x128 x1 7.7 ms, 64x128x64 x2 (the old tiles) 9.1, NumPy 9.0;
    E64 x 16 rows: 16x512x128 13.1, 32x.. 17.7, 64x.. 27.8, old 29.5, NumPy 16.3; E8 x 256 rows: 128x512x128
    15.2, 64x.. 17.7, 256x.. 17.1, old 18.3."""
    bm = min(128, cdiv(cdiv(m, max(experts, 1)), 16) * 16)
    bn, bk = even_part(n, 512, 32), even_part(k, 128, 16)
    while cdiv(m, bm) * cdiv(n, bn) < 2 * settings.num_threads and bn > 32:  # a block per thread, and some slack
        bn = even_part(n, bn // 2, 32)
    return {"block_m": bm, "block_n": bn, "block_k": bk, "num_stages": 1}


def tile_schedule(offsets: np.ndarray, block_m: int) -> np.ndarray:
    """int32 [tiles, 3] rows (expert, first row, end row): each expert's rows cut into blocks of block_m."""
    starts = np.concatenate([[0], offsets[:-1]]).astype(np.int64)
    tiles = []
    for e, (lo, hi) in enumerate(zip(starts, offsets.astype(np.int64))):
        for r in range(lo, hi, block_m):
            tiles.append((e, r, hi))
    return np.array(tiles, dtype=np.int32).reshape(-1, 3)


def grouped_gemm(x, w, offsets, *, check=True, target=None, **config):
    """y [M, N] where rows offsets[e-1]:offsets[e] of x [M, K] (offsets[-1] = 0) are multiplied by w[e] [K, N].
    offsets int [E] are cumulative end rows: non-decreasing, at most M; empty groups are allowed and rows past
    offsets[-1] come out 0. Same kind as x (NumPy -> LLVM, torch -> Triton). The tile schedule is built on the
    host for NumPy, on the device for torch. `check=False` skips the offsets check (unsafe: a bad schedule writes
    wrong rows; for torch it is also the check's device-to-host copy).
    Keywords override the tile config (block_m, block_n, block_k, num_stages)."""
    op = "grouped_gemm"
    _host.check_array(op, "x", x, 2, _host.FLOAT_DTYPES)
    _host.check_array(op, "w", w, 3, _host.FLOAT_DTYPES)
    _host.check_array(op, "offsets", offsets, 1)
    _host.check_same_kind(op, {"x": x, "w": w})
    m, k = x.shape
    e, _, n = w.shape
    _host.check_shape(op, "w", w, (e, k, n), "[E, K, N] with x's K")
    _host.check_shape(op, "offsets", offsets, (e,), "one cumulative end row per expert of w")
    if _host.dtype_name(w) != _host.dtype_name(x):
        raise tilec.TilecArgumentError(f"{op}: 'w' has dtype {_host.dtype_name(w)}; expected x's "
                                       f"{_host.dtype_name(x)}")
    dtype = _host.dtype_name(x)
    ends = _host.as_int32(op, "offsets", offsets)  # a no-op for contiguous int32
    if check:  # for torch the only device-to-host copy (a sync): check=False launches without one
        check_offsets(op, _host.host_numpy(ends).astype(np.int64), m)
    if m == 0 or n == 0 or k == 0 or e == 0:  # nothing to multiply: every row is 0 (and no launch of empty grids)
        return _host.zeros(x, (m, n), dtype)
    config = {**default_config(m, e, backend_for(x, target), n, k), **config}
    kernel = grouped_gemm_kernel(dtype)
    x, w = _host.contiguous(x), _host.contiguous(w)
    if _host.is_torch(x):
        # built where the tensors are: no device-to-host copy, no sync between launches
        main, rest = device_schedule(ends, m, config["block_m"], target)
        y = _host.empty(x, (m, n), dtype)  # every row is written once: by a tile or by moe_zero_rows
        zero_rows_kernel(dtype)(rest, y, target=target)
        # Main's tiles run a constant-length K loop, which Triton flattens into the persistent loop over tiles
        # (a loop length read from memory stops that: Triton fuses only loops whose bounds the outer loop does
        # not change); the few tiles past ceil(M / block_m) and the spare rows run from Rest, whose spare tiles
        # loop once
        kernel(x, w, main, y, target=target, spare_rows=False, **config)
        kernel(x, w, rest, y, target=target, spare_rows=True, **config)
        return y
    # clipped to [0, M] and made non-decreasing: even unchecked offsets give a schedule inside x and y
    ends = np.maximum.accumulate(np.clip(ends.astype(np.int64), 0, m))
    sched = tile_schedule(ends, config["block_m"])
    y = _host.empty(x, (m, n), dtype)
    y[ends[-1]:] = 0  # rows past the last expert belong to none; the tiles write every other row
    if len(sched):
        kernel(x, w, sched, y, target=target, **config)
    return y


def device_schedule(offsets, m: int, block_m: int, target=None):
    """tile_schedule built where offsets live, by one launch of `moe_tile_schedule` (no device-to-host copy, no
    sync, no chain of small torch ops), as (main, rest): main holds the first ceil(M / block_m) rows, which are
    all tiles when offsets[-1] = M (a tile holds at most block_m rows), rest E more rows, which bound the others
    (each expert wastes less than one tile), then spare rows (E - 1, end, end) that cover no row. When
    offsets[-1] < M, main's spare rows still run their whole K loop (no more tiles than the uncovered rows would
    take). M and E > 0."""
    import torch

    main = torch.empty((-(-m // block_m), 3), dtype=torch.int32, device=offsets.device)
    rest = torch.empty((offsets.shape[0], 3), dtype=torch.int32, device=offsets.device)
    tile_schedule_kernel()(offsets, main, rest, target=target, block_m=block_m, rows=m)
    return main, rest


def check_offsets(op: str, ends: np.ndarray, m: int):
    prev = 0
    for e, end in enumerate(ends):
        if end < prev or end > m:
            raise tilec.TilecArgumentError(
                f"{op}: offsets[{e}] = {end}: offsets are cumulative end rows, so they must be non-decreasing and "
                f"within [0, {m}] (x has {m} rows); offsets[{e - 1 if e else 0}] = {prev if e else 0} (pass "
                f"check=False to skip this check, unsafe)")
        prev = end


def moe_permute(x, topk_ids, num_experts: int, *, check=True, target=None):
    """Sort tokens' copies into expert order. x [S, H], topk_ids int [S, topk] (the experts each token goes to).
    Returns (xp [S*topk, H] with rows grouped by expert, offsets int32 [num_experts] cumulative end rows (feed
    grouped_gemm), permutation int32 [S*topk]: xp[r] = x[permutation[r] // topk], permutation[r] being the flat
    slot s*topk + j). The argsort runs on the host; the row gather is a DSL kernel. `check=False` skips the
    0 <= topk_ids < num_experts check (unsafe)."""
    op = "moe_permute"
    _host.check_array(op, "x", x, 2, _host.FLOAT_DTYPES)
    _host.check_array(op, "topk_ids", topk_ids, 2)
    _host.check_same_kind(op, {"x": x, "topk_ids": topk_ids})
    ntok, h = x.shape
    if topk_ids.shape[0] != ntok:
        _host.check_shape(op, "topk_ids", topk_ids, (ntok, topk_ids.shape[1]), "[S, topk] with x's S")
    ids = _host.host_numpy(_host.as_int32(op, "topk_ids", topk_ids)).astype(np.int64)
    if check:
        _host.check_index_range(op, "topk_ids", ids, 0, num_experts, "an expert id")
    topk = ids.shape[1]
    perm = np.argsort(ids.reshape(-1), kind="stable").astype(np.int32)
    offsets = np.cumsum(np.bincount(ids.reshape(-1), minlength=num_experts)[:num_experts]).astype(np.int32)
    dtype = _host.dtype_name(x)
    xp = _host.zeros(x, (perm.size, h), dtype)
    if perm.size and h:
        gather_rows_kernel(dtype)(_host.contiguous(x), _host.like(x, perm // topk), xp, target=target)
    return xp, _host.like(x, offsets), _host.like(x, perm)


def moe_unpermute(y, permutation, topk_weights, *, check=True, target=None):
    """Combine expert outputs: out[s] = sum_j topk_weights[s, j] * y[r] where permutation[r] = s*topk + j.
    y [S*topk, N] in permuted order (as from grouped_gemm), permutation from moe_permute, topk_weights [S, topk].
    Returns [S, N] of y's dtype and kind; sums in fp32. `check=False` skips the check that permutation is a
    permutation of 0..S*topk-1 (unsafe)."""
    op = "moe_unpermute"
    _host.check_array(op, "y", y, 2, _host.FLOAT_DTYPES)
    _host.check_array(op, "permutation", permutation, 1)
    _host.check_array(op, "topk_weights", topk_weights, 2, _host.FLOAT_DTYPES)
    _host.check_same_kind(op, {"y": y, "permutation": permutation, "topk_weights": topk_weights})
    ntok, topk = topk_weights.shape
    r, n = y.shape
    _host.check_shape(op, "y", y, (ntok * topk, n), "[S*topk, N] for topk_weights [S, topk]")
    _host.check_shape(op, "permutation", permutation, (ntok * topk,), "[S*topk]")
    perm = _host.host_numpy(_host.as_int32(op, "permutation", permutation)).astype(np.int64)
    if check:
        _host.check_index_range(op, "permutation", perm, 0, max(r, 1), "a flat slot s*topk + j")
        if np.bincount(perm, minlength=r).max(initial=1) > 1:
            raise tilec.TilecArgumentError(f"{op}: 'permutation' repeats a slot; pass moe_permute's permutation")
    inverse = np.empty(r, np.int32)
    inverse[perm] = np.arange(r, dtype=np.int32)
    dtype = _host.dtype_name(y)
    out = _host.zeros(y, (ntok, n), dtype)
    if ntok == 0 or n == 0:
        return out
    weights = topk_weights.float() if _host.is_torch(topk_weights) else np.asarray(topk_weights, np.float32)
    combine_rows_kernel(dtype)(_host.contiguous(y), _host.like(y, inverse.reshape(ntok, topk)),
                               _host.contiguous(weights), out, target=target)
    return out


def grouped_gemm_reference(x, w, offsets) -> np.ndarray:
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    y = np.zeros((x.shape[0], w.shape[2]))
    lo = 0
    for e, hi in enumerate(np.asarray(offsets)):
        y[lo:hi] = x[lo:hi] @ w[e]
        lo = hi
    return y
