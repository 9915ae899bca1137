"""Registers per thread of a GPU block, from the lowered IR and the Triton backend's padded tile shapes: the
estimate behind the occupancy limit, whether ptxas will spill, and what a spilled register's round trip costs.
Checked against ptxas's counts of offline sm_90 compiles (benchmarks/ptxas_registers.py)."""
from __future__ import annotations

import math

from .. import ir
from ..lowering.triton_layout import DOT_MIN, next_pow2  # how the Triton backend pads tl.dot operands
from .counting import tile_bytes
from .targets import Target

#: registers are allocated per warp in units of 256 (CUDA Occupancy Calculator, "register allocation unit size" of
#: compute capability 5.0-9.0): a thread's count is rounded up to a multiple of 8
REG_ALLOC_PER_THREAD = 8


#: registers per thread of a GPU block besides its tiles (indices, addresses, loop counters, masks): fitted by least
#: squares over ptxas's counts for the 230 kernels of the stored H200 sweep, compiled offline for sm_90 with the local
#: Triton (benchmarks/results/h200/ptxas_registers.json, benchmarks/ptxas_registers.py; not GPU measurements):
#: register_estimate is within 9 registers of ptxas on average (the earlier 32 base without the operand term: 15)
REG_BASE_GPU = 24
#: the same for a CPU "block" (one thread), unchanged
REG_BASE = 32


def register_tiles(kernel: ir.Kernel, target: Target) -> tuple[int, int]:
    """(fragment bytes, bytes of loaded values a block holds in registers on their way to the MMA): see
    register_parts; the values on their way are the larger of its gathered and operand bytes."""
    frag, gathered, operands = register_parts(kernel, target)
    return frag, max(gathered, operands)


def register_parts(kernel: ir.Kernel, target: Target) -> tuple[int, int, int]:
    """(fragment bytes, gathered bytes, operand bytes): the registers one block's values take, as
    the backend lays the tiles out. The Triton backend pads every tile dim to a power of two and a tl.dot operand's
    dims to 16 (lowering/triton_layout.Padding: a group of 4 query heads is a 16-row tile there). On their way:
    (a) a shared tile that a T.Parallel fills (a gather at table indices) is a register tensor of loaded values
    before Triton stores it to shared memory, unless a software-pipelined loop turns the gather into cp.async copies;
    (b) a T.gemm that takes the synchronous MMA (Target.wgmma_rows: accumulator rows, padded, not a multiple of 64 on
    Hopper; every T.gemm on a target without an asynchronous MMA) loads its shared operands whole into registers in
    the dot-operand layout (ldmatrix), where wgmma reads them from shared memory. (a) is dead once stored, before
    (b) loads, so register_tiles counts the larger of the two; of (b) the largest T.gemm's (one runs at a time).
    Other targets: the IR's own tile bytes, no such values."""
    if target.kind != "gpu":
        return tile_bytes(kernel)[1], 0, 0
    from ..lowering.triton_layout import Padding

    pad, buffers = Padding(kernel), kernel.buffers()
    filled = {s.buffer for s in ir.walk_stmts(kernel.body) if isinstance(s, (ir.Store, ir.AtomicAdd))}
    # in a software-pipelined loop (num_stages >= 2) Triton's pipeliner turns the gather into cp.async copies
    # straight into the shared buffer: no registers (ptxas, Triton 3.9, sm_90, paged split kernel at 8 pages per
    # step: 198 registers at 1 stage, 125-128 at 2-4)
    filled -= {s.buffer for loop in ir.walk_stmts(kernel.body)
               if isinstance(loop, ir.For) and loop.kind == "pipelined" and int(loop.num_stages.value) > 1
               for s in ir.walk_stmts(loop.body) if isinstance(s, ir.Store)}
    frag = through = 0
    for name, buf in buffers.items():
        if buf.scope not in ("shared", "fragment", "local"):
            continue
        nbytes = padded_bytes(pad, name, buf)
        if buf.scope != "shared":
            frag += nbytes
        elif name in filled:
            through += nbytes
    operands = 0
    for g in ir.walk_stmts(kernel.body):
        if isinstance(g, ir.Gemm) and synchronous_mma(target, int(buffers[g.c].shape[0].value)):
            operands = max(operands, sum(padded_bytes(pad, n, buffers[n]) for n in (g.a, g.b)
                                         if buffers[n].scope == "shared"))
    return frag, through, operands


