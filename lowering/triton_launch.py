"""Loading generated Triton source: write it to a real file (Triton reads kernels with inspect.getsource), import
it, and launch on the kernel's grid. CUDA tensors run the compiled kernel; CPU tensors run Triton's interpreter."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from .. import ir
from ..errors import TilecArgumentError, TilecBackendUnavailable, TilecLoweringError, TilecResourceError
from ..settings import settings
from .triton_codegen import KernelLowering, Options, launch_grid, launch_plan

#: programs a persistent kernel gets under the interpreter, which runs them one after another: a few exercise the
#: striding over blocks as well as an SM's worth would
INTERPRETER_PROGRAMS = 3
#: bytes. A tensor descriptor's base address must be 16-byte aligned (CUDA Driver API, cuTensorMapEncodeTiled), and
#: Triton specialises pointer arguments on 16-byte alignment (triton/runtime/jit.py, specialize_impl): a kernel it
#: compiled for aligned tensors may be relaunched directly only for aligned ones
TMA_ALIGN = 16
#: TRITON_INTERPRET values that leave Triton in GPU mode: a GPU launch then needs no interpret_mode toggling
INTERPRET_OFF = ("0", "", "false", "False", "off", "no")
environ = os.environ


def write_source(source: str, name: str) -> Path:
    """The source in the cache dir under a content-addressed name, written atomically (temp file + rename)."""
    folder = Path(settings.cache_dir) / "triton"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_{hashlib.sha256(source.encode()).hexdigest()[:20]}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


def import_file(path: Path):
    module_name = f"tilec_triton_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[module_name]
        raise
    return module


#: Triton's signature type of each tensor dtype a tilec kernel takes
POINTER_TYPES = {"float32": "*fp32", "float16": "*fp16", "bfloat16": "*bf16", "float64": "*fp64", "int32": "*i32",
                 "int64": "*i64", "int8": "*i8"}


def compile_offline(bound: ir.Kernel, num_warps: int, capability: int = 90, programs: int = 132):
    """Triton's compiled kernel (its .asm stages ttgir/ptx/cubin and .metadata) of a bound kernel's default lowering
    for an NVIDIA GPU of this compute capability, compiled on this machine, which needs no GPU: for tests of the
    generated code and offline register counts. Pointers are specialised on 16-byte alignment, as Triton's launcher
    does for aligned tensors; a persistent kernel gets `programs` programs (an H100's SMs)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.runtime.jit import JITFunction

    source = KernelLowering(bound, Options()).source()
    fn = getattr(import_file(write_source(source, bound.name)), bound.name)
    signature = {p.name: POINTER_TYPES[p.dtype] for p in bound.params}
    aligned = {(i,): [["tt.divisibility", 16]] for i in range(len(signature))}
    constants = {}
    if "NUM_SMS: tl.constexpr" in source:
        signature["NUM_SMS"], constants["NUM_SMS"] = "constexpr", programs
    with interpret_mode(False):
        return triton.compile(triton.compiler.ASTSource(JITFunction(getattr(fn, "fn", fn)), signature, constants,
                                                        aligned),
                              target=GPUTarget("cuda", capability, 32), options={"num_warps": num_warps})


@contextlib.contextmanager
def interpret_mode(on: bool):
    """Run Triton in the mode the tensors' device needs, whatever the environment said when triton was imported.

    Triton decides the mode twice: `triton.knobs` rereads TRITON_INTERPRET while generating code, and
    `@triton.jit` fixes it for Triton's own library functions (tl.sum, tl.max, tl.sigmoid, ...) at import. If
    triton was imported for the GPU those are JITFunctions, which the interpreter cannot call: while interpreting,
    a call to one runs it under the interpreter instead, and the language attributes the interpreter replaces on
    the way (it leaves some replaced) are put back afterwards, so later GPU compiles see the real ones."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if on else "0"
    bridge = on and isinstance(tl.sum, JITFunction)  # triton was imported for the GPU
    patched = [tl, tl.core, tl.math, tl.standard, tl.core.tensor, tl.core.dtype, JITFunction]
    saved = [dict(vars(obj)) for obj in patched] if bridge else []
    if bridge:
        JITFunction.__call__ = lambda self, *args, **kwargs: InterpretedFunction(self.fn)(*args, **kwargs)
    try:
        yield
    finally:
        for obj, attrs in zip(patched, saved):  # names the interpreter added stay: its caches refer to them
            for name, value in attrs.items():
                if vars(obj).get(name, attrs) is not value:
                    setattr(obj, name, value)
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before


def source_options(source: str) -> Options:
    """The options `lower` wrote `source` with (its header line), for a variant of the same kernel."""
    found = dict(re.findall(r"(\w+)=(True|False|None)", re.search(r"^# lowered with .*$", source, re.M).group(0)))
    return Options(**{k: {"True": True, "False": False, "None": None}[v] for k, v in found.items()})


def plain_function(source: str, kernel: ir.Kernel):
    match = re.search(r"^@triton\.jit\ndef (\w+)\(", source, re.M)
    if match is None:
        raise TilecLoweringError(f"{kernel.name}: the source has no @triton.jit function")
    raw = getattr(import_file(write_source(source, kernel.name)), match.group(1))
    return getattr(raw, "fn", raw)  # the plain function, whichever mode triton.jit chose at import


@functools.lru_cache(maxsize=None)
def sm_count(device_index: int) -> int:
    import torch

    return torch.cuda.get_device_properties(device_index).multi_processor_count


def direct_launch(made, grid: tuple, constexprs: tuple):
    """A launcher for the kernel Triton compiled on a first call (`made`, what JITFunction.run returns) that does
    only what that run does after its cache lookup: stream, launch metadata, the compiled kernel's own launcher.
    Skipped per call: binding and specialising every argument and hashing the cache key (about 15 us of host time
    a launch). Only valid for arguments of the same specialisation, tensors all 16-byte aligned (the caller checks);
    `relaunch(*tensors)` launches and returns True when the current device is the one it was compiled on, else
    returns False. None when this Triton lacks the pieces (then every call takes JITFunction.run)."""
    try:
        from triton import knobs
        from triton.runtime.driver import driver

        function, packed = made.function, made.packed_metadata
        stream_of, device_of = driver.active.get_current_stream, driver.active.get_current_device
        hooks = knobs.runtime
        compiled_on = device_of()
    except Exception:  # noqa: BLE001 - an older or newer Triton: the checked launch path still works
        return None
    g0, g1, g2 = (tuple(grid) + (1, 1))[:3]

    def relaunch(*tensors) -> bool:
        device = device_of()
        if device != compiled_on:
            return False
        stream = stream_of(device)
        args = (*tensors, *constexprs)
        made.run(g0, g1, g2, stream, function, packed, made.launch_metadata(grid, stream, *args),
                 hooks.launch_enter_hook, hooks.launch_exit_hook, *args)
        return True

    return relaunch


def use_torch_allocator():
    """Kernels that make tensor descriptors need global scratch memory for them, from the allocator Triton is
    given; give it torch's caching allocator unless the caller set one."""
    import torch
    import triton
    from triton.runtime import _allocation

    if isinstance(_allocation._allocator.get(), _allocation.NullAllocator):
        triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))


