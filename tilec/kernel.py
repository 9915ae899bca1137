"""`@tilec.kernel`: the user-facing kernel object. It strings the named stages together:

    frontend (ast -> IR) -> passes (bind, simplify, verify, place-memory, software-pipeline, verify)
    -> lowering (Triton source | LLVM IR) -> build (triton.jit | LLVM object code) -> launch

Each stage's output can be dumped with `kernel.source(stage, **shapes_and_config)`.
"""
from __future__ import annotations

import functools

from . import __version__, ir
from .errors import TilecArgumentError
from .frontend import parse_kernel
from .passes import PassContext, default_pipeline
from .settings import settings

BACKENDS = ("llvm", "triton")
#: the hardware whose capacities the passes check, per backend, unless `arch=` says otherwise
DEFAULT_ARCH = {"llvm": "cpu", "triton": "h100"}


class TileKernel:
    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        functools.update_wrapper(self, fn)

    # ---------------------------------------------------------------------------------------------- stages
    @functools.cached_property
    def ir(self) -> ir.Kernel:
        """The generic IR (dims and config symbolic)."""
        return parse_kernel(self.fn)

    def split_kwargs(self, kwargs: dict) -> tuple[dict, dict]:
        """Separate dim values from config values in a `source(...)`/`cost(...)` keyword set."""
        dim_names = {d.name for d in self.ir.dims}
        config_names = {c.name for c in self.ir.config}
        dims, config = {}, {}
        for k, v in kwargs.items():
            if k in dim_names:
                dims[k] = v
            elif k in config_names:
                config[k] = v
            else:
                raise TilecArgumentError(f"{self.__name__}: '{k}' is neither a dim ({', '.join(sorted(dim_names))}) "
                                         f"nor a config constant ({', '.join(sorted(config_names)) or 'none'})")
        return dims, config

    def specialize(self, dims: dict, config: dict, backend: str = "llvm", arch: str | None = None,
                   record=None) -> ir.Kernel:
        """The IR after every pass, for these dims and config."""
        ctx = PassContext(dims=dims, config=config, target=arch or DEFAULT_ARCH[backend])
        kernel = self.ir
        for p in default_pipeline():
            kernel = p.run(kernel, ctx)
            if record is not None:
                record(p.name, kernel)
        return kernel

    def stages(self, backend: str = "llvm", arch: str | None = None, **shapes_and_config) -> dict:
        """{stage name: output} for every stage up to the backend's source: "frontend", each pass, then the
        lowering ("triton" source or "llvm" IR)."""
        dims, config = self.split_kwargs(shapes_and_config)
        out = {"frontend": self.ir}
        kernel = self.specialize(dims, config, backend, arch, record=lambda name, k: out.__setitem__(name, k))
        out[backend] = lower(kernel, backend)
        return out

    def source(self, stage: str = "triton", **shapes_and_config) -> str:
        """The output of one stage as text: "triton" or "llvm" (generated code), "ir" (generic IR), or a pass
        name ("bind", "simplify", "place-memory", "software-pipeline") for the IR after it."""
        from .printer import print_kernel

        backend = stage if stage in BACKENDS else "llvm"
        if stage == "ir":
            return print_kernel(self.ir)
        outs = self.stages(backend=backend, **shapes_and_config)
        if stage not in outs:
            raise TilecArgumentError(f"unknown stage {stage!r}; stages are: ir, {', '.join(outs)}")
        value = outs[stage]
        return value if isinstance(value, str) else print_kernel(value)

    # ---------------------------------------------------------------------------------------------- calling
    def __call__(self, *args, target: str | None = None, arch: str | None = None, **config):
        from .runtime.args import bind_arguments, pick_backend
        from .runtime.cache import compiled_kernel

        backend = pick_backend(args, target or settings.target)
        dims = bind_arguments(self.ir, args, backend)
        launcher = compiled_kernel(self, dims, config, backend, arch)
        return launcher(*args)

    def compile(self, target: str = "llvm", arch: str | None = None, **shapes_and_config):
        """Compile ahead of a call; returns the launcher (callable with the kernel's arguments)."""
        from .runtime.cache import compiled_kernel

        dims, config = self.split_kwargs(shapes_and_config)
        return compiled_kernel(self, dims, config, target, arch)

    def cost(self, target: str = "h100", **shapes_and_config):
        """The cost model's report for these shapes and config on `target` (see tilec.cost)."""
        from .cost.model import predict

        dims, config = self.split_kwargs(shapes_and_config)
        backend = "llvm" if target == "cpu" else "triton"
        return predict(self.specialize(dims, config, backend, arch=target), target)

    def __repr__(self):
        return f"<tilec.kernel {self.__name__}>"


def lower(kernel: ir.Kernel, backend: str) -> str:
    """Generated code for a fully specialised kernel (the lowerings read IR only)."""
    if backend == "triton":
        from .lowering.triton import lower as lower_triton

        return lower_triton(kernel)
    if backend == "llvm":
        from .lowering.llvm import lower as lower_llvm

        return lower_llvm(kernel)
    raise TilecArgumentError(f"unknown target {backend!r}; use one of {', '.join(BACKENDS)}")


def kernel(fn=None):
    """Decorator: `@tilec.kernel def name(A: T.Tensor[...], ..., *, block_m: int = 64): ...`."""
    if fn is None:
        return kernel
    return TileKernel(fn)


CACHE_VERSION = __version__
