"""DeepSeek-V3.2 sparse attention (DSA) end to end: the lightning indexer scores every causal key per token, the
top-k keys are kept (host-side selection), and MLA-shaped sparse attention runs over them. Each stage is checked
against NumPy in float64, and the attention kernel is timed.

    python examples/sparse_attention.py                        # CPU (LLVM), small MLA-shaped problem
    python examples/sparse_attention.py --tokens 64 --heads 128 --keys 8192 --device cuda --dtype bfloat16
"""
import argparse

import numpy as np

from tilec.ops.indexer import lightning_indexer, lightning_indexer_reference, topk_indices
from tilec.ops.sparse import sparse_attention, sparse_attention_reference
from tilec.testing import best_time

#: allowed max |o - o_ref| per dtype (attention outputs are convex combinations of v rows, |v| ~ 1..4)
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 6e-2}
DQK, DV = 576, 512  # MLA: 512 latent + 64 rope dims for q.k, 512 latent dims for v (DeepSeek-V3 config)
INDEX_HEADS, INDEX_DIM = 64, 128  # DeepSeek-V3.2's indexer: 64 heads of 128 dims


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4, help="query tokens (the last ones of the sequence)")
    parser.add_argument("--keys", type=int, default=2500, help="sequence length (cached kv rows)")
    parser.add_argument("--heads", type=int, default=16, help="query heads sharing the one MLA kv head")
    parser.add_argument("--topk", type=int, default=2048)
    parser.add_argument("--dtype", default="float32", choices=sorted(TOLERANCE))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.tokens > args.keys:
        parser.error("--tokens must not exceed --keys (queries are the sequence's last tokens)")

    rng = np.random.default_rng(0)
    t, n, h = args.tokens, args.keys, args.heads
    q, kv = rng.standard_normal((t, h, DQK)).astype(np.float32), rng.standard_normal((n, 1, DQK)).astype(np.float32)
    qi = rng.standard_normal((t, INDEX_HEADS, INDEX_DIM)).astype(np.float32)
    ki = rng.standard_normal((n, INDEX_DIM)).astype(np.float32)
    wi = (rng.standard_normal((t, INDEX_HEADS)) / INDEX_HEADS).astype(np.float32)
    lengths = np.arange(n - t, n) + 1  # causal: token i of the tail sees keys 0..n-t+i

    if args.device == "cuda":
        import torch

        if args.dtype == "bfloat16":  # NumPy has no bfloat16: make the torch tensors from fp32 and round there
            dev = lambda x: torch.from_numpy(x).cuda().to(torch.bfloat16) if x.dtype == np.float32 else \
                torch.from_numpy(x).cuda()  # noqa: E731
        else:
            dev = lambda x: torch.from_numpy(x.astype(args.dtype) if x.dtype == np.float32 else x).cuda()  # noqa
        host = lambda x: x.float().cpu().numpy()  # noqa: E731
        sync = torch.cuda.synchronize
    else:
        if args.dtype == "bfloat16":
            import ml_dtypes

            dev = lambda x: x.astype(ml_dtypes.bfloat16) if x.dtype == np.float32 else x  # noqa: E731
        else:
            dev = lambda x: x.astype(args.dtype) if x.dtype == np.float32 else x  # noqa: E731
        host = lambda x: np.asarray(x, np.float64)  # noqa: E731
        sync = lambda: None  # noqa: E731
    in_dtype = lambda x: host(dev(x)).astype(np.float64)  # noqa: E731 - the inputs as the kernel sees them

    scores = lightning_indexer(dev(qi), dev(ki), dev(wi) if args.device == "cuda" else wi)
    score_error = float(np.abs(host(scores) - lightning_indexer_reference(in_dtype(qi), in_dtype(ki), wi)).max())
    lengths_dev = lengths if args.device == "cpu" else torch.from_numpy(lengths).cuda()
    idx = topk_indices(scores, args.topk, lengths=lengths_dev)
    idx_host = np.asarray(host(idx), np.int64)
    dq, dkv = dev(q), dev(kv)
    dvv = dkv[:, :, :DV]  # MLA: V is a view of the keys' latent part (each gathered row is read once)
    out = sparse_attention(dq, dkv, dvv, idx)
    reference = sparse_attention_reference(in_dtype(q), in_dtype(kv), in_dtype(kv)[:, :, :DV], idx_host)
    error = float(np.abs(host(out) - reference).max())
    seconds = best_time(lambda: sparse_attention(dq, dkv, dvv, idx), args.repeat, sync)
    valid = int((idx_host >= 0).sum())
    flops = 2.0 * h * valid * (DQK + DV)
    print(f"DSA: {t} tokens x {h} heads, {n} keys, top-{args.topk}, {args.dtype} on {args.device}")
    print(f"  indexer   max |s - s_ref| = {score_error:.2e} (relative to max |s| {np.abs(host(scores)).max():.1f})")
    print(f"  attention max |o - o_ref| = {error:.2e} (tolerance {TOLERANCE[args.dtype]:.0e})")
    print(f"  attention {seconds * 1e3:.3f} ms, {flops / seconds / 1e9:.1f} GFLOP/s over the {valid} valid keys")
    ok = error <= TOLERANCE[args.dtype] and score_error <= 1e-3 * max(1.0, np.abs(host(scores)).max())
    print("  OK" if ok else "  FAILED: error above tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
