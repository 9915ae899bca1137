"""flash_attention and paged_attention vs NumPy float64, on the LLVM backend (NumPy arrays) and on Triton's
interpreter (torch CPU tensors, target="triton", tiny shapes)."""
import math

import numpy as np
import pytest

from tilec.errors import TilecArgumentError
from tilec.ops.attention import flash_attention
from tilec.ops.paged import paged_attention, pick_num_splits
from tilec.settings import settings

ml_dtypes = pytest.importorskip("ml_dtypes")
RNG = np.random.default_rng(0)
TOL = {"float32": 2e-5, "float16": 3e-3, "bfloat16": 3e-2}
NP_DTYPE = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def randn(shape, dtype):
    return RNG.standard_normal(shape).astype(NP_DTYPE[dtype])


def attention_ref(q, k, v, causal=False, scale=None):
    """float64 attention; a row that sees no key is zeros."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    sq, skv, d = q.shape[2], k.shape[2], q.shape[3]
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) * (1 / math.sqrt(d) if scale is None else scale)
    if causal:
        s = np.where(np.arange(skv)[None, :] <= np.arange(sq)[:, None] + skv - sq, s, -np.inf)
    m = s.max(-1, keepdims=True, initial=-np.inf)
    p = np.exp(s - np.where(np.isinf(m), 0, m))
    return p @ v / np.maximum(p.sum(-1, keepdims=True), 1e-300)


# ------------------------------------------------------------------------------------------------ flash, LLVM
@pytest.mark.parametrize("b, hq, hkv, sq, skv, d, causal, dtype", [
    (1, 1, 1, 1, 1, 64, False, "float32"),  # S = 1
    (2, 4, 2, 37, 53, 64, True, "float32"),  # GQA, causal with Sq < Skv, primes
    (1, 3, 1, 29, 7, 128, True, "float16"),  # MQA, causal with Sq > Skv: the first 22 rows see nothing
    (1, 2, 2, 67, 67, 128, False, "bfloat16"),
    (1, 2, 1, 5, 131, 256, True, "float32"),  # head dim 256, decode-like
])
def test_flash_llvm(b, hq, hkv, sq, skv, d, causal, dtype):
    q, k, v = randn((b, hq, sq, d), dtype), randn((b, hkv, skv, d), dtype), randn((b, hkv, skv, d), dtype)
    out = flash_attention(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == q.dtype
    ref = attention_ref(q, k, v, causal)
    np.testing.assert_allclose(out.astype(np.float64), ref, atol=TOL[dtype], rtol=TOL[dtype])
    if causal and sq > skv:
        assert not out[:, :, :sq - skv].astype(np.float64).any()


def auto_pick(kernel, dims: dict) -> list:
    """The configs a kernel's config="auto" calls picked for these dims."""
    return [cfg for key, cfg in kernel._auto.items() if key[0] == tuple(sorted(dims.items()))]


def test_flash_config_auto_takes_the_cost_models_pick():
    from tilec.cost import autotune
    from tilec.ops.attention import LOG2E, flash_attention_kernel

    q, k, v = randn((1, 3, 37, 64), "float32"), randn((1, 1, 53, 64), "float32"), randn((1, 1, 53, 64), "float32")
    out = flash_attention(q, k, v, causal=True, config="auto", num_stages=1)  # a keyword given is held
    np.testing.assert_allclose(out, attention_ref(q, k, v, True), atol=TOL["float32"], rtol=TOL["float32"])
    kernel = flash_attention_kernel("float32")
    dims = {"B": 1, "HQ": 3, "HKV": 1, "SQ": 37, "SKV": 53, "D": 64}
    held = {"causal": [True], "scale_log2": [LOG2E / 8], "num_stages": [1]}
    picked = auto_pick(kernel, dims)
    assert picked == [autotune.pick_config(kernel, dims, "cpu", {**autotune.default_space(kernel, "cpu"), **held})]
    assert picked[0]["causal"] is True and picked[0]["num_stages"] == 1
    with pytest.raises(TilecArgumentError, match="config= takes"):
        flash_attention(q, k, v, config="fastest")


