"""Row-wise softmax with tilec.ops.softmax, checked against NumPy in float64 and timed next to NumPy (CPU) or
torch.softmax (CUDA). Rows longer than one tile take the two-pass online kernel.

    python examples/softmax.py                            # CPU: NumPy arrays -> the LLVM backend
    python examples/softmax.py --m 4096 --n 5003 --device cuda   # torch CUDA -> Triton
"""
from __future__ import annotations

import argparse

import numpy as np

import tilec.ops
from tilec.testing import best_time

#: allowed max |y - y_ref| per dtype (outputs lie in [0, 1]; fp16 keeps 11 significant bits)
TOLERANCE = {"float32": 1e-6, "float16": 1e-3, "float64": 1e-12}


def softmax_reference(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    """The peer on the CPU: the same formula in NumPy, in x's dtype."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m", type=int, default=4096, help="rows")
    parser.add_argument("--n", type=int, default=1000, help="row length")
    parser.add_argument("--dtype", default="float32", choices=sorted(TOLERANCE))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.m, args.n)) * 4).astype(args.dtype)
    reference = softmax_reference(x)

    if args.device == "cuda":
        import torch

        tx = torch.from_numpy(x).cuda()
        y = tilec.ops.softmax(tx).cpu().numpy()
        ours = best_time(lambda: tilec.ops.softmax(tx), args.repeat, torch.cuda.synchronize)
        peer_name = "torch.softmax"
        peer = best_time(lambda: torch.softmax(tx, dim=-1), args.repeat, torch.cuda.synchronize)
    else:
        y = tilec.ops.softmax(x)
        ours = best_time(lambda: tilec.ops.softmax(x), args.repeat)
        peer_name, peer = "numpy", best_time(lambda: numpy_softmax(x), args.repeat)

    error = float(np.abs(y.astype(np.float64) - reference).max()) if y.size else 0.0
    moved = 2.0 * x.size * x.itemsize  # one read and one write of x: what a fused softmax cannot avoid
    print(f"softmax {args.m}x{args.n} {args.dtype} on {args.device}")
    print(f"  max |y - y_ref| = {error:.2e} (tolerance {TOLERANCE[args.dtype]:.0e})")
    print(f"  tilec         {moved / ours / 1e9:8.2f} GB/s  ({ours * 1e3:.3f} ms)")
    print(f"  {peer_name:13s} {moved / peer / 1e9:8.2f} GB/s  ({peer * 1e3:.3f} ms)")
    ok = error <= TOLERANCE[args.dtype]
    print("  OK" if ok else "  FAILED: error above tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
