"""CPU (LLVM backend): each LLM op next to a straightforward vectorised NumPy implementation of it, fp32, same run.
Usage: python benchmarks/cpu_llm_ops.py [--repeat 5] [--pause 0.15] [--only grouped,kv_] [--auto]

--auto adds a row for each op that takes config="auto" (softmax, flash attention): the cost model's pick for the
shape in place of the op's default tiles, timed in the same run (the pick's one-off ranking is outside the timing).

Each timed call, tilec's and NumPy's alike, comes after a pause: after a BLAS call OpenBLAS's worker threads spin for
about 0.1 s and would take a core from whatever runs next (benchmarks/cpu_gemm.py measured this)."""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import tilec.ops as ops

rng = np.random.default_rng(0)


def median_s(fn, repeat, pause=0.0):
    fn()  # warm-up: compiles (or loads from the cache) and touches the data
    times = []
    for _ in range(repeat):
        time.sleep(pause)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_attention(q, k, v, causal):
    s = np.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(q.shape[-1])
    if causal:
        sq, sk = s.shape[-2:]
        s = np.where(np.arange(sk)[None, :] <= np.arange(sq)[:, None] + sk - sq, s, -np.inf)
    return np.einsum("bhqk,bhkd->bhqd", np_softmax(s), v)


def np_paged(q, kc, vc, table, lens):
    bs, hq, d = q.shape
    hkv = kc.shape[2]
    k = kc[table].reshape(bs, -1, hkv, d)  # gather every page, then attend (lengths are full here)
    v = vc[table].reshape(bs, -1, hkv, d)
    k = np.repeat(k, hq // hkv, axis=2)
    v = np.repeat(v, hq // hkv, axis=2)
    s = np.einsum("bhd,bkhd->bhk", q, k) / np.sqrt(d)
    return np.einsum("bhk,bkhd->bhd", np_softmax(s), v)


def np_sparse(q, k, v, idx, scale):
    kg, vg = k[idx, 0], v[idx, 0]  # [t, topk, d]
    s = np.einsum("thd,tkd->thk", q, kg) * scale
    return np.einsum("thk,tkd->thd", np_softmax(s), vg)


def np_grouped(x, w, offsets):
    y = np.empty((x.shape[0], w.shape[2]), np.float32)
    lo = 0
    for e, hi in enumerate(offsets):
        y[lo:hi] = x[lo:hi] @ w[e]
        lo = hi
    return y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pause", type=float, default=0.15, help="seconds of sleep before each timed call")
    ap.add_argument("--only", default="", help="comma-separated parts of case names to run (default: all)")
    ap.add_argument("--auto", action="store_true", help="also time config=\"auto\" where an op takes it")
    args = ap.parse_args()
    r, pause = args.repeat, args.pause
    f32 = np.float32
    rows = []

    def case(name, tilec_fn, numpy_fn):
        if args.only and not any(part in name for part in args.only.split(",")):
            return
        t, n = median_s(tilec_fn, r, pause), median_s(numpy_fn, r, pause)
        rows.append((name, t * 1e3, n * 1e3, n / t))
        print(f"| {name} | {t * 1e3:.2f} | {n * 1e3:.2f} | {n / t:.2f} |", flush=True)

    print(f"# {platform.machine()} {os.cpu_count()} cores, numpy {np.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, median of {r}, {pause} s pause before each call")
    print("| op (fp32) | tilec ms | NumPy ms | NumPy time / tilec time |\n|---|---|---|---|")
    x = rng.standard_normal((2048, 1000)).astype(f32)
    picks = [{}, {"config": "auto"}] if args.auto else [{}]
    for pick in picks:
        tag = " config=auto" if pick else ""
        case(f"softmax 2048x1000{tag}", lambda: ops.softmax(x, **pick), lambda: np_softmax(x))
    q, k, v = (rng.standard_normal((1, 8, 1024, 64)).astype(f32) for _ in range(3))
    for causal in (False, True):
        for pick in picks:
            tag = " config=auto" if pick else ""
            case(f"flash_attention B1 H8 S1024 D64 causal={causal}{tag}",
                 lambda: ops.flash_attention(q, k, v, causal=causal, **pick), lambda: np_attention(q, k, v, causal))
    bs, ctx, hq, hkv, d, page = 8, 2048, 16, 4, 128, 16
    kc = rng.standard_normal((bs * ctx // page, page, hkv, d)).astype(f32)
    vc = rng.standard_normal(kc.shape).astype(f32)
    table = rng.permutation(kc.shape[0]).astype(np.int32).reshape(bs, -1)
    lens = np.full(bs, ctx, np.int32)
    qd = rng.standard_normal((bs, hq, d)).astype(f32)
    case(f"paged_attention bs{bs} ctx{ctx} Hq{hq} Hkv{hkv} D{d}", lambda: ops.paged_attention(qd, kc, vc, table, lens),
         lambda: np_paged(qd, kc, vc, table, lens))
    t, hs, n, topk = 16, 16, 4096, 2048
    qs = rng.standard_normal((t, hs, 576)).astype(f32) / 8
    ks = rng.standard_normal((n, 1, 576)).astype(f32) / 8
    vs = ks[:, :, :512]  # MLA: V is the latent part of the same rows (tilec reads each gathered row once)
    idx = np.stack([rng.permutation(n)[:topk] for _ in range(t)]).astype(np.int32)
    case(f"sparse_attention MLA T{t} Hq{hs} topk{topk}", lambda: ops.sparse_attention(qs, ks, vs, idx, scale=0.04),
         lambda: np_sparse(qs, ks, vs, idx, 0.04))
    xq, xk, wt = (rng.standard_normal(s).astype(f32) for s in ((64, 16, 64), (4096, 64), (64, 16)))
    case("lightning_indexer T64 H16 D64 N4096", lambda: ops.lightning_indexer(xq, xk, wt),
         lambda: np.einsum("th,thn->tn", wt, np.maximum(np.einsum("thd,nd->thn", xq, xk), 0)))
    for e, tok, kk, nn in ((16, 64, 1024, 512), (64, 16, 1024, 512)):  # prefill-like and decode-like loads
        xm = rng.standard_normal((e * tok, kk)).astype(f32)
        wm = rng.standard_normal((e, kk, nn)).astype(f32)
        offs = (np.arange(1, e + 1) * tok).astype(np.int32)
        case(f"grouped_gemm E{e} {tok} tok/expert K{kk} N{nn}", lambda: ops.grouped_gemm(xm, wm, offs),
             lambda: np_grouped(xm, wm, offs))
    cache = rng.standard_normal((4096, 16, 8, 128)).astype(f32)
    ids = rng.permutation(4096)[:2048].astype(np.int32)
    case("kv_gather 2048 pages 16x8x128", lambda: ops.kv_gather(cache, ids), lambda: cache[ids])
    key = rng.standard_normal((8192, 8, 128)).astype(f32)
    kc2, vc2 = np.zeros_like(cache), np.zeros_like(cache)
    slots = rng.permutation(4096 * 16)[:8192].astype(np.int32)

    def np_scatter():
        kc2.reshape(-1, 8, 128)[slots] = key
        vc2.reshape(-1, 8, 128)[slots] = key

    case("kv_scatter 8192 tokens 8x128", lambda: ops.kv_scatter(key, key, kc2, vc2, slots), np_scatter)


if __name__ == "__main__":
    main()
