"""One decode step over a paged KV cache: kv_scatter writes each sequence's keys and values into randomly chosen
cache pages, paged_attention attends the new query tokens over them, and kv_gather reads the pages back. All three
are checked against NumPy (attention in float64); paged_attention is timed, with its KV bytes read per second.

    python examples/paged_attention.py                                 # CPU: NumPy arrays -> the LLVM backend
    python examples/paged_attention.py --seqs 2 --max-len 8000          # few long sequences: split-KV
    python examples/paged_attention.py --device cuda --seqs 64 --dtype float16   # torch CUDA -> Triton
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from tilec.ops.kv_cache import kv_gather, kv_scatter
from tilec.ops.paged import paged_attention
from tilec.testing import best_time

TOLERANCE = {"float32": 1e-4, "float16": 5e-3, "bfloat16": 4e-2}


def decode_reference(q, keys, values) -> np.ndarray:
    """q [S, Hq, D]; keys/values: per sequence [len, Hkv, D] -> [S, Hq, D] in float64 (zeros for len 0)."""
    out = np.zeros(q.shape)
    group = q.shape[1] // keys[0].shape[1]
    for s, (k, v) in enumerate(zip(keys, values)):
        if len(k) == 0:
            continue
        k, v = (np.repeat(np.asarray(x, np.float64), group, axis=1) for x in (k, v))  # [len, Hq, D]
        scores = np.einsum("hd,thd->ht", np.asarray(q[s], np.float64), k) / math.sqrt(q.shape[2])
        p = np.exp(scores - scores.max(-1, keepdims=True))
        out[s] = np.einsum("ht,thd->hd", p / p.sum(-1, keepdims=True), v)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqs", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=1000, help="longest context (lengths are drawn up to it)")
    parser.add_argument("--heads", type=int, default=8, help="query heads")
    parser.add_argument("--hkv", type=int, default=2, help="kv heads")
    parser.add_argument("--dim", type=int, default=128, help="head dim")
    parser.add_argument("--block-size", type=int, default=16, help="tokens per cache page")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    bs, dt = args.block_size, args.dtype
    lens = rng.integers(0, args.max_len + 1, args.seqs)
    lens[0] = args.max_len  # one sequence at the maximum, one empty (when there are two)
    if args.seqs > 1:
        lens[1] = 0
    pages = -(-lens // bs)
    num_blocks, max_blocks = int(pages.sum()) + 3, int(max(1, pages.max()))
    table = np.zeros((args.seqs, max_blocks), np.int32)
    order = rng.permutation(num_blocks)
    table_ids = np.split(order[:pages.sum()], np.cumsum(pages)[:-1])
    for s, ids in enumerate(table_ids):
        table[s, :len(ids)] = ids
    keys = [rng.standard_normal((n, args.hkv, args.dim)).astype(dt) for n in lens]
    values = [rng.standard_normal((n, args.hkv, args.dim)).astype(dt) for n in lens]
    # slot of token t of sequence s: its page's first slot plus t within the page
    slots = np.concatenate([table[s, np.arange(n) // bs] * bs + np.arange(n) % bs for s, n in enumerate(lens)])
    q = rng.standard_normal((args.seqs, args.heads, args.dim)).astype(dt)
    kc = np.zeros((num_blocks, bs, args.hkv, args.dim), dt)
    vc = np.zeros_like(kc)
    arrays = [q, kc, vc, np.concatenate(keys), np.concatenate(values), slots, table, lens.astype(np.int32)]
    sync = lambda: None  # noqa: E731
    if args.device == "cuda":
        import torch

        arrays = [torch.from_numpy(a).cuda() for a in arrays]
        sync = torch.cuda.synchronize
    q_, kc_, vc_, key_, value_, slots_, table_, lens_ = arrays

    kv_scatter(key_, value_, kc_, vc_, slots_)
    gathered = kv_gather(kc_, table_[0, :pages[0]])
    out = paged_attention(q_, kc_, vc_, table_, lens_)
    seconds = best_time(lambda: paged_attention(q_, kc_, vc_, table_, lens_), args.repeat, sync)
    to_np = (lambda x: x.cpu().numpy()) if args.device == "cuda" else np.asarray

    gather_ok = np.array_equal(to_np(gathered).reshape(-1, args.hkv, args.dim)[:lens[0]], keys[0])
    error = float(np.abs(to_np(out).astype(np.float64) - decode_reference(q, keys, values)).max())
    moved = 2.0 * lens.sum() * args.hkv * args.dim * np.dtype(dt).itemsize  # K and V read once each
    print(f"paged decode: {args.seqs} seqs, lengths up to {args.max_len} (total {lens.sum()}), Hq={args.heads} "
          f"Hkv={args.hkv} D={args.dim} pages of {bs}, {dt} on {args.device}")
    print(f"  kv_scatter + kv_gather round trip: {'exact' if gather_ok else 'MISMATCH'}")
    print(f"  max |o - o_ref| = {error:.2e} (tolerance {TOLERANCE[dt]:.0e})")
    print(f"  paged_attention {moved / seconds / 1e9:8.2f} GB/s of KV  ({seconds * 1e3:.3f} ms)")
    ok = gather_ok and error <= TOLERANCE[dt]
    print("  OK" if ok else "  FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
