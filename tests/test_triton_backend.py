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


@tilec.kernel
def scale_batched(X: T.Tensor[("B", "M", "N"), "float32"], Y: T.Tensor[("B", "M", "N"), "float32"], *,
                  block_m: int = 8, block_n: int = 16):
    """2-D tiles of 3-D tensors: descriptors with a unit leading box dim."""
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m), B) as (bx, by, bz):
        x = T.alloc_fragment((block_m, block_n), "float32")
        T.copy(X[bz, by * block_m, bx * block_n], x)
        for i, j in T.Parallel(block_m, block_n):
            x[i, j] = x[i, j] * 2.0
        T.copy(x, Y[bz, by * block_m, bx * block_n])


def run(kernel, dims, config, *arrays, **options):
    bound = kernel.specialize(dims, config, "triton")
    source = lower(bound, **options)
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


def test_descriptors_for_aligned_gemm_pointers_for_unaligned():
    aligned = lower(matmul_half.specialize({"M": 64, "N": 64, "K": 64}, {}, "triton"))
    for name in ("A", "B", "C"):
        assert f"{name}_desc = tl.make_tensor_descriptor({name}, " in aligned
    assert "tl.load(" not in aligned and "tl.store(" not in aligned
    assert "A_desc.load([by * 32, k * 16])" in aligned and "C_desc.store([by * 32, bx * 32], acc)" in aligned
    # K=33 fp16: A's rows are 66 bytes, not a multiple of 16, so A keeps the pointer path; B's rows are 128
    unaligned = lower(matmul_half.specialize({"M": 64, "N": 64, "K": 33}, {}, "triton"))
    assert "A_desc" not in unaligned and "tl.load(A + " in unaligned and "B_desc.load(" in unaligned
    assert "make_tensor_descriptor" not in lower(matmul_half.specialize({"M": 64, "N": 64, "K": 64}, {}, "triton"),
                                                 descriptors=False)


@pytest.mark.parametrize("m,n,k,descriptors", [(130, 72, 40, 3), (5, 8, 8, 0)])
def test_descriptor_copies_zero_fill_and_clip(m, n, k, descriptors):
    """TMA boxes past the tensor's edge: loads read zeros, stores leave the memory beyond the edge alone. A box
    twice the tensor or more (5 x 8 x 8 on 64-wide tiles) takes masked pointer loads and stores instead."""
    a, b = rand(m, k, dtype=np.float16), rand(k, n, dtype=np.float16)
    (_, _, c), source = run(matmul_half, {"M": m, "N": n, "K": k}, {}, a, b, np.zeros((m, n), np.float32))
    assert source.count("make_tensor_descriptor") == descriptors
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=2e-3, atol=2e-3)


def test_box_larger_than_the_tensor_takes_pointer_loads():
    # M = 16 rows on 256-row tiles: A's and C's boxes would be 15/16 out of bounds; B (4096 x 4096) keeps TMA
    from tilec.ops.gemm import gemm_kernel

    k = gemm_kernel(False, False, "bfloat16", "bfloat16")
    source = lower(k.specialize({"M": 16, "N": 4096, "K": 4096},
                                {"block_m": 256, "block_n": 32, "block_k": 64, "num_stages": 3}, "triton"))
    assert "B_desc.load(" in source and "A_desc" not in source and "C_desc" not in source
    assert "tl.load(A + " in source


def test_descriptor_of_a_3d_tensor_with_unit_leading_box():
    x = rand(3, 10, 12)
    (_, y), source = run(scale_batched, {"B": 3, "M": 10, "N": 12}, {}, x, np.zeros_like(x))
    assert "block_shape=[1, 8, 16]" in source and "tl.reshape(" in source
    np.testing.assert_allclose(y, 2 * x, rtol=0, atol=0)


