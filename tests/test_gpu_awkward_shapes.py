"""The LLM ops with their GPU configs (Triton compiled for the device, not the interpreter) on awkward shapes, against
NumPy float64. Runs only where torch sees a CUDA device: `python -m pytest tests/test_gpu_awkward_shapes.py` on the
GPU machine. The CPU suite covers the same ops through the interpreter with its own small tiles; these cases reach
the GPU tiles (256-row flash blocks, 128-key sparse steps, paged splits) at sizes that are not multiples of them."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import tilec.ops as ops  # noqa: E402
from tilec.ops.moe import grouped_gemm_reference  # noqa: E402
from tilec.ops.sparse import sparse_attention_reference  # noqa: E402

from test_attention import attention_ref, paged_cache, paged_ref  # noqa: E402

RNG = np.random.default_rng(11)
#: max |error| for outputs that are convex combinations of rows of magnitude ~1-4, per storage dtype
ATTN_TOL = {"float16": 1.5e-2, "bfloat16": 6e-2, "float32": 2e-3}
TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def cuda(x: np.ndarray, dtype: str):
    return torch.from_numpy(np.ascontiguousarray(x, np.float32)).cuda().to(TORCH[dtype])


def as_used(t) -> np.ndarray:
    """The values the kernel saw, in float64 (inputs rounded to their dtype first)."""
    return t.float().cpu().numpy().astype(np.float64)


@pytest.mark.parametrize("b,hq,hkv,sq,skv,d,causal,dtype", [
    (1, 3, 1, 1, 1, 64, False, "bfloat16"),
    (2, 4, 2, 257, 1000, 128, True, "bfloat16"),     # bottom-right causal, Sq < Skv, not multiples of 256 / 64
    (1, 2, 2, 1000, 300, 128, True, "float16"),      # Sq > Skv: the first rows see no key
    (1, 6, 3, 333, 333, 128, False, "float16"),
    (1, 2, 1, 129, 77, 64, True, "bfloat16"),
    (1, 2, 2, 100, 190, 256, False, "float16"),
])
def test_flash_gpu(b, hq, hkv, sq, skv, d, causal, dtype):
    q, k, v = (cuda(RNG.standard_normal(s), dtype) for s in ((b, hq, sq, d), (b, hkv, skv, d), (b, hkv, skv, d)))
    out = ops.flash_attention(q, k, v, causal=causal)
    ref = attention_ref(as_used(q), as_used(k), as_used(v), causal=causal)
    np.testing.assert_allclose(as_used(out), ref, atol=ATTN_TOL[dtype], rtol=0)


@pytest.mark.parametrize("lens,hq,hkv,splits", [
    ([0, 1, 17, 1000], 8, 2, None),        # empty, one token, partial pages; the op picks the splits
    ([4096, 33], 32, 8, None),             # two sequences: many splits, one nearly empty
    ([300] * 40, 64, 8, 1),                # unsplit, 64-head groups
])
def test_paged_gpu(lens, hq, hkv, splits):
    q, kc, vc, table, ctx = paged_cache(len(lens), hq, hkv, 128, sum(-(-n // 16) for n in lens) + 3, 16, lens)
    args = [cuda(x, "bfloat16") for x in (q, kc, vc)]
    out = ops.paged_attention(*args, torch.from_numpy(table).cuda(), torch.from_numpy(ctx).cuda(),
                              num_splits=splits)
    ref = paged_ref(as_used(args[0]), as_used(args[1]), as_used(args[2]), table, ctx)
    np.testing.assert_allclose(as_used(out), ref, atol=ATTN_TOL["bfloat16"], rtol=0)
    if lens[0] == 0:
        assert not out[0].any()


@pytest.mark.parametrize("ntok,hq,n,topk,latent,splits", [
    (3, 16, 300, 1000, True, None),    # topk past N: indices repeat; 128-key steps, the last partial
    (1, 128, 5000, 2048, True, None),  # one token: split top-k, two 64-head blocks
    (5, 20, 777, 333, True, 1),        # 20 heads (padded to 32 rows)
    (4, 16, 999, 37, False, None),     # separate V: the chunked-head-dim kernel
])
def test_sparse_mla_gpu(ntok, hq, n, topk, latent, splits):
    q = cuda(RNG.standard_normal((ntok, hq, 576)) / 4, "bfloat16")
    kv = cuda(RNG.standard_normal((n, 1, 576)) / 4, "bfloat16")
    v = kv[:, :, :512] if latent else kv[:, :, :512].contiguous()
    idx = RNG.integers(0, n, (ntok, topk)).astype(np.int32)
    idx[0, ::3] = -1
    if ntok > 1:
        idx[-1] = -1  # a token with no valid key: zeros
    out = ops.sparse_attention(q, kv, v, torch.from_numpy(idx).cuda(), num_splits=splits)
    ref = sparse_attention_reference(as_used(q), as_used(kv), as_used(v), idx)
    np.testing.assert_allclose(as_used(out), ref, atol=ATTN_TOL["bfloat16"] / 4, rtol=0)


@pytest.mark.parametrize("sizes,k,n", [([0, 37, 0, 5, 130], 200, 129), ([512] * 3 + [1], 384, 256)])
def test_grouped_gemm_gpu(sizes, k, n):
    m = sum(sizes)
    x = cuda(RNG.standard_normal((m + 3, k)) / 8, "bfloat16")  # 3 rows past the last expert: zeros
    w = cuda(RNG.standard_normal((len(sizes), k, n)) / 8, "bfloat16")
    offsets = np.cumsum(sizes).astype(np.int32)
    out = ops.grouped_gemm(x, w, torch.from_numpy(offsets).cuda())
    ref = grouped_gemm_reference(as_used(x), as_used(w), offsets)
    np.testing.assert_allclose(as_used(out), ref, atol=0.05, rtol=0.02)
    assert not out[m:].any()


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (128, 128, 128), (1000, 37, 1000), (127, 300, 65)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_gemm_gpu(m, n, k, dtype):
    # each dtype's GPU tiles (fp32/fp64: 128x64x16 on the CUDA cores; bf16: 128x256x64 on the tensor cores)
    a, b = RNG.standard_normal((m, k)), RNG.standard_normal((k, n))
    ta, tb = (torch.from_numpy(x).cuda().to(getattr(torch, dtype)) for x in (a, b))
    out = ops.gemm(ta, tb)
    ref = ta.double().cpu().numpy() @ tb.double().cpu().numpy()  # the inputs as rounded to their dtype
    tol = {"float32": 1e-4, "float64": 1e-10, "bfloat16": 2e-2}[dtype] * np.sqrt(k)
    np.testing.assert_allclose(out.double().cpu().numpy(), ref, atol=tol, rtol=tol)
