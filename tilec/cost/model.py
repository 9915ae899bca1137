"""The analytic cost model: predicted run time of a fully bound kernel on a target.

    counts   (counting.py) operations per kind, bytes per tier, L2 reuse, per phase (each top-level loop)
    launch   GPU: the kernel's launch plan (Launch; the plan-launch pass, which the Triton backend follows): a
             pipelined grid larger than the SMs runs persistent, one program per SM, its loops usually flattened (the
             pipeline fills once per program, the epilogue's stores drain under the next block's loop); 4 or 8 warps
             per block
    occupancy  blocks per SM = min(shared memory, registers, threads, the hardware's block limit), 1 if persistent
    waves    the grid runs in waves of sms x blocks-per-SM blocks; the last wave may be partial (the tail)
    a wave   per phase and per SM: a slot of one loop iteration takes
                 max(b * compute, b * memory, latency chain)      (b = blocks resident on the SM)
             (the b blocks each advance one iteration: their chains overlap, their work shares the SM)
             where memory = max over tiers of bytes / (the SM's share of the tier's bandwidth) and the latency
             chain is (latency + load transfer [+ MMA on Hopper]) / (num_stages - 1) for a software pipeline,
             compute + b x memory + latency without one (the b blocks run in lockstep: one round trip, then all
             their transfers). Latency is DRAM's for misses and the cache's for hits, twice where a load's index
             reads a global table (page id, then page). On Hopper, tensor-core and vector
             work overlap (asynchronous wgmma) for GEMM tiles of 64 rows or more; a smaller tile takes the
             synchronous mma.sync (Target.wgmma_rows), at its own fitted efficiency ("mma_sync"), serial with the
             block's vector work and with its wait for the next stage's loads. A pipeline of s stages over n
             iterations takes max(n x b x work, (n + s - 1) x chain): the fill is latency, not bandwidth (Little's
             law per SM: b blocks keep b (s - 1) iterations of loads in flight). A pipelined gather (T.Parallel
             at table indices) gets one shared buffer (chain of s = 1, the table read a stage ahead); an SM
             streams at most its fair share of DRAM (SM_SHARE_CAP), 1.5x that through TMA (SM_SHARE_CAP_BULK);
             registers past 255 per thread spill, and a GEMM on spilled operands waits a local-memory round
             trip per MMA k step (L1 for gathered values in flight, global for fragments). A persistent grid's
             flattened nest pipelines an inner num_stages=1 at Triton's default, unless the block reads global
             values before its loop (a MoE schedule row).
    total    full waves x wave time + tail wave time + launch overhead

On a CPU (a target with `core` figures) one thread runs a block's statements one after another: a slot is
compute + scratch copies (+ passes over scratch tiles that overflow the core's L1 share, refilled from L2), overlapped
with the cache and DRAM streams when a loop prefetches (num_stages > 1) or gathers, else followed by its DRAM
transfer and latency (the thread copies its rows, then computes on them); a GEMM
costs the LLVM micro-kernel's cycles for its tile shape (tilec/cost/cpu.py: lane use of narrow column tails, too few
rows to hide the FMA latency, splats, packing, c loads and stores), every innermost copy or packing row a loop entry
and every element a T.Parallel loads at an index read from a table (a gather) core cycles of its own;
num_stages only sets the prefetch distance (no fill and drain).

Global loads that blocks of one wave share (a GEMM's A tile across the blocks of one row) are fetched from DRAM
once; every tensor costs at least its footprint once; when every loaded tensor (on a CPU, with the written ones)
fits in half the cache, only the footprint comes from DRAM. A few efficiency constants per target (fraction of
peak reached) live in tilec/cost/data/calibration.json, fitted by benchmarks/calibrate_cost.py from measured times.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .. import ir
from ..errors import TilecArgumentError
from .counting import Counting, KernelCounts, Phase, tile_bytes
from .cpu import gemm_cycles
from .registers import (MAX_REGS_PER_THREAD, REG_ALLOC_PER_THREAD, REG_BASE, REG_BASE_GPU, register_tiles,
                        spill_latency, synchronous_mma)
from .targets import DEFAULT_EFFICIENCY, Target, get_target

CALIBRATION = Path(__file__).with_name("data") / "calibration.json"
#: one SM (or core) alone reaches at most this multiple of its fair share (bandwidth / SMs) of a shared tier.
#: Measured on the H200 (benchmarks/results/h200, CUDA-graph replays): paged decode with one block per SM on 64 SMs
#: moved 64 KB per step in 2.6 us (~25 GB/s per SM, 0.7x the fair 36 GB/s) and 8 KB in 1.2 us (one DRAM round trip
#: plus the bytes at the fair share); the skinny GEMM 16x4096x4096 in 128x64 tiles on 64 SMs streamed B at 1.0
#: TB/s. The earlier estimate of 4x (~100 GB/s per H100 SM, Chips and Cheese 2023) predicted such grids 2x too fast
SM_SHARE_CAP = 1.0
#: the same for tile copies through Hopper's bulk-copy engine (TMA) rather than per-thread gathers: the skinny GEMM
#: 16x4096x4096 with 64x256 tiles on 16 SMs streamed B at 48 GB/s per SM, 1.5x the fair share (H200 sweep of
#: 2026-11-29 16:09, results/h200/cost_sweep_paged_skinny); replaying that sweep with 1.5 instead of 1 took its rho
#: from 0.87 to 0.89 and APE from 22% to 19% and changed no other H200 case's ranking
SM_SHARE_CAP_BULK = 1.5
#: every loaded tensor fits in this fraction of the cache tier -> DRAM sees each byte once
CACHE_FIT = 0.5


@lru_cache(maxsize=None)
def _calibration_file() -> dict:
    try:
        return json.loads(CALIBRATION.read_text())
    except (OSError, ValueError):
        return {}


def efficiency(target: Target) -> dict:
    """Default efficiencies, then the target's own, then the fitted ones from calibration.json."""
    fitted = _calibration_file().get(target.name, {})
    return {**DEFAULT_EFFICIENCY, **target.efficiency, **{k: v for k, v in fitted.items() if not k.startswith("_")}}


