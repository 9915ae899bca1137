"""`tilec cost` and `tilec roofline`, registered on the main parser by `add_cost_commands(subparsers)`:

    tilec cost FILE::KERNEL --target h100 --set M=4096 --set N=4096 --set K=4096 [--top 10]
        the report for the given config (defaults for what --set leaves out) and the ranking of the configs
    tilec roofline FILE::KERNEL --target h100 --set ... --out plot.png
        one point per legal config on the target's roofline (matplotlib, Agg backend)
"""
from __future__ import annotations

from ..cli import load_kernel, parse_sets, require_all_dims
from .autotune import backend_for, rank_configs
from .model import predict
from .targets import get_target, load_target


def add_cost_commands(subparsers) -> None:
    for name, run, what in (("cost", run_cost, "predicted time of a kernel and the ranking of its configs"),
                            ("roofline", run_roofline, "plot every legal config on the target's roofline")):
        p = subparsers.add_parser(name, help=what)
        p.add_argument("kernel", metavar="FILE::KERNEL", help="a Python file and the @tilec.kernel in it")
        p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a dim or config value (repeatable)")
        p.add_argument("--target", default="h100", help="hardware to model (h100, h200, b200, mi300x, cpu, ...)")
        p.add_argument("--target-file", default=None, help="a TOML/JSON target description to load first")
        if name == "cost":
            p.add_argument("--top", type=int, default=10, help="how many ranked configs to print (0: none)")
        else:
            p.add_argument("--out", default="roofline.png", help="the PNG to write")
        p.set_defaults(run=run)


def _prepare(args):
    if args.target_file:
        args.target = load_target(args.target_file).name
    target = get_target(args.target)
    kernel = load_kernel(args.kernel)
    dims, config = parse_sets(kernel, args.set)
    require_all_dims(kernel, dims, "the cost model")
    return kernel, dims, config, target


def run_cost(args) -> int:
    kernel, dims, config, target = _prepare(args)
    report = predict(kernel.specialize(dims, config, backend_for(target), arch=target.name), target)
    print(report)
    if args.top:
        ranked = rank_configs(kernel, dims, target.name)
        print(f"\nconfigs by predicted time ({len(ranked)} legal):")
        for r in ranked[:args.top]:
            cfg = " ".join(f"{k}={v}" for k, v in r.config.items())
            print(f"  {r.time_s * 1e6:10.1f} us  {r.bound:8s} {cfg}")
    return 0


def run_roofline(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernel, dims, config, target = _prepare(args)
    ranked = rank_configs(kernel, dims, target.name)
    dtype = max(ranked[0].flops, key=ranked[0].flops.get) if ranked[0].flops else "float32"
    peak = max(target.peak_flops(dtype, True), target.peak_flops(dtype, False))
    bw = target.memory[target.global_tier].bandwidth
    xs = [r.arithmetic_intensity for r in ranked if r.arithmetic_intensity < float("inf")]
    lo, hi = min(xs + [peak / bw]) / 4, max(xs + [peak / bw]) * 4
    grid = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.loglog(grid, [min(peak, bw * x) for x in grid], "k-", label=f"{target.name} roof ({dtype})")
    for r in reversed(ranked):  # the best last, drawn on top
        achieved = r.total_flops / r.time_s
        ax.loglog([r.arithmetic_intensity], [achieved], "o", color="tab:red" if r is ranked[0] else "tab:blue",
                  alpha=0.8)
    ax.set_xlabel(f"arithmetic intensity (FLOP per {target.global_tier} byte)")
    ax.set_ylabel("predicted FLOP/s")
    best = " ".join(f"{k}={v}" for k, v in ranked[0].config.items())
    ax.set_title(f"{kernel.__name__}: {len(ranked)} configs (red: best, {best})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out} ({len(ranked)} configs; best {best}: {ranked[0].time_s * 1e6:.1f} us)")
    return 0
