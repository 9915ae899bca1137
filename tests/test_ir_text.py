"""Textual IR: print -> parse -> print is the identity, the parsed kernel equals the original (generic and bound),
floats survive bit-exactly, and bad text fails with its line and column."""
import dataclasses
import math

import pytest

import tilec
import tilec.language as T
from tilec import ir
from tilec.errors import TilecParseError
from tilec.ir_text import parse_kernel_text
from tilec.printer import print_kernel


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


@tilec.kernel
def softmax(X: T.Tensor[("R", "N"), "float32"], Y: T.Tensor[("R", "N"), "float16"], *, block_r: int = 4,
            block_n: int = 64, scale: float = 1.0):
    with T.Kernel(T.ceildiv(R, block_r)) as bx:
        x = T.alloc_fragment((block_r, block_n), "float32")
        m = T.alloc_fragment((block_r,), "float32")
        s = T.alloc_fragment((block_r,), "float32")
        T.copy(X[bx * block_r, 0], x, pad=-T.infinity("float32"))
        T.reduce_max(x, m, dim=1)
        for i, j in T.Parallel(block_r, block_n):
            d = (x[i, j] - m[i]) * scale
            x[i, j] = T.where(j < N, T.exp(d), 0.0)
        T.reduce_sum(x, s, dim=1)
        for i, j in T.Parallel(block_r, block_n):
            Y[bx * block_r + i, j] = T.cast(x[i, j] / s[i], "float16")


@tilec.kernel
def gather_rows(X: T.Tensor[("B", "R", "C"), "float32"], idx: T.Tensor[("B", "J"), "int32"],
                out: T.Tensor[("B", "C"), "float32"], counts: T.Tensor[("B",), "int64"], *, block_c: int = 32,
                use_max: bool = False):
    with T.Kernel(T.ceildiv(C, block_c), B) as (bx, b):
        tile = T.alloc_shared((block_c,), "float32")
        acc = T.alloc_fragment((block_c,), "float32")
        n = T.alloc_var("int64", init=0)
        T.clear(acc)
        for j in T.serial(J):
            row = idx[b, j]
            if row >= 0 and row < R:
                T.copy(X[b, row, bx * block_c:bx * block_c + block_c], tile)
                for c in T.Parallel(block_c):
                    acc[c] = T.max(acc[c], tile[c]) if use_max else acc[c] + tile[c]
                n = n + 1
            else:
                n = n - 1
        T.copy(acc, out[b, bx * block_c])
        T.atomic_add(counts[b], n)


