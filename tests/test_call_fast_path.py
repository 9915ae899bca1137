"""The call fast path (runtime.fastpath): repeated calls skip the checks, any change of signature takes the checked
path again (with its errors), and results stay right."""
import numpy as np
import pytest

import tilec
import tilec.language as T
from tilec import ops
from tilec.errors import TilecArgumentError
from tilec.runtime import fastpath
from tilec.runtime.cache import clear_memory_cache
from tilec.runtime.fastpath import call_key, fast_stats
from tilec.settings import settings


@tilec.kernel
def axpy(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 16, alpha: float = 2.0):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        y = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], x)
        T.copy(Y[bx * block], y)
        for i in T.Parallel(block):
            y[i] = y[i] + x[i] * alpha
        T.copy(y, Y[bx * block])


@pytest.fixture(autouse=True)
def cache_on(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "cache_dir", tmp_path / "cache")
    monkeypatch.setattr(settings, "cache", True)
    clear_memory_cache()
    yield
    clear_memory_cache()


def delta(before):
    return {k: v - before[k] for k, v in fast_stats().items() if v != before[k]}


def run_axpy(n=37, dtype=np.float32, **config):
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    expected = y.astype(np.float64) + x.astype(np.float64) * config.get("alpha", 2.0)
    axpy(x, y, **config)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_repeated_calls_hit_and_stay_correct():
    before = fast_stats()
    for _ in range(3):
        run_axpy()
    assert delta(before) == {"misses": 1, "stored": 1, "hits": 2}


@pytest.mark.parametrize("change", [dict(n=38), dict(block=32), dict(alpha=3.0), dict(config={"block": 8})])
def test_a_changed_shape_or_config_misses_and_stays_correct(change):
    run_axpy()
    change = dict(change)
    n = change.pop("n", 37)
    before = fast_stats()
    run_axpy(n, **change)
    assert delta(before) == {"misses": 1, "stored": 1}
    run_axpy(n, **change)
    assert delta(before) == {"misses": 1, "stored": 1, "hits": 1}


def test_wrong_dtype_after_a_fast_hit_still_raises_the_checked_error():
    run_axpy()
    run_axpy()  # now on the fast path
    x64, y = np.ones(37), np.ones(37, np.float32)
    with pytest.raises(TilecArgumentError, match=r"argument 'X' must have dtype float32, got float64: pass "
                                                 r"X\.astype\(np\.float32\)"):
        axpy(x64, y)


def test_bad_layouts_after_a_fast_hit_still_raise():
    x, y = np.ones(37, np.float32), np.zeros(37, np.float32)
    axpy(x, y)
    axpy(x, y)
    strided = np.ones(74, np.float32)[::2]
    with pytest.raises(TilecArgumentError, match="argument 'X' must be C-contiguous"):
        axpy(strided, y)
    read_only = np.zeros(37, np.float32)
    read_only.setflags(write=False)
    with pytest.raises(TilecArgumentError, match="argument 'Y' is read-only but the kernel writes it"):
        axpy(x, read_only)
    misaligned = np.zeros(37 * 4 + 1, np.uint8)[1:].view(np.float32)  # same shape, one byte off
    assert not misaligned.flags.aligned
    with pytest.raises(TilecArgumentError, match="argument 'X' is not aligned"):
        axpy(misaligned, y)
    with pytest.raises(TilecArgumentError, match="must be a NumPy array or a torch tensor"):
        axpy(list(x), y)
    with pytest.raises(TilecArgumentError, match="takes 2 arguments"):
        axpy(x, y, y)


def test_keys_tell_apart_types_and_signed_zero():
    x = np.ones(4, np.float32)
    key = lambda **consts: call_key((x, x), None, None, None, None, consts)  # noqa: E731
    assert key(alpha=1) != key(alpha=True) != key(alpha=1.0)
    assert key(alpha=0.0) != key(alpha=-0.0)
    assert key(alpha=[1]) is None  # unhashable: the checked path decides
    assert call_key((x, x), None, None, "bogus", None, {}) is None
    # the lengths the cost model assumed for config="auto" are part of the signature
    auto = lambda assume: call_key((x, x), None, None, "auto", None, {}, assume)  # noqa: E731
    assert auto({"CL": 512}) != auto({"CL": 4096}) != auto(None)
    assert auto({"CL": 512}) == auto({"CL": 512})


