"""Registers per thread that ptxas gives the stored H200 sweep's kernels, compiled offline for sm_90 with the local
Triton (its bundled ptxas; no GPU needed, nothing is run), next to the cost model's register estimate: a check of
tilec.cost.registers.register_tiles / model.occupancy, not a measurement of a GPU.

    python benchmarks/ptxas_registers.py [--per-case N] [--out benchmarks/results/h200/ptxas_registers.json]

For each case of the replayed H200 sweeps (cost_replay's three files) it compiles every stored config (or an even
spread of N) and records ptxas's registers,
spill stores and stack frame, Triton's shared memory, the blocks per SM these allow (65536 registers in 256-register
warp units, 228 KiB of shared memory, 2048 threads, 32 blocks) and the model's estimate of the same.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results" / "h200"
SWEEPS = [RESULTS / "cost_sweep.json", RESULTS / "cost_sweep_paged_skinny" / "cost_sweep.json",
          RESULTS / "cost_sweep_paged_graph" / "cost_sweep.json"]
REGS_PER_SM, SMEM_PER_SM, THREADS_PER_SM, BLOCKS_PER_SM = 65536, 228 * 1024, 2048, 32
#: shared memory the CUDA runtime reserves per block on sm_80 and later (CUDA C++ Programming Guide, "Shared Memory")
SMEM_RESERVED_PER_BLOCK = 1024


def compile_sm90(bound, num_warps: int):
    from tilec.lowering.triton_launch import compile_offline

    made = compile_offline(bound, num_warps)
    regs, spills, stack = resource_usage(made.asm["cubin"])
    return regs, spills, stack, made.metadata.shared, bound.launch.persistent


def resource_usage(cubin: bytes) -> tuple[int, int, int]:
    """(registers per thread, spill stores in bytes, stack frame in bytes) of a cubin's kernel, read back with the
    cuobjdump that ships with Triton (--dump-resource-usage)."""
    import re
    import subprocess
    import tempfile

    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    reg = re.search(r"REG:(\d+)", text)
    stack = re.search(r"STACK:(\d+)", text)
    spill = re.search(r"LOCAL:(\d+)", text)
    return int(reg[1]), int(spill[1]) if spill else 0, int(stack[1]) if stack else 0


def blocks_per_sm(regs: int, shared: int, threads: int) -> int:
    warps = threads // 32
    per_warp = math.ceil(regs * 32 / 256) * 256
    limits = [BLOCKS_PER_SM, THREADS_PER_SM // threads, (REGS_PER_SM // per_warp) // warps]
    if shared:
        limits.append(SMEM_PER_SM // (shared + SMEM_RESERVED_PER_BLOCK))
    return max(0, min(limits))


def chosen(case, per_case: int) -> list:
    """Every stored config of a case, or an even spread of `per_case` of them."""
    if not per_case or per_case >= len(case.configs):
        return case.configs
    step = len(case.configs) / per_case
    return [case.configs[int(i * step)] for i in range(per_case)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-case", type=int, default=0, help="configs per case (0: all)")
    p.add_argument("--out", default=str(RESULTS / "ptxas_registers.json"))
    args = p.parse_args(argv)
    import triton

    import cost_replay
    from tilec.cost import model, registers
    from tilec.cost.targets import get_target

    target = get_target("h200")
    report = cost_replay.merge([json.loads(f.read_text()) for f in SWEEPS])
    rows, seen = [], set()
    for case in cost_replay.replay_cases(report):
        for cfg, bound_kernels in chosen(case, args.per_case):
            for bound in bound_kernels:
                key = (bound.name, tuple(sorted((k, str(v)) for k, v in bound.bound)))
                if key in seen:
                    continue
                seen.add(key)
                warps = bound.launch.num_warps
                t0 = time.perf_counter()
                regs, spills, stack, shared, persistent = compile_sm90(bound, warps)
                est = registers.register_estimate(bound, target, 32 * warps)
                rows.append({"case": f"{case.kernel} {case.shape}", "kernel": bound.name,
                             "config": {k: v for k, v in cfg.items() if k != "scale_log2"}, "num_warps": warps,
                             "persistent": persistent, "ptxas_regs": regs, "ptxas_spills": spills,
                             "stack_bytes": stack, "triton_shared_bytes": shared,
                             "ptxas_blocks_per_sm": blocks_per_sm(regs, shared, 32 * warps),
                             "model_regs": est, "model_blocks_per_sm": model.predict(bound, target).occupancy
                             if not persistent else None,
                             "compile_s": round(time.perf_counter() - t0, 2)})
                print(json.dumps(rows[-1]), flush=True)
    out = {"what": "registers per thread that ptxas (bundled with the local Triton) gives each kernel, compiled "
                   "offline for sm_90 (triton.compile with GPUTarget('cuda', 90, 32)); NOT a GPU measurement. "
                   "ptxas_blocks_per_sm: what those registers and Triton's shared memory allow on an H200 "
                   "(65536 registers in 256-register warp units, 228 KiB shared with 1 KiB reserved per block, 2048 "
                   "threads, 32 blocks). model_*: tilec.cost.model's estimate at the time of writing (None for a "
                   "persistent grid, which runs one program per SM).",
           "command": "python benchmarks/ptxas_registers.py", "date": time.strftime("%Y-%m-%d"),
           "triton": triton.__version__, "target": "sm_90 (H200 limits)", "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
