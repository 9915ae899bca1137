"""bind: substitute the dims (from the arguments' shapes) and config constants with constants."""
from __future__ import annotations

from .. import ir
from ..errors import TilecArgumentError
from .base import Pass


class BindShapesAndConfig(Pass):
    name = "bind"

    def run(self, kernel: ir.Kernel, ctx) -> ir.Kernel:
        names = {c.name: c for c in kernel.config}
        unknown = set(ctx.config) - set(names)
        if unknown:
            raise TilecArgumentError(
                f"{kernel.name}: unknown config constant(s) {', '.join(sorted(unknown))}; "
                f"this kernel takes {', '.join(names) or 'none'}")
        missing = [d.name for d in kernel.dims if d.name not in ctx.dims]
        if missing:
            raise TilecArgumentError(f"{kernel.name}: no value for dim(s) {', '.join(missing)}")
        values = {}
        for d in kernel.dims:
            v = ctx.dims[d.name]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise TilecArgumentError(f"{kernel.name}: dim {d.name} = {v!r} must be a non-negative int")
            values[d.name] = ir.Const(int(v), "index")
        config = []
        for c in kernel.config:
            v = ctx.config.get(c.name, c.value)
            ok = (isinstance(v, bool) if c.dtype == "bool" else
                  isinstance(v, int) and not isinstance(v, bool) if c.dtype == "index" else
                  isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok:
                raise TilecArgumentError(f"{kernel.name}: config {c.name} = {v!r} must be of the default's type "
                                         f"({type(c.value).__name__}, default {c.value!r})")
            v = float(v) if c.dtype == "float32" else v
            values[c.name] = ir.Const(v, c.dtype)
            config.append(ir.ConfigParam(c.name, c.dtype, v))

        def subst(e):
            return values.get(e.name, e) if isinstance(e, ir.Var) else e

        bound = tuple((k, v.value) for k, v in values.items())
        return ir.map_kernel_exprs(kernel, subst).replace(config=tuple(config), bound=bound)
