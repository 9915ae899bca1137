"""LLVM backend (CPU) via llvmlite: `lower` (IR -> LLVM IR text), `compile_object` (optimise, emit host object
code), `load` (object code -> launcher that runs the grid on `settings.num_threads` threads)."""
from .jit import compile_object, load
from .lower import lower

#: block sizes for an fp32 matmul on the host CPU (chosen with benchmarks/cpu_gemm.py): the shared tiles, the
#: accumulator and gemm's packed B panel take 640 KiB of per-thread scratch, inside a 1 MiB L2. A taller block_m
#: repacks each B tile for more rows. 2026-11-29, 2-core EPYC Zen 4 VM, idle machine, 2 threads, best GF/s, tilec
#: vs NumPy: 1024^3 128x256x128 186 / 256x256x128 191 / NumPy 194; 2048^3 179 / 194 / 205. 512x128x128 was within
#: 2% of 256x256x128; block_m 224 or 384 (not dividing 1024/2048: the last row of blocks is padding) were slower.
CPU_GEMM_CONFIG = {"block_m": 256, "block_n": 256, "block_k": 128, "num_stages": 2}

__all__ = ["lower", "compile_object", "load", "CPU_GEMM_CONFIG"]
