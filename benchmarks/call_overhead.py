"""Host overhead of one tilec call: a tiny kernel (one block, so the launch itself is as cheap as it gets) and a few
tilec.ops calls, each the median over many calls.

    python benchmarks/call_overhead.py                  # CPU: LLVM on NumPy, Triton's interpreter and an emulated
                                                        # GPU path (both with the final Triton launch stubbed out)
    python benchmarks/call_overhead.py --device cuda    # GPU: tilec call vs a bare launch of the same Triton kernel

On the GPU the calls are queued back to back and synchronised once per batch: for kernels this small the batch
time is the host time per call. A bare launch is `jit_fn[grid](*tensors, num_warps=...)` of the very function tilec
launches, so the difference is what tilec adds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tilec
import tilec.language as T


@tilec.kernel
def add_one(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 64):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        t = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], t)
        for i in T.Parallel(block):
            t[i] = t[i] + 1.0
        T.copy(t, Y[bx * block])


def median_us(fn, calls: int, repeats: int = 7, sync=lambda: None) -> float:
    """Median over `repeats` batches of the mean time of one call in a batch of `calls`, in microseconds."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times) * 1e6


def show(what: str, us: float):
    print(f"{what + ':':55s} {us:9.1f} us/call")


def op_calls(make, heads: int, dim: int):
    """(name, call) for small ops (4 sequences of up to 8 pages of 16 tokens), on arrays from `make(numpy array)`."""
    from tilec import ops

    rng = np.random.default_rng(0)
    f32 = lambda *shape: make(rng.standard_normal(shape).astype(np.float32))  # noqa: E731
    cache, ids = f32(32, 16, heads, dim), make(np.array([3, 1, 7, 9], np.int32))
    q, kc, vc = f32(4, 4 * heads, dim), f32(32, 16, heads, dim), f32(32, 16, heads, dim)
    table = make(np.arange(32, dtype=np.int32).reshape(4, 8))
    lens = make(np.array([100, 17, 128, 64], np.int32))
    a = f32(dim, dim)
    return [
        ("ops.kv_gather(check=False)", lambda: ops.kv_gather(cache, ids, check=False)),
        ("ops.paged_attention(check=False)", lambda: ops.paged_attention(q, kc, vc, table, lens, check=False)),
        (f"ops.gemm {dim}x{dim}", lambda: ops.gemm(a, a)),
    ]


def cpu(args):
    x, y = np.zeros(64, np.float32), np.zeros(64, np.float32)
    show("LLVM, tiny kernel on NumPy", median_us(lambda: add_one(x, y), args.calls))
    for name, call in op_calls(lambda a: a, heads=1, dim=16):  # tiny: mostly host time
        show(f"LLVM, {name} on NumPy", median_us(call, max(50, args.calls // 20)))
    try:
        import torch
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except ImportError:
        print("(no torch/triton: the Triton path is not measured)")
        return
    # Triton's interpreter with its launch stubbed out: what tilec itself spends per call on that path
    tx, ty = torch.zeros(64), torch.zeros(64)
    add_one(tx, ty, target="triton")
    run, InterpretedFunction.run = InterpretedFunction.run, lambda self, *a, **k: None
    try:
        us = median_us(lambda: add_one(tx, ty, target="triton"), args.calls)
    finally:
        InterpretedFunction.run = run
    show("Triton interpreter path, launch stubbed", us)
    # the GPU path on stand-ins for CUDA tensors, JITFunction.run stubbed: tilec's Python per GPU call
    fx, fy = FakeCuda(64), FakeCuda(64)
    run, JITFunction.run = JITFunction.run, lambda self, *a, **k: None
    try:
        us = median_us(lambda: add_one(fx, fy), args.calls)
    finally:
        JITFunction.run = run
    show("GPU path (fake CUDA tensors), launch stubbed", us)


class FakeCuda:
    """Just enough of a CUDA float32 tensor for tilec's host code (type module, device, dtype, shape, layout)."""
    __module__ = "torch.fake"

    def __init__(self, n):
        import torch

        self.shape, self.dtype, self.device, self.ndim = torch.Size([n]), torch.float32, torch.device("cuda", 0), 1

    def is_contiguous(self):
        return True

    def stride(self):
        return (1,)

    def data_ptr(self):
        return 1 << 20


def cuda(args):
    import torch

    from tilec.runtime.fastpath import prepared_launch

    sync = torch.cuda.synchronize
    x, y = torch.zeros(64, device="cuda"), torch.zeros(64, device="cuda")
    add_one(x, y)
    run = prepared_launch(add_one, x, y)
    bare = lambda: run.jit_function[run.grid](x, y, **run.options)  # noqa: E731
    tilec_us = median_us(lambda: add_one(x, y), args.calls, sync=sync)
    bare_us = median_us(bare, args.calls, sync=sync)
    print(f"tiny kernel: tilec call {tilec_us:7.1f} us, bare Triton launch {bare_us:7.1f} us, "
          f"tilec adds {tilec_us - bare_us:6.1f} us")
    for name, call in op_calls(lambda a: torch.from_numpy(a).cuda(), heads=8, dim=128):
        show(name, median_us(call, max(50, args.calls // 5), sync=sync))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed batch")
    args = parser.parse_args()
    (cuda if args.device == "cuda" else cpu)(args)


if __name__ == "__main__":
    main()
