"""CPU (LLVM backend): what an op's config="auto" (the cost model's pick, no measurement) gives next to its default
tiles and a few fixed tile configs, over several shapes, timed in the same run.
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
                                 ("softmax (rows, cols)", SOFTMAX_TILES, SOFTMAX_SHAPES)):
        names = ["auto", *tiles]
        table = f"\n| {title} | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names)
        print(table)
        out.write(table + "\n")
        for shape in shapes:
            if title.startswith("flash"):
                b, h, sq, skv, d = shape
                q = rng.standard_normal((b, h, sq, d)).astype(np.float32)
                k, v = (rng.standard_normal((b, h, skv, d)).astype(np.float32) for _ in range(2))
                for causal in (False, True):
                    variants = {n: (lambda c=c: ops.flash_attention(q, k, v, causal=causal, **c))
                                for n, c in [("auto", {"config": "auto"}), *tiles.items()]}
                    row(f"{shape}{' causal' if causal else ''}", variants, args.repeat, out)
            else:
                x = rng.standard_normal(shape).astype(np.float32)
                variants = {n: (lambda c=c: ops.softmax(x, **c)) for n, c in [("auto", {"config": "auto"}),
                                                                              *tiles.items()]}
                row(f"{shape}", variants, args.repeat, out)
    out.close()


if __name__ == "__main__":
    main()
