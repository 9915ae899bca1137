"""Exploration script of 2026-12-02 (H200 through the device tool): why tall GEMM tiles on a 16-row A run slowly.
The same tiles on M=16 (rows past M are out of bounds of A's tensor descriptor) and on M=256 (none are), with TMA
descriptors and with pointer loads, persistent and not. Not part of the test suite."""
import itertools, json, os
import torch, triton.testing
from tilec.ops.gemm import gemm_kernel
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load

k = gemm_kernel(False, False, "bfloat16", "bfloat16")
out = []
n = kk = 4096
b_t = torch.randn(kk, n, device="cuda", dtype=torch.bfloat16)
for m in (16, 256):
    a = torch.randn(m, kk, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    ref = (a.float() @ b_t.float())
    for (bm, bn, bk, st), desc, pers in itertools.product(
            [(64, 64, 64, 4), (256, 32, 64, 3), (256, 16, 64, 3), (128, 64, 128, 4), (128, 32, 64, 1),
             (256, 64, 16, 4), (64, 32, 64, 3)], (True, False), (True, False)):
        r = dict(M=m, block_m=bm, block_n=bn, block_k=bk, num_stages=st, descriptors=desc, persistent=pers)
        try:
            bound = k.specialize(dict(M=m, N=n, K=kk), dict(block_m=bm, block_n=bn, block_k=bk, num_stages=st),
                                 "triton", "h200")
            run = load(lower(bound, descriptors=desc, persistent=pers), bound, bound.launch.num_warps)
            run(a, b_t, c); torch.cuda.synchronize()
            r["err"] = ((c.float() - ref).abs().max() / ref.abs().max()).item()
            ms = triton.testing.do_bench(lambda: run(a, b_t, c), warmup=10, rep=40)
            r["us"] = round(ms * 1e3, 1)
        except Exception as e:
            r["error"] = f"{type(e).__name__}: {str(e)[:120]}"
        print(json.dumps(r), flush=True)
        out.append(r)
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "skinny_tma.json"), "w"), indent=0)
