"""C = A @ B with tilec.ops.gemm, checked against NumPy in float64 and timed next to NumPy (CPU) or torch.matmul
(CUDA).

    python examples/gemm.py                          # CPU: NumPy arrays -> the LLVM backend
    python examples/gemm.py --m 4096 --n 4096 --k 4096 --device cuda --dtype float16   # torch CUDA -> Triton
"""
from __future__ import annotations

import argparse

import numpy as np

import tilec.ops
from tilec.testing import best_time

#: allowed max |C - C_ref| / max |C_ref| per input dtype (fp32 accumulation in both cases; a half-precision
#: output is rounded to 11 significant bits, 2^-11 ~ 5e-4)
TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "float64": 1e-12}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--dtype", default="float32", choices=sorted(TOLERANCE))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.m, args.k)).astype(args.dtype)
    b = rng.standard_normal((args.k, args.n)).astype(args.dtype)
    reference = a.astype(np.float64) @ b.astype(np.float64)

    if args.device == "cuda":
        import torch

        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        c = tilec.ops.gemm(ta, tb).cpu().numpy()
        ours = best_time(lambda: tilec.ops.gemm(ta, tb), args.repeat, torch.cuda.synchronize)
        peer_name, peer = "torch.matmul", best_time(lambda: torch.matmul(ta, tb), args.repeat, torch.cuda.synchronize)
    else:
        c = tilec.ops.gemm(a, b)
        ours = best_time(lambda: tilec.ops.gemm(a, b), args.repeat)
        peer_name, peer = "numpy.matmul", best_time(lambda: a @ b, args.repeat)

    scale = max(float(np.abs(reference).max()), 1e-30)
    error = float(np.abs(c.astype(np.float64) - reference).max()) / scale if c.size else 0.0
    flops = 2.0 * args.m * args.n * args.k
    print(f"gemm {args.m}x{args.n}x{args.k} {args.dtype} on {args.device}")
    print(f"  max |C - C_ref| / max |C_ref| = {error:.2e} (tolerance {TOLERANCE[args.dtype]:.0e})")
    print(f"  tilec        {flops / ours / 1e9:9.1f} GFLOP/s  ({ours * 1e3:.3f} ms)")
    print(f"  {peer_name:12s} {flops / peer / 1e9:9.1f} GFLOP/s  ({peer * 1e3:.3f} ms)")
    ok = error <= TOLERANCE[args.dtype]
    print("  OK" if ok else "  FAILED: error above tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
