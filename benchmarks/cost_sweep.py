"""Validate the analytic cost model against measurements: for each (kernel, shape), time every config of a sample
drawn from the legal configs (`enumerate_configs` on the target), predict each with `tilec.cost.model.predict`, and
report how well the prediction ranks and picks.

    python benchmarks/cost_sweep.py [--device cpu|cuda] [--kernels gemm,softmax,...] [--quick] [--out DIR]
                                    [--max-configs 32] [--write-calibration]

Per (kernel, shape): Spearman rho of predicted vs measured time, median absolute percentage error (APE), the
measured time of the model's #1 over the measured best ("zero-measurement pick"), the best measured time among the
model's top 8 over the best ("top-8 refined pick"), and the time the model took to rank the configs next to the
time the full measured sweep took. The efficiency constants are then fitted (benchmarks/calibrate_cost.py) on half
A of the (kernel, shape) cases and evaluated on half B, and the reverse: both are reported. Writes cost_sweep.json
and cost_sweep.md to --out (default $OUT, else the current folder).

CPU: the LLVM backend on NumPy arrays, time.perf_counter median of 3-9 launches after a warm-up launch that compiles;
--rounds (default 3) times all configs round-robin and keeps each config's fastest round, since the host's cores are
shared and another process's burst slows whole rounds. CUDA: the Triton backend on torch CUDA tensors,
triton.testing.do_bench (median). The report is rewritten after each case, so a run cut short still leaves data;
--budget-s (210 s with --quick on cuda) shares a wall-clock budget over the cases and skips configs past it.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibrate_cost  # noqa: E402  (the fitting function; benchmarks/ is not a package)

from tilec.cost import autotune, model  # noqa: E402

TOP_K = 8


# ------------------------------------------------------------------------------------------------ statistics
def ranks(values) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for x in np.unique(v):
        tied = v == x
        r[tied] = r[tied].mean()
    return r


def spearman(x, y) -> float:
    """Spearman rank correlation: Pearson correlation of the ranks (nan when either side is constant)."""
    rx, ry = ranks(x), ranks(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def median_ape(predicted, measured) -> float:
    """Median of |predicted - measured| / measured, in percent."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    return float(np.median(np.abs(p - m) / m) * 100)


