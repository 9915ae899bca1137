"""Replay a stored cost sweep offline: re-predict its measured configs with the current model and constants, with no
GPU (or without re-timing the CPU).

    python benchmarks/cost_replay.py benchmarks/results/h200/cost_sweep.json [--out DIR] [--write-calibration]
                                     [--target h100 ...]
    python benchmarks/cost_replay.py results/cpu/cost_sweep.json results/cpu/cost_sweep_softmax.json \
                                     results/cpu/cost_sweep_llm.json --write-calibration

Several sweeps of one target are replayed as one: a case (kernel, shape) stored in more than one keeps the runs of
the last file named (a re-measurement supersedes the older one), and the fit covers every case.

Each stored run (kernel, shape, config, measured_s) is bound again through cost_sweep's case builders (the CUDA
cases build on the host with device="cpu" tensors), so a model change is judged on the same measurements: the same
table as cost_sweep.py (Spearman rho, median APE, zero-measurement and top-8 pick) and the half/half calibration in
both directions, each fit started from the target's uncalibrated defaults. --write-calibration fits the constants on all cases and merges them into calibration.json, for the
stored target and every --target given (e.g. h100: the same GH100 chip as h200, so the same efficiencies).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibrate_cost  # noqa: E402
import cost_cases  # noqa: E402
import cost_sweep as cs  # noqa: E402

from tilec.cost import targets  # noqa: E402

#: cost_sweep's --kernels name of each case's kernel
KERNEL_GROUP = {"gemm": "gemm", "flash_attention": "attention", "grouped_gemm": "grouped_gemm",
                "paged_decode": "paged", "softmax_rows": "softmax", "softmax_online": "softmax",
                "sparse_attention": "sparse", "sparse_mla": "sparse_mla"}


def builders(report: dict) -> dict:
    """(kernel, shape) -> a freshly built Case of the stored device's sweep (its own sample is replaced)."""
    groups = {KERNEL_GROUP[r["kernel"]] for r in report["runs"]}
    return {(c.kernel, c.shape): c for c in cost_cases.every_case(report["target"], groups)}


def replay_cases(report: dict) -> list:
    """Cases holding exactly the stored runs, in their stored order, bound again with the current compiler."""
    known = builders(report)
    cases: dict = {}
    for run in report["runs"]:
        key = (run["kernel"], run["shape"])
        if key not in known:
            raise SystemExit(f"cost_replay: no case builder for {key[0]} {key[1]} in benchmarks/cost_cases.py")
        case = cases.setdefault(key, cs.Case(run["kernel"], run["shape"], report["target"], [], None,
                                             known[key].rebind, assume=known[key].assume))
        case.configs.append((run["config"], case.rebind(run["config"])))
        case.results.append((run["config"], float(run["measured_s"])))
        case.rounds.append(run.get("rounds_s"))
    for case in cases.values():  # the measurement's own noise only when every run kept its rounds
        if not all(case.rounds):
            case.rounds = []
    for row in report.get("shipped", []):  # the stored sweep's own timings, for the table
        case = cases.get((row["kernel"], row["shape"]))
        if case:
            case.sweep_s = row.get("sweep_s", 0.0)
    return list(cases.values())


def uncalibrated_holdout(cases: list, target: str) -> dict:
    """cost_sweep's half/half fit, started from the target's uncalibrated defaults: constants already fitted on
    all cases (calibration.json) would carry the held-out half's data into each fit."""
    table = cs.model._calibration_file()
    saved = table.pop(target, None)
    try:
        return cs.holdout(cases)
    finally:
        if saved is not None:
            table[target] = saved


def stored_host(report: dict) -> None:
    """A CPU sweep is re-predicted for the host that measured it: the target is rebuilt from the core count, SIMD
    and FMA widths, clock and caches its device line records (targets.host_cpu), not from this machine's."""
    if report["target"] == "cpu" and "detected:" in report["device"]:
        targets.TARGETS["cpu"] = targets.host_cpu(notes=report["device"])


def replay(report: dict) -> dict:
    stored_host(report)
    cases = replay_cases(report)
    return {**{k: report[k] for k in ("device", "target", "date")},
            "command": f"python benchmarks/cost_replay.py (replayed {time.strftime('%Y-%m-%d')}; measured by: "
                       f"{report['command']})",
            "constants": cs.model.efficiency(cs.model.get_target(report["target"])),
            "shipped": [cs.metrics(c) for c in cases], "holdout": uncalibrated_holdout(cases, report["target"]),
            "cases": cases}


def merge(reports: list) -> dict:
    """One report of several sweeps of the same target; a case in several keeps the last one's runs and row."""
    targets = {r["target"] for r in reports}
    if len(targets) != 1:
        raise SystemExit(f"cost_replay: the sweeps are of different targets ({', '.join(sorted(targets))})")
    if len(reports) == 1:
        return reports[0]
    owner = {(run["kernel"], run["shape"]): i for i, r in enumerate(reports) for run in r["runs"]}
    return {"device": reports[-1]["device"], "target": reports[-1]["target"],
            "date": ", ".join(r["date"] for r in reports), "command": "; ".join(r["command"] for r in reports),
            "runs": [run for i, r in enumerate(reports) for run in r["runs"]
                     if owner[(run["kernel"], run["shape"])] == i],
            "shipped": [row for i, r in enumerate(reports) for row in r.get("shipped", [])
                        if owner.get((row["kernel"], row["shape"])) == i]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", nargs="+", help="cost_sweep.json files written by benchmarks/cost_sweep.py (one target)")
    p.add_argument("--out", default=None, help="write the replayed cost_sweep.json/.md here")
    p.add_argument("--write-calibration", action="store_true",
                   help="fit the constants on all stored cases and merge them into calibration.json")
    p.add_argument("--target", action="append", default=[],
                   help="with --write-calibration: also store the fitted constants under this target")
    args = p.parse_args(argv)
    report = replay(merge([json.loads(Path(f).read_text()) for f in args.sweep]))
    cases = report.pop("cases")
    print(cs.markdown(report), flush=True)
    if args.out:
        cs.write({**report, "runs": [{"kernel": c.kernel, "shape": c.shape, "config": cfg, "measured_s": s,
                                      "predicted_s": pr} for c in cases
                                     for (cfg, s), pr in zip(c.results, cs.predict_case(c))]}, Path(args.out))
    if args.write_calibration:
        fitted = cs.fit(cases)[report["target"]]
        print("fitted on all cases:", json.dumps({k: round(v, 3) for k, v in fitted.items()}))
        calibrate_cost.write_constants({t: fitted for t in [report["target"], *args.target]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
