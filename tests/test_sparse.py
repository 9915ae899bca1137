"""DeepSeek sparse attention, the lightning indexer and top-k: LLVM backend (NumPy) and Triton's interpreter (torch
CPU tensors, target="triton"), against NumPy float64."""
import numpy as np
import pytest

from tilec.errors import TilecArgumentError
from tilec.ops.indexer import lightning_indexer, lightning_indexer_reference, topk_indices
from tilec.ops.sparse import (heads_per_block, is_leading_columns, latent_heads_per_block, sparse_attention,
                               sparse_attention_reference, sparse_mla_kernel)

RNG = np.random.default_rng(7)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def make_indices(ntok, topk, n, pad_fraction=0.3):
    idx = RNG.integers(0, n, (ntok, topk)).astype(np.int32)
    idx[RNG.random((ntok, topk)) < pad_fraction] = -1
    return idx


def attention_inputs(ntok, hq, hkv, d, dv, n, topk, dtype=np.float32):
    return rand(ntok, hq, d, dtype=dtype), rand(n, hkv, d, dtype=dtype), rand(n, hkv, dv, dtype=dtype), \
        make_indices(ntok, topk, n)


# ------------------------------------------------------------------------------------------ sparse attention, LLVM
@pytest.mark.parametrize("ntok,hq,hkv,d,dv,n,topk,config", [
    (1, 1, 1, 16, 16, 1, 1, {}),                                  # everything 1-ish
    (3, 6, 2, 40, 24, 23, 37, {"block_n": 16, "block_d": 16}),   # GQA 3 heads/kv head, D and topk not multiples
    (5, 5, 1, 33, 17, 41, 70, {"block_n": 32}),                  # prime group (block_h = 5), primes elsewhere
    (2, 16, 1, 576, 512, 300, 256, {}),                          # the MLA head dims, 9 x 64 QK chunks
])
def test_sparse_attention_llvm(ntok, hq, hkv, d, dv, n, topk, config):
    q, k, v, idx = attention_inputs(ntok, hq, hkv, d, dv, n, topk)
    out = sparse_attention(q, k, v, idx, **config)
    assert out.shape == (ntok, hq, dv) and out.dtype == np.float32
    np.testing.assert_allclose(out, sparse_attention_reference(q, k, v, idx), rtol=1e-4, atol=1e-5)


def test_rows_of_only_padding_give_zeros_and_scale_is_used():
    q, k, v, idx = attention_inputs(4, 4, 2, 24, 8, 19, 21)
    idx[0] = -1
    idx[2, :] = -1
    idx[2, 20] = 5  # a single valid key in the last, partial block
    out = sparse_attention(q, k, v, idx, scale=0.37, block_n=16)
    ref = sparse_attention_reference(q, k, v, idx, scale=0.37)
    assert np.all(out[0] == 0.0) and np.all(out[2] == v[5, np.arange(4) // 2])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shared_latent", [False, True])
def test_sparse_negative_scale(shared_latent):
    # a negative scale reaches the kernels as -q with -scale (their online softmax scales the raw row max)
    q, k, v, idx = attention_inputs(3, 4, 1, 24, 16, 29, 21)
    if shared_latent:
        v = k[:, :, :16]
    out = sparse_attention(q, k, v, idx, scale=-0.3, block_n=16)
    np.testing.assert_allclose(out, sparse_attention_reference(q, k, v, idx, scale=-0.3), rtol=1e-4, atol=1e-5)


def test_sparse_attention_fp16_llvm():
    q, k, v, idx = attention_inputs(3, 4, 1, 64, 32, 50, 40, dtype=np.float16)
    out = sparse_attention(q, k, v, idx)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float64), sparse_attention_reference(q, k, v, idx), atol=3e-3,
                               rtol=3e-3)


