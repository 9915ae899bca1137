"""Frontend: the IR built from the syntax tree, and errors that point at the user's file and line."""
import inspect

import pytest

import tilec
import tilec.language as T
from tilec import ir
from tilec.errors import TilecArgumentError, TilecError, TilecResourceError, TilecSyntaxError, TilecTypeError


@tilec.kernel
def matmul(A: T.Tensor[("M", "K"), "float32"], B: T.Tensor[("K", "N"), "float32"],
           C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 64, block_n: int = 64,
           block_k: int = 32, num_stages: int = 2):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_m, block_k), A.dtype)
        b = T.alloc_shared((block_k, block_n), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=num_stages):
            T.copy(A[by * block_m, k * block_k], a)
            T.copy(B[k * block_k, bx * block_n], b)
            T.gemm(a, b, acc)
        T.copy(acc, C[by * block_m, bx * block_n])


def line_of(fn, text):
    """The absolute line number in this file of the first source line of `fn` containing `text`."""
    lines, first = inspect.getsourcelines(getattr(fn, "fn", fn))
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_matmul_ir_structure():
    k = matmul.ir
    assert [p.name for p in k.params] == ["A", "B", "C"]
    assert [d.name for d in k.dims] == ["M", "K", "N"]
    assert [c.name for c in k.config] == ["block_m", "block_n", "block_k", "num_stages"]
    loop = next(s for s in k.body if isinstance(s, ir.For))
    assert loop.kind == "pipelined"
    assert [type(s).__name__ for s in loop.body] == ["Copy", "Copy", "Gemm"]
    assert loop.body[0].src.axes == (0, 1)


def test_bound_ir_folds_constants_and_pipelines():
    k = matmul.specialize({"M": 100, "N": 70, "K": 33}, {"block_k": 16, "num_stages": 3}, "llvm")
    assert k.grid == (ir.index(2), ir.index(2))
    loop = next(s for s in k.body if isinstance(s, ir.For))
    assert loop.stop == ir.index(3) and loop.stages == (0, 0, 2)
    shared = [s.buffer for s in ir.walk_stmts(k.body) if isinstance(s, ir.Alloc) and s.buffer.scope == "shared"]
    assert all(b.stages == 3 for b in shared)


def test_unknown_name_points_at_line():
    @tilec.kernel
    def bad(A: T.Tensor[("N",), "float32"]):
        with T.Kernel(1) as bx:
            x = undefined_thing + 1  # noqa: F821,F841

    with pytest.raises(TilecSyntaxError) as e:
        bad.ir
    assert f"{__file__}:{line_of(bad, 'undefined_thing')}" in str(e.value)
    assert "undefined_thing" in str(e.value)


def test_unsupported_statement():
    @tilec.kernel
    def bad(A: T.Tensor[("N",), "float32"]):
        with T.Kernel(1) as bx:
            while True:
                pass

    with pytest.raises(TilecSyntaxError, match=r"While.*not supported") as e:
        bad.ir
    assert f":{line_of(bad, 'while True')}:" in str(e.value)


def test_wrong_arity_names_the_function():
    @tilec.kernel
    def bad(A: T.Tensor[("N",), "float32"]):
        with T.Kernel(1) as bx:
            a = T.alloc_fragment((16,), "float32")
            T.fill(a)

    with pytest.raises(TilecSyntaxError, match=r"T.fill.*missing") as e:
        bad.ir
    assert f":{line_of(bad, 'T.fill(a)')}:" in str(e.value)


def test_gemm_into_shared_is_a_tier_error():
    @tilec.kernel
    def bad(A: T.Tensor[("N", "N"), "float32"]):
        with T.Kernel(1) as bx:
            a = T.alloc_shared((16, 16), "float32")
            c = T.alloc_shared((16, 16), "float32")
            T.gemm(a, a, c)

    with pytest.raises(TilecTypeError, match="fragment"):
        bad.ir


def test_if_inside_parallel_is_a_masked_region_but_loops_are_not():
    @tilec.kernel
    def masked(A: T.Tensor[("N",), "float32"]):
        with T.Kernel(1) as bx:
            for i in T.Parallel(16):
                if i > 3:
                    A[i] = 1.0

    par = next(s for s in masked.ir.body if isinstance(s, ir.Parallel))
    assert isinstance(par.body[0], ir.If)

    @tilec.kernel
    def bad(A: T.Tensor[("N",), "float32"]):
        with T.Kernel(1) as bx:
            for i in T.Parallel(16):
                for j in T.serial(3):
                    A[i] = 1.0

    with pytest.raises(TilecSyntaxError, match="inside T.Parallel") as e:
        bad.ir
    assert f":{line_of(bad, 'T.serial(3)')}:" in str(e.value)


def test_missing_annotation_and_bad_config():
    def no_annotation(A):
        with T.Kernel(1) as bx:
            pass

    with pytest.raises(TilecSyntaxError, match="T.Tensor"):
        tilec.kernel(no_annotation).ir

    def str_config(A: T.Tensor[("N",), "float32"], *, mode: str = "x"):
        with T.Kernel(1) as bx:
            pass

    with pytest.raises(TilecSyntaxError, match="int, float or bool"):
        tilec.kernel(str_config).ir


def test_reassign_in_nested_block_needs_alloc_var():
    @tilec.kernel
    def bad(A: T.Tensor[("N",), "float32"]):
        with T.Kernel(1) as bx:
            s = A[0]
            for i in T.serial(4):
                s = s + A[i]

    with pytest.raises(TilecSyntaxError, match="alloc_var"):
        bad.ir


def test_unknown_config_and_missing_dims():
    with pytest.raises(TilecArgumentError, match="block_q"):
        matmul.specialize({"M": 4, "N": 4, "K": 4}, {"block_q": 3}, "llvm")
    with pytest.raises(TilecArgumentError, match="dim"):
        matmul.specialize({"M": 4}, {}, "llvm")


def test_shared_memory_over_capacity_names_buffer_and_limit():
    with pytest.raises(TilecResourceError) as e:
        matmul.specialize({"M": 4096, "N": 4096, "K": 4096},
                          {"block_m": 256, "block_n": 256, "block_k": 128, "num_stages": 4}, "triton")
    msg = str(e.value)
    assert "shared" in msg and "'a'" in msg and str(227 * 1024) in msg and "test_frontend.py" in msg


def test_calling_language_outside_kernel():
    with pytest.raises(TilecError, match="inside a @tilec.kernel"):
        T.copy(1, 2)


def test_alloc_var_scalar_loop_and_index_loads():
    @tilec.kernel
    def rowsum(X: T.Tensor[("R", "C"), "float32"], idx: T.Tensor[("R",), "int32"],
               out: T.Tensor[("R",), "float32"]):
        with T.Kernel(R) as r:
            total = T.alloc_var("float32", init=0.0)
            row = idx[r]
            for c in range(C):
                total = total + X[row, c]
            out[r] = total

    k = rowsum.ir
    lets = [s for s in ir.walk_stmts(k.body) if isinstance(s, ir.Let)]
    assert lets and lets[0].value.buffer == "idx"
    stores = [s for s in ir.walk_stmts(k.body) if isinstance(s, ir.Store)]
    assert {s.buffer for s in stores} == {"total", "out"}
