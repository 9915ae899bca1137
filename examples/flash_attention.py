"""Flash attention with tilec.ops.attention.flash_attention, checked against NumPy in float64 and timed next to a
NumPy softmax(QK^T)V (CPU) or torch's scaled_dot_product_attention (CUDA).

    python examples/flash_attention.py                     # CPU: NumPy arrays -> the LLVM backend
    python examples/flash_attention.py --causal --hkv 2    # GQA, causal
    python examples/flash_attention.py --device cuda --seq 4096 --dtype float16   # torch CUDA -> Triton
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from tilec.ops.attention import flash_attention
from tilec.testing import best_time

#: allowed max |o - o_ref| per dtype (fp16/bf16 probabilities are rounded before the PV product)
TOLERANCE = {"float32": 1e-4, "float16": 5e-3, "bfloat16": 4e-2}


def attention_reference(q, k, v, causal: bool, dtype=np.float64) -> np.ndarray:
    """softmax(q k^T / sqrt(D) + mask) v in `dtype`, GQA heads repeated, causal aligned bottom right."""
    q, k, v = (np.asarray(x, dtype=dtype) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])
    if causal:
        sq, skv = q.shape[2], k.shape[2]
        s = np.where(np.arange(skv)[None, :] <= np.arange(sq)[:, None] + skv - sq, s, -np.inf)
    s = np.exp(s - s.max(-1, keepdims=True))
    return s @ v / s.sum(-1, keepdims=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8, help="query heads")
    parser.add_argument("--hkv", type=int, default=None, help="kv heads (default: --heads)")
    parser.add_argument("--seq", type=int, default=509, help="query length")
    parser.add_argument("--kv-seq", type=int, default=None, help="key length (default: --seq)")
    parser.add_argument("--dim", type=int, default=64, help="head dim")
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=sorted(TOLERANCE))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    hkv, skv = args.hkv or args.heads, args.kv_seq or args.seq

    rng = np.random.default_rng(0)
    shapes = ((args.batch, args.heads, args.seq, args.dim), (args.batch, hkv, skv, args.dim),
              (args.batch, hkv, skv, args.dim))
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    if args.device == "cuda":
        import torch
        import torch.nn.functional as F

        tq, tk, tv = (torch.from_numpy(x).to("cuda", getattr(torch, args.dtype)) for x in (q, k, v))
        out = flash_attention(tq, tk, tv, causal=args.causal).float().cpu().numpy()
        ours = best_time(lambda: flash_attention(tq, tk, tv, causal=args.causal), args.repeat, torch.cuda.synchronize)
        # SDPA's is_causal is top-left aligned, so it is only a fair peer when Sq == Skv
        peer_name = "torch sdpa"
        peer = best_time(lambda: F.scaled_dot_product_attention(tq, tk, tv, is_causal=args.causal,
                                                                enable_gqa=hkv != args.heads),
                         args.repeat, torch.cuda.synchronize)
        q, k, v = (x.float().cpu().numpy() for x in (tq, tk, tv))  # the rounded inputs the kernel saw
    else:
        if args.dtype == "bfloat16":
            import ml_dtypes

            q, k, v = (x.astype(ml_dtypes.bfloat16) for x in (q, k, v))
        else:
            q, k, v = (x.astype(args.dtype) for x in (q, k, v))
        out = flash_attention(q, k, v, causal=args.causal)
        ours = best_time(lambda: flash_attention(q, k, v, causal=args.causal), args.repeat)
        q32, k32, v32 = (x.astype(np.float32) for x in (q, k, v))
        peer_name = "numpy fp32"
        peer = best_time(lambda: attention_reference(q32, k32, v32, args.causal, np.float32), args.repeat)

    error = float(np.abs(out.astype(np.float64) - attention_reference(q, k, v, args.causal)).max())
    # 4 flops per (query, key, dim) for QK^T and PV; causal (Sq == Skv) does about half
    flops = 4.0 * args.batch * args.heads * args.seq * skv * args.dim * (0.5 if args.causal else 1.0)
    print(f"flash attention B={args.batch} Hq={args.heads} Hkv={hkv} Sq={args.seq} Skv={skv} D={args.dim} "
          f"causal={args.causal} {args.dtype} on {args.device}")
    print(f"  max |o - o_ref| = {error:.2e} (tolerance {TOLERANCE[args.dtype]:.0e})")
    print(f"  tilec         {flops / ours / 1e12:8.3f} TFLOP/s  ({ours * 1e3:.3f} ms)")
    print(f"  {peer_name:13s} {flops / peer / 1e12:8.3f} TFLOP/s  ({peer * 1e3:.3f} ms)")
    ok = error <= TOLERANCE[args.dtype]
    print("  OK" if ok else "  FAILED: error above tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
