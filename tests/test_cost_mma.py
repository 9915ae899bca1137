"""Cost model: Hopper's two tensor-core paths (asynchronous wgmma for tiles of 64 rows or more, synchronous mma.sync
below), the backend's grouped launch order, schedule rows read before a persistent loop, table-ordered tile origins,
the fit's per-target constants and replaying a CPU sweep for the host that measured it."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tilec.cost import counting, model
from tilec.cost.targets import get_target, host_cpu
from tilec.ops import moe
from test_cost import matmul

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import calibrate_cost  # noqa: E402


def compute_per_flop(target, block_m, **dims):
    r = matmul.cost(target, **{"M": 4096, "N": 4096, "K": 4096, **dims}, block_m=block_m, block_n=128, block_k=64,
                    num_stages=3)
    return r.compute_s / r.total_flops, r


def test_a_16_row_gemm_tile_is_slower_per_flop_than_a_64_row_one_on_hopper():
    h100 = get_target("h100")
    assert h100.wgmma_rows == 64 and get_target("a100").wgmma_rows == 0
    eff = model.efficiency(h100)
    small, r16 = compute_per_flop("h100", 16)
    big, r64 = compute_per_flop("h100", 64)
    assert r16.total_flops == pytest.approx(r64.total_flops)  # the same work, counted alike
    # the 16-row tile runs mma.sync, at its own efficiency; 64 and 128 rows run wgmma
    # (within the accumulator clear and the epilogue, which are not tensor-core work)
    assert small / big == pytest.approx(eff["compute"] / eff["mma_sync"], rel=0.03) and small > big
    assert compute_per_flop("h100", 128)[0] == pytest.approx(big, rel=1e-6)
    assert r16.time_s / r16.total_flops > r64.time_s / r64.total_flops
    # Ampere has one (synchronous) path: the tile's rows do not change its tensor-core rate
    assert compute_per_flop("a100", 16)[0] == pytest.approx(compute_per_flop("a100", 64)[0], rel=1e-6)


def phase(*gemms):
    ph = counting.Phase("loop k", trips=8)
    ph.gemms = [(m, n, k, 4, 1.0) for m, n, k in gemms]
    return ph


def test_the_mma_path_follows_the_padded_accumulator_rows():
    timing = model.Timing(counting.KernelCounts(1, [], 0, 0, {}, []), get_target("h200"),
                          model.efficiency(get_target("h200")), {})
    assert timing.sync_share(phase((64, 64, 64))) == 0 and timing.sync_share(phase((256, 32, 16))) == 0
    # 32 rows, and a paged decode's 4 query heads (padded to a 16-row dot operand): mma.sync
    assert timing.sync_share(phase((32, 64, 64))) == 1 and timing.sync_share(phase((4, 16, 128))) == 1
    # a phase with both: the share of its FLOPs
    assert timing.sync_share(phase((64, 64, 64), (16, 64, 64))) == pytest.approx(0.2)
    a100 = model.Timing(counting.KernelCounts(1, [], 0, 0, {}, []), get_target("a100"),
                        model.efficiency(get_target("a100")), {})
    assert a100.sync_share(phase((16, 64, 64))) == 0


def test_a_synchronous_mma_adds_to_the_pipeline_chain():
    # one wave of 64 blocks with one block per SM: a latency-bound pipeline, where the MMA's own time shows
    dims = dict(M=1024, N=1024, K=8192)
    eff = model.efficiency(get_target("h200"))
    slow = matmul.cost("h200", **dims, block_m=32, block_n=128, block_k=128, num_stages=3)
    fast = matmul.cost("h200", **dims, block_m=64, block_n=128, block_k=128, num_stages=3)
    assert eff["mma_sync"] < eff["compute"] and slow.time_s > fast.time_s


def test_grouped_launch_order_matches_the_backend():
    from tilec.passes.launch import GROUP_ROWS

    bound = matmul.specialize(dict(M=4096, N=4096, K=4096), dict(block_m=128, block_n=128), "triton", arch="h200")
    assert bound.launch.block_order == "grouped" and model.launch_group_rows(bound, get_target("h200")) == GROUP_ROWS
    assert model.launch_group_rows(bound, get_target("cpu")) == 0
    c = counting.Counting(bound, 132, group_rows=GROUP_ROWS)
    gx, gy = 32, 32
    pid = np.arange(gx * gy)  # the lowering's grouped order (triton_codegen.KernelLowering.block_indices)
    first = pid // (GROUP_ROWS * gx) * GROUP_ROWS
    rows = np.minimum(gy - first, GROUP_ROWS)
    assert (c.block_linear["by"] == first + (pid % (GROUP_ROWS * gx)) % rows).all()
    assert (c.block_linear["bx"] == (pid % (GROUP_ROWS * gx)) // rows).all()
    # every block once
    assert len({(x, y) for x, y in zip(c.block_linear["bx"], c.block_linear["by"])}) == gx * gy
    # 8 rows of blocks sweeping the columns share B's tiles within a wave: fewer misses than row by row
    loop = [p for p in c.run().phases if p.name.startswith("loop")][0]
    plain = [p for p in counting.Counting(bound, 132).run().phases if p.name.startswith("loop")][0]
    grouped, flat = ({t: m for t, _, m in ph.loads} for ph in (loop, plain))
    assert grouped["B"] < flat["B"]


def grouped_gemm(stages):
    sizes = np.array([900, 100, 620, 380, 512, 512, 1000, 72])
    nt = len(moe.tile_schedule(np.cumsum(sizes), 64))
    return moe.grouped_gemm_kernel("bfloat16").specialize(
        {"M": 4096, "K": 2048, "N": 1408, "E": 8, "NT": nt},
        {"block_m": 64, "block_n": 64, "block_k": 64, "num_stages": stages}, "triton", arch="h200")


def test_schedule_reads_before_a_flattened_loop_keep_one_stage():
    # grouped GEMM (persistent, flattened): it reads its schedule row before the K loop; on the H200 its
    # num_stages=1 configs ran 2.7-3.4x slower than 3 stages, while the plain GEMM's did not
    # (test_cost_launch.test_flattened_persistent_loop_pipelines_one_stage_at_the_default)
    one, three = (model.predict(grouped_gemm(s), "h200").time_s for s in (1, 3))
    assert model.launch(grouped_gemm(1), get_target("h200")).persistent
    assert one > 1.5 * three


def test_calibration_fits_each_constant_where_it_means_something():
    assert calibrate_cost.applies("mma_sync", get_target("h200"))
    assert not calibrate_cost.applies("mma_sync", get_target("a100"))
    assert not calibrate_cost.applies("mma_sync", get_target("cpu"))
    assert calibrate_cost.applies("loop", get_target("cpu")) and not calibrate_cost.applies("loop", get_target("h200"))
    assert 0 < model.efficiency(get_target("h100"))["mma_sync"] <= calibrate_cost.GPU_MATRIX_CAP


def test_a_cpu_target_from_a_stored_hosts_figures():
    notes = ("host CPU (detected: 2 cores, 512-bit SIMD on 256-bit FMA pipes, 2.60 GHz, L1d 32 KiB, L2 1024 KiB, "
             "L3 32 MiB; DRAM bandwidth estimated)")
    cpu = host_cpu(notes=notes)
    assert cpu.sms == 2 and cpu.core["simd_bytes"] == 64 and cpu.core["fma_bytes"] == 32
    assert cpu.core["clock_hz"] == pytest.approx(2.6e9) and cpu.core["vector_pipes"] == 4  # Zen 4: 4 FP pipes
    assert cpu.memory["l2"].capacity == 1024 * 1024 and cpu.memory["l3"].capacity == 32 * 1024 ** 2
    assert cpu.vector_flops["float32"] == pytest.approx(2 * 2 * 2.6e9 * 2 * 8)
    assert "2 cores, 512-bit SIMD on 256-bit FMA pipes, 2.60 GHz, L1d 32 KiB, L2 1024 KiB, L3 32 MiB" in cpu.notes
    assert math.isfinite(host_cpu().sfu_ops)  # no notes: this machine
