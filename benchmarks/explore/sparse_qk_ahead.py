"""Exploration script of 2026-12-02 (H200 through the device tool): the MLA sparse kernel with scores_ahead=1 (the
next step's QK dot at the end of each iteration, its scores carried into the next, so the QK dot's result reaches
the PV dot only through the loop: Triton's chained-dot layout rule, all warps along the 64 head rows, which makes
both warpgroups compute the whole score tile, no longer applies to it) against scores_ahead=0. Not part of the
tests."""
import json, math, os, sys
import torch, triton.testing
from tilec.ops.sparse import sparse_mla_kernel
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load, default_num_warps


if __name__ == "__main__":
    torch.manual_seed(0)
    out = []
    n, d, dv, topk = 8192, 576, 512, 2048
    variants = {"op": 0, "ahead": 1}
    kern = sparse_mla_kernel("bfloat16")
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
            for name, ahead in variants.items():
                r = dict(T=t, Hq=hq, block_h=bh, block_n=bn, num_stages=st, variant=name)
                try:
                    cfg = dict(group=hq, block_h=bh, block_n=bn, num_stages=st, scale=1 / math.sqrt(d),
                               scores_ahead=ahead)
                    b = kern.specialize(dims, cfg, "triton", "h200")
                    o = torch.empty(t, hq, dv, device="cuda", dtype=torch.bfloat16)
                    run = load(lower(b), b, default_num_warps(b))
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
