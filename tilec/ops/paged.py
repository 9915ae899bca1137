"""`paged_attention(q, k_cache, v_cache, block_table, context_lens)`: one decode step over a paged KV cache.

The cache holds pages of `block_size` tokens: [num_blocks, block_size, Hkv, D]; sequence s's j-th page is
`block_table[s, j]`. One block owns one (sequence, kv head) and all `group = Hq // Hkv` query heads that share it,
so the group is the M dim of both GEMMs and every K/V page is read once per kv head. Each page is found with a
scalar load of the block table, then copied whole; the online softmax (as in flash attention) runs over pages.

Few long sequences leave most of the machine idle, so then the pages are split (flash-decoding): the grid gets a
split dim, each split writes its running max m (log2 domain), sum l and unnormalised accumulator, and a reduce
kernel merges the splits: O = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s with M = max_s m_s.
A sequence of length 0 (or a split past its end) has m = -inf and l = 0 and comes out as zeros.
"""
# no `from __future__ import annotations`: the T.Tensor annotations must be evaluated at `def` time
import functools

import numpy as np

import tilec
import tilec.language as T

from ..errors import TilecArgumentError
from ..settings import settings
from . import _host
from ._host import backend_for
from .online_softmax import online_softmax_update
from .attention import LOG2E

OP = "paged_attention"
#: a grid of fewer blocks than SPLIT_BELOW_BLOCKS leaves bandwidth unused, so the pages are split until the grid has
#: about SPLIT_GRID_BLOCKS. GPU: measured on an H200 (bf16, Hkv 8, D 128, pages of 16, 8 pages per step, 2026-11-29,
#: results/h200/paged_splits.json; % of a device copy): bs32 ctx4096 (256 blocks) 75% unsplit, 82/89/86% in 2/3/4
#: splits; bs64 ctx8192 (512 blocks) 82% unsplit, 98/100/100%: a persistent program per SM does not keep enough
#: gathers in flight, about six blocks per SM do. Earlier on an H100 (fp16, 1 page per step): 2 sequences of 32K
#: tokens (16 blocks) ran at 98 GB/s unsplit, 354 GB/s in 9 splits and 653 GB/s in 17. CPU: one block per thread,
#: aiming at two. The interpreter is never split unless asked.
SPLIT_BELOW_BLOCKS = {"triton": 768, "llvm": settings.num_threads, "interpreter": 0}
SPLIT_GRID_BLOCKS = {"triton": 768, "llvm": 2 * settings.num_threads, "interpreter": 0}
#: pages gathered per loop step and the loop's pipeline depth. One 16-token page per step leaves the GPU waiting on
#: each page's latency. Measured on an H200 (bf16, Hkv=8, D=128, pages of 16; 2026-11-29, tilec GB/s of KV read):
#: bs32 ctx4096 Hq32: 1 page/1 stage 654, 4/3 1929, 8/4 3149; bs64 ctx8192 Hq64: 1/1 667, 4/3 2391, 8/4 3456
#: (a device-to-device copy ran at 4087-4206 there). The interpreter takes two so the multi-page path is what the
#: CPU tests run.
STEP_CONFIG = {"triton": dict(pages_per_iter=8, num_stages=4), "llvm": dict(pages_per_iter=4, num_stages=1),
               "interpreter": dict(pages_per_iter=2, num_stages=1)}
MIN_PAGES_PER_SPLIT = 4  # below this a split's fixed cost (its stores and the reduce) outweighs its work


