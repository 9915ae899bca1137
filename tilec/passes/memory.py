"""place-memory: compute each tile's bytes from the bound shapes and check the target's capacities."""
from __future__ import annotations

from math import prod

from .. import ir
from ..cost.targets import get_target
from ..errors import TilecResourceError, TilecTypeError
from .base import Pass


def buffer_bytes(buf: ir.Buffer) -> int:
    return prod(int(d.value) for d in buf.shape) * ir.ITEMSIZE[buf.dtype] * buf.stages


class PlaceMemory(Pass):
    name = "place-memory"

    def run(self, kernel: ir.Kernel, ctx):
        target = get_target(ctx.target)
        totals = {"shared": 0, "fragment": 0}
        biggest = {}
        for stmt in ir.walk_stmts(kernel.body):
            if not isinstance(stmt, ir.Alloc) or stmt.buffer.scope not in totals:
                continue
            buf = stmt.buffer
            for d in buf.shape:
                if not isinstance(d, ir.Const) or d.value <= 0:
                    raise TilecTypeError(f"{stmt.loc}: tile '{buf.name}' has a dimension that is not a positive "
                                         f"compile-time constant once bound ({d}); tile shapes come from config "
                                         f"constants and literals")
            nbytes = buffer_bytes(buf)
            totals[buf.scope] += nbytes
            if nbytes > biggest.get(buf.scope, (0, None, None))[0]:
                biggest[buf.scope] = (nbytes, buf.name, stmt.loc)
        limits = {"shared": target.smem_per_block, "fragment": target.regs_per_block}
        for scope, total in totals.items():
            if total > limits[scope]:
                nbytes, name, loc = biggest[scope]
                raise TilecResourceError(
                    f"{loc}: {scope} memory over capacity on target {target.name}: the block's {scope} tiles take "
                    f"{total} bytes (largest: '{name}', {nbytes} bytes) but the limit is {limits[scope]} bytes; "
                    f"use smaller block sizes or fewer pipeline stages")
        return kernel
