"""tilec.ops.gemm and tilec.ops.softmax against NumPy float64: NumPy arrays on the LLVM backend, torch CPU tensors
with target="triton" on Triton's interpreter. Awkward shapes (1, primes, non-multiples of every block size)."""
import importlib.util
import json
import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tilec  # noqa: E402
from tilec.ops import gemm, softmax  # noqa: E402
from tilec.settings import settings  # noqa: E402

RNG = np.random.default_rng(0)


def _missing(*modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


_LLVM_MISSING = _missing("tilec.lowering.llvm", "tilec.runtime.cache", "llvmlite")
_TRITON_MISSING = _missing("tilec.lowering.triton", "tilec.runtime.cache", "triton", "torch")
needs_llvm = pytest.mark.skipif(bool(_LLVM_MISSING), reason=f"LLVM path not available: {_LLVM_MISSING} missing")
needs_triton = pytest.mark.skipif(bool(_TRITON_MISSING),
                                  reason=f"Triton interpreter path not available: {_TRITON_MISSING} missing")


def operands(m, n, k, trans_a=False, trans_b=False, dtype="float32"):
    a = RNG.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = RNG.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def gemm_reference(a, b, trans_a=False, trans_b=False):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a.T if trans_a else a) @ (b.T if trans_b else b)


def gemm_tolerance(k, out_dtype):
    # fp32 accumulation error grows ~ sqrt(K) eps |a||b|; a half-precision output adds its own rounding
    rtol = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-5, "float64": 1e-12}[out_dtype]
    return dict(rtol=rtol, atol=max(rtol, 1e-5) * np.sqrt(k))


def softmax_reference(x, dim=-1):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


# ---------------------------------------------------------------------------------------------- gemm, LLVM (NumPy)
@needs_llvm
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 13, 5), (37, 41, 67), (130, 259, 263)])
def test_gemm_llvm_shapes(m, n, k):
    a, b = operands(m, n, k)
    c = gemm(a, b)
    assert isinstance(c, np.ndarray) and c.shape == (m, n) and c.dtype == np.float32
    np.testing.assert_allclose(c, gemm_reference(a, b), **gemm_tolerance(k, "float32"))

@pytest.mark.parametrize("m,n,threads", [(1, 1, 2), (300, 300, 2), (256, 256, 2), (1024, 1024, 2), (100, 5000, 4),
                                          (4097, 3, 3)])