def out_of_resources(kernel: ir.Kernel, exc) -> TilecResourceError:
    bound = ", ".join(f"{k}={v}" for k, v in kernel.bound)
    return TilecResourceError(f"{kernel.name} ({bound}): the GPU compiler ran out of a resource: {exc}. tilec's "
                              f"capacity check passed, but Triton's layouts (operand conversions, descriptor "
                              f"scratch) need more; choose smaller blocks or fewer num_stages")


def load(source: str, kernel: ir.Kernel, num_warps: int | None = None, num_ctas: int = 1):
    """`launcher(*tensors)` for source from `lower(kernel)`: torch tensors in parameter order. num_warps: None
    takes the kernel's launch plan."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except ImportError as exc:
        raise TilecBackendUnavailable(f"the Triton backend needs triton and torch (pip install tilec[gpu]): "
                                      f"{exc}") from None
    raw = plain_function(source, kernel)
    uses_tma = "tl.make_tensor_descriptor(" in source
    persistent = "NUM_SMS: tl.constexpr" in source
    grid = launch_grid(kernel)
    blocks = math.prod(grid)
    warps = num_warps or launch_plan(kernel).num_warps
    made: dict = {}

    def function(on_cpu: bool, aligned: bool):
        """The compiled (GPU) or interpreted (CPU) kernel; a pointer-only variant where a tensor's base address
        does not suit a tensor descriptor."""
        if (on_cpu, aligned) not in made:
            fn = raw
            if not aligned:
                options = source_options(source)
                fn = plain_function(KernelLowering(kernel, Options(False, options.persistent,
                                                                   options.warp_specialize)).source(), kernel)
            # decide the mode here, not by TRITON_INTERPRET at import: CPU tensors always need the interpreter
            made[on_cpu, aligned] = InterpretedFunction(fn) if on_cpu else JITFunction(fn)
        return made[on_cpu, aligned]

    def launcher(*tensors):
        if len(tensors) != len(kernel.params):
            raise TilecArgumentError(f"{kernel.name} takes {len(kernel.params)} tensors "
                                     f"({', '.join(p.name for p in kernel.params)}), got {len(tensors)}")
        devices = {t.device.type for t in tensors}
        if len(devices) != 1:
            raise TilecArgumentError(f"{kernel.name}: all tensors must be on one device, got "
                                     f"{', '.join(sorted(devices))}")
        prepare(tensors)(*tensors)

    prepared: dict = {}

    def prepare(tensors):
        """The launch for tensors on this device, with what depends only on the device decided once: the fast
        path (runtime.fastpath) calls the result directly for arguments of a signature it has checked."""
        device = tensors[0].device
        run = prepared.get(device)
        if run is None:
            run = prepared[device] = make_run(device.type == "cpu", device.index or 0)
        return run

    def make_run(on_cpu: bool, device_index: int):
        if blocks == 0:
            return lambda *tensors: None
        extra, launch = {}, grid
        if persistent:
            sms = INTERPRETER_PROGRAMS if on_cpu else sm_count(device_index)
            extra["NUM_SMS"] = sms
            launch = (min(sms, blocks),)
        options = dict(extra, num_warps=warps, num_ctas=num_ctas)
        if on_cpu:
            def run(*tensors):
                aligned = not uses_tma or all(t.data_ptr() % TMA_ALIGN == 0 for t in tensors)
                with interpret_mode(True):
                    function(True, aligned)[launch](*tensors, **options)
            return run

        compiled = function(False, True)
        constexprs = tuple(extra.values())  # NUM_SMS, the last parameter of a persistent kernel
        direct: list = []  # [relaunch] once Triton has compiled the aligned variant

        def run(*tensors):
            aligned = all(t.data_ptr() % TMA_ALIGN == 0 for t in tensors)
            if uses_tma and aligned:
                use_torch_allocator()  # per call: Triton's allocator is a context variable
            if direct and aligned and direct[0](*tensors):
                return
            fn = compiled if aligned or not uses_tma else function(False, False)
            try:
                if environ.get("TRITON_INTERPRET", "0") in INTERPRET_OFF:
                    made = fn.run(*tensors, grid=launch, warmup=False, **options)  # what fn[launch](...) calls
                else:  # the environment asks for the interpreter: compile for the GPU regardless
                    with interpret_mode(False):
                        made = fn.run(*tensors, grid=launch, warmup=False, **options)
            except Exception as exc:
                if type(exc).__name__ == "OutOfResources":  # Triton's; its layouts can need more than ours counted
                    raise out_of_resources(kernel, exc) from None
                raise
            if aligned and not direct:
                relaunch = direct_launch(made, launch, constexprs)
                if relaunch is not None:
                    direct.append(relaunch)

        run.jit_function, run.grid, run.options = compiled, launch, options  # for a bare Triton launch to compare
        return run

    launcher.grid, launcher.num_warps, launcher.prepare = grid, warps, prepare
    return launcher
