"""The cost sweep's cases: per (kernel, shape) a sample of legal configs, each with its bound kernels (what the model
predicts) and a launcher (what the sweep times). One builder per kernel serves both devices: the arrays come from
`HostArrays` (NumPy, LLVM backend) or `TorchArrays` (torch, Triton backend; device="cpu" tensors build a CUDA case on
a host without a GPU), so only the shapes and the config spaces differ between cpu_cases and cuda_cases.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from tilec.cost import autotune

SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclasses.dataclass
class Case:
    kernel: str
    shape: str
    target: str
    #: [(config, [bound kernels whose predicted times add up to the config's time])]
    configs: list
    #: config -> a no-argument function that launches it once (compiled; blocks until done on the CPU)
    launcher: Callable
    #: config -> its bound kernels again: what picking a config from the model costs is binding plus predicting
    rebind: Callable
    results: list = dataclasses.field(default_factory=list)  # [(config, measured_s)]
    #: per config, every timing round's seconds (results keep the fastest); empty when not stored
    rounds: list = dataclasses.field(default_factory=list)
    #: values of tensors the kernels' loop bounds read, as the caller knows them (model.predict's `assume`)
    assume: dict = dataclasses.field(default_factory=dict)
    #: per config of several kernels, each kernel's seconds timed alone (GPU sweeps; empty otherwise)
    parts: list = dataclasses.field(default_factory=list)
    sweep_s: float = 0.0
    rank_s: float = 0.0


class HostArrays:
    """NumPy arrays for the LLVM backend."""

    def __init__(self, dtype: str = "float32"):
        self.dtype, self.rng = dtype, np.random.default_rng(0)

    def randn(self, *shape):
        return self.rng.standard_normal(shape, dtype=np.float32).astype(self.dtype, copy=False)

    def empty(self, *shape, dtype=None):
        return np.empty(shape, dtype or self.dtype)

    def ints(self, values):
        return np.ascontiguousarray(values, dtype=np.int32)


class TorchArrays:
    """torch tensors for the Triton backend."""

    def __init__(self, dtype: str, device: str):
        import torch

        self.torch, self.dtype, self.device = torch, dtype, device
        torch.manual_seed(0)

    def randn(self, *shape):
        return self.torch.randn(*shape, dtype=getattr(self.torch, self.dtype), device=self.device)

    def empty(self, *shape, dtype=None):
        return self.torch.empty(*shape, dtype=getattr(self.torch, dtype or self.dtype), device=self.device)

    def ints(self, values):
        return self.torch.as_tensor(np.asarray(values, dtype=np.int32), device=self.device)


def sample(configs: list, n: int, default: dict | None = None) -> list:
    """A fixed pseudo-random sample of n configs (the kernel's default config first when it is legal), so that each
    run of the sweep measures the same ones."""
    rng = np.random.default_rng(0)
    first = [c for c in configs if default and all(c[0].get(k) == v for k, v in default.items())][:1]
    rest = [c for c in configs if not first or c is not first[0]]
    picked = [rest[i] for i in sorted(rng.choice(len(rest), min(n - len(first), len(rest)), replace=False))]
    return first + picked


def compiled(tile_kernel, args, config, backend, arch):
    from tilec.runtime.args import bind_arguments
    from tilec.runtime.cache import compiled_kernel

    run = compiled_kernel(tile_kernel, bind_arguments(tile_kernel.ir, args, backend), config, backend, arch)
    return lambda: run(*args)


def simple_case(name, shape, tile_kernel, dims, space, target, n, args, default=None) -> Case:
    """A case whose configs all share `dims`: a sample of the legal configs in `space`."""
    backend = autotune.backend_for(target)
    configs = sample(autotune.enumerate_configs(tile_kernel, dims, space, target), n, default)
    return Case(name, shape, target, [(cfg, [bound]) for cfg, bound in configs],
                lambda cfg: compiled(tile_kernel, args, cfg, backend, target),
                lambda cfg: [tile_kernel.specialize(dims, cfg, backend, arch=target)])


# ------------------------------------------------------------------------------------------------ builders
def flash_case(arr, target: str, n: int, b: int, h: int, s: int, d: int, default: dict) -> Case:
    from tilec.ops.attention import LOG2E, flash_attention_kernel

    k = flash_attention_kernel(arr.dtype)
    args = tuple(arr.randn(b, h, s, d) for _ in range(3)) + (arr.empty(b, h, s, d),)
    space = {**autotune.default_space(k, target), "scale_log2": [LOG2E / math.sqrt(d)]}
    return simple_case("flash_attention", f"B{b} H{h} S{s} D{d} {SHORT[arr.dtype]}", k,
                       {"B": b, "HQ": h, "HKV": h, "SQ": s, "SKV": s, "D": d}, space, target, n, args, default)


def grouped_gemm_case(arr, target: str, n: int, sizes, kk: int, nn: int, space: dict, default: dict) -> Case:
    """Experts of uneven sizes: the tile schedule, and so the NT dim, depends on block_m, so each block_m is
    enumerated with its own dims."""
    from tilec.ops import moe

    sizes = np.asarray(sizes)
    m, e, offsets = int(sizes.sum()), len(sizes), np.cumsum(sizes)
    k = moe.grouped_gemm_kernel(arr.dtype)
    backend = autotune.backend_for(target)
    x, w, y = arr.randn(m, kk), arr.randn(e, kk, nn), arr.empty(m, nn)

    def dims(bm):
        return {"M": m, "K": kk, "N": nn, "E": e, "NT": len(moe.tile_schedule(offsets, bm))}
    configs = []
    for bm in space["block_m"]:
        configs += autotune.enumerate_configs(k, dims(bm), {**space, "block_m": [bm]}, target)

    def launcher(cfg):
        sched = arr.ints(moe.tile_schedule(offsets, cfg["block_m"]))
        return compiled(k, (x, w, sched, y), cfg, backend, target)
    return Case("grouped_gemm", f"M{m} K{kk} N{nn} E{e} {SHORT[arr.dtype]}", target,
                [(cfg, [bound]) for cfg, bound in sample(configs, n, default)],
                launcher, lambda cfg: [k.specialize(dims(cfg["block_m"]), cfg, backend, arch=target)])


def paged_case(arr, target: str, n: int, nseq: int, hq: int, hkv: int, d: int, ctx: int, per_split: list,
               steps: list, bs: int = 16) -> Case:
    """Decode over `ctx` cached tokens per sequence in pages of `bs`: the split kernel plus the reduce that merges the
    splits, timed together. Configs: pages per split, each with every step config of `steps` (pages_per_iter and
    num_stages; [{}] keeps the kernel's defaults) that takes no more pages per step than the split holds."""
    from tilec.ops import paged

    pages, group = ctx // bs, hq // hkv
    backend = autotune.backend_for(target)
    q, kc, vc = arr.randn(nseq, hq, d), arr.randn(nseq * pages, bs, hkv, d), arr.randn(nseq * pages, bs, hkv, d)
    table = arr.ints(np.random.default_rng(0).permutation(nseq * pages).reshape(nseq, pages))
    lens = arr.ints(np.full(nseq, ctx))
    out = arr.empty(nseq, hq, d)
    split, reduce = paged.paged_split_kernel(arr.dtype), paged.paged_reduce_kernel(arr.dtype)
    scale = paged.LOG2E / math.sqrt(d)

    def bind(cfg):
        dims = {"NSEQ": nseq, "HQ": hq, "HKV": hkv, "D": d, "NB": nseq * pages, "BS": bs, "MAXB": pages,
                "NSPLIT": -(-pages // cfg["pages_per_split"])}
        return [split.specialize(dims, cfg, backend, arch=target),
                reduce.specialize({k: dims[k] for k in ("NSEQ", "HQ", "NSPLIT", "D")}, {}, backend, arch=target)]
    configs = [(cfg, bind(cfg)) for cfg in ({"group": group, "pages_per_split": pps, "scale_log2": scale, **step}
                                            for pps in per_split for step in steps)
               if cfg.get("pages_per_iter", 1) <= cfg["pages_per_split"]]

    def launcher(cfg):
        ns = -(-pages // cfg["pages_per_split"])
        m, l, acc = arr.empty(nseq, hq, ns, dtype="float32"), arr.empty(nseq, hq, ns, dtype="float32"), \
            arr.empty(nseq, ns, hq, d, dtype="float32")
        run_split = compiled(split, (q, kc, vc, table, lens, m, l, acc), cfg, backend, target)
        run_reduce = compiled(reduce, (m, l, acc, out), {}, backend, target)

        def both():
            run_split()
            run_reduce()
        both.parts = (run_split, run_reduce)  # the sweep also times each alone: the reduce's share of the config
        return both
    # every sequence holds ctx tokens: the host knows the lengths (paged_attention reads them to pick the split)
    return Case("paged_decode", f"{nseq}seq Hq{hq} Hkv{hkv} D{d} ctx{ctx} {SHORT[arr.dtype]}", target,
                sample(configs, n), launcher, bind, assume={"CL": ctx})


def sparse_case(arr, target: str, n: int, t: int, hq: int, nkeys: int, topk: int, space: dict, default: dict,
                d: int = 576, dv: int = 512) -> Case:
    """DeepSeek MLA sparse attention: one kv head (d = 512 latent + 64 rope), `topk` keys per token gathered by
    index; a draw of distinct random indices per token."""
    from tilec.ops.sparse import sparse_attention_kernel

    k = sparse_attention_kernel(arr.dtype)
    rng = np.random.default_rng(0)
    idx = arr.ints(np.stack([rng.permutation(nkeys)[:topk] for _ in range(t)]))
    args = (arr.randn(t, hq, d), arr.randn(nkeys, 1, d), arr.randn(nkeys, 1, dv), idx, arr.empty(t, hq, dv))
    space = {"group": [hq], "scale": [1 / math.sqrt(d)], **space}
    return simple_case("sparse_attention", f"T{t} Hq{hq} N{nkeys} topk{topk} D{d} {SHORT[arr.dtype]}", k,
                       {"S": t, "H": hq, "D": d, "N": nkeys, "HK": 1, "DV": dv, "TOPK": topk}, space, target, n,
                       args, default)


def sparse_mla_case(arr, target: str, n: int, t: int, hq: int, nkeys: int, topk: int, space: dict, default: dict,
                    d: int = 576, dv: int = 512) -> Case:
    """The op's own MLA kernel (tilec.ops.sparse_attention with v a view of the latent): each gathered row of the
    one kv head serves as K (all d columns) and V (its first dv)."""
    from tilec.ops.sparse import sparse_mla_kernel

    k = sparse_mla_kernel(arr.dtype)
    rng = np.random.default_rng(0)
    idx = arr.ints(np.stack([rng.permutation(nkeys)[:topk] for _ in range(t)]))
    args = (arr.randn(t, hq, d), arr.randn(nkeys, 1, d), idx, arr.empty(t, hq, dv))
    space = {"group": [hq], "scale": [1 / math.sqrt(d)], **space}
    return simple_case("sparse_mla", f"T{t} Hq{hq} N{nkeys} topk{topk} {SHORT[arr.dtype]}", k,
                       {"S": t, "H": hq, "D": d, "N": nkeys, "HK": 1, "DV": dv, "TOPK": topk}, space, target, n,
                       args, default)


# ------------------------------------------------------------------------------------------------ per device
def cpu_cases(kernels: set, quick: bool, n: int) -> list:
    """fp32 on the LLVM backend: GEMM (squares and skinny M), softmax (whole rows; long rows online) and the LLM
    kernels, each shape sized so a launch of the default config takes ~2-30 ms on a 2-core host."""
    from tilec.ops.gemm import gemm_kernel
    from tilec.ops.softmax import softmax_kernel

    rng = np.random.default_rng(0)
    arr = HostArrays("float32")
    cases = []
    if "gemm" in kernels:
        k = gemm_kernel(False, False, "float32", "float32")
        space = autotune.default_space(k, "cpu")
        shapes = [(512, 512, 512), (16, 1024, 1024)] if quick else \
            [(512, 512, 512), (1024, 1024, 1024), (16, 1024, 1024), (128, 1024, 1024)]
        for m, nn, kk in shapes:
            a, b = rng.random((m, kk), dtype=np.float32), rng.random((kk, nn), dtype=np.float32)
            c = np.empty((m, nn), np.float32)
            cases.append(simple_case("gemm", f"{m}x{nn}x{kk} fp32", k, {"M": m, "N": nn, "K": kk}, space, "cpu",
                                     n, (a, b, c)))
    if "softmax" in kernels:
        shapes = [(4096, 1024, False)] if quick else [(4096, 1024, False), (256, 16384, True)]
        for m, nn, online in shapes:
            k = softmax_kernel("float32", online)
            # whole rows have one config constant (rows per block): sweep it densely, not only over powers of two
            space = {"block_m": [1, 2, 4, 8, 16], "block_n": [64, 128, 256, 512, 1024, 2048, 4096, 8192]} if online \
                else {"block_m": list(range(1, 25)) + [28, 32, 40, 48, 56, 64, 96, 128]}
            x = rng.standard_normal((m, nn), dtype=np.float32)
            y = np.empty_like(x)
            cases.append(simple_case("softmax_online" if online else "softmax_rows", f"{m}x{nn} fp32", k,
                                     {"M": m, "N": nn}, space, "cpu", n, (x, y)))
    # the LLM kernels at the defaults of tilec.ops on the LLVM backend (attention.py, moe.py, paged.py, sparse.py)
    if "attention" in kernels:
        cases.append(flash_case(arr, "cpu", n, 1, 8, 512, 64, dict(block_m=64, block_n=64, num_stages=1)))
    if "grouped_gemm" in kernels:
        # 1024 rows over 8 uneven experts, K 512, N 512 (~0.5 GFLOP); block_k 8 on 256-wide tiles is left out
        space = {"block_m": [16, 32, 64, 128], "block_n": [16, 32, 64, 128, 256], "block_k": [16, 32, 64, 128],
                 "num_stages": [1, 2]}
        cases.append(grouped_gemm_case(arr, "cpu", n, [225, 25, 155, 95, 128, 128, 250, 18], 512, 512, space,
                                       dict(block_m=64, block_n=64, block_k=32, num_stages=2)))
    if "paged" in kernels:
        # 8 sequences x 1024 tokens, Hq 16 / Hkv 4, D 128: 32 blocks unsplit, already 16 per core
        steps = [dict(pages_per_iter=p, num_stages=s) for p in (1, 2, 4, 8, 16) for s in (1, 2)]
        cases.append(paged_case(arr, "cpu", n, 8, 16, 4, 128, 1024, [64, 32, 16, 8, 4], steps))
    if "sparse" in kernels:
        # block_h must divide the 16 heads; under 4 a block gathers the same rows for too few heads (~100 ms)
        space = {"block_h": [4, 8, 16], "block_n": [16, 32, 64, 128], "block_d": [32, 64, 192],
                 "num_stages": [1, 2], "chunk_stages": [1, 2]}
        cases.append(sparse_case(arr, "cpu", n, 4, 16, 4096, 2048, space,
                                 dict(block_h=16, block_n=64, block_d=64, num_stages=1, chunk_stages=1)))
    return cases


def gpu_arch() -> str:
    import torch

    name = torch.cuda.get_device_name().lower()
    return next((t for t in ("h200", "h100", "h800", "h20", "a100", "b200") if t in name), "h100")


def cuda_cases(kernels: set, quick: bool, n: int, arch: str, device: str = "cuda") -> list:
    """bf16 GEMM (squares, skinny M), flash attention, grouped GEMM and paged decode (and sparse attention when
    asked for) on the Triton backend. With device="cpu" the tensors stay on the host: enough to build every case and
    its configs without a GPU."""
    from tilec.ops.gemm import gemm_kernel

    arr = TorchArrays("bfloat16", device)
    cases = []
    if "gemm" in kernels:
        k = gemm_kernel(False, False, "bfloat16", "bfloat16")
        space = autotune.default_space(k, arch)
        shapes = [(4096, 4096, 4096), (16, 4096, 4096)] if quick else \
            [(4096, 4096, 4096), (2048, 2048, 2048), (16, 4096, 4096), (128, 8192, 8192)]
        for m, nn, kk in shapes:
            args = (arr.randn(m, kk), arr.randn(kk, nn), arr.empty(m, nn))
            cases.append(simple_case("gemm", f"{m}x{nn}x{kk} bf16", k, {"M": m, "N": nn, "K": kk}, space, arch, n,
                                     args, dict(block_m=128, block_n=128, block_k=64, num_stages=3)))
    if "attention" in kernels:
        cases.append(flash_case(arr, arch, n, 4, 32, 2048, 128, dict(block_m=128, block_n=64, num_stages=3)))
    if "grouped_gemm" in kernels:
        from tilec.ops.moe import grouped_gemm_kernel

        cases.append(grouped_gemm_case(arr, arch, n, [900, 100, 620, 380, 512, 512, 1000, 72], 2048, 1408,
                                       autotune.default_space(grouped_gemm_kernel("bfloat16"), arch),
                                       dict(block_m=64, block_n=64, block_k=32)))
    if "paged" in kernels:
        # the pages per split: every split count from 1 to 128; each with pages per loop step 1-8 and 1-4 stages (the
        # 14:45 sweep, results/h200/cost_sweep.json, kept the kernel's 1 page and 1 stage; the op runs 8 and 4)
        pages = 4096 // 16
        steps = [dict(pages_per_iter=p, num_stages=s) for p in (1, 2, 4, 8) for s in (1, 2, 3, 4)]
        cases.append(paged_case(arr, arch, n, 8, 32, 8, 128, 4096,
                                sorted({max(1, round(pages / s)) for s in range(1, 129)}), steps))
    if "sparse" in kernels:
        space = {"block_h": [16, 32, 64], "block_n": [32, 64, 128], "block_d": [64, 128, 192],
                 "num_stages": [1, 2], "chunk_stages": [1, 2, 3]}
        cases.append(sparse_case(arr, arch, n, 512, 128, 16384, 2048, space,
                                 dict(block_h=64, block_n=64, block_d=64, num_stages=1, chunk_stages=3)))
    if "sparse_mla" in kernels:
        # the op's shared-latent kernel at both of the regimes: memory-bound (16 heads, few tokens) and
        # compute-bound (128 heads)
        space = {"block_h": [8, 16], "block_n": [16, 32, 64, 128], "num_stages": [1, 2, 3, 4]}
        cases.append(sparse_mla_case(arr, arch, n, 64, 16, 8192, 2048, space,
                                     dict(block_h=8, block_n=128, num_stages=2)))
        space = {"block_h": [16, 32, 64], "block_n": [16, 32, 64, 128], "num_stages": [1, 2, 3, 4]}
        cases.append(sparse_mla_case(arr, arch, n, 512, 128, 8192, 2048, space,
                                     dict(block_h=64, block_n=64, num_stages=2)))
        if not quick:  # shapes the model was not changed for: 32 heads (few tokens) and 64 heads (many)
            space = {"block_h": [8, 16, 32], "block_n": [16, 32, 64, 128], "num_stages": [1, 2, 3]}
            cases.append(sparse_mla_case(arr, arch, n, 128, 32, 16384, 2048, space,
                                         dict(block_h=16, block_n=128, num_stages=2)))
            space = {"block_h": [16, 32, 64], "block_n": [16, 32, 64, 128], "num_stages": [1, 2, 3]}
            cases.append(sparse_mla_case(arr, arch, n, 2048, 64, 16384, 2048, space,
                                         dict(block_h=64, block_n=64, num_stages=2)))
    return cases


def every_case(report_target: str, kernels: set) -> list:
    """Every case a stored sweep of this target may hold (both CPU shape lists), for cost_replay."""
    if report_target == "cpu":
        return cpu_cases(kernels, quick=False, n=1) + cpu_cases(kernels, quick=True, n=1)
    return cuda_cases(kernels, quick=False, n=1, arch=report_target, device="cpu")

