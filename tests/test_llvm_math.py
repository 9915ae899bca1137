"""LLVM backend's inline exp/exp2/log/log2 (lowering/llvm/vecmath.py), run through DSL kernels and checked against
NumPy in float64: errors in ulps of the result's dtype, exact results at the special values."""
import functools
import re

import numpy as np
import pytest

import tilec
import tilec.language as T
from tilec.lowering import llvm as backend

RNG = np.random.default_rng(7)
FUNCS = ("exp", "exp2", "log", "log2")
REF = {"exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2}
# float32: the result rounded from float64 is <= 0.5 ulp off, the kernel's own error must stay below 2 ulps.
# float64: NumPy's libm is itself ~0.5 ulp off the true value, so allow its error on top.
MAX_ULPS = {"float32": 2.0, "float64": 3.0}


@functools.lru_cache(maxsize=None)
def math_kernel(dtype):
    @tilec.kernel
    def elementwise(X: T.Tensor[("N",), dtype], Y: T.Tensor[(4, "N"), dtype], *, block: int = 256):
        """One function per output row, computed on a tile (the vectorised Parallel loop)."""
        with T.Kernel(T.ceildiv(N, block)) as bx:
            x = T.alloc_fragment((block,), dtype)
            y = T.alloc_fragment((4, block), dtype)
            T.copy(X[bx * block], x)
            for i in T.Parallel(block):
                y[0, i] = T.exp(x[i])
                y[1, i] = T.exp2(x[i])
                y[2, i] = T.log(x[i])
                y[3, i] = T.log2(x[i])
            T.copy(y, Y[0, bx * block])
    return elementwise


def run(x):
    dtype = str(x.dtype)
    k = math_kernel(dtype).specialize({"N": x.size}, {}, "llvm")
    y = np.zeros((4, x.size), x.dtype)
    backend.load(backend.compile_object(backend.lower(k)), k)(x, y)
    return dict(zip(FUNCS, y))


def ulps(got, ref64, dtype):
    """|got - ref| in units of the spacing of `dtype` at the reference (subnormal spacing below the normal range)."""
    ref = ref64.astype(dtype)
    return np.abs(got.astype(np.float64) - ref64) / np.spacing(np.abs(ref)).astype(np.float64)


def edge_values(dtype):
    info = np.finfo(dtype)
    tiny_sub = info.smallest_subnormal
    one = np.array(1, dtype)
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 0.5, 2.0, 1e-30, -1e-30,
            tiny_sub, 3 * tiny_sub, info.smallest_normal, info.smallest_normal * 0.75, info.max, -info.max,
            np.nextafter(one, 2), np.nextafter(one, 0), np.log(info.max), -np.log(info.max)]
    if dtype == np.float32:
        vals += [88.72, 88.7228, 88.72284, 88.7229, 89.0, -87.3, -103.2, -103.97, -104.0, -150.0, 127.99, 128.0,
                 -126.0, -149.0, -149.5, -150.0, -151.0]
    else:
        vals += [709.78, 709.7827, 709.79, -708.4, -744.4, -745.2, -746.0, 1023.99, 1024.0, -1074.0, -1075.0,
                 -1076.0]
    return np.array(vals, dtype)


def wide_values(dtype, n=40000):
    """Uniform over the ranges where exp/exp2 go from 0 to inf, and positive values of every binade for log."""
    bits = np.iinfo(np.int32 if dtype == np.float32 else np.int64)
    lim = {np.float32: (110.0, 160.0), np.float64: (760.0, 1100.0)}[dtype]
    e = RNG.uniform(-lim[0], lim[0], n)
    e2 = RNG.uniform(-lim[1], lim[1], n)
    small = RNG.standard_normal(n) * 2
    pos = RNG.integers(0, bits.max, n).astype(bits.dtype).view(dtype)  # every bit pattern of a positive float
    pos = pos[np.isfinite(pos)]
    return np.concatenate([e, e2, small, pos]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accuracy_over_wide_ranges(dtype):
    x = wide_values(dtype)
    got = run(x)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        for name in FUNCS:
            ref = REF[name](x64)
            ok = np.isfinite(ref) & np.isfinite(ref.astype(dtype))
            np.testing.assert_array_equal(got[name][~ok], ref[~ok].astype(dtype), err_msg=name)
            err = ulps(got[name][ok], ref[ok], dtype)
            assert err.max() <= MAX_ULPS[str(np.dtype(dtype))], (name, err.max(), x[ok][err.argmax()])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_and_boundary_values(dtype):
    x = edge_values(dtype)
    got = run(x)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        for name in FUNCS:
            ref = REF[name](x64)
            exact = ~np.isfinite(ref.astype(dtype)) | (ref == 0)  # inf, nan, -inf, 0: must match exactly
            np.testing.assert_array_equal(got[name][exact], ref[exact].astype(dtype), err_msg=name)
            err = ulps(got[name][~exact], ref[~exact], dtype)
            assert err.max() <= MAX_ULPS[str(np.dtype(dtype))], (name, err.max(), x[~exact][err.argmax()])
    # exactly representable results come out exact
    assert got["exp"][x == 0].tolist() == [1.0, 1.0] and got["log"][x == 1].tolist() == [0.0]
    assert got["exp2"][x == 2].tolist() == [4.0] and got["log2"][x == 0.5].tolist() == [-1.0]


def test_float16_rounds_the_float32_result():
    """float16 tiles compute in float32 registers: the result is the float32 one rounded, <= 1 float16 ulp off
    (0.5 for the rounding, a little more when the float32 result sits next to a float16 rounding boundary)."""
    bits = np.arange(0, 0x7C00, 7, dtype=np.uint16).view(np.float16)  # positive finite float16s, all binades
    x = np.concatenate([bits, -bits, np.array([np.inf, -np.inf, np.nan], np.float16)])
    got = run(x)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        for name in FUNCS:
            ref = REF[name](x64)
            ok = np.isfinite(ref.astype(np.float16)) & (ref.astype(np.float16) != 0)
            np.testing.assert_array_equal(got[name][~ok], ref[~ok].astype(np.float16), err_msg=name)
            assert ulps(got[name][ok], ref[ok], np.float16).max() <= 1.0, name


def optimized_ir(kern, dims, config=None):
    from llvmlite import binding as llvm

    from tilec.lowering.llvm import jit

    text = backend.lower(kern.specialize(dims, config or {}, "llvm"))
    mod = llvm.parse_assembly(text)
    tm = jit.target_machine()
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    jit.optimize(mod)
    return text, str(mod)


# exp's round-to-integer constant 1.5 * 2^23 added to a whole vector: the exp code was vectorised
VECTOR_EXP = re.compile(r"fadd <\d+ x float> %\S+, splat \(float 0x4168000000000000\)")


def test_parallel_loop_is_vectorised_without_libm_calls():
    text, opt = optimized_ir(math_kernel("float32"), {"N": 1024})
    assert "llvm.exp" not in text and "llvm.log" not in text
    assert "@expf" not in opt and "@logf" not in opt
    assert VECTOR_EXP.search(opt)


def test_softmax_row_loop_is_vectorised():
    """x[i, j] = exp(x[i, j] - m[i]) reads tile m while writing tile x, both in the one scratch buffer: the alias
    scopes per tile must let the loop vectorise."""
    from tilec.ops.softmax import softmax_kernel

    _, opt = optimized_ir(softmax_kernel("float32", False), {"M": 64, "N": 1000}, {"block_m": 16})
    assert VECTOR_EXP.search(opt)
