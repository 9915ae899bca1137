"""Exploration script of 2026-12-02 (H200, run through the device tool; see benchmarks/RESULTS.md). Not part of the test suite."""
import json, os, sys
os.environ["TILEC_CACHE"] = "0"
import torch, torch.nn.functional as F, triton, triton.testing
from tilec.ops.attention import flash_attention_kernel, LOG2E
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load
import tilec.lowering.triton_codegen as cg
import tilec.ops as ops
out = []
def bench(fn): return triton.testing.do_bench(fn, warmup=25, rep=100)
def rec(r):
    print(json.dumps(r), flush=True); out.append(r)
torch.manual_seed(0)
b, h, s, d = 2, 8, 4096, 128
q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
o = torch.empty_like(q)
ref = F.scaled_dot_product_attention(q, k, v)
kern = flash_attention_kernel("bfloat16")
for bm, bn, st in ((128, 64, 3), (256, 64, 3)):
    ik = kern.stages(backend="triton", B=b, HQ=h, SQ=s, D=d, HKV=h, SKV=s, block_m=bm, block_n=bn, num_stages=st,
                     causal=False, scale_log2=LOG2E / d ** 0.5)["plan-launch"]
    for desc in (False, True):
        src = lower(ik, descriptors=desc, persistent=True)
        for flat in (True, False):
            text = src if flat else src.replace(", flatten=True", "")
            try:
                launch = load(text, ik, num_warps=8)
                o.zero_(); launch(q, k, v, o); torch.cuda.synchronize()
                err = (o.float() - ref.float()).abs().max().item()
                bad = ((o.float() - ref.float()).abs().amax(dim=(-1)) > 0.05).nonzero()
                rec(dict(v=f"flash_{bm}_{bn}_{st}_desc{desc}", flatten=("flatten=True" in text), err=err,
                         bad_rows=len(bad), first_bad=bad[:4].tolist(), ms=round(bench(lambda: launch(q, k, v, o)), 4)))
            except Exception as e:
                rec(dict(v=f"flash_{bm}_{bn}_{st}_desc{desc}", flatten=("flatten=True" in text), error=str(e)[:200]))
# paged decode with and without flatten
orig = cg.KernelLowering.source
def no_flatten(self):
    return orig(self).replace(", flatten=True", "")
for nseq, ctx, hq in ((32, 4096, 32), (64, 8192, 64)):
    hkv, dd, page = 8, 128, 16
    nblk = nseq * ctx // page
    kc, vc = (torch.randn(nblk, page, hkv, dd, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    table = torch.randperm(nblk, device="cuda", dtype=torch.int32).reshape(nseq, -1)
    lens = torch.full((nseq,), ctx, device="cuda", dtype=torch.int32)
    pq = torch.randn(nseq, hq, dd, device="cuda", dtype=torch.bfloat16)
    for flat in (True, False, True, False):
        cg.KernelLowering.source = orig if flat else no_flatten
        ops.paged_attention.__wrapped__ if hasattr(ops.paged_attention, "__wrapped__") else None
        from tilec.ops import paged as pg
        pg.paged_decode_kernel.cache_clear(); pg.paged_split_kernel.cache_clear(); pg.paged_reduce_kernel.cache_clear()
        r1 = ops.paged_attention(pq, kc, vc, table, lens, check=False)
        ms = bench(lambda: ops.paged_attention(pq, kc, vc, table, lens, check=False))
        rec(dict(v=f"paged_bs{nseq}", flatten=flat, ms=round(ms, 4), GBps=round(2 * kc.numel() * 2 / ms / 1e6)))
    del kc, vc
json.dump(out, open(os.path.join(os.environ["OUT"], "flatten.json"), "w"), indent=0)