def test_gemm_cpu_blocks_fit_the_output(m, n, threads):
    from tilec.ops.gemm import fit_cpu_blocks

    default = {"block_m": 256, "block_n": 256, "block_k": 128, "num_stages": 2}
    fit = fit_cpu_blocks(default, m, n, threads)
    bm, bn = fit["block_m"], fit["block_n"]
    assert fit["block_k"] == 128 and bm <= 256 and bn <= 256 and bm % 16 == 0 and bn % 32 == 0
    rows, cols = -(-m // bm), -(-n // bn)
    assert rows == -(-m // 256) or rows * cols <= 2 * threads * 2  # only split further to feed the threads
    assert rows * bm - m < 16 * rows and cols * bn - n < 32 * cols  # padding: under one rounding step per block
    assert rows * cols >= min(2 * threads, -(-m // 16) * -(-n // 32))


@needs_llvm
def test_gemm_llvm_fitted_blocks_on_two_threads(monkeypatch):
    from tilec.settings import settings

    monkeypatch.setattr(settings, "num_threads", 2)
    a, b = operands(300, 257, 131)  # 160x160 blocks (from 256), then split to four
    np.testing.assert_allclose(gemm(a, b), gemm_reference(a, b), **gemm_tolerance(131, "float32"))



@needs_llvm
@pytest.mark.parametrize("trans_a,trans_b", [(True, False), (False, True), (True, True)])
def test_gemm_llvm_transposes(trans_a, trans_b):
    a, b = operands(29, 31, 71, trans_a, trans_b)
    c = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_allclose(c, gemm_reference(a, b, trans_a, trans_b), **gemm_tolerance(71, "float32"))


@needs_llvm
@pytest.mark.parametrize("in_dtype,out_dtype", [("float16", None), ("float16", "float32"), ("float64", None)])
def test_gemm_llvm_dtypes(in_dtype, out_dtype):
    a, b = operands(33, 17, 45, dtype=in_dtype)
    c = gemm(a, b, out_dtype=out_dtype)
    expected = out_dtype or in_dtype
    assert c.dtype == np.dtype(expected)
    np.testing.assert_allclose(c.astype(np.float64), gemm_reference(a, b), **gemm_tolerance(45, expected))


@needs_llvm
def test_gemm_llvm_same_shape_different_dtypes_do_not_share_code():
    # the fp16 and fp32 kernels have the same name and source text: the compile cache must tell them apart
    a, b = operands(19, 23, 11)
    c32 = gemm(a, b)
    c16 = gemm(a.astype(np.float16), b.astype(np.float16))
    assert c32.dtype == np.float32 and c16.dtype == np.float16
    np.testing.assert_allclose(c16.astype(np.float64), gemm_reference(a.astype(np.float16), b.astype(np.float16)),
                               **gemm_tolerance(11, "float16"))


@needs_llvm
def test_gemm_llvm_config_keywords_and_empty_k():
    a, b = operands(21, 9, 40)
    c = gemm(a, b, block_m=16, block_n=16, block_k=8, num_stages=2)
    np.testing.assert_allclose(c, gemm_reference(a, b), **gemm_tolerance(40, "float32"))
    assert np.array_equal(gemm(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32)), np.zeros((3, 4)))


@needs_llvm
def test_gemm_config_auto_takes_the_cost_models_pick():
    from tilec.cost import autotune
    from tilec.ops.gemm import gemm_kernel

    a, b = operands(77, 129, 300)
    c = gemm(a, b, config="auto", block_k=32)  # a keyword given is held; the model picks the rest
    np.testing.assert_allclose(c, gemm_reference(a, b), **gemm_tolerance(300, "float32"))
    kernel = gemm_kernel(False, False, "float32", "float32")
    dims = {"M": 77, "N": 129, "K": 300}
    space = {**autotune.default_space(kernel, "cpu"), "block_k": [32]}
    picked = [cfg for key, cfg in kernel._auto.items() if key[0] == tuple(sorted(dims.items()))]
    assert picked == [autotune.pick_config(kernel, dims, "cpu", space)] and picked[0]["block_k"] == 32
    with pytest.raises(tilec.TilecArgumentError, match="config= takes"):
        gemm(a, b, config="fastest")


def test_gemm_gpu_tiles_follow_dtype_and_fill_the_sms():
    from tilec.ops.gemm import DEFAULT_CONFIG, gpu_tiles

    base = DEFAULT_CONFIG["triton"]
    assert gpu_tiles(base, "bfloat16", 4096, 4096, 132)["block_n"] == 256  # 32 x 16 = 512 tiles fill 132 SMs
    skinny = gpu_tiles(base, "bfloat16", 16, 4096, 132)  # 16 tiles of 128x256: too few
    assert (skinny["block_n"], skinny["block_k"], skinny["num_stages"]) == (64, 128, 4)
    assert gpu_tiles(base, "float16", 512, 4096, 132)["block_n"] == 64  # 4 x 16 = 64 tiles, under half
    assert gpu_tiles(base, "float16", 2048, 2048, 132)["block_n"] == 256  # 16 x 8 = 128: most of the SMs
    assert gpu_tiles(base, "float32", 4096, 4096, 132)["block_k"] == 16  # CUDA-core tiles, whatever the grid
    assert base == DEFAULT_CONFIG["triton"]  # the defaults are not modified


# ---------------------------------------------------------------------------------------------- gemm, Triton interpreter
@needs_triton
@pytest.mark.parametrize("m,n,k,trans_a,trans_b", [(1, 1, 1, False, False), (37, 41, 67, False, False),
                                                   (23, 5, 33, True, False), (3, 29, 17, False, True),
                                                   (31, 19, 7, True, True)])
def test_gemm_triton_interpreter(m, n, k, trans_a, trans_b):
    import torch

    a, b = operands(m, n, k, trans_a, trans_b)
    c = gemm(torch.from_numpy(a), torch.from_numpy(b), trans_a=trans_a, trans_b=trans_b, target="triton")
    assert isinstance(c, torch.Tensor) and c.device.type == "cpu" and c.dtype == torch.float32
    np.testing.assert_allclose(c.numpy(), gemm_reference(a, b, trans_a, trans_b), **gemm_tolerance(k, "float32"))


@needs_triton
def test_gemm_triton_interpreter_config_auto():
    import torch

    a, b = operands(37, 45, 70)
    c = gemm(torch.from_numpy(a), torch.from_numpy(b), target="triton", config="auto")
    np.testing.assert_allclose(c.numpy(), gemm_reference(a, b), **gemm_tolerance(70, "float32"))


@needs_triton
def test_gemm_triton_interpreter_fp16():
    import torch

    a, b = operands(40, 24, 50, dtype="float16")
    c = gemm(torch.from_numpy(a), torch.from_numpy(b), target="triton")
    assert c.dtype == torch.float16
    np.testing.assert_allclose(c.double().numpy(), gemm_reference(a, b), **gemm_tolerance(50, "float16"))
    c32 = gemm(torch.from_numpy(a), torch.from_numpy(b), out_dtype=torch.float32, target="triton")
    np.testing.assert_allclose(c32.numpy(), gemm_reference(a, b), **gemm_tolerance(50, "float32"))


# ---------------------------------------------------------------------------------------------- softmax
@needs_llvm
@pytest.mark.parametrize("n", [1, 7, 129, 1000, 5003])
def test_softmax_llvm_row_lengths(n):
    x = (RNG.standard_normal((5, n)) * 4).astype(np.float32)
    y = softmax(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, softmax_reference(x), rtol=1e-5, atol=1e-7)


@needs_llvm
def test_softmax_llvm_long_rows_take_the_online_kernel():
    x = (RNG.standard_normal((3, 300)) * 4).astype(np.float32)
    y = softmax(x, max_row=64, block_n=32)  # 300 = 9 full column blocks + 12
    np.testing.assert_allclose(y, softmax_reference(x), rtol=1e-5, atol=1e-7)


@needs_llvm
@pytest.mark.parametrize("n, long_rows", [(129, {}), (300, {"max_row": 64})])
def test_softmax_config_auto_and_measured(n, long_rows, tmp_path, monkeypatch):
    from tilec.cost import autotune
    from tilec.ops.softmax import softmax_kernel

    monkeypatch.setattr(settings, "cache_dir", tmp_path)
    x = (RNG.standard_normal((37, n)) * 4).astype(np.float32)
    np.testing.assert_allclose(softmax(x, config="auto", **long_rows), softmax_reference(x), rtol=1e-5, atol=1e-7)
    kernel = softmax_kernel("float32", online=bool(long_rows))
    dims = {"M": 37, "N": n}
    picked = [cfg for key, cfg in kernel._auto.items() if key[0] == tuple(sorted(dims.items())) and not key[4]]
    assert picked == [autotune.pick_config(kernel, dims, "cpu", autotune.default_space(kernel, "cpu"))]
    np.testing.assert_allclose(softmax(x, tune="measure", **long_rows), softmax_reference(x), rtol=1e-5, atol=1e-7)
    tuned = json.loads((tmp_path / "autotune.json").read_text())
    assert [k.split("@")[0] for k in tuned] == [f"{kernel.fn.__module__}.{kernel.__name__}"]


@needs_llvm
def test_softmax_llvm_any_dim_and_dtype():
    x = RNG.standard_normal((3, 11, 4))
    for dim in (0, 1, -1):
        np.testing.assert_allclose(softmax(x, dim=dim), softmax_reference(x, dim), rtol=1e-12, atol=1e-15)
    h = x.astype(np.float16)
    y = softmax(h, dim=1)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), softmax_reference(h, 1), rtol=2e-3, atol=1e-3)


@needs_triton
@pytest.mark.filterwarnings("ignore:invalid value encountered")  # NaNs in padding rows, which are never stored
@pytest.mark.parametrize("n", [1, 7, 129, 1000])
def test_softmax_triton_interpreter(n):
    import torch

    x = (RNG.standard_normal((6, n)) * 4).astype(np.float32)
    y = softmax(torch.from_numpy(x), target="triton")
    assert isinstance(y, torch.Tensor) and y.shape == (6, n)
    np.testing.assert_allclose(y.numpy(), softmax_reference(x), rtol=1e-5, atol=1e-7)


@needs_triton
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_softmax_triton_interpreter_dim0():
    import torch

    x = RNG.standard_normal((9, 4, 2)).astype(np.float32)
    y = softmax(torch.from_numpy(x), dim=0, target="triton")
    np.testing.assert_allclose(y.numpy(), softmax_reference(x, 0), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------- argument errors
def test_gemm_inner_dimension_mismatch_names_both_arguments():
    with pytest.raises(tilec.TilecArgumentError, match=r"'a' has shape \(4, 5\).*'b' has shape \(6, 3\)"):
        gemm(np.ones((4, 5), np.float32), np.ones((6, 3), np.float32))
    with pytest.raises(tilec.TilecArgumentError, match=r"'b' has shape \(3, 6\) \(transposed\)"):
        gemm(np.ones((4, 5), np.float32), np.ones((3, 6), np.float32), trans_b=True)


def test_gemm_rank_and_dtype_errors_name_the_argument():
    with pytest.raises(tilec.TilecArgumentError, match=r"'a' must be a 2-D array, got shape \(4,\)"):
        gemm(np.ones(4, np.float32), np.ones((4, 3), np.float32))
    with pytest.raises(tilec.TilecArgumentError, match=r"'b' must be a 2-D array, got shape \(1, 4, 3\)"):
        gemm(np.ones((2, 4), np.float32), np.ones((1, 4, 3), np.float32))
    with pytest.raises(tilec.TilecArgumentError, match="'a' is float32 but 'b' is float16"):
        gemm(np.ones((2, 4), np.float32), np.ones((4, 3), np.float16))
    with pytest.raises(tilec.TilecArgumentError, match="int32"):
        gemm(np.ones((2, 4), np.int32), np.ones((4, 3), np.int32))


def test_softmax_argument_errors():
    with pytest.raises(tilec.TilecArgumentError, match=r"dim=2 is out of range for 'x' of shape \(2, 3\)"):
        softmax(np.ones((2, 3), np.float32), dim=2)
    with pytest.raises(tilec.TilecArgumentError, match="'x' has dtype int64"):
        softmax(np.ones((2, 3), np.int64))
