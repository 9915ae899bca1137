"""Paged-attention decode in TileLang 0.1.15, written for this benchmark in TileLang's documented language with the
same algorithm as tilec's unsplit `paged_attention`: one block per (sequence, kv head) whose query heads are the
rows of both GEMMs (padded to 16 rows for the tensor cores), `pages_per_step` pages gathered per pipelined step
through the block table, online softmax in base 2 with fp32 statistics. q [S, Hq, D]; caches [NB, page, Hkv, D];
block_table int32 [S, max_pages]; every sequence is assumed full (context = max_pages * page: the benchmark's case),
so no length masking. Returns a function giving o [S, Hq, D]."""
import math

import tilelang
import tilelang.language as T


def build(nseq, hq, hkv, d, page, max_pages, num_blocks, pages_per_step=8, num_stages=2, threads=128,
          dtype="bfloat16"):
    group = hq // hkv
    rows = max(16, group)  # MMA rows: a group of 4 heads is padded to 16
    tokens = page * pages_per_step
    steps = math.ceil(max_pages / pages_per_step)
    scale_log2 = 1.0 / math.sqrt(d) * 1.4426950408889634
    acc_t = "float32"

    @T.prim_func
    def paged_decode(Q: T.Tensor((nseq, hq, d), dtype), KC: T.Tensor((num_blocks, page, hkv, d), dtype),
                     VC: T.Tensor((num_blocks, page, hkv, d), dtype), BT: T.Tensor((nseq, max_pages), "int32"),
                     Out: T.Tensor((nseq, hkv, rows, d), dtype)):
        with T.Kernel(hkv, nseq, threads=threads) as (hk, sq):
            q = T.alloc_shared((rows, d), dtype)
            k = T.alloc_shared((tokens, d), dtype)
            v = T.alloc_shared((tokens, d), dtype)
            s = T.alloc_fragment((rows, tokens), acc_t)
            p = T.alloc_shared((rows, tokens), dtype)  # the second GEMM reads P from shared memory
            o = T.alloc_fragment((rows, d), acc_t)
            m = T.alloc_fragment((rows,), acc_t)
            m_prev = T.alloc_fragment((rows,), acc_t)
            alpha = T.alloc_fragment((rows,), acc_t)
            l = T.alloc_fragment((rows,), acc_t)  # noqa: E741
            row_sum = T.alloc_fragment((rows,), acc_t)
            for i, j in T.Parallel(rows, d):
                q[i, j] = T.if_then_else(i < group, Q[sq, hk * group + T.min(i, group - 1), j], 0)
            T.fill(o, 0)
            T.fill(l, 0)
            T.fill(m, -T.infinity(acc_t))
            for st in T.Pipelined(steps, num_stages=num_stages):
                for t, j in T.Parallel(tokens, d):
                    k[t, j] = KC[BT[sq, T.min(st * pages_per_step + t // page, max_pages - 1)], t % page, hk, j]
                for t, j in T.Parallel(tokens, d):
                    v[t, j] = VC[BT[sq, T.min(st * pages_per_step + t // page, max_pages - 1)], t % page, hk, j]
                T.clear(s)
                T.gemm(q, k, s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(m, m_prev)
                T.reduce_max(s, m, dim=1, clear=False)
                for i in T.Parallel(rows):
                    alpha[i] = T.exp2((m_prev[i] - m[i]) * scale_log2)
                for i, t in T.Parallel(rows, tokens):
                    s[i, t] = T.exp2(s[i, t] * scale_log2 - m[i] * scale_log2)
                T.reduce_sum(s, row_sum, dim=1)
                for i in T.Parallel(rows):
                    l[i] = l[i] * alpha[i] + row_sum[i]
                T.copy(s, p)
                for i, j in T.Parallel(rows, d):
                    o[i, j] *= alpha[i]
                T.gemm(p, v, o, policy=T.GemmWarpPolicy.FullRow)
            for i, j in T.Parallel(rows, d):
                o[i, j] /= l[i]
            T.copy(o, Out[sq, hk, :, :])

    kernel = tilelang.compile(paged_decode, out_idx=[4], target="cuda")

    def run(q, k_cache, v_cache, block_table):
        padded = kernel(q, k_cache, v_cache, block_table)  # [S, Hkv, rows, D]
        return padded[:, :, :group].reshape(nseq, hq, d)  # a view: the slicing launches nothing

    return run