@dataclass
class CostReport:
    kernel: str
    target: str
    time_s: float
    bound: str  # "compute", "memory" or "latency"
    flops: dict  # dtype -> floating-point operations (GEMMs and elementwise)
    bytes_by_tier: dict  # tier name -> bytes moved there
    occupancy: int  # resident blocks per SM (or core)
    waves: float  # grid / (SMs x occupancy)
    explanation: str
    grid: int = 0
    config: dict = field(default_factory=dict)
    transcendentals: float = 0.0
    compute_s: float = 0.0  # the time if only compute counted
    memory_s: float = 0.0  # the time if only memory traffic counted
    notes: list = field(default_factory=list)

    @property
    def total_flops(self) -> float:
        return sum(self.flops.values())

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of the global tier (the x axis of a roofline)."""
        dram = next(iter(self.bytes_by_tier.values()), 0.0)
        return self.total_flops / dram if dram else math.inf

    def __str__(self) -> str:
        cfg = ", ".join(f"{k}={v}" for k, v in self.config.items())
        lines = [f"{self.kernel} on {self.target}" + (f" ({cfg})" if cfg else ""),
                 f"  time      {_fmt_time(self.time_s)}  ({self.bound}-bound)",
                 "  flops     " + (", ".join(f"{dt} {v:.3g}" for dt, v in self.flops.items()) or "0"),
                 "  bytes     " + ", ".join(f"{t} {_fmt_bytes(v)}" for t, v in self.bytes_by_tier.items()),
                 f"  grid      {self.grid} blocks, {self.occupancy}/SM, {self.waves:.2f} waves",
                 f"  why       {self.explanation}"]
        lines += [f"  note      {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt_time(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms"


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


# ------------------------------------------------------------------------------------------------ occupancy
def occupancy(counts: KernelCounts, target: Target, eff: dict, threads: int = 0, through: int = 0,
              padded: bool = False) -> tuple[int, str]:
    """Resident blocks per SM and what limits them. Fragments live in registers: their bytes times an overhead
    (operands, addresses; none when `padded`: the backend's padded tile shapes, register_tiles, already hold it),
    plus `through` bytes of loaded values on their way to the MMA, plus base registers per thread (REG_BASE_GPU for
    the padded GPU count, else REG_BASE); a GPU thread's registers are allocated in units of REG_ALLOC_PER_THREAD
    (register_estimate is the same count per thread). Checked against ptxas (Triton 3.9, sm_90, offline compiles)
    on the 230 kernels of the stored H200 sweep, benchmarks/results/h200/ptxas_registers.json: the register limit
    matches the compiler's for 61 of the 122 non-persistent kernels and is within one block for 103 (the earlier
    estimate, a 32-register base and no MMA operands: 49 and 77); paged decode's split kernel at 1, 2, 4 and 8
    pages per step and 3-4 stages: 8, 7, 5 and 3 blocks per SM by the registers (ptxas 8, 7, 5-6 and 4; earlier
    9, 9, 6 and 6), shared memory then limits the 8-page one to 3."""
    threads = threads or target.threads_per_block
    base = REG_BASE_GPU if padded else REG_BASE
    regs = counts.fragment_bytes * (1.0 if padded else eff["reg_overhead"]) + through + threads * base * 4
    if target.kind == "gpu":
        regs = math.ceil(regs / 4 / threads / REG_ALLOC_PER_THREAD) * REG_ALLOC_PER_THREAD * 4 * threads
    limits = {"the hardware block limit": target.max_blocks_per_sm,
              "registers": int(target.regs_per_sm // regs) if target.regs_per_sm else target.max_blocks_per_sm}
    if target.max_threads_per_sm:
        limits["threads"] = target.max_threads_per_sm // threads
    if counts.smem_bytes:
        limits["shared memory"] = int(target.smem_per_sm // counts.smem_bytes)
    why = min(limits, key=limits.get)
    return max(1, limits[why]), why


@dataclass(frozen=True)
class Launch:
    """How the backend launches a kernel on a GPU, as its launch plan says (Kernel.launch, the plan-launch pass): a
    grid with a pipelined loop and more blocks than SMs runs persistent (one program per SM strides over the
    blocks), and a GEMM accumulator of 128x128 or more gets 8 warps instead of 4. Unless a tile is copied in outside
    the loops, Triton flattens the persistent loop with the pipelined one: the pipeline fills once per program, the
    next block's loads overlap this block's epilogue, and an inner num_stages=1 is lost to the fused loop, which
    pipelines at Triton's default (H200 sweep: GEMMs with num_stages 1 and 3 timed within 0.3% of each other)."""
    persistent: bool = False
    threads: int = 0


