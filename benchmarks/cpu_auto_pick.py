"""CPU (LLVM backend): what an op's config="auto" (the cost model's pick, no measurement) gives next to its default
tiles and a few fixed tile configs, over several shapes, timed in the same run: flash attention, softmax, paged
decode and MLA sparse attention.
Usage: python benchmarks/cpu_auto_pick.py [--repeat 5] [--out FILE]

Each row: the median time of every variant and, in brackets, its time over the fastest variant of the row. The
auto column's first call (the model ranking the legal configs) happens before the timing."""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import tilec.ops as ops

FLASH_TILES = {"default": {}, "64x64x1": dict(block_m=64, block_n=64, num_stages=1),
               "128x64x1": dict(block_m=128, block_n=64, num_stages=1),
               "128x128x1": dict(block_m=128, block_n=128, num_stages=1),
               "256x128x1": dict(block_m=256, block_n=128, num_stages=1)}
FLASH_SHAPES = [(1, 8, 1024, 1024, 64), (1, 32, 512, 512, 128), (2, 8, 300, 300, 64), (1, 16, 77, 1000, 128),
                (4, 8, 2048, 2048, 64)]
SOFTMAX_TILES = {"default": {}, "block_m=1": dict(block_m=1), "block_m=4": dict(block_m=4),
                 "block_m=16": dict(block_m=16)}
SOFTMAX_SHAPES = [(2048, 1000), (4096, 1024), (300, 4001), (64, 77), (16, 20000)]
PAGED_TILES = {"default": {}, "1 page/step": dict(pages_per_iter=1), "2 pages/step": dict(pages_per_iter=2),
               "8 pages/step": dict(pages_per_iter=8)}
PAGED_SHAPES = [(8, 2048, 16, 4, 128), (1, 8191, 32, 8, 128), (32, 300, 8, 8, 64)]  # seqs, ctx, Hq, Hkv, D
SPARSE_TILES = {"default": {}, "block_n=32": dict(block_n=32), "block_n=128": dict(block_n=128)}
SPARSE_SHAPES = [(16, 16, 4096, 2048), (4, 128, 4096, 2048), (64, 16, 8192, 512)]  # T, Hq, N, topk (MLA 576/512)


def row(name, variants, repeat, out):
    """Times every variant alternately (a slow moment hits all of them), then prints medians and ratios."""
    times = {n: [] for n in variants}
    for fn in variants.values():
        fn()  # compile, or rank and compile for config="auto"
    for _ in range(repeat):
        for n, fn in variants.items():
            time.sleep(0.03)
            t0 = time.perf_counter()
            fn()
            times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(t) for n, t in times.items()}
    best = min(med.values())
    line = f"| {name} | " + " | ".join(f"{med[n] * 1e3:.2f} ({med[n] / best:.2f})" for n in variants) + " |"
    print(line, flush=True)
    out.write(line + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=None, help="also write the table here")
    args = ap.parse_args()
    out = open(args.out, "w") if args.out else open(os.devnull, "w")
    rng = np.random.default_rng(0)
    head = (f"# {platform.machine()} {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"fp32, median of {args.repeat} (ms), in brackets over the row's fastest")
    print(head)
    out.write(head + "\n")
    for title, tiles, shapes in (("flash_attention (B, H, Sq, Skv, D)", FLASH_TILES, FLASH_SHAPES),
                                 ("softmax (rows, cols)", SOFTMAX_TILES, SOFTMAX_SHAPES),
                                 ("paged_attention (seqs, ctx, Hq, Hkv, D), pages of 16", PAGED_TILES, PAGED_SHAPES),
                                 ("sparse_attention MLA (T, Hq, N, topk)", SPARSE_TILES, SPARSE_SHAPES)):
        names = ["auto", *tiles]
        header = f"\n| {title} | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names)
        print(header)
        out.write(header + "\n")
        for shape in shapes:
            if title.startswith("flash"):
                b, h, sq, skv, d = shape
                q = rng.standard_normal((b, h, sq, d)).astype(np.float32)
                k, v = (rng.standard_normal((b, h, skv, d)).astype(np.float32) for _ in range(2))
                for causal in (False, True):
                    variants = {n: (lambda c=c: ops.flash_attention(q, k, v, causal=causal, **c))
                                for n, c in [("auto", {"config": "auto"}), *tiles.items()]}
                    row(f"{shape}{' causal' if causal else ''}", variants, args.repeat, out)
                continue
            if title.startswith("softmax"):
                x = rng.standard_normal(shape).astype(np.float32)
                call = (lambda c: ops.softmax(x, **c))
            elif title.startswith("paged"):
                seqs, ctx, hq, hkv, d = shape
                pages = seqs * -(-ctx // 16)
                kc, vc = (rng.standard_normal((pages, 16, hkv, d)).astype(np.float32) for _ in range(2))
                table = rng.permutation(pages).astype(np.int32).reshape(seqs, -1)
                lens, qd = np.full(seqs, ctx, np.int32), rng.standard_normal((seqs, hq, d)).astype(np.float32)
                call = (lambda c: ops.paged_attention(qd, kc, vc, table, lens, **c))
            else:
                t, hq, n, topk = shape
                qs = rng.standard_normal((t, hq, 576)).astype(np.float32) / 8
                kv = rng.standard_normal((n, 1, 576)).astype(np.float32) / 8
                idx = np.stack([rng.permutation(n)[:topk] for _ in range(t)]).astype(np.int32)
                call = (lambda c: ops.sparse_attention(qs, kv, kv[:, :, :512], idx, **c))
            variants = {n: (lambda c=c, call=call: call(c)) for n, c in [("auto", {"config": "auto"}),
                                                                         *tiles.items()]}
            row(f"{shape}", variants, args.repeat, out)
    out.close()


if __name__ == "__main__":
    main()