def synchronous_mma(target: Target, rows: int) -> bool:
    """Whether a T.gemm whose accumulator has `rows` rows takes the synchronous MMA on `target` (its rows as the
    Triton backend pads them: a power of two, at least 16)."""
    return not target.wgmma_rows or max(DOT_MIN, next_pow2(rows)) % target.wgmma_rows != 0


def register_estimate(kernel: ir.Kernel, target: Target, threads: int) -> int:
    """Registers per thread the occupancy estimate assumes for a GPU block of `threads` threads: its padded
    fragments and the values on their way to the MMA (register_tiles) over the threads, plus REG_BASE_GPU,
    allocated in units of REG_ALLOC_PER_THREAD."""
    frag, through = register_tiles(kernel, target)
    return math.ceil(((frag + through) / 4 / threads + REG_BASE_GPU) / REG_ALLOC_PER_THREAD) * REG_ALLOC_PER_THREAD


#: a thread addresses at most 255 registers; past that ptxas spills to local memory (CUDA C++ Programming Guide,
#: "Technical Specifications per Compute Capability": maximum number of 32-bit registers per thread, 5.0-10.0)
MAX_REGS_PER_THREAD = 255


def spills(kernel: ir.Kernel, target: Target, threads: int) -> bool:
    """Whether a GPU block's registers per thread pass MAX_REGS_PER_THREAD (register_demand)."""
    return any(register_demand(kernel, target, threads))


def register_demand(kernel: ir.Kernel, target: Target, threads: int) -> tuple[bool, bool]:
    """(whether the block's long-lived registers pass MAX_REGS_PER_THREAD, whether they do only with the gathered
    values in flight): its padded fragments (register_parts), a second copy of each fragment that a T.gemm reads
    (converted to the dot-operand layout), 32 base registers, then the values a T.Parallel gathers on their way to
    shared memory. ptxas (Triton 3.9, sm_90) on paged decode's reduce kernel: 87 registers and no stack at 64
    splits (estimate 204), 32 registers and a 7 KB stack frame per thread at 86-128 (padded to 128: estimate 368).
    A synchronous MMA's shared operands do not count: ptxas loads them a k slice at a time when registers run short
    (Triton 3.6, sm_90, sparse MLA at 16 heads, 2 stages: 238 registers and no stack with a 128 x 512 operand,
    which whole would take 256 per thread)."""
    if target.kind != "gpu":
        return False, False
    from ..lowering.triton_layout import Padding

    frag, gathered, _ = register_parts(kernel, target)
    pad, buffers = Padding(kernel), kernel.buffers()
    copies = sum(padded_bytes(pad, name, buffers[name]) for g in ir.walk_stmts(kernel.body)
                 if isinstance(g, ir.Gemm) for name in (g.a, g.b) if buffers[name].scope == "fragment")
    held = (frag + copies) / 4 / threads + 32 > MAX_REGS_PER_THREAD
    return held, not held and (frag + copies + gathered) / 4 / threads + 32 > MAX_REGS_PER_THREAD


def spill_latency(kernel: ir.Kernel, target: Target, threads: int) -> float:
    """Seconds of one round trip to the local memory that holds a GPU block's spilled registers (0: none spill).
    Local memory is cached in L1 (CUDA C++ Best Practices Guide, "Local Memory"). Values gathered on their way to
    shared memory spill briefly and a little, and their round trips stay in L1 (the shared tier's latency); long-lived
    fragments spill whole, and theirs cost a global round trip. H200: the sparse MLA kernel at 16 heads and 1 stage
    (ptxas: 255 registers, a 16-816 B stack per thread from its gathers) ran 130-153 us, where global round trips
    predicted 1.3 ms; the paged reduce at 86-128 splits (a 7 KB stack per thread from its fragments) ran ~190 us,
    which global round trips predict (196 us)."""
    held, gathered = register_demand(kernel, target, threads)
    tier = target.global_tier if held else target.shared_tier if gathered else None
    return target.memory[tier].latency if tier else 0.0


def padded_bytes(pad, name: str, buf: ir.Buffer) -> int:
    """A tile's bytes as the Triton backend lays it out (Padding); a local scalar or a tile the padding does not
    know keeps the IR's shape."""
    try:
        shape = pad.tile_shape(name) if buf.scope != "local" else [int(d.value) for d in buf.shape]
    except (KeyError, AssertionError):
        shape = [int(d.value) for d in buf.shape]
    return math.prod(shape) * ir.ITEMSIZE[buf.dtype]
