"""DeepSeek-V3.2's lightning indexer and the top-k selection that feeds sparse attention.

scores[t, n] = sum_h weights[t, h] * relu(q[t, h] . k[n]): one block scores one token against `block_n` keys with
a single GEMM (the token's H indexer heads are its M dim), applies relu and the head weights elementwise, and
reduces over the heads.
"""
import functools

import numpy as np

import tilec
import tilec.language as T

from . import _host

OP = "lightning_indexer"


@functools.cache
def lightning_indexer_kernel(dtype: str):
    @tilec.kernel
    def lightning_indexer_fwd(Q: T.Tensor[("S", "H", "D"), dtype], K: T.Tensor[("N", "D"), dtype],
                              W: T.Tensor[("S", "H"), "float32"], Out: T.Tensor[("S", "N"), "float32"],
                              *, block_n: int = 64):
        with T.Kernel(T.ceildiv(N, block_n), S) as (bx, t):
            q = T.alloc_shared((H, D), dtype)
            k = T.alloc_shared((block_n, D), dtype)
            w = T.alloc_fragment((H,), "float32")
            s = T.alloc_fragment((H, block_n), "float32")
            out = T.alloc_fragment((block_n,), "float32")
            T.copy(Q[t, 0, 0], q)
            T.copy(K[bx * block_n, 0], k)
            T.copy(W[t, 0], w)
            T.clear(s)
            T.gemm(q, k, s, transpose_b=True)
            for h, j in T.Parallel(H, block_n):
                s[h, j] = T.relu(s[h, j]) * w[h]
            T.reduce_sum(s, out, dim=0)
            T.copy(out, Out[t, bx * block_n])

    return lightning_indexer_fwd


def lightning_indexer(q, k, weights, *, target=None, **config):
    """Index scores [T, N] (float32) = sum_h weights[t, h] * relu(q[t, h] . k[n]) for q [T, H, Di], k [N, Di],
    weights [T, H]; the result has q's kind (NumPy -> LLVM, torch -> Triton). Keywords override the tile config
    (block_n)."""
    _host.check_array(OP, "q", q, 3, _host.FLOAT_DTYPES)
    _host.check_array(OP, "k", k, 2, _host.FLOAT_DTYPES)
    _host.check_array(OP, "weights", weights, 2, _host.FLOAT_DTYPES)
    _host.check_same_kind(OP, {"q": q, "k": k, "weights": weights})
    ntok, h, di = q.shape
    n = k.shape[0]
    _host.check_shape(OP, "k", k, (n, di), "[N, Di] with q's Di")
    _host.check_shape(OP, "weights", weights, (ntok, h), "[T, H] with q's T and H")
    if _host.dtype_name(k) != _host.dtype_name(q):
        raise tilec.TilecArgumentError(f"{OP}: 'k' has dtype {_host.dtype_name(k)}; expected q's "
                                       f"{_host.dtype_name(q)}")
    out = _host.zeros(q, (ntok, n), "float32")
    if ntok == 0 or n == 0:
        return out
    if _host.dtype_name(weights) != "float32":
        weights = weights.float() if _host.is_torch(weights) else weights.astype(np.float32)
    kernel = lightning_indexer_kernel(_host.dtype_name(q))
    kernel(*(_host.contiguous(x) for x in (q, k, weights)), out, target=target, **config)
    return out


def topk_indices(scores, k: int, lengths=None, *, check=True):
    """int32 [T, k]: per row, the indices of the k largest scores, best first, padded with -1 where the row has
    fewer than k valid keys. lengths[t] = the number of valid keys of row t (keys 0..lengths[t]-1; causal
    attention passes lengths = position + 1); None means all N. Equal scores (relu makes many exactly 0) are taken
    lower index first, so NumPy and torch pick the same keys. Runs on the host side with NumPy (argpartition) or
    torch (a stable sort, on the tensor's device): it is a selection, not a tile kernel. `check=False` skips the
    check that 0 <= lengths[t] <= N."""
    _host.check_array("topk_indices", "scores", scores, 2, ("float16", "bfloat16", "float32", "float64"))
    ntok, n = scores.shape
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise tilec.TilecArgumentError(f"topk_indices: k must be a non-negative int, got {k!r}")
    if lengths is None:
        lengths_np = np.full(ntok, n, np.int64)
    else:
        _host.check_array("topk_indices", "lengths", lengths, 1)
        _host.check_shape("topk_indices", "lengths", lengths, (ntok,), "one length per row of scores")
        lengths_np = _host.host_numpy(lengths).astype(np.int64)
        if check:
            _host.check_index_range("topk_indices", "lengths", lengths_np, 0, n + 1, "a row's number of valid keys")
    kk = min(int(k), n)
    rank = np.arange(kk)
    valid = rank[None, :] < lengths_np[:, None]  # the best `length` picks are valid keys, the rest padding
    if _host.is_torch(scores):
        import torch

        masked = scores.float().masked_fill(
            torch.arange(n, device=scores.device)[None, :] >= torch.as_tensor(lengths_np, device=scores.device)[:, None],
            -float("inf"))
        picked = torch.sort(masked, dim=1, descending=True, stable=True).indices[:, :kk].to(torch.int32)
        picked = torch.where(torch.as_tensor(valid, device=scores.device), picked, -1)
        out = torch.full((ntok, int(k)), -1, dtype=torch.int32, device=scores.device)
        out[:, :kk] = picked
        return out
    masked = np.where(np.arange(n)[None, :] < lengths_np[:, None], np.asarray(scores, np.float64), -np.inf)
    if 0 < kk < n:
        part = np.argpartition(-masked, kk - 1, axis=1)[:, :kk]
        chosen = np.take_along_axis(masked, part, axis=1)
        kth = chosen.min(axis=1, keepdims=True)  # the kk-th largest score
        # rows where keys equal to it were left out may have left out a lower index: there take the keys above
        # it, then the lowest-index keys equal to it
        ties = masked == kth
        redo = np.nonzero(ties.sum(1) > (chosen == kth).sum(1))[0]
        if redo.size:
            above, tied = masked[redo] > kth[redo], ties[redo]
            take = above | (tied & (np.cumsum(tied, axis=1) <= kk - above.sum(1, keepdims=True)))
            part[redo] = np.nonzero(take)[1].reshape(redo.size, kk)
        part.sort(axis=1)  # ascending index, so that the stable sort below keeps equal scores in index order
    else:
        part = np.tile(np.arange(kk), (ntok, 1))
    order = np.argsort(-np.take_along_axis(masked, part, axis=1), axis=1, kind="stable")
    picked = np.take_along_axis(part, order, axis=1)
    out = np.full((ntok, int(k)), -1, np.int32)
    out[:, :kk] = np.where(valid, picked, -1)
    return out


def lightning_indexer_reference(q, k, weights) -> np.ndarray:
    q, k, weights = (np.asarray(x, dtype=np.float64) for x in (q, k, weights))
    return np.einsum("th,thn->tn", weights, np.maximum(np.einsum("thd,nd->thn", q, k), 0.0))