@functools.lru_cache(maxsize=None)
def paged_decode_kernel(dtype: str):
    """Unsplit decode: O[s, heads of kv head hk] from all of sequence s's pages."""

    @tilec.kernel
    def paged_attention_decode(Q: T.Tensor[("NSEQ", "HQ", "D"), dtype],
                               KC: T.Tensor[("NB", "BS", "HKV", "D"), dtype],
                               VC: T.Tensor[("NB", "BS", "HKV", "D"), dtype],
                               BT: T.Tensor[("NSEQ", "MAXB"), "int32"], CL: T.Tensor[("NSEQ",), "int32"],
                               O: T.Tensor[("NSEQ", "HQ", "D"), dtype], *, group: int = 1, scale_log2: float = 1.0,
                               pages_per_iter: int = 1, num_stages: int = 1):
        with T.Kernel(HKV, NSEQ) as (hk, sq):
            q = T.alloc_shared((group, D), dtype)
            kt = T.alloc_shared((BS * pages_per_iter, D), dtype)
            vt = T.alloc_shared((BS * pages_per_iter, D), dtype)
            s = T.alloc_fragment((group, BS * pages_per_iter), "float32")
            p = T.alloc_fragment((group, BS * pages_per_iter), dtype)
            acc = T.alloc_fragment((group, D), "float32")
            m = T.alloc_fragment((group,), "float32")
            m_prev = T.alloc_fragment((group,), "float32")
            m_safe = T.alloc_fragment((group,), "float32")
            alpha = T.alloc_fragment((group,), "float32")
            l = T.alloc_fragment((group,), "float32")  # noqa: E741
            row_sum = T.alloc_fragment((group,), "float32")
            ctx = CL[sq]
            T.copy(Q[sq, hk * group, 0], q)
            T.fill(m, -T.infinity("float32"))
            T.clear(l)
            T.clear(acc)
            npages = T.ceildiv(ctx, BS)
            for j in T.Pipelined(T.ceildiv(npages, pages_per_iter), num_stages=num_stages):
                # token t of this step's tile lies in page j * pages_per_iter + t // BS; pages past the sequence's
                # end read page 0 (always there) and are masked below
                for t, d in T.Parallel(BS * pages_per_iter, D):
                    pg = j * pages_per_iter + t // BS
                    blk = T.where(pg < npages, BT[sq, T.min(pg, MAXB - 1)], 0)
                    kt[t, d] = KC[blk, t % BS, hk, d]
                    vt[t, d] = VC[blk, t % BS, hk, d]
                T.clear(s)
                T.gemm(q, kt, s, transpose_b=True)
                for i, t in T.Parallel(group, BS * pages_per_iter):
                    s[i, t] = T.where(j * pages_per_iter * BS + t < ctx, s[i, t], -T.infinity("float32"))
                online_softmax_update(s, p, vt, acc, m, l, m_prev, m_safe, alpha, row_sum, group, BS * pages_per_iter,
                                      D, scale_log2)
            for i, d in T.Parallel(group, D):
                # l >= 1 once a key was seen (the max term adds 2^0); l = 0 means no key and acc = 0
                acc[i, d] = acc[i, d] / T.max(l[i], 1.0)
            T.copy(acc, O[sq, hk * group, 0])

    return paged_attention_decode