def pick_quality(predicted, measured, top_k: int = TOP_K) -> tuple[float, float]:
    """(measured time of the predicted-fastest config, best measured time among the predicted top_k), each over
    the measured best: 1.0 is a perfect pick."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    order = np.argsort(p, kind="stable")
    best = m.min()
    return float(m[order[0]] / best), float(m[order[:top_k]].min() / best)


# ------------------------------------------------------------------------------------------------ cases
@dataclasses.dataclass
class Case:
    kernel: str
    shape: str
    target: str
    #: [(config, [bound kernels whose predicted times add up to the config's time])]
    configs: list
    #: config -> a no-argument function that launches it once (compiled; blocks until done on the CPU)
    launcher: Callable
    #: config -> its bound kernels again: what picking a config from the model costs is binding plus predicting
    rebind: Callable
    results: list = dataclasses.field(default_factory=list)  # [(config, measured_s)]
    sweep_s: float = 0.0
    rank_s: float = 0.0


def sample(configs: list, n: int, default: dict | None = None) -> list:
    """A fixed pseudo-random sample of n configs (the kernel's default config first when it is legal), so that each
    run of the sweep measures the same ones."""
    rng = np.random.default_rng(0)
    first = [c for c in configs if default and all(c[0].get(k) == v for k, v in default.items())][:1]
    rest = [c for c in configs if not first or c is not first[0]]
    picked = [rest[i] for i in sorted(rng.choice(len(rest), min(n - len(first), len(rest)), replace=False))]
    return first + picked


def simple_case(name, shape, tile_kernel, dims, space, target, n, args, default=None) -> Case:
    """A case whose configs all share `dims`: a sample of the legal configs in `space`."""
    backend = autotune.backend_for(target)
    configs = sample(autotune.enumerate_configs(tile_kernel, dims, space, target), n, default)
    return Case(name, shape, target, [(cfg, [bound]) for cfg, bound in configs],
                lambda cfg: compiled(tile_kernel, args, cfg, backend, target),
                lambda cfg: [tile_kernel.specialize(dims, cfg, backend, arch=target)])


def compiled(tile_kernel, args, config, backend, arch):
    from tilec.runtime.args import bind_arguments
    from tilec.runtime.cache import compiled_kernel

    run = compiled_kernel(tile_kernel, bind_arguments(tile_kernel.ir, args, backend), config, backend, arch)
    return lambda: run(*args)


def cpu_cases(kernels: set, quick: bool, n: int) -> list:
    """fp32 GEMM (squares and skinny M) and softmax (whole rows; long rows online) on the LLVM backend."""
    from tilec.ops.gemm import gemm_kernel
    from tilec.ops.softmax import softmax_kernel

    rng = np.random.default_rng(0)
    cases = []
    if "gemm" in kernels:
        k = gemm_kernel(False, False, "float32", "float32")
        space = autotune.default_space(k, "cpu")
        shapes = [(512, 512, 512), (16, 1024, 1024)] if quick else \
            [(512, 512, 512), (1024, 1024, 1024), (16, 1024, 1024), (128, 1024, 1024)]
        for m, nn, kk in shapes:
            a, b = rng.random((m, kk), dtype=np.float32), rng.random((kk, nn), dtype=np.float32)
            c = np.empty((m, nn), np.float32)
            cases.append(simple_case("gemm", f"{m}x{nn}x{kk} fp32", k, {"M": m, "N": nn, "K": kk}, space, "cpu",
                                     n, (a, b, c)))
    if "softmax" in kernels:
        shapes = [(4096, 1024, False)] if quick else [(4096, 1024, False), (256, 16384, True)]
        for m, nn, online in shapes:
            k = softmax_kernel("float32", online)
            # whole rows have one config constant (rows per block): sweep it densely, not only over powers of two
            space = {"block_m": [1, 2, 4, 8, 16], "block_n": [64, 128, 256, 512, 1024, 2048, 4096, 8192]} if online \
                else {"block_m": list(range(1, 25)) + [28, 32, 40, 48, 56, 64, 96, 128]}
            x = rng.standard_normal((m, nn), dtype=np.float32)
            y = np.empty_like(x)
            cases.append(simple_case("softmax_online" if online else "softmax_rows", f"{m}x{nn} fp32", k,
                                     {"M": m, "N": nn}, space, "cpu", n, (x, y)))
    return cases


def gpu_arch() -> str:
    import torch

    name = torch.cuda.get_device_name().lower()
    return next((t for t in ("h200", "h100", "h800", "h20", "a100", "b200") if t in name), "h100")


def cuda_cases(kernels: set, quick: bool, n: int, arch: str, device: str = "cuda") -> list:
    """bf16 GEMM (squares, skinny M), flash attention, grouped GEMM and paged decode on the Triton backend. With
    device="cpu" the tensors stay on the host: enough to build every case and its configs without a GPU."""
    import torch

    from tilec.ops import moe, paged
    from tilec.ops.attention import LOG2E, flash_attention_kernel
    from tilec.ops.gemm import gemm_kernel

    torch.manual_seed(0)
    bf16 = dict(dtype=torch.bfloat16, device=device)
    cases = []
    if "gemm" in kernels:
        k = gemm_kernel(False, False, "bfloat16", "bfloat16")
        space = autotune.default_space(k, arch)
        shapes = [(4096, 4096, 4096), (16, 4096, 4096)] if quick else \
            [(4096, 4096, 4096), (2048, 2048, 2048), (16, 4096, 4096), (128, 8192, 8192)]
        for m, nn, kk in shapes:
            args = (torch.randn(m, kk, **bf16), torch.randn(kk, nn, **bf16), torch.empty(m, nn, **bf16))
            cases.append(simple_case("gemm", f"{m}x{nn}x{kk} bf16", k, {"M": m, "N": nn, "K": kk}, space, arch, n,
                                     args, dict(block_m=128, block_n=128, block_k=64, num_stages=3)))
    if "attention" in kernels:
        b, h, s, d = 4, 32, 2048, 128
        k = flash_attention_kernel("bfloat16")
        args = tuple(torch.randn(b, h, s, d, **bf16) for _ in range(4))
        space = {**autotune.default_space(k, arch), "scale_log2": [LOG2E / math.sqrt(d)]}
        cases.append(simple_case("flash_attention", f"B{b} H{h} S{s} D{d} bf16", k,
                                 {"B": b, "HQ": h, "HKV": h, "SQ": s, "SKV": s, "D": d}, space, arch, n, args,
                                 dict(block_m=128, block_n=64, num_stages=3)))
    if "grouped_gemm" in kernels:
        cases.append(grouped_gemm_case(moe, n, arch, bf16))
    if "paged" in kernels:
        cases.append(paged_case(paged, n, arch, bf16))
    return cases


def grouped_gemm_case(moe, n: int, arch: str, bf16: dict) -> Case:
    """8 experts of uneven sizes (4096 rows in all), K=2048, N=1408: the tile schedule, and so the NT dim, depends on
    block_m, so each block_m is enumerated with its own dims."""
    import torch

    m, kk, nn, e = 4096, 2048, 1408, 8
    sizes = np.array([900, 100, 620, 380, 512, 512, 1000, 72])
    offsets = np.cumsum(sizes)
    k = moe.grouped_gemm_kernel("bfloat16")
    x, w, y = torch.randn(m, kk, **bf16), torch.randn(e, kk, nn, **bf16), torch.empty(m, nn, **bf16)
    space = autotune.default_space(k, arch)
    def dims(bm):
        return {"M": m, "K": kk, "N": nn, "E": e, "NT": len(moe.tile_schedule(offsets, bm))}
    configs = []
    for bm in space["block_m"]:
        configs += autotune.enumerate_configs(k, dims(bm), {**space, "block_m": [bm]}, arch)

    def launcher(cfg):
        sched = torch.as_tensor(moe.tile_schedule(offsets, cfg["block_m"]), device=x.device)
        return compiled(k, (x, w, sched, y), cfg, "triton", arch)
    return Case("grouped_gemm", f"M{m} K{kk} N{nn} E{e} bf16", arch,
                [(cfg, [bound]) for cfg, bound in sample(configs, n, dict(block_m=64, block_n=64, block_k=32))],
                launcher, lambda cfg: [k.specialize(dims(cfg["block_m"]), cfg, "triton", arch=arch)])


def paged_case(paged, n: int, arch: str, bf16: dict) -> Case:
    """Decode over 4096 cached tokens per sequence (8 sequences, 32 query / 8 kv heads, D=128, 16-token pages).
    The config is the pages per split: the split kernel plus the reduce that merges the splits, timed together."""
    import torch

    nseq, hq, hkv, d, bs, ctx = 8, 32, 8, 128, 16, 4096
    pages = ctx // bs
    group = hq // hkv
    q = torch.randn(nseq, hq, d, **bf16)
    kc, vc = (torch.randn(nseq * pages, bs, hkv, d, **bf16) for _ in range(2))
    table = torch.randperm(nseq * pages, dtype=torch.int32).reshape(nseq, pages).to(q.device)
    lens = torch.full((nseq,), ctx, dtype=torch.int32, device=q.device)
    out = torch.empty(nseq, hq, d, **bf16)
    split, reduce = paged.paged_split_kernel("bfloat16"), paged.paged_reduce_kernel("bfloat16")
    scale = paged.LOG2E / math.sqrt(d)
    per_split = sorted({max(1, round(pages / s)) for s in range(1, 129)})
    def bind(cfg):
        dims = {"NSEQ": nseq, "HQ": hq, "HKV": hkv, "D": d, "NB": nseq * pages, "BS": bs, "MAXB": pages,
                "NSPLIT": -(-pages // cfg["pages_per_split"])}
        return [split.specialize(dims, cfg, "triton", arch=arch),
                reduce.specialize({k: dims[k] for k in ("NSEQ", "HQ", "NSPLIT", "D")}, {}, "triton", arch=arch)]
    configs = [(cfg, bind(cfg)) for cfg in ({"group": group, "pages_per_split": pps, "scale_log2": scale}
                                            for pps in per_split)]

    def launcher(cfg):
        ns = -(-pages // cfg["pages_per_split"])
        f32 = dict(dtype=torch.float32, device=q.device)
        m, l, acc = torch.empty(nseq, hq, ns, **f32), torch.empty(nseq, hq, ns, **f32), torch.empty(nseq, ns, hq, d, **f32)
        run_split = compiled(split, (q, kc, vc, table, lens, m, l, acc), cfg, "triton", arch)
        run_reduce = compiled(reduce, (m, l, acc, out), {}, "triton", arch)
        return lambda: (run_split(), run_reduce())
    return Case("paged_decode", f"{nseq}seq Hq{hq} Hkv{hkv} D{d} ctx{ctx} bf16", arch,
                sample(configs, n), launcher, bind)


# ------------------------------------------------------------------------------------------------ measuring
def time_cpu(fn, budget_s: float = 0.1) -> float:
    """Median of 3 to 9 perf_counter timings, as many as fit in ~budget_s (the caller has warmed fn up)."""
    t0 = time.perf_counter()
    fn()
    times = [time.perf_counter() - t0]
    for _ in range(max(2, min(8, int(budget_s / max(times[0], 1e-9))))):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_cuda(fn) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, warmup=5, rep=25, return_mode="median") * 1e-3


def predict_case(case: Case) -> list:
    return [sum(model.predict(b, case.target).time_s for b in bounds) for _, bounds in case.configs]


def measure(case: Case, timer, rounds: int = 1, budget_s: float = math.inf) -> None:
    """Time every config (compile included in the sweep time, as a measured sweep would pay it); a config that
    fails to compile or run is left out and said. With rounds > 1 the configs are timed round-robin and each keeps
    its fastest round's median: the host is shared, and another process's burst slows whole rounds, never speeds
    one up. Configs not reached within budget_s seconds are left out (a GPU run under a time limit)."""
    t0 = time.perf_counter()
    kept, runs = [], []
    for i, (cfg, bounds) in enumerate(case.configs):
        if time.perf_counter() - t0 > budget_s:
            print(f"    budget of {budget_s:.0f} s spent: {len(kept)} of {len(case.configs)} configs", flush=True)
            break
        try:
            fn = case.launcher(cfg)
            fn()  # compile and warm up
            seconds = timer(fn)
        except Exception as e:  # a config the backend cannot build on this device: report, keep sweeping
            print(f"    skip {cfg}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}", flush=True)
            continue
        kept.append((cfg, bounds))
        runs.append((cfg, fn, [seconds]))
        if i % 8 == 7:
            print(f"    {i + 1}/{len(case.configs)} configs, {time.perf_counter() - t0:.1f} s", flush=True)
    case.sweep_s = time.perf_counter() - t0  # what one measured sweep costs: compile and time each config once
    for _ in range(rounds - 1):
        for _, fn, times in runs:
            times.append(timer(fn))
    case.configs, case.results = kept, [(cfg, min(times)) for cfg, _, times in runs]
    t0 = time.perf_counter()
    for cfg, _ in case.configs:
        sum(model.predict(b, case.target).time_s for b in case.rebind(cfg))
    case.rank_s = time.perf_counter() - t0


def metrics(case: Case) -> dict:
    predicted = predict_case(case)
    measured = [s for _, s in case.results]
    zero, top = pick_quality(predicted, measured)
    best = int(np.argmin(measured))
    return {"kernel": case.kernel, "shape": case.shape, "configs": len(measured),
            "spearman": spearman(predicted, measured), "median_ape_pct": median_ape(predicted, measured),
            "zero_pick_ratio": zero, f"top{TOP_K}_pick_ratio": top,
            "model_pick": case.results[int(np.argmin(predicted))][0], "measured_best": case.results[best][0],
            "best_s": measured[best], "rank_s": case.rank_s, "sweep_s": case.sweep_s}


# ------------------------------------------------------------------------------------------------ fitting
def fit_cases(cases: list) -> list:
    """calibrate_cost's (bound kernels, target, measured seconds) rows of these cases."""
    return [(bounds, case.target, s) for case in cases for (_, bounds), (_, s) in zip(case.configs, case.results)]


def with_constants(constants: dict | None, fn):
    """Run fn() with `constants` ({target: {name: value}}) in place of calibration.json's, then restore them."""
    table = model._calibration_file()
    saved = copy.deepcopy(table)
    try:
        for name, values in (constants or {}).items():
            table[name] = {**table.get(name, {}), **values}
        return fn()
    finally:
        table.clear()
        table.update(saved)


def fit(cases: list) -> dict:
    target = cases[0].target
    return with_constants(None, lambda: {target: calibrate_cost.fit(fit_cases(cases), target)})


def holdout(cases: list) -> dict:
    """Constants fitted on half A (every other case) evaluated on half B, and the reverse."""
    half_a, half_b = cases[0::2], cases[1::2]
    out = {}
    for name, train, test in (("fit A -> eval B", half_a, half_b), ("fit B -> eval A", half_b, half_a)):
        if not train or not test:
            continue
        constants = fit(train)
        out[name] = {"train": [f"{c.kernel} {c.shape}" for c in train], "constants": constants,
                     "rows": with_constants(constants, lambda: [metrics(c) for c in test])}
    return out


# ------------------------------------------------------------------------------------------------ report
def fmt_time(s: float) -> str:
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.1f} s"


