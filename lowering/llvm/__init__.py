"""LLVM backend (CPU) via llvmlite: `lower` (IR -> LLVM IR text), `compile_object` (optimise, emit host object
code), `load` (object code -> launcher that runs the grid on `settings.num_threads` threads)."""
from .jit import compile_object, load
from .lower import lower

#: block sizes for an fp32 matmul on the host CPU (chosen with benchmarks/cpu_gemm.py). 2026-12-02, 2-core Sapphire
#: Rapids VM (2 MB L2 per core), 2 threads, ratio to NumPy in the same runs: 512x128x128 (2 stages) 0.78-0.88 at
#: 1024^3 and 0.81-0.86 at 2048^3; 256x512x64 (1 stage) 0.92-0.96 and 0.90-0.95. Each block re-reads its A rows
#: and B columns from L3 for its whole K loop (each copy of A is made N/block_n times): a single-thread split
#: (1024^3) had the copies at 4.3 ms of 17-18 ms, the gemm at 12.7 ms, and them not overlapping, so wider
#: blocks that copy less win; the scratch (acc 512 KiB, tiles and packed B 320 KiB) stays inside L2. 1 stage: the
#: software prefetch of the next tiles (a burst of 5120 lines, or spread over the gemm's micro-kernels) made no
#: run faster and some 5-8% slower. 512x512x64, 512x256x64, 512x256x128: 0.86-0.91. tilec.ops.gemm shrinks the
#: blocks for small or awkward shapes (300^3, 1500x700x900, 4096x64x1024 and 64x4096x1024: as fast or faster).
CPU_GEMM_CONFIG = {"block_m": 256, "block_n": 512, "block_k": 64, "num_stages": 1}

__all__ = ["lower", "compile_object", "load", "CPU_GEMM_CONFIG"]