@functools.lru_cache(maxsize=None)
def paged_split_kernel(dtype: str):
    """Split decode: split sp covers pages [sp * pages_per_split, (sp + 1) * pages_per_split) of each sequence and
    writes its m, l and unnormalised accumulator for the reduce kernel."""

    @tilec.kernel
    def paged_attention_split(Q: T.Tensor[("NSEQ", "HQ", "D"), dtype],
                              KC: T.Tensor[("NB", "BS", "HKV", "D"), dtype],
                              VC: T.Tensor[("NB", "BS", "HKV", "D"), dtype],
                              BT: T.Tensor[("NSEQ", "MAXB"), "int32"], CL: T.Tensor[("NSEQ",), "int32"],
                              Mp: T.Tensor[("NSEQ", "HQ", "NSPLIT"), "float32"],
                              Lp: T.Tensor[("NSEQ", "HQ", "NSPLIT"), "float32"],
                              Ap: T.Tensor[("NSEQ", "NSPLIT", "HQ", "D"), "float32"],
                              *, group: int = 1, pages_per_split: int = 16, scale_log2: float = 1.0,
                              pages_per_iter: int = 1, num_stages: int = 1):
        with T.Kernel(HKV, NSEQ, NSPLIT) as (hk, sq, sp):
            q = T.alloc_shared((group, D), dtype)
            kt = T.alloc_shared((BS * pages_per_iter, D), dtype)
            vt = T.alloc_shared((BS * pages_per_iter, D), dtype)
            s = T.alloc_fragment((group, BS * pages_per_iter), "float32")
            p = T.alloc_fragment((group, BS * pages_per_iter), dtype)
            acc = T.alloc_fragment((group, D), "float32")
            m = T.alloc_fragment((group,), "float32")
            m_prev = T.alloc_fragment((group,), "float32")
            m_safe = T.alloc_fragment((group,), "float32")
            alpha = T.alloc_fragment((group,), "float32")
            l = T.alloc_fragment((group,), "float32")  # noqa: E741
            row_sum = T.alloc_fragment((group,), "float32")
            ctx = CL[sq]
            T.copy(Q[sq, hk * group, 0], q)
            T.fill(m, -T.infinity("float32"))
            T.clear(l)
            T.clear(acc)
            first = sp * pages_per_split
            end = T.min(first + pages_per_split, T.ceildiv(ctx, BS))  # this split's pages: [first, end)
            for j in T.Pipelined(T.ceildiv(T.max(end - first, 0), pages_per_iter), num_stages=num_stages):
                for t, d in T.Parallel(BS * pages_per_iter, D):
                    pg = first + j * pages_per_iter + t // BS
                    blk = T.where(pg < end, BT[sq, T.min(pg, MAXB - 1)], 0)
                    kt[t, d] = KC[blk, t % BS, hk, d]
                    vt[t, d] = VC[blk, t % BS, hk, d]
                T.clear(s)
                T.gemm(q, kt, s, transpose_b=True)
                for i, t in T.Parallel(group, BS * pages_per_iter):
                    tok = (first + j * pages_per_iter) * BS + t
                    s[i, t] = T.where(tok < T.min(ctx, end * BS), s[i, t], -T.infinity("float32"))
                online_softmax_update(s, p, vt, acc, m, l, m_prev, m_safe, alpha, row_sum, group, BS * pages_per_iter,
                                      D, scale_log2)
            T.copy(m, Mp[sq, hk * group:hk * group + group, sp])
            T.copy(l, Lp[sq, hk * group:hk * group + group, sp])
            T.copy(acc, Ap[sq, sp, hk * group, 0])

    return paged_attention_split


@functools.lru_cache(maxsize=None)
def paged_reduce_kernel(dtype: str):
    """Merge the splits of one (sequence, query head)."""

    @tilec.kernel
    def paged_attention_reduce(Mp: T.Tensor[("NSEQ", "HQ", "NSPLIT"), "float32"],
                               Lp: T.Tensor[("NSEQ", "HQ", "NSPLIT"), "float32"],
                               Ap: T.Tensor[("NSEQ", "NSPLIT", "HQ", "D"), "float32"],
                               O: T.Tensor[("NSEQ", "HQ", "D"), dtype]):
        with T.Kernel(HQ, NSEQ) as (h, sq):
            # the split stats are rows of one: their reductions give (1,) tiles that broadcast by loop variable
            ms = T.alloc_fragment((1, NSPLIT), "float32")
            ls = T.alloc_fragment((1, NSPLIT), "float32")
            w = T.alloc_fragment((1, NSPLIT), "float32")
            acc = T.alloc_fragment((NSPLIT, D), "float32")
            m_all = T.alloc_fragment((1,), "float32")
            l_all = T.alloc_fragment((1,), "float32")
            out = T.alloc_fragment((1, D), "float32")
            T.copy(Mp[sq, h, 0], ms)
            T.copy(Lp[sq, h, 0], ls)
            T.copy(Ap[sq, 0:NSPLIT, h, 0:D], acc)
            T.reduce_max(ms, m_all, dim=1)
            for r, i in T.Parallel(1, NSPLIT):
                # an empty split (m = -inf) weighs 2^-inf = 0; all empty: subtract 0, not -inf (no NaN)
                w[r, i] = T.exp2(ms[r, i] - T.where(m_all[r] == -T.infinity("float32"), 0.0, m_all[r]))
                ls[r, i] = ls[r, i] * w[r, i]
            T.reduce_sum(ls, l_all, dim=1)
            for r, i in T.Parallel(1, NSPLIT):
                # l_all >= 1 unless every split is empty (then w = 0): the largest split's weight is 1, its l >= 1
                w[r, i] = w[r, i] / T.max(l_all[r], 1.0)
            # out = w @ acc: the weighted sum of the splits' accumulators
            T.clear(out)
            T.gemm(w, acc, out)
            T.copy(out, O[sq, h, 0])

    return paged_attention_reduce


