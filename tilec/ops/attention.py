"""`flash_attention(q, k, v, causal=, scale=)`: FlashAttention-2 forward pass written in the DSL.

One block owns `block_m` query rows of one (batch, query head) and walks the keys in tiles of `block_n`:
S = Q K^T, then the online softmax keeps a running row max m and sum l in fp32 and rescales the output accumulator
by 2^(m_old - m_new) whenever the max grows. Logits are pre-multiplied by scale * log2(e) so exp2 replaces exp.
GQA/MQA: query head h reads kv head h // (HQ // HKV). Causal masking is aligned to the bottom right (query i sees
keys <= i + SKV - SQ), and causal blocks stop at the last key tile their rows can see. A row that sees no key at all
(causal with SQ > SKV, or SKV = 0) is written as zeros.
"""
# no `from __future__ import annotations`: the T.Tensor annotations must be evaluated at `def` time
import functools
import math

import tilec
import tilec.language as T

from ..errors import TilecArgumentError
from ._host import array_dtype, backend_for, contiguous, empty, is_torch, softmax_scale
from .online_softmax import online_softmax_update

OP = "flash_attention"
ATTN_DTYPES = ("float16", "bfloat16", "float32")
LOG2E = 1.0 / math.log(2.0)

#: tile sizes per place the kernel runs. GPU: 128 x 64 tiles with 3 stages measured best on an H100 for head dims 64
#: and 128 (fp16, B=4 H=32 S=4096: 489 TFLOP/s at D=128 against 455 for 128 x 128 tiles with 2 stages); on an H200
#: (bf16, B=8 H=32 S=4096 D=128, 2026-11-29, results/h200/explore_flash256_sparse_splits.json) 256 x 64 tiles with 3
#: stages and 8 warps (128 query rows per warpgroup, each K/V tile serving twice the rows) ran 530/443 TFLOP/s
#: non-causal/causal against 514/423 for 128 x 64; 16 warps on the same tiles gave 496/419. Head dim 256 halves
#: block_m to fit the registers and shared memory. CPU: 64 x 64 fp32 score tiles (16 KiB) stay in L1/L2. The
#: interpreter runs each block as NumPy calls.
DEFAULT_CONFIG = {
    "llvm": lambda d: dict(block_m=64, block_n=64, num_stages=1),
    "triton": lambda d: dict(block_m=256, block_n=64, num_stages=3) if d == 128 else
    dict(block_m=128, block_n=64, num_stages=3) if d < 128 else dict(block_m=64, block_n=64, num_stages=2),
    "interpreter": lambda d: dict(block_m=16, block_n=16, num_stages=1),
}
MIN_BLOCK_M = {"llvm": 1, "triton": 16, "interpreter": 16}  # tl.dot needs M >= 16


