"""Random awkward shapes for flash, paged and sparse attention and grouped GEMM, on the LLVM backend and Triton's
interpreter, against the NumPy float64 references; prints each mismatch or error. Not collected by pytest (no
test_ prefix): `python tests/fuzz_ops.py [SEED] [SECONDS]`. On 2026-12-02 seeds 1 and 2 ran 2246 + 1676 cases with
no failure."""
import os
import sys
import time

import numpy as np
import torch

import tilec.ops as ops
from tilec.ops.moe import grouped_gemm_reference
from tilec.ops.sparse import sparse_attention_reference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_attention import attention_ref, paged_ref  # noqa: E402

rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
def r(*s): return rng.standard_normal(s).astype(np.float32)
fails = 0
t_end = time.time() + float(sys.argv[2] if len(sys.argv) > 2 else 300)
n = 0
while time.time() < t_end:
    n += 1
    target = rng.choice(["llvm", "triton"])
    wrap = (lambda x: torch.from_numpy(x)) if target == "triton" else (lambda x: x)
    unwrap = (lambda x: x.numpy()) if target == "triton" else (lambda x: x)
    which = rng.choice(["flash", "paged", "sparse", "grouped"])
    try:
        if which == "flash":
            hkv = int(rng.integers(1, 3)); g = int(rng.integers(1, 4)); d = int(rng.choice([16, 32, 64]))
            b = int(rng.integers(1, 3)); sq = int(rng.integers(1, 70)); skv = int(rng.integers(1, 70))
            causal = bool(rng.integers(0, 2)); scale = [None, 0.3, -0.2][int(rng.integers(0, 3))]
            q, k, v = r(b, hkv * g, sq, d), r(b, hkv, skv, d), r(b, hkv, skv, d)
            out = unwrap(ops.flash_attention(wrap(q), wrap(k), wrap(v), causal=causal, scale=scale, target=target))
            ref = attention_ref(q, k, v, causal, scale)
            desc = (b, hkv * g, hkv, sq, skv, d, causal, scale)
        elif which == "paged":
            hkv = int(rng.integers(1, 3)); g = int(rng.integers(1, 5)); d = int(rng.choice([16, 32]))
            nseq = int(rng.integers(1, 4)); bs = int(rng.integers(1, 9))
            lens = [int(rng.integers(0, 60)) for _ in range(nseq)]
            pages = sum(-(-x // bs) for x in lens) + int(rng.integers(1, 4))
            maxb = max(1, max(-(-x // bs) for x in lens)) + int(rng.integers(0, 3))
            table = np.full((nseq, maxb), -1, np.int32); perm = iter(rng.permutation(pages))
            for s_, x in enumerate(lens):
                for j in range(-(-x // bs)): table[s_, j] = next(perm)
            q, kc, vc = r(nseq, hkv * g, d), r(pages, bs, hkv, d), r(pages, bs, hkv, d)
            lens_a = np.array(lens, np.int32); ns = rng.choice([None, 1, 2, 5])
            out = unwrap(ops.paged_attention(*(wrap(x) for x in (q, kc, vc, table, lens_a)), num_splits=ns, target=target))
            ref = paged_ref(q, kc, vc, table, lens_a)
            desc = (nseq, hkv * g, hkv, d, bs, lens, ns)
        elif which == "sparse":
            hkv = int(rng.integers(1, 3)); g = int(rng.integers(1, 6)); dv = int(rng.choice([8, 16, 24]))
            dq = dv + int(rng.choice([0, 8, 17])); t = int(rng.integers(1, 5)); nrows = int(rng.integers(1, 40))
            topk = int(rng.integers(1, 50)); latent = bool(rng.integers(0, 2)) and dq > dv and hkv >= 1
            q, k = r(t, hkv * g, dq), r(nrows, hkv, dq)
            v = k[:, :, :dv] if latent else r(nrows, hkv, dv)
            idx = rng.integers(-1, nrows, (t, topk)).astype(np.int32); ns = rng.choice([None, 1, 3])
            out = unwrap(ops.sparse_attention(wrap(q), wrap(k), wrap(k)[:, :, :dv] if latent else wrap(v), wrap(idx), num_splits=ns, target=target))
            ref = sparse_attention_reference(q, k, v, idx)
            desc = (t, hkv * g, hkv, dq, dv, nrows, topk, latent, ns)
        else:
            e = int(rng.integers(1, 6)); kk = int(rng.integers(1, 40)); nn = int(rng.integers(1, 40))
            sizes = rng.integers(0, 12, e); m = int(sizes.sum()) + int(rng.integers(0, 3))
            offsets = np.cumsum(sizes).astype(np.int32)
            x, w = r(m, kk), r(e, kk, nn)
            out = unwrap(ops.grouped_gemm(wrap(x), wrap(w), wrap(offsets), target=target))
            ref = grouped_gemm_reference(x, w, offsets)
            desc = (m, kk, nn, e, sizes.tolist())
        err = np.abs(out.astype(np.float64) - ref).max() if out.size else 0.0
        if not err <= 2e-4:
            fails += 1; print("MISMATCH", which, target, desc, err, flush=True)
    except Exception as exc:
        fails += 1; print("ERROR", which, target, type(exc).__name__, str(exc)[:300], flush=True)
print("cases", n, "fails", fails)
