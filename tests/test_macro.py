"""T.macro: kernel code inlined where a kernel calls it; same IR as writing it out, errors at the macro's line."""
import os

import numpy as np
import pytest

import tilec
import tilec.language as T
from tilec.errors import TilecError, TilecSyntaxError
from tilec.printer import print_kernel


@T.macro
def scale_rows(x, factor, n):
    for i, j in T.Parallel(n, n):
        x[i, j] = x[i, j] * factor


@T.macro
def count_positive(src, n, total):
    for i in T.serial(n):
        if src[i, 0] > 0:
            total = total + 1


@tilec.kernel
def with_macro(X: T.Tensor[("N", "N"), "float32"], Y: T.Tensor[("N", "N"), "float32"],
               C: T.Tensor[("N",), "int32"], *, block: int = 8):
    with T.Kernel(1) as bx:
        x = T.alloc_fragment((block, block), "float32")
        total = T.alloc_var("int32")
        total = 0
        T.copy(X[0, 0], x)
        scale_rows(x, 2.0, block)
        scale_rows(x, factor=0.5 * 3.0, n=block)
        count_positive(X, block, total)
        C[0] = total
        T.copy(x, Y[0, 0])


@tilec.kernel
def written_out(X: T.Tensor[("N", "N"), "float32"], Y: T.Tensor[("N", "N"), "float32"],
                C: T.Tensor[("N",), "int32"], *, block: int = 8):
    with T.Kernel(1) as bx:
        x = T.alloc_fragment((block, block), "float32")
        total = T.alloc_var("int32")
        total = 0
        T.copy(X[0, 0], x)
        for i, j in T.Parallel(block, block):
            x[i, j] = x[i, j] * 2.0
        for i, j in T.Parallel(block, block):
            x[i, j] = x[i, j] * (0.5 * 3.0)
        for i in T.serial(block):
            if X[i, 0] > 0:
                total = total + 1
        C[0] = total
        T.copy(x, Y[0, 0])


def test_inlined_ir_is_the_written_out_ir():
    a = print_kernel(with_macro.stages("llvm", N=8)["fold-ranges"]).replace("with_macro", "K")
    b = print_kernel(written_out.stages("llvm", N=8)["fold-ranges"]).replace("written_out", "K")
    assert a == b


def test_macro_kernel_runs_on_both_backends():
    x = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    y, c = np.zeros_like(x), np.zeros(8, np.int32)
    with_macro(x, y, c)
    np.testing.assert_allclose(y, x.astype(np.float64) * 3.0, rtol=1e-6)
    assert c[0] == int((x[:, 0] > 0).sum()) and 0 < c[0] < 8  # the seed gives both signs: the test can fail
    torch = pytest.importorskip("torch")
    yt, ct = torch.zeros(8, 8), torch.zeros(8, dtype=torch.int32)
    with_macro(torch.from_numpy(x), yt, ct, target="triton")
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-6)
    assert ct[0].item() == c[0]


@T.macro
def uses_a_callers_name(x):
    x[0, 0] = hidden  # noqa: F821 - the caller's local, which a macro must not see


@tilec.kernel
def leaky(X: T.Tensor[("N", "N"), "float32"]):
    with T.Kernel(1) as bx:
        hidden = 1.0  # noqa: F841
        x = T.alloc_fragment((4, 4), "float32")
        uses_a_callers_name(x)


def test_macro_sees_only_its_parameters_and_errors_name_its_line():
    with pytest.raises(TilecSyntaxError, match="unknown name 'hidden'") as err:
        leaky.ir
    assert f"{os.path.basename(__file__)}:{uses_a_callers_name.__wrapped__.__code__.co_firstlineno + 2}" in \
        str(err.value)


@T.macro
def forever(x):
    forever(x)


@tilec.kernel
def recursive(X: T.Tensor[("N",), "float32"]):
    with T.Kernel(1) as bx:
        forever(X)


def test_recursion_and_bad_arity_are_refused():
    with pytest.raises(TilecSyntaxError, match="nested more than"):
        recursive.ir

    @tilec.kernel
    def arity(X: T.Tensor[("N", "N"), "float32"]):
        with T.Kernel(1) as bx:
            x = T.alloc_fragment((4, 4), "float32")
            scale_rows(x, 2.0)

    with pytest.raises(TilecSyntaxError, match="missing a required argument: 'n'"):
        arity.ir


def test_calling_a_macro_outside_a_kernel_says_so():
    with pytest.raises(TilecError, match="only has meaning inside a @tilec.kernel"):
        scale_rows(None, 1.0, 4)
