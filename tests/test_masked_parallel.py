"""`if` / `else` inside T.Parallel (a masked elementwise region): the same kernels on the LLVM backend (NumPy) and
Triton's interpreter (torch CPU tensors), against NumPy float64, on shapes that are not multiples of the blocks."""
import json
import os
import subprocess
import sys

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import tilec  # noqa: E402
import tilec.language as T  # noqa: E402
from tilec.errors import TilecLoweringError  # noqa: E402

RNG = np.random.default_rng(11)
SHAPES = [(1, 1), (7, 13), (37, 53)]  # 1, primes, past one block
BACKENDS = ["llvm", "triton"]


@tilec.kernel
def masked_update(X: T.Tensor[("M", "N"), "float32"], Y: T.Tensor[("M", "N"), "float32"], *,
                  block_m: int = 8, block_n: int = 16, t: float = 0.25):
    """A fragment updated under if / else / nested if (tile values, loop indices and scalars mixed), then stored
    under a row-bound if."""
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        x = T.alloc_fragment((block_m, block_n), "float32")
        y = T.alloc_fragment((block_m, block_n), "float32")
        T.copy(X[by * block_m, bx * block_n], x)
        T.fill(y, -1.0)
        for i, j in T.Parallel(block_m, block_n):
            if x[i, j] > t:
                y[i, j] = x[i, j]
                x[i, j] = 0.0  # the else below still sees the condition as it was
            else:
                if i % 3 == 0 and bx * block_n + j < N - 2:
                    y[i, j] = 2.0 * x[i, j] + by
                else:
                    y[i, j] = x[i, j] - 10.0
        for i, j in T.Parallel(block_m, block_n):
            if by * block_m + i < M:
                Y[by * block_m + i, bx * block_n + j] = y[i, j] + x[i, j]


def masked_update_reference(x, t=0.25, block_m=8, block_n=16):
    m, n = x.shape
    i = np.arange(m)[:, None] % block_m
    col = np.arange(n)[None, :]
    by = (np.arange(m)[:, None] // block_m).astype(np.float64)
    x64 = x.astype(np.float64)
    inner = np.where((i % 3 == 0) & (col < n - 2), 2.0 * x64 + by, x64 - 10.0)
    return np.where(x64 > t, x64, inner + x64)  # where the if held, x was zeroed


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,n", SHAPES)
@pytest.mark.parametrize("config", [{}, {"block_m": 6, "block_n": 10}])  # 6, 10: padded on Triton
def test_fragment_if_else_nested(backend, m, n, config):
    x = RNG.standard_normal((m, n)).astype(np.float32)
    y = run(masked_update, backend, x, np.full((m, n), 99.0, np.float32), **config)[1]
    np.testing.assert_allclose(y, masked_update_reference(x, **config), rtol=1e-5, atol=1e-5)


@tilec.kernel
def gather_or_keep(X: T.Tensor[("V", "D"), "float32"], Idx: T.Tensor[("R",), "int32"],
                   Y: T.Tensor[("R", "D"), "float32"], Hits: T.Tensor[("D",), "float32"], *,
                   block_r: int = 4, block_d: int = 8):
    """Y[r] = X[Idx[r]] where Idx[r] >= 0, else Y[r] = -Y[r] (row -1 is never read); Hits counts the gathered
    rows per column: global loads, stores and atomics under if / else."""
    with T.Kernel(T.ceildiv(D, block_d), T.ceildiv(R, block_r)) as (bx, by):
        for i, j in T.Parallel(block_r, block_d):
            r = T.min(by * block_r + i, R - 1)  # clamped: lanes past R compute row R - 1 again, stored by none
            c = bx * block_d + j
            if by * block_r + i < R:
                if Idx[r] >= 0:
                    Y[r, c] = X[Idx[r], c]
                    T.atomic_add(Hits[c], 1.0)
                else:
                    Y[r, c] = -Y[r, c]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v,d,r", [(1, 1, 1), (11, 13, 7), (5, 19, 23)])
def test_global_loads_stores_atomics_under_if(backend, v, d, r):
    x = RNG.standard_normal((v, d)).astype(np.float32)
    idx = RNG.integers(-1, v, r).astype(np.int32)
    idx[0] = -1  # at least one skipped row
    y0 = RNG.standard_normal((r, d)).astype(np.float32)
    _, _, y, hits = run(gather_or_keep, backend, x, idx, y0.copy(), np.zeros(d, np.float32))
    expect = np.where(idx[:, None] >= 0, x[np.maximum(idx, 0)], -y0)
    np.testing.assert_array_equal(y, expect)
    np.testing.assert_array_equal(hits, np.full(d, float((idx >= 0).sum()), np.float32))


@tilec.kernel
def row_peak(X: T.Tensor[("M", "N"), "float32"], Y: T.Tensor[("M", "N"), "float32"],
             Count: T.Tensor[("M",), "int32"], *, block_n: int = 64):
    """Per row: Y keeps the elements within 1 of the row's max (others 0), with a (1,) fragment read and written
    at index 0; the scalar `big` is set under a condition that is the same for every lane."""
    with T.Kernel(M) as row:
        x = T.alloc_fragment((1, block_n), "float32")
        mx = T.alloc_fragment((1,), "float32")
        T.copy(X[row, 0], x, pad=-T.infinity("float32"))
        T.reduce_max(x, mx, dim=1)
        mx[0] = mx[0] - 1.0  # from here on the threshold
        peak = T.alloc_var("float32")
        peak = mx[0] + 1.0
        big = T.alloc_var("int32", 0)
        for j in T.Parallel(block_n):
            if peak > 1.0:
                big = 1
            if x[0, j] >= mx[0]:
                Y[row, j] = x[0, j]
            else:
                Y[row, j] = 0.0 * peak
        Count[row] = big


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,n", [(1, 1), (5, 37), (3, 64)])
def test_unit_fragment_read_at_index_0_and_scalar_if(backend, m, n):
    x = RNG.standard_normal((m, n)).astype(np.float32) * 2
    _, y, count = run(row_peak, backend, x, np.full((m, n), 5.0, np.float32), np.full(m, 7, np.int32))
    mx = x.max(axis=1, keepdims=True)
    np.testing.assert_array_equal(y, np.where(x >= mx - 1.0, x, 0.0))
    np.testing.assert_array_equal(count, (mx[:, 0] > 1.0).astype(np.int32))


@tilec.kernel
def split_sign(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 16):
    """A fragment used only inside ifs: written in both branches, never filled first."""
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        s = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], x)
        for i in T.Parallel(block):
            if x[i] >= 0:
                s[i] = T.exp(-x[i])
            else:
                s[i] = -x[i] * x[i]
        for i in T.Parallel(block):
            if bx * block + i < N:
                Y[bx * block + i] = s[i]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n,block", [(1, 16), (31, 16), (29, 12)])
