"""`gemm(a, b)`: C = op(a) @ op(b) written in the DSL, one kernel per transpose combination.

The kernels read fp16/bf16/fp32/fp64 tiles, accumulate in float32 (float64 for float64 inputs) and cast on the final
store to the output dtype. Their dtypes are fixed per signature, so `gemm_kernel` builds (and caches) one kernel per
(transposes, input dtype, output dtype) from the four bodies below.
"""
# no `from __future__ import annotations`: the T.Tensor annotations must be evaluated at `def` time, with the
# factory's dtype arguments in scope
import functools

import tilec
import tilec.language as T

from ..errors import TilecArgumentError
from ..settings import settings
from ._host import (DENSE_DTYPES, array_dtype, backend_for, canonical_dtype, cdiv, contiguous, empty, even_part,
                    is_torch)

#: default block sizes per place the kernel runs: "triton" is a CUDA GPU (128x128x64 tiles, 3 stages; `gemm` widens
#: them for 2-byte dtypes and narrows them for fp32/fp64, whose exact dots run on the CUDA cores); "interpreter" is
#: Triton's interpreter on torch CPU tensors, where every block is a few NumPy calls, so small tiles keep it quick.
#: The CPU's come from the LLVM backend's tuning (tilec.lowering.llvm.CPU_GEMM_CONFIG). Keywords to `gemm` override.
DEFAULT_CONFIG = {
    "triton": dict(block_m=128, block_n=128, block_k=64, num_stages=3),
    "interpreter": dict(block_m=32, block_n=32, block_k=32, num_stages=1),
}


def default_config(backend: str) -> dict:
    if backend == "llvm":
        from tilec.lowering.llvm import CPU_GEMM_CONFIG

        return dict(CPU_GEMM_CONFIG)
    return dict(DEFAULT_CONFIG[backend])


