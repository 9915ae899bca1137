"""The compile cache: memory and disk layers, corrupt entries rebuilt, TILEC_CACHE=0, concurrent processes.

The lowerings are replaced by fakes that count their calls (the real LLVM path has one end-to-end test)."""
import os
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import tilec
import tilec.language as T
from tilec.errors import TilecArgumentError
from tilec.runtime import cache
from tilec.runtime.cache import cache_stats, clear_memory_cache, compiled_kernel
from tilec.settings import Settings, settings

llvm_backend = pytest.importorskip("tilec.lowering.llvm")


@tilec.kernel
def double(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 16):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], x)
        for i in T.Parallel(block):
            x[i] = x[i] * 2.0
        T.copy(x, Y[bx * block])


class FakeLowering:
    """lower -> compile_object -> load, counting calls; the 'object code' names the bound dims."""

    def __init__(self):
        self.lowered = self.compiled = 0
        self.loaded = []

    def lower(self, k):
        self.lowered += 1
        return f"llvm ir of {k.name} {sorted(k.bound_values.items())}"

    def compile_object(self, src):
        self.compiled += 1
        return b"OBJ:" + src.encode()

    def load(self, obj, k):
        self.loaded.append(obj)
        return lambda *arrays: ("ran", obj)


@pytest.fixture
def fake(monkeypatch):
    f = FakeLowering()
    for name in ("lower", "compile_object", "load"):
        monkeypatch.setattr(llvm_backend, name, getattr(f, name))
    return f


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "cache_dir", tmp_path / "cache")
    monkeypatch.setattr(settings, "cache", True)
    clear_memory_cache()
    yield tmp_path / "cache"
    clear_memory_cache()


def compile_double(n=37, **config):
    return compiled_kernel(double, {"N": n}, config, "llvm", None)


def delta(before: dict) -> dict:
    return {k: v - before[k] for k, v in cache_stats().items() if v != before[k]}


def entries(folder: Path) -> list:
    return sorted((folder / "kernels").glob("*.tkc"))


# ---------------------------------------------------------------------------------------------- layers
def test_memory_hit_returns_the_same_launcher(fake):
    before = cache_stats()
    first = compile_double()
    assert compile_double() is first
    assert delta(before) == {"builds": 1, "memory_hits": 1}
    assert (fake.lowered, fake.compiled) == (1, 1)


def test_disk_hit_after_clearing_memory_skips_lower_and_compile(fake, cache_dir):
    first = compile_double()
    assert len(entries(cache_dir)) == 1
    clear_memory_cache()
    before = cache_stats()
    again = compile_double()
    assert delta(before) == {"disk_hits": 1}
    assert (fake.lowered, fake.compiled) == (1, 1)
    assert fake.loaded[0] == fake.loaded[1] and again() == first()


def test_triton_entry_holds_the_source_text(cache_dir, monkeypatch):
    triton_backend = pytest.importorskip("tilec.lowering.triton")
    lowered, loaded = [], []
    monkeypatch.setattr(triton_backend, "lower", lambda k: lowered.append(k) or f"@triton.jit  # {k.name}")
    monkeypatch.setattr(triton_backend, "load", lambda src, k: loaded.append(src) or (lambda *t: src))
    compiled_kernel(double, {"N": 37}, {}, "triton", None)
    (entry,) = entries(cache_dir)
    assert entry.read_bytes().endswith(b"@triton.jit  # double")
    clear_memory_cache()
    assert compiled_kernel(double, {"N": 37}, {}, "triton", None)() == "@triton.jit  # double"
    assert len(lowered) == 1 and loaded == ["@triton.jit  # double"] * 2


def test_key_tells_apart_dims_config_and_backend(fake):
    launchers = {compile_double(37), compile_double(38), compile_double(37, block=32), compile_double(37, block=16)}
    assert fake.compiled == 4 and len(launchers) == 4  # block=16 spelled out differs from the default in the key
    keys = {cache.cache_key(double, {"N": 37}, cfg, backend, None)
            for cfg in ({"block": 1}, {"block": True}) for backend in ("llvm", "triton")}
    assert len(keys) == 4


def test_unknown_backend(fake):
    with pytest.raises(TilecArgumentError, match="target='cuda' is not a backend; use one of 'llvm', 'triton'"):
        compiled_kernel(double, {"N": 3}, {}, "cuda", None)


# ---------------------------------------------------------------------------------------------- corrupt entries
def truncate(data: bytes) -> bytes:
    return data[:len(data) // 2]


def flip_payload_byte(data: bytes) -> bytes:
    return data[:-3] + bytes([data[-3] ^ 0x40]) + data[-2:]


def bad_magic(data: bytes) -> bytes:
    return b"X" + data[1:]


def header_only(data: bytes) -> bytes:
    return data[:cache.HEADER.size]


@pytest.mark.parametrize("damage", [truncate, flip_payload_byte, bad_magic, header_only, lambda d: b""])
def test_corrupt_entry_is_discarded_and_rebuilt(fake, cache_dir, damage):
    expected = compile_double()()
    (entry,) = entries(cache_dir)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))
    clear_memory_cache()
    before = cache_stats()
    assert compile_double()() == expected
    assert delta(before) == {"discarded": 1, "builds": 1}
    assert entry.read_bytes() == good  # rewritten whole
    assert len(fake.loaded) == 2 and fake.loaded[0] == fake.loaded[1]  # the damaged payload never reached load