# ------------------------------------------------------------------------------------------ MLA shared latent
@pytest.mark.parametrize("ntok,hq,hkv,d,dv,n,topk,config", [
    (1, 1, 1, 17, 16, 1, 1, {}),                                  # one key, a 1-column rope part
    (4, 6, 2, 40, 24, 23, 37, {"block_n": 16}),                   # GQA, topk not a multiple of block_n
    (3, 5, 1, 81, 64, 41, 70, {}),                                # prime group and rope width (17)
    (2, 16, 1, 576, 512, 300, 131, {"block_n": 32}),              # the MLA head dims
])
def test_sparse_mla_latent_view_llvm(ntok, hq, hkv, d, dv, n, topk, config):
    q, kv, _, idx = attention_inputs(ntok, hq, hkv, d, dv, n, topk)
    idx[0, :] = -1  # a token whose row is all padding
    v = kv[:, :, :dv]  # MLA: V is the latent part of the same rows
    assert is_leading_columns(v, kv)
    out = sparse_attention(q, kv, v, idx, **config)
    assert out.shape == (ntok, hq, dv) and np.all(out[0] == 0.0)
    np.testing.assert_allclose(out, sparse_attention_reference(q, kv, v, idx), rtol=1e-4, atol=1e-5)
    # a copy of the same columns goes through the separate-K/V kernel, to the same result
    copied = sparse_attention(q, kv, np.ascontiguousarray(v), idx)
    np.testing.assert_allclose(copied, out, rtol=1e-5, atol=1e-6)


def test_sparse_mla_latent_view_triton_interpreter():
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    q, kv, _, idx = attention_inputs(3, 4, 1, 40, 24, 29, 37)
    idx[2] = -1
    tq, tkv, tidx = (torch.from_numpy(x) for x in (q, kv, idx))
    out = sparse_attention(tq, tkv, tkv[:, :, :24], tidx, target="triton")
    np.testing.assert_allclose(out.numpy(), sparse_attention_reference(q, kv, kv[:, :, :24], idx), rtol=1e-4,
                               atol=1e-5)


def test_sparse_config_auto_triton_interpreter():
    """The GPU model's pick (arch h100) runs through the Triton backend, here under its interpreter."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    q, kv, _, idx = attention_inputs(3, 4, 1, 40, 24, 29, 37)
    tq, tkv, tidx = (torch.from_numpy(x) for x in (q, kv, idx))
    out = sparse_attention(tq, tkv, tkv[:, :, :24], tidx, config="auto", target="triton")
    np.testing.assert_allclose(out.numpy(), sparse_attention_reference(q, kv, kv[:, :, :24], idx), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("backend", ["llvm", "triton"])
def test_sparse_mla_split_topk_merges_splits(backend):
    """Split top-k: splits of 2 index blocks, the last partial; a token whose first splits see only padding and one
    with no valid key at all (every split empty)."""
    q, kv, _, idx = attention_inputs(3, 4, 1, 40, 24, 53, 83)
    idx[0, :48] = -1
    idx[1] = -1
    ref = sparse_attention_reference(q, kv, kv[:, :, :24], idx)
    if backend == "llvm":
        out = sparse_attention(q, kv, kv[:, :, :24], idx, num_splits=3, block_n=16)
    else:
        torch = pytest.importorskip("torch")
        pytest.importorskip("triton")
        tq, tkv, tidx = (torch.from_numpy(x) for x in (q, kv, idx))
        out = sparse_attention(tq, tkv, tkv[:, :, :24], tidx, num_splits=3, block_n=16, target="triton").numpy()
    assert np.all(out[1] == 0.0)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shared_latent, splits", [(False, None), (True, None), (True, 3)])
def test_sparse_config_auto_holds_the_heads_per_block(shared_latent, splits):
    """config="auto": the model picks the tiles; block_h (a divisor of the group) and, when the top-k is split,
    block_n (the host counts its splits in blocks of it) stay the op's."""
    from tilec.cost import autotune
    from tilec.ops.sparse import sparse_attention_kernel, sparse_mla_kernel, sparse_mla_split_kernel

    q, kv, v, idx = attention_inputs(3, 6, 2, 40, 24, 53, 83)
    v = kv[:, :, :24] if shared_latent else v
    out = sparse_attention(q, kv, v, idx, config="auto", num_splits=splits)
    np.testing.assert_allclose(out, sparse_attention_reference(q, kv, v, idx), rtol=1e-4, atol=1e-5)
    kernel = (sparse_mla_split_kernel if splits else sparse_mla_kernel if shared_latent else
              sparse_attention_kernel)("float32")
    ((dims, picked),) = [(dict(key[0]), cfg) for key, cfg in kernel._auto.items()
                         if dict(key[0])["N"] == 53 and dict(key[0])["TOPK"] == 83]
    assert picked["block_h"] == heads_per_block(3) and picked["group"] == 3
    held = ["group", "block_h", "scale"] + (["block_n", "blocks_per_split"] if splits else [])
    if splits:
        assert picked["block_n"] == 64  # the op's CPU block_n, in which its 2 blocks per split are counted
    space = {**autotune.default_space(kernel, "cpu"), **{k: [picked[k]] for k in held}}
    assert picked == autotune.pick_config(kernel, dims, "cpu", space)


