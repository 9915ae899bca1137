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
and cost_sweep.md to --out (default $OUT, else the current folder). The cases (shapes, config spaces, launchers) are
built in benchmarks/cost_cases.py.

CPU: the LLVM backend on NumPy arrays, time.perf_counter median of 3-9 launches after a warm-up launch that compiles;
--rounds (default 3) times all configs of all cases round-robin and keeps each config's fastest round, since the
host's cores are shared and another process's burst slows whole rounds. CUDA: the Triton backend on torch CUDA tensors,
triton.testing.do_bench (median). The report is rewritten after each case, so a run cut short still leaves data;
--budget-s (210 s with --quick on cuda) shares a wall-clock budget over the cases and skips configs past it.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibrate_cost  # noqa: E402  (the fitting function; benchmarks/ is not a package)
from cost_cases import Case, cpu_cases, cuda_cases, gpu_arch, sample  # noqa: E402,F401  (cases live there)

from tilec.cost import model  # noqa: E402

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


def measure(case: Case, timer, rounds: int = 1, budget_s: float = math.inf) -> list:
    """Time every config (compile included in the sweep time, as a measured sweep would pay it); a config that
    fails to compile or run is left out and said. With rounds > 1 the configs are timed round-robin and each keeps
    its fastest round's median: the host is shared, and another process's burst slows whole rounds, never speeds
    one up. Configs not reached within budget_s seconds are left out (a GPU run under a time limit). Returns the
    runs [(config, launch, [seconds])], for more rounds later (retime)."""
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
    case.configs = kept
    retime([(case, runs)], timer, rounds - 1)
    return runs


def retime(measured: list, timer, rounds: int) -> None:
    """`rounds` more timing rounds over every config of every (case, runs) given, round-robin across the cases, so
    that a burst of other work on the shared cores hits one round of each case rather than every round of one;
    each config keeps its fastest round."""
    for _ in range(rounds):
        for _, runs in measured:
            for _, fn, times in runs:
                times.append(timer(fn))
    for case, runs in measured:
        settle(case, runs)


def settle(case: Case, runs: list) -> None:
    case.results = [(cfg, min(times)) for cfg, _, times in runs]
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
    p.add_argument("--kernels", default=None, help="comma-separated: gemm,softmax,attention,grouped_gemm,paged,"
                                                   "sparse (cpu); gemm,attention,grouped_gemm,paged (cuda, and "
                                                   "sparse when named); default all of the device's")
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
    every = {"cpu": "gemm,softmax,attention,grouped_gemm,paged,sparse",
             "cuda": "gemm,attention,grouped_gemm,paged"}[args.device]
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
        runs = measure(case, timer, 1, share)
        if len(case.results) >= 2:
            done.append((case, runs))
            write(report_of([c for c, _ in done], args, target, started, argv, final=False), Path(args.out))
    if args.rounds > 1:
        print(f"{args.rounds - 1} more rounds over all cases", flush=True)
    retime(done, timer, args.rounds - 1)
    cases = [c for c, _ in done]
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
