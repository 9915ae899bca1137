"""Verifier: good kernels pass; each broken invariant, made by editing good IR with dataclasses.replace, raises
TilecVerifyError naming the statement's file:line and the problem."""
import dataclasses
from dataclasses import replace

import pytest

from test_ir_text import SHAPES, gather_rows, matmul, mixed_ops, softmax
from tilec import ir
from tilec.errors import TilecVerifyError
from tilec.ir_text import parse_kernel_text
from tilec.passes.verify import verify

MATMUL = matmul.specialize(SHAPES[matmul], {})
SOFTMAX = softmax.specialize(SHAPES[softmax], {})
GATHER = gather_rows.specialize(SHAPES[gather_rows], {})
IDX = ir.Var("i", "index")


def edit(kernel, pred, fn):
    """The kernel with the first statement matching `pred` (pre-order, nested bodies too) replaced by fn(stmt)."""
    done = []

    def body_of(body):
        out = []
        for s in body:
            if not done and pred(s):
                done.append(s)
                out.append(fn(s))
                continue
            for attr in ("body", "then_body", "else_body"):
                if hasattr(s, attr) and not done:
                    s = replace(s, **{attr: body_of(getattr(s, attr))})
            out.append(s)
        return tuple(out)

    new = kernel.replace(body=body_of(kernel.body))
    assert done, "no statement matched"
    return new


def is_(cls, **fields):
    return lambda s: isinstance(s, cls) and all(getattr(s, k) == v for k, v in fields.items())


def alloc_of(name):
    return lambda s: isinstance(s, ir.Alloc) and s.buffer.name == name


def set_shape(shape):
    return lambda s: replace(s, buffer=replace(s.buffer, shape=tuple(ir.index(d) for d in shape)))


def first(kernel, pred):
    return next(s for s in ir.walk_stmts(kernel.body) if pred(s))


@pytest.mark.parametrize("kern", list(SHAPES), ids=lambda k: k.__name__)
def test_good_kernels_verify(kern):
    verify(kern.ir)
    for backend in ("llvm", "triton"):
        verify(kern.specialize(SHAPES[kern], {}, backend), scheduled=True)


def test_hand_written_text_is_verified_with_its_loc():
    text = """kernel @k dims %N param %X: float32[%N] global grid %b in [1] {
      %t = alloc float32[4] fragment loc("hand.py:2")
      gemm %t, %t -> %t loc("hand.py:3")
    }"""
    with pytest.raises(TilecVerifyError, match=r"hand\.py:3: gemm takes 2-D tiles"):
        verify(parse_kernel_text(text))


def loop_body_alloc_used_after():
    """acc allocated inside the pipelined loop, then copied out after it."""
    acc = first(MATMUL, alloc_of("acc"))
    k = edit(MATMUL, alloc_of("acc"), lambda s: ir.Fill("b", ir.Const(0.0, "float32"), loc=s.loc))
    k = edit(k, is_(ir.Fill, buffer="acc"), lambda s: ir.Fill("b", ir.Const(0.0, "float32"), loc=s.loc))
    return edit(k, is_(ir.For), lambda s: replace(s, body=(acc,) + s.body, stages=(1,) + s.stages))


def let_used_after_its_loop():
    row = first(GATHER, is_(ir.Let)).var
    store = ir.Store("counts", (ir.Var("b", "index"),), ir.Cast(row, "int64"), loc="t.py:99")
    return GATHER.replace(body=GATHER.body + (store,))


def duplicate_let():
    return edit(SOFTMAX, is_(ir.Parallel), lambda s: replace(s, body=(s.body[0],) + s.body))


