"""Triton backend: generated source run under Triton's interpreter on torch CPU tensors, against NumPy float64;
where Triton's NVIDIA compiler is installed, the same source is also compiled for sm_90 (no GPU needed)."""
import json
import os
import subprocess
import sys

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")

import tilec  # noqa: E402
import tilec.language as T  # noqa: E402
from tilec.errors import TilecLoweringError  # noqa: E402
from tilec.lowering.triton import load, lower  # noqa: E402

RNG = np.random.default_rng(0)


@tilec.kernel
def matmul(A: T.Tensor[("M", "K"), "float32"], B: T.Tensor[("K", "N"), "float32"],
           C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 32, block_n: int = 32,
           block_k: int = 16, num_stages: int = 2):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_m, block_k), A.dtype)
        b = T.alloc_shared((block_k, block_n), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
            T.copy(A[by * block_m, k * block_k], a)
            T.copy(B[k * block_k, bx * block_n], b)
            T.gemm(a, b, acc)
        T.copy(acc, C[by * block_m, bx * block_n])


@tilec.kernel
def matmul_half(A: T.Tensor[("M", "K"), "float16"], B: T.Tensor[("K", "N"), "float16"],
                C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 32, block_n: int = 32, block_k: int = 16):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_m, block_k), A.dtype)
        b = T.alloc_shared((block_k, block_n), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=3):
            T.copy(A[by * block_m, k * block_k], a)
            T.copy(B[k * block_k, bx * block_n], b)
            T.gemm(a, b, acc)
        T.copy(acc, C[by * block_m, bx * block_n])


@tilec.kernel
def matmul_tt(A: T.Tensor[("K", "M"), "float32"], B: T.Tensor[("N", "K"), "float32"],
              C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 16, block_n: int = 32, block_k: int = 16):
    """C = A^T @ B^T."""
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_k, block_m), A.dtype)
        b = T.alloc_shared((block_n, block_k), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.serial(T.ceildiv(K, block_k)):
            T.copy(A[k * block_k, by * block_m], a)
            T.copy(B[bx * block_n, k * block_k], b)
            T.gemm(a, b, acc, transpose_a=True, transpose_b=True)
        T.copy(acc, C[by * block_m, bx * block_n])


@tilec.kernel
def softmax(X: T.Tensor[("M", "N"), "float32"], Y: T.Tensor[("M", "N"), "float32"], *, block_m: int = 4):
    with T.Kernel(T.ceildiv(M, block_m)) as bx:
        x = T.alloc_fragment((block_m, N), "float32")
        m = T.alloc_fragment((block_m,), "float32")
        s = T.alloc_fragment((block_m,), "float32")
        T.copy(X[bx * block_m, 0], x, pad=-T.infinity("float32"))
        T.reduce_max(x, m, dim=1)
        for i, j in T.Parallel(block_m, N):
            x[i, j] = T.exp(x[i, j] - m[i])
        T.reduce_sum(x, s, dim=1)
        for i, j in T.Parallel(block_m, N):
            x[i, j] = x[i, j] / s[i]
        T.copy(x, Y[bx * block_m, 0])


@tilec.kernel
def gather_rows(X: T.Tensor[("V", "D"), "float32"], idx: T.Tensor[("R",), "int32"],
                Out: T.Tensor[("R", "D"), "float32"], *, block_d: int = 8):
    """Out[r, :] = 2 * X[idx[r], :] via a scalar index load and a masked Parallel gather."""
    with T.Kernel(R, T.ceildiv(D, block_d)) as (r, bd):
        row = idx[r]
        for j in T.Parallel(block_d):
            Out[r, bd * block_d + j] = X[row, bd * block_d + j] * 2.0


@tilec.kernel
def gather_tile(X: T.Tensor[("V", "D"), "float32"], idx: T.Tensor[("R",), "int32"],
                Out: T.Tensor[("R", "D"), "float32"], *, block_r: int = 4):
    """The index tensor as a tile: rows gathered by a per-lane index."""
    with T.Kernel(T.ceildiv(R, block_r)) as br:
        ids = T.alloc_fragment((block_r,), "int32")
        T.copy(idx[br * block_r], ids)
        for i, j in T.Parallel(block_r, D):
            Out[br * block_r + i, j] = X[ids[i], j]


@tilec.kernel
def row_sums(X: T.Tensor[("R", "C"), "float32"], out: T.Tensor[("R",), "float32"]):
    """A loop-carried scalar (alloc_var) and an If."""
    with T.Kernel(R) as r:
        total = T.alloc_var("float32", init=0.0)
        for c in range(C):
            total = total + X[r, c]
        if r % 2 == 0:
            out[r] = total
        else:
            out[r] = -total


@tilec.kernel
def bad_tile_read(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"]):
    with T.Kernel(1) as bx:
        x = T.alloc_fragment((16,), "float32")
        T.copy(X[0], x)
        for i in T.Parallel(16):
            Y[i] = x[15 - i]


def run(kernel, dims, config, *arrays):
    bound = kernel.specialize(dims, config, "triton")
    source = lower(bound)
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    load(source, bound)(*tensors)
    return [t.numpy() for t in tensors], source


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (37, 53, 29), (130, 70, 33)])
def test_matmul_fp32(m, n, k):
    a, b = rand(m, k), rand(k, n)
    (_, _, c), _ = run(matmul, {"M": m, "N": n, "K": k}, {}, a, b, np.zeros((m, n), np.float32))
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("num_stages", [1, 3])
def test_pipelined_stages_and_block_48(num_stages):
    m, n, k = 50, 40, 37
    a, b = rand(m, k), rand(k, n)
    config = {"block_m": 48, "block_k": 16, "num_stages": num_stages}
    (_, _, c), source = run(matmul, {"M": m, "N": n, "K": k}, config, a, b, np.zeros((m, n), np.float32))
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    assert f"tl.range(0, 3, 1, num_stages={num_stages})" in source
    assert "tl.arange(0, 64)" in source and "< 48)" in source  # padded to a power of two, masked back to 48


