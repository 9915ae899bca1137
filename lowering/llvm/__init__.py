"""LLVM backend (CPU) via llvmlite: `lower` (IR -> LLVM IR text), `compile_object` (optimise, emit host object
code), `load` (object code -> launcher that runs the grid on `settings.num_threads` threads)."""
from .jit import compile_object, load
from .lower import lower

#: block sizes for an fp32 matmul on the host CPU (chosen with benchmarks/cpu_gemm.py): the shared tiles, the
#: accumulator and gemm's packed B panel take 640 KiB of per-thread scratch, inside a 1 MiB L2; a tall block_m
#: repacks each B tile for many rows. 2026-11-29, 2-core EPYC Zen 4 VM, 2 threads, best GF/s in one run, quiet:
#: 1024^3: 512x128x128 194, 256x256x128 189, 128x256x128 186, NumPy 192; 2048^3: 195, 189, 175, NumPy 200.
#: 512x128 beat 256x256 in 8 of 10 such runs, by 2-5%. block_m 224 or 384 (not dividing 1024/2048: the last row
#: of blocks is padding) were slower. tilec.ops.gemm shrinks the blocks for small or awkward shapes.
CPU_GEMM_CONFIG = {"block_m": 512, "block_n": 128, "block_k": 128, "num_stages": 2}

__all__ = ["lower", "compile_object", "load", "CPU_GEMM_CONFIG"]
