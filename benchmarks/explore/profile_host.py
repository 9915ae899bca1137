"""Exploration script of 2026-12-02 (H200, run through the device tool; see benchmarks/RESULTS.md). Not part of the test suite."""
import json, os, sys, time
import torch, triton, triton.testing
import tilec.ops as ops
from torch.profiler import profile, ProfilerActivity
torch.manual_seed(0)
def wall(fn, n=50):
    fn(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / n * 1e6
def prof(name, fn):
    fn(); torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(5): fn()
        torch.cuda.synchronize()
    print(f"===== {name}: wall {wall(fn):.1f} us/call, do_bench {triton.testing.do_bench(fn, warmup=10, rep=50)*1e3:.1f} us")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=60))
n = 8192
kv = torch.randn(n, 1, 576, device="cuda", dtype=torch.bfloat16)
for t, hq, ns in ((16, 16, None), (64, 16, 4), (64, 16, None)):
    q = torch.randn(t, hq, 576, device="cuda", dtype=torch.bfloat16)
    idx = torch.stack([torch.randperm(n, device="cuda")[:2048] for _ in range(t)]).int()
    prof(f"sparse T{t} H{hq} splits={ns}", lambda: ops.sparse_attention(q, kv, kv[..., :512], idx, check=False, num_splits=ns))
for dt in (torch.float32, torch.bfloat16):
    a = torch.randn(128, 128, device="cuda", dtype=dt); b = torch.randn(128, 128, device="cuda", dtype=dt)
    prof(f"gemm 128^3 {dt}", lambda: ops.gemm(a, b))
    prof(f"torch mm 128^3 {dt}", lambda: a @ b)
