"""`@tilec.kernel`: the user-facing kernel object. It strings the named stages together:

    frontend (ast -> IR) -> passes (bind, simplify, fold-ranges, verify, software-pipeline, place-memory,
    plan-launch, verify) -> lowering (Triton source | LLVM IR) -> build (triton.jit | LLVM object code) -> launch

Each stage's output can be dumped with `kernel.source(stage, **shapes_and_config)`.
"""
from __future__ import annotations

import functools

from . import ir
from .errors import TilecArgumentError
from .frontend import parse_kernel
from .passes import PassContext, default_pipeline
from .runtime.fastpath import call_key
from .runtime.fastpath import lookup as fast_lookup
from .runtime.fastpath import store as fast_store
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
        self._auto: dict = {}  # (dims, fixed config, backend, arch, measured?) -> config picked by the cost model
        self._fast: dict = {}  # call signature -> prepared launch (runtime.fastpath)

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
        name ("bind", "simplify", "place-memory", "software-pipeline", "plan-launch") for the IR after it (the
        passes prepare for the LLVM backend, but for the GPU's launch plan)."""
        from .printer import print_kernel

        backend = stage if stage in BACKENDS else "triton" if stage == "plan-launch" else "llvm"
        if stage == "ir":
            return print_kernel(self.ir)
        outs = self.stages(backend=backend, **shapes_and_config)
        if stage not in outs:
            raise TilecArgumentError(f"unknown stage {stage!r}; stages are: ir, {', '.join(outs)}")
        value = outs[stage]
        return value if isinstance(value, str) else print_kernel(value)

    # ---------------------------------------------------------------------------------------------- calling
    def __call__(self, *args, target: str | None = None, arch: str | None = None, config=None,
                 tune: str | None = None, assume: dict | None = None, **consts):
        """Run the kernel on `args` (NumPy arrays -> LLVM on the CPU; torch CUDA tensors -> Triton). Config
        constants come as keywords; `config="auto"` lets the cost model pick the rest with no measurement,
        `tune="measure"` times the model's top 8 once per shape bucket and caches the winner. `assume` tells the
        model values of tensors that loop bounds read ({"CL": 4096}: every context length is 4096), for its pick."""
        key = call_key(args, target, arch, config, tune, consts, assume)
        if key is not None:
            run = fast_lookup(self, key)
            if run is not None:
                return run(*args)
        from .runtime.args import bind_arguments, pick_backend
        from .runtime.cache import compiled_kernel

        backend = pick_backend(args, target or settings.target)
        dims = bind_arguments(self.ir, args, backend)
        if config == "auto" or tune == "measure":
            consts = {**self.auto_config(dims, consts, backend, arch, args if tune == "measure" else None, assume),
                      **consts}
        elif isinstance(config, dict):
            consts = {**config, **consts}
        elif config is not None or tune is not None:
            raise TilecArgumentError(f"{self.__name__}: config= takes \"auto\" or a dict and tune= takes "
                                     f"\"measure\"; got config={config!r}, tune={tune!r}")
        launcher = compiled_kernel(self, dims, consts, backend, arch)
        result = launcher(*args)
        if key is not None:  # stored only once the checks passed and a launch ran
            fast_store(self, key, launcher, args, backend)
        return result

    def auto_config(self, dims: dict, fixed: dict, backend: str, arch: str | None, measure_args=None,
                    assume: dict | None = None) -> dict:
        """The cost model's config for these dims; constants in `fixed` are held at the caller's values."""
        from .cost import autotune

        hw = arch or DEFAULT_ARCH[backend]
        space = {**autotune.default_space(self, hw), **{k: [v] for k, v in fixed.items()}}
        key = (tuple(sorted(dims.items())), tuple(sorted(fixed.items())), backend, hw, measure_args is not None,
               tuple(sorted((assume or {}).items())))
        if key not in self._auto:
            if measure_args is None:
                self._auto[key] = autotune.pick_config(self, dims, hw, space, assume)
            else:
                self._auto[key] = autotune.tune_measured(self, dims, hw, space=space, assume=assume,
                                                         run=lambda cfg: self._time(measure_args, backend, arch, cfg))
        return self._auto[key]

    def _time(self, args, backend, arch, config, repeat: int = 5) -> float:
        """Median seconds of one launch with `config` (after one warm-up call that also compiles)."""
        import statistics
        import time

        from .runtime.args import bind_arguments
        from .runtime.cache import compiled_kernel

        launcher = compiled_kernel(self, bind_arguments(self.ir, args, backend), config, backend, arch)
        sync = _synchronizer(args)
        launcher(*args)
        sync()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            launcher(*args)
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

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


def _synchronizer(args):
    """A function that waits for the GPU when any argument is a CUDA tensor (timings must include the kernel)."""
    for a in args:
        if type(a).__module__.startswith("torch") and getattr(a, "is_cuda", False):
            import torch

            return torch.cuda.synchronize
    return lambda: None


def kernel(fn=None):
    """Decorator: `@tilec.kernel def name(A: T.Tensor[...], ..., *, block_m: int = 64): ...`."""
    if fn is None:
        return kernel
    return TileKernel(fn)

