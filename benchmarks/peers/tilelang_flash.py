"""FlashAttention-2 forward in TileLang 0.1.15, written for this benchmark in TileLang's documented language (the
same algorithm as tilec's `flash_attention`: online softmax in base 2, fp32 statistics), compiled by TileLang.
q, k, v, o are [B, H, S, D]; causal is aligned at the top left, which is the same as bottom right when Sq = Skv."""
import math

import tilelang
import tilelang.language as T


def build(batch, heads, seq, dim, causal, block_M=128, block_N=128, num_stages=2, threads=256, dtype="bfloat16"):
    scale_log2 = 1.0 / math.sqrt(dim) * 1.4426950408889634  # softmax scale folded into exp2's argument
    shape = (batch, heads, seq, dim)
    acc_t = "float32"

    @T.prim_func
    def mha_fwd(Q: T.Tensor(shape, dtype), K: T.Tensor(shape, dtype), V: T.Tensor(shape, dtype),
                Out: T.Tensor(shape, dtype)):
        with T.Kernel(T.ceildiv(seq, block_M), heads, batch, threads=threads) as (bx, by, bz):
            q = T.alloc_shared((block_M, dim), dtype)
            k = T.alloc_shared((block_N, dim), dtype)
            v = T.alloc_shared((block_N, dim), dtype)
            s = T.alloc_fragment((block_M, block_N), acc_t)
            p = T.alloc_fragment((block_M, block_N), dtype)
            o = T.alloc_fragment((block_M, dim), acc_t)
            m = T.alloc_fragment((block_M,), acc_t)
            m_prev = T.alloc_fragment((block_M,), acc_t)
            alpha = T.alloc_fragment((block_M,), acc_t)
            l = T.alloc_fragment((block_M,), acc_t)  # noqa: E741
            row_sum = T.alloc_fragment((block_M,), acc_t)
            T.copy(Q[bz, by, bx * block_M:(bx + 1) * block_M, :], q)
            T.fill(o, 0)
            T.fill(l, 0)
            T.fill(m, -T.infinity(acc_t))
            steps = T.ceildiv((bx + 1) * block_M, block_N) if causal else T.ceildiv(seq, block_N)
            for kb in T.Pipelined(steps, num_stages=num_stages):
                T.copy(K[bz, by, kb * block_N:(kb + 1) * block_N, :], k)
                if causal:
                    for i, j in T.Parallel(block_M, block_N):
                        s[i, j] = T.if_then_else(bx * block_M + i >= kb * block_N + j, 0, -T.infinity(acc_t))
                else:
                    T.clear(s)
                T.gemm(q, k, s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(m, m_prev)
                T.reduce_max(s, m, dim=1, clear=False)
                for i in T.Parallel(block_M):
                    alpha[i] = T.exp2(m_prev[i] * scale_log2 - m[i] * scale_log2)
                for i, j in T.Parallel(block_M, block_N):
                    s[i, j] = T.exp2(s[i, j] * scale_log2 - m[i] * scale_log2)
                T.reduce_sum(s, row_sum, dim=1)
                for i in T.Parallel(block_M):
                    l[i] = l[i] * alpha[i] + row_sum[i]
                T.copy(s, p)
                for i, j in T.Parallel(block_M, dim):
                    o[i, j] *= alpha[i]
                T.copy(V[bz, by, kb * block_N:(kb + 1) * block_N, :], v)
                T.gemm(p, v, o, policy=T.GemmWarpPolicy.FullRow)
            for i, j in T.Parallel(block_M, dim):
                o[i, j] /= l[i]
            T.copy(o, Out[bz, by, bx * block_M:(bx + 1) * block_M, :])

    return tilelang.compile(mha_fwd, out_idx=[3], target="cuda")