@pytest.mark.parametrize("splits", [1, 3])
def test_paged_config_auto_takes_the_cost_models_pick(splits):
    from tilec.cost import autotune
    from tilec.ops.paged import paged_decode_kernel, paged_split_kernel

    q, kc, vc, table, lens = paged_cache(3, 4, 2, 64, 12, 4, [7, 0, 13])
    out = paged_attention(q, kc, vc, table, lens, num_splits=splits, config="auto", num_stages=1)
    np.testing.assert_allclose(out, paged_ref(q, kc, vc, table, lens), atol=2e-5, rtol=2e-5)
    kernel = (paged_split_kernel if splits > 1 else paged_decode_kernel)("float32")
    (key, picked), = [(k, c) for k, c in kernel._auto.items() if dict(k[0])["MAXB"] == table.shape[1]]
    assert picked["num_stages"] == 1 and picked["group"] == 2  # held
    held = {k: [v] for k, v in picked.items() if k not in autotune.default_space(kernel, "cpu")}
    space = {**autotune.default_space(kernel, "cpu"), **held, "num_stages": [1]}
    assert key[-1] == (("CL", 13),)  # the longest sequence, for the loop bound that reads the lengths
    assert picked == autotune.pick_config(kernel, dict(key[0]), "cpu", space, {"CL": 13})