def table(rows: list) -> str:
    lines = [f"| kernel | shape | configs | Spearman rho | median APE | zero-meas pick / best | top-{TOP_K} pick / best "
             f"| best measured | model ranking | measured sweep |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['shape']} | {r['configs']} | {r['spearman']:.2f} | "
                     f"{r['median_ape_pct']:.0f}% | {r['zero_pick_ratio']:.2f} | {r[f'top{TOP_K}_pick_ratio']:.2f} | "
                     f"{fmt_time(r['best_s'])} | {fmt_time(r['rank_s'])} | {fmt_time(r['sweep_s'])} |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    out = [f"# Cost model vs measurement ({report['device']}, target {report['target']})", "",
           f"{report['date']}, `{report['command']}`", "", "## Constants as shipped (calibration.json)", "",
           table(report["shipped"]), ""]
    for name, part in report["holdout"].items():
        consts = ", ".join(f"{k}={v:.3g}" for k, v in next(iter(part["constants"].values())).items())
        out += [f"## {name} (trained on: {'; '.join(part['train'])})", "", f"constants: {consts}", "",
                table(part["rows"]), ""]
    return "\n".join(out)


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost_sweep.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "cost_sweep.md").write_text(markdown(report) + "\n")
    print(f"wrote {out / 'cost_sweep.json'} and {out / 'cost_sweep.md'}", flush=True)


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    from tilec.cost.targets import get_target

    return f"host CPU ({get_target('cpu').notes})"