def launch_plan(kernel: ir.Kernel, target: Target) -> ir.LaunchPlan:
    if kernel.launch is None:
        raise TilecArgumentError(f"{kernel.name}: no launch plan to time on {target.name}; bind the kernel for it "
                                 f"with TileKernel.specialize(dims, config, 'triton', arch={target.name!r})")
    return kernel.launch


def launch(kernel: ir.Kernel, target: Target) -> Launch:
    if target.kind != "gpu":
        return Launch(False, target.threads_per_block)
    plan = launch_plan(kernel, target)
    # threads_per_block is the 4-warp figure (128 on NVIDIA, 256 with AMD's 64-lane wavefronts)
    return Launch(plan.persistent, target.threads_per_block * plan.num_warps // 4)


def launch_group_rows(kernel: ir.Kernel, target: Target) -> int:
    """Rows of blocks that the backend launches together (the plan's L2-friendly grouped order over a 2-D GEMM
    grid), 0 for plain order: which blocks share a wave, and so its loads."""
    if target.kind != "gpu":
        return 0
    return launch_plan(kernel, target).group_rows


#: num_stages Triton gives a loop that names none (triton/backends/nvidia/compiler.py, CUDAOptions.num_stages)
TRITON_DEFAULT_STAGES = 3


# ------------------------------------------------------------------------------------------------ timing
class Timing:
    def __init__(self, counts: KernelCounts, target: Target, eff: dict, dram_scale: dict, flat: bool = False,
                 spill_latency: float = 0.0):
        self.counts, self.target, self.eff, self.scale = counts, target, eff, dram_scale
        #: seconds of one round trip to the local memory holding spilled registers (spill_latency; 0: no spill):
        #: a GEMM on spilled operands waits one per MMA k step
        self.spill_latency = spill_latency * eff["latency"]
        self.flat = flat  # a persistent grid whose loops Triton flattens (no tile copied in outside the loops)
        # pipeline fills per block: once per program when flattened
        self.fills = 1 / max(1.0, counts.grid / target.sms) if flat else 1.0
        mem = target.memory
        self.dram, self.cache, self.shared = mem[target.global_tier], mem[target.cache_tier], mem[target.shared_tier]
        self.latency = self.dram.latency * eff["latency"]
        #: global values the block reads before its loops (a MoE schedule row: expert, first and end row). The
        #: H200 sweep's grouped GEMM (persistent, flattened) ran its num_stages=1 configs 2.7-3.4x slower than
        #: the same tiles at 3 stages, where the plain GEMM's ran within 0.3%: its inner num_stages=1 is kept
        self.prologue_loads = any(ph.loads for ph in counts.phases if ph.name == "body")

    def op_rate(self, kind: str) -> float:
        """Operations per second of one SM for one op kind ("gemm:<dtype>", "vector:<dtype>", "sfu")."""
        t, e = self.target, self.eff
        if kind == "sfu":
            return t.sfu_ops * e.get("sfu", e["vector"]) / t.sms
        unit, dtype = kind.split(":")
        matrix = unit == "gemm" and dtype in t.matrix_flops
        return t.peak_flops(dtype, matrix) * (e["compute"] if unit == "gemm" else e["vector"]) / t.sms

    def sync_share(self, ph: Phase) -> float:
        """Fraction of a phase's tensor-core FLOPs whose tile takes the synchronous MMA: on a target with an
        asynchronous warpgroup MMA (Target.wgmma_rows), a T.gemm whose accumulator has fewer rows, as the Triton
        backend pads them (a power of two, at least 16: lowering/triton_layout.Padding)."""
        if not self.target.wgmma_rows or self.target.core or not ph.gemms:
            return 0.0
        total = sum(m * n * k * calls for m, n, k, _, calls in ph.gemms)
        slow = sum(m * n * k * calls for m, n, k, _, calls in ph.gemms if synchronous_mma(self.target, m))
        return slow / total if total else 0.0

    def share(self, tier, active: int, gathered: bool = True) -> float:
        fair = tier.bandwidth / self.target.sms
        cap = SM_SHARE_CAP if gathered or not self.target.async_mma_buffers else SM_SHARE_CAP_BULK
        return min(tier.bandwidth / max(active, 1), fair * cap)

    def phase(self, ph: Phase, b: int, active: int) -> tuple[float, float, dict]:
        """(time, compute-only time, {tier: memory-only time}) of one phase for a wave with `b` blocks per SM on
        `active` SMs."""
        t = self.target
        per = self.counts.grid * max(ph.trips, 1)
        core = t.core
        rates = {k: n / per / self.op_rate(k) for k, n in ph.ops.items() if not (core and k.startswith("gemm:"))}
        mma = sum(v for k, v in rates.items() if k.startswith("gemm:"))
        # tiles under the asynchronous MMA's row minimum run the synchronous one, at its own efficiency
        sync = self.sync_share(ph)
        mma_async, mma_sync = mma * (1 - sync), mma * sync * self.eff["compute"] / self.eff["mma_sync"]
        c_it = sum(rates.values()) - mma + mma_async + mma_sync
        if t.async_mma_buffers:  # an asynchronous MMA runs on the tensor cores while the warps issue vector work
            c_it = max(mma_async, c_it - mma_async)
        if core:  # the micro-kernel's cycles for its tile shape, not FLOPs at peak; per-row loop overheads
            hz, rows = core["clock_hz"], ph.copy_rows
            for m, n, k, size, calls in ph.gemms:
                cycles, gemm_rows = gemm_cycles(m, n, k, size, core)
                c_it += cycles * calls / per / (hz * self.eff["compute"])
                rows += gemm_rows * calls
            c_it += rows / per * core["row_cycles"] / (hz * self.eff["loop"])
            c_it += ph.gathers / per * core["gather_cycles"] / (hz * self.eff["loop"])
        cached = (sum(nb for _, nb, _ in ph.loads) + ph.store_bytes) / per
        dram = (sum(nb * miss * self.scale.get(t, 1.0) for t, nb, miss in ph.loads) + ph.store_bytes) / per
        gathered_rows = ph.gathers > 0  # cp.async gathers; tile copies go through the bulk-copy engine (TMA)
        tiers = {t.global_tier: dram / (self.share(self.dram, active, gathered_rows) * self.eff["memory"]),
                 t.cache_tier: cached / (self.share(self.cache, active, gathered_rows) * self.eff["cache"]),
                 t.shared_tier: ph.shared_bytes / per / (self.shared.bandwidth * self.eff["shared"])}
        m_it = max(tiers.values())
        # stores are posted (a block does not wait for them); a flattened loop issues the next block's loads
        # during this block's prologue and epilogue
        latency = self.latency if ph.loads and (ph.trips > 1 or ph.stages > 1 or not self.flat) else 0.0
        if not core and cached > 0 and self.cache.latency:  # loads that hit the cache wait its latency, not DRAM's
            hit = min(1.0, max(0.0, 1 - dram / cached))
            latency *= 1 - hit + hit * self.cache.latency / self.dram.latency
        s = max(ph.stages, 1)
        if self.flat and ph.pipelined and s == 1 and not self.prologue_loads:
            s = TRITON_DEFAULT_STAGES
        if core:  # one thread runs the compute and the scratch copies in turn; caches and DRAM stream alongside
            shared = tiers.pop(t.shared_tier)
            if self.counts.fragment_bytes > CACHE_FIT * t.memory["l1"].capacity:
                # the block's scratch tiles overflow its share of L1: every pass over them (T.copy in and out,
                # T.reduce, T.Parallel) refills L1 from L2 at the L2 -> L1 rate. CPU softmax_rows 4096 x 1024:
                # 1-3 rows per block (4-12 KiB of tiles) ran 1.85-1.95 ms, 5 rows and more 2.1-2.5 ms
                shared += ph.local_bytes / per / (t.memory["l1"].bandwidth * self.eff["shared"])
            if s == 1 and not ph.gathers:
                # without prefetching, the thread copies its rows from DRAM and then computes on them: a streaming
                # copy does not overlap the compute (CPU softmax, whose vectorised compute is under half its DRAM
                # time, ran at about the sum of the two). A gather (paged and sparse attention: rows mostly in the
                # cache) keeps the overlapped form
                slot = max(c_it + shared + latency + tiers[t.global_tier], *tiers.values())
            else:
                slot = max(c_it + shared + (latency if s == 1 else 0.0), *tiers.values())
            tiers[t.shared_tier] = shared
        else:
            gathered = ph.gathers > 0 and s > 1
            if gathered:
                # a pipelined gather (T.Parallel loads at table indices into a shared tile): Triton's pipeliner
                # reads the table a stage ahead (one round trip left, not two) and copies the rows with cp.async
                # into a single shared buffer that the iteration waits for (TTGIR of the paged split kernel, Triton
                # 3.9, sm_90: one buffer and async_wait 0 at 2, 3 and 4 stages), so the block's own loads and
                # compute do not overlap, whatever num_stages says; more stages change nothing more
                s = 1
            else:
                latency *= ph.depth
            # a load waits for its latency and its bytes through DRAM or the cache, not for the MMA's shared reads;
            # s stages give it s - 1 iterations, less the asynchronous MMA that still reads the buffer it refills
            m_load = max(v for k, v in tiers.items() if k != t.shared_tier)
            # (that MMA holds the buffer for its run on the tensor cores, at their peak rate); a synchronous MMA
            # holds no buffer, but its warps run it between one stage's wait and the next: it adds to the chain
            mma = c_it * self.eff["compute"] if ph.gemms and t.async_mma_buffers and mma_async > 0 else 0.0
            step = 0.0
            if self.spill_latency:
                # per step along k of each T.gemm: one per k element of an FMA-loop dot, one per MMA instruction's
                # k on tensor cores (H200, sparse MLA at 16 heads, 1 stage, ptxas 255 registers and an 0.8 KB
                # stack: 153 us, 2.3x its pipelined twin; charging every k element predicted 11 ms)
                step += ph.gemm_k_steps / per * self.spill_latency
            # without a pipeline the b resident blocks run in lockstep: they issue their loads together, wait the
            # same round trip, then share the SM's bandwidth for their bytes, so one block's iteration lasts the
            # latency plus all b blocks' transfers (others' transfers do not hide its latency). H200 paged split
            # kernel, 1 page per step, 2-4 stages (one gather buffer), measured time less the reduce kernel's ~6 us
            # over the steps: 1.17, 1.58, 1.81 and 2.04 us at 1, 3, 4 and 5 blocks per SM, ~0.95 + 0.22 b
            # (results/h200/cost_sweep_paged_graph); the earlier max(b x memory, one block's chain) said 1.3 flat
            chain = (step + c_it + b * m_it + latency) if s == 1 else \
                (step + latency + m_load + mma) / (s - 1) + mma_sync
            slot = max(b * c_it, b * m_it, chain)
        # a GPU pipeline fills and drains; on a CPU, stages only set how far ahead the copies prefetch. A wave of
        # uneven blocks runs as long as the longest (predict shrinks the grid by the same factor)
        trips = ph.trips_max if ph.trips_max > ph.trips else ph.trips
        if self.flat and not ph.loads and not ph.pipelined and c_it == 0:
            # a flattened loop's epilogue stores are posted and drain while the next block's loop runs
            trips = 0
        if core:
            slots = trips if ph.trips else 0
            return slots * slot, trips * b * c_it, {k: trips * b * v for k, v in tiers.items()}
        # Little's law per SM: the b resident blocks keep b x (s - 1) iterations' loads in flight, so a slot lasts
        # the longer of the SM's share of the work (b x compute, b x memory) and one block's latency chain. The
        # pipeline's s - 1 fill slots are latency only: their loads are the first iterations' own (no extra bytes)
        fill = (s - 1) * self.fills if ph.trips else 0.0
        time = max(trips * max(b * c_it, b * m_it), (trips + fill) * chain) if trips else 0.0
        return time, trips * b * c_it, {k: trips * b * v for k, v in tiers.items()}

    def wave(self, b: int, active: int) -> tuple[float, float, dict]:
        time = compute = 0.0
        tiers: dict = {}
        for ph in self.counts.phases:
            t, c, m = self.phase(ph, b, active)
            time, compute = time + t, compute + c
            for k, v in m.items():
                tiers[k] = tiers.get(k, 0.0) + v
        return time, compute, tiers


def dram_scale(counts: KernelCounts, target: Target) -> dict:
    """Per loaded tensor: (DRAM bytes) / (bytes the wave-reuse model guessed), clamped so each tensor costs at
    least its footprint, and exactly its footprint when all loaded tensors fit in the cache."""
    through, guessed = {}, {}
    for ph in counts.phases:
        for t, nb, miss in ph.loads:
            through[t] = through.get(t, 0.0) + nb
            guessed[t] = guessed.get(t, 0.0) + nb * miss
    footprint = {t: min(counts.tensor_bytes[t], through[t]) for t in through}
    resident = sum(footprint.values())
    if target.core:
        # a CPU's stores allocate lines in its caches too: an output as large as the input (softmax 256 x 16384,
        # 16 MiB each, 32 MiB L3) leaves no room to keep the input for a second pass
        written: dict = {}
        for ph in counts.phases:
            for t, nb in ph.stored.items():
                written[t] = written.get(t, 0.0) + nb
        resident += sum(min(counts.tensor_bytes[t], nb) for t, nb in written.items() if t not in through)
    fits = resident <= CACHE_FIT * target.memory[target.cache_tier].capacity
    return {t: (footprint[t] if fits else max(footprint[t], guessed[t])) / guessed[t]
            for t in guessed if guessed[t] > 0}


def block_cache_share(target: Target, wave_blocks: int) -> float:
    """Bytes of its own tiles one block finds again in the cache in a later loop: the part of the cache that fits
    (CACHE_FIT) of a core's L2 on a CPU (one block per core at a time) or of the GPU's L2 split over the resident
    blocks, halved because the later loop's own traffic (a two-pass softmax's output tiles, as many bytes as it
    re-reads) passes through the same cache. The CPU sweep of softmax_online (256 x 16384 fp32, 1 MiB L2 per
    core): blocks of up to 256 KiB of rows ran 2.4-3.2 ms, of 512 KiB 3.1-3.7, of 1 MiB 3.1-4.6."""
    if target.core:
        return CACHE_FIT * target.memory[target.shared_tier].capacity / 2
    return CACHE_FIT * target.memory[target.cache_tier].capacity / max(wave_blocks, 1) / 2


# ------------------------------------------------------------------------------------------------ predict
_COUNTS: dict = {}  # id(kernel) -> (kernel, wave blocks, counts): a calibration fit re-times the same kernels


def _counts(kernel: ir.Kernel, wave_blocks: int, assume: dict | None = None, reuse_bytes: float = 0.0,
            group_rows: int = 0) -> KernelCounts:
    key = (wave_blocks, tuple(sorted((assume or {}).items())), reuse_bytes, group_rows)
    hit = _COUNTS.get(id(kernel))
    if hit is not None and hit[0] is kernel and hit[1] == key:
        return hit[2]
    counts = Counting(kernel, wave_blocks, assume, reuse_bytes, group_rows).run()
    if len(_COUNTS) >= 4096:
        _COUNTS.clear()
    _COUNTS[id(kernel)] = (kernel, key, counts)  # holding the kernel keeps its id from being reused
    return counts


def predict(kernel: ir.Kernel, target="h100", assume: dict | None = None) -> CostReport:
    """Predicted time and its breakdown for a kernel bound by `TileKernel.specialize(..., arch=target)`. `assume`
    gives values of tensors that loop bounds read ({"CL": 4096}: every context length is 4096), as a caller that
    holds the data knows them; unnamed ones are taken as large as the kernel's static caps allow."""
    target = get_target(target)
    eff = efficiency(target)
    smem = tile_bytes(kernel)[0]  # occupancy needs only the allocations
    frag, through = register_tiles(kernel, target)
    how = launch(kernel, target)
    bps, limiter = occupancy(KernelCounts(0, [], smem, frag, {}, []), target, eff, how.threads, through,
                             padded=target.kind == "gpu")
    if how.persistent:
        bps, limiter = 1, "the persistent grid (one program per SM)"
    wave_blocks = target.sms * bps
    counts = _counts(kernel, wave_blocks, assume, block_cache_share(target, wave_blocks),
                     launch_group_rows(kernel, target))
    scale = dram_scale(counts, target)
    # blocks of uneven length (the last split of a split-KV decode): a wave lasts as long as its longest block, and
    # the shorter blocks free their slots early for the next ones, so the grid runs as if it had grid x mean / max
    # blocks of the longest one's length (the main loop's trips, the work preserved)
    main = max(counts.phases, key=lambda ph: ph.trips_max, default=None)
    balance = main.trips / main.trips_max if main is not None and main.trips_max > main.trips > 0 else 1.0
    grid = max(1, round(counts.grid * balance)) if counts.grid else 0
    spilled = spill_latency(kernel, target, how.threads)
    timing = Timing(counts, target, eff, scale, how.persistent and not counts.block_loads, spilled)

    full, tail = divmod(grid, wave_blocks)
    time_s = compute_s = 0.0
    tier_s: dict = {}
    for count, b, active in ((full, bps, target.sms), (1 if tail else 0, math.ceil(tail / target.sms),
                                                        min(tail, target.sms))):
        if count:
            t, c, m = timing.wave(b, active)
            time_s, compute_s = time_s + count * t, compute_s + count * c
            for k, v in m.items():
                tier_s[k] = tier_s.get(k, 0.0) + count * v
    time_s += target.launch_overhead
    binding = max(tier_s, key=tier_s.get) if tier_s else target.global_tier
    memory_s = tier_s.get(binding, 0.0)

    flops, sfu = {}, 0.0
    for ph in counts.phases:
        for kind, n in ph.ops.items():
            if kind == "sfu":
                sfu += n
            else:
                dt = kind.split(":")[1]
                flops[dt] = flops.get(dt, 0.0) + n
    cached = sum(nb for ph in counts.phases for _, nb, _ in ph.loads) + sum(ph.store_bytes for ph in counts.phases)
    dram = sum(nb * miss * scale.get(t, 1.0) for ph in counts.phases for t, nb, miss in ph.loads) + \
        sum(ph.store_bytes for ph in counts.phases)
    shared = sum(ph.shared_bytes for ph in counts.phases)
    tiers = {target.global_tier: dram, target.cache_tier: cached, target.shared_tier: shared}

    latency_s = time_s - max(compute_s, memory_s)
    bound = "latency" if latency_s > max(compute_s, memory_s) else "compute" if compute_s >= memory_s else "memory"
    hit = 1 - dram / cached if cached else 0.0
    why = {"compute": f"compute-bound: {sum(flops.values()) / 1e9:.3g} GFLOP at "
                      f"{sum(flops.values()) / max(compute_s, 1e-30) / 1e12:.3g} TFLOP/s effective",
           "memory": f"memory-bound ({binding}): {_fmt_bytes(tiers[binding])} through {binding} at "
                     f"{tiers[binding] / max(memory_s, 1e-30) / 1e12:.3g} TB/s effective",
           "latency": f"latency-bound: {_fmt_time(latency_s)} of launch, pipeline fill and memory latency that "
                      f"the work cannot hide"}[bound]
    notes = list(dict.fromkeys(counts.notes))
    if spilled:
        notes.append(f"registers past {MAX_REGS_PER_THREAD} per thread: spilled to local memory")
    explanation = (f"{why}; {grid} blocks in {grid / wave_blocks:.2f} waves of {wave_blocks} "
                   f"({bps}/SM, limited by {limiter}); {target.cache_tier} hit rate {hit:.0%}")
    return CostReport(kernel.name, target.name, time_s, bound, flops, tiers, bps, grid / wave_blocks, explanation,
                      grid=grid, config={c.name: c.value for c in kernel.config}, transcendentals=sfu,
                      compute_s=compute_s, memory_s=memory_s, notes=notes)

