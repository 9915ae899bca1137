"""The compile cache: `compiled_kernel(tile_kernel, dims, config, backend, arch)` returns a launcher, built at most
once per key and process, and at most once per key and machine while the disk entry lives.

Key: sha256 of the generic IR text, the dims and config, backend, arch, tilec's version, a fingerprint of tilec's
own source files (a changed pass or lowering must not reuse old code) and the backend tool (llvmlite and the host
CPU the object code is tuned for; or triton's version).

Layers: an in-memory LRU of launchers; then one file per key under `settings.cache_dir`/kernels holding the
backend's output (LLVM: object code; Triton: kernel source). An entry is a header (magic, format version, key,
payload length, payload sha256) and the payload; it is written to a temp file in the same folder, fsynced and
renamed over the entry, so readers and concurrent writers only ever see whole entries. An entry that fails any
check is deleted and rebuilt, never used. `settings.cache` False (TILEC_CACHE=0) turns both layers off.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import struct
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import tilec
from tilec.errors import TilecArgumentError
from tilec.settings import settings

from .args import BACKENDS, as_numpy_views

MAGIC = b"TILECKC\x00"
FORMAT_VERSION = 1
#: magic, format version, key (sha256), payload length, payload sha256
HEADER = struct.Struct("<8sI32sQ32s")
#: launchers kept in memory; each LLVM one maps its own code, so the oldest are dropped past this many
MEMORY_ENTRIES = 1024

_memory: OrderedDict = OrderedDict()
_memory_lock = threading.Lock()
_build_locks: dict = {}  # key -> Lock: one build per key at a time within a process
_stats = {"memory_hits": 0, "disk_hits": 0, "builds": 0, "discarded": 0}
_warned: set = set()


def cache_stats() -> dict:
    """Counts since the process started: memory_hits, disk_hits, builds, discarded (bad disk entries)."""
    return dict(_stats)


def clear_memory_cache() -> None:
    """Forget the in-memory launchers (the disk entries stay), and the call fast path's prepared launches."""
    from .fastpath import clear_fast_cache

    with _memory_lock:
        _memory.clear()
    clear_fast_cache()


def compiled_kernel(tile_kernel, dims: dict, config: dict, backend: str, arch: str | None = None):
    """A launcher for `tile_kernel` specialised to these dims and config: `launcher(*arrays)`."""
    if backend not in BACKENDS:
        raise TilecArgumentError(f"target={backend!r} is not a backend; use one of {', '.join(map(repr, BACKENDS))}")
    if not settings.cache:
        return build(tile_kernel, dims, config, backend, arch, entry=None)
    key = cache_key(tile_kernel, dims, config, backend, arch)
    launcher = memory_get(key)
    if launcher is not None:
        return launcher
    with build_lock(key):
        launcher = memory_get(key)  # another thread may have built it while this one waited
        if launcher is None:
            folder = disk_folder()
            entry = folder / entry_name(tile_kernel.ir.name, backend, key) if folder is not None else None
            launcher = build(tile_kernel, dims, config, backend, arch, entry, key)
            with _memory_lock:
                _memory[key] = launcher
                while len(_memory) > MEMORY_ENTRIES:
                    _memory.popitem(last=False)
    return launcher


