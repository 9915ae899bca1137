"""The Triton backend: `lower(kernel)` writes a fully bound kernel as the source of one `@triton.jit` function;
`load(source, kernel)` turns that source into a launcher.

Split over: triton_layout (padded register shapes), triton_expr (expressions, global addressing), triton_tiles
(copy, gemm, reduce), triton_codegen (statements, the planned block order), triton_launch (files, import, launch).
"""
from __future__ import annotations

from .. import ir
from ..errors import TilecLoweringError
from .triton_codegen import KernelLowering, Options, launch_grid
from .triton_launch import load


def lower(kernel: ir.Kernel, *, descriptors: bool = True, persistent: bool | None = None,
          warp_specialize: bool = False) -> str:
    """The GPU form (`load` runs it on the interpreter too). descriptors: TMA tensor descriptors for the tile copies
    that fit them; persistent: loop NUM_SMS programs over the blocks (None: as the kernel's launch plan says, from
    the plan-launch pass); warp_specialize: producer/consumer warps on that loop. See triton_codegen.Options."""
    unbound = [g for g in kernel.grid if not isinstance(g, ir.Const)]
    if unbound:
        raise TilecLoweringError(f"{kernel.name}: the Triton backend needs a fully bound kernel "
                                 f"(kernel.specialize(dims, config, 'triton')); the grid is {kernel.grid}")
    return KernelLowering(kernel, Options(descriptors, persistent, warp_specialize)).source()


__all__ = ["lower", "load", "launch_grid"]
