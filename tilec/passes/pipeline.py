"""software-pipeline: make `T.Pipelined(num_stages=s)` an explicit schedule. Copies from global into shared tiles
at the top of the loop body become stage 0 (producers, issued s-1 iterations ahead); everything else is stage s-1
(consumers). The shared tiles those copies fill are multi-buffered (`Buffer.stages = s`)."""
from __future__ import annotations

import dataclasses

from .. import ir
from ..errors import TilecTypeError
from .base import Pass


def _is_producer(stmt, buffers) -> bool:
    return (isinstance(stmt, ir.Copy) and buffers[stmt.src.buffer].scope == "global"
            and buffers[stmt.dst.buffer].scope == "shared")


class SoftwarePipeline(Pass):
    name = "software-pipeline"

    def run(self, kernel: ir.Kernel, ctx):
        buffers = kernel.buffers()
        staged: dict = {}

        def rewrite(body):
            out = []
            for stmt in body:
                if isinstance(stmt, ir.For) and stmt.kind == "pipelined":
                    if not isinstance(stmt.num_stages, ir.Const) or stmt.num_stages.value < 1:
                        raise TilecTypeError(f"{stmt.loc}: num_stages must be a positive compile-time int, "
                                             f"got {stmt.num_stages}")
                    s = int(stmt.num_stages.value)
                    stages = tuple(0 if _is_producer(x, buffers) else s - 1 for x in stmt.body)
                    for x, st in zip(stmt.body, stages):
                        if st == 0 and s > 1:
                            staged[x.dst.buffer] = max(staged.get(x.dst.buffer, 1), s)
                    stmt = dataclasses.replace(stmt, body=rewrite(stmt.body), stages=stages)
                elif isinstance(stmt, (ir.For, ir.Parallel)):
                    stmt = dataclasses.replace(stmt, body=rewrite(stmt.body))
                elif isinstance(stmt, ir.If):
                    stmt = dataclasses.replace(stmt, then_body=rewrite(stmt.then_body),
                                               else_body=rewrite(stmt.else_body))
                out.append(stmt)
            return tuple(out)

        body = rewrite(kernel.body)

        def restage(body):
            out = []
            for stmt in body:
                if isinstance(stmt, ir.Alloc) and stmt.buffer.name in staged:
                    stmt = dataclasses.replace(stmt, buffer=dataclasses.replace(stmt.buffer,
                                                                                stages=staged[stmt.buffer.name]))
                for attr in ("body", "then_body", "else_body"):
                    if hasattr(stmt, attr):
                        stmt = dataclasses.replace(stmt, **{attr: restage(getattr(stmt, attr))})
                out.append(stmt)
            return tuple(out)

        return kernel.replace(body=restage(body))
