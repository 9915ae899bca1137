"""LLVM (CPU) backend: kernels written in the DSL, lowered, compiled, run on threads, checked against NumPy float64."""
import os

import numpy as np
import pytest

import tilec
import tilec.language as T
from tilec.errors import TilecLoweringError
from tilec.lowering import llvm as backend
from tilec.settings import settings

ml_dtypes = pytest.importorskip("ml_dtypes")
RNG = np.random.default_rng(1234)


def build(kern, dims, **config):
    k = kern.specialize(dims, config, "llvm")
    return backend.load(backend.compile_object(backend.lower(k)), k)


@pytest.fixture(autouse=True)
def two_threads(monkeypatch):
    monkeypatch.setattr(settings, "num_threads", 2)


def make_matmul(in_dtype, acc_dtype):
    @tilec.kernel
    def matmul(A: T.Tensor[("M", "K"), in_dtype], B: T.Tensor[("K", "N"), in_dtype],
               C: T.Tensor[("M", "N"), acc_dtype], *, block_m: int = 32, block_n: int = 48, block_k: int = 16,
               num_stages: int = 2):
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

    return matmul


@tilec.kernel
def matmul_ta(A: T.Tensor[("K", "M"), "float32"], B: T.Tensor[("K", "N"), "float32"],
              C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 32, block_n: int = 48, block_k: int = 16):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_k, block_m), A.dtype)
        b = T.alloc_shared((block_k, block_n), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=2):
            T.copy(A[k * block_k, by * block_m], a)
            T.copy(B[k * block_k, bx * block_n], b)
            T.gemm(a, b, acc, transpose_a=True)
        T.copy(acc, C[by * block_m, bx * block_n])


@tilec.kernel
def matmul_tb(A: T.Tensor[("M", "K"), "float32"], B: T.Tensor[("N", "K"), "float32"],
              C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 32, block_n: int = 48, block_k: int = 16):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_m, block_k), A.dtype)
        b = T.alloc_shared((block_n, block_k), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=2):
            T.copy(A[by * block_m, k * block_k], a)
            T.copy(B[bx * block_n, k * block_k], b)
            T.gemm(a, b, acc, transpose_b=True)
        T.copy(acc, C[by * block_m, bx * block_n])


@tilec.kernel
def matmul_tab(A: T.Tensor[("K", "M"), "float32"], B: T.Tensor[("N", "K"), "float32"],
               C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 32, block_n: int = 48, block_k: int = 16):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_k, block_m), A.dtype)
        b = T.alloc_shared((block_n, block_k), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=2):
            T.copy(A[k * block_k, by * block_m], a)
            T.copy(B[bx * block_n, k * block_k], b)
            T.gemm(a, b, acc, transpose_a=True, transpose_b=True)
        T.copy(acc, C[by * block_m, bx * block_n])


def run_matmul(kern, m, n, k, np_in, np_out, transpose_a=False, transpose_b=False, **config):
    a = RNG.standard_normal((m, k)).astype(np_in)
    b = RNG.standard_normal((k, n)).astype(np_in)
    c = np.full((m, n), np.nan, np_out)
    a_arg = np.ascontiguousarray(a.T) if transpose_a else a
    b_arg = np.ascontiguousarray(b.T) if transpose_b else b
    build(kern, {"M": m, "N": n, "K": k}, **config)(a_arg, b_arg, c)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    return c.astype(np.float64), ref


MATMUL_F32 = make_matmul("float32", "float32")


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (37, 53, 29), (128, 64, 96), (5, 100, 70)])
def test_matmul_fp32_awkward_shapes(m, n, k):
    c, ref = run_matmul(MATMUL_F32, m, n, k, np.float32, np.float32)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("block_m,block_n,block_k", [(96, 128, 64), (7, 13, 5)])
def test_matmul_fp32_block_sizes(block_m, block_n, block_k):
    c, ref = run_matmul(MATMUL_F32, 101, 131, 77, np.float32, np.float32, block_m=block_m, block_n=block_n,
                        block_k=block_k)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kern,ta,tb", [(matmul_ta, True, False), (matmul_tb, False, True),
                                         (matmul_tab, True, True)])
def test_matmul_transposes(kern, ta, tb):
    c, ref = run_matmul(kern, 45, 67, 38, np.float32, np.float32, ta, tb)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3)


