"""fp32 GEMM on the CPU: tilec's LLVM backend vs NumPy (its BLAS), measured in the same run.

    python benchmarks/cpu_gemm.py [--sizes 1024 2048] [--configs 96x128x256 64x64x128] [--threads N]

Prints one row per (size, config): lowering time, optimise+object time, best-of-N (and median) GFLOP/s of both (timed
alternately, so other load on the machine hits both alike) and the ratio to NumPy.

Each timed call comes after a pause (--pause, default 0.15 s): after a call OpenBLAS's worker threads spin for about
0.1 s (measured 2026-11-29: 0.10 s of CPU time during a 0.2 s sleep after a 1024^3 sgemm), so without it the next
call, tilec's, ran with one of two cores taken by NumPy's spinning thread.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tilec
import tilec.language as T
from tilec.lowering import llvm as backend
from tilec.settings import settings


@tilec.kernel
def matmul(A: T.Tensor[("M", "K"), "float32"], B: T.Tensor[("K", "N"), "float32"],
           C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 64, block_n: int = 64,
           block_k: int = 32, num_stages: int = 2):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_m, block_k), A.dtype)
        b = T.alloc_shared((block_k, block_n), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
            T.copy(A[by * block_m, k * block_k], a)
            T.copy(B[k * block_k, bx * block_n], b)
            T.gemm(a, b, acc)
        T.copy(acc, C[by * block_m, bx * block_n])


def timings(fns, repeats: int, pause: float = 0.0) -> list:
    """(best, median) time of each function, alternating between them so that load from other processes hits all
    alike; `pause` seconds before each timed call let the previous call's idle threads stop spinning."""
    for fn in fns:
        fn()  # warm up (page faults, caches)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            time.sleep(pause)
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [(min(ts), statistics.median(ts)) for ts in times]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    default = backend.CPU_GEMM_CONFIG
    p.add_argument("--configs", nargs="+",
                   default=[f"{default['block_m']}x{default['block_n']}x{default['block_k']}"],
                   help="block_m x block_n x block_k")
    p.add_argument("--stages", type=int, default=default["num_stages"])
    p.add_argument("--threads", type=int, default=settings.num_threads)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pause", type=float, default=0.15, help="seconds of sleep before each timed call")
    args = p.parse_args()
    settings.num_threads = args.threads

    print(f"threads={args.threads}  num_stages={args.stages}")
    print(f"{'size':>6} {'config':>12} {'lower ms':>9} {'opt+obj ms':>10} {'tilec GF/s':>10} {'numpy GF/s':>10} "
          f"{'ratio':>6} {'max err':>9}  median: {'tilec':>6} {'numpy':>6} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        flops = 2.0 * n ** 3
        ref = a @ b
        for cfg in args.configs:
            bm, bn, bk = (int(x) for x in cfg.split("x"))
            kern = matmul.specialize({"M": n, "N": n, "K": n},
                                     {"block_m": bm, "block_n": bn, "block_k": bk, "num_stages": args.stages}, "llvm")
            t0 = time.perf_counter()
            text = backend.lower(kern)
            t1 = time.perf_counter()
            obj = backend.compile_object(text)
            t2 = time.perf_counter()
            run = backend.load(obj, kern)
            c = np.empty((n, n), np.float32)
            (t_tc, m_tc), (t_np, m_np) = timings([lambda: run(a, b, c), lambda: a @ b], args.repeats, args.pause)
            err = float(np.abs(c - ref).max() / np.abs(ref).max())
            print(f"{n:>6} {cfg:>12} {(t1 - t0) * 1e3:>9.1f} {(t2 - t1) * 1e3:>10.1f} {flops / t_tc / 1e9:>10.1f} "
                  f"{flops / t_np / 1e9:>10.1f} {t_np / t_tc:>6.2f} {err:>9.1e}          {flops / m_tc / 1e9:>6.1f} "
                  f"{flops / m_np / 1e9:>6.1f} {m_np / m_tc:>6.2f}")


if __name__ == "__main__":
    main()