@tilec.kernel
def mixed_ops(Qt: T.Tensor[("D", "S"), "float16"], Kt: T.Tensor[("D", "S"), "float16"],
              V: T.Tensor[("H", "S", "D"), "float32"], O: T.Tensor[("S", "S"), "float32"],
              L: T.Tensor[("S",), "float32"], *, bs: int = 16, bd: int = 16, eps: float = 1e-6, flip: bool = True):
    with T.Kernel(T.ceildiv(S, bs), T.ceildiv(S, bs), H) as (bx, by, h):
        q = T.alloc_shared((bd, bs), "float16")
        k = T.alloc_shared((bd, bs), "float16")
        s = T.alloc_fragment((bs, bs), "float32")
        mn = T.alloc_fragment((bs,), "float32")
        v = T.alloc_fragment((bs, bd), "float32")
        T.fill(mn, T.infinity("float32"))
        T.clear(s)
        for d0 in T.serial(0, D, bd):
            T.copy(Qt[d0, bx * bs], q)
            T.copy(Kt[d0, by * bs], k)
            T.gemm(q, k, s, transpose_a=True)
        T.copy(V[h, by * bs:by * bs + bs, 0:bd], v)
        T.reduce_min(s, mn, dim=1, clear=False)
        for i, j in T.Parallel(bs, bs):
            t = T.sqrt(T.abs(s[i, j])) + T.log2(T.exp2(s[i, j] + eps)) - T.rsqrt(s[i, j] + 1.0) + v[i, j % bd]
            u = T.max(T.tanh(t), T.sigmoid(-t)) / T.min(T.relu(t), 2.0)
            ok = not (i % 2 == 0 or j // 2 > 3) and flip
            s[i, j] = T.where(ok, u, T.log(t) * 0.5)
        T.copy(s, O[bx * bs, by * bs])
        for i in T.Parallel(bs):
            L[bx * bs + i] = T.cast(T.cast(mn[i], "int32"), "float32")


SHAPES = {matmul: {"M": 100, "N": 70, "K": 33}, softmax: {"R": 7, "N": 50},
          gather_rows: {"B": 3, "R": 5, "C": 67, "J": 2}, mixed_ops: {"S": 37, "D": 24, "H": 2}}


def variants():
    for kern, dims in SHAPES.items():
        yield pytest.param(lambda kern=kern: kern.ir, id=f"{kern.__name__}-generic")
        for backend in ("llvm", "triton"):
            yield pytest.param(lambda kern=kern, dims=dims, backend=backend: kern.specialize(dims, {}, backend),
                               id=f"{kern.__name__}-bound-{backend}")


def assert_round_trip(k: ir.Kernel, locs=False) -> str:
    text = print_kernel(k, locs=locs)
    back = parse_kernel_text(text)
    assert back == k
    assert print_kernel(back, locs=locs) == text
    return text


@pytest.mark.parametrize("make", list(variants()))
def test_round_trip(make):
    k = make()
    assert_round_trip(k)
    text = assert_round_trip(k, locs=True)
    back = parse_kernel_text(text)
    assert back.loc == k.loc and back.loc.endswith(".py:" + back.loc.rsplit(":", 1)[1])
    assert [s.loc for s in ir.walk_stmts(back.body)] == [s.loc for s in ir.walk_stmts(k.body)]


def test_matmul_text_after_passes():
    text = print_kernel(matmul.specialize({"M": 100, "N": 70, "K": 33}, {"block_k": 16, "num_stages": 3}))
    lines = [line.strip() for line in text.splitlines()]
    assert "%a = alloc float32[64, 16] shared stages=3" in lines
    assert "%acc = alloc float32[64, 64] fragment" in lines
    assert "for.pipelined %k = 0 to 3 step 1 num_stages=3 stages=[0, 0, 2] {" in lines
    assert "copy %A[%by * 64 +: 64, %k * 16 +: 16] -> %a" in lines
    assert "grid %bx, %by in [2, 2]" in lines
    assert "bound %M = 100, %K = 33, %N = 70, %block_m = 64, %block_n = 64, %block_k = 16, %num_stages = 3" in lines
    assert "loc(" not in text


def test_generic_text_shows_symbols_and_dtypes():
    lines = [line.strip() for line in print_kernel(gather_rows.ir).splitlines()]
    assert "%n = alloc int64[] local init 0:int64" in lines
    assert "let %row: int32 = %idx[%b, %j]" in lines
    assert "if %row >= 0:int32 and index(%row) < %R {" in lines
    assert "atomic_add %counts[%b], %n[]" in lines
    assert any(line.startswith("copy %X[%b, index(%row), %bx * %block_c +: ") for line in lines)
    softmax_lines = [line.strip() for line in print_kernel(softmax.ir).splitlines()]
    assert "copy %X[%bx * %block_r +: %block_r, 0 +: %block_n] -> %x pad -inf" in softmax_lines
    assert "%x[%i, %j] = select(%j < %N, exp(%d), 0.0)" in softmax_lines


def test_source_stage_uses_printer():
    assert matmul.source("ir") == print_kernel(matmul.ir)
    text = matmul.source("software-pipeline", M=64, N=64, K=64)
    assert "stages=[0, 0, 1]" in text and parse_kernel_text(text) == matmul.specialize(
        {"M": 64, "N": 64, "K": 64}, {})


def test_planned_kernel_prints_its_launch_and_round_trips():
    big = matmul.specialize({"M": 4096, "N": 4096, "K": 4096}, {"block_m": 128, "block_n": 128}, "triton")
    text = assert_round_trip(big)
    assert "  grid %bx, %by in [32, 32]\n  launch persistent=true num_warps=8 order=grouped group_rows=8\n{" in text
    one_row = matmul.specialize({"M": 16, "N": 4096, "K": 4096}, {}, "triton")
    assert "launch persistent=false num_warps=4 order=direct\n" in assert_round_trip(one_row)
    assert parse_kernel_text(print_kernel(one_row)).launch == ir.LaunchPlan(False, 4, "direct", 0)
    assert "launch" not in print_kernel(matmul.specialize({"M": 16, "N": 4096, "K": 4096}, {}, "llvm"))
    assert matmul.source("plan-launch", M=16, N=4096, K=4096) == print_kernel(one_row)


@pytest.mark.parametrize("value", [0.1, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 1.0000000000000002,
                                   math.inf, -math.inf, 3.0, -2.5e-07, 123456789.125])
def test_floats_round_trip_exactly(value):
    k = softmax.specialize({"R": 7, "N": 50}, {"scale": value})
    back = parse_kernel_text(print_kernel(k))
    consts = [e.value for s in ir.walk_stmts(back.body) if isinstance(s, ir.Let)
              for e in ir.walk_expr(s.value) if isinstance(e, ir.Const)]
    assert len(consts) == 1 and math.copysign(1, consts[0]) == math.copysign(1, value) and consts[0] == value
    assert dict(back.bound)["scale"] == value and back == k


def test_nan_round_trips_as_text():
    k = softmax.specialize({"R": 7, "N": 50}, {"scale": math.nan})
    text = print_kernel(k)
    back = parse_kernel_text(text)
    assert print_kernel(back) == text and math.isnan(dict(back.bound)["scale"])


def test_unusual_dtypes_print_a_suffix_and_round_trip():
    """IR the frontend never makes (verifier-rejected on purpose) still prints and reads back exactly."""
    k = matmul.specialize({"M": 100, "N": 70, "K": 33}, {})
    i = ir.Var("i", "index")
    odd = (
        ir.Store("C", (ir.Var("undeclared", "int32"), ir.Const(True, "index")),
                 ir.BinOp("+", ir.Const(1, "float32"), ir.Load("ghost", (), "float16"), "float64")),
        ir.Parallel((i,), (ir.index(2),), (
            ir.Let(ir.Var("w", "float16"), ir.Var("i", "float16")),
            ir.Store("C", (i, i), ir.Select(ir.Const(False, "bool"), ir.UnaryOp("neg", ir.Var("w", "float16"),
                                                                               "float32"),
                                            ir.BinOp("max", ir.Const(-3, "index"), ir.Const(12345678901234567890,
                                                                                             "int64"), "int8"),
                                            "float32")))),
        ir.Copy(ir.Region("C", (ir.index(0), ir.index(5)), (ir.index(3), ir.index(4)), (1, 0)),
                ir.Region("nowhere", (), (), ())),
        ir.For(ir.Var("t", "int32"), ir.Const(0, "int32"), ir.Const(9, "int32"), ir.Const(-2, "int32"), (),
               kind="unrolled"),
        ir.Reduce("sum", "a", "acc", -1, clear=False),
        ir.Gemm("a", "b", "acc", True, True),
        ir.If(ir.Const(True, "bool"), ()),
    )
    k = k.replace(body=k.body + odd, params=(dataclasses.replace(k.params[0], stages=2),) + k.params[1:])
    text = assert_round_trip(k)
    for fragment in ("(1:float32 + %ghost[]:float16):float64", "%undeclared:int32, true:index",
                     "let %w: float16 = %i:float16", "neg(%w):float32", "max(-3, 12345678901234567890:int64):int8",
                     "copy %C[0 +: 3, 5 +: 4] axes [1, 0] -> %nowhere[]", "for.unrolled %t: int32 = 0:int32",
                     "step -2:int32 {", "reduce sum %a -> %acc dim=-1 accumulate",
                     "gemm %a, %b -> %acc transpose_a transpose_b", "param %A: float32[100, 33] global stages=2"):
        assert fragment in text


def test_comments_and_free_layout_parse():
    text = """# a hand-written kernel
    kernel @tiny dims %N param %X: float32[%N] global grid %bx in [1] {
      %t = alloc float32[4] fragment   # a tile
      copy %X[%bx * 4 +: 4] -> %t pad 0.0 loc("hand.py:3")
      parallel %i in [4] { %X[%bx * 4 + %i] = %t[%i] * 2.0 }
    }"""
    k = parse_kernel_text(text)
    copy = k.body[1]
    assert copy.loc == "hand.py:3" and copy.pad == ir.Const(0.0, "float32")
    assert copy.src == ir.Region("X", (ir.BinOp("*", ir.Var("bx", "index"), ir.index(4), "index"),),
                                 (ir.index(4),), (0,))
    assert copy.dst == ir.Region("t", (ir.index(0),), (ir.index(4),), (0,))
    assert k.body[2].body[0].value.dtype == "float32"


@pytest.mark.parametrize("text, where, what", [
    ("kernel @k grid %b in [1] {\n  fill %t, 1.0 $\n}", "line 2, column 16", "unexpected character"),
    ("kernel @k grid %b in [1] {\n  %t = alloc float32[4] fragment\n", "line 2", "end of text"),
    ("kernel @k grid %b in [1] {\n  %t = alloc float33[4] fragment\n}", "line 2, column 14", "unknown dtype"),
    ("kernel @k grid %b in [1] {\n  %t = alloc float32[4] register\n}", "line 2, column 25", "unknown memory scope"),
    ("kernel @k grid %b in [1] {\n  %t = alloc float32[4] fragment\n  fill %t, expo(1.0)\n}", "line 3, column 12",
     "unknown function 'expo'"),
    ("kernel @k grid %b in [1] {\n  %t = alloc float32[4] fragment\n  fill %t, max(1.0)\n}", "line 3",
     "takes 2 argument"),
    ("kernel @k grid %b in [1] {\n  %t = alloc float32[4] fragment\n  fill %t, %q\n}", "line 3, column 12",
     "%q is not defined"),
    ("kernel @k grid %b in [1] {\n  fill %t, %t[0]\n}", "line 2", "buffer %t"),
    ("kernel @k grid %b in [1] {\n  copy %A -> %B\n}", "line 2, column 8", "buffer %A is not defined"),
    ("kernel @k grid %b in [1] {\n  let %x: index = 1 +\n}", "line 3, column 1", "unexpected '}'"),
    ("kernel @k grid %b in [1] {\n  let %x: index = pi\n}", "line 2, column 19", "unknown word 'pi'"),
    ("kernel @k dims %M dims %N grid %b in [1] {\n}", "line 1", "second 'dims'"),
    ("kernel @k grid %b in [1]\n  launch persistent=yes num_warps=4 order=direct {\n}", "line 2, column 21",
     "persistent=yes: expected true or false"),
    ("kernel @k grid %b in [1]\n  launch persistent=true num_warps=4 order=spiral {\n}", "line 2, column 44",
     "expected grouped or flat or direct"),
    ("kernel @k grid %b in [1]\n  launch persistent=true num_warps=four order=flat {\n}", "line 2, column 36",
     "num_warps=four: expected an integer"),
    ("kernel @k grid %b in [1]\n  launch persistent=true order=flat {\n}", "line 2", "lacks num_warps"),
    ("kernel @k grid %b in [1]\n  launch persistent=true num_warps=4 order=flat warps=8 {\n}", "line 2, column 49",
     "unknown launch attribute 'warps'"),
    ("kernel @k grid %b in [1]\n  launch persistent=true num_warps=4 num_warps=8 order=flat {\n}", "line 2, column 38",
     "a second num_warps="),
    ("kernel @k grid %b in [1] launch persistent=true num_warps=4 order=flat\n  launch persistent=true num_warps=4 "
     "order=flat {\n}", "line 2", "second 'launch'"),
])
def test_parse_errors_name_line_and_column(text, where, what):
    with pytest.raises(TilecParseError) as e:
        parse_kernel_text(text)
    assert where in str(e.value) and what in str(e.value)


def op_kernels():
    """Every kernel behind tilec.ops (the examples run these), with one set of bound dims for each."""
    import importlib

    # tilec.ops exports functions named like some of its modules (gemm, softmax): take the modules themselves
    names = ("attention", "gemm", "indexer", "kv_cache", "moe", "paged", "softmax", "sparse")
    attention, gemm, indexer, kv_cache, moe, paged, softmax, sparse = (
        importlib.import_module(f"tilec.ops.{m}") for m in names)

    paged_dims = {"NSEQ": 3, "HQ": 8, "D": 64, "NB": 20, "BS": 16, "HKV": 2, "MAXB": 7}
    return [
        (attention.flash_attention_kernel("float16"), {"B": 1, "HQ": 4, "HKV": 2, "SQ": 77, "SKV": 100, "D": 64},
         {"causal": True}),
        (gemm.gemm_kernel(True, False, "float32", "float32"), {"M": 30, "N": 20, "K": 10}, {}),
        (indexer.lightning_indexer_kernel("float32"), {"S": 5, "H": 4, "D": 32, "N": 70}, {}),
        (kv_cache.kv_gather_kernel("float32"), {"NB": 9, "ROW": 96, "N": 4}, {}),
        (kv_cache.kv_scatter_kernel("float32"), {"NT": 5, "ROW": 96, "SLOTS": 40}, {}),
        (moe.grouped_gemm_kernel("float32"), {"M": 40, "K": 16, "N": 24, "E": 3, "NT": 6}, {}),
        (moe.tile_schedule_kernel(), {"E": 3, "NM": 6, "NR": 3}, {"rows": 40}),
        (moe.zero_rows_kernel("float32"), {"NR": 3, "M": 40, "N": 24}, {}),
        (moe.gather_rows_kernel("float32"), {"S": 9, "H": 20, "R": 18}, {}),
        (moe.combine_rows_kernel("float32"), {"R": 18, "N": 20, "S": 9, "TOPK": 2}, {}),
        (paged.paged_decode_kernel("float32"), paged_dims, {"group": 4, "pages_per_iter": 2}),
        (paged.paged_split_kernel("float32"), {**paged_dims, "NSPLIT": 2}, {"group": 4, "pages_per_split": 4}),
        (paged.paged_reduce_kernel("float32"), {"NSEQ": 3, "HQ": 8, "NSPLIT": 2, "D": 64}, {}),
        (softmax.softmax_kernel("float32", True), {"M": 6, "N": 5003}, {}),
        (sparse.sparse_attention_kernel("float32"), {"S": 3, "H": 4, "D": 96, "N": 50, "HK": 1, "DV": 64,
                                                      "TOPK": 70}, {"group": 4, "block_h": 4}),
        (sparse.sparse_mla_kernel("float32"), {"S": 3, "H": 4, "D": 80, "N": 50, "HK": 1, "DV": 64, "TOPK": 70},
         {"group": 4, "block_h": 2}),
        (sparse.sparse_mla_split_kernel("float32"), {"S": 3, "H": 4, "D": 80, "N": 50, "HK": 1, "DV": 64, "TOPK": 70,
                                                      "NSPLIT": 3}, {"group": 4, "block_h": 4, "blocks_per_split": 1}),
    ]


@pytest.mark.parametrize("backend", [None, "llvm", "triton"])
def test_every_op_kernel_round_trips(backend):
    for kernel, dims, config in op_kernels():
        assert_round_trip(kernel.ir if backend is None else kernel.specialize(dims, config, backend), locs=True)
