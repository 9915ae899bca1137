"""Hopper GPU (H100/H200): tilec's LLM kernels next to their torch peers, measured in one run.
Usage (GPU machine):  python benchmarks/gpu_llm_ops.py --out DIR [--only flash,paged,sparse,moe,kv]

Peers: torch SDPA (cuDNN and flash backends), hand-written Triton and a TileLang kernel for flash attention;
gather-then-SDPA and a TileLang kernel of tilec's algorithm for paged decode; gather + einsum and a TileLang kernel of tilec's algorithm for
sparse attention; torch._grouped_mm for grouped GEMM; index_select / index_copy_ for KV-cache moves. Each row prints
tilec's time, the peer's time, their ratio, and the kernel's TFLOP/s or effective GB/s."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
import triton
import triton.testing

import tilec.ops as ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/peers

ROWS = []
COPY_BPS = 3.0e12  # H100 copy bandwidth measured earlier; the 'copy' case replaces it with this run's


def bench_ms(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100)


def record(name, tilec_ms, peer, peer_ms, *, flops=None, nbytes=None, err=None, extra=None):
    row = {"case": name, "tilec_ms": round(tilec_ms, 4), "peer": peer, "peer_ms": round(peer_ms, 4) if peer_ms else None,
           "speedup_vs_peer": round(peer_ms / tilec_ms, 3) if peer_ms else None, "max_err": err}
    if flops:
        row["tilec_tflops"] = round(flops / tilec_ms / 1e9, 1)
        row["peer_tflops"] = round(flops / peer_ms / 1e9, 1) if peer_ms else None
    if nbytes:
        row["tilec_GBps"] = round(nbytes / tilec_ms / 1e6, 1)
        row["peer_GBps"] = round(nbytes / peer_ms / 1e6, 1) if peer_ms else None
    row.update(extra or {})
    ROWS.append(row)
    print(json.dumps(row), flush=True)


def flash(causal):
    b, h, s, d = 8, 32, 4096, 128
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out = ops.flash_attention(q, k, v, causal=causal)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    err = (out.float() - ref.float()).abs().max().item()
    flops = 4 * b * h * s * s * d * (0.5 if causal else 1.0)
    mine = bench_ms(lambda: ops.flash_attention(q, k, v, causal=causal))
    # torch's default choice (cuDNN attention on Hopper in torch 2.11) and its FlashAttention-2 backend, each a peer
    backend = torch.nn.attention.SDPBackend
    for peer, choice in (("torch SDPA (default: cuDNN)", None), ("torch SDPA (flash backend)", backend.FLASH_ATTENTION)):
        with torch.nn.attention.sdpa_kernel(choice) if choice else contextlib.nullcontext():
            peer_ms = bench_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
        record(f"flash_attention bf16 B{b} H{h} S{s} D{d} causal={causal}", mine, peer, peer_ms, flops=flops, err=err)
    # hand-written Triton (peers/triton_flash.py): plain, and with Triton's warp specialization, which compiled and
    # was right only for the non-causal kernel with 128 x 128 tiles and 4 warps in an exploration run (2026-12-02)
    from peers.triton_flash import flash_attention as triton_flash
    variants = [("hand-written Triton (256x64, 3 stages, 8 warps)", dict(block_m=256, block_n=64, stages=3, warps=8))]
    if not causal:
        variants.append(("hand-written Triton + warp_specialize (128x128, 2 stages, 4 warps)",
                         dict(block_m=128, block_n=128, stages=2, warps=4, warp_specialize=True)))
    for peer, cfg in variants:
        try:
            peer_err = (triton_flash(q, k, v, causal, **cfg).float() - ref.float()).abs().max().item()
            record(f"flash_attention bf16 B{b} H{h} S{s} D{d} causal={causal}", mine, peer,
                   bench_ms(lambda: triton_flash(q, k, v, causal, **cfg)), flops=flops, err=err,
                   extra={"peer_max_err": peer_err})
        except Exception as exc:
            record(f"flash_attention bf16 B{b} H{h} S{s} D{d} causal={causal}", mine, peer, None, flops=flops,
                   err=err, extra={"peer_error": f"{type(exc).__name__}: {exc}"[:300]})
    try:  # TileLang 0.1.15 (carried to the GPU machine by ../shared/peers/pack_peers.sh), when it is importable
        from peers.tilelang_flash import build
        t0 = time.perf_counter()
        tl_kernel = build(b, h, s, d, causal)
        compile_s = time.perf_counter() - t0
        tl_err = (tl_kernel(q, k, v).float() - ref.float()).abs().max().item()
        record(f"flash_attention bf16 B{b} H{h} S{s} D{d} causal={causal}", mine, "TileLang 0.1.15",
               bench_ms(lambda: tl_kernel(q, k, v)), flops=flops, err=err,
               extra={"peer_max_err": tl_err, "peer_compile_s": round(compile_s, 2)})
    except Exception as exc:
        record(f"flash_attention bf16 B{b} H{h} S{s} D{d} causal={causal}", mine, "TileLang 0.1.15", None,
               flops=flops, err=err, extra={"peer_error": f"{type(exc).__name__}: {exc}"[:300]})


def paged(bs, ctx, hq, hkv=8, d=128, page=16):
    pages_per_seq = ctx // page
    nblocks = bs * pages_per_seq
    kc = torch.randn(nblocks, page, hkv, d, device="cuda", dtype=torch.bfloat16)
    vc = torch.randn_like(kc)
    table = torch.randperm(nblocks, device="cuda", dtype=torch.int32).reshape(bs, pages_per_seq)
    lens = torch.full((bs,), ctx, device="cuda", dtype=torch.int32)
    q = torch.randn(bs, hq, d, device="cuda", dtype=torch.bfloat16)
    out = ops.paged_attention(q, kc, vc, table, lens, check=False)

    def gather_then_sdpa():
        k = kc[table.long()].reshape(bs, ctx, hkv, d).transpose(1, 2)
        v = vc[table.long()].reshape(bs, ctx, hkv, d).transpose(1, 2)
        return F.scaled_dot_product_attention(q.unsqueeze(2), k, v, enable_gqa=True).squeeze(2)

    err = (out.float() - gather_then_sdpa().float()).abs().max().item()
    nbytes = 2 * bs * ctx * hkv * d * 2 + 2 * q.numel() * 2
    name = f"paged_attention bf16 bs{bs} ctx{ctx} Hq{hq} Hkv{hkv} D{d} page{page}"
    mine = bench_ms(lambda: ops.paged_attention(q, kc, vc, table, lens, check=False))
    record(name, mine, "gather + SDPA", bench_ms(gather_then_sdpa), nbytes=nbytes, err=err)
    try:  # TileLang 0.1.15 running tilec's unsplit algorithm (benchmarks/peers/tilelang_paged.py)
        from peers.tilelang_paged import build
        t0 = time.perf_counter()
        tl_run = build(bs, hq, hkv, d, page, pages_per_seq, nblocks)
        compile_s = round(time.perf_counter() - t0, 2)
        tl_err = (tl_run(q, kc, vc, table).float() - out.float()).abs().max().item()
        record(name, mine, "TileLang 0.1.15", bench_ms(lambda: tl_run(q, kc, vc, table)), nbytes=nbytes, err=err,
               extra={"peer_max_err_vs_tilec": tl_err, "peer_compile_s": compile_s})
    except Exception as exc:
        record(name, mine, "TileLang 0.1.15", None, nbytes=nbytes, err=err,
               extra={"peer_error": f"{type(exc).__name__}: {exc}"[:300]})


def sparse(t, hq, n=8192, topk=2048, separate_v=False):
    """MLA layout: V is the first 512 columns of the 576-wide KV rows (v = kv[..., :512], a view), so each gathered
    row is read once; bytes count what the indices touch (576 columns per row, or 576 + 512 with a separate V)."""
    dqk, dv = 576, 512
    q = torch.randn(t, hq, dqk, device="cuda", dtype=torch.bfloat16) / 8
    kv = torch.randn(n, 1, dqk, device="cuda", dtype=torch.bfloat16) / 8
    v = kv[:, :, :dv].contiguous() if separate_v else kv[:, :, :dv]
    idx = torch.stack([torch.randperm(n, device="cuda")[:topk] for _ in range(t)]).to(torch.int32)
    scale = 1 / math.sqrt(dqk)
    out = ops.sparse_attention(q, kv, v, idx, scale=scale, check=False)

    def gather_einsum():
        kg = kv[idx.long(), 0]  # [t, topk, dqk]
        s = torch.einsum("thd,tkd->thk", q.float(), kg.float()) * scale
        return torch.einsum("thk,tkd->thd", s.softmax(-1), kg[..., :dv].float()).to(q.dtype)

    err = (out.float() - gather_einsum().float()).abs().max().item()
    flops = 2 * t * hq * topk * (dqk + dv)
    nbytes = t * topk * (dqk + (dv if separate_v else 0)) * 2 + q.numel() * 2 + t * hq * dv * 2
    name = f"sparse_attention MLA bf16 T{t} Hq{hq} topk{topk}{' separate V' if separate_v else ''}"
    mine = bench_ms(lambda: ops.sparse_attention(q, kv, v, idx, scale=scale, check=False))
    record(name, mine, "gather + einsum", bench_ms(gather_einsum), flops=flops, nbytes=nbytes, err=err)
    if separate_v:
        return
    try:  # TileLang 0.1.15 running the same algorithm (benchmarks/peers/tilelang_sparse_mla.py), one compile per Hq
        if (hq, n, topk) not in TILELANG_SPARSE:
            from peers.tilelang_sparse_mla import build_checked
            t0 = time.perf_counter()
            kernel, passes, _ = build_checked(hq, n, topk, (q, kv, idx), out)
            TILELANG_SPARSE[hq, n, topk] = kernel, passes, round(time.perf_counter() - t0, 2)
        kernel, passes, compile_s = TILELANG_SPARSE[hq, n, topk]
        tl_err = (kernel(q, kv, idx).float() - out.float()).abs().max().item()
        record(name, mine, "TileLang 0.1.15", bench_ms(lambda: kernel(q, kv, idx)), flops=flops, nbytes=nbytes,
               err=err, extra={"peer_max_err_vs_tilec": tl_err, "peer_compile_s": compile_s, "peer_passes": passes})
    except Exception as exc:
        record(name, mine, "TileLang 0.1.15", None, flops=flops, nbytes=nbytes, err=err,
               extra={"peer_error": f"{type(exc).__name__}: {exc}"[:300]})


TILELANG_SPARSE: dict = {}  # (Hq, N, topk) -> (kernel, passes used, compile seconds)


def moe(tokens_per_expert, e=64, k=7168, n=2048):
    m = e * tokens_per_expert
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16) / 32
    w = torch.randn(e, k, n, device="cuda", dtype=torch.bfloat16) / 32
    offsets = torch.arange(1, e + 1, device="cuda", dtype=torch.int32) * tokens_per_expert
    out = ops.grouped_gemm(x, w, offsets, check=False)
    peer_ms, err = None, None
    if hasattr(torch, "_grouped_mm"):
        ref = torch._grouped_mm(x, w, offs=offsets)
        err = (out.float() - ref.float()).abs().max().item()
        peer_ms = bench_ms(lambda: torch._grouped_mm(x, w, offs=offsets))
    floor_ms = w.numel() * 2 / COPY_BPS * 1e3  # weights streamed once at this run's measured copy bandwidth
    record(f"grouped_gemm bf16 E{e} K{k} N{n} {tokens_per_expert} tok/expert",
           bench_ms(lambda: ops.grouped_gemm(x, w, offsets, check=False)), "torch._grouped_mm", peer_ms,
           flops=2 * m * k * n, err=err, extra={"weight_stream_floor_ms": round(floor_ms, 4)})


def kv(n_pages=16384, page=16, h=8, d=128):
    cache = torch.randn(n_pages * 2, page, h, d, device="cuda", dtype=torch.bfloat16)
    ids = torch.randperm(n_pages * 2, device="cuda", dtype=torch.int32)[:n_pages]
    out = ops.kv_gather(cache, ids, check=False)
    err = (out.float() - cache[ids.long()].float()).abs().max().item()
    nbytes = 2 * out.numel() * 2
    record(f"kv_gather bf16 {n_pages} pages of {page}x{h}x{d}", bench_ms(lambda: ops.kv_gather(cache, ids, check=False)),
           "index_select", bench_ms(lambda: cache.index_select(0, ids)), nbytes=nbytes, err=err)
    ntok = n_pages * page
    key, value = torch.randn(ntok, h, d, device="cuda", dtype=torch.bfloat16), torch.randn(ntok, h, d, device="cuda",
                                                                                            dtype=torch.bfloat16)
    kc, vc = torch.zeros_like(cache), torch.zeros_like(cache)
    slots = torch.randperm(kc.shape[0] * page, device="cuda", dtype=torch.int32)[:ntok]
    ops.kv_scatter(key, value, kc, vc, slots, check=False)
    err = (kc.reshape(-1, h, d)[slots.long()].float() - key.float()).abs().max().item()
    kf, vf = kc.view(-1, h, d), vc.view(-1, h, d)

    def torch_scatter():
        kf.index_copy_(0, slots.long(), key)
        vf.index_copy_(0, slots.long(), value)

    record(f"kv_scatter bf16 {ntok} tokens {h}x{d}", bench_ms(lambda: ops.kv_scatter(key, value, kc, vc, slots,
                                                                                       check=False)),
           "index_copy_", bench_ms(torch_scatter), nbytes=2 * 2 * key.numel() * 2, err=err)


def copy_bandwidth():
    """The ceiling for the memory-bound rows: a device-to-device copy of 1 GiB, bytes read plus written."""
    x = torch.empty(1 << 29, device="cuda", dtype=torch.bfloat16)
    ms = bench_ms(lambda: x.clone())
    global COPY_BPS
    COPY_BPS = 2 * x.numel() * 2 / ms * 1e3
    record("device copy (clone) 1 GiB", ms, None, None, nbytes=2 * x.numel() * 2)


CASES = {
    "copy": copy_bandwidth,
    "flash": lambda: (flash(False), flash(True)),
    "paged": lambda: (paged(32, 4096, 32), paged(64, 8192, 64)),
    "sparse": lambda: [sparse(t, h) for t in (64, 512, 4096) for h in (16, 128)] +
    [sparse(512, h, separate_v=True) for h in (16, 128)],
    "moe": lambda: [moe(t) for t in (16, 128, 512)],
    "kv": kv,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--only", default=",".join(CASES))
    args = ap.parse_args()
    torch.manual_seed(0)
    for name in args.only.split(","):
        try:
            CASES[name]()
        except Exception as exc:  # one failing op must not hide the others' numbers
            print(json.dumps({"case": name, "error": f"{type(exc).__name__}: {exc}"[:500]}), flush=True)
            ROWS.append({"case": name, "error": f"{type(exc).__name__}: {exc}"[:500]})
        torch.cuda.empty_cache()
    meta = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with open(os.path.join(args.out, "gpu_llm_ops.json"), "w") as f:
        json.dump({"meta": meta, "rows": ROWS}, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
