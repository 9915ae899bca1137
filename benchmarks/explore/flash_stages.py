"""Exploration script of 2026-12-02 (H200, run through the device tool; see benchmarks/RESULTS.md). Not part of the test suite."""
import json, os, sys
import torch, torch.nn.functional as F, triton.testing
import tilec.ops as ops
b, h, s, d = 8, 32, 4096, 128
torch.manual_seed(0)
q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
out = []
for causal in (False, True):
    flops = 4 * b * h * s * s * d * (0.5 if causal else 1.0)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    for name, cfg in (("default", {}), ("256_64_4", dict(block_m=256, block_n=64, num_stages=4)),
                      ("256_64_3", dict(block_m=256, block_n=64, num_stages=3))):
        try:
            err = (ops.flash_attention(q, k, v, causal=causal, **cfg).float() - ref.float()).abs().max().item()
            ms = triton.testing.do_bench(lambda: ops.flash_attention(q, k, v, causal=causal, **cfg), warmup=25, rep=100)
            r = dict(causal=causal, v=name, tflops=round(flops / ms / 1e9, 1), err=err)
        except Exception as e:
            r = dict(causal=causal, v=name, error=str(e)[:200])
        print(json.dumps(r), flush=True); out.append(r)
json.dump(out, open(os.path.join(os.environ["OUT"], "flash_stages.json"), "w"), indent=0)
