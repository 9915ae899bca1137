"""`softmax(x, dim)`: numerically stable softmax along one dim, written in the DSL.

On the host the op moves `dim` last and flattens the leading dims, so the kernels see rows X[M, N]. Rows that fit in
one tile (N <= max_row) take `softmax_rows`: one read of each row, max, exp, sum, scale. Longer rows take
`softmax_online`: a first pass over column blocks keeps a running max m and a running sum s rescaled by
exp(m_old - m_new) whenever the max grows; a second pass writes exp(x - m) / s. Both compute in float32 (float64 for
float64 inputs) and write the input dtype.
"""
# no `from __future__ import annotations`: the T.Tensor annotations must be evaluated at `def` time
import functools

import numpy as np

import tilec
import tilec.language as T

from ..errors import TilecArgumentError
from ._host import DENSE_DTYPES, array_dtype, backend_for, contiguous, empty, is_torch

#: per place the kernel runs: rows of up to `max_row` elements are one tile (block_m rows per block, at most
#: `tile_elems` elements in all); longer rows are walked in blocks of `block_n`. The interpreter runs each block as
#: NumPy calls, so it gets a smaller row tile.
DEFAULT_CONFIG = {
    "llvm": dict(max_row=4096, tile_elems=16384, block_n=1024),
    "triton": dict(max_row=8192, tile_elems=8192, block_n=2048),
    "interpreter": dict(max_row=512, tile_elems=4096, block_n=256),
}


def _softmax_rows(dtype, acc_dtype):
    @tilec.kernel
    def softmax_rows(X: T.Tensor[("M", "N"), dtype], Y: T.Tensor[("M", "N"), dtype], *, block_m: int = 4):
        """Y = softmax(X, dim=1), block_m whole rows per block."""
        with T.Kernel(T.ceildiv(M, block_m)) as bx:
            x = T.alloc_fragment((block_m, N), acc_dtype)
            m = T.alloc_fragment((block_m,), acc_dtype)
            s = T.alloc_fragment((block_m,), acc_dtype)
            # padding rows (past M) read -inf and produce NaN, but they are never stored
            T.copy(X[bx * block_m, 0], x, pad=-T.infinity(acc_dtype))
            T.reduce_max(x, m, dim=1)
            for i, j in T.Parallel(block_m, N):
                x[i, j] = T.exp(x[i, j] - m[i])
            T.reduce_sum(x, s, dim=1)
            for i, j in T.Parallel(block_m, N):
                x[i, j] = x[i, j] / s[i]
            T.copy(x, Y[bx * block_m, 0])
    return softmax_rows


def _softmax_online(dtype, acc_dtype):
    @tilec.kernel
    def softmax_online(X: T.Tensor[("M", "N"), dtype], Y: T.Tensor[("M", "N"), dtype], *, block_m: int = 1,
                       block_n: int = 1024):
        """Y = softmax(X, dim=1) for rows longer than a tile: running max and sum, then a normalising pass."""
        with T.Kernel(T.ceildiv(M, block_m)) as bx:
            x = T.alloc_fragment((block_m, block_n), acc_dtype)
            m = T.alloc_fragment((block_m,), acc_dtype)
            m_old = T.alloc_fragment((block_m,), acc_dtype)
            s = T.alloc_fragment((block_m,), acc_dtype)
            s_tile = T.alloc_fragment((block_m,), acc_dtype)
            T.fill(m, -T.infinity(acc_dtype))
            T.clear(s)
            for jb in T.serial(T.ceildiv(N, block_n)):
                T.copy(X[bx * block_m, jb * block_n], x, pad=-T.infinity(acc_dtype))
                T.copy(m, m_old)
                T.reduce_max(x, m, dim=1, clear=False)
                for i, j in T.Parallel(block_m, block_n):
                    x[i, j] = T.exp(x[i, j] - m[i])
                T.reduce_sum(x, s_tile, dim=1)
                # exp(-inf - m) = 0 drops the empty sum of the first block
                for i in T.Parallel(block_m):
                    s[i] = s[i] * T.exp(m_old[i] - m[i]) + s_tile[i]
            for jb in T.serial(T.ceildiv(N, block_n)):
                T.copy(X[bx * block_m, jb * block_n], x)
                for i, j in T.Parallel(block_m, block_n):
                    x[i, j] = T.exp(x[i, j] - m[i]) / s[i]
                T.copy(x, Y[bx * block_m, jb * block_n])
    return softmax_online


@functools.lru_cache(maxsize=None)
def softmax_kernel(dtype: str, online: bool):
    """The `@tilec.kernel` for rows of this dtype: whole-row tiles, or the two-pass online form."""
    acc_dtype = "float64" if dtype == "float64" else "float32"
    return (_softmax_online if online else _softmax_rows)(dtype, acc_dtype)


def softmax(x, dim: int = -1, *, target: str | None = None, config=None, tune: str | None = None, **consts):
    """exp(x - max) / sum(exp(x - max)) along `dim`, as a new array of x's kind and dtype. Keywords: `target` as on
    any kernel call; max_row (longest row kept in one tile), tile_elems, block_m, block_n override the defaults.
    `config="auto"` lets the cost model pick the chosen kernel's block_m (and block_n for long rows) for this shape
    (no measurement; keywords given are held), `tune="measure"` times its top 8 once per shape bucket."""
    dtype = array_dtype("softmax", "x", x)
    if dtype not in DENSE_DTYPES:
        raise TilecArgumentError(f"softmax: 'x' has dtype {dtype}; expected one of {', '.join(DENSE_DTYPES)}")
    rank = x.ndim
    if rank == 0:
        raise TilecArgumentError("softmax: 'x' is a scalar; it needs at least one dimension")
    if not -rank <= dim < rank:
        raise TilecArgumentError(f"softmax: dim={dim} is out of range for 'x' of shape {tuple(x.shape)}")
    dim %= rank
    moved = x.movedim(dim, -1) if is_torch(x) else np.moveaxis(x, dim, -1)
    rows = contiguous(moved).reshape(-1, x.shape[dim])
    out = empty(x, tuple(rows.shape), dtype)
    if out.numel() if is_torch(out) else out.size:
        _launch(rows, out, dtype, target, consts, dict(config=config, tune=tune))
    out = out.reshape(tuple(moved.shape))
    return out.movedim(-1, dim) if is_torch(out) else np.moveaxis(out, -1, dim)


def _launch(rows, out, dtype, target, consts, choice):
    """`choice`: the call's config= and tune=; either one set leaves the tiles not given to the cost model."""
    defaults = DEFAULT_CONFIG[backend_for(rows, target)]
    max_row, tile_elems = consts.pop("max_row", defaults["max_row"]), consts.pop("tile_elems", defaults["tile_elems"])
    n = rows.shape[1]
    online = n > max_row
    kernel = softmax_kernel(dtype, online=online)
    if not online:
        consts.pop("block_n", None)  # rows of one tile: no column blocks
    if any(v is not None for v in choice.values()):
        kernel(rows, out, target=target, **choice, **consts)
    elif online:
        kernel(rows, out, target=target, **{"block_m": 1, "block_n": defaults["block_n"], **consts})
    else:
        kernel(rows, out, target=target, **{"block_m": _rows_per_block(tile_elems // n, rows.shape[0]), **consts})


def _rows_per_block(fit: int, m: int) -> int:
    """The largest power of two (tiles are padded to one on GPUs) that fits the tile and is not far past M."""
    block = 1
    while block * 2 <= fit and block < m:
        block *= 2
    return block
