"""Validate the analytic cost model against measurements: for each (kernel, shape), time every config of a sample
drawn from the legal configs (`enumerate_configs` on the target), predict each with `tilec.cost.model.predict`, and
report how well the prediction ranks and picks.

    python benchmarks/cost_sweep.py [--device cpu|cuda] [--kernels gemm,softmax,...] [--quick] [--out DIR]
                                    [--max-configs 32] [--rounds N] [--repeats N] [--pause-s S] [--write-calibration]

Per (kernel, shape): Spearman rho of predicted vs measured time, median absolute percentage error (APE), the
measured time of the model's #1 over the measured best ("zero-measurement pick"), the best measured time among the
model's top 8 over the best ("top-8 refined pick"), and the time the model took to rank the configs next to the
time the full measured sweep took. The efficiency constants are then fitted (benchmarks/calibrate_cost.py) on half
A of the (kernel, shape) cases and evaluated on half B, and the reverse: both are reported. Writes cost_sweep.json
and cost_sweep.md to --out (default $OUT, else the current folder). The cases (shapes, config spaces, launchers) are
built in benchmarks/cost_cases.py.

CPU: the LLVM backend on NumPy arrays. Each timing is the fastest of --repeats launches (default 5), after a pause
of --pause-s (default 0.05 s) and a wait of up to --quiet-s (default 1 s) until no other process is runnable
(/proc/stat procs_running): other agents' test runs share these cores, and a launch timed beside one runs up to twice
as long; interference only ever slows a launch, so the minimum is the estimate least moved by it. --rounds (default 5)
times all configs of all cases again, interleaved across the cases in a fresh shuffled order each round (a burst of
other work or a slow drift hits one round of many configs, never every round of one, and not always the same
neighbours), and each config keeps its fastest round. Every round's time is stored (runs[].rounds_s), and the report
gives the measurement's own noise: the Spearman rho between the minima of the even and of the odd rounds ("self
rho") and the median spread of a config's rounds; no model ranks a case better than its self rho. Run it under
`flock /tmp/tilec_cpu_bench.lock` on a shared host.
CUDA: the Triton backend on torch CUDA tensors. Each config's launches are captured once in a CUDA graph and the
graph's replay is timed with triton.testing.do_bench (median; it clears the L2 before each replay): the model predicts
GPU time, and a config of two short kernels (paged decode's split and reduce) would otherwise be timed with the ~27
us of host work per Triton launch in the gap between them.
The report is rewritten after each case, so a run cut short still leaves data; --budget-s (210 s with --quick on cuda)
shares a wall-clock budget over the cases and skips configs past it.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
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
#: CPU timing: launches per timing (the fastest counts), the pause before them, and how long to wait at most for
#: the other processes of the host to leave the cores (the command line sets them)
CPU_TIMING = {"repeats": 5, "pause_s": 0.05, "quiet_s": 1.0}


def runnable_others() -> int:
    """Processes of the host on a CPU or waiting for one now, this one not counted (/proc/stat procs_running; the
    sweep's own pool workers sleep between launches); 0 where /proc/stat is not there."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return max(0, int(line.split()[1]) - 1)
    except OSError:
        pass
    return 0


def wait_quiet(limit_s: float) -> None:
    """Sleep in 10 ms steps until no other process is runnable, at most limit_s: other agents' test runs share
    these cores, and a launch timed beside one runs up to twice as long."""
    end = time.perf_counter() + limit_s
    while runnable_others() and time.perf_counter() < end:
        time.sleep(0.01)


def time_cpu(fn, repeats: int | None = None, pause_s: float | None = None) -> float:
    """The fastest of `repeats` perf_counter timings (the caller has warmed fn up), after sleeping `pause_s` and
    waiting (up to CPU_TIMING["quiet_s"]) for the other processes to leave the cores: on shared cores another
    process only ever slows a launch, so the minimum is the least disturbed estimate."""
    repeats = CPU_TIMING["repeats"] if repeats is None else repeats
    pause_s = CPU_TIMING["pause_s"] if pause_s is None else pause_s
    if pause_s > 0:
        time.sleep(pause_s)
    wait_quiet(CPU_TIMING["quiet_s"])
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def time_cuda(fn) -> float:
    import torch
    import triton.testing

    fn()  # compiles, and makes the launchers take their steady path before capture
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    try:
        with torch.cuda.graph(graph):
            fn()
    except Exception:  # noqa: BLE001 - a launch that cannot be captured: time it eagerly
        torch.cuda.synchronize()
        return triton.testing.do_bench(fn, warmup=5, rep=25, return_mode="median") * 1e-3
    return triton.testing.do_bench(graph.replay, warmup=5, rep=25, return_mode="median") * 1e-3


def predict_parts(case: Case) -> list:
    """Per config, the predicted seconds of each of its kernels."""
    return [[model.predict(b, case.target, case.assume).time_s for b in bounds] for _, bounds in case.configs]


def predict_case(case: Case) -> list:
    return [sum(model.predict(b, case.target, case.assume).time_s for b in bounds) for _, bounds in case.configs]


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
        parts = getattr(fn, "parts", None)  # a config of several launches: each timed alone once, for the record
        if parts:
            case.parts.append([timer(part) for part in parts])
        if i % 8 == 7:
            print(f"    {i + 1}/{len(case.configs)} configs, {time.perf_counter() - t0:.1f} s", flush=True)
    case.sweep_s = time.perf_counter() - t0  # what one measured sweep costs: compile and time each config once
    case.configs = kept
    retime([(case, runs)], timer, rounds - 1)
    return runs


def retime(measured: list, timer, rounds: int, seed: int = 0) -> None:
    """`rounds` more timing rounds over every config of every (case, runs) given, interleaved across the cases and
    in a fresh shuffled order each round, so that a burst of other work on the shared cores (or a slow drift) hits
    one round of many configs rather than every round of one, and never the same neighbours twice; each config
    keeps its fastest round."""
    rng = np.random.default_rng(seed)
    every = [times_fn for _, runs in measured for times_fn in runs]
    for _ in range(rounds):
        for i in rng.permutation(len(every)):
            _, fn, times = every[i]
            times.append(timer(fn))
    for case, runs in measured:
        settle(case, runs)


def settle(case: Case, runs: list) -> None:
    case.results = [(cfg, min(times)) for cfg, _, times in runs]
    case.rounds = [list(times) for _, _, times in runs]
    t0 = time.perf_counter()
    for cfg, _ in case.configs:
        sum(model.predict(b, case.target, case.assume).time_s for b in case.rebind(cfg))
    case.rank_s = time.perf_counter() - t0


def metrics(case: Case) -> dict:
    predicted = predict_case(case)
    measured = [s for _, s in case.results]
    zero, top = pick_quality(predicted, measured)
    best = int(np.argmin(measured))
    noise = self_agreement(case.rounds)
    return {**noise, "kernel": case.kernel, "shape": case.shape, "configs": len(measured),
            "spearman": spearman(predicted, measured), "median_ape_pct": median_ape(predicted, measured),
            "zero_pick_ratio": zero, f"top{TOP_K}_pick_ratio": top,
            "model_pick": case.results[int(np.argmin(predicted))][0], "measured_best": case.results[best][0],
            "best_s": measured[best], "rank_s": case.rank_s, "sweep_s": case.sweep_s}


def self_agreement(rounds) -> dict:
    """The measurement's own noise from each config's round times: Spearman rho between the fastest of the even and
    of the odd rounds (how well the sweep ranks against itself) and the median over configs of (slowest - fastest) /
    fastest round. Empty with fewer than two rounds."""
    if not rounds or min(len(r) for r in rounds) < 2 or len(rounds) < 2:
        return {}
    even, odd = [min(r[0::2]) for r in rounds], [min(r[1::2]) for r in rounds]
    spread = float(np.median([(max(r) - min(r)) / min(r) for r in rounds]) * 100)
    return {"self_rho": spearman(even, odd), "round_spread_pct": spread}


# ------------------------------------------------------------------------------------------------ fitting
def fit_cases(cases: list) -> list:
    """calibrate_cost's (bound kernels, target, measured seconds) rows of these cases."""
    return [(bounds, case.target, s, case.assume) for case in cases
            for (_, bounds), (_, s) in zip(case.configs, case.results)]


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
    noise = any("self_rho" in r for r in rows)
    lines = [f"| kernel | shape | configs | Spearman rho | median APE | zero-meas pick / best | top-{TOP_K} pick / best "
             f"| best measured | model ranking | measured sweep |"
             + (" self rho | round spread |" if noise else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if noise else "")]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['shape']} | {r['configs']} | {r['spearman']:.2f} | "
                     f"{r['median_ape_pct']:.0f}% | {r['zero_pick_ratio']:.2f} | {r[f'top{TOP_K}_pick_ratio']:.2f} | "
                     f"{fmt_time(r['best_s'])} | {fmt_time(r['rank_s'])} | {fmt_time(r['sweep_s'])} |"
                     + ((f" {r['self_rho']:.2f} | {r['round_spread_pct']:.0f}% |" if "self_rho" in r else " - | - |")
                        if noise else ""))
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
            "runs": [{"kernel": c.kernel, "shape": c.shape, "config": cfg, "measured_s": s, "predicted_s": pr,
                      **({"rounds_s": rs} if rs else {}), **({"parts_s": ps, "parts_predicted_s": pp} if ps else {})}
                     for c in cases
                     for (cfg, s), pr, rs, ps, pp in zip(c.results, predict_case(c),
                                                         c.rounds or [None] * len(c.results),
                                                         c.parts or [None] * len(c.results), predict_parts(c))],
            "wall_s": time.perf_counter() - started}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--kernels", default=None, help="comma-separated: gemm,softmax,attention,grouped_gemm,paged,"
                                                   "sparse (cpu); gemm,attention,grouped_gemm,paged (cuda, and "
                                                   "sparse, sparse_mla when named); default all of the device's")
    p.add_argument("--quick", action="store_true", help="fewer shapes")
    p.add_argument("--cases", default=None,
                   help="comma-separated substrings of '<kernel> <shape>': only the cases that contain one "
                        "(e.g. 'gemm 16x4096x4096,paged_decode')")
    p.add_argument("--max-configs", type=int, default=None, help="configs per shape (default 32 cpu, 30 cuda)")
    p.add_argument("--out", default=os.environ.get("OUT") or ".")
    p.add_argument("--rounds", type=int, default=None,
                   help="timing rounds over all configs, each config keeps its fastest (default 5 cpu, 1 cuda)")
    p.add_argument("--repeats", type=int, default=CPU_TIMING["repeats"],
                   help=f"cpu: launches per timing, the fastest counts (default {CPU_TIMING['repeats']})")
    p.add_argument("--pause-s", type=float, default=CPU_TIMING["pause_s"],
                   help=f"cpu: seconds of sleep before each timing (default {CPU_TIMING['pause_s']})")
    p.add_argument("--quiet-s", type=float, default=CPU_TIMING["quiet_s"],
                   help=f"cpu: before each timing, wait up to this long for no other process to be runnable "
                        f"(default {CPU_TIMING['quiet_s']})")
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
    args.rounds = args.rounds or (5 if args.device == "cpu" else 1)
    CPU_TIMING.update(repeats=args.repeats, pause_s=args.pause_s, quiet_s=args.quiet_s)
    args.budget_s = args.budget_s or (210.0 if args.quick and args.device == "cuda" else math.inf)
    started = time.perf_counter()
    if args.device == "cpu":
        cases, timer, target = cpu_cases(kernels, args.quick, n), time_cpu, "cpu"
    else:
        target = gpu_arch()
        cases, timer = cuda_cases(kernels, args.quick, n, target), time_cuda
    if args.cases:
        wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
        cases = [c for c in cases if any(w in f"{c.kernel} {c.shape}" for w in wanted)]
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