def report_of(cases, args, target, started, argv, final: bool) -> dict:
    """The report of the cases measured so far; the half/half fit only once all are in."""
    return {"device": device_name(args.device), "target": target, "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": " ".join(["python", "benchmarks/cost_sweep.py", *(argv or sys.argv[1:])]),
            "complete": final, "constants": model.efficiency(model.get_target(target)),
            "shipped": [metrics(c) for c in cases], "holdout": holdout(cases) if final else {},
            "runs": [{"kernel": c.kernel, "shape": c.shape, "config": cfg, "measured_s": s, "predicted_s": pr}
                     for c in cases for (cfg, s), pr in zip(c.results, predict_case(c))],
            "wall_s": time.perf_counter() - started}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--kernels", default=None, help="comma-separated: gemm,softmax (cpu); gemm,attention,"
                                                   "grouped_gemm,paged (cuda); default all of the device's")
    p.add_argument("--quick", action="store_true", help="fewer shapes")
    p.add_argument("--max-configs", type=int, default=None, help="configs per shape (default 32 cpu, 30 cuda)")
    p.add_argument("--out", default=os.environ.get("OUT") or ".")
    p.add_argument("--rounds", type=int, default=None,
                   help="timing rounds over all configs, each config keeps its fastest (default 3 cpu, 1 cuda)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall-clock seconds for the measuring, shared out over the cases (default: none; "
                        "210 with --quick on cuda, so a 4-minute slot still ends with a full report)")
    p.add_argument("--write-calibration", action="store_true",
                   help="fit the constants on all cases and merge them into tilec/cost/data/calibration.json")
    args = p.parse_args(argv)
    every = {"cpu": "gemm,softmax", "cuda": "gemm,attention,grouped_gemm,paged"}[args.device]
    kernels = set((args.kernels or every).split(","))
    n = args.max_configs or (32 if args.device == "cpu" else 30)
    args.rounds = args.rounds or (3 if args.device == "cpu" else 1)
    args.budget_s = args.budget_s or (210.0 if args.quick and args.device == "cuda" else math.inf)
    started = time.perf_counter()
    if args.device == "cpu":
        cases, timer, target = cpu_cases(kernels, args.quick, n), time_cpu, "cpu"
    else:
        target = gpu_arch()
        cases, timer = cuda_cases(kernels, args.quick, n, target), time_cuda
    deadline = started + args.budget_s
    done = []
    for i, case in enumerate(cases):
        print(f"{case.kernel} {case.shape}: {len(case.configs)} configs", flush=True)
        # an equal share of what is left of the budget for each case still to run
        share = (deadline - time.perf_counter()) / (len(cases) - i)
        measure(case, timer, args.rounds, share)
        if len(case.results) >= 2:
            done.append(case)
            write(report_of(done, args, target, started, argv, final=False), Path(args.out))
    cases = done
    print(table([metrics(c) for c in cases]), flush=True)
    report = report_of(cases, args, target, started, argv, final=True)
    write(report, Path(args.out))
    print(markdown(report), flush=True)
    if args.write_calibration:
        fitted = fit(cases)
        calibrate_cost.write_constants(fitted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
