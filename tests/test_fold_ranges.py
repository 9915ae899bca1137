"""fold-ranges: integer comparisons the value ranges decide are folded, undecided ones stay, on printed IR."""
import numpy as np

import tilec
import tilec.language as T
from tilec import ir
from tilec.passes.ranges import value_range
from tilec.printer import print_kernel


@tilec.kernel
def masked_scale(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 32):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], x)
        for i in T.Parallel(block):
            x[i] = T.where(bx * block + i < N, x[i] * 2.0, -1.0)
        T.copy(x, Y[bx * block])


def printed(n):
    stages = masked_scale.stages("llvm", N=n)
    return print_kernel(stages["simplify"]), print_kernel(stages["fold-ranges"])


def test_mask_dropped_when_the_blocks_tile_n_exactly():
    before, after = printed(96)  # 3 blocks of 32: bx * 32 + i <= 95 < 96 always
    assert "select" in before and "select" not in after


def test_mask_kept_on_a_ragged_last_block():
    before, after = printed(97)
    assert "select" in after


def test_folded_kernel_still_right():
    for n in (1, 31, 96, 97):
        x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        y = np.empty_like(x)
        masked_scale(x, y)
        np.testing.assert_allclose(y, x.astype(np.float64) * 2.0, rtol=1e-7)


def test_value_range_is_conservative():
    i, j = ir.Var("i", "index"), ir.Var("j", "index")
    env = {"i": (0, 7), "j": (-3, 2)}
    e = ir.BinOp("+", ir.BinOp("*", i, ir.index(4), "index"), j, "index")
    assert value_range(e, env) == (-3, 30)
    # a dividend that may be negative: C truncation and Python flooring differ, so no range is claimed
    assert value_range(ir.BinOp("//", j, ir.index(2), "index"), env) is None
    assert value_range(ir.BinOp("%", i, ir.index(16), "index"), env) == (0, 7)
    assert value_range(ir.Var("k", "index"), env) is None


def test_clamp_that_never_clamps_is_dropped():
    from tilec.passes.ranges import fold_compare

    c, d = ir.Var("c", "index"), ir.Var("d", "index")
    env = {"c": (0, 8), "d": (0, 63)}
    col = ir.BinOp("+", ir.BinOp("*", c, ir.index(64), "index"), d, "index")  # at most 575
    assert fold_compare(ir.BinOp("min", col, ir.index(575), "index"), env) == col
    kept = ir.BinOp("min", col, ir.index(574), "index")
    assert fold_compare(kept, env) == kept
    assert fold_compare(ir.BinOp("max", col, ir.index(0), "index"), env) == col


def test_a_loop_that_never_runs_is_dropped():
    from tilec.ops.attention import flash_attention_kernel

    kernel = flash_attention_kernel("float32")
    dims = {"B": 1, "HQ": 2, "HKV": 2, "SQ": 128, "SKV": 128, "D": 32}
    # no causal mask and 128 keys in whole 64-key tiles: the masked second key loop has nothing to do
    exact = print_kernel(kernel.stages("llvm", **dims, block_m=64, block_n=64)["fold-ranges"])
    ragged = print_kernel(kernel.stages("llvm", **{**dims, "SKV": 100}, block_m=64, block_n=64)["fold-ranges"])
    assert exact.count("for.pipelined") == 1 and ragged.count("for.pipelined") == 2
