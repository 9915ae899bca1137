"""A mixture-of-experts layer from tilec's MoE ops: route each token to its top-k experts, permute the tokens into
expert order (moe_permute), run every expert's matmul in one grouped GEMM (grouped_gemm), and combine the expert
outputs with the router weights (moe_unpermute). Checked against NumPy in float64 and timed.

    python examples/moe.py                                             # CPU (LLVM backend)
    python examples/moe.py --tokens 4096 --hidden 2048 --out 1408 --experts 64 --topk 6 --device cuda --dtype float16
"""
import argparse

import numpy as np

from tilec.ops.moe import grouped_gemm, moe_permute, moe_unpermute
from tilec.testing import best_time

#: allowed max |y - y_ref| relative to max |y_ref| per dtype (sums of `hidden` products)
TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "bfloat16": 3e-2}


def moe_reference(x, w, topk_ids, topk_weights) -> np.ndarray:
    """Per expert: the tokens routed to it, times its weights, scaled and summed back (float64)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    out = np.zeros((x.shape[0], w.shape[2]))
    for e in range(w.shape[0]):
        tok, slot = np.nonzero(topk_ids == e)
        out[tok] += topk_weights[tok, slot, None] * (x[tok] @ w[e])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=257)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--out", type=int, default=192, help="each expert's output width")
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--topk", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=sorted(TOLERANCE))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.topk > args.experts:
        parser.error("--topk must not exceed --experts")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.tokens, args.hidden)).astype(np.float32)
    w = (rng.standard_normal((args.experts, args.hidden, args.out)) / np.sqrt(args.hidden)).astype(np.float32)
    # skewed routing (some experts popular, some empty), as a trained router gives
    popularity = rng.dirichlet(np.full(args.experts, 0.3))
    topk_ids = np.stack([rng.choice(args.experts, args.topk, replace=False, p=popularity)
                         for _ in range(args.tokens)]).astype(np.int32)
    logits = rng.standard_normal((args.tokens, args.topk))
    topk_weights = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)

    if args.device == "cuda":
        import torch

        dtype = getattr(torch, args.dtype)
        floats = lambda a: torch.from_numpy(a).cuda().to(dtype)  # noqa: E731
        ints = lambda a: torch.from_numpy(a).cuda()  # noqa: E731
        host = lambda a: a.float().cpu().numpy().astype(np.float64)  # noqa: E731
        sync = torch.cuda.synchronize
    else:
        if args.dtype == "bfloat16":
            import ml_dtypes

            floats = lambda a: a.astype(ml_dtypes.bfloat16)  # noqa: E731
        else:
            floats = lambda a: a.astype(args.dtype)  # noqa: E731
        ints = lambda a: a  # noqa: E731
        host = lambda a: np.asarray(a, np.float64)  # noqa: E731
        sync = lambda: None  # noqa: E731
    dx, dw, dids, dweights = floats(x), floats(w), ints(topk_ids), ints(topk_weights)

    def layer():
        xp, offsets, perm = moe_permute(dx, dids, args.experts)
        return moe_unpermute(grouped_gemm(xp, dw, offsets), perm, dweights), offsets

    out, offsets = layer()
    reference = moe_reference(host(dx), host(dw), topk_ids, topk_weights)
    error = float(np.abs(host(out) - reference).max() / max(np.abs(reference).max(), 1e-30))
    seconds = best_time(layer, args.repeat, sync)
    counts = np.diff(np.concatenate([[0], np.asarray(offsets.tolist())]))
    flops = 2.0 * args.tokens * args.topk * args.hidden * args.out
    print(f"MoE: {args.tokens} tokens, top-{args.topk} of {args.experts} experts, {args.hidden} -> {args.out}, "
          f"{args.dtype} on {args.device}")
    print(f"  rows per expert: min {counts.min()}, max {counts.max()}, empty experts {int((counts == 0).sum())}")
    print(f"  max |y - y_ref| / max |y_ref| = {error:.2e} (tolerance {TOLERANCE[args.dtype]:.0e})")
    print(f"  layer {seconds * 1e3:.3f} ms, {flops / seconds / 1e9:.1f} GFLOP/s in the grouped GEMM's useful work")
    ok = error <= TOLERANCE[args.dtype]
    print("  OK" if ok else "  FAILED: error above tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