@pytest.mark.parametrize("warp_specialize", [False, True])
def test_persistent_grid_strides_over_blocks(warp_specialize):
    m, n, k = 100, 70, 40  # 4 x 3 blocks over 3 interpreted programs
    a, b = rand(m, k), rand(k, n)
    (_, _, c), source = run(matmul, {"M": m, "N": n, "K": k}, {}, a, b, np.zeros((m, n), np.float32),
                            persistent=True, warp_specialize=warp_specialize)
    assert "NUM_SMS: tl.constexpr" in source and "tl.range(tl.program_id(0), 12, NUM_SMS, flatten=True" in source
    assert ("warp_specialize=True" in source) == warp_specialize
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_persistent_only_for_pipelined_grids_larger_than_the_sms():
    big, small = {"M": 512, "N": 512, "K": 64}, {"M": 256, "N": 256, "K": 64}  # 256 and 64 blocks of 32x32
    assert "NUM_SMS" in lower(matmul.specialize(big, {}, "triton"))
    assert "NUM_SMS" not in lower(matmul.specialize(small, {}, "triton"))
    assert "NUM_SMS" not in lower(matmul_tt.specialize(big, {}, "triton"))  # no pipelined loop


def test_no_persistent_grid_when_the_loop_length_depends_on_the_block():
    from tilec.ops.attention import flash_attention_kernel

    kernel = flash_attention_kernel("float16")
    dims = {"B": 2, "HQ": 8, "HKV": 8, "SQ": 1024, "SKV": 1024, "D": 64}
    config = {"block_m": 64, "block_n": 64, "num_stages": 2}
    assert "NUM_SMS" in lower(kernel.specialize(dims, {**config, "causal": False}, "triton"))
    # causal: block bx's key loop stops at its diagonal, so blocks are uneven and the hardware should deal them
    assert "NUM_SMS" not in lower(kernel.specialize(dims, {**config, "causal": True}, "triton"))


def test_persistent_loop_not_flattened_around_a_block_level_tile_load():
    from tilec.ops.attention import flash_attention_kernel

    specialized = flash_attention_kernel("float16").specialize(ATTENTION_DIMS, ATTENTION_CONFIG, "triton")
    source = lower(specialized)
    assert "Q_desc.load(" in source and "NUM_SMS" in source and "flatten" not in source
    # the pointer-load variant too (flattened, Triton 3.6 computed some rows wrong on an H200)
    source = lower(specialized, descriptors=False, persistent=True)
    assert "tl.load(Q" in source and "NUM_SMS" in source and "flatten" not in source
    assert "flatten=True" in lower(matmul.specialize({"M": 512, "N": 512, "K": 64}, {}, "triton"))