def test_repeated_auto_calls_with_the_same_assumption_hit():
    from tilec.ops.paged import paged_decode_kernel

    rng = np.random.default_rng(1)
    q, kc, vc = (rng.standard_normal(s).astype(np.float32) for s in ((2, 4, 64), (6, 4, 2, 64), (6, 4, 2, 64)))
    table, lens = np.array([[0, 1, 2], [3, 4, -1]], np.int32), np.array([11, 6], np.int32)
    first = ops.paged_attention(q, kc, vc, table, lens, config="auto", num_splits=1)
    before = fast_stats()
    again = ops.paged_attention(q, kc, vc, table, lens, config="auto", num_splits=1)
    assert delta(before).get("hits") == 1 and np.array_equal(first, again)
    before = fast_stats()
    ops.paged_attention(q, kc, vc, table, np.array([9, 6], np.int32), config="auto", num_splits=1)
    assert "hits" not in delta(before)  # another longest length: the checked path and the model again
    picks = [k for k in paged_decode_kernel("float32")._auto if k[2] == "llvm" and dict(k[0])["NB"] == 6]
    assert sorted(dict(k[-1])["CL"] for k in picks) == [9, 11]


def test_cache_off_and_cleared_cache_bypass_the_fast_path(monkeypatch):
    run_axpy()
    clear_memory_cache()  # a cleared cache must be consulted again (disk hit), not bypassed
    before = fast_stats()
    run_axpy()
    assert delta(before) == {"misses": 1, "stored": 1}
    monkeypatch.setattr(settings, "cache", False)
    before = fast_stats()
    run_axpy()
    run_axpy()
    assert delta(before) == {}


def test_the_table_is_bounded(monkeypatch):
    monkeypatch.setattr(fastpath, "FAST_ENTRIES", 2)
    for n in (30, 31, 32, 33):
        run_axpy(n)
    assert len(axpy._fast) == 2


def test_an_op_repeated_hits_and_matches_the_reference():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 4, 16)).astype(np.float32)
    kc, vc = (rng.standard_normal((8, 4, 2, 16)).astype(np.float32) for _ in range(2))
    bt, cl = np.array([[0, 1], [2, 3]], np.int32), np.array([5, 7], np.int32)
    first = ops.paged_attention(q, kc, vc, bt, cl)
    before = fast_stats()
    again = ops.paged_attention(q, kc, vc, bt, cl)
    assert delta(before) == {"hits": 1}
    np.testing.assert_array_equal(first, again)
    for s in range(2):  # float64 reference
        keys, vals = (c[bt[s]].reshape(-1, 2, 16)[:cl[s]].astype(np.float64) for c in (kc, vc))
        for h in range(4):
            logits = keys[:, h // 2] @ q[s, h] / 4.0
            p = np.exp(logits - logits.max())
            np.testing.assert_allclose(again[s, h], p @ vals[:, h // 2] / p.sum(), rtol=1e-4, atol=1e-5)


def test_triton_interpreter_calls_hit_and_still_check():
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    x, y = torch.arange(20, dtype=torch.float32), torch.ones(20)
    before = fast_stats()
    axpy(x, y, target="triton")
    axpy(x, y, target="triton")
    assert delta(before) == {"misses": 1, "stored": 1, "hits": 1}
    torch.testing.assert_close(y, 1 + 4 * torch.arange(20, dtype=torch.float32))
    with pytest.raises(TilecArgumentError, match="argument 'X' must be C-contiguous"):
        axpy(torch.ones(40)[::2], y, target="triton")
    with pytest.raises(TilecArgumentError, match="must have dtype float32, got float64"):
        axpy(x.double(), y, target="triton")
    with pytest.raises(TilecArgumentError, match="is a NumPy array, but target='triton'"):
        axpy(x.numpy(), y.numpy(), target="triton")
