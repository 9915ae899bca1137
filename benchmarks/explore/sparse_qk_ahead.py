"""Exploration script of 2026-12-02 (H200 through the device tool): the MLA sparse kernel with the next step's QK
dot computed at the end of each iteration (its scores carried into the next), so the QK dot's result reaches the
PV dot only through the loop: Triton's chained-dot layout rule (all warps along the 64 head rows, which makes both
warpgroups compute the whole score tile) no longer applies to it. Against the op's kernel. Not part of the tests."""
import json, math, os
import torch, triton.testing
import tilec
import tilec.language as T
from tilec.ops.attention import LOG2E
from tilec.ops.online_softmax import online_softmax_update
from tilec.ops.sparse import latent_scores, sparse_mla_kernel
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load


def qk_ahead_kernel(dtype):
    @tilec.kernel
    def sparse_mla_ahead(Q: T.Tensor[("S", "H", "D"), dtype], KV: T.Tensor[("N", "HK", "D"), dtype],
                         Idx: T.Tensor[("S", "TOPK"), "int32"], O: T.Tensor[("S", "H", "DV"), dtype], *,
                         group: int = 1, block_h: int = 1, block_n: int = 64, scale: float = 1.0,
                         num_stages: int = 1):
        with T.Kernel(S, HK * (group // block_h)) as (t, hb):
            hk = hb // (group // block_h)
            h0 = hb * block_h
            acc = T.alloc_fragment((block_h, DV), "float32")
            m = T.alloc_fragment((block_h,), "float32")
            l = T.alloc_fragment((block_h,), "float32")  # noqa: E741
            q_latent = T.alloc_shared((block_h, DV), dtype)
            q_rope = T.alloc_shared((block_h, D - DV), dtype)
            k_latent = T.alloc_shared((block_n, DV), dtype)
            k_rope = T.alloc_shared((block_n, D - DV), dtype)
            ids = T.alloc_fragment((block_n,), "int32")
            s = T.alloc_fragment((block_h, block_n), "float32")
            p = T.alloc_fragment((block_h, block_n), dtype)
            m_prev = T.alloc_fragment((block_h,), "float32")
            m_safe = T.alloc_fragment((block_h,), "float32")
            alpha = T.alloc_fragment((block_h,), "float32")
            row_sum = T.alloc_fragment((block_h,), "float32")
            T.fill(m, -T.infinity("float32"))
            T.clear(l)
            T.clear(acc)
            T.copy(Q[t, h0, 0], q_latent)
            T.copy(Q[t, h0, DV], q_rope)
            # step 0's scores before the loop
            latent_scores(q_latent, q_rope, KV, Idx, t, hk, 0, ids, k_latent, k_rope, s, N, D, DV, block_h, block_n)
            for kb in T.Pipelined(T.ceildiv(TOPK, block_n), num_stages=num_stages):
                online_softmax_update(s, p, k_latent, acc, m, l, m_prev, m_safe, alpha, row_sum, block_h, block_n,
                                      DV, scale * LOG2E)
                # the next step's scores (past the last step: padding, never used)
                latent_scores(q_latent, q_rope, KV, Idx, t, hk, (kb + 1) * block_n, ids, k_latent, k_rope, s, N, D,
                              DV, block_h, block_n)
            for i, d in T.Parallel(block_h, DV):
                acc[i, d] = acc[i, d] / T.max(l[i], 1.0)
            T.copy(acc, O[t, h0, 0])
    return sparse_mla_ahead


if __name__ == "__main__":
    torch.manual_seed(0)
    out = []
    n, d, dv, topk = 8192, 576, 512, 2048
    variants = {"op": sparse_mla_kernel("bfloat16"), "ahead": qk_ahead_kernel("bfloat16")}
    for t, hq, configs in ((512, 128, [(64, 64, 1), (64, 64, 2), (64, 32, 2), (64, 32, 3)]),
                           (4096, 128, [(64, 64, 2)])):
        q = torch.randn(t, hq, d, device="cuda", dtype=torch.bfloat16)
        kv = torch.randn(n, 1, d, device="cuda", dtype=torch.bfloat16)
        idx = torch.stack([torch.randperm(n, device="cuda")[:topk] for _ in range(t)]).to(torch.int32)
        idx[0, 100:] = -1  # a row mostly padding
        dims = dict(S=t, H=hq, D=d, N=n, HK=1, DV=dv, TOPK=topk)
        flops = 2 * t * hq * topk * (d + dv)
        ref = None
        for (bh, bn, st) in configs:
            for name, kern in variants.items():
                r = dict(T=t, Hq=hq, block_h=bh, block_n=bn, num_stages=st, variant=name)
                try:
                    cfg = dict(group=hq, block_h=bh, block_n=bn, num_stages=st, scale=1 / math.sqrt(d))
                    b = kern.specialize(dims, cfg, "triton", "h200")
                    o = torch.empty(t, hq, dv, device="cuda", dtype=torch.bfloat16)
                    run = load(lower(b), b, b.launch.num_warps)
                    run(q, kv, idx, o); torch.cuda.synchronize()
                    if ref is None:
                        ref = o.float().clone()
                    r["err"] = (o.float() - ref).abs().max().item()
                    ms = triton.testing.do_bench(lambda: run(q, kv, idx, o), warmup=10, rep=50)
                    r.update(us=round(ms * 1e3, 1), tflops=round(flops / ms / 1e9, 1))
                except Exception as e:
                    r["error"] = f"{type(e).__name__}: {str(e)[:200]}"
                print(json.dumps(r), flush=True)
                out.append(r)
    json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "sparse_qk_ahead.json"), "w"), indent=0)
