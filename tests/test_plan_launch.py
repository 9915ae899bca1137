"""plan-launch: the launch decisions (persistent grid, warps, block order) are an IR annotation that the Triton
lowering and the cost model both follow; CPU kernels carry none, and the lowering refuses an unplanned kernel."""
import pytest

from tilec import ir
from tilec.cost import model
from tilec.cost.targets import get_target
from tilec.errors import TilecArgumentError, TilecLoweringError, TilecVerifyError
from tilec.lowering.triton import launch_grid, lower
from tilec.ops import kv_cache, moe
from tilec.ops.attention import flash_attention_kernel
from tilec.ops.gemm import gemm_kernel
from tilec.passes.launch import GROUP_ROWS
from tilec.passes.verify import verify

GEMM = gemm_kernel(False, False, "bfloat16", "bfloat16")
SQUARE = dict(M=4096, N=4096, K=4096)


def test_a_large_gemm_runs_persistent_in_grouped_order_with_eight_warps():
    bound = GEMM.specialize(SQUARE, dict(block_m=128, block_n=128, block_k=64, num_stages=3), "triton", arch="h100")
    assert bound.launch == ir.LaunchPlan(persistent=True, num_warps=8, block_order="grouped", group_rows=GROUP_ROWS)
    source = lower(bound)
    assert "NUM_SMS: tl.constexpr" in source and f"group_rows = tl.minimum(32 - first_row, {GROUP_ROWS})" in source
    assert launch_grid(bound) == (32 * 32,)


def test_small_tiles_and_grids_keep_four_warps_and_one_program_per_block():
    small = GEMM.specialize(dict(M=256, N=256, K=256), dict(block_m=64, block_n=64), "triton")  # 16 blocks
    assert small.launch == ir.LaunchPlan(False, 4, "grouped", GROUP_ROWS)
    # a skinny M: one row of blocks, nothing to group
    skinny = GEMM.specialize(dict(M=16, N=4096, K=4096), dict(block_m=16, block_n=64, block_k=128, num_stages=4),
                             "triton")
    assert skinny.launch == ir.LaunchPlan(False, 4, "direct", 0) and launch_grid(skinny) == (64, 1)


def test_causal_flash_attention_is_not_persistent():
    kernel = flash_attention_kernel("bfloat16")
    dims = dict(B=4, HQ=32, HKV=32, SQ=2048, SKV=2048, D=128)
    config = dict(block_m=128, block_n=64, num_stages=3)
    plain = kernel.specialize(dims, {**config, "causal": False}, "triton", arch="h200")
    causal = kernel.specialize(dims, {**config, "causal": True}, "triton", arch="h200")
    assert plain.launch == ir.LaunchPlan(True, 8, "direct", 0)  # 8 warps: the 128 x 128 output accumulator
    # the key loop stops at the block's diagonal: uneven blocks, which the hardware's scheduler balances
    assert causal.launch == ir.LaunchPlan(False, 8, "direct", 0)
    assert "NUM_SMS" not in lower(causal) and "tl.program_id(2)" in lower(causal)


def test_a_grid_past_cudas_y_limit_launches_flat():
    bound = kv_cache.kv_gather_kernel("bfloat16").specialize(dict(NB=100000, ROW=2048, N=70000), {}, "triton")
    assert bound.launch == ir.LaunchPlan(False, 4, "flat", 0) and launch_grid(bound) == (70000,)
    assert "pid % 1" in lower(bound)


def test_cpu_kernels_carry_no_plan():
    assert GEMM.specialize(SQUARE, {}, "llvm").launch is None
    assert GEMM.specialize(SQUARE, {}, "triton", arch="cpu").launch is None


def test_lowering_and_the_cost_model_require_the_plan():
    unplanned = GEMM.specialize(SQUARE, {}, "llvm")
    with pytest.raises(TilecLoweringError, match="no launch plan.*plan-launch"):
        lower(unplanned)
    with pytest.raises(TilecArgumentError, match="no launch plan to time on h200"):
        model.predict(unplanned, "h200")
    assert model.predict(unplanned, "cpu").time_s > 0


def test_both_follow_an_edited_plan_and_options_override_it():
    bound = GEMM.specialize(SQUARE, dict(block_m=128, block_n=128, block_k=64, num_stages=3), "triton")
    flat = bound.replace(launch=ir.LaunchPlan(False, 4, "flat", 0))
    source = lower(flat)
    assert "NUM_SMS" not in source and "grouped order" not in source and "by = pid // 32" in source
    assert launch_grid(flat) == (1024,)
    h100 = get_target("h100")
    assert model.launch_group_rows(flat, h100) == 0 and model.launch_group_rows(bound, h100) == GROUP_ROWS
    assert model.launch(flat, h100) == model.Launch(False, 128)
    assert model.launch(bound, h100) == model.Launch(True, 256)
    assert "NUM_SMS" not in lower(bound, persistent=False) and "NUM_SMS" in lower(flat, persistent=True)


def test_a_schedule_driven_loop_length_still_runs_persistent():
    # the grouped GEMM's K loop is constant, its rows come from a table: the data's to balance, not the block's
    bound = moe.grouped_gemm_kernel("bfloat16").specialize(
        {"M": 4096, "K": 2048, "N": 1408, "E": 8, "NT": 72}, {"block_m": 64, "block_n": 64}, "triton")
    assert bound.launch.persistent


@pytest.mark.parametrize("plan, message", [
    (ir.LaunchPlan(False, 4, "diagonal", 0), "launch order 'diagonal'"),
    (ir.LaunchPlan(False, 6, "direct", 0), "num_warps=6; it must be a power of two"),
    (ir.LaunchPlan(False, 4, "grouped", 0), "a grouped order needs group_rows > 0"),
    (ir.LaunchPlan(False, 4, "direct", 8), "order=direct with group_rows=8"),
])
def test_verifier_rejects_a_malformed_plan(plan, message):
    bound = GEMM.specialize(SQUARE, {}, "triton")
    verify(bound, scheduled=True)
    with pytest.raises(TilecVerifyError, match=message):
        verify(bound.replace(launch=plan))


def test_grouped_order_needs_a_two_dim_grid():
    bound = kv_cache.kv_gather_kernel("bfloat16").specialize(dict(NB=10, ROW=2048, N=7), {}, "triton")
    with pytest.raises(TilecVerifyError, match="grouped on a grid of 3 dims"):
        verify(bound.replace(grid=bound.grid + (ir.index(1),), block_vars=bound.block_vars + (ir.Var("z", "index"),),
                             launch=ir.LaunchPlan(False, 4, "grouped", 8)))