def test_matmul_fp16_in_fp32_acc():
    c, ref = run_matmul(make_matmul("float16", "float32"), 50, 70, 90, np.float16, np.float32)
    np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-2)


def test_matmul_bf16_in_fp32_acc():
    c, ref = run_matmul(make_matmul("bfloat16", "float32"), 33, 40, 64, ml_dtypes.bfloat16, np.float32)
    np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-2)


def test_matmul_float64():
    c, ref = run_matmul(make_matmul("float64", "float64"), 61, 29, 47, np.float64, np.float64, block_n=24)
    np.testing.assert_allclose(c, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_stages", [1, 3])
def test_pipelined_loop_stages(num_stages):
    kern = MATMUL_F32.specialize({"M": 70, "N": 50, "K": 100}, {"num_stages": num_stages}, "llvm")
    text = backend.lower(kern)
    assert ("llvm.prefetch" in text) == (num_stages > 1)  # stage-0 copies are prefetched ahead
    c, ref = run_matmul(MATMUL_F32, 70, 50, 100, np.float32, np.float32, num_stages=num_stages)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3)


@tilec.kernel
def softmax(X: T.Tensor[("R", "C"), "float32"], Y: T.Tensor[("R", "C"), "float32"], *, block_r: int = 4,
            block_c: int = 64):
    with T.Kernel(T.ceildiv(R, block_r)) as bx:
        x = T.alloc_fragment((block_r, block_c), "float32")
        m = T.alloc_fragment((block_r,), "float32")
        s = T.alloc_fragment((block_r,), "float32")
        T.copy(X[bx * block_r, 0], x, pad=-T.infinity("float32"))
        T.reduce_max(x, m, dim=1)
        for i, j in T.Parallel(block_r, block_c):
            x[i, j] = T.exp(x[i, j] - m[i])
        T.reduce_sum(x, s, dim=1)
        for i, j in T.Parallel(block_r, block_c):
            x[i, j] = x[i, j] / s[i]
        T.copy(x, Y[bx * block_r, 0])


def test_softmax_parallel_and_reductions():
    x = RNG.standard_normal((11, 50)).astype(np.float32) * 4
    y = np.full_like(x, np.nan)
    build(softmax, {"R": 11, "C": 50})(x, y)
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


@tilec.kernel
def gather_rows(X: T.Tensor[("N", "D"), "float32"], Idx: T.Tensor[("R",), "int32"],
                Out: T.Tensor[("R", "D"), "float32"], *, block_d: int = 16):
    with T.Kernel(T.ceildiv(D, block_d), R) as (bd, r):
        row = Idx[r]
        t = T.alloc_shared((block_d,), "float32")
        T.copy(X[row, bd * block_d], t)
        T.copy(t, Out[r, bd * block_d])


def test_gather_rows_by_scalar_index_load():
    x = RNG.standard_normal((23, 37)).astype(np.float32)
    idx = RNG.integers(0, 23, size=19).astype(np.int32)
    out = np.full((19, 37), np.nan, np.float32)
    build(gather_rows, {"N": 23, "D": 37, "R": 19})(x, idx, out)
    np.testing.assert_array_equal(out, x[idx])


@tilec.kernel
def column_sums(X: T.Tensor[("R", "C"), "float32"], S: T.Tensor[("C",), "float32"], *, block_r: int = 8):
    with T.Kernel(T.ceildiv(R, block_r)) as bx:
        x = T.alloc_fragment((block_r, C), "float32")
        s = T.alloc_fragment((C,), "float32")
        T.copy(X[bx * block_r, 0], x)
        T.reduce_sum(x, s, dim=0)
        for j in T.Parallel(C):
            T.atomic_add(S[j], s[j])


def test_reduce_outer_dim_and_atomic_add_across_threads():
    x = RNG.standard_normal((203, 21)).astype(np.float32)
    s = np.zeros(21, np.float32)
    build(column_sums, {"R": 203, "C": 21})(x, s)
    np.testing.assert_allclose(s, x.astype(np.float64).sum(0), rtol=1e-5, atol=1e-4)