def test_entry_of_another_key_is_not_used(fake, cache_dir):
    compile_double(37)
    compile_double(38)
    e37, e38 = sorted(entries(cache_dir), key=lambda p: p.stat().st_mtime_ns)
    e37.write_bytes(e38.read_bytes())  # a sound entry, but for N=38
    clear_memory_cache()
    before = cache_stats()
    assert compile_double(37)()[1] == fake.loaded[0]
    assert delta(before) == {"discarded": 1, "builds": 1}


def test_entry_that_fails_to_load_is_rebuilt(fake, cache_dir, monkeypatch):
    compile_double()
    clear_memory_cache()
    loads = []

    def load_failing_once(obj, k):
        loads.append(obj)
        if len(loads) == 1:
            raise OSError("bad object code")
        return fake.load(obj, k)

    monkeypatch.setattr(llvm_backend, "load", load_failing_once)
    before = cache_stats()
    compile_double()
    assert delta(before) == {"discarded": 1, "builds": 1}


def test_unpack_checks_every_field():
    key, other = "ab" * 32, "cd" * 32
    entry = cache.pack_entry(key, b"payload")
    assert cache.unpack_entry(entry, key) == b"payload"
    assert cache.unpack_entry(entry, other) is None
    assert cache.unpack_entry(entry + b"x", key) is None
    version_bumped = entry[:8] + (cache.FORMAT_VERSION + 1).to_bytes(4, "little") + entry[12:]
    assert cache.unpack_entry(version_bumped, key) is None


# ---------------------------------------------------------------------------------------------- switched off
def test_cache_off_builds_every_time_and_writes_nothing(fake, cache_dir, monkeypatch):
    monkeypatch.setattr(settings, "cache", False)
    before = cache_stats()
    compile_double()
    compile_double()
    assert delta(before) == {"builds": 2}
    assert not cache_dir.exists()


def test_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("TILEC_CACHE", "0")
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "elsewhere"))
    s = Settings()
    assert s.cache is False and s.cache_dir == tmp_path / "elsewhere"
    monkeypatch.setenv("TILEC_CACHE", "1")
    monkeypatch.delenv("TILEC_CACHE_DIR")
    s = Settings()
    assert s.cache is True and s.cache_dir == Path.home() / ".cache" / "tilec"


def test_uncreatable_cache_dir_warns_once_and_runs(fake, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(settings, "cache_dir", blocker / "cache")
    with pytest.warns(RuntimeWarning, match="cannot create the compile cache folder"):
        first = compile_double(37)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning for the same folder
        compile_double(38)
    assert compile_double(37) is first  # the memory layer still works
    assert fake.compiled == 2


# ---------------------------------------------------------------------------------------------- concurrency
def test_threads_build_a_key_once(fake, monkeypatch):
    slow_compile = fake.compile_object
    monkeypatch.setattr(llvm_backend, "compile_object", lambda src: (time.sleep(0.2), slow_compile(src))[1])
    with ThreadPoolExecutor(4) as pool:
        launchers = set(pool.map(lambda _: compile_double(), range(4)))
    assert len(launchers) == 1 and fake.compiled == 1


WORKER = """
import json, sys, time
import tilec, tilec.language as T
from tilec.lowering import llvm
from tilec.runtime.cache import cache_stats, compiled_kernel

@tilec.kernel
def double(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 16):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], x)
        T.copy(x, Y[bx * block])

def slow_object(src):
    time.sleep(0.3)  # both processes are inside the build at once
    return b"OBJ:" + src.encode() * 2000

llvm.lower = lambda k: f"ir {k.name} {sorted(k.bound_values.items())}"
llvm.compile_object = slow_object
llvm.load = lambda obj, k: (lambda *a: obj)
start_at = float(sys.argv[1])
time.sleep(max(0.0, start_at - time.time()))
launcher = compiled_kernel(double, {"N": 37}, {}, "llvm", None)
print(json.dumps({**cache_stats(), "payload": len(launcher())}))
"""


def test_two_processes_compiling_at_once(tmp_path, cache_dir):
    import json

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "TILEC_CACHE_DIR": str(cache_dir), "TILEC_CACHE": "1"}
    start_at = str(time.time() + 1.5)  # past both interpreters' start-up
    procs = [subprocess.Popen([sys.executable, str(script), start_at], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    stats = [json.loads(out) for out, _ in results]
    assert [s["builds"] for s in stats] == [1, 1]  # neither saw the other's half-written entry
    (entry,) = entries(cache_dir)
    assert not list((cache_dir / "kernels").glob("*.tmp"))
    key = cache.HEADER.unpack_from(entry.read_bytes())[2].hex()
    assert entry.name.endswith(f"-{key[:40]}.tkc")
    payload = cache.unpack_entry(entry.read_bytes(), key)
    assert payload is not None and len(payload) == stats[0]["payload"]
    third = subprocess.run([sys.executable, str(script), "0"], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(third.stdout)["disk_hits"] == 1 and json.loads(third.stdout)["builds"] == 0


# ---------------------------------------------------------------------------------------------- end to end
def test_real_llvm_build_then_disk_hit(cache_dir):
    x = np.arange(45, dtype=np.float32) - 7
    y = np.zeros_like(x)
    compiled_kernel(double, {"N": 45}, {}, "llvm", None)(x, y)
    np.testing.assert_array_equal(y, 2 * x)
    clear_memory_cache()
    before = cache_stats()
    y[:] = 0
    double(x, y)  # through TileKernel.__call__: binds N = 45, finds the disk entry
    assert delta(before) == {"disk_hits": 1}
    np.testing.assert_array_equal(y, 2 * x)
