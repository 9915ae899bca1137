"""Exploration script of 2026-12-02 (H200 through the device tool): the MLA sparse kernel's tiles, stages and warps
at the memory-bound shape (T64 Hq16) and the compute-bound one (T512 Hq128). num_warps is not a tilec config, so
this loads each lowered source with an explicit warp count. Not part of the test suite."""
import itertools, json, math, os, sys, time
import torch, triton.testing
from tilec.ops.sparse import sparse_mla_kernel
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load

torch.manual_seed(0)
out, k = [], sparse_mla_kernel("bfloat16")
only = sys.argv[1] if len(sys.argv) > 1 else "all"
for t, hq, space in ((64, 16, dict(block_h=[8, 16], block_n=[32, 64, 128], num_stages=[1, 2, 3], warps=[4, 8])),
                     (512, 128, dict(block_h=[64], block_n=[32, 64], num_stages=[1, 2, 3], warps=[4, 8, 16]))):
    if only != "all" and only != f"T{t}":
        continue
    n, d, dv, topk = 8192, 576, 512, 2048
    q = torch.randn(t, hq, d, device="cuda", dtype=torch.bfloat16)
    kv = torch.randn(n, 1, d, device="cuda", dtype=torch.bfloat16)
    idx = torch.stack([torch.randperm(n, device="cuda")[:topk] for _ in range(t)]).to(torch.int32)
    dims = dict(S=t, H=hq, D=d, N=n, HK=1, DV=dv, TOPK=topk)
    ref = None
    nbytes = t * topk * d * 2
    flops = 2 * t * hq * topk * (d + dv)
    for bh, bn, st, w in itertools.product(*space.values()):
        o = torch.empty(t, hq, dv, device="cuda", dtype=torch.bfloat16)
        cfg = dict(group=hq, block_h=bh, block_n=bn, num_stages=st, scale=1 / math.sqrt(d))
        r = dict(T=t, Hq=hq, block_h=bh, block_n=bn, num_stages=st, warps=w)
        try:
            b = k.specialize(dims, cfg, "triton", "h200")
            run = load(lower(b), b, num_warps=w)
            run(q, kv, idx, o); torch.cuda.synchronize()
            if ref is None:
                ref = o.float().clone()
            r["err"] = (o.float() - ref).abs().max().item()
            ms = triton.testing.do_bench(lambda: run(q, kv, idx, o), warmup=10, rep=50)
            r.update(us=round(ms * 1e3, 1), gbs=round(nbytes / ms / 1e6), tflops=round(flops / ms / 1e9, 1))
        except Exception as e:
            r["error"] = f"{type(e).__name__}: {str(e)[:160]}"
        print(json.dumps(r), flush=True)
        out.append(r)
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "sparse_warps.json"), "w"), indent=0)
