"""What the LLVM backend's code costs on one host core, in cycles: the shape-dependent parts that a FLOP count misses.

`T.gemm` (lowering/llvm/gemm.py) packs B into panels of 2 vectors' worth of columns, then runs a register-blocked
micro-kernel: per k step it loads the panel's vectors, broadcasts one a element per row and issues one FMA per
accumulator vector; the c block is loaded before and stored after the k loop. Columns past the full panels use
narrower vectors (split_widths), which waste FMA lanes; a few rows (skinny M) leave too few accumulator chains to
hide the FMA latency. So the cycles of one gemm call are

    per micro-call  k * max(FMA pipe slots / pipes, load slots / load ports, splats / shuffle pipes, FMA latency)
                    + c load and store
    packing         k rows of n elements, stored at the core's store width

`core` figures of a target (targets.host_cpu): clock_hz, simd_bytes (register width), fma_bytes (native FMA datapath
per pipe: a wider op takes several slots), fma_pipes, load_ports, shuffle_pipes (the splat of a[i, k]), fma_latency
(cycles), store_bytes (per cycle), gather_cycles (one element of a T.Parallel gather, tilec/cost/model.py),
exp_ops and vector_pipes (T.exp/exp2/log are inline vector code, lowering/llvm/vecmath.py: instructions per vector
of lanes, issued over the vector pipes; targets.host_cpu turns them into the transcendental rate), row_cycles
(entering one innermost loop: a copy's row with its bounds and masking, a packing row: tiles with short rows pay it
per few elements).
"""
from __future__ import annotations

import math

#: accumulator vectors the micro-kernel keeps in registers and columns per full panel (lowering/llvm/gemm.py)
ACC_VECTORS, VECTORS_PER_PANEL = 24, 2


def micro_cycles(rows: int, widths: list, k: int, itemsize: int, core: dict) -> float:
    """One micro-kernel call: rows x sum(widths) of c against k rows of a packed panel."""
    slots = [math.ceil(w * itemsize / core["fma_bytes"]) for w in widths]  # 512-bit on 256-bit pipes: 2
    loads = rows + sum(slots)  # one broadcast per row, the panel's vectors
    # a[i, k] is splat once per row and distinct width, on the shuffle pipes (a 512-bit splat in two halves): a
    # one-vector panel has one FMA per splat and waits on them
    splats = rows * sum(math.ceil(w * itemsize / core["fma_bytes"]) for w in set(widths))
    per_k = max(rows * sum(slots) / core["fma_pipes"], loads / core["load_ports"], core["fma_latency"],
                splats / core["shuffle_pipes"])
    moves = 2 * rows * sum(max(1, w * itemsize // core["store_bytes"]) for w in widths)  # c in and out
    return k * per_k + moves


def gemm_cycles(m: int, n: int, k: int, itemsize: int, core: dict) -> tuple[float, int]:
    """(cycles, loop rows) of one `T.gemm` call of an m x n x k tile on one core (compute dtype of `itemsize`
    bytes); loop rows (the packing loop's k rows, one per micro-kernel call) each pay the loop overhead."""
    from ..lowering.llvm.gemm import split_widths  # the CPU backend's own column split (imports llvmlite)

    lanes = core["simd_bytes"] // itemsize
    nr = lanes * VECTORS_PER_PANEL
    chunks = [[lanes] * VECTORS_PER_PANEL] * (n // nr)
    if n % nr:
        chunks.append(split_widths(n % nr, lanes))
    total = k * math.ceil(n * itemsize / core["store_bytes"])  # packing B
    rows_run = k * len(chunks)
    for widths in chunks:
        rows = max(1, min(m, ACC_VECTORS // len(widths)))
        total += (m // rows) * micro_cycles(rows, widths, k, itemsize, core)
        rows_run += -(-m // rows)
        if m % rows:
            total += micro_cycles(m % rows, widths, k, itemsize, core)
    return total, rows_run
