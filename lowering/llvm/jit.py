"""LLVM IR text -> optimised host object code -> a loaded, callable launcher that runs the grid on threads."""
from __future__ import annotations

import ctypes
import functools
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from math import prod

import numpy as np
from llvmlite import binding as llvm

from tilec import ir
from tilec.errors import TilecArgumentError, TilecLoweringError
from tilec.settings import settings

from .lower import ALIGN, grid_sizes, scratch_layout, symbol_name


def new_target_machine() -> llvm.TargetMachine:
    """A target machine for the running host (its CPU name and features)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, reloc="pic", codemodel="jitdefault")


@functools.lru_cache(maxsize=None)
def target_machine() -> llvm.TargetMachine:
    """The compiler's own target machine, built once (an execution engine takes ownership of the one it gets, so
    `load` gives each engine a fresh one)."""
    return new_target_machine()


def optimize(module: llvm.ModuleRef) -> None:
    tm = target_machine()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def compile_object(llvm_ir: str) -> bytes:
    """Optimise LLVM IR text at -O3 for the host CPU and emit an object file."""
    tm = target_machine()
    try:
        module = llvm.parse_assembly(llvm_ir)
        module.verify()
    except RuntimeError as exc:
        raise TilecLoweringError(f"the generated LLVM IR does not verify (a tilec bug): {exc}") from None
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    optimize(module)
    return tm.emit_object(module)


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_worker_tids: list = []  # kernel thread ids of the current pool's workers
_pinned: tuple = ()  # (caller's cpu, workers pinned, caller's allowed cpus) of the last pinning


def _register_worker(tids):
    tids.append(threading.get_native_id())


def worker_pool(n: int) -> ThreadPoolExecutor:
    """One shared pool of worker threads, grown when settings.num_threads grows."""
    global _pool, _pool_size, _worker_tids, _pinned
    with _pool_lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _worker_tids, _pinned = [], ()
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="tilec-cpu", initializer=_register_worker,
                                       initargs=(_worker_tids,))
            _pool_size = n
        return _pool


try:
    _sched_getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
except (AttributeError, OSError):  # not glibc/Linux
    _sched_getcpu = None


def keep_workers_off_caller_cpu():
    """Let the pool's workers run on every allowed CPU but the caller's. A worker woken after an idle spell is
    otherwise often placed on the waking (caller's) CPU, and both share it until the load balancer moves one:
    measured 2026-11-29 on a 2-core VM, 1024^3 GEMM calls 0.15 s apart ran at 100-130 GF/s instead of 165-190, the
    first chunk of each thread taking 5.5 ms instead of 1.4."""
    global _pinned
    if _sched_getcpu is None or not hasattr(os, "sched_setaffinity"):
        return
    cpu, allowed = _sched_getcpu(), os.sched_getaffinity(0)  # the caller's, which may have changed since
    others = allowed - {cpu}
    if cpu < 0 or not others or _pinned[:2] == (cpu, len(_worker_tids)) and _pinned[2] == allowed:
        return
    for tid in list(_worker_tids):
        try:
            os.sched_setaffinity(tid, others)
        except OSError:  # the thread has exited (a replaced pool)
            pass
    _pinned = (cpu, len(_worker_tids), allowed)


#: chunks of blocks per thread: small enough to even out unequal cores, large enough that the per-chunk call
#: (a few microseconds) stays negligible
CHUNKS_PER_THREAD = 8
#: a grid whose last run took less core time than this runs on the caller's thread alone: handing chunks to the
#: pool (queue put, waking a worker, waiting for its result) costs more than it saves. 2-core Zen 4 VM, 2026-11-29:
#: ops.kv_gather of 4 pages took 77 us a call through the pool against 6 us for a one-block kernel
INLINE_BELOW_S = 100e-6


class Launcher:
    """`launcher(*arrays)` runs the kernel's whole grid. It owns the execution engine holding the code, and one
    scratch buffer per thread (reused across calls; a lock keeps concurrent calls from sharing them)."""

    def __init__(self, engine, address: int, kernel: ir.Kernel, obj: bytes):
        self.engine = engine  # keeps the machine code mapped while the launcher lives
        self.kernel_name = kernel.name
        self.num_params = len(kernel.params)
        self.num_blocks = prod(grid_sizes(kernel))
        self.scratch_bytes = scratch_layout(kernel).size
        argtypes = [ctypes.c_void_p] * self.num_params + [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        self.cfunc = ctypes.CFUNCTYPE(None, *argtypes)(address)
        self.object_size = len(obj)
        self._scratch: list = []
        self._lock = threading.Lock()
        self.core_s = None  # core time of the last run (all threads): a small grid's next run stays inline

    def scratch(self, count: int) -> list:
        while len(self._scratch) < count:
            raw = np.empty(self.scratch_bytes + ALIGN, dtype=np.uint8)
            start = -raw.ctypes.data % ALIGN
            self._scratch.append((raw, raw.ctypes.data + start))
        return [addr for _, addr in self._scratch[:count]]

    def __call__(self, *arrays):
        if len(arrays) != self.num_params:
            raise TilecArgumentError(f"{self.kernel_name} takes {self.num_params} tensors, got {len(arrays)}")
        ptrs = [a.__array_interface__["data"][0] for a in arrays]
        threads = max(1, min(settings.num_threads, self.num_blocks))
        if self.core_s is not None and self.core_s < INLINE_BELOW_S:
            threads = 1
        with self._lock:
            scratch = self.scratch(threads)
            start = time.perf_counter()
            if threads == 1:
                self.cfunc(*ptrs, 0, self.num_blocks, scratch[0])
                self.core_s = time.perf_counter() - start
                return
            # Threads take chunks of blocks from a shared counter instead of one fixed slice each: on cores shared
            # with other processes (or another library's spinning threads) a static split waits for the slowest.
            chunks = min(self.num_blocks, threads * CHUNKS_PER_THREAD)
            bounds = [self.num_blocks * c // chunks for c in range(chunks + 1)]
            taken = itertools.count()  # next() on it is atomic under the GIL

            def work(scratch_ptr):
                c = next(taken)
                while c < chunks:
                    self.cfunc(*ptrs, bounds[c], bounds[c + 1], scratch_ptr)
                    c = next(taken)

            pool = worker_pool(threads - 1)
            keep_workers_off_caller_cpu()
            futures = [pool.submit(work, scratch[t]) for t in range(1, threads)]
            work(scratch[0])  # the caller's thread works too
            # its own share of the work, times the threads: the core time, without the wait for the workers
            self.core_s = (time.perf_counter() - start) * threads
            for f in futures:
                f.result()


def load(obj: bytes, kernel: ir.Kernel) -> Launcher:
    """Load object code produced by `compile_object(lower(kernel))` and return its launcher."""
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), new_target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    address = engine.get_function_address(symbol_name(kernel))
    if not address:
        raise TilecLoweringError(f"{kernel.name}: symbol {symbol_name(kernel)} missing from the object code")
    return Launcher(engine, address, kernel, obj)
