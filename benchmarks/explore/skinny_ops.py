"""Exploration script of 2026-12-02 (H200 through the device tool): tilec.ops.gemm on skinny (decode-like) shapes
against torch.matmul (cuBLAS), and the op's tiles lowered persistent and not. Not part of the test suite."""
import json, os
import torch, triton.testing
import tilec.ops as ops
from tilec.ops.gemm import gemm_kernel
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load

out = []
k = gemm_kernel(False, False, "bfloat16", "bfloat16")
for m, n, kk in [(1, 4096, 4096), (16, 4096, 4096), (64, 4096, 4096), (128, 4096, 4096), (16, 8192, 8192),
                 (128, 8192, 8192), (256, 4096, 4096), (512, 4096, 4096)]:
    a = torch.randn(m, kk, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(kk, n, device="cuda", dtype=torch.bfloat16)
    ref = a.float() @ b.float()
    r = dict(M=m, N=n, K=kk)
    r["err"] = ((ops.gemm(a, b).float() - ref).abs().max() / ref.abs().max()).item()
    r["tilec_us"] = round(triton.testing.do_bench(lambda: ops.gemm(a, b), warmup=10, rep=50) * 1e3, 1)
    r["torch_us"] = round(triton.testing.do_bench(lambda: a @ b, warmup=10, rep=50) * 1e3, 1)
    import time
    t0 = time.perf_counter()
    ops.gemm(a, b, config="auto")
    torch.cuda.synchronize()
    r["auto_first_call_s"] = round(time.perf_counter() - t0, 2)
    r["auto_pick"] = list(k._auto.values())[-1]
    r["auto_us"] = round(triton.testing.do_bench(lambda: ops.gemm(a, b, config="auto"), warmup=10, rep=50) * 1e3, 1)
    for bm, bn, bk, st in [(64, 64, 64, 4), (128, 64, 128, 4), (64, 128, 64, 4), (128, 128, 64, 3)]:
        bound = k.specialize(dict(M=m, N=n, K=kk), dict(block_m=bm, block_n=bn, block_k=bk, num_stages=st),
                             "triton", "h200")
        c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        for pers in (True, False):
            try:
                run = load(lower(bound, persistent=pers), bound, bound.launch.num_warps)
                run(a, b, c)
                r[f"{bm}x{bn}x{bk}s{st}{'P' if pers else ''}"] = round(
                    triton.testing.do_bench(lambda: run(a, b, c), warmup=10, rep=50) * 1e3, 1)
            except Exception as e:
                r[f"{bm}x{bn}x{bk}s{st}{'P' if pers else ''}"] = str(e)[:80]
    print(json.dumps(r), flush=True)
    out.append(r)
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "skinny_ops.json"), "w"), indent=0)