def test_only_a_leading_column_view_shares_the_latent():
    kv = rand(10, 2, 12)
    assert is_leading_columns(kv[:, :, :8], kv)
    assert not is_leading_columns(kv[:, :, 4:], kv)  # trailing columns: not V = K[..., :DV]
    assert not is_leading_columns(np.ascontiguousarray(kv[:, :, :8]), kv)
    assert not is_leading_columns(kv, kv)  # no rope columns left over: the separate-K/V kernel runs
    assert not is_leading_columns(kv[:5, :, :8], kv)


def test_sparse_mla_kernel_prints_one_load_per_gathered_row():
    """The shared-latent kernel reads each gathered row once: two gathers (latent, rope) from KV, none from a V."""
    src = sparse_mla_kernel("bfloat16").source("triton", S=4, H=16, D=576, N=64, HK=1, DV=512, TOPK=128,
                                                group=16, block_h=16)
    assert src.count("tl.load(KV +") == 2 and "V +" not in src.replace("KV +", "")
    # row ids clamped by T.min(..., N - 1) are in bounds whatever the data: the gathers carry no mask
    gathers = [line for line in src.splitlines() if "tl.load(KV +" in line]
    assert all("mask" not in line for line in gathers), gathers


def test_few_tokens_split_the_heads_of_a_memory_bound_latent_block():
    assert latent_heads_per_block(16, 64, "triton") == 8  # 64 blocks of 16 heads -> 128 of 8
    assert latent_heads_per_block(16, 512, "triton") == 16  # the grid is full already
    assert latent_heads_per_block(128, 8, "triton") == 64  # compute-bound blocks keep their 64 heads
    assert latent_heads_per_block(12, 4, "triton") == 12  # half of 12 (6) is below the 8-head floor
    assert latent_heads_per_block(16, 1, "llvm") == 16  # CPU threads take whole blocks


def test_heads_per_block_divides_the_group():
    assert [heads_per_block(g) for g in (1, 5, 16, 96, 128, 67)] == [1, 5, 16, 48, 64, 1]


# ------------------------------------------------------------------------------------------ Triton interpreter
def test_sparse_attention_triton_interpreter():
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    q, k, v, idx = attention_inputs(2, 4, 2, 20, 12, 13, 19)
    idx[1] = -1
    out = sparse_attention(*(torch.from_numpy(x) for x in (q, k, v, idx)), target="triton", block_n=16,
                           block_d=16)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), sparse_attention_reference(q, k, v, idx), rtol=1e-4, atol=1e-5)


def test_indexer_and_topk_triton_interpreter():
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    q, k, w = rand(3, 4, 16), rand(21, 16), rand(3, 4)
    scores = lightning_indexer(*(torch.from_numpy(x) for x in (q, k, w)), target="triton", block_n=16)
    np.testing.assert_allclose(scores.numpy(), lightning_indexer_reference(q, k, w), rtol=1e-4, atol=1e-4)
    picked = topk_indices(scores, 5, lengths=torch.tensor([1, 7, 21]))
    assert picked.dtype == torch.int32
    assert np.array_equal(picked.numpy(), topk_indices(scores.numpy(), 5, lengths=np.array([1, 7, 21])))


