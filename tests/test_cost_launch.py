"""Cost model mechanisms behind the H200 sweep: the Triton backend's persistent launch, the thread limit, Hopper's
asynchronous MMA holding a pipeline buffer, table-driven tiles and loop bounds, the CPU's inline vector exp."""
import math

import pytest

from tilec.cost import counting, model
from tilec.cost.targets import get_target
from tilec.ops import moe, paged
from test_cost import matmul


def test_persistent_grid_runs_one_program_per_sm():
    big = matmul.cost("h200", M=4096, N=4096, K=4096, block_m=64, block_n=64)  # 4096 blocks > 132 SMs
    assert big.occupancy == 1 and "persistent" in big.explanation
    assert big.waves == pytest.approx(4096 / 132)
    small = matmul.cost("h200", M=512, N=512, K=4096, block_m=64, block_n=64)  # 64 blocks: one launch each
    assert small.occupancy > 1 and "persistent" not in small.explanation


def test_thread_limit_and_eight_warps():
    bound = matmul.specialize(dict(M=512, N=512, K=512), dict(block_m=128, block_n=128, block_k=16, num_stages=1),
                              "triton", arch="h200")
    how = model.launch(bound, get_target("h200"))
    assert how.threads == 256  # a 128x128 accumulator gets 8 warps
    smem, frag = counting.tile_bytes(bound)
    counts = counting.KernelCounts(0, [], smem, 0, {}, [])  # no fragments
    h200 = get_target("h200")
    blocks, why = model.occupancy(counts, h200, model.efficiency(h200), how.threads)
    assert blocks == 2048 // 256  # 64 warps per SM (the 32-block limit and shared memory allow more)
    assert h200.max_blocks_per_sm > 8 and h200.smem_per_sm // smem > 8


def test_exact_fp32_dots_get_eight_warps_from_smaller_tiles():
    # fp32/fp64 dots run on the CUDA cores with each thread's share of the tile in registers: 128x64 tiles take 8
    # warps there, while a bf16 128x64 tile (tensor cores) keeps 4
    from tilec.ops.gemm import gemm_kernel

    config = dict(block_m=128, block_n=64, block_k=16, num_stages=3)
    plans = {dt: gemm_kernel(False, False, dt, dt).specialize(dict(M=256, N=256, K=64), config, "triton").launch
             for dt in ("float32", "float64", "bfloat16")}
    warps = {dt: plan.num_warps for dt, plan in plans.items()}
    assert warps == {"float32": 8, "float64": 8, "bfloat16": 4}


def test_async_mma_keeps_a_buffer_on_hopper_not_on_ampere():
    dims = dict(M=512, N=512, K=8192)  # 64 blocks of 64x64: not persistent, each pipeline fills per block

    def t(target, stages):
        return matmul.cost(target, **dims, block_m=64, block_n=64, block_k=64, num_stages=stages).time_s
    # Hopper: with 2 stages the refill waits for the MMA still reading the buffer, so a second stage gains far
    # less than on Ampere, whose synchronous mma.sync frees it; a third stage does overlap
    gain = {target: t(target, 1) / t(target, 2) for target in ("h200", "a100")}
    assert gain["h200"] < 0.8 * gain["a100"] and gain["a100"] > 1.3
    assert t("h200", 3) < 0.7 * t("h200", 2)


def test_flattened_persistent_loop_pipelines_one_stage_at_the_default():
    dims = dict(M=4096, N=4096, K=4096, block_m=128, block_n=128, block_k=64)
    one, three = (matmul.cost("h200", **dims, num_stages=s).time_s for s in (1, 3))
    assert one == pytest.approx(three, rel=1e-6)
    # not flattened (attention-like: a tile copied in before the loop) keeps num_stages=1 unpipelined
    small = dict(M=512, N=512, K=4096, block_m=64, block_n=64, block_k=64)
    assert matmul.cost("h200", **small, num_stages=1).time_s > matmul.cost("h200", **small, num_stages=3).time_s


def paged_split(pages_per_split):
    dims = {"NSEQ": 8, "HQ": 32, "HKV": 8, "D": 128, "NB": 2048, "BS": 16, "MAXB": 256,
            "NSPLIT": -(-256 // pages_per_split)}
    return paged.paged_split_kernel("bfloat16").specialize(
        dims, {"group": 4, "pages_per_split": pages_per_split}, "triton", arch="h200")


def test_paged_split_loop_runs_to_its_static_cap_with_two_round_trips():
    for pps in (7, 64, 256):
        counts = counting.Counting(paged_split(pps), 132).run()
        loop = next(p for p in counts.phases if p.name.startswith("loop"))
        # min(first + pages_per_split, pages of the sequence): the length is a table value, the cap is static
        assert loop.trips == pps and loop.depth == 2  # the page id, then the page


def test_schedule_driven_tiles_share_the_cache():
    import numpy as np

    sizes = np.array([900, 100, 620, 380, 512, 512, 1000, 72])
    nt = len(moe.tile_schedule(np.cumsum(sizes), 128))
    bound = moe.grouped_gemm_kernel("bfloat16").specialize(
        {"M": 4096, "K": 2048, "N": 1408, "E": 8, "NT": nt}, {"block_m": 128, "block_n": 128}, "triton", arch="h200")
    counts = counting.Counting(bound, 132).run()
    loop = next(p for p in counts.phases if p.name.startswith("loop"))
    miss = {t: m for t, _, m in loop.loads}
    # blocks of one schedule row read the same X rows: one fetch per wave
    assert miss["X"] < 0.2
    # the W tile's expert is a table value, but only 8 experts exist: a wave of 132 blocks over 11 column tiles
    # fetches at most 8 x 11 W tiles (not one per block); and the schedule lists each expert's rows in order, so a
    # wave's 12 schedule rows span about 1 + 11 x 8 / (all rows) experts, not 8
    assert 11 / 132 < miss["W"] < 0.6 * 8 * 11 / 132


def test_cpu_exp_is_inline_vector_code():
    from llvmlite import ir as llir

    from tilec.lowering.llvm import dtypes as dt, vecmath

    class Builder:  # the two things vecmath asks of the code generator
        def __init__(self, b, module):
            self.b, self.module = b, module

        def intrinsic(self, name, ty, args):
            return self.b.call(self.module.declare_intrinsic(name, [ty]), args)
    module = llir.Module()
    fn = llir.Function(module, llir.FunctionType(dt.F32, [dt.F32]), name="f")
    b = llir.IRBuilder(fn.append_basic_block())
    b.ret(vecmath.emit(Builder(b, module), "exp", fn.args[0]))
    ops = [i.opname for i in fn.blocks[0].instructions if i.opname not in ("bitcast", "ret")]
    cpu = get_target("cpu")
    assert cpu.core["exp_ops"] == len(ops)  # the instruction count the rate is built on
    lanes = cpu.core["fma_bytes"] // 4
    assert cpu.sfu_ops == pytest.approx(cpu.core["clock_hz"] * cpu.sms * lanes * cpu.core["vector_pipes"]
                                        / cpu.core["exp_ops"])
    # far cheaper than a scalar libm call (~ 16 cycles per element)
    assert cpu.sfu_ops > 4 * cpu.core["clock_hz"] * cpu.sms / 16
    assert math.isfinite(cpu.sfu_ops)