CASES = [
    # scoping
    ("unknown buffer", lambda: edit(MATMUL, is_(ir.Gemm), lambda s: replace(s, c="zz")), "buffer 'zz'"),
    ("alloc visible only in its loop", loop_body_alloc_used_after, "'acc', which is not defined here"),
    ("buffer allocated twice", lambda: edit(MATMUL, is_(ir.Fill), lambda s: first(MATMUL, alloc_of("a"))),
     "'a' is declared a second time"),
    ("undefined variable", lambda: edit(SOFTMAX, is_(ir.Store), lambda s: replace(
        s, indices=(ir.Var("zz", "index"), IDX))), "%zz is used before its definition"),
    ("let used outside its scope", let_used_after_its_loop, "%row is used before its definition or outside"),
    ("SSA: a let bound twice", duplicate_let, "%d is bound a second time"),
    ("loop var shadows a block var", lambda: edit(MATMUL, is_(ir.For), lambda s: replace(
        s, var=ir.Var("bx", "index"))), "%bx is bound a second time"),
    # tiers
    ("gemm into shared", lambda: edit(MATMUL, is_(ir.Gemm), lambda s: replace(s, c="b")), "into a fragment"),
    ("gemm from global", lambda: edit(MATMUL, is_(ir.Gemm), lambda s: replace(s, a="A")),
     "operand a must be a shared or fragment tile; 'A' is global"),
    ("reduce on global", lambda: edit(SOFTMAX, is_(ir.Reduce), lambda s: replace(s, src="X")),
     "reduce works on shared or fragment tiles; 'X'"),
    ("store into global with a missing index", lambda: edit(SOFTMAX, is_(ir.Store, buffer="Y"), lambda s: replace(
        s, indices=s.indices[:1])), "all indices scalar"),
    ("copy into a local scalar", lambda: edit(GATHER, is_(ir.Copy), lambda s: replace(
        s, dst=ir.Region("n", (), (), ()))), "'n' is a local scalar"),
    ("copy global to global", lambda: edit(GATHER, is_(ir.Copy), lambda s: replace(
        s, dst=replace(s.src, buffer="X"))), "one side must be a shared or fragment tile"),
    ("atomic_add into a tile", lambda: edit(GATHER, is_(ir.AtomicAdd), lambda s: ir.AtomicAdd(
        "acc", (ir.index(0),), ir.Const(1.0, "float32"), loc=s.loc)), "numeric global tensor"),
    ("pipeline stages do not match the body", lambda: edit(MATMUL, is_(ir.For), lambda s: replace(
        s, stages=(0, 1))), "2 stage numbers for 3 body statements"),
    ("pipeline stage beyond num_stages", lambda: edit(MATMUL, is_(ir.For), lambda s: replace(
        s, stages=(0, 0, 2))), "must lie in [0, 2)"),
    ("parallel body holds a copy", lambda: edit(SOFTMAX, is_(ir.Parallel), lambda s: replace(
        s, body=s.body + (first(SOFTMAX, is_(ir.Copy)),))), "Copy inside parallel"),
    # dtypes
    ("compare typed float", lambda: edit(SOFTMAX, is_(ir.Store, buffer="x"), lambda s: replace(
        s, value=replace(s.value, cond=replace(s.value.cond, dtype="float32")))), "a comparison gives bool"),
    ("select on a float condition", lambda: edit(SOFTMAX, is_(ir.Store, buffer="x"), lambda s: replace(
        s, value=replace(s.value, cond=s.value.false_value))), "select's condition is float32"),
    ("float index", lambda: edit(SOFTMAX, is_(ir.Store, buffer="x"), lambda s: replace(
        s, indices=(ir.Const(0.5, "float32"), s.indices[1]))), "not an integer scalar"),
    ("arith on mixed dtypes", lambda: edit(SOFTMAX, is_(ir.Let), lambda s: replace(
        s, value=replace(s.value, rhs=ir.Const(2, "index")))), "'*' of float32 and index"),
    ("let dtype differs from its value", lambda: edit(SOFTMAX, is_(ir.Let), lambda s: replace(
        s, var=ir.Var("d", "float16"))), "let %d: float16 is bound to a float32 value"),
    ("store of the wrong dtype", lambda: edit(SOFTMAX, is_(ir.Store, buffer="Y"), lambda s: replace(
        s, value=s.value.value)), "holds float16; cast it"),
    ("var used with another dtype", lambda: edit(SOFTMAX, is_(ir.Store, buffer="x"), lambda s: replace(
        s, indices=(ir.Var("i", "int32"), s.indices[1]))), "%i is index where it is defined, int32 here"),
    ("exp of an integer", lambda: edit(SOFTMAX, is_(ir.Store, buffer="x"), lambda s: replace(
        s, value=replace(s.value, true_value=ir.UnaryOp("exp", ir.index(1), "index")))), "'exp' needs a float"),
    ("if on an integer", lambda: edit(GATHER, is_(ir.If), lambda s: replace(s, cond=ir.index(1))), "not bool"),
    # shapes (bound)
    ("gemm M/N/K disagree", lambda: edit(MATMUL, alloc_of("acc"), set_shape((64, 32))),
     "gemm shapes disagree: a is 64x32, b is 32x64, acc is 64x32"),
    ("gemm transpose breaks K", lambda: edit(MATMUL, is_(ir.Gemm), lambda s: replace(s, transpose_b=True)),
     "b.T is 64x32"),
    ("copy extents differ from the tile", lambda: edit(MATMUL, is_(ir.Copy), lambda s: replace(
        s, src=replace(s.src, extents=(ir.index(64), ir.index(16))))),
     "copy extents disagree along mapped dim 1: 'A' gives 16, 'a' takes 32"),
    ("copy region outside the tile", lambda: edit(MATMUL, alloc_of("a"), set_shape((64, 16))),
     "copy region of 'a': [0, 32) along dim 1 is outside the tile's 16"),
    ("reduce dst shape", lambda: edit(SOFTMAX, alloc_of("m"), set_shape((8,))),
     "gives [4], but 'm' is [8]"),
    ("reduce dim out of range", lambda: edit(SOFTMAX, is_(ir.Reduce), lambda s: replace(s, dim=2)),
     "dim=2 is out of range"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_ir_is_rejected(make, message):
    k = make()
    with pytest.raises(TilecVerifyError) as e:
        verify(k, scheduled=True)
    text = str(e.value)
    assert message in text
    assert ".py:" in text.split(": ")[0] + ":", f"no file:line in {text!r}"


def test_error_names_the_statement_line():
    k = edit(MATMUL, is_(ir.Gemm), lambda s: replace(s, c="b"))
    gemm = first(MATMUL, is_(ir.Gemm))
    with pytest.raises(TilecVerifyError) as e:
        verify(k)
    assert str(e.value).startswith(f"{gemm.loc}: ") and "test_ir_text.py" in gemm.loc


def test_schedule_required_only_after_pipelining():
    unscheduled = edit(MATMUL, is_(ir.For), lambda s: replace(s, stages=()))
    verify(unscheduled)
    with pytest.raises(TilecVerifyError, match="0 stage numbers for 3 body statements"):
        verify(unscheduled, scheduled=True)
    serial = edit(MATMUL, is_(ir.For), lambda s: replace(s, kind="serial"))
    with pytest.raises(TilecVerifyError, match="serial loop %k carries pipeline stages"):
        verify(serial)


def test_kernel_level_checks():
    with pytest.raises(TilecVerifyError, match="parameter 'A' is shared"):
        verify(MATMUL.replace(params=(dataclasses.replace(MATMUL.params[0], scope="shared"),) + MATMUL.params[1:]))
    with pytest.raises(TilecVerifyError, match="2 extents and 1 block indices"):
        verify(MATMUL.replace(block_vars=MATMUL.block_vars[:1]))
    with pytest.raises(TilecVerifyError, match="bound value for 'Q'"):
        verify(MATMUL.replace(bound=MATMUL.bound + (("Q", 1),)))
    generic = mixed_ops.ir
    with pytest.raises(TilecVerifyError, match="grid extent.*%S is used before"):
        verify(generic.replace(dims=tuple(d for d in generic.dims if d.name != "S"), params=()))