# ---------------------------------------------------------------------------------------------- the key
def cache_key(tile_kernel, dims: dict, config: dict, backend: str, arch: str | None) -> str:
    from tilec.kernel import DEFAULT_ARCH

    parts = {
        "ir": ir_text(tile_kernel.ir),
        "dims": sorted((str(k), int(v)) for k, v in dims.items()),
        "config": sorted((str(k), repr(v)) for k, v in config.items()),  # repr keeps True apart from 1
        "backend": backend,
        "arch": arch or DEFAULT_ARCH[backend],
        "tilec": tilec.__version__,
        "compiler": compiler_fingerprint(),
        "tool": tool_version(backend),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


_ir_text_memo: dict = {}  # id(generic IR) -> (IR, text): printed once per kernel, not once per call


def ir_text(kernel_ir) -> str:
    hit = _ir_text_memo.get(id(kernel_ir))
    if hit is None or hit[0] is not kernel_ir:
        from tilec.printer import print_kernel

        hit = _ir_text_memo[id(kernel_ir)] = (kernel_ir, print_kernel(kernel_ir))
    return hit[1]


@functools.lru_cache(maxsize=None)
def compiler_fingerprint() -> str:
    """sha256 of the source files of tilec (but its ops: their kernels' IR is in the key anyway), the lowerings and
    the runtime, read once per process."""
    import tilec.lowering

    digest = hashlib.sha256()
    for root in (Path(tilec.__file__).parent, Path(tilec.lowering.__file__).parent, Path(__file__).parent):
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".lark", ".json")
                           and "ops" not in p.relative_to(root).parts[:1]):  # host-side op wrappers
            digest.update(f"{root.name}/{path.relative_to(root)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def tool_version(backend: str) -> str:
    if backend == "llvm":
        import llvmlite
        from llvmlite import binding as llvm

        # the object code is tuned for this CPU (lowering.llvm.jit): another CPU sharing the folder must rebuild
        return f"llvmlite {llvmlite.__version__} {llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"triton {version('triton')}"
    except PackageNotFoundError:
        return "triton missing"  # load() will say so


# ---------------------------------------------------------------------------------------------- building
def build(tile_kernel, dims, config, backend, arch, entry: Path | None, key: str | None = None):
    """Load the payload from the disk entry if it is sound, else lower (and compile) and write the entry."""
    k = tile_kernel.specialize(dims, config, backend, arch)  # `load` needs the bound IR even on a disk hit
    payload = read_entry(entry, key) if entry is not None else None
    if payload is not None:
        try:
            launcher = load_payload(backend, payload, k)
        except Exception:  # noqa: BLE001 -- a sound checksum over unusable code: treat it as corrupt
            discard(entry)
        else:
            _stats["disk_hits"] += 1
            return launcher
    payload = make_payload(backend, k)
    _stats["builds"] += 1
    if entry is not None:
        write_entry(entry, key, payload)
    return load_payload(backend, payload, k)


def make_payload(backend: str, k) -> bytes:
    if backend == "llvm":
        from tilec.lowering import llvm

        return llvm.compile_object(llvm.lower(k))
    from tilec.lowering import triton

    return triton.lower(k).encode()


def load_payload(backend: str, payload: bytes, k):
    if backend == "llvm":
        from tilec.lowering import llvm

        return CPULauncher(llvm.load(payload, k))
    from tilec.lowering import triton

    return triton.load(payload.decode(), k)


class CPULauncher:
    """The LLVM launcher, also taking torch CPU tensors (as NumPy views of the same memory)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, *args):
        return self.inner(*as_numpy_views(args))

    def __getattr__(self, name):
        return getattr(self.inner, name)


# ---------------------------------------------------------------------------------------------- memory layer
def memory_get(key: str):
    with _memory_lock:
        launcher = _memory.get(key)
        if launcher is not None:
            _memory.move_to_end(key)
            _stats["memory_hits"] += 1
        return launcher


def build_lock(key: str) -> threading.Lock:
    with _memory_lock:
        return _build_locks.setdefault(key, threading.Lock())


# ---------------------------------------------------------------------------------------------- disk layer
def disk_folder() -> Path | None:
    """The entries' folder, created if need be; None (after one warning) when it cannot be."""
    folder = Path(settings.cache_dir) / "kernels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        warn_once(folder, f"tilec: cannot create the compile cache folder {folder} ({exc}); compiling without the "
                          f"disk cache (set TILEC_CACHE_DIR to a writable folder, or TILEC_CACHE=0)")
        return None
    return folder


def entry_name(kernel_name: str, backend: str, key: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', kernel_name)[:64]}-{backend}-{key[:40]}.tkc"


def pack_entry(key: str, payload: bytes) -> bytes:
    header = HEADER.pack(MAGIC, FORMAT_VERSION, bytes.fromhex(key), len(payload), hashlib.sha256(payload).digest())
    return header + payload


def unpack_entry(data: bytes, key: str) -> bytes | None:
    """The payload if `data` is a whole, sound entry for `key`, else None."""
    if len(data) < HEADER.size:
        return None
    magic, version, entry_key, length, checksum = HEADER.unpack_from(data)
    payload = data[HEADER.size:]
    if (magic, version, entry_key) != (MAGIC, FORMAT_VERSION, bytes.fromhex(key)) or len(payload) != length:
        return None
    return payload if hashlib.sha256(payload).digest() == checksum else None


def read_entry(path: Path, key: str) -> bytes | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warn_once(path, f"tilec: cannot read compile cache entry {path} ({exc}); rebuilding it")
        return None
    payload = unpack_entry(data, key)
    if payload is None:
        discard(path)
    return payload


def write_entry(path: Path, key: str, payload: bytes) -> None:
    """Write atomically: a temp file in the same folder, fsynced, renamed over the entry."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(pack_entry(key, payload))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        warn_once(path.parent, f"tilec: cannot write the compile cache entry {path} ({exc}); running uncached")


def discard(path: Path) -> None:
    _stats["discarded"] += 1
    with contextlib.suppress(OSError):  # another process may have removed or replaced it already
        path.unlink()


def warn_once(where: Path, message: str) -> None:
    if str(where) not in _warned:
        _warned.add(str(where))
        warnings.warn(message, RuntimeWarning, stacklevel=3)
