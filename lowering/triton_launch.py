"""Loading generated Triton source: write it to a real file (Triton reads kernels with inspect.getsource), import
it, and launch on the kernel's grid. CUDA tensors run the compiled kernel; CPU tensors run Triton's interpreter."""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from .. import ir
from ..errors import TilecArgumentError, TilecBackendUnavailable, TilecLoweringError
from ..settings import settings
from .triton_codegen import launch_grid

#: the GEMM output tile (elements) from which 8 warps pay off; Triton's matmul tutorial runs 128x256 tiles with 8
#: warps and 64x64 ones with 4 (https://triton-lang.org/main/getting-started/tutorials/03-matrix-multiplication.html)
EIGHT_WARPS_FROM = 128 * 128


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


def default_num_warps(kernel: ir.Kernel) -> int:
    buffers = kernel.buffers()
    tiles = [math.prod(int(n.value) for n in buffers[s.c].shape)
             for s in ir.walk_stmts(kernel.body) if isinstance(s, ir.Gemm)]
    return 8 if tiles and max(tiles) >= EIGHT_WARPS_FROM else 4


def load(source: str, kernel: ir.Kernel, num_warps: int | None = None, num_ctas: int = 1):
    """`launcher(*tensors)` for source from `lower(kernel)`: torch tensors in parameter order."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except ImportError as exc:
        raise TilecBackendUnavailable(f"the Triton backend needs triton and torch (pip install tilec[gpu]): "
                                      f"{exc}") from None
    match = re.search(r"^@triton\.jit\ndef (\w+)\(", source, re.M)
    if match is None:
        raise TilecLoweringError(f"{kernel.name}: the source has no @triton.jit function")
    raw = getattr(import_file(write_source(source, kernel.name)), match.group(1))
    raw = getattr(raw, "fn", raw)  # the plain function, whichever mode triton.jit chose at import
    grid = launch_grid(kernel)
    warps = num_warps or default_num_warps(kernel)
    made: dict = {}

    def launcher(*tensors):
        if len(tensors) != len(kernel.params):
            raise TilecArgumentError(f"{kernel.name} takes {len(kernel.params)} tensors "
                                     f"({', '.join(p.name for p in kernel.params)}), got {len(tensors)}")
        devices = {t.device.type for t in tensors}
        if len(devices) != 1:
            raise TilecArgumentError(f"{kernel.name}: all tensors must be on one device, got "
                                     f"{', '.join(sorted(devices))}")
        on_cpu = devices == {"cpu"}
        if on_cpu not in made:
            # decide the mode here, not by TRITON_INTERPRET at import: CPU tensors always need the interpreter
            made[on_cpu] = InterpretedFunction(raw) if on_cpu else JITFunction(raw)
        if math.prod(grid) == 0:
            return
        with interpret_mode(on_cpu):
            made[on_cpu][grid](*tensors, num_warps=warps, num_ctas=num_ctas)

    launcher.grid, launcher.num_warps = grid, warps
    return launcher
