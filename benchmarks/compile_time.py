"""Compile time per kernel: frontend (ast -> IR), passes, lowering to Triton source / LLVM IR, and the LLVM JIT
(optimise + object code). Triton's own PTX build is not counted (it happens on the GPU machine at first launch).
Usage: python benchmarks/compile_time.py [--repeat 5]"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import tilec
from tilec.lowering import llvm as llvm_backend
from tilec.lowering import triton as triton_backend
from tilec.ops.attention import flash_attention_kernel
from tilec.ops.gemm import gemm_kernel
from tilec.ops.indexer import lightning_indexer_kernel
from tilec.ops.moe import grouped_gemm_kernel
from tilec.ops.paged import paged_decode_kernel
from tilec.ops.softmax import softmax_kernel
from tilec.ops.sparse import sparse_mla_kernel

# (name, kernel factory, dims, config for llvm, config for triton)
CASES = [
    ("gemm bf16 4096^3", lambda: gemm_kernel(False, False, "bfloat16", "bfloat16"),
     dict(M=4096, N=4096, K=4096), dict(block_m=128, block_n=256, block_k=128), dict(block_m=128, block_n=256,
                                                                                      block_k=64, num_stages=3)),
    ("softmax f32 4096x5003", lambda: softmax_kernel("float32", True), dict(M=4096, N=5003), {}, {}),
    ("flash_attention bf16 D128", lambda: flash_attention_kernel("bfloat16"),
     dict(B=8, HQ=32, HKV=32, SQ=4096, SKV=4096, D=128), dict(block_m=64, block_n=64), dict(block_m=128, block_n=64)),
    ("paged_decode bf16", lambda: paged_decode_kernel("bfloat16"),
     dict(NSEQ=32, HQ=32, D=128, NB=8192, BS=16, HKV=8, MAXB=256), dict(group=4), dict(group=4)),
    ("sparse_attention MLA (shared latent)", lambda: sparse_mla_kernel("bfloat16"),
     dict(S=64, H=64, D=576, N=8192, HK=1, DV=512, TOPK=2048), dict(group=64, block_h=16), dict(group=64, block_h=64)),
    ("lightning_indexer", lambda: lightning_indexer_kernel("bfloat16"), dict(S=64, H=64, D=128, N=4096), {}, {}),
    ("grouped_gemm bf16", lambda: grouped_gemm_kernel("bfloat16"), dict(M=8192, K=7168, E=64, N=2048, NT=192,
                                                                       MP=8256, NP=2048), {}, {}),
]


def fresh(factory):
    """A new TileKernel over the same function, so the frontend really runs (TileKernel caches its IR)."""
    return tilec.TileKernel(factory().fn)


def time_ms(fn, repeat):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"# compile time, median of {args.repeat}, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print("| kernel | frontend ms | passes ms (llvm / triton) | Triton source ms | LLVM IR ms | total to source ms "
          "(triton / llvm) | LLVM JIT (opt+obj) ms |")
    print("|---|---|---|---|---|---|---|")
    for name, factory, dims, cfg_llvm, cfg_triton in CASES:
        probe = fresh(factory)
        front, _ = time_ms(lambda: fresh(factory).ir, args.repeat)
        p_llvm, k_llvm = time_ms(lambda: probe.specialize(dims, cfg_llvm or {}, "llvm"), args.repeat)
        p_tri, k_tri = time_ms(lambda: probe.specialize(dims, cfg_triton or {}, "triton"), args.repeat)
        src_t, _ = time_ms(lambda: triton_backend.lower(k_tri), args.repeat)
        src_l, ll = time_ms(lambda: llvm_backend.lower(k_llvm), args.repeat)
        jit, _ = time_ms(lambda: llvm_backend.compile_object(ll), max(1, args.repeat // 2))
        print(f"| {name} | {front:.1f} | {p_llvm:.1f} / {p_tri:.1f} | {src_t:.1f} | {src_l:.1f} | "
              f"{front + p_tri + src_t:.1f} / {front + p_llvm + src_l:.1f} | {jit:.0f} |", flush=True)


if __name__ == "__main__":
    main()
