"""Exploration script of 2026-12-02 (H200, run through the device tool; see benchmarks/RESULTS.md). Not part of the test suite."""
import json, os, sys
import torch, torch.nn.functional as F, triton, triton.testing
sys.path.insert(0, sys.argv[1])
from peers.triton_flash import flash_attention as triton_flash
from tilec.ops.attention import flash_attention_kernel, LOG2E
from tilec.lowering.triton import lower
from tilec.lowering.triton_launch import load
out = []
def bench(fn): return triton.testing.do_bench(fn, warmup=25, rep=100)
def rec(r):
    print(json.dumps(r), flush=True); out.append(r)
torch.manual_seed(0)
b, h, s, d = 8, 32, 4096, 128
q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
o = torch.empty_like(q)
kern = flash_attention_kernel("bfloat16")
for causal in (False, True):
    flops = 4 * b * h * s * s * d * (0.5 if causal else 1.0)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    def run(name, fn):
        try:
            r = fn(); err = (r.float() - ref.float()).abs().max().item(); ms = bench(fn)
            rec(dict(causal=causal, v=name, tflops=round(flops / ms / 1e9, 1), err=err))
        except Exception as e:
            rec(dict(causal=causal, v=name, error=str(e)[:300]))
    run("cudnn", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    for bm, bn, st, w in ((256, 64, 3, 8), (128, 64, 3, 8), (128, 128, 2, 8)):
        for desc in (True, False):
            for pers in (False, True):
                def make(bm=bm, bn=bn, st=st, w=w, desc=desc, pers=pers):
                    ik = kern.stages(backend="triton", B=b, HQ=h, SQ=s, D=d, HKV=h, SKV=s, block_m=bm, block_n=bn,
                                     num_stages=st, causal=causal, scale_log2=LOG2E / d ** 0.5)["plan-launch"]
                    launch = load(lower(ik, descriptors=desc, persistent=pers), ik, num_warps=w)
                    def f():
                        launch(q, k, v, o); return o
                    return f
                try:
                    f = make()
                except Exception as e:
                    rec(dict(causal=causal, v=f"tilec_{bm}_{bn}_{st}_desc{desc}_pers{pers}", error=str(e)[:300])); continue
                run(f"tilec_{bm}_{bn}_{st}_desc{desc}_pers{pers}", f)
    for bm, bn, st, w in ((128, 64, 3, 4), (128, 64, 3, 8), (128, 128, 3, 8), (128, 128, 2, 4), (256, 64, 3, 8)):
        run(f"triton_ws_{bm}_{bn}_{st}_w{w}", lambda: triton_flash(q, k, v, causal, bm, bn, st, w, True))
json.dump(out, open(os.path.join(os.environ["OUT"], "explore2.json"), "w"), indent=0)