def test_topk_ties_take_the_lower_index_on_both_paths():
    torch = pytest.importorskip("torch")
    scores = np.array([[0.0, 2.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    want = np.array([[1, 4, 0, 2], [0, 1, 2, 3]], np.int32)
    assert np.array_equal(topk_indices(scores, 4), want)
    assert np.array_equal(topk_indices(torch.from_numpy(scores), 4).numpy(), want)
    # with lengths: row 1 has 2 valid keys, the rest padding
    assert np.array_equal(topk_indices(scores, 4, lengths=np.array([6, 2]))[1], [0, 1, -1, -1])


# ------------------------------------------------------------------------------------------ indexer, top-k
@pytest.mark.parametrize("ntok,h,di,n", [(1, 1, 8, 1), (7, 4, 32, 70), (3, 16, 64, 129)])
def test_lightning_indexer_llvm(ntok, h, di, n):
    q, k, w = rand(ntok, h, di), rand(n, di), rand(ntok, h)
    scores = lightning_indexer(q, k, w)
    assert scores.shape == (ntok, n) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, lightning_indexer_reference(q, k, w), rtol=1e-4, atol=1e-4)


def test_topk_indices_causal_padding_and_order():
    scores = rand(4, 9)
    lengths = np.array([0, 1, 4, 9])
    picked = topk_indices(scores, 6, lengths=lengths)
    assert picked.shape == (4, 6) and picked.dtype == np.int32
    assert np.all(picked[0] == -1)
    assert picked[1, 0] == 0 and np.all(picked[1, 1:] == -1)
    assert sorted(picked[2, :4]) == [0, 1, 2, 3] and np.all(picked[2, 4:] == -1)
    assert np.array_equal(picked[3], np.argsort(-scores[3])[:6])  # best first
    assert np.all(topk_indices(scores, 12)[:, 9:] == -1)  # k > N pads with -1


def test_indexer_feeds_sparse_attention_causally():
    """The DSA pipeline: score keys, keep each token's top-k among its causal prefix, attend to those."""
    ntok, h, d, dv, hi, di, topk = 11, 4, 32, 16, 2, 16, 6
    q, kv, v = rand(ntok, h, d), rand(ntok, 1, d), rand(ntok, 1, dv)
    qi, ki, w = rand(ntok, hi, di), rand(ntok, di), rand(ntok, hi)
    idx = topk_indices(lightning_indexer(qi, ki, w), topk, lengths=np.arange(1, ntok + 1))
    assert np.all(idx[:, :1] >= 0) and np.all(idx < np.arange(1, ntok + 1)[:, None])  # never a future key
    out = sparse_attention(q, kv, v, idx)
    np.testing.assert_allclose(out, sparse_attention_reference(q, kv, v, idx), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ bad input
def test_out_of_range_indices_are_refused_before_launch():
    q, k, v, idx = attention_inputs(2, 2, 1, 8, 8, 5, 4)
    for bad in (5, -2):
        wrong = idx.copy()
        wrong[1, 3] = bad
        with pytest.raises(TilecArgumentError, match=r"indices\[1, 3\] = " + str(bad) + r".*\[-1, 4\]"):
            sparse_attention(q, k, v, wrong)


def test_shape_and_dtype_mismatches_name_the_argument():
    q, k, v, idx = attention_inputs(2, 4, 2, 8, 8, 5, 4)
    with pytest.raises(TilecArgumentError, match=r"'v' must have shape \(5, 2, 8\)"):
        sparse_attention(q, k, v[:4], idx)
    with pytest.raises(TilecArgumentError, match=r"'k' must have shape \(5, 2, 8\)"):
        sparse_attention(q, k[:, :, :6], v, idx)
    with pytest.raises(TilecArgumentError, match="multiple of k's 3 kv heads"):
        sparse_attention(q, rand(5, 3, 8), rand(5, 3, 8), idx)
    with pytest.raises(TilecArgumentError, match="block_h=3 must divide the 2 query heads"):
        sparse_attention(q, k, v, idx, block_h=3)
    with pytest.raises(TilecArgumentError, match="'indices' must have shape"):
        sparse_attention(q, k, v, idx[:1])
    with pytest.raises(TilecArgumentError, match="'indices' must hold integers"):
        sparse_attention(q, k, v, idx.astype(np.float32))
    with pytest.raises(TilecArgumentError, match="'k' has dtype float16"):
        sparse_attention(q, k.astype(np.float16), v, idx)
    with pytest.raises(TilecArgumentError, match=r"'weights' must have shape \(2, 3\)"):
        lightning_indexer(rand(2, 3, 8), rand(5, 8), rand(2, 4))
    with pytest.raises(TilecArgumentError, match=r"lengths\[1\] = 10"):
        topk_indices(rand(2, 9), 3, lengths=np.array([2, 10]))
