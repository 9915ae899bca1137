"""plan-launch: decide how a bound kernel is launched on a GPU, as `Kernel.launch` (an `ir.LaunchPlan`): a
persistent grid or one program per block, warps per block, and the order in which program ids map to blocks. The
Triton lowering writes the kernel that way and the cost model times it that way; both read the plan."""
from __future__ import annotations

import math

from .. import ir
from ..cost.targets import get_target
from .base import Pass

#: blocks of GEMM rows that consecutive programs share, so their A/B tiles stay in L2 (Triton's matmul tutorial
#: groups 8 rows: https://triton-lang.org/main/getting-started/tutorials/03-matrix-multiplication.html)
GROUP_ROWS = 8
MAX_GRID_YZ = 65535  # CUDA's limit on gridDim.y and gridDim.z (CUDA C Programming Guide, "Compute Capabilities")
#: a persistent grid pays off once there are more blocks than SMs to run them at once; the plan counts the H100's
#: SMs whatever the target, as the lowering did when it decided this without a device, so every GPU target gets the
#: same source (the launch uses the real device's count either way)
PERSISTENT_ABOVE = get_target("h100").sms
#: the GEMM output tile (elements) from which 8 warps pay off; Triton's matmul tutorial runs 128x256 tiles with 8
#: warps and 64x64 ones with 4 (https://triton-lang.org/main/getting-started/tutorials/03-matrix-multiplication.html)
EIGHT_WARPS_FROM = 128 * 128
#: the same for fp32/fp64 operands, whose exact ("ieee") dots run on the CUDA cores with each thread's share of the
#: tile in registers: an H200 ran fp32 128x64x16 tiles 1.1-1.3x faster with 8 warps than 64x64 ones with 4 (M=N=K
#: of 1000 and 4096, 2026-12-02, results/h200/gemm_fp32_2026-12-02.json); ptxas spills them with 4 warps
EIGHT_WARPS_FROM_CUDA_CORES = 128 * 64


def grid_sizes(kernel: ir.Kernel) -> list:
    return [int(g.value) for g in kernel.grid]


def wants_persistent(kernel: ir.Kernel) -> bool:
    pipelined = any(isinstance(s, ir.For) and s.kind == "pipelined" for s in ir.walk_stmts(kernel.body))
    return (pipelined and math.prod(grid_sizes(kernel)) > PERSISTENT_ABOVE
            and not block_dependent_trip_counts(kernel))


def block_dependent_trip_counts(kernel: ir.Kernel) -> bool:
    """Whether some loop runs a number of times that depends on the block (causal attention's key loop stops at
    the block's diagonal). A persistent grid deals blocks to programs round-robin, so such uneven blocks leave some
    SMs idle at the end, where the hardware's own block scheduler balances them: on an H200, causal flash attention
    ran at 360 TFLOP/s persistent against 401 launched one program per block."""
    dependent = {v.name for v in kernel.block_vars}

    def depends(e) -> bool:
        """Through arithmetic only: a length read from memory (a MoE schedule, a sequence length) is the data's
        to balance, and measured on an H200 the persistent grid still won there (grouped GEMM, 512 rows per
        expert: 761 TFLOP/s against 708)."""
        if isinstance(e, ir.Load):
            return False
        if isinstance(e, ir.Var):
            return e.name in dependent
        return any(depends(c) for c in ir.expr_children(e))

    for stmt in ir.walk_stmts(kernel.body):
        if isinstance(stmt, ir.Let) and depends(stmt.value):
            dependent.add(stmt.var.name)
        elif isinstance(stmt, ir.For) and (depends(stmt.start) or depends(stmt.stop)):
            return True
    return False


def block_order(kernel: ir.Kernel) -> str:
    """How program ids map to block indices (ir.BLOCK_ORDERS): "grouped" over a 2-D GEMM grid, "flat" for grids
    past CUDA's y/z limits, else "direct"."""
    sizes = grid_sizes(kernel)
    has_gemm = any(isinstance(s, ir.Gemm) for s in ir.walk_stmts(kernel.body))
    if len(sizes) == 2 and has_gemm and min(sizes) > 1:
        return "grouped"
    if any(s > MAX_GRID_YZ for s in sizes[1:]):
        return "flat"
    return "direct"


def default_num_warps(kernel: ir.Kernel) -> int:
    buffers = kernel.buffers()
    for s in ir.walk_stmts(kernel.body):
        if isinstance(s, ir.Gemm):
            tile = math.prod(int(n.value) for n in buffers[s.c].shape)
            cuda_cores = buffers[s.a].dtype in ("float32", "float64")
            if tile >= (EIGHT_WARPS_FROM_CUDA_CORES if cuda_cores else EIGHT_WARPS_FROM):
                return 8
    return 4


def plan_launch(kernel: ir.Kernel) -> ir.LaunchPlan:
    order = block_order(kernel)
    return ir.LaunchPlan(wants_persistent(kernel), default_num_warps(kernel), order,
                         GROUP_ROWS if order == "grouped" else 0)


class PlanLaunch(Pass):
    """Plans for every target the Triton backend compiles for (all but CPUs: cost.autotune.backend_for). A grid
    that did not fold to constants stays unplanned, for the lowering to report as not fully bound."""
    name = "plan-launch"

    def run(self, kernel: ir.Kernel, ctx) -> ir.Kernel:
        if get_target(ctx.target).kind == "cpu" or not all(isinstance(g, ir.Const) for g in kernel.grid):
            return kernel
        return kernel.replace(launch=plan_launch(kernel))
