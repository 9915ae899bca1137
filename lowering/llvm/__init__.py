"""LLVM backend (CPU) via llvmlite: `lower` (IR -> LLVM IR text), `compile_object` (optimise, emit host object
code), `load` (object code -> launcher that runs the grid on `settings.num_threads` threads)."""
from .jit import compile_object, load
from .lower import lower

#: block sizes for an fp32 matmul on the host CPU (chosen with benchmarks/cpu_gemm.py): the shared tiles, the
#: accumulator and gemm's packed B panel take 640 KiB of per-thread scratch, inside a 1 MiB L2. A taller block_m
#: repacks each B tile for more rows. 2026-11-29, 2-core EPYC Zen 4 VM, one thread, GF per CPU-second, tilec vs
#: NumPy: 128x256x128 98/100 (1024^3), 87/103 (2048^3); 256x256x128 95-98/100, 94-96/102. block_m 384 or 224
#: (not dividing 1024/2048: the last row of blocks is padded) and block_k 256 were slower.
CPU_GEMM_CONFIG = {"block_m": 256, "block_n": 256, "block_k": 128, "num_stages": 2}

__all__ = ["lower", "compile_object", "load", "CPU_GEMM_CONFIG"]