def test_misaligned_base_address_falls_back_to_pointers(monkeypatch):
    from tilec.lowering import triton_launch

    made = []
    real = triton_launch.plain_function
    monkeypatch.setattr(triton_launch, "plain_function", lambda src, k: made.append(src) or real(src, k))
    m = n = k = 64  # at least half of every tile in bounds: TMA boxes
    a, b = rand(m, k), rand(k, n)
    bound = matmul.specialize({"M": m, "N": n, "K": k}, {}, "triton")
    flat = torch.zeros(m * k + 1)
    flat[1:] = torch.from_numpy(a.ravel())
    c = torch.zeros(m, n)
    load(lower(bound), bound)(flat[1:].view(m, k), torch.from_numpy(b), c)  # A starts 4 bytes into its buffer
    assert "make_tensor_descriptor" in made[0] and "make_tensor_descriptor" not in made[-1]
    np.testing.assert_allclose(c.numpy(), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


ATTENTION_DIMS = {"B": 2, "HQ": 16, "HKV": 4, "SQ": 2048, "SKV": 2048, "D": 64}
ATTENTION_CONFIG = {"block_m": 128, "block_n": 64, "num_stages": 2}

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
out["persistent_tma_ptx"] = t.compile_sm90(t.matmul_half, {"M": 2048, "N": 2048, "K": 2048},
                                           {"block_m": 128, "block_n": 128, "block_k": 64}, 8, "ptx")
from tilec.ops.attention import DEFAULT_CONFIG, flash_attention_kernel
out["persistent_attention_ptx"] = t.compile_sm90(flash_attention_kernel("float16"), t.ATTENTION_DIMS,
                                                 t.ATTENTION_CONFIG, 8, "ptx")
from tilec.ops.paged import paged_decode_kernel, paged_split_kernel
from tilec.ops.sparse import sparse_attention_kernel, sparse_mla_kernel, sparse_mla_split_kernel
from tilec.ops.moe import grouped_gemm_kernel, tile_schedule_kernel, zero_rows_kernel
paged_dims = {"NSEQ": 4, "HQ": 32, "D": 128, "NB": 64, "BS": 16, "HKV": 8, "MAXB": 16}
out["ops_ttgir"] = {name: t.compile_sm90(kernel, dims, config, warps) for name, kernel, dims, config, warps in [
    ("flash_causal", flash_attention_kernel("float16"), {**t.ATTENTION_DIMS, "D": 128},
     {**DEFAULT_CONFIG["triton"](128), "causal": True}, 8),
    ("paged_decode", paged_decode_kernel("float16"), paged_dims,
     {"group": 4, "pages_per_iter": 8, "num_stages": 4}, 4),
    ("paged_split", paged_split_kernel("float16"), {**paged_dims, "NSPLIT": 3},
     {"group": 4, "pages_per_split": 6, "pages_per_iter": 8, "num_stages": 4}, 4),
    ("sparse_mla", sparse_attention_kernel("float16"),
     {"S": 8, "H": 16, "D": 576, "N": 256, "HK": 1, "DV": 512, "TOPK": 128},
     {"group": 16, "block_h": 16, "chunk_stages": 3}, 4),
    ("sparse_mla_latent", sparse_mla_kernel("bfloat16"),
     {"S": 8, "H": 128, "D": 576, "N": 256, "HK": 1, "DV": 512, "TOPK": 128},
     {"group": 128, "block_h": 64, "block_n": 64, "num_stages": 2}, 8),
    ("sparse_mla_split", sparse_mla_split_kernel("bfloat16"),
     {"S": 8, "H": 16, "D": 576, "N": 256, "HK": 1, "DV": 512, "TOPK": 2048, "NSPLIT": 4},
     {"group": 16, "block_h": 16, "block_n": 64, "blocks_per_split": 8, "num_stages": 2}, 4),
    ("grouped_gemm", grouped_gemm_kernel("float16"), {"M": 256, "K": 256, "N": 256, "E": 4, "NT": 4},
     {"block_m": 32, "block_n": 128, "block_k": 128, "num_stages": 4, "spare_rows": True}, 4),
    ("grouped_gemm_main", grouped_gemm_kernel("bfloat16"), {"M": 32768, "K": 7168, "N": 2048, "E": 64, "NT": 256},
     {"block_m": 128, "block_n": 256, "block_k": 64, "num_stages": 3}, 8),
    ("grouped_gemm_rest", grouped_gemm_kernel("bfloat16"), {"M": 32768, "K": 7168, "N": 2048, "E": 64, "NT": 64},
     {"block_m": 128, "block_n": 256, "block_k": 64, "num_stages": 3, "spare_rows": True}, 8),
    ("moe_tile_schedule", tile_schedule_kernel(), {"E": 64, "NM": 32, "NR": 64}, {"block_m": 32, "rows": 1024}, 4),
    ("moe_zero_rows", zero_rows_kernel("bfloat16"), {"NR": 64, "M": 1000, "N": 2048}, {}, 4)]}
print(json.dumps(out))
"""


def compile_sm90(kernel, dims, config, num_warps=4, stage="ttgir"):
    """Triton's TTGIR (or PTX) for an H100 (sm_90), compiled on this machine: the NVIDIA backend ships with
    triton."""
    from tilec.lowering.triton_launch import compile_offline

    return compile_offline(kernel.specialize(dims, config, "triton"), num_warps).asm[stage]


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


def test_persistent_tma_gemm_compiles_to_bulk_tensor_copies_and_wgmma(gpu_import_run):
    ptx = gpu_import_run["persistent_tma_ptx"]
    assert "cp.async.bulk.tensor" in ptx  # TMA loads and the TMA store of C
    assert "wgmma.mma_async" in ptx
    attention = gpu_import_run["persistent_attention_ptx"]  # Q by TMA ahead of the K/V loop, in a persistent grid
    assert "cp.async.bulk.tensor" in attention and "wgmma.mma_async" in attention


def test_ops_with_their_gpu_configs_get_through_the_sm90_pipeliner(gpu_import_run):
    # the interpreter accepts code that Triton's GPU pipeliner rejects (Triton 3.6's failed on a branch inside a
    # pipelined attention loop, which 3.9 compiles): every LLM kernel, with the config its op uses on a GPU, must
    # compile for sm_90 with the Triton installed
    for name, ttgir in gpu_import_run["ops_ttgir"].items():
        assert "tt.func public @" in ttgir, name


def test_grouped_gemm_main_tiles_flatten_into_the_persistent_loop(gpu_import_run):
    # grouped_gemm's main launch (constant K loop) must come out as one flattened loop, so that a tile's stores and
    # the next tile's first loads overlap; a K loop whose length is read from memory (spare_rows) stays nested
    ttgir = gpu_import_run["ops_ttgir"]
    assert ttgir["grouped_gemm_main"].count("scf.for") == 1
    assert ttgir["grouped_gemm_rest"].count("scf.for") == 2


def test_triton_out_of_resources_becomes_a_resource_error_naming_the_kernel():
    from tilec.errors import TilecResourceError
    from tilec.lowering.triton_launch import out_of_resources

    class OutOfResources(Exception):  # what triton.runtime.errors raises, by name
        pass

    bound = matmul.specialize({"M": 64, "N": 64, "K": 64}, {}, "triton")
    err = out_of_resources(bound, OutOfResources("shared memory, Required: 262168, Hardware limit: 232448"))
    assert isinstance(err, TilecResourceError)
    assert "matmul" in str(err) and "M=64" in str(err) and "Required: 262168" in str(err)
    assert "num_stages" in str(err)


def test_direct_relaunch_passes_what_jit_run_passes_and_only_on_its_device(monkeypatch):
    """The relaunch after a first call hands Triton's compiled kernel the same arguments JITFunction.run would
    (grid, stream, function, metadata, hooks, tensors then constexprs) and declines on another device."""
    import types

    import triton.runtime.driver  # noqa: F401  (the module; the package attribute of that name is its DriverConfig)

    from tilec.lowering.triton_launch import direct_launch

    driver_module = sys.modules["triton.runtime.driver"]

    device = [0]
    monkeypatch.setattr(driver_module, "driver", types.SimpleNamespace(active=types.SimpleNamespace(
        get_current_device=lambda: device[0], get_current_stream=lambda d: 1000 + d)))
    calls = []
    made = types.SimpleNamespace(function="fn", packed_metadata="meta", run=lambda *a: calls.append(a),
                                 launch_metadata=lambda grid, stream, *args: ("lm", grid, stream))
    relaunch = direct_launch(made, (7,), (132,))
    assert relaunch("x", "y") is True
    (g0, g1, g2, stream, fn, meta, lm, _enter, _exit, *args), = calls
    assert (g0, g1, g2, stream, fn, meta, lm, args) == (7, 1, 1, 1000, "fn", "meta", ("lm", (7,), 1000),
                                                        ["x", "y", 132])
    device[0] = 1
    assert relaunch("x", "y") is False and len(calls) == 1


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_float64_gemm_is_a_broadcast_product(trans_a, trans_b):
    # Triton 3.6's tl.dot rejects fp64 operands on the GPU, so fp64 GEMMs lower to a product summed over K
    import torch

    from tilec.ops.gemm import gemm, gemm_kernel

    source = gemm_kernel(trans_a, trans_b, "float64", "float64").source(
        "triton", M=40, N=24, K=20, block_m=32, block_n=32, block_k=8, num_stages=2)
    assert "tl.dot(" not in source and "tl.sum(" in source
    rng = np.random.default_rng(3)
    a = rng.standard_normal((20, 37) if trans_a else (37, 20))
    b = rng.standard_normal((29, 20) if trans_b else (20, 29))
    c = gemm(torch.from_numpy(a), torch.from_numpy(b), trans_a=trans_a, trans_b=trans_b, target="triton",
             block_m=32, block_n=32, block_k=8)
    np.testing.assert_allclose(c.numpy(), (a.T if trans_a else a) @ (b.T if trans_b else b), rtol=1e-12, atol=1e-12)
