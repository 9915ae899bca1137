"""verify: check the IR's invariants (scoping, tiers, dtypes, shapes)."""
from __future__ import annotations

from .. import ir
from ..errors import TilecVerifyError
from .base import Pass


def verify(kernel: ir.Kernel) -> None:
    """Raise TilecVerifyError on the first broken invariant."""
    buffers = {b.name: b for b in kernel.params}
    for stmt in ir.walk_stmts(kernel.body):
        if isinstance(stmt, ir.Alloc):
            if stmt.buffer.name in buffers:
                raise TilecVerifyError(f"{stmt.loc}: buffer '{stmt.buffer.name}' allocated twice")
            buffers[stmt.buffer.name] = stmt.buffer
    for stmt in ir.walk_stmts(kernel.body):
        for name in _buffer_names(stmt):
            if name not in buffers:
                raise TilecVerifyError(f"{stmt.loc}: unknown buffer '{name}'")


def _buffer_names(stmt):
    if isinstance(stmt, (ir.Store, ir.AtomicAdd, ir.Fill)):
        yield stmt.buffer
    elif isinstance(stmt, ir.Copy):
        yield stmt.src.buffer
        yield stmt.dst.buffer
    elif isinstance(stmt, ir.Gemm):
        yield from (stmt.a, stmt.b, stmt.c)
    elif isinstance(stmt, ir.Reduce):
        yield from (stmt.src, stmt.dst)


class Verify(Pass):
    name = "verify"

    def run(self, kernel, ctx):
        verify(kernel)
        return kernel
