"""kv_gather and kv_scatter vs NumPy indexing, on the LLVM backend and on Triton's interpreter."""
import numpy as np
import pytest

from tilec.errors import TilecArgumentError
from tilec.ops.kv_cache import kv_gather, kv_scatter

RNG = np.random.default_rng(1)


def cache(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype) if np.dtype(dtype).kind == "f" else \
        RNG.integers(-100, 100, shape).astype(dtype)


def scatter_ref(key, value, kc, vc, slots):
    kc, vc = kc.copy(), vc.copy()
    nb, bs = kc.shape[:2]
    for t, slot in enumerate(slots):
        if slot >= 0:
            kc[slot // bs, slot % bs] = key[t]
            vc[slot // bs, slot % bs] = value[t]
    return kc, vc


@pytest.mark.parametrize("dtype, shape, ids, block", [
    (np.float32, (7, 3, 2, 5), [3, 0, 6, 3], None),  # repeated page, rows of 30 (not a power of two)
    (np.float16, (5, 16, 3, 64), [4, 1], 1000),  # a row spans several blocks, the last one partial
    (np.int8, (2, 1, 1, 1), [1], None),  # one-element pages
])
def test_gather(dtype, shape, ids, block):
    c = cache(shape, dtype)
    out = kv_gather(c, np.array(ids, np.int64), block=block)
    assert out.dtype == c.dtype and out.flags.c_contiguous
    np.testing.assert_array_equal(out, c[ids])


def test_gather_empty():
    assert kv_gather(cache((3, 2, 2, 4)), np.zeros(0, np.int32)).shape == (0, 2, 2, 4)


@pytest.mark.parametrize("dtype, nb, bs, h, d, slots, block", [
    (np.float32, 7, 3, 2, 5, [5, -1, 20, 0], None),  # -1 skipped, first and last slot of the cache
    (np.float16, 4, 16, 3, 64, [63, 17, -1, -1, 16, 1], 100),  # rows of 192 in blocks of 128
])
def test_scatter(dtype, nb, bs, h, d, slots, block):
    kc, vc = cache((nb, bs, h, d), dtype), cache((nb, bs, h, d), dtype)
    key, value = cache((len(slots), h, d), dtype), cache((len(slots), h, d), dtype)
    want_k, want_v = scatter_ref(key, value, kc, vc, slots)
    assert kv_scatter(key, value, kc, vc, np.array(slots, np.int64), block=block) is None
    np.testing.assert_array_equal(kc, want_k)
    np.testing.assert_array_equal(vc, want_v)


def test_index_checks():
    c = cache((4, 2, 1, 8))
    with pytest.raises(TilecArgumentError, match=r"block_ids\[2\] = 4 is out of range"):
        kv_gather(c, np.array([0, 3, 4], np.int32))
    with pytest.raises(TilecArgumentError, match=r"block_ids\[0\] = -1"):
        kv_gather(c, np.array([-1], np.int32))
    key = cache((2, 1, 8))
    before = c.copy()
    with pytest.raises(TilecArgumentError, match=r"slot_mapping\[1\] = 8 is out of range"):
        kv_scatter(key, key, c, c.copy(), np.array([0, 8], np.int32))
    with pytest.raises(TilecArgumentError, match=r"slot_mapping\[0\] = -2"):
        kv_scatter(key, key, c, c.copy(), np.array([-2, 0], np.int32))
    np.testing.assert_array_equal(c, before)  # checked before anything was written


def test_argument_errors():
    kc = cache((4, 2, 3, 8))
    key = cache((2, 3, 8))
    slots = np.array([0, 1], np.int32)
    with pytest.raises(TilecArgumentError, match=r"'value' must have shape \(2, 3, 8\)"):
        kv_scatter(key, key[:, :2], kc, kc.copy(), slots)
    with pytest.raises(TilecArgumentError, match=r"'v_cache' must have shape \(4, 2, 3, 8\)"):
        kv_scatter(key, key, kc, kc[:3].copy(), slots)
    with pytest.raises(TilecArgumentError, match=r"'slot_mapping' must have shape \(2,\)"):
        kv_scatter(key, key, kc, kc.copy(), slots[:1])
    with pytest.raises(TilecArgumentError, match="'key' has dtype float16; expected one of float32"):
        kv_scatter(key.astype(np.float16), key, kc, kc.copy(), slots)
    with pytest.raises(TilecArgumentError, match="'k_cache' must be contiguous"):
        kv_scatter(key, key, np.asfortranarray(kc), kc.copy(), slots)
    with pytest.raises(TilecArgumentError, match="'block_ids' must hold integers"):
        kv_gather(kc, np.array([0.0]))


torch = pytest.importorskip("torch")


def test_triton_interpreter():
    c = torch.from_numpy(cache((6, 4, 2, 8)))
    ids = torch.tensor([5, 0, 5], dtype=torch.int32)
    out = kv_gather(c, ids, target="triton")
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), c.numpy()[[5, 0, 5]])
    kc, vc = torch.from_numpy(cache((6, 4, 2, 8))), torch.from_numpy(cache((6, 4, 2, 8)))
    key, value = torch.from_numpy(cache((3, 2, 8))), torch.from_numpy(cache((3, 2, 8)))
    slots = np.array([23, -1, 4])
    want_k, want_v = scatter_ref(key.numpy(), value.numpy(), kc.numpy(), vc.numpy(), slots)
    kv_scatter(key, value, kc, vc, torch.from_numpy(slots), target="triton")
    np.testing.assert_array_equal(kc.numpy(), want_k)
    np.testing.assert_array_equal(vc.numpy(), want_v)
