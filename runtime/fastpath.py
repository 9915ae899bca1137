"""The call fast path: a repeated `kernel(*args, ...)` with the same argument signature skips `bind_arguments`, the
config merge, `cache_key` (json + sha256) and the memory-cache lock, and runs a launcher prepared for that signature.

`call_key` reads per argument only what the checked path's verdict and the launch depend on: type, dtype object,
shape, and for NumPy the flag bits the layout checks read (C-contiguous, aligned, writeable), for torch the device
and `is_contiguous()`. Add the call's target, arch, config/tune, consts (with their types: `True` must not match a
cached `1`) and `settings.target`. Whatever changes among these misses and takes the checked path, which raises the
same errors as before; only calls that passed it are ever stored. `settings.cache` off (TILEC_CACHE=0) bypasses it.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from tilec.settings import settings

#: prepared launches kept per kernel; a full table drops its oldest entry
FAST_ENTRIES = 64
#: NumPy flag bits bind_arguments checks: C_CONTIGUOUS | ALIGNED | WRITEABLE (OWNDATA is left out: views hit too)
_FLAG_MASK = 0x0001 | 0x0100 | 0x0400

_ndarray = np.ndarray
_stats = {"hits": 0, "misses": 0, "stored": 0}
_tables: weakref.WeakSet = weakref.WeakSet()  # kernels holding a table, so clear_fast_cache reaches them all
_tables_lock = threading.Lock()


def fast_stats() -> dict:
    """Counts since the process started: hits (calls that skipped the checks), misses (eligible calls that took the
    checked path), stored (prepared launches added)."""
    return dict(_stats)


def clear_fast_cache() -> None:
    """Forget every prepared launch (clear_memory_cache calls this: a cleared cache must not be bypassed)."""
    with _tables_lock:
        for k in list(_tables):
            k._fast.clear()


def call_key(args, target, arch, config, tune, consts, assume=None):
    """A hashable signature of the call, or None when it must take the checked path (cache off, arguments not
    arrays, unhashable or unusual config). `assume` (values the cost model's pick took for tensors that loop bounds
    read) is part of it: another context length may pick another config."""
    if not settings.cache:
        return None
    if config is not None:
        if type(config) is dict:
            consts = {**config, **consts}  # the same merge as the checked path; True marks it in the key
            config = True
        elif not (type(config) is str and config == "auto"):
            return None  # the checked path says what is wrong with it
    key = [target, arch, settings.target, tune, config]
    if assume:
        if type(assume) is not dict:
            return None
        key.append(tuple(sorted(assume.items())))
    for name, v in consts.items():
        t = type(v)
        # -0.0 == 0.0 but is a different constant to the compiler (the cache key uses repr)
        key += (name, t, repr(v) if t is float and v == 0.0 else v)
    try:
        for a in args:
            t = type(a)
            if t is _ndarray:
                key += (t, a.dtype, a.shape, a.flags.num & _FLAG_MASK)
            elif t.__module__.startswith("torch"):
                key += (t, a.dtype, a.shape, a.device, a.is_contiguous())
            else:
                return None  # subclasses, lists, ...: the checked path decides
        key = tuple(key)
        hash(key)
    except Exception:  # noqa: BLE001 -- not a tensor after all, an unhashable constant, a sparse tensor, ...
        return None
    return key


def lookup(tile_kernel, key):
    run = tile_kernel._fast.get(key)
    if run is None:
        _stats["misses"] += 1
    else:
        _stats["hits"] += 1
    return run


def store(tile_kernel, key, launcher, args, backend: str) -> None:
    """Keep `launcher`, prepared for these (checked) arguments, under `key`."""
    table = tile_kernel._fast
    if not table:
        with _tables_lock:
            _tables.add(tile_kernel)
    while len(table) >= FAST_ENTRIES:
        try:
            table.pop(next(iter(table)), None)
        except (StopIteration, RuntimeError):  # emptied or resized by another thread meanwhile
            break
    table[key] = prepare(launcher, args, backend)
    _stats["stored"] += 1


def prepare(launcher, args, backend: str):
    """The cheapest callable that launches like `launcher(*args)` for arguments of this signature."""
    from .cache import CPULauncher

    if backend == "llvm" and isinstance(launcher, CPULauncher):
        # NumPy arguments need no torch-to-NumPy views
        return launcher.inner if all(type(a) is _ndarray for a in args) else launcher
    ready = getattr(launcher, "prepare", None)
    if backend == "triton" and ready is not None:
        return ready(args)
    return launcher


def prepared_launch(tile_kernel, *args, target=None, arch=None, config=None, tune=None, **consts):
    """The prepared launch a repeated call with these arguments runs (None before the first such call): for
    benchmarks that compare a tilec call with a bare launch of the same compiled function."""
    key = call_key(args, target, arch, config, tune, consts)
    return None if key is None else tile_kernel._fast.get(key)
