"""Fit the cost model's efficiency constants (tilec/cost/data/calibration.json) to measured run times.

    python benchmarks/calibrate_cost.py measured.json [--write]
        measured.json: [{"kernel": "FILE::KERNEL", "target": "h100", "dims": {...}, "config": {...},
                         "measured_s": 1.23e-4}, ...]; fits each target's constants, prints the error before and
        after, and with --write merges them into calibration.json
    python benchmarks/calibrate_cost.py --measure-cpu cpu_runs.json [--write]
        times this file's copy and GEMM kernels on the LLVM backend first (the host CPU target), then fits

The fit is coordinate descent on log-spaced multipliers of a few constants, minimising the mean squared log
ratio of predicted to measured time; the model itself stays analytic (no per-kernel tables).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import tilec
import tilec.language as T
from tilec.cli import load_kernel
from tilec.cost import model
from tilec.cost.autotune import backend_for
from tilec.cost.targets import get_target

FITTED = ("compute", "mma_sync", "vector", "sfu", "loop", "memory", "latency")
#: a CPU's compute constants may pass 1: its peak uses the clock /proc/cpuinfo reports (the nominal one in a VM),
#: and cores boost above it; so may memory, whose DRAM bandwidth is an estimate (targets.host_cpu: 10 GB/s per core)
#: unless measured
CPU_CLOCKED = ("compute", "vector", "sfu", "memory")
#: no GPU GEMM reaches the tensor cores' dense peak: on the H200 cuBLAS ran a 4096^3 bf16 GEMM at 783 TFLOP/s, 0.79 of
#: 989 (benchmarks/results/h200/gpu_gemm.json); a fit past this trades compute for an error elsewhere
GPU_MATRIX_CAP = 0.8
STEPS = [0.5, 0.7, 0.85, 1.0, 1.18, 1.4, 2.0]
#: weight of a log-normal prior around the starting constants (the target's defaults, or what calibration.json held):
#: the fit minimises mean squared log error + PRIOR x sum of log(value / start)^2, so a constant that the cases barely
#: depend on stays near where it started instead of wandering to fit noise (a 2x move must buy ~0.005 of squared log
#: error). Without it a half/half fit on memory-bound cases alone moved the H200 tensor-core efficiency to 0.375
PRIOR = 0.01


@tilec.kernel
def scale(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 4096):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], x)
        for i in T.Parallel(block):
            x[i] = x[i] * 2.0
        T.copy(x, Y[bx * block])


@tilec.kernel
def matmul(A: T.Tensor[("M", "K"), "float32"], B: T.Tensor[("K", "N"), "float32"],
           C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 64, block_n: int = 256, block_k: int = 256,
           num_stages: int = 1):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_m, block_k), A.dtype)
        b = T.alloc_shared((block_k, block_n), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
            T.copy(A[by * block_m, k * block_k], a)
            T.copy(B[k * block_k, bx * block_n], b)
            T.gemm(a, b, acc)
        T.copy(acc, C[by * block_m, bx * block_n])


def best_time(fn, repeats=5) -> float:
    fn()  # compile and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure_cpu() -> list:
    """Time the copy kernel (memory-bound) and the GEMM (compute-bound) on the LLVM backend."""
    runs, here = [], f"{__file__}::"
    rng = np.random.default_rng(0)
    for n in (1 << 16, 1 << 20, 1 << 24):
        x = rng.random(n, dtype=np.float32)
        y = np.empty_like(x)
        runs.append({"kernel": here + "scale", "target": "cpu", "dims": {"N": n}, "config": {},
                     "measured_s": best_time(lambda: scale(x, y))})
    for s in (256, 512, 1024):
        a, b = rng.random((s, s), dtype=np.float32), rng.random((s, s), dtype=np.float32)
        c = np.empty((s, s), np.float32)
        runs.append({"kernel": here + "matmul", "target": "cpu", "dims": {"M": s, "N": s, "K": s}, "config": {},
                     "measured_s": best_time(lambda: matmul(a, b, c), repeats=3)})
    return runs


def bound_kernels(runs: list) -> list:
    """[(bound kernel, target, measured seconds)] once, so the fit only re-times the model."""
    out = []
    for r in runs:
        kernel = load_kernel(r["kernel"])
        bound = kernel.specialize(r["dims"], r.get("config", {}), backend_for(r["target"]), arch=r["target"])
        out.append((bound, r["target"], float(r["measured_s"])))
    return out


def predicted(bound, target, assume: dict | None = None) -> float:
    """Predicted seconds of one bound kernel, or of a list of them launched one after the other (`assume`: values of
    tensors their loop bounds read, model.predict's)."""
    kernels = bound if isinstance(bound, (list, tuple)) else [bound]
    return sum(model.predict(b, target, assume).time_s for b in kernels)


def log_error(cases, target_name) -> float:
    """RMS log error over rows (bound, target, measured seconds[, assume])."""
    errs = [math.log(predicted(row[0], row[1], row[3] if len(row) > 3 else None) / row[2]) ** 2
            for row in cases if row[1] == target_name]
    return math.sqrt(sum(errs) / len(errs))


def applies(key: str, target) -> bool:
    """Whether a constant means anything on this target: loop overheads on a CPU only, the synchronous MMA's
    efficiency only where the tensor cores also have an asynchronous path with a row minimum (Hopper)."""
    return {"loop": bool(target.core), "mma_sync": bool(target.wgmma_rows)}.get(key, True)


def fit(cases, target_name: str, rounds: int = 3) -> dict:
    """Efficiency constants of one target that minimise the RMS log error over its measured cases
    [(bound kernel or list of them, target name, measured seconds[, assume])], with PRIOR's pull towards the
    starting values. Leaves them in the model's table."""
    target = get_target(target_name)
    base = model.efficiency(target)
    keys = [k for k in FITTED if applies(k, target)]
    fitted = {k: base.get(k, base["vector"]) for k in keys}
    start = dict(fitted)
    table = model._calibration_file()

    def objective(values: dict) -> float:
        return log_error(cases, target.name) ** 2 + PRIOR * sum(math.log(v / start[k]) ** 2 for k, v in values.items())
    for _ in range(rounds):
        for key in keys:
            trials = []
            for step in STEPS:
                cap = 2.0 if target.kind == "cpu" and key in CPU_CLOCKED else \
                    GPU_MATRIX_CAP if target.kind == "gpu" and key in ("compute", "mma_sync") else 1.0
                value = min(fitted[key] * step, cap) if key != "latency" else fitted[key] * step
                table[target.name] = {**table.get(target.name, {}), **fitted, key: value}
                trials.append((objective({**fitted, key: value}), abs(math.log(step)), value))
            # a constant the cases do not depend on keeps its value (a tie goes to the smallest change)
            fitted[key] = min(trials, key=lambda t: (round(t[0], 9), t[1]))[2]
    table[target.name] = {**table.get(target.name, {}), **fitted}
    return fitted


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("measured", help="JSON of measured runs (written first with --measure-cpu)")
    p.add_argument("--measure-cpu", action="store_true", help="time this file's kernels on the LLVM backend")
    p.add_argument("--write", action="store_true", help="merge the fitted constants into calibration.json")
    args = p.parse_args(argv)
    if args.measure_cpu:
        Path(args.measured).write_text(json.dumps(measure_cpu(), indent=1))
    runs = json.loads(Path(args.measured).read_text())
    cases = bound_kernels(runs)
    original = json.loads(json.dumps(model._calibration_file()))
    result = {}
    for name in sorted({row[1] for row in cases}):
        before = log_error(cases, name)
        result[name] = fit(cases, name)
        after = log_error(cases, name)
        print(f"{name}: rms log error {before:.3f} -> {after:.3f} ({math.exp(after):.2f}x typical); "
              f"{json.dumps({k: round(v, 3) for k, v in result[name].items()})}")
    for b, t, m in cases:
        print(f"  {b.name:8s} {dict(b.bound)}: measured {m * 1e6:10.1f} us, predicted "
              f"{model.predict(b, t).time_s * 1e6:10.1f} us")
    if args.write:
        write_constants(result, original)
    return 0


def write_constants(fitted: dict, original: dict | None = None) -> None:
    """Merge {target: {constant: value}} into calibration.json (over `original`, default the file as read)."""
    original = json.loads(model.CALIBRATION.read_text()) if original is None else original
    merged = {**original, **{k: {**original.get(k, {}), **{n: round(v, 3) for n, v in f.items()}}
                             for k, f in fitted.items()}}
    model.CALIBRATION.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"wrote {model.CALIBRATION}")


if __name__ == "__main__":
    sys.exit(main())
