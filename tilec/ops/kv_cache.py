"""Paged KV-cache moves, written in the DSL: `kv_gather` (pages -> contiguous) and `kv_scatter` (new tokens ->
their slots, in place).

The kernels see each page (gather) or each token slot (scatter) as one flat row of the cache, so a block copies
`block` contiguous elements of one row; the row index comes from a scalar load of the index tensor.
"""
# no `from __future__ import annotations`: the T.Tensor annotations must be evaluated at `def` time
import functools
import math

import tilec
import tilec.language as T

from ..errors import TilecArgumentError
from . import _host
from ._host import backend_for

CACHE_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8")
#: elements one block moves: 4096 fp16 elements are 8 KiB, a few rows of 128-wide heads; the interpreter takes
#: whole rows of the tiny test caches
DEFAULT_BLOCK = {"llvm": 4096, "triton": 4096, "interpreter": 1024}


@functools.lru_cache(maxsize=None)
def kv_gather_kernel(dtype: str):
    @tilec.kernel
    def kv_gather_rows(Cache: T.Tensor[("NB", "ROW"), dtype], Ids: T.Tensor[("N",), "int32"],
                       Out: T.Tensor[("N", "ROW"), dtype], *, block: int = 4096):
        """Out[i] = Cache[Ids[i]], `block` elements per block."""
        with T.Kernel(T.ceildiv(ROW, block), N) as (c, i):
            tile = T.alloc_shared((block,), dtype)
            page = Ids[i]
            T.copy(Cache[page, c * block], tile)
            T.copy(tile, Out[i, c * block])

    return kv_gather_rows


@functools.lru_cache(maxsize=None)
def kv_scatter_kernel(dtype: str):
    @tilec.kernel
    def kv_scatter_rows(Key: T.Tensor[("NT", "ROW"), dtype], Value: T.Tensor[("NT", "ROW"), dtype],
                        KC: T.Tensor[("SLOTS", "ROW"), dtype], VC: T.Tensor[("SLOTS", "ROW"), dtype],
                        Slots: T.Tensor[("NT",), "int32"], *, block: int = 4096):
        """KC[Slots[t]] = Key[t] and VC[Slots[t]] = Value[t]; slot -1 skips token t."""
        with T.Kernel(T.ceildiv(ROW, block), NT) as (c, t):
            kt = T.alloc_shared((block,), dtype)
            vt = T.alloc_shared((block,), dtype)
            slot = Slots[t]
            if slot >= 0:
                T.copy(Key[t, c * block], kt)
                T.copy(kt, KC[slot, c * block])
                T.copy(Value[t, c * block], vt)
                T.copy(vt, VC[slot, c * block])

    return kv_scatter_rows


def kv_gather(cache, block_ids, *, check: bool = True, target: str | None = None, block: int | None = None):
    """cache [num_blocks, block_size, H, D] and page ids [n] -> a new contiguous [n, block_size, H, D] of the
    cache's kind. check=False skips the host check that every id is in [0, num_blocks) (unsafe: a bad id reads
    outside the cache)."""
    op = "kv_gather"
    _host.check_array(op, "cache", cache, 4, CACHE_DTYPES)
    _host.check_array(op, "block_ids", block_ids, 1)
    _host.check_same_kind(op, {"cache": cache, "block_ids": block_ids})
    check_int(op, "block_ids", block_ids)
    nblocks = cache.shape[0]
    if check:
        _host.check_index_range(op, "block_ids", _host.host_numpy(block_ids), 0, nblocks, "a block id")
    n, dtype = block_ids.shape[0], _host.dtype_name(cache)
    out = _host.empty(cache, (n, *cache.shape[1:]), dtype)  # the kernel writes every row whole
    row = math.prod(cache.shape[1:])
    if n * row == 0:
        return out
    flat = _host.contiguous(cache).reshape(nblocks, row)
    ids = _host.as_int32(op, "block_ids", block_ids)
    block = block or DEFAULT_BLOCK[backend_for(cache, target)]
    kv_gather_kernel(dtype)(flat, ids, out.reshape(n, row), target=target, block=fit_row(block, row))
    return out


def kv_scatter(key, value, k_cache, v_cache, slot_mapping, *, check: bool = True, target: str | None = None,
               block: int | None = None):
    """Write token i of key/value [num_tokens, H, D] into slot slot_mapping[i] of k_cache/v_cache
    [num_blocks, block_size, H, D] (page slot // block_size, row slot % block_size), in place; slot -1 skips the
    token. The caches must be contiguous. check=False skips the host check that every slot is -1 or in
    [0, num_blocks * block_size) (unsafe: a bad slot writes outside the cache). Returns None."""
    op = "kv_scatter"
    named = {"key": key, "value": value, "k_cache": k_cache, "v_cache": v_cache, "slot_mapping": slot_mapping}
    for name in ("k_cache", "v_cache"):
        _host.check_array(op, name, named[name], 4, CACHE_DTYPES)
    dtype = _host.dtype_name(k_cache)
    nblocks, bsize, heads, d = k_cache.shape
    _host.check_shape(op, "v_cache", v_cache, tuple(k_cache.shape), "k_cache's shape")
    for name in ("key", "value"):
        _host.check_array(op, name, named[name], 3, (dtype,))
    ntok = key.shape[0]
    for name in ("key", "value"):
        _host.check_shape(op, name, named[name], (ntok, heads, d), "[num_tokens, H, D] with the caches' H, D")
    _host.check_array(op, "slot_mapping", slot_mapping, 1)
    _host.check_shape(op, "slot_mapping", slot_mapping, (ntok,), "[num_tokens]")
    _host.check_same_kind(op, named)
    check_int(op, "slot_mapping", slot_mapping)
    for name in ("k_cache", "v_cache"):
        if not is_contiguous(named[name]):
            raise TilecArgumentError(f"{op}: '{name}' must be contiguous: it is written in place")
    if check:
        _host.check_index_range(op, "slot_mapping", _host.host_numpy(slot_mapping), -1, nblocks * bsize,
                                "a slot (-1 skips the token)")
    row = heads * d
    if ntok * row == 0:
        return None
    slots = _host.as_int32(op, "slot_mapping", slot_mapping)
    key, value = (_host.contiguous(x).reshape(ntok, row) for x in (key, value))
    block = block or DEFAULT_BLOCK[backend_for(k_cache, target)]
    kv_scatter_kernel(dtype)(key, value, k_cache.reshape(nblocks * bsize, row), v_cache.reshape(nblocks * bsize, row),
                             slots, target=target, block=fit_row(block, row))
    return None


def check_int(op: str, name: str, x):
    if not _host.dtype_name(x).startswith(("int", "uint")):
        raise TilecArgumentError(f"{op}: '{name}' must hold integers (int32), got {_host.dtype_name(x)}")


def is_contiguous(x) -> bool:
    return x.is_contiguous() if _host.is_torch(x) else x.flags.c_contiguous


def fit_row(block: int, row: int) -> int:
    """`block`, or the power of two >= row when a row is shorter (no block spans two rows)."""
    return min(block, 1 << max(0, (row - 1).bit_length()))