@tilec.kernel
def int_floor_ops(A: T.Tensor[("N",), "int32"], B: T.Tensor[("N",), "int32"], Q: T.Tensor[("N",), "int32"],
                  Rm: T.Tensor[("N",), "int32"], F: T.Tensor[("N",), "float32"], *, block: int = 16):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        a = T.alloc_fragment((block,), "int32")
        b = T.alloc_fragment((block,), "int32")
        q = T.alloc_fragment((block,), "int32")
        r = T.alloc_fragment((block,), "int32")
        f = T.alloc_fragment((block,), "float32")
        T.copy(A[bx * block], a)
        T.copy(B[bx * block], b, pad=1)
        for i in T.Parallel(block):
            q[i] = a[i] // b[i]
            r[i] = a[i] % b[i]
            f[i] = T.cast(a[i], "float32") % T.cast(b[i], "float32")
        T.copy(q, Q[bx * block])
        T.copy(r, Rm[bx * block])
        T.copy(f, F[bx * block])


def test_integer_floor_division_and_modulo_python_semantics():
    a = RNG.integers(-50, 50, size=45).astype(np.int32)
    b = RNG.integers(1, 9, size=45).astype(np.int32) * RNG.choice([-1, 1], size=45).astype(np.int32)
    q, r, f = np.zeros_like(a), np.zeros_like(a), np.zeros(45, np.float32)
    build(int_floor_ops, {"N": 45})(a, b, q, r, f)
    np.testing.assert_array_equal(q, a // b)
    np.testing.assert_array_equal(r, a % b)
    np.testing.assert_allclose(f, np.mod(a.astype(np.float64), b), atol=1e-6)


@tilec.kernel
def elementwise_math(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N", 8), "float32"],
                     H: T.Tensor[("N",), "float16"], Bf: T.Tensor[("N",), "bfloat16"], I8: T.Tensor[("N",), "int8"],
                     *, block: int = 32):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        y = T.alloc_fragment((block, 8), "float32")
        h = T.alloc_fragment((block,), "float16")
        bf = T.alloc_fragment((block,), "bfloat16")
        i8 = T.alloc_fragment((block,), "int8")
        T.copy(X[bx * block], x, pad=1.0)
        for i in T.Parallel(block):
            v = x[i]
            y[i, 0] = T.exp(v)
            y[i, 1] = T.log(T.abs(v))
            y[i, 2] = T.sqrt(T.abs(v))
            y[i, 3] = T.rsqrt(T.abs(v))
            y[i, 4] = T.sigmoid(v)
            y[i, 5] = T.tanh(v)
            y[i, 6] = T.relu(v) + T.max(v, 0.5) - T.min(v, -0.5)
            y[i, 7] = T.where(v > 0, T.exp2(v), T.log2(T.abs(v)))
            h[i] = v * 3.0
            bf[i] = v * 3.0
            i8[i] = T.cast(v * 20.0, "int8")
        T.copy(y, Y[bx * block, 0])
        T.copy(h, H[bx * block])
        T.copy(bf, Bf[bx * block])
        T.copy(i8, I8[bx * block])


def test_unary_math_and_narrow_casts():
    n = 70
    x = (RNG.standard_normal(n) * 2).astype(np.float32)
    x[x == 0] = 0.25
    y = np.zeros((n, 8), np.float32)
    h, bf, i8 = np.zeros(n, np.float16), np.zeros(n, ml_dtypes.bfloat16), np.zeros(n, np.int8)
    build(elementwise_math, {"N": n})(x, y, h, bf, i8)
    v = x.astype(np.float64)
    ref = np.stack([np.exp(v), np.log(np.abs(v)), np.sqrt(np.abs(v)), 1 / np.sqrt(np.abs(v)), 1 / (1 + np.exp(-v)),
                    np.tanh(v), np.maximum(v, 0) + np.maximum(v, 0.5) - np.minimum(v, -0.5),
                    np.where(v > 0, np.exp2(v), np.log2(np.abs(v)))], axis=1)
    np.testing.assert_allclose(y, ref, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(h, (x * np.float32(3)).astype(np.float16))  # round to nearest even
    np.testing.assert_array_equal(bf, (x * np.float32(3)).astype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(i8, np.trunc(x * np.float32(20)).astype(np.int8))


@tilec.kernel
def running_sum(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"]):
    with T.Kernel(1) as bx:
        acc = T.alloc_var("float32", 0.0)
        for i in T.serial(N):
            if X[i] > 0:
                acc = acc + X[i]
            else:
                acc = acc - 1.0
            Y[i] = acc


def test_serial_loop_if_and_local_scalar():
    x = RNG.standard_normal(40).astype(np.float32)
    y = np.zeros_like(x)
    build(running_sum, {"N": 40})(x, y)
    np.testing.assert_allclose(y, np.cumsum(np.where(x > 0, x.astype(np.float64), -1.0)), rtol=1e-5, atol=1e-5)


def test_launcher_reused_and_engines_freed():
    run = build(MATMUL_F32, {"M": 20, "N": 20, "K": 20})
    a, b = (RNG.standard_normal((20, 20)).astype(np.float32) for _ in range(2))
    for _ in range(3):  # scratch is reused: the accumulator must be cleared each call
        c = np.zeros((20, 20), np.float32)
        run(a, b, c)
        np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    del run
    test_matmul_fp32_awkward_shapes(3, 3, 3)  # a new engine after one was freed


def test_integer_gemm_is_rejected_with_location():
    kern = make_matmul("int32", "int32")
    k = kern.specialize({"M": 8, "N": 8, "K": 8}, {}, "llvm")
    with pytest.raises(TilecLoweringError, match=r"test_llvm_backend.py:\d+: .*T.gemm takes float tiles"):
        backend.lower(k)


def test_lowering_names_function_and_marks_noalias():
    k = MATMUL_F32.specialize({"M": 8, "N": 8, "K": 8}, {}, "llvm")
    text = backend.lower(k)
    assert 'define void @"tilec_matmul"(ptr noalias' in text
    assert "llvm.fma.v16f32" in text


@tilec.kernel
def count_blocks(Out: T.Tensor[("N",), "float32"]):
    with T.Kernel(N) as bx:
        T.atomic_add(Out[bx], 1.0)


@pytest.mark.parametrize("blocks,threads,chunks_per_thread", [(101, 3, 8), (7, 2, 8), (2, 3, 8), (50, 2, 1)])
def test_launcher_runs_every_block_once(monkeypatch, blocks, threads, chunks_per_thread):
    from tilec.lowering.llvm import jit

    monkeypatch.setattr(settings, "num_threads", threads)
    monkeypatch.setattr(jit, "CHUNKS_PER_THREAD", chunks_per_thread)
    monkeypatch.setattr(jit, "INLINE_BELOW_S", 0.0)  # tiny grids would otherwise run inline from the second call
    out = np.zeros(blocks, np.float32)
    run = build(count_blocks, {"N": blocks})
    for _ in range(2):  # a second call takes chunks from a fresh counter
        run(out)
    np.testing.assert_array_equal(out, np.full(blocks, 2.0, np.float32))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux thread affinity and two CPUs")
def test_launcher_keeps_workers_off_the_callers_cpu(monkeypatch):
    from tilec.lowering.llvm import jit

    monkeypatch.setattr(jit, "INLINE_BELOW_S", 0.0)
    out = np.zeros(64, np.float32)
    build(count_blocks, {"N": 64})(out)
    build(count_blocks, {"N": 64})(out)  # the pool's worker registered itself during the first call
    cpu, pinned, _ = jit._pinned
    assert pinned >= 1
    for tid in jit._worker_tids[:pinned]:  # a worker the pool starts later is pinned on the next call
        assert os.sched_getaffinity(tid) == os.sched_getaffinity(0) - {cpu}
    np.testing.assert_array_equal(out, np.full(64, 2.0, np.float32))


def test_a_grid_that_takes_microseconds_runs_on_the_callers_thread(monkeypatch):
    """Handing a tiny grid to the pool costs more than the grid: after a first (pooled) run measured its core time
    below INLINE_BELOW_S, the launcher runs it inline, and still runs every block."""
    from tilec.lowering.llvm import jit

    submitted = []
    real_pool = jit.worker_pool
    monkeypatch.setattr(jit, "worker_pool", lambda n: submitted.append(n) or real_pool(n))
    monkeypatch.setattr(jit, "INLINE_BELOW_S", 1.0)  # any run of this grid is "small"
    out = np.zeros(8, np.float32)
    run = build(count_blocks, {"N": 8})
    for _ in range(3):
        run(out)
    assert run.core_s is not None and len(submitted) == 1  # only the first, unmeasured call used the pool
    np.testing.assert_array_equal(out, np.full(8, 3.0, np.float32))
