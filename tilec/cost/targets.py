"""Targets as data: one record per accelerator. Every figure cites its source in a comment; figures marked
"estimate" are microbenchmark orders of magnitude (to be replaced by calibration, tilec/cost/data/calibration.json).

Units: bytes, bytes/s (per direction for links), seconds, FLOP/s (dense, no structured sparsity). A target has
  - `matrix_flops`: tensor-core / matrix-unit peaks per input dtype, `vector_flops`: SIMT/SIMD peaks per dtype,
    `sfu_ops`: transcendentals (exp, log, rsqrt, ...) per second;
  - `memory`: named tiers (device memory, L2/LLC, shared/L1, registers, host DRAM, CXL, SSD) and the roles
    `global_tier`, `cache_tier`, `shared_tier` that the model maps IR scopes onto;
  - `links`: interconnects (PCIe, NVLink, C2C, RDMA, UB) and `paths`: which links a transfer between two
    memory places crosses (used by tilec.cost.transfer).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TilecArgumentError

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
KB, MB, GB, TB = 1e3, 1e6, 1e9, 1e12
T_, G_ = 1e12, 1e9  # FLOP/s multipliers
US, NS = 1e-6, 1e-9


@dataclass(frozen=True)
class Tier:
    capacity: float  # bytes (per SM/core for "shared"/"registers", per device otherwise)
    bandwidth: float  # bytes/s (whole device; per SM/core for "shared")
    latency: float = 0.0  # seconds, one dependent access


@dataclass(frozen=True)
class Link:
    bandwidth: float  # bytes/s per direction
    latency: float  # seconds


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "gpu", "npu" or "cpu"
    #: streaming multiprocessors / compute units / AI cores / CPU cores
    sms: int
    #: bytes of shared memory one block may allocate (CPU: per-thread scratch that stays in L2)
    smem_per_block: int
    #: bytes of registers one block's fragments may occupy
    regs_per_block: int
    smem_per_sm: int = 0
    regs_per_sm: int = 0
    max_blocks_per_sm: int = 1
    #: resident threads per SM (0: no such limit modelled)
    max_threads_per_sm: int = 0
    #: MMAs still in flight when the next loads are issued: Hopper's wgmma runs asynchronously and Triton's
    #: pipeliner keeps one in flight (wgmma.wait_group 1), so a stage's buffer is refilled only once the MMA reading
    #: it has retired (0 for synchronous mma.sync, e.g. Ampere). H200 sweep: num_stages=2 GEMMs ran as if not
    #: pipelined at all
    async_mma_buffers: int = 0
    #: rows (of the accumulator tile, as the backend pads it) the asynchronous warpgroup MMA needs, 0 if the target
    #: has none. Hopper's wgmma works on 64-row slices per warpgroup: Triton takes it for a tl.dot only when the
    #: result's rows are a multiple of 64 (triton lib/Analysis/Utility.cpp, supportMMA version 3:
    #: "retShapePerCTA[rank - 2] % 64 == 0"), else the synchronous mma.sync (MMA v2), which the model runs at the
    #: fitted efficiency "mma_sync" without the asynchronous MMA's overlap (model.Timing)
    wgmma_rows: int = 0
    #: threads per block the backend launches (Triton: 4 warps), for the register estimate
    threads_per_block: int = 128
    matrix_flops: dict = field(default_factory=dict)
    vector_flops: dict = field(default_factory=dict)
    sfu_ops: float = 0.0
    memory: dict = field(default_factory=dict)  # name -> Tier
    global_tier: str = "hbm"
    cache_tier: str = "l2"
    shared_tier: str = "smem"
    links: dict = field(default_factory=dict)  # name -> Link
    paths: dict = field(default_factory=dict)  # "src->dst" -> tuple of link names
    launch_overhead: float = 5 * US
    #: default efficiencies (fraction of peak reached by good code); calibration.json overrides them
    efficiency: dict = field(default_factory=dict)
    #: CPU only: one core's micro-architecture, in cycles (tilec/cost/cpu.py says which figures and why)
    core: dict = field(default_factory=dict)
    notes: str = ""

    def peak_flops(self, dtype: str, matrix: bool) -> float:
        """FLOP/s for `dtype` on the matrix units (when `matrix`) or the vector units; falls back to float32."""
        table = self.matrix_flops if matrix else self.vector_flops
        return table.get(dtype) or self.vector_flops.get(dtype) or self.vector_flops["float32"]


#: mma_sync: the synchronous MMA's fraction of the tensor cores' dense peak on a target with an asynchronous one
#: (wgmma_rows); 0.5 is an estimate (H100 users report warp-level MMA reaching about half the marketed FP16 peak,
#: which only wgmma reaches), calibration.json holds the fitted value
DEFAULT_EFFICIENCY = {"mma_sync": 0.5, "compute": 0.75, "vector": 0.6, "memory": 0.85, "cache": 0.7, "shared": 0.8,
                      "latency": 1.0, "reg_overhead": 1.3}


# ------------------------------------------------------------------------------------------------ NVIDIA
def _nvidia_paths(host_link: str, peer_link: str) -> dict:
    return {"hbm->host_dram": (host_link,), "hbm->cxl": (host_link, "cxl"), "hbm->ssd": (host_link, "nvme"),
            "hbm->remote_hbm": (peer_link,), "hbm->remote_dram": ("rdma",), "host_dram->ssd": ("nvme",),
            "host_dram->cxl": ("cxl",), "host_dram->remote_dram": ("rdma",)}


# Shared by every host: PCIe Gen5 x16 is 32 GT/s x 16 lanes ~ 64 GB/s per direction (PCI-SIG PCIe 5.0 spec; the
# H100 datasheet lists "PCIe Gen5: 128 GB/s" bidirectional); ~1 us DMA latency is an estimate. CXL 2.0 memory
# expanders run over the same PHY; Samsung's CMM-D datasheet lists ~ 60 GB/s; extra load latency ~ 250 ns over
# local DRAM (estimate from Sun et al., "Demystifying CXL Memory", MICRO 2023). NVMe: a PCIe 5 x4 SSD reads at
# ~ 14 GB/s (Samsung PM1743 datasheet: 13 GB/s) with ~ 80 us read latency (same datasheet order).
# RDMA: a 400 Gb/s NIC (NVIDIA ConnectX-7 datasheet) = 50 GB/s per direction, ~ 3 us small-message latency
# (Mooncake, Qin et al. FAST 2025, moves KV cache GPU-to-GPU across nodes this way: "Transfer Engine").
COMMON_LINKS = {"pcie5": Link(64 * GB, 1 * US), "pcie4": Link(32 * GB, 1 * US), "cxl": Link(60 * GB, 0.25 * US),
                "nvme": Link(14 * GB, 80 * US), "rdma": Link(50 * GB, 3 * US)}


def _hopper(name, sms, hbm_bytes, hbm_bw, l2, bf16, fp8, tf32, fp32, fp64, fp64_tc, nvlink, notes=""):
    """A Hopper-class GPU: compute capability 9.0 limits (CUDA C++ Programming Guide, "Technical
    Specifications per Compute Capability"): 228 KiB shared memory per SM of which 227 KiB per block, 64K 32-bit
    registers (256 KiB) per SM and per block, 32 resident blocks and 2048 threads (64 warps) per SM (the same for
    compute capability 8.0 and 10.0); shared memory moves 128 B/clock/SM at
    ~1.75 GHz (Hopper whitepaper "H100 SM Architecture"); SFUs: 16 transcendentals/clock/SM (programming guide,
    "Arithmetic Instructions" throughput table); L2 -> SM ~ 64 B/clock/SM and HBM latency ~ 0.5 us (estimates; Chips
    and Cheese, "Nvidia's H100: Funny L2, and Tons of Bandwidth", 2023, measured 5.5 TB/s on the slower PCIe
    part)."""
    clock = 1.75e9
    return Target(
        name, "gpu", sms, 227 * KiB, 256 * KiB, smem_per_sm=228 * KiB, regs_per_sm=256 * KiB, max_blocks_per_sm=32,
        max_threads_per_sm=2048, async_mma_buffers=1, wgmma_rows=64,
        matrix_flops={"float16": bf16, "bfloat16": bf16, "float8": fp8, "int8": fp8, "tf32": tf32,
                      "float64": fp64_tc},
        vector_flops={"float32": fp32, "float16": 2 * fp32, "bfloat16": 2 * fp32, "float64": fp64},
        sfu_ops=16 * sms * clock,
        memory={"hbm": Tier(hbm_bytes, hbm_bw, 0.5 * US), "l2": Tier(l2, 64 * sms * clock, 0.2 * US),
                "smem": Tier(228 * KiB, 128 * clock, 30 * NS), "registers": Tier(256 * KiB, 0.0, 0.0),
                "host_dram": Tier(2 * 1024 * GiB, 300 * GB, 0.1 * US)},
        links={**COMMON_LINKS, "nvlink": nvlink},
        paths=_nvidia_paths("pcie5", "nvlink"), launch_overhead=5 * US, notes=notes)


TARGETS = {
    # H100 SXM5 80 GB (NVIDIA H100 Tensor Core GPU datasheet; Hopper architecture whitepaper): 132 SMs, 50 MB L2,
    # HBM3 3.35 TB/s (3.0 TB/s measured by a device-to-device copy: memory efficiency ~0.9), dense peaks:
    # BF16/FP16 989 TFLOP/s, FP8/INT8 1979, TF32 495, FP32 67, FP64 34 (FP64 tensor 67). NVLink 4: 900 GB/s
    # bidirectional = 450 GB/s per direction, ~ 2 us (estimate).
    "h100": _hopper("h100", 132, 80 * GB, 3.35 * TB, 50 * MB, 989 * T_, 1979 * T_, 495 * T_, 67 * T_, 34 * T_,
                    67 * T_, Link(450 * GB, 2 * US)),
    # H200 SXM 141 GB (NVIDIA H200 Tensor Core GPU datasheet): the H100's GH100 compute (same peaks) with HBM3e
    # at 4.8 TB/s.
    "h200": _hopper("h200", 132, 141 * GB, 4.8 * TB, 50 * MB, 989 * T_, 1979 * T_, 495 * T_, 67 * T_, 34 * T_,
                    67 * T_, Link(450 * GB, 2 * US)),
    # H800 SXM5 (NVIDIA H800 Tensor Core GPU datasheet): H100 compute and memory, FP64 cut to 1 TFLOP/s, NVLink
    # 400 GB/s bidirectional (200 per direction).
    "h800": _hopper("h800", 132, 80 * GB, 3.35 * TB, 50 * MB, 989 * T_, 1979 * T_, 495 * T_, 67 * T_, 1 * T_,
                    1 * T_, Link(200 * GB, 2 * US)),
    # H20 (NVIDIA HGX H20 product brief): 96 GB HBM3 at 4.0 TB/s, 60 MB L2, BF16/FP16 148 TFLOP/s, FP8/INT8 296,
    # TF32 74, FP32 44, FP64 1 (estimate); NVLink 900 GB/s bidirectional. 78 SMs: public reports (not in the brief).
    "h20": _hopper("h20", 78, 96 * GB, 4.0 * TB, 60 * MB, 148 * T_, 296 * T_, 74 * T_, 44 * T_, 1 * T_, 1 * T_,
                   Link(450 * GB, 2 * US)),
    # A100 SXM4 80 GB (NVIDIA A100 Tensor Core GPU datasheet; Ampere whitepaper): 108 SMs, 40 MB L2, HBM2e
    # 2.039 TB/s, BF16/FP16 312 TFLOP/s, INT8 624, TF32 156, FP32 19.5, FP64 9.7 (tensor 19.5); compute capability
    # 8.0: 164 KiB shared per SM, 163 KiB per block, 32 blocks/SM (CUDA programming guide). NVLink 3: 600 GB/s
    # bidirectional; PCIe Gen4 x16.
    "a100": dataclasses.replace(
        _hopper("a100", 108, 80 * GB, 2.039 * TB, 40 * MB, 312 * T_, 624 * T_, 156 * T_, 19.5 * T_, 9.7 * T_,
                19.5 * T_, Link(300 * GB, 2 * US)),
        smem_per_block=163 * KiB, smem_per_sm=164 * KiB, paths=_nvidia_paths("pcie4", "nvlink"),
        async_mma_buffers=0, wgmma_rows=0),
    # B200 (NVIDIA HGX B200 datasheet, per GPU = 1/8 of the 8-GPU figures, dense): BF16/FP16 2.25 PFLOP/s, FP8
    # 4.5, TF32 1.1, FP64 37; HBM3e 180 GB at 7.7 TB/s (DGX B200: 1,440 GB and 64 TB/s for 8). 148 SMs and 126 MB
    # L2 (public reports); FP32 ~ 80 TFLOP/s = 148 SMs x 128 lanes x 2 x ~2.1 GHz (derived estimate); compute
    # capability 10.0 keeps 228 KiB shared per SM. NVLink 5: 1.8 TB/s bidirectional.
    "b200": dataclasses.replace(
        _hopper("b200", 148, 180 * GB, 7.7 * TB, 126 * MB, 2250 * T_, 4500 * T_, 1100 * T_, 80 * T_, 37 * T_,
                37 * T_, Link(900 * GB, 2 * US)),
        notes="SM count and L2 size from public reports"),
}

# MI300X (AMD Instinct MI300X data sheet; CDNA 3 whitepaper): 304 CUs, 192 GB HBM3 at 5.3 TB/s, 256 MB Infinity
# Cache (the model's cache tier), 64 KiB LDS per CU, 512 KiB VGPRs per CU; dense peaks FP16/BF16 1307 TFLOP/s,
# FP8/INT8 2615, TF32 654, FP32 vector 163.4, FP64 81.7 (matrix 163.4). Infinity Fabric: 7 links x 128 GB/s
# bidirectional = 448 GB/s per direction aggregate; PCIe Gen5 x16 host link. Infinity Cache bandwidth 17 TB/s
# (CDNA 3 whitepaper peak).
TARGETS["mi300x"] = Target(
    "mi300x", "gpu", 304, 64 * KiB, 512 * KiB, smem_per_sm=64 * KiB, regs_per_sm=512 * KiB, max_blocks_per_sm=32,
    threads_per_block=256,
    matrix_flops={"float16": 1307 * T_, "bfloat16": 1307 * T_, "float8": 2615 * T_, "int8": 2615 * T_,
                  "tf32": 654 * T_, "float32": 163.4 * T_, "float64": 163.4 * T_},
    vector_flops={"float32": 163.4 * T_, "float16": 163.4 * T_, "bfloat16": 163.4 * T_, "float64": 81.7 * T_},
    sfu_ops=304 * 16 * 2.1e9,
    memory={"hbm": Tier(192 * GB, 5.3 * TB, 0.7 * US), "l2": Tier(256 * MB, 17 * TB, 0.3 * US),
            "smem": Tier(64 * KiB, 128 * 2.1e9, 40 * NS), "registers": Tier(512 * KiB, 0.0, 0.0),
            "host_dram": Tier(2 * 1024 * GiB, 300 * GB, 0.1 * US)},
    links={**COMMON_LINKS, "infinity_fabric": Link(448 * GB, 2 * US)},
    paths=_nvidia_paths("pcie5", "infinity_fabric"), launch_overhead=6 * US)

# Ascend 910C (public figures only; Huawei publishes little): two 910B-class dies per package, ~ 752 TFLOP/s
# BF16/FP16 dense, 128 GB HBM at 3.2 TB/s (Huawei, "Serving Large Language Models on Huawei CloudMatrix384",
# arXiv 2506.12708, 2025, section 3). AI cores: 2 x 24 (public reports); each has a 512 KiB L1 buffer (the
# model's shared tier) and a 256 KiB L0C (accumulators, the register tier) (Ascend C docs, "hardware
# architecture"). CloudMatrix384 supernode (same paper): 384 NPUs joined by the Unified Bus (UB) at 392 GB/s
# per NPU per direction; reading the pooled DRAM of a remote node over UB takes ~ 1.5 us vs ~ 0.2 us to local HBM;
# a separate RDMA plane gives 400 Gb/s (50 GB/s) per NPU; the host link is PCIe Gen5 x16.
TARGETS["ascend910c"] = Target(
    "ascend910c", "npu", 48, 512 * KiB, 256 * KiB, smem_per_sm=512 * KiB, regs_per_sm=256 * KiB,
    max_blocks_per_sm=1, threads_per_block=1,
    matrix_flops={"float16": 752 * T_, "bfloat16": 752 * T_, "int8": 1504 * T_},
    vector_flops={"float32": 50 * T_, "float16": 100 * T_, "bfloat16": 100 * T_, "float64": 1 * T_},
    sfu_ops=12 * T_,
    memory={"hbm": Tier(128 * GB, 3.2 * TB, 0.2 * US), "l2": Tier(192 * MB, 7 * TB, 0.1 * US),
            "smem": Tier(512 * KiB, 256 * 1.8e9, 20 * NS), "registers": Tier(256 * KiB, 0.0, 0.0),
            "host_dram": Tier(1536 * GiB, 200 * GB, 0.15 * US),
            "remote_dram": Tier(1536 * GiB, 392 * GB, 1.5 * US)},
    links={**COMMON_LINKS, "ub": Link(392 * GB, 1.5 * US)},
    paths={"hbm->host_dram": ("pcie5",), "hbm->remote_hbm": ("ub",), "hbm->remote_dram": ("ub",),
           "hbm->ssd": ("pcie5", "nvme"), "hbm->cxl": ("pcie5", "cxl"), "host_dram->remote_dram": ("ub",),
           "host_dram->ssd": ("nvme",), "hbm->rdma_peer": ("rdma",)},
    launch_overhead=10 * US, notes="910C core counts, L2 and vector peaks are estimates from public reports")

# GH200 Grace Hopper (NVIDIA GH200 datasheet): an H100 whose host link is NVLink-C2C at 900 GB/s bidirectional
# (450 per direction) to 480 GB LPDDR5X at ~ 500 GB/s; HBM3 96 GB at 4.0 TB/s.
TARGETS["gh200"] = dataclasses.replace(
    TARGETS["h100"], name="gh200",
    memory={**TARGETS["h100"].memory, "hbm": Tier(96 * GB, 4.0 * TB, 0.5 * US),
            "host_dram": Tier(480 * GB, 500 * GB, 0.3 * US)},
    links={**TARGETS["h100"].links, "c2c": Link(450 * GB, 0.8 * US)}, paths=_nvidia_paths("c2c", "nvlink"))


# ------------------------------------------------------------------------------------------------ host CPU
def _cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    m = re.search(r"^(flags|Features)\s*:\s*(.*)$", text, re.M)
    return set(m.group(2).split()) if m else set()


def _cpu_field(name: str) -> str:
    try:
        m = re.search(rf"^{name}\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        m = None
    return m.group(1).strip() if m else ""


def fma_datapath_bytes(flags: set, vendor: str, family: str) -> int:
    """Bytes one FMA pipe handles per cycle. AMD Zen 4 (family 25 with AVX-512) runs a 512-bit op on its 256-bit
    pipes in two halves (AMD "Software Optimization Guide for the AMD Zen4 Microarchitecture", sec. 2.11); Zen 5
    and Intel's AVX-512 server cores have full 512-bit FMA pipes (Intel optimization manual, "Intel AVX-512")."""
    if vendor == "AuthenticAMD" and family.isdigit() and int(family) < 26:
        return min(32, simd_bytes(flags))
    return simd_bytes(flags)


def _cpu_mhz() -> float:
    try:
        m = re.search(r"^cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        m = None
    return float(m.group(1)) if m else 2500.0


def _cpu_caches() -> dict:
    """{level: bytes} of cpu0's data/unified caches from sysfs (L1d, L2, L3)."""
    caches = {}
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (d / "type").read_text().strip() == "Instruction":
                continue
            level = int((d / "level").read_text())
            size = (d / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        scale = {"K": KiB, "M": MiB, "G": GiB}.get(size[-1:], 1)
        caches[level] = int(size.rstrip("KMG")) * scale
    return caches


def simd_bytes(flags: set) -> int:
    """Vector register width in bytes from the CPU flags (AVX-512: 64, AVX2: 32, SSE/NEON: 16)."""
    if "avx512f" in flags:
        return 64
    if "avx2" in flags or "avx" in flags:
        return 32
    return 16


def measure_host_bandwidth(nbytes: int = 64 * MiB) -> float:
    """Bytes/s (read + write) of one thread's numpy copy of `nbytes`: a lower bound of the socket's bandwidth."""
    import time

    import numpy as np

    src, dst = np.ones(nbytes // 8), np.empty(nbytes // 8)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src), time.perf_counter) for _ in range(3))
    return 2 * nbytes / best


def _timed(fn, clock) -> float:
    t = clock()
    fn()
    return clock() - t


def host_cpu(measure: bool = False, notes: str = "") -> Target:
    """The machine we run on, detected. Peak = cores x 2 FMA pipes x 2 (FMA) x lanes of one pipe's datapath x clock
    (x86 cores since Haswell/Zen 2 issue two vector FMAs per cycle: Intel and AMD optimization manuals). DRAM
    bandwidth is an estimate (~ 10 GB/s per core, capped at 200 GB/s) unless `measure` times it
    (measure_host_bandwidth). The LLC -> core path moves 32 B/cycle per core (Zen 4: AMD optimization guide sec.
    2.12; Intel server cores: the same order, Intel optimization manual), L2 -> L1 64 B/cycle. `notes`: another
    host's figures as this function wrote them in its notes ("detected: 2 cores, 512-bit SIMD on 256-bit FMA pipes,
    ..."), in place of this machine's, to replay a sweep stored there (a narrower FMA pipe than the SIMD width is
    AMD's Zen 4, see fma_datapath_bytes)."""
    cores = os.cpu_count() or 1
    flags = _cpu_flags()
    width = simd_bytes(flags)
    amd = _cpu_field("vendor_id") == "AuthenticAMD"
    fma_bytes = fma_datapath_bytes(flags, _cpu_field("vendor_id"), _cpu_field("cpu family"))
    hz = _cpu_mhz() * 1e6
    caches = _cpu_caches()
    stored = re.search(r"detected: (\d+) cores, (\d+)-bit SIMD on (\d+)-bit FMA pipes, ([\d.]+) GHz, L1d (\d+) KiB, "
                       r"L2 (\d+) KiB, L3 (\d+) MiB", notes)
    if stored:
        cores, width, fma_bytes = int(stored[1]), int(stored[2]) // 8, int(stored[3]) // 8
        hz, amd = float(stored[4]) * 1e9, fma_bytes < width
        caches = {1: int(stored[5]) * KiB, 2: int(stored[6]) * KiB, 3: int(stored[7]) * MiB}
    l1, l2, l3 = caches.get(1, 32 * KiB), caches.get(2, 1 * MiB), caches.get(3, 32 * MiB)
    fma = 2 * 2 * hz * cores
    vector = {dt: fma * fma_bytes // size for dt, size in (("float32", 4), ("float64", 8), ("int8", 1))}
    # no native fp16/bf16 FMA on most hosts: the LLVM backend widens them to float32
    vector.update(float16=vector["float32"], bfloat16=vector["float32"])
    dram_bw = measure_host_bandwidth() if measure else min(10 * GB * cores, 200 * GB)
    # Zen 4 / recent Intel: 4-cycle FMA latency, two loads and one 256-bit store per cycle (AMD Zen 4 guide sec.
    # 2.11-2.12; Intel optimization manual); a loop entry: an estimate. exp/exp2 are inline vector code
    # (lowering/llvm/vecmath.py): 31 instructions per vector (7 FMAs, 8 other FP ops, 4 compares, 5 selects, 7
    # integer ops; bitcasts are free), issued over the core's vector pipes (Zen 4: 4 FP/vector execution pipes,
    # AMD Zen 4 guide sec. 2.11; Intel: 3, ports 0, 1 and 5), a 512-bit op in two halves on 256-bit pipes.
    # log/log2 take ~ 33 with a divide: counted as exp.
    # One pipe takes the micro-kernel's register splats: an estimate the host measured (fp32 1024^3 GEMM,
    # 64x64 tiles, 2026-11-29: 16 columns, 24 rows of one vector, 30.7 ms; 32 columns, 12 rows of two, 16.5 ms: the
    # same FMAs per k, twice the splats per FMA). T.Parallel loads at an index read from a table (paged and sparse
    # attention's K/V rows) compile to vgatherqps (seen in the object code); Zen 4 runs a gather element by
    # element: half a cycle per element is an estimate (0, 0.5, 1 and 2 tried on the host's sweeps, 0.5 ranked best).
    core = {"clock_hz": hz, "simd_bytes": width, "fma_bytes": fma_bytes, "fma_pipes": 2, "load_ports": 2,
            "shuffle_pipes": 1, "gather_cycles": 0.5,
            "fma_latency": 4, "store_bytes": 32, "exp_ops": 31, "row_cycles": 10,
            "vector_pipes": 4 if amd else 3}
    # transcendentals per second: lanes per pipe slot x pipes / instructions per exp, on every core
    exp_rate = hz * cores * (fma_bytes // 4) * core["vector_pipes"] / core["exp_ops"]
    return Target(
        "cpu", "cpu", cores, l2, l2, smem_per_sm=l2, regs_per_sm=l2, max_blocks_per_sm=1, threads_per_block=1,
        matrix_flops={}, vector_flops=vector, sfu_ops=exp_rate,
        memory={"dram": Tier(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), dram_bw, 0.1 * US),
                "l3": Tier(l3, 32 * hz * cores, 40 * NS), "l2": Tier(l2, 32 * hz, 4 * NS),
                "l1": Tier(l1, 64 * hz, 1 * NS), "ssd": Tier(1e12, 3 * GB, 80 * US)},
        global_tier="dram", cache_tier="l3", shared_tier="l2",
        links={**COMMON_LINKS},
        paths={"dram->ssd": ("nvme",), "dram->cxl": ("cxl",), "dram->remote_dram": ("rdma",)},
        launch_overhead=20 * US, core=core, efficiency={"sfu": 1.0, "loop": 1.0},
        notes=f"detected: {cores} cores, {width * 8}-bit SIMD on {fma_bytes * 8}-bit FMA pipes, {hz / 1e9:.2f} GHz, "
              f"L1d {l1 // KiB} KiB, L2 {l2 // KiB} KiB, L3 {l3 // MiB} MiB; DRAM bandwidth "
              f"{'measured' if measure else 'estimated'}")


TARGETS["cpu"] = host_cpu()


# ------------------------------------------------------------------------------------------------ lookup
def get_target(name) -> Target:
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[str(name).lower()]
    except KeyError:
        raise TilecArgumentError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)} "
                                 f"(add one with tilec.cost.targets.load_target(path))") from None


def target_from_dict(data: dict) -> Target:
    """A Target from plain data (what TOML/JSON give): tiers and links are {name: {field: value}} tables."""
    data = dict(data)
    try:
        base = get_target(data.pop("base")) if "base" in data else None
        known = {f.name for f in dataclasses.fields(Target)}
        unknown = set(data) - known
        if unknown:
            raise TilecArgumentError(f"target {data.get('name')!r}: unknown field(s) {', '.join(sorted(unknown))}; "
                                     f"fields are {', '.join(sorted(known))}")
        if "memory" in data:
            data["memory"] = {k: Tier(**v) for k, v in data["memory"].items()}
        if "links" in data:
            data["links"] = {k: Link(**v) for k, v in data["links"].items()}
        if "paths" in data:
            data["paths"] = {k: tuple(v) for k, v in data["paths"].items()}
        if base is not None:
            for merged in ("memory", "links", "paths", "matrix_flops", "vector_flops", "efficiency"):
                if merged in data:
                    data[merged] = {**getattr(base, merged), **data[merged]}
            return dataclasses.replace(base, **data)
        return Target(**data)
    except TypeError as e:
        raise TilecArgumentError(f"target {data.get('name')!r}: {e}; a target needs name, kind, sms, "
                                 f"smem_per_block, regs_per_block (or base = 'h100' to start from a known one)") \
            from None


def load_target(path) -> Target:
    """Add a target from a TOML or JSON file (`base = "h100"` copies a known target and overrides fields) and
    return it; `get_target(its name)` finds it afterwards."""
    path = Path(path)
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(path.read_text())
        else:
            data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TilecArgumentError(f"load_target({str(path)!r}): cannot read it as "
                                 f"{'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
    target = target_from_dict(data)
    TARGETS[target.name.lower()] = target
    return target
