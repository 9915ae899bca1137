"""Targets as data. Every figure cites its source."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import TilecArgumentError


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "gpu", "npu" or "cpu"
    #: streaming multiprocessors / cores
    sms: int
    #: bytes of shared memory one block may allocate (CPU: per-thread scratch that stays in L2)
    smem_per_block: int
    #: bytes of registers one block's fragments may occupy
    regs_per_block: int


KiB, MiB = 1024, 1024 * 1024
TARGETS = {
    # H100 SXM: 132 SMs, 228 KiB shared memory per SM of which 227 KiB per block (NVIDIA Hopper tuning guide,
    # "Shared Memory"), 64K 32-bit registers per SM (CUDA programming guide, compute capability 9.0 table).
    "h100": Target("h100", "gpu", 132, 227 * KiB, 256 * KiB),
    # Host CPU: "shared" tiles are the packed per-thread scratch; keep them within a 1 MiB L2 (AMD EPYC Zen 4
    # has 1 MiB L2 per core, AMD Zen 4 software optimization guide); fragments live in L1/L2 too.
    "cpu": Target("cpu", "cpu", 2, 1 * MiB, 1 * MiB),
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name.lower()]
    except KeyError:
        raise TilecArgumentError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