def test_source_pipelined_loop_reaches_tl_range():
    source = lower(matmul.specialize({"M": 64, "N": 64, "K": 64}, {"num_stages": 3}, "triton"))
    assert "@triton.jit\ndef matmul(A, B, C):" in source
    assert "tl.range(" in source and "num_stages=3" in source
    assert 'input_precision="ieee"' in source


def test_transposed_operands():
    m, n, k = 20, 33, 21
    a, b = rand(k, m), rand(n, k)
    (_, _, c), source = run(matmul_tt, {"M": m, "N": n, "K": k}, {}, a, b, np.zeros((m, n), np.float32))
    np.testing.assert_allclose(c, a.T.astype(np.float64) @ b.T, rtol=1e-4, atol=1e-4)
    assert "tl.trans(" in source


def test_fp16_inputs_accumulate_fp32():
    m, n, k = 33, 17, 40
    a, b = rand(m, k, dtype=np.float16), rand(k, n, dtype=np.float16)
    (_, _, c), _ = run(matmul_half, {"M": m, "N": n, "K": k}, {}, a, b, np.zeros((m, n), np.float32))
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("m,n", [(10, 37), (1, 1)])
def test_softmax_non_power_of_two_rows(m, n):
    x = rand(m, n) * 3
    (_, y), source = run(softmax, {"M": m, "N": n}, {}, x, np.zeros((m, n), np.float32))
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    if n == 37:
        assert "tl.max(" in source and "tl.sum(" in source and "-float(\"inf\")" in source


def test_gather_by_int32_index():
    x = rand(11, 13)
    idx = RNG.integers(0, 11, size=7).astype(np.int32)
    (_, _, out), _ = run(gather_rows, {"V": 11, "D": 13, "R": 7}, {}, x, idx, np.zeros((7, 13), np.float32))
    np.testing.assert_allclose(out, 2.0 * x[idx], rtol=0, atol=0)
    (_, _, out), _ = run(gather_tile, {"V": 11, "D": 13, "R": 7}, {}, x, idx, np.zeros((7, 13), np.float32))
    np.testing.assert_allclose(out, x[idx], rtol=0, atol=0)


