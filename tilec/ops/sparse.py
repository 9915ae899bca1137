"""DeepSeek-V3.2 sparse attention (DSA): each query token attends only to the `topk` key rows its indexer chose.

One block handles one token and `block_h` heads that share a kv head: those heads are the M dim of both GEMMs, so
every gathered K/V row is used `block_h` times. K/V rows are gathered by index inside `T.Parallel` (a -1 slot
gathers row 0 and is masked to -inf before the softmax); the softmax is the online (flash) form over blocks of
`block_n` indices, shared with flash attention through the `online_softmax_update` macro (base-2 logits).

Two kernels:
- `sparse_mla_fwd`, MLA's layout, where V is the first Dv columns of the same latent rows as K (FlashMLA's
  interface: one KV cache of 576 = 512 latent + 64 rope columns). Each gathered row is loaded once, as a latent
  tile that is both K's first 512 columns and V, and a rope tile; Q stays on chip for the whole loop. Chosen when
  `v` is a view of `k`'s first columns (`v = kv[..., :512]`).
- `sparse_attention_fwd`, separate K and V of any head dims: the QK dot runs over `block_d`-wide chunks of the
  head dim, so 576 = 9 x 64 needs no padding to 1024.
"""
import functools
import math

import numpy as np

import tilec
import tilec.language as T

from . import _host
from ._host import backend_for
from .attention import LOG2E
from .online_softmax import online_softmax_update
from .paged import paged_reduce_kernel, pick_num_splits

OP = "sparse_attention"
MAX_BLOCK_H = 64  # heads per block: 64 x 512 fp32 accumulators are FlashMLA's tile too
#: pipeline depth of the head-dim chunk loop (gathered K rows and Q chunks in flight). Measured on an H200 (MLA
#: shape, bf16, T=512, topk 2048, 2026-11-29): 3 stages 3980 GB/s at Hq=16 and 219 TFLOP/s at Hq=128, against
#: 2178 GB/s and 109 TFLOP/s unpipelined; pipelining the outer index loop as well changed nothing.
CHUNK_STAGES = {"triton": 3, "llvm": 1, "interpreter": 1}
#: the shared-latent kernel splits the top-k only for grids of at most this many blocks. A split writes its fp32
#: accumulator out and back and adds a launch: on an H200 (T=64, 16 heads, 64 blocks) 4 splits ran the kernels 12%
#: faster but the op, with its host work, 2.3x slower (results/h200/explore_flash256_sparse_splits.json); so only a
#: grid of at most a quarter of the 132 SMs is split. The CPU and the interpreter split only when asked.
SPLIT_BELOW_BLOCKS = {"triton": 33, "llvm": 0, "interpreter": 0}
#: the latent-sharing kernel's tiles per place it runs, by heads per block. Measured on an H200 (bf16, T=512,
#: topk 2048, 2026-11-29; results/h200/sparse_latent.json): Hq=128 (64 heads per block, 8 warps) 64 keys per step
#: with 2 stages 289 TFLOP/s, 1 stage 207, 32 keys 198; Hq=16 128 keys per step 0.279 ms against 0.358 for 64.
MLA_CONFIG = {"triton": lambda block_h: dict(block_n=128 if block_h <= 16 else 64, num_stages=2),
              "llvm": lambda block_h: dict(block_n=64, num_stages=1),
              "interpreter": lambda block_h: dict(block_n=16, num_stages=1)}