@functools.lru_cache(maxsize=None)
def flash_attention_kernel(dtype: str):
    """The DSL kernel for one input dtype (tiles in that dtype; scores, statistics and the accumulator in fp32)."""

    @tilec.kernel
    def flash_attention_fwd(Q: T.Tensor[("B", "HQ", "SQ", "D"), dtype], K: T.Tensor[("B", "HKV", "SKV", "D"), dtype],
                            V: T.Tensor[("B", "HKV", "SKV", "D"), dtype], O: T.Tensor[("B", "HQ", "SQ", "D"), dtype],
                            *, block_m: int = 64, block_n: int = 64, num_stages: int = 2, causal: bool = False,
                            scale_log2: float = 1.0):
        """O = softmax(Q K^T * scale) V with scale_log2 = scale * log2(e), which must be > 0 (flash_attention makes
        it so; see online_softmax_update)."""
        with T.Kernel(T.ceildiv(SQ, block_m), HQ, B) as (bx, h, b):
            hk = h // (HQ // HKV)
            # causal blocks further down have more keys to see: launch those first, so that the grid's last
            # wave is made of the short blocks
            row0 = (T.ceildiv(SQ, block_m) - 1 - bx if causal else bx) * block_m
            q = T.alloc_shared((block_m, D), dtype)
            kt = T.alloc_shared((block_n, D), dtype)
            vt = T.alloc_shared((block_n, D), dtype)
            s = T.alloc_fragment((block_m, block_n), "float32")
            p = T.alloc_fragment((block_m, block_n), dtype)
            acc = T.alloc_fragment((block_m, D), "float32")
            m = T.alloc_fragment((block_m,), "float32")
            m_prev = T.alloc_fragment((block_m,), "float32")
            m_safe = T.alloc_fragment((block_m,), "float32")
            alpha = T.alloc_fragment((block_m,), "float32")
            l = T.alloc_fragment((block_m,), "float32")  # noqa: E741
            row_sum = T.alloc_fragment((block_m,), "float32")
            T.copy(Q[b, h, row0, 0], q)
            T.fill(m, -T.infinity("float32"))
            T.clear(l)
            T.clear(acc)
            # causal: the last key any row of this block sees is row0 + block_m - 1 + SKV - SQ
            num_kv = (T.ceildiv(T.min(SKV, T.max(row0 + block_m + SKV - SQ, 0)), block_n) if causal
                      else T.ceildiv(SKV, block_n))
            num_full = T.min(num_kv, (T.max(row0 + 1 + SKV - SQ, 0) if causal else SKV) // block_n)
            # keys below the first row's limit are visible to every row of the block: those tiles skip the mask
            # (a second loop takes the causal diagonal and the ragged end, masked)
            for kb in T.Pipelined(num_full, num_stages=num_stages):
                T.copy(K[b, hk, kb * block_n, 0], kt)
                T.copy(V[b, hk, kb * block_n, 0], vt)
                T.clear(s)
                T.gemm(q, kt, s, transpose_b=True)
                online_softmax_update(s, p, vt, acc, m, l, m_prev, m_safe, alpha, row_sum, block_m, block_n, D,
                                      scale_log2)
            for kb in T.Pipelined(num_full, num_kv, num_stages=num_stages):
                T.copy(K[b, hk, kb * block_n, 0], kt)
                T.copy(V[b, hk, kb * block_n, 0], vt)
                T.clear(s)
                T.gemm(q, kt, s, transpose_b=True)
                for i, j in T.Parallel(block_m, block_n):
                    # keys past SKV (zero padding) and, when causal, keys after the row's diagonal -> -inf
                    limit = T.min(SKV, row0 + i + 1 + SKV - SQ) if causal else SKV
                    s[i, j] = T.where(kb * block_n + j < limit, s[i, j], -T.infinity("float32"))
                online_softmax_update(s, p, vt, acc, m, l, m_prev, m_safe, alpha, row_sum, block_m, block_n, D,
                                      scale_log2)
            for i, d in T.Parallel(block_m, D):
                # l >= 1 once a key was seen (the max term adds 2^0); l = 0 means no key and acc = 0
                acc[i, d] = acc[i, d] / T.max(l[i], 1.0)
            T.copy(acc, O[b, h, row0, 0])

    return flash_attention_fwd


def flash_attention(q, k, v, *, causal: bool = False, scale: float | None = None, target: str | None = None,
                    config=None, tune: str | None = None, **consts):
    """softmax(q k^T * scale + causal mask) v for q [B, Hq, Sq, D], k/v [B, Hkv, Skv, D] (Hq a multiple of Hkv),
    as a new array of q's kind and dtype. scale defaults to 1/sqrt(D). Keywords block_m, block_n, num_stages
    override the op's tiles; `config="auto"` takes the cost model's pick for this shape instead (no measurement;
    keywords given are held) and `tune="measure"` times the model's top 8 once per shape bucket."""
    dtype = check_attention_inputs(q, k, v)
    batch, hq, sq, d = q.shape
    skv = k.shape[2]
    q, scale = softmax_scale(OP, q, scale, d)
    out = empty(q, tuple(q.shape), dtype)
    if batch * hq * sq * d == 0:
        return out
    if skv == 0:  # no key at all: every row is empty
        out[...] = 0
        return out
    q, k, v = (contiguous(x) for x in (q, k, v))
    kernel, held = flash_attention_kernel(dtype), dict(causal=bool(causal), scale_log2=scale * LOG2E)
    if config is not None or tune is not None:  # the kernel call checks the values and asks the cost model
        kernel(q, k, v, out, target=target, config=config, tune=tune, **held, **consts)
        return out
    where = backend_for(q, target)
    tiles = {**DEFAULT_CONFIG[where](d), **consts}
    tiles["block_m"] = fit_block(tiles["block_m"], sq, MIN_BLOCK_M[where])
    kernel(q, k, v, out, target=target, **held, **tiles)
    return out


def check_attention_inputs(q, k, v) -> str:
    dtype = array_dtype(OP, "q", q)
    kinds = {n: (f"torch ({x.device})" if is_torch(x) else "NumPy") for n, x in (("q", q), ("k", k), ("v", v))}
    if len(set(kinds.values())) > 1:
        raise TilecArgumentError(f"{OP}: q, k and v must all be NumPy arrays or all torch tensors on one device; "
                                 f"got " + ", ".join(f"'{n}': {kd}" for n, kd in kinds.items()))
    if dtype not in ATTN_DTYPES:
        raise TilecArgumentError(f"{OP}: 'q' has dtype {dtype}; expected one of {', '.join(ATTN_DTYPES)}")
    if q.ndim != 4:
        raise TilecArgumentError(f"{OP}: 'q' must have shape [B, Hq, Sq, D], got {tuple(q.shape)}")
    batch, hq, _, d = q.shape
    for name, x in (("k", k), ("v", v)):
        if array_dtype(OP, name, x) != dtype:
            raise TilecArgumentError(f"{OP}: '{name}' has dtype {array_dtype(OP, name, x)}; expected {dtype} "
                                     f"(the dtype of 'q')")
        if x.ndim != 4 or x.shape[0] != batch or x.shape[3] != d:
            raise TilecArgumentError(f"{OP}: '{name}' has shape {tuple(x.shape)}; expected [B={batch}, Hkv, Skv, "
                                     f"D={d}]")
    if tuple(v.shape) != tuple(k.shape):
        raise TilecArgumentError(f"{OP}: 'v' has shape {tuple(v.shape)}; expected {tuple(k.shape)} (the shape of "
                                 f"'k')")
    hkv = k.shape[1]
    if hkv == 0 or hq % hkv:
        raise TilecArgumentError(f"{OP}: 'q' has {hq} heads and 'k' {hkv}; the query heads must be a multiple of "
                                 f"the kv heads (GQA)")
    return dtype


def fit_block(block: int, n: int, least: int) -> int:
    """`block`, shrunk to the power of two >= n (and >= least) when n is shorter: no wasted rows for short inputs."""
    fit = max(least, 1 << max(0, (n - 1).bit_length()))
    return min(block, fit)