def test_flash_scale_and_tiles():
    q, k, v = randn((1, 2, 19, 64), "float32"), randn((1, 2, 41, 64), "float32"), randn((1, 2, 41, 64), "float32")
    out = flash_attention(q, k, v, scale=0.3, block_m=16, block_n=32)
    np.testing.assert_allclose(out, attention_ref(q, k, v, scale=0.3), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("scale", [float("nan"), float("inf")])
def test_attention_rejects_a_scale_that_is_not_finite(scale):
    q = randn((1, 1, 3, 16), "float32")
    with pytest.raises(TilecArgumentError, match="flash_attention: 'scale' is .*finite"):
        flash_attention(q, q, q, scale=scale)
    pq, kc, vc, table, lens = paged_cache(1, 2, 1, 16, 4, 5, [7])
    with pytest.raises(TilecArgumentError, match="paged_attention: 'scale' is .*finite"):
        paged_attention(pq, kc, vc, table, lens, scale=scale)


@pytest.mark.parametrize("target", ["llvm", "triton"])
@pytest.mark.parametrize("scale", [-0.4, 0.0])
def test_attention_negative_and_zero_scale(target, scale):
    # the online softmax scales the raw row max, which is only right for scale >= 0: the hosts negate q for a
    # negative scale; scale 0 is uniform attention over the visible keys
    torch = pytest.importorskip("torch") if target == "triton" else None
    q, k, v = randn((1, 2, 19, 32), "float32"), randn((1, 2, 23, 32), "float32"), randn((1, 2, 23, 32), "float32")
    wrap = (lambda x: torch.from_numpy(x)) if torch else (lambda x: x)
    out = flash_attention(wrap(q), wrap(k), wrap(v), causal=True, scale=scale, target=target)
    out = out.numpy() if torch else out
    np.testing.assert_allclose(out, attention_ref(q, k, v, causal=True, scale=scale), atol=2e-5, rtol=2e-5)
    pq, kc, vc, table, lens = paged_cache(3, 4, 2, 32, 20, 5, [13, 1, 40])
    out = paged_attention(*(wrap(x) for x in (pq, kc, vc, table, lens)), num_splits=2, scale=scale, target=target)
    out = out.numpy() if torch else out
    np.testing.assert_allclose(out, paged_ref(pq, kc, vc, table, lens, scale=scale), atol=2e-5, rtol=2e-5)


def test_flash_no_keys_is_zeros():
    q = randn((1, 2, 3, 64), "float32")
    kv = np.zeros((1, 1, 0, 64), np.float32)
    assert not flash_attention(q, kv, kv).any()


@pytest.mark.parametrize("args, match", [
    (((1, 2, 4, 64), (1, 2, 4, 32), (1, 2, 4, 32)), r"'k' has shape \(1, 2, 4, 32\); expected \[B=1, Hkv, Skv, D=64\]"),
    (((1, 3, 4, 64), (1, 2, 4, 64), (1, 2, 4, 64)), "multiple of the kv heads"),
    (((1, 2, 4, 64), (1, 2, 4, 64), (1, 2, 5, 64)), r"'v' has shape \(1, 2, 5, 64\); expected \(1, 2, 4, 64\)"),
    (((2, 4, 64), (1, 2, 4, 64), (1, 2, 4, 64)), r"'q' must have shape \[B, Hq, Sq, D\]"),
])
def test_flash_bad_shapes(args, match):
    q, k, v = (np.zeros(s, np.float32) for s in args)
    with pytest.raises(TilecArgumentError, match=match):
        flash_attention(q, k, v)


def test_flash_bad_dtypes():
    q = np.zeros((1, 1, 2, 64), np.float32)
    with pytest.raises(TilecArgumentError, match="'k' has dtype float16; expected float32"):
        flash_attention(q, q.astype(np.float16), q)
    with pytest.raises(TilecArgumentError, match="'q' has dtype int32"):
        flash_attention(q.astype(np.int32), q, q)


# ------------------------------------------------------------------------------------------------ paged
def paged_cache(nseq, hq, hkv, d, nblocks, bsize, lens, dtype="float32"):
    """q, caches and a block table whose pages are a random permutation (no page shared), unused entries -1."""
    maxb = max(1, max(-(-n // bsize) for n in lens))
    q = randn((nseq, hq, d), dtype)
    kc, vc = randn((nblocks, bsize, hkv, d), dtype), randn((nblocks, bsize, hkv, d), dtype)
    table = np.full((nseq, maxb), -1, np.int32)
    pages = iter(RNG.permutation(nblocks))
    for s, n in enumerate(lens):
        for j in range(-(-n // bsize)):
            table[s, j] = next(pages)
    return q, kc, vc, table, np.array(lens, np.int32)


def paged_ref(q, kc, vc, table, lens, scale=None):
    """Gather each sequence's tokens and run dense attention on them."""
    bsize = kc.shape[1]
    out = np.zeros(q.shape)
    for s, n in enumerate(lens):
        tok = np.arange(n)
        k = np.asarray(kc, np.float64)[table[s, tok // bsize], tok % bsize]  # [n, hkv, d]
        v = np.asarray(vc, np.float64)[table[s, tok // bsize], tok % bsize]
        out[s] = attention_ref(q[s][None, :, None], k.transpose(1, 0, 2)[None], v.transpose(1, 0, 2)[None],
                                scale=scale)[0, :, 0]
    return out


@pytest.mark.parametrize("splits", [1, 3, None])
def test_paged_llvm(splits):
    # GQA 6:2, page size 5 (prime), a length-0 sequence, lengths off the page boundary, one exactly on it
    q, kc, vc, table, lens = paged_cache(4, 6, 2, 64, 40, 5, [17, 0, 61, 10])
    out = paged_attention(q, kc, vc, table, lens, num_splits=splits)
    np.testing.assert_allclose(out, paged_ref(q, kc, vc, table, lens), atol=2e-5, rtol=2e-5)
    assert not out[1].any()


def test_paged_half_mha_many_splits():
    # more splits than some sequences have pages: their trailing splits are empty
    q, kc, vc, table, lens = paged_cache(2, 2, 2, 128, 30, 16, [3, 300], "float16")
    out = paged_attention(q, kc, vc, table, lens, num_splits=7, scale=0.05)
    ref = paged_ref(q, kc, vc, table, lens, scale=0.05)
    np.testing.assert_allclose(out.astype(np.float64), ref, atol=3e-3, rtol=3e-3)


@pytest.mark.parametrize("pages_per_iter, splits", [(1, 1), (3, 1), (3, 4), (8, 2)])
def test_paged_pages_per_step(pages_per_iter, splits):
    # steps of several pages: a step that runs past a sequence's last page (unused table entries are -1) or past
    # its split's last page must mask those tokens, on both backends
    q, kc, vc, table, lens = paged_cache(3, 4, 2, 32, 30, 5, [23, 1, 41])
    ref = paged_ref(q, kc, vc, table, lens)
    out = paged_attention(q, kc, vc, table, lens, num_splits=splits, pages_per_iter=pages_per_iter)
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=2e-5)
    out = paged_attention(*(torch.from_numpy(x) for x in (q, kc, vc, table, lens)), num_splits=splits,
                          target="triton", pages_per_iter=pages_per_iter)
    np.testing.assert_allclose(out.numpy(), ref, atol=2e-5, rtol=2e-5)


def test_paged_all_empty():
    q, kc, vc, table, lens = paged_cache(2, 2, 1, 64, 4, 8, [0, 0])
    assert not paged_attention(q, kc, vc, table, lens).any()
    assert not paged_attention(q, kc, vc, table, lens, check=False).any()  # launched: no host look at the lengths


def test_split_choice():
    assert pick_num_splits(blocks=2, pages=1000, where="triton") == 250  # >= 4 pages per split
    assert pick_num_splits(blocks=256, pages=256, where="triton") == 3  # about 6 blocks per SM: 768
    assert pick_num_splits(blocks=768, pages=1000, where="triton") == 1  # the batch keeps the GPU busy
    assert pick_num_splits(blocks=2, pages=6, where="triton") == 1  # too short to split
    assert pick_num_splits(blocks=1, pages=1000, where="llvm") == 2 * settings.num_threads


def test_paged_bad_pages():
    q, kc, vc, table, lens = paged_cache(2, 2, 1, 64, 6, 4, [5, 9])
    bad = table.copy()
    bad[1, 2] = 6
    with pytest.raises(TilecArgumentError, match=r"block_table\[1, 2\] = 6 is out of range"):
        paged_attention(q, kc, vc, bad, lens)
    bad[1, 2] = -1
    with pytest.raises(TilecArgumentError, match=r"block_table\[1, 2\] = -1"):
        paged_attention(q, kc, vc, bad, lens)
    with pytest.raises(TilecArgumentError, match=r"context_lens\[1\] = 13 is out of range"):
        paged_attention(q, kc, vc, table, np.array([5, 13], np.int32))
    with pytest.raises(TilecArgumentError, match=r"context_lens\[0\] = -1"):
        paged_attention(q, kc, vc, table, np.array([-1, 9], np.int32))


def test_paged_bad_shapes():
    q, kc, vc, table, lens = paged_cache(2, 2, 1, 64, 6, 4, [5, 9])
    with pytest.raises(TilecArgumentError, match=r"'v_cache' must have shape \(6, 4, 1, 64\)"):
        paged_attention(q, kc, vc[:, :3], table, lens)
    with pytest.raises(TilecArgumentError, match=r"'k_cache' must have shape \(6, 4, 1, 64\)"):
        paged_attention(q, kc[..., :32], vc, table, lens)
    with pytest.raises(TilecArgumentError, match=r"'context_lens' must have shape \(2,\)"):
        paged_attention(q, kc, vc, table, lens[:1])
    with pytest.raises(TilecArgumentError, match="'block_table' must hold integers"):
        paged_attention(q, kc, vc, table.astype(np.float32), lens)


# ------------------------------------------------------------------------------------------------ interpreter
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("causal, dtype", [(True, "float32"), (False, "float16")])
def test_flash_triton_interpreter(causal, dtype):
    q, k, v = randn((1, 2, 19, 64), dtype), randn((1, 1, 23, 64), dtype), randn((1, 1, 23, 64), dtype)
    out = flash_attention(*(torch.from_numpy(x) for x in (q, k, v)), causal=causal, target="triton")
    assert isinstance(out, torch.Tensor) and out.dtype == getattr(torch, dtype)
    np.testing.assert_allclose(out.double().numpy(), attention_ref(q, k, v, causal), atol=TOL[dtype],
                               rtol=TOL[dtype])


def test_flash_config_auto_triton_interpreter():
    q, k, v = randn((1, 2, 19, 64), "float16"), randn((1, 1, 23, 64), "float16"), randn((1, 1, 23, 64), "float16")
    out = flash_attention(*(torch.from_numpy(x) for x in (q, k, v)), config="auto", target="triton")
    np.testing.assert_allclose(out.double().numpy(), attention_ref(q, k, v), atol=TOL["float16"],
                               rtol=TOL["float16"])


def test_paged_config_auto_triton_interpreter():
    q, kc, vc, table, lens = paged_cache(2, 4, 2, 64, 6, 4, [11, 6])
    out = paged_attention(*(torch.from_numpy(x) for x in (q, kc, vc, table, lens)), config="auto", target="triton")
    np.testing.assert_allclose(out.numpy(), paged_ref(q, kc, vc, table, lens), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("splits", [1, 2])
def test_paged_triton_interpreter(splits):
    q, kc, vc, table, lens = paged_cache(3, 4, 2, 64, 12, 4, [7, 0, 13])
    out = paged_attention(*(torch.from_numpy(x) for x in (q, kc, vc, table, lens)), num_splits=splits,
                          target="triton")
    np.testing.assert_allclose(out.numpy(), paged_ref(q, kc, vc, table, lens), atol=2e-5, rtol=2e-5)
