"""Exploration script of 2026-12-02 (H200, run through the device tool; see benchmarks/RESULTS.md). Not part of the test suite."""
import json, os, sys, contextlib, math
import torch, torch.nn.functional as F, triton, triton.testing
sys.path.insert(0, sys.argv[1])  # benchmarks dir
mode = sys.argv[3]
from peers.triton_flash import flash_attention as triton_flash
import tilec.ops as ops
out = []
def bench(fn): return triton.testing.do_bench(fn, warmup=25, rep=100)
def rec(r):
    print(json.dumps(r), flush=True); out.append(r)
torch.manual_seed(0)
b, h, s, d = 8, 32, 4096, 128
q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
for causal in (False, True):
    flops = 4 * b * h * s * s * d * (0.5 if causal else 1.0)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    def run(name, fn):
        try:
            o = fn(); err = (o.float() - ref.float()).abs().max().item(); ms = bench(fn)
            rec(dict(mode=mode, causal=causal, v=name, tflops=round(flops / ms / 1e9, 1), err=err))
        except Exception as e:
            rec(dict(mode=mode, causal=causal, v=name, error=str(e)[:200]))
    run("cudnn", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    run("tilec_default", lambda: ops.flash_attention(q, k, v, causal=causal))
    if mode == "old":
        continue
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        run("sdpa_flash", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    for bm, bn, st in ((128, 64, 3), (128, 128, 2), (256, 64, 2), (128, 64, 4)):
        run(f"tilec_{bm}_{bn}_{st}", lambda: ops.flash_attention(q, k, v, causal=causal, block_m=bm, block_n=bn, num_stages=st))
    for bm, bn, st, w in ((128, 64, 3, 8), (128, 128, 2, 8), (128, 128, 3, 8), (256, 64, 3, 8), (128, 64, 4, 4), (64, 64, 3, 4)):
        run(f"triton_{bm}_{bn}_{st}_w{w}", lambda: triton_flash(q, k, v, causal, bm, bn, st, w))
del q, k, v
# paged bs32 ctx4096 and sparse MLA: the shared softmax macro changed
nseq, ctx, hq, hkv, dd, page = 32, 4096, 32, 8, 128, 16
nblk = nseq * ctx // page
kc, vc = (torch.randn(nblk, page, hkv, dd, device="cuda", dtype=torch.bfloat16) for _ in range(2))
table = torch.randperm(nblk, device="cuda", dtype=torch.int32).reshape(nseq, -1)
lens = torch.full((nseq,), ctx, device="cuda", dtype=torch.int32)
pq = torch.randn(nseq, hq, dd, device="cuda", dtype=torch.bfloat16)
ms = bench(lambda: ops.paged_attention(pq, kc, vc, table, lens, check=False))
rec(dict(mode=mode, v="paged_bs32", ms=round(ms, 4), GBps=round(2 * kc.numel() * 2 / ms / 1e6)))
del kc, vc
for t, hq in ((64, 16), (512, 16), (512, 128), (4096, 128)):
    n = 8192 if t < 4096 else 65536
    kv = torch.randn(n, 1, 576, device="cuda", dtype=torch.bfloat16)
    sq = torch.randn(t, hq, 576, device="cuda", dtype=torch.bfloat16)
    idx = torch.stack([torch.randperm(n, device="cuda")[:2048] for _ in range(t)]).int()
    ms = bench(lambda: ops.sparse_attention(sq, kv, kv[..., :512], idx, check=False))
    flops = 2 * t * hq * 2048 * (576 + 512)
    rec(dict(mode=mode, v=f"sparse_T{t}_H{hq}", ms=round(ms, 4), tflops=round(flops / ms / 1e9, 1),
             GBps=round(t * 2048 * 576 * 2 / ms / 1e6)))
json.dump(out, open(os.path.join(os.environ["OUT"], sys.argv[2]), "w"), indent=0)
