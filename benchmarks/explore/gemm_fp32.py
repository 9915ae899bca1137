"""Exploration script of 2026-12-02 (H200, run through the device tool; see benchmarks/RESULTS.md). Not part of the test suite."""
"""fp32 (ieee, FMA path) GEMM tile configs on the H200 next to torch.mm fp32 (TF32 off)."""
import json, os
import torch, triton, triton.testing
from tilec.ops.gemm import gemm_kernel
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load
torch.backends.cuda.matmul.allow_tf32 = False
out = []
k = gemm_kernel(False, False, "float32", "float32")
for M in (128, 1000, 4096):
    a = torch.randn(M, M, device="cuda"); b = torch.randn(M, M, device="cuda"); c = torch.empty(M, M, device="cuda")
    ref = (a.double() @ b.double()).float()
    ms = triton.testing.do_bench(lambda: a @ b, warmup=10, rep=50)
    r = dict(M=M, v="torch", ms=round(ms, 4), tflops=round(2 * M**3 / ms / 1e9, 2), err=((a @ b) - ref).abs().max().item()); print(json.dumps(r), flush=True); out.append(r)
    for bm, bn, bk, st, w in ((128,128,64,3,8),(64,64,32,3,8),(64,64,16,3,8),(128,64,16,3,8),(64,64,16,3,4),(64,64,8,3,4),(32,32,32,3,4),(32,64,32,3,4),(32,32,16,3,4)):
        try:
            ik = k.stages(backend="triton", M=M, N=M, K=M, block_m=bm, block_n=bn, block_k=bk, num_stages=st)["plan-launch"]
            launch = load(lower(ik), ik, num_warps=w)
            launch(a, b, c); torch.cuda.synchronize()
            err = (c - ref).abs().max().item()
            ms = triton.testing.do_bench(lambda: launch(a, b, c), warmup=10, rep=50)
            r = dict(M=M, v=f"{bm}x{bn}x{bk}_st{st}_w{w}", ms=round(ms, 4), tflops=round(2 * M**3 / ms / 1e9, 2), err=err)
        except Exception as e:
            r = dict(M=M, v=f"{bm}x{bn}x{bk}_st{st}_w{w}", error=str(e)[:200])
        print(json.dumps(r), flush=True); out.append(r)
json.dump(out, open(os.path.join(os.environ["OUT"], "gemm_fp32.json"), "w"), indent=0)