def test_scalar_loop_and_if():
    x = rand(5, 6)
    (_, out), _ = run(row_sums, {"R": 5, "C": 6}, {}, x, np.zeros(5, np.float32))
    sign = np.where(np.arange(5) % 2 == 0, 1.0, -1.0)
    np.testing.assert_allclose(out, sign * x.astype(np.float64).sum(axis=1), rtol=1e-5, atol=1e-5)


def test_reading_a_tile_at_a_computed_index_is_refused_with_location():
    with pytest.raises(TilecLoweringError, match=r"test_triton_backend.py:\d+.*T.Parallel"):
        lower(bad_tile_read.specialize({"N": 16}, {}, "triton"))


GPU_IMPORT_SCRIPT = """
import json, os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton  # imported for the GPU: its library functions become JITFunctions
sys.path.insert(0, sys.argv[1])
import numpy as np
import test_triton_backend as t
out = {}
x = t.rand(10, 37)
(_, y), _ = t.run(t.softmax, {"M": 10, "N": 37}, {}, x, np.zeros((10, 37), np.float32))
e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
out["softmax_error"] = float(np.abs(y - e / e.sum(axis=1, keepdims=True)).max())
out["ttgir"] = {name: t.compile_sm90(getattr(t, name), dims, config, warps) for name, dims, config, warps in [
    ("matmul_half", {"M": 256, "N": 256, "K": 256}, {"block_m": 128, "block_n": 128, "block_k": 32}, 8),
    ("softmax", {"M": 10, "N": 37}, {}, 4),
    ("gather_tile", {"V": 11, "D": 13, "R": 7}, {}, 4),
    ("row_sums", {"R": 5, "C": 6}, {}, 4)]}
print(json.dumps(out))
"""


def compile_sm90(kernel, dims, config, num_warps=4):
    """Triton's TTGIR for an H100 (sm_90), compiled on this machine: the NVIDIA backend ships with triton."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime.jit import JITFunction

    from tilec.lowering.triton_launch import import_file, interpret_mode, write_source

    bound = kernel.specialize(dims, config, "triton")
    fn = getattr(import_file(write_source(lower(bound), bound.name)), bound.name)
    types = {"float32": "*fp32", "float16": "*fp16", "int32": "*i32"}
    signature = {p.name: types[p.dtype] for p in bound.params}
    aligned = {(i,): [["tt.divisibility", 16]] for i in range(len(signature))}  # as Triton's launcher specialises
    with interpret_mode(False):
        compiled = triton.compile(triton.compiler.ASTSource(JITFunction(getattr(fn, "fn", fn)), signature, {},
                                                            aligned),
                                  target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})
    return compiled.asm["ttgir"]


@pytest.fixture(scope="module")
def gpu_import_run():
    """A fresh process that imports triton for the GPU (Triton fixes part of its mode at import), then runs a
    kernel on CPU tensors and compiles the test kernels for sm_90."""
    pytest.importorskip("triton.backends.nvidia.compiler")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", GPU_IMPORT_SCRIPT, os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cpu_tensors_use_the_interpreter_whatever_triton_was_imported_for(gpu_import_run):
    assert gpu_import_run["softmax_error"] < 1e-6


def test_compiles_for_h100_and_reaches_the_pipeliner(gpu_import_run):
    ttgir = gpu_import_run["ttgir"]["matmul_half"]
    assert "async_copy_global_to_local" in ttgir or "async_tma_copy" in ttgir  # multi-buffered loads
    assert "warp_group_dot" in ttgir  # Hopper wgmma
    for name in ("softmax", "gather_tile", "row_sums"):
        assert "tt.func public @" + name in gpu_import_run["ttgir"][name]