def fit_cpu_blocks(config: dict, m: int, n: int, threads: int) -> dict:
    """The CPU's default block_m/block_n fitted to an (m, n) output: each dim split evenly into parts no larger than
    the default (M=300 takes two 160-row blocks, not two of 256 that are 41% padding), then halved until there are
    two blocks per thread where the matrix allows (a 256x256 output would otherwise run on one core)."""
    bm, bn = even_part(m, config["block_m"], 16), even_part(n, config["block_n"], 32)
    while cdiv(m, bm) * cdiv(n, bn) < 2 * threads:
        if bm >= bn and bm > 16:
            bm = even_part(bm, bm // 2, 16)
        elif bn > 32:
            bn = even_part(bn, bn // 2, 32)
        else:
            break
    return {**config, "block_m": bm, "block_n": bn}


def _gemm_nn(in_dtype, out_dtype, acc_dtype):
    @tilec.kernel
    def gemm_nn(A: T.Tensor[("M", "K"), in_dtype], B: T.Tensor[("K", "N"), in_dtype],
                C: T.Tensor[("M", "N"), out_dtype], *, block_m: int = 64, block_n: int = 64, block_k: int = 32,
                num_stages: int = 2):
        """C = A @ B"""
        with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
            a = T.alloc_shared((block_m, block_k), A.dtype)
            b = T.alloc_shared((block_k, block_n), B.dtype)
            acc = T.alloc_fragment((block_m, block_n), acc_dtype)
            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
                T.copy(A[by * block_m, k * block_k], a)
                T.copy(B[k * block_k, bx * block_n], b)
                T.gemm(a, b, acc)
            T.copy(acc, C[by * block_m, bx * block_n])
    return gemm_nn


def _gemm_tn(in_dtype, out_dtype, acc_dtype):
    @tilec.kernel
    def gemm_tn(A: T.Tensor[("K", "M"), in_dtype], B: T.Tensor[("K", "N"), in_dtype],
                C: T.Tensor[("M", "N"), out_dtype], *, block_m: int = 64, block_n: int = 64, block_k: int = 32,
                num_stages: int = 2):
        """C = A^T @ B"""
        with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
            a = T.alloc_shared((block_k, block_m), A.dtype)
            b = T.alloc_shared((block_k, block_n), B.dtype)
            acc = T.alloc_fragment((block_m, block_n), acc_dtype)
            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
                T.copy(A[k * block_k, by * block_m], a)
                T.copy(B[k * block_k, bx * block_n], b)
                T.gemm(a, b, acc, transpose_a=True)
            T.copy(acc, C[by * block_m, bx * block_n])
    return gemm_tn


def _gemm_nt(in_dtype, out_dtype, acc_dtype):
    @tilec.kernel
    def gemm_nt(A: T.Tensor[("M", "K"), in_dtype], B: T.Tensor[("N", "K"), in_dtype],
                C: T.Tensor[("M", "N"), out_dtype], *, block_m: int = 64, block_n: int = 64, block_k: int = 32,
                num_stages: int = 2):
        """C = A @ B^T"""
        with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
            a = T.alloc_shared((block_m, block_k), A.dtype)
            b = T.alloc_shared((block_n, block_k), B.dtype)
            acc = T.alloc_fragment((block_m, block_n), acc_dtype)
            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
                T.copy(A[by * block_m, k * block_k], a)
                T.copy(B[bx * block_n, k * block_k], b)
                T.gemm(a, b, acc, transpose_b=True)
            T.copy(acc, C[by * block_m, bx * block_n])
    return gemm_nt


def _gemm_tt(in_dtype, out_dtype, acc_dtype):
    @tilec.kernel
    def gemm_tt(A: T.Tensor[("K", "M"), in_dtype], B: T.Tensor[("N", "K"), in_dtype],
                C: T.Tensor[("M", "N"), out_dtype], *, block_m: int = 64, block_n: int = 64, block_k: int = 32,
                num_stages: int = 2):
        """C = A^T @ B^T"""
        with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
            a = T.alloc_shared((block_k, block_m), A.dtype)
            b = T.alloc_shared((block_n, block_k), B.dtype)
            acc = T.alloc_fragment((block_m, block_n), acc_dtype)
            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
                T.copy(A[k * block_k, by * block_m], a)
                T.copy(B[bx * block_n, k * block_k], b)
                T.gemm(a, b, acc, transpose_a=True, transpose_b=True)
            T.copy(acc, C[by * block_m, bx * block_n])
    return gemm_tt


_BODIES = {(False, False): _gemm_nn, (True, False): _gemm_tn, (False, True): _gemm_nt, (True, True): _gemm_tt}


@functools.lru_cache(maxsize=None)
def gemm_kernel(trans_a: bool, trans_b: bool, in_dtype: str, out_dtype: str):
    """The `@tilec.kernel` computing op(A) @ op(B) for these transposes and dtypes."""
    acc_dtype = "float64" if in_dtype == "float64" else "float32"
    return _BODIES[bool(trans_a), bool(trans_b)](in_dtype, out_dtype, acc_dtype)


def gpu_tiles(defaults: dict, in_dtype: str, m: int, n: int, sms: int) -> dict:
    """The Triton backend's default tiles for an (m, n) output of `in_dtype` on a GPU of `sms` SMs."""
    tiles = dict(defaults)
    if in_dtype in ("float32", "float64"):
        # exact fp32/fp64 dots run on the CUDA cores, each thread holding its share of the operand tiles in
        # registers: 128x128x64 tiles spill (ptxas: 22 KB per thread) and ran fp32 at 0.29 ms for 128^3 and 2.5 ms
        # for 1000^3 on an H200, 128x64x16 (8 warps, no spill) at 0.015 and 0.067 ms (torch.mm: 0.016, 0.063) and
        # 3.9 ms for 4096^3 (torch 2.7, the spilling tiles 3.2): results/h200/gemm_fp32_2026-12-02.json. fp64 dots
        # are a broadcast product summed over K (lowering/triton_tiles.py) whose [M, K, N] tile sits in registers:
        # 32x32x8 tiles keep it at 64 doubles per thread (correctness only; fp64 speed is not a goal here)
        if in_dtype == "float32":
            tiles.update(block_m=128, block_n=64, block_k=16, num_stages=3)
        else:
            tiles.update(block_m=32, block_n=32, block_k=8, num_stages=2)
    else:
        # 2-byte tiles leave room for 128x256 (3 stages: 144 KiB); measured on an H100, 4096^3 fp16, host-call
        # time included: 0.199 ms against 0.250 ms for 128x128x64
        tiles["block_n"] = 256
        if cdiv(m, tiles["block_m"]) * cdiv(n, 256) < sms // 2:
            # 128x256 tiles would fill under half the SMs (a decode-sized M): narrower tiles over a longer K step.
            # H200, bf16, N = K = 4096, M = 1/16/64/128/256/512: 24.8/25.4/24.9/26.4/27.4/46.0 us against 50.8/
            # 44.2/45.3/47.7/52.1/49.3 for 128x256x64 (torch.matmul 17-29 us; results/h200/skinny_ops_2026-12-02
            # .json). Fuller grids (2048^2: 128 tiles) keep 128x256, not measured against the narrow tiles
            tiles.update(block_n=64, block_k=128, num_stages=4)
    return tiles


def gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, out_dtype=None, target: str | None = None,
         config=None, tune: str | None = None, **consts):
    """op(a) @ op(b) as a new array of a's kind (NumPy -> NumPy; torch -> torch on a's device), where op
    transposes when trans_a/trans_b is set. out_dtype defaults to the input dtype; `target` and config keywords
    (block_m, block_n, block_k, num_stages) mean what they mean on any kernel call. `config="auto"` takes the cost
    model's pick for this shape instead of the op's default tiles (no measurement; keywords given are held), and
    `tune="measure"` times the model's top 8 once per shape bucket."""
    for name, x in (("a", a), ("b", b)):
        if len(getattr(x, "shape", ())) != 2:
            raise TilecArgumentError(f"gemm: '{name}' must be a 2-D array, got shape {tuple(getattr(x, 'shape', ()))}")
    if is_torch(a) != is_torch(b):
        raise TilecArgumentError(f"gemm: 'a' and 'b' must both be NumPy arrays or both torch tensors, got "
                                 f"{type(a).__name__} and {type(b).__name__}")
    m, k = a.shape[::-1] if trans_a else a.shape
    k_b, n = b.shape[::-1] if trans_b else b.shape
    if k != k_b:
        raise TilecArgumentError(
            f"gemm: inner dimensions differ: 'a' has shape {tuple(a.shape)}{' (transposed)' if trans_a else ''} "
            f"so K={k}, 'b' has shape {tuple(b.shape)}{' (transposed)' if trans_b else ''} so K={k_b}; "
            f"op(a) must be (M, K) and op(b) (K, N)")
    in_dtype = array_dtype("gemm", "a", a)
    if array_dtype("gemm", "b", b) != in_dtype:
        raise TilecArgumentError(f"gemm: 'a' is {in_dtype} but 'b' is {array_dtype('gemm', 'b', b)}; cast one so "
                                 f"both match")
    if in_dtype not in DENSE_DTYPES:
        raise TilecArgumentError(f"gemm: dtype {in_dtype} of 'a' and 'b' is not one of {', '.join(DENSE_DTYPES)}")
    out_dtype = in_dtype if out_dtype is None else canonical_dtype("gemm", out_dtype)
    if out_dtype not in DENSE_DTYPES:
        raise TilecArgumentError(f"gemm: out_dtype={out_dtype} is not one of {', '.join(DENSE_DTYPES)}")
    c = empty(a, (m, n), out_dtype)
    if m == 0 or n == 0:
        return c
    if k == 0:  # an empty sum: no kernel reads anything
        c[...] = 0
        return c
    kernel = gemm_kernel(trans_a, trans_b, in_dtype, out_dtype)
    if config is not None or tune is not None:  # the kernel call checks the values and asks the cost model
        kernel(contiguous(a), contiguous(b), c, target=target, config=config, tune=tune, **consts)
        return c
    backend = backend_for(a, target)
    defaults = default_config(backend)
    if backend == "llvm":
        defaults = fit_cpu_blocks(defaults, m, n, settings.num_threads)
    if backend == "triton":
        from tilec.lowering.triton_launch import sm_count

        defaults = gpu_tiles(defaults, in_dtype, m, n, sm_count(a.device.index or 0))
    kernel(contiguous(a), contiguous(b), c, target=target, **{**defaults, **consts})
    return c