def paged_attention(q, k_cache, v_cache, block_table, context_lens, *, scale: float | None = None,
                    num_splits: int | None = None, check: bool = True, target: str | None = None, config=None,
                    tune: str | None = None, **consts):
    """Attention of each sequence's one new query token over its cached tokens.

    q [num_seqs, Hq, D]; k_cache, v_cache [num_blocks, block_size, Hkv, D] (Hq a multiple of Hkv); block_table
    int [num_seqs, max_blocks] (page ids); context_lens int [num_seqs] (tokens cached per sequence, 0 allowed:
    its output is zeros). Returns [num_seqs, Hq, D] of q's kind and dtype. scale defaults to 1/sqrt(D).
    num_splits: pages split over this many blocks per sequence (None picks, 1 never splits).
    check=False skips the host check of the page ids and lengths (unsafe: a bad one reads outside the cache).
    Keywords pages_per_iter (pages per loop step) and num_stages override the op's; `config="auto"` takes the cost
    model's pick of them instead (no measurement; keywords given are held; the split count stays the host's rule)
    and `tune="measure"` times the model's top 8 once per shape bucket.
    """
    nseq, hq, d, nblocks, bsize, hkv, maxb = check_paged_inputs(q, k_cache, v_cache, block_table, context_lens)
    if check:
        lens = _host.host_numpy(context_lens)
        check_pages(block_table, lens, nblocks, bsize, maxb)
        longest = int(lens.max()) if lens.size else 0
    else:  # no device-to-host sync: the table's width bounds every length
        longest = maxb * bsize
    dtype = _host.dtype_name(q)
    if nseq * hq * d == 0 or longest <= 0:
        return _host.zeros(q, (nseq, hq, d), dtype)
    out = _host.empty(q, (nseq, hq, d), dtype)  # every row is written (a length-0 sequence as zeros)
    q, scale = _host.softmax_scale(OP, q, scale, d)
    group = hq // hkv
    q, k_cache, v_cache = (_host.contiguous(x) for x in (q, k_cache, v_cache))
    table, lens_dev = _host.as_int32(OP, "block_table", block_table), _host.as_int32(OP, "context_lens", context_lens)
    pages = -(-longest // bsize)
    where = backend_for(q, target)
    if config is not None or tune is not None:  # the kernel call checks the values and asks the cost model,
        # which takes every sequence as long as the longest (without the check: as the block table allows)
        step = dict(config=config, tune=tune, assume={"CL": longest}, **consts)
    else:
        step = {**STEP_CONFIG[where], **consts}
        step["pages_per_iter"] = max(1, min(step["pages_per_iter"], pages))  # no step wider than the longest one
    splits = num_splits or pick_num_splits(nseq * hkv, pages, where)
    per_split = -(-pages // max(1, splits))
    splits = -(-pages // per_split)  # no split left empty for the longest sequence
    if splits == 1:
        paged_decode_kernel(dtype)(q, k_cache, v_cache, table, lens_dev, out, target=target, group=group,
                                   scale_log2=scale * LOG2E, **step)
        return out
    # each (kv head, sequence, split) block writes its m, l and acc, empty split or not: no fills needed
    m = _host.empty(q, (nseq, hq, splits), "float32")
    l = _host.empty(q, (nseq, hq, splits), "float32")  # noqa: E741
    acc = _host.empty(q, (nseq, splits, hq, d), "float32")
    paged_split_kernel(dtype)(q, k_cache, v_cache, table, lens_dev, m, l, acc, target=target, group=group,
                              pages_per_split=per_split, scale_log2=scale * LOG2E, **step)
    paged_reduce_kernel(dtype)(m, l, acc, out, target=target)
    return out


def pick_num_splits(blocks: int, pages: int, where: str) -> int:
    """1 when the grid is big enough (SPLIT_BELOW_BLOCKS); else enough splits for about SPLIT_GRID_BLOCKS blocks,
    >= MIN_PAGES_PER_SPLIT pages each."""
    if blocks >= SPLIT_BELOW_BLOCKS[where]:
        return 1
    return max(1, min(-(-SPLIT_GRID_BLOCKS[where] // blocks), pages // MIN_PAGES_PER_SPLIT))


def check_paged_inputs(q, k_cache, v_cache, block_table, context_lens) -> tuple:
    named = {"q": q, "k_cache": k_cache, "v_cache": v_cache, "block_table": block_table,
             "context_lens": context_lens}
    for name, x in named.items():
        _host.check_array(OP, name, x, {"q": 3, "block_table": 2, "context_lens": 1}.get(name, 4))
    _host.check_same_kind(OP, named)
    dtype = _host.dtype_name(q)
    if dtype not in _host.FLOAT_DTYPES:
        raise TilecArgumentError(f"{OP}: 'q' has dtype {dtype}; expected one of "
                                       f"{', '.join(_host.FLOAT_DTYPES)}")
    nseq, hq, d = q.shape
    nblocks, bsize, hkv = k_cache.shape[:3]
    for name in ("k_cache", "v_cache"):
        _host.check_array(OP, name, named[name], 4, (dtype,))
        _host.check_shape(OP, name, named[name], (nblocks, bsize, hkv, d),
                          "[num_blocks, block_size, Hkv, D] with q's D" if name == "k_cache" else "k_cache's shape")
    if hkv == 0 or hq % hkv:
        raise TilecArgumentError(f"{OP}: 'q' has {hq} heads and 'k_cache' {hkv}; the query heads must be a "
                                       f"multiple of the kv heads")
    if bsize == 0:
        raise TilecArgumentError(f"{OP}: 'k_cache' has block_size 0 (shape {tuple(k_cache.shape)})")
    maxb = block_table.shape[1]
    _host.check_shape(OP, "block_table", block_table, (nseq, maxb), "[num_seqs, max_blocks]")
    _host.check_shape(OP, "context_lens", context_lens, (nseq,), "[num_seqs]")
    for name in ("block_table", "context_lens"):
        if not _host.dtype_name(named[name]).startswith(("int", "uint")):
            raise TilecArgumentError(f"{OP}: '{name}' must hold integers (int32), got {_host.dtype_name(named[name])}")
    return nseq, hq, d, nblocks, bsize, hkv, maxb


def check_pages(block_table, lens: np.ndarray, nblocks: int, bsize: int, maxb: int):
    """Lengths in [0, max_blocks * block_size]; the pages each length uses name real cache blocks."""
    _host.check_index_range(OP, "context_lens", lens, 0, maxb * bsize + 1,
                            f"a length (max_blocks {maxb} x block_size {bsize} at most)")
    table = _host.host_numpy(block_table)
    used = np.arange(maxb)[None, :] < -(-lens[:, None] // bsize)
    bad = used & ((table < 0) | (table >= nblocks))  # entries past a sequence's last page are never read
    if bad.any():
        s, j = (int(i) for i in np.argwhere(bad)[0])
        raise TilecArgumentError(f"{OP}: block_table[{s}, {j}] = {int(table[s, j])} is out of range; page {j} of "
                                 f"sequence {s} (context_lens[{s}] = {int(lens[s])}) must be a block id in "
                                 f"[0, {nblocks - 1}] (check=False skips this check, unsafe)")
