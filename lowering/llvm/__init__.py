"""LLVM backend (CPU) via llvmlite: `lower` (IR -> LLVM IR text), `compile_object` (optimise, emit host object
code), `load` (object code -> launcher that runs the grid on `settings.num_threads` threads)."""
from .jit import compile_object, load
from .lower import lower

#: block sizes for an fp32 matmul on the host CPU (chosen with benchmarks/cpu_gemm.py): the shared tiles, the
#: accumulator and gemm's packed B panel take 448 KiB of per-thread scratch, inside a 1 MiB L2.
CPU_GEMM_CONFIG = {"block_m": 128, "block_n": 256, "block_k": 128, "num_stages": 2}

__all__ = ["lower", "compile_object", "load", "CPU_GEMM_CONFIG"]