def test_tile_written_only_in_branches(backend, n, block):
    x = RNG.standard_normal(n).astype(np.float32)
    y = run(split_sign, backend, x, np.zeros(n, np.float32), block=block)[1]
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, np.where(x64 >= 0, np.exp(-x64), -x64 * x64), rtol=1e-6, atol=1e-7)


def run(kernel, backend, *arrays, **config):
    if backend == "llvm":
        kernel(*arrays, **config)
        return arrays
    tensors = [torch.from_numpy(a) for a in arrays]
    kernel(*tensors, target="triton", **config)
    return [t.numpy() for t in tensors]


# ------------------------------------------------------------------------------------------ generated source
def test_triton_source_masks_instead_of_branching():
    source = masked_update.source("triton", M=37, N=53)
    body = source.split("def masked_update(")[1]
    assert not any(line.strip().startswith("if ") for line in body.splitlines())  # no Python if on a tensor
    assert "cond = x > 0.25" in body
    assert "y = tl.where(cond, x, y)" in body
    assert "x = tl.where(cond, 0.0, x)" in body
    assert "~cond & cond_1" in body  # the else branch's nested if
    store = next(line for line in body.splitlines() if "tl.store(" in line)
    assert store.rstrip().endswith("& cond_2)")


def test_source_of_a_lane_uniform_if_and_a_unit_fragment_read():
    source = row_peak.source("triton", M=5, N=37)
    assert "big = tl.where(cond, 1, big)" in source
    assert "mx = tl.full((1,), tl.reshape(mx, ()) - 1.0, tl.float32)" in source


@tilec.kernel
def racing_tile_write(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"]):
    with T.Kernel(1) as bx:
        acc = T.alloc_fragment((8,), "float32")
        T.clear(acc)
        for i, j in T.Parallel(8, 4):
            if X[j] > 0:
                acc[i] = 1.0
        T.copy(acc, Y[0])


@tilec.kernel
def racing_scalar_write(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"]):
    with T.Kernel(1) as bx:
        s = T.alloc_var("float32", 0.0)
        for i in T.Parallel(8):
            if X[i] > 0:
                s = 1.0
        Y[0] = s


@pytest.mark.parametrize("kernel,what", [(racing_tile_write, "'acc' is written under an if"),
                                         (racing_scalar_write, "scalar 's' is assigned under an if")])
def test_lane_dependent_condition_on_a_narrower_target_is_refused_with_location(kernel, what):
    with pytest.raises(TilecLoweringError, match=what) as err:
        kernel.source("triton", N=8)
    assert f"{os.path.basename(__file__)}:" in str(err.value)


# ------------------------------------------------------------------------------------------ compiled for sm_90
SM90_SCRIPT = """
import json, os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton  # for the GPU, before the test module sets TRITON_INTERPRET
sys.path.insert(0, sys.argv[1])
import test_masked_parallel as t
from test_triton_backend import compile_sm90
print(json.dumps({name: compile_sm90(getattr(t, name), dims, {}) for name, dims in [
    ("masked_update", {"M": 37, "N": 53}), ("gather_or_keep", {"V": 11, "D": 13, "R": 7}),
    ("row_peak", {"M": 5, "N": 37})]}))
"""


def test_masked_kernels_compile_for_h100():
    """The interpreter accepts more than Triton's compiler: the masked forms must also compile."""
    pytest.importorskip("triton.backends.nvidia.compiler")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", SM90_SCRIPT, os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ttgir = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("masked_update", "gather_or_keep", "row_peak"):
        assert "tt.func public @" + name in ttgir[name]