@functools.cache
def sparse_attention_kernel(dtype: str):
    """The DSL kernel for separate K and V (tile dtypes follow the inputs; softmax and accumulation in fp32)."""

    @tilec.kernel
    def sparse_attention_fwd(Q: T.Tensor[("S", "H", "D"), dtype], K: T.Tensor[("N", "HK", "D"), dtype],
                             V: T.Tensor[("N", "HK", "DV"), dtype], Idx: T.Tensor[("S", "TOPK"), "int32"],
                             O: T.Tensor[("S", "H", "DV"), dtype], *, group: int = 1, block_h: int = 1,
                             block_n: int = 64, block_d: int = 64, scale: float = 1.0, num_stages: int = 1,
                             chunk_stages: int = 1):
        """O = softmax(Q K[idx]^T * scale) V[idx] per token (base-2 logits: the scale is folded with log2(e))."""
        # block_h divides group, so a block's heads never straddle two kv heads
        with T.Kernel(S, HK * (group // block_h)) as (t, hb):
            hk = hb // (group // block_h)
            h0 = hb * block_h
            q = T.alloc_shared((block_h, block_d), dtype)
            kt = T.alloc_shared((block_n, block_d), dtype)
            vt = T.alloc_shared((block_n, DV), dtype)
            ids = T.alloc_fragment((block_n,), "int32")
            s = T.alloc_fragment((block_h, block_n), "float32")
            p = T.alloc_fragment((block_h, block_n), dtype)
            acc = T.alloc_fragment((block_h, DV), "float32")
            m = T.alloc_fragment((block_h,), "float32")
            m_prev = T.alloc_fragment((block_h,), "float32")
            m_safe = T.alloc_fragment((block_h,), "float32")
            alpha = T.alloc_fragment((block_h,), "float32")
            l = T.alloc_fragment((block_h,), "float32")  # noqa: E741
            row_sum = T.alloc_fragment((block_h,), "float32")
            T.fill(m, -T.infinity("float32"))
            T.clear(l)
            T.clear(acc)
            # num_stages > 1 lets the GPU gather the next indices' rows while this step computes
            for kb in T.Pipelined(T.ceildiv(TOPK, block_n), num_stages=num_stages):
                T.copy(Idx[t, kb * block_n], ids, pad=-1)  # slots past topk read as padding
                T.clear(s)
                for c in T.Pipelined(T.ceildiv(D, block_d), num_stages=chunk_stages):
                    T.copy(Q[t, h0, c * block_d], q)  # columns past D read 0: they add nothing to the dot
                    for j, d in T.Parallel(block_n, block_d):
                        kt[j, d] = K[T.max(ids[j], 0), hk, T.min(c * block_d + d, D - 1)]
                    T.gemm(q, kt, s, transpose_b=True)
                for i, j in T.Parallel(block_h, block_n):
                    s[i, j] = T.where(ids[j] >= 0, s[i, j], -T.infinity("float32"))
                for j, d in T.Parallel(block_n, DV):
                    vt[j, d] = V[T.max(ids[j], 0), hk, d]
                online_softmax_update(s, p, vt, acc, m, l, m_prev, m_safe, alpha, row_sum, block_h, block_n, DV,
                                      scale * LOG2E)
            for i, d in T.Parallel(block_h, DV):
                # l >= 1 once a row saw a valid key (its max adds 2^0); a row of only -1 has acc = 0, l = 0
                acc[i, d] = acc[i, d] / T.max(l[i], 1.0)
            T.copy(acc, O[t, h0, 0])

    return sparse_attention_fwd


@T.macro
def latent_scores(q_latent, q_rope, KV, Idx, t, hk, start, ids, k_latent, k_rope, s, n, d, dv, block_h,  # noqa: N803
                  block_n):
    """s = the raw logits of q_latent/q_rope against the KV rows that indices [start, start + block_n) of token t
    name (slots past topk read as padding), -inf where the index is -1; k_latent and k_rope hold the rows after.
    Row ids are clamped into [0, n): then the gathers need no bounds mask (-1 slots are masked in the scores; the
    host checks the rest unless told not to)."""
    T.copy(Idx[t, start], ids, pad=-1)
    for j, c in T.Parallel(block_n, dv):
        k_latent[j, c] = KV[T.min(T.max(ids[j], 0), n - 1), hk, c]
    for j, c in T.Parallel(block_n, d - dv):
        k_rope[j, c] = KV[T.min(T.max(ids[j], 0), n - 1), hk, dv + c]
    T.clear(s)
    T.gemm(q_latent, k_latent, s, transpose_b=True)
    T.gemm(q_rope, k_rope, s, transpose_b=True)
    for i, j in T.Parallel(block_h, block_n):
        s[i, j] = T.where(ids[j] >= 0, s[i, j], -T.infinity("float32"))


@T.macro
def attend_latent_rows(Q, KV, Idx, t, hk, h0, first, count, acc, m, l, n, d, dv, block_h, block_n, scale,  # noqa: E741
                       num_stages, dtype):
    """Fold index blocks [first, first + count) of token t into the softmax state (acc, m, l) of heads h0 ..
    h0 + block_h - 1: each gathered KV row is loaded once, as its latent columns [0, dv) (K's and V's) and its rope
    columns [dv, d) (K's only), each step's scores by latent_scores.

    At 64 heads per block Triton lays the score GEMM out with every warp on the head rows (its rule for a GEMM
    whose result feeds another), so both warpgroups compute the whole 64 x 64 score tile. Computing the next
    step's scores at the end of each iteration instead (the scores reach the PV GEMM only through the loop, and
    Triton then splits the score GEMM between the warpgroups) ran at 149-177 TFLOP/s against 288-301 on an H200
    (results/h200/sparse_qk_ahead_2026-12-02.json, benchmarks/explore/sparse_qk_ahead.py): the split
    costs more than the duplicated work."""
    q_latent = T.alloc_shared((block_h, dv), dtype)
    q_rope = T.alloc_shared((block_h, d - dv), dtype)
    k_latent = T.alloc_shared((block_n, dv), dtype)
    k_rope = T.alloc_shared((block_n, d - dv), dtype)
    ids = T.alloc_fragment((block_n,), "int32")
    s = T.alloc_fragment((block_h, block_n), "float32")
    p = T.alloc_fragment((block_h, block_n), dtype)
    m_prev = T.alloc_fragment((block_h,), "float32")
    m_safe = T.alloc_fragment((block_h,), "float32")
    alpha = T.alloc_fragment((block_h,), "float32")
    row_sum = T.alloc_fragment((block_h,), "float32")
    T.copy(Q[t, h0, 0], q_latent)
    T.copy(Q[t, h0, dv], q_rope)
    for kb in T.Pipelined(count, num_stages=num_stages):
        latent_scores(q_latent, q_rope, KV, Idx, t, hk, (first + kb) * block_n, ids, k_latent, k_rope, s, n, d, dv,
                      block_h, block_n)
        online_softmax_update(s, p, k_latent, acc, m, l, m_prev, m_safe, alpha, row_sum, block_h, block_n, dv,
                              scale * LOG2E)


@functools.cache
def sparse_mla_kernel(dtype: str):
    """The DSL kernel for MLA's shared latent: V is KV's first DV columns, K all D of them."""

    @tilec.kernel
    def sparse_mla_fwd(Q: T.Tensor[("S", "H", "D"), dtype], KV: T.Tensor[("N", "HK", "D"), dtype],
                       Idx: T.Tensor[("S", "TOPK"), "int32"], O: T.Tensor[("S", "H", "DV"), dtype], *,
                       group: int = 1, block_h: int = 1, block_n: int = 64, scale: float = 1.0,
                       num_stages: int = 1):
        """O = softmax(Q KV[idx]^T * scale) KV[idx, :DV] per token."""
        with T.Kernel(S, HK * (group // block_h)) as (t, hb):
            acc = T.alloc_fragment((block_h, DV), "float32")
            m = T.alloc_fragment((block_h,), "float32")
            l = T.alloc_fragment((block_h,), "float32")  # noqa: E741
            T.fill(m, -T.infinity("float32"))
            T.clear(l)
            T.clear(acc)
            attend_latent_rows(Q, KV, Idx, t, hb // (group // block_h), hb * block_h, 0, T.ceildiv(TOPK, block_n),
                               acc, m, l, N, D, DV, block_h, block_n, scale, num_stages, dtype)
            for i, d in T.Parallel(block_h, DV):
                acc[i, d] = acc[i, d] / T.max(l[i], 1.0)  # a row of only -1 has acc = 0, l = 0
            T.copy(acc, O[t, hb * block_h, 0])

    return sparse_mla_fwd


@functools.cache
def sparse_mla_split_kernel(dtype: str):
    """Split top-k (flash-decoding) for grids too small to fill the machine: split sp takes index blocks
    [sp * blocks_per_split, (sp + 1) * blocks_per_split) and writes its m (log2 domain), l and unnormalised
    accumulator; paged attention's reduce kernel merges the splits."""

    @tilec.kernel
    def sparse_mla_split(Q: T.Tensor[("S", "H", "D"), dtype], KV: T.Tensor[("N", "HK", "D"), dtype],
                         Idx: T.Tensor[("S", "TOPK"), "int32"], Mp: T.Tensor[("S", "H", "NSPLIT"), "float32"],
                         Lp: T.Tensor[("S", "H", "NSPLIT"), "float32"],
                         Ap: T.Tensor[("S", "NSPLIT", "H", "DV"), "float32"], *, group: int = 1, block_h: int = 1,
                         block_n: int = 64, blocks_per_split: int = 1, scale: float = 1.0, num_stages: int = 1):
        with T.Kernel(S, HK * (group // block_h), NSPLIT) as (t, hb, sp):
            h0 = hb * block_h
            acc = T.alloc_fragment((block_h, DV), "float32")
            m = T.alloc_fragment((block_h,), "float32")
            l = T.alloc_fragment((block_h,), "float32")  # noqa: E741
            T.fill(m, -T.infinity("float32"))
            T.clear(l)
            T.clear(acc)
            first = sp * blocks_per_split
            count = T.max(T.min(blocks_per_split, T.ceildiv(TOPK, block_n) - first), 0)
            attend_latent_rows(Q, KV, Idx, t, hb // (group // block_h), h0, first, count, acc, m, l, N, D, DV,
                               block_h, block_n, scale, num_stages, dtype)
            T.copy(m, Mp[t, h0:h0 + block_h, sp])
            T.copy(l, Lp[t, h0:h0 + block_h, sp])
            T.copy(acc, Ap[t, sp, h0, 0])

    return sparse_mla_split


@functools.cache
def heads_per_block(group: int) -> int:
    """The largest divisor of `group` up to MAX_BLOCK_H (blocks must not straddle kv heads)."""
    return max(b for b in range(1, min(group, MAX_BLOCK_H) + 1) if group % b == 0)


#: below this many blocks the memory-bound shared-latent kernel (at most 16 heads per block) on the GPU halves its
#: heads per block, down to 8: twice the blocks read each gathered row twice, through L2, in one launch. H200 (one
#: run, 2026-11-29 about 16:42 UTC, results/h200/sparse_heads_per_block.json): T=64, 16 heads: 16 heads per block (64
#: blocks) 0.094 ms, 8 (128 blocks) 0.067 ms, 4 0.25 ms; T=512: 8 heads per block 4.2x slower than 16; T=64, 128
#: heads (compute-bound): 32 heads per block 1.9x slower than 64.
FEW_BLOCKS = {"triton": 66, "llvm": 0, "interpreter": 0}
MIN_LATENT_BLOCK_H = 8


def latent_heads_per_block(group: int, tokens_x_kv_heads: int, backend: str) -> int:
    """heads_per_block, halved while the grid is small (FEW_BLOCKS) and the half still divides the group."""
    block_h = heads_per_block(group)
    while (block_h <= 16 and tokens_x_kv_heads * (group // block_h) <= FEW_BLOCKS[backend] and block_h % 2 == 0
           and block_h // 2 >= MIN_LATENT_BLOCK_H):
        block_h //= 2
    return block_h


def sparse_attention(q, k, v, indices, *, scale=None, num_splits=None, check=True, target=None, config=None,
                     tune=None, **consts):
    """DeepSeek-V3.2 sparse attention. q [T, Hq, Dqk], k [N, Hkv, Dqk], v [N, Hkv, Dv], indices int [T, topk] of key
    rows per query token (-1 = padding, ignored; a row of only -1 yields zeros). Returns o [T, Hq, Dv] of q's
    dtype and kind (NumPy -> LLVM on the CPU, torch CUDA -> Triton, torch CPU with target="triton" -> Triton's
    interpreter). `scale` defaults to 1/sqrt(Dqk). `check=False` skips the host-side index range check (unsafe:
    an index >= N reads outside k and v). When v is a view of k's first Dv columns (MLA: `v = kv[..., :512]`) each
    gathered row is read once, for both K and V; then, when tokens are too few to fill the machine, the top-k is
    split over `num_splits` blocks per token (None picks, 1 never splits) and the splits merged. Extra keywords
    (block_n, block_h; block_d and chunk_stages for separate K and V) override the tile config; `config="auto"`
    takes the cost model's pick of the tiles instead (no measurement; keywords given are held, and so are the heads
    per block and, when the top-k is split, block_n, which the host's split rule counts in) and `tune="measure"`
    times the model's top 8 once per shape bucket."""
    for name, x, rank in (("q", q, 3), ("k", k, 3), ("v", v, 3)):
        _host.check_array(OP, name, x, rank, _host.FLOAT_DTYPES)
    _host.check_array(OP, "indices", indices, 2)
    _host.check_same_kind(OP, {"q": q, "k": k, "v": v, "indices": indices})
    ntok, hq, dqk = q.shape
    n, hkv, _ = k.shape
    dv = v.shape[2]
    _host.check_shape(OP, "k", k, (n, hkv, dqk), "[N, Hkv, Dqk] with q's Dqk")
    _host.check_shape(OP, "v", v, (n, hkv, dv), "[N, Hkv, Dv] with k's N and Hkv")
    if hkv == 0 or hq % hkv:
        raise tilec.TilecArgumentError(f"{OP}: q's {hq} heads must be a multiple of k's {hkv} kv heads")
    if indices.shape[0] != ntok:
        _host.check_shape(OP, "indices", indices, (ntok, indices.shape[1]), "[T, topk] with q's T")
    for name, x in (("k", k), ("v", v)):
        if _host.dtype_name(x) != _host.dtype_name(q):
            raise tilec.TilecArgumentError(f"{OP}: '{name}' has dtype {_host.dtype_name(x)}; expected q's "
                                           f"{_host.dtype_name(q)}")
    indices = _host.as_int32(OP, "indices", indices)
    if check:
        _host.check_index_range(OP, "indices", _host.host_numpy(indices), -1, n, "a key row (or -1 for padding)")
    dtype = _host.dtype_name(q)
    q, scale = _host.softmax_scale(OP, q, scale, dqk)
    if ntok == 0 or indices.shape[1] == 0 or n == 0:
        return _host.zeros(q, (ntok, hq, dv), dtype)
    out = _host.empty(q, (ntok, hq, dv), dtype)  # every (token, head) row is written, all-padding rows as zeros
    group = hq // hkv
    backend = backend_for(q, target)
    shared_latent = is_leading_columns(v, k)
    if "block_h" in consts:
        block_h = consts["block_h"]
    else:
        block_h = latent_heads_per_block(group, ntok * hkv, backend) if shared_latent else heads_per_block(group)
    defaults = MLA_CONFIG[backend](block_h) if shared_latent else \
        {"block_n": 64, "block_d": 64, "chunk_stages": CHUNK_STAGES[backend]}
    held = {"group": group, "block_h": block_h, "scale": scale, **consts}
    # config= or tune= set: the kernel call checks them and asks the cost model for the tiles not held
    auto = dict(config=config, tune=tune) if config is not None or tune is not None else None
    tiles = {**defaults, **held}

    def chosen() -> dict:
        return {**auto, **held} if auto else tiles
    if tiles["block_h"] < 1 or group % tiles["block_h"]:
        raise tilec.TilecArgumentError(f"{OP}: block_h={tiles['block_h']} must divide the {group} query heads per "
                                       f"kv head (a block must not straddle two kv heads)")
    if shared_latent:
        q, k, indices = (_host.contiguous(x) for x in (q, k, indices))
        steps = -(-indices.shape[1] // tiles["block_n"])
        blocks = ntok * hkv * (group // tiles["block_h"])
        splits = num_splits or (pick_num_splits(blocks, steps, backend) if blocks <= SPLIT_BELOW_BLOCKS[backend]
                                else 1)
        per_split = -(-steps // max(1, splits))
        splits = -(-steps // per_split)  # no split left empty
        if splits == 1:
            sparse_mla_kernel(dtype)(q, k, indices, out, target=target, **chosen())
            return out
        # every (token, head block, split) block writes its m, l and acc: no fills needed. One allocation, acc
        # first so it keeps the buffer's alignment (tensor descriptors want 16 bytes)
        stats = ntok * hq * splits
        work = _host.empty(q, (stats * (dv + 2),), "float32")
        acc = work[:stats * dv].reshape(ntok, splits, hq, dv)
        m = work[stats * dv:stats * (dv + 1)].reshape(ntok, hq, splits)
        l = work[stats * (dv + 1):].reshape(ntok, hq, splits)  # noqa: E741
        held["block_n"] = tiles["block_n"]  # per_split counts steps of it
        sparse_mla_split_kernel(dtype)(q, k, indices, m, l, acc, target=target, blocks_per_split=per_split,
                                       **chosen())
        paged_reduce_kernel(dtype)(m, l, acc, out, target=target)
    else:
        sparse_attention_kernel(dtype)(*(_host.contiguous(x) for x in (q, k, v, indices)), out, target=target,
                                       **chosen())
    return out


def is_leading_columns(v, k) -> bool:
    """Whether v is a view of k's first columns (MLA's V = the latent part of each KV row), with k's rope columns
    left over: then each gathered row can serve as both K and V."""
    if v.shape[:2] != k.shape[:2] or not 0 < v.shape[2] < k.shape[2]:
        return False
    if _host.is_torch(v):
        return v.device == k.device and v.data_ptr() == k.data_ptr() and v.stride() == k.stride()
    return (v.__array_interface__["data"][0] == k.__array_interface__["data"][0] and v.strides == k.strides)


def sparse_attention_reference(q, k, v, indices, scale=None) -> np.ndarray:
    """NumPy float64 reference (the tests' and the example's oracle)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    indices = np.asarray(indices)
    ntok, hq, dqk = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    scale = 1.0 / math.sqrt(dqk) if scale is None else scale
    out = np.zeros((ntok, hq, v.shape[2]))
    for t in range(ntok):
        rows = indices[t][indices[t] >= 0]
        if rows.size == 0:
            continue
        for h in range(hq):
            kv = h // group
            s = k[rows, kv] @ q[t, h] * scale
            p = np.exp(s - s.max())
            out[t, h] = p @ v[rows, kv] / p.sum()
    return out
