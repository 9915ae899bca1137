"""Launch arguments: backend choice and the checks of `bind_arguments` (each error names the argument and the fix)."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tilec
import tilec.language as T
from tilec.errors import TilecArgumentError, TilecBackendUnavailable
from tilec.runtime import args as runtime_args
from tilec.runtime.args import bind_arguments, pick_backend
from tilec.settings import settings

torch = pytest.importorskip("torch")


@tilec.kernel
def matmul(A: T.Tensor[("M", "K"), "float32"], B: T.Tensor[("K", "N"), "float32"],
           C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 16, block_n: int = 16, block_k: int = 8):
    with T.Kernel(T.ceildiv(N, block_n), T.ceildiv(M, block_m)) as (bx, by):
        a = T.alloc_shared((block_m, block_k), A.dtype)
        b = T.alloc_shared((block_k, block_n), B.dtype)
        acc = T.alloc_fragment((block_m, block_n), "float32")
        T.clear(acc)
        for k in T.Pipelined(T.ceildiv(K, block_k), num_stages=2):
            T.copy(A[by * block_m, k * block_k], a)
            T.copy(B[k * block_k, bx * block_n], b)
            T.gemm(a, b, acc)
        T.copy(acc, C[by * block_m, bx * block_n])


@tilec.kernel
def widen(X: T.Tensor[("N", 4), "bfloat16"], Y: T.Tensor[("N", 4), "float32"], *, block: int = 8):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block, 4), "bfloat16")
        y = T.alloc_fragment((block, 4), "float32")
        T.copy(X[bx * block, 0], x)
        for i, j in T.Parallel(block, 4):
            y[i, j] = T.cast(x[i, j], "float32") * 2.0
        T.copy(y, Y[bx * block, 0])


def operands(m=5, k=7, n=3, dtype=np.float32):
    return np.ones((m, k), dtype), np.ones((k, n), dtype), np.zeros((m, n), dtype)


def bind(*args, backend="llvm", kernel=matmul):
    return bind_arguments(kernel.ir, args, backend)


class FakeCuda:
    """Stands in for a torch CUDA tensor on this GPU-less machine: the runtime reads only its type's module,
    device, dtype and shape."""
    __module__ = "torch.fake"

    def __init__(self, shape, index=0):
        self.shape, self.dtype = shape, torch.float32
        self.device = torch.device("cuda", index)


# ---------------------------------------------------------------------------------------------- pick_backend
def test_backend_follows_the_arguments():
    a = np.zeros(3)
    assert pick_backend((a, a), None) == "llvm"
    assert pick_backend((torch.zeros(3), torch.zeros(3)), None) == "llvm"  # torch CPU: NumPy views on LLVM
    assert pick_backend((FakeCuda((3,)), FakeCuda((3,))), None) == "triton"
    assert pick_backend((torch.zeros(3),), "triton") == "triton"  # Triton's interpreter
    assert pick_backend((a,), "llvm") == "llvm"


def test_unknown_target_lists_the_valid_ones():
    with pytest.raises(TilecArgumentError, match=r"target='cuda' is not a backend; use one of 'llvm', 'triton'"):
        pick_backend((np.zeros(3),), "cuda")


def test_numpy_with_target_triton_is_refused_by_name():
    a, b, c = operands()
    with pytest.raises(TilecArgumentError, match=r"argument 'A' is a NumPy array, but target='triton' .* takes "
                                                 r"torch tensors: pass torch.from_numpy\(A\)"):
        bind(a, b, c, backend="triton")
    with pytest.raises(TilecArgumentError, match="argument 'A' is a NumPy array"):
        matmul(a, b, c, target="triton")


def test_cuda_tensor_with_target_llvm_is_refused_by_name():
    t = [FakeCuda(s) for s in ((5, 7), (7, 3), (5, 3))]
    with pytest.raises(TilecArgumentError, match=r"argument 'A' is on cuda:0, but target='llvm' runs on the CPU: "
                                                 r"pass A.cpu\(\)"):
        bind(*t, backend="llvm")


def test_tensors_on_two_devices():
    t = [FakeCuda((5, 7)), FakeCuda((7, 3), index=1), FakeCuda((5, 3))]
    with pytest.raises(TilecArgumentError, match=r"argument 'A' is on cuda:0 and argument 'B' on cuda:1"):
        bind(*t, backend="triton")
    with pytest.raises(TilecArgumentError, match="argument 'A' is on cpu and argument 'C' on meta"):
        bind(torch.ones(5, 7), torch.ones(7, 3), torch.empty(5, 3, device="meta"), backend="triton")


# ---------------------------------------------------------------------------------------------- bind_arguments
def test_binds_every_dim():
    assert bind(*operands(5, 7, 3)) == {"M": 5, "K": 7, "N": 3}
    assert bind(*operands(1, 1, 1)) == {"M": 1, "K": 1, "N": 1}
    assert bind(*operands(4, 0, 2)) == {"M": 4, "K": 0, "N": 2}  # empty is allowed: the grid may be empty too
    t = [torch.from_numpy(x) for x in operands(13, 2, 17)]
    assert bind(*t, backend="triton") == {"M": 13, "K": 2, "N": 17}
    assert bind(*t, backend="llvm") == {"M": 13, "K": 2, "N": 17}


def test_argument_count():
    a, b, _ = operands()
    with pytest.raises(TilecArgumentError, match=r"matmul takes 3 arguments \(A, B, C\), got 2"):
        bind(a, b)


def test_argument_type():
    a, b, c = operands()
    with pytest.raises(TilecArgumentError, match=r"argument 'B' must be a NumPy array or a torch tensor of shape "
                                                 r"\(K, N\) and dtype float32, got list"):
        bind(a, b.tolist(), c)


def test_dtype():
    a, b, c = operands()
    with pytest.raises(TilecArgumentError, match=r"argument 'B' must have dtype float32, got float64: pass "
                                                 r"B.astype\(np.float32\)"):
        bind(a, b.astype(np.float64), c)
    t = [torch.from_numpy(x) for x in (a, b, c)]
    with pytest.raises(TilecArgumentError, match=r"argument 'C' must have dtype float32, got float16: pass "
                                                 r"C.to\(torch.float32\)"):
        bind(t[0], t[1], t[2].half(), backend="triton")


def test_rank():
    a, b, c = operands()
    with pytest.raises(TilecArgumentError, match=r"argument 'A' must have rank 2 \(declared shape \(M, K\)\), "
                                                 r"got shape \(35,\)"):
        bind(a.reshape(-1), b, c)


def test_fixed_dim():
    y = np.zeros((6, 4), np.float32)
    with pytest.raises(TilecArgumentError, match=r"argument 'X' dim 1 must be 4 \(declared shape \(N, 4\)\), "
                                                 r"got shape \(6, 5\)"):
        bind(torch.zeros(6, 5, dtype=torch.bfloat16), torch.from_numpy(y), kernel=widen)


def test_symbolic_dim_must_agree_across_arguments():
    a, b, c = operands(5, 63, 3)
    with pytest.raises(TilecArgumentError, match=r"argument 'B' dim 0 \(K\) is 64 but argument 'A' set K = 63 "
                                                 r"\(dim 1\); expected shape \(63, N\)"):
        bind(a, np.ones((64, 3), np.float32), c)
    with pytest.raises(TilecArgumentError, match=r"argument 'C' dim 1 \(N\) is 4 but argument 'B' set N = 3"):
        bind(a, b, np.zeros((5, 4), np.float32))


def test_contiguity():
    a, b, c = operands(6, 6, 6)
    with pytest.raises(TilecArgumentError, match=r"argument 'A' must be C-contiguous .* pass "
                                                 r"np.ascontiguousarray\(A\)"):
        bind(a.T, b, c)
    with pytest.raises(TilecArgumentError, match=r"argument 'B' must be C-contiguous .* pass B.contiguous\(\)"):
        bind(torch.from_numpy(a), torch.from_numpy(b).t(), torch.from_numpy(c), backend="triton")
    bind(a[:3], b, c[:3])  # a row slice is still contiguous


def test_read_only_output_but_read_only_input_is_fine():
    a, b, c = operands()
    a.flags.writeable = False
    bind(a, b, c)
    c.flags.writeable = False
    with pytest.raises(TilecArgumentError, match=r"argument 'C' is read-only but the kernel writes it"):
        bind(a, b, c)


def test_bfloat16_numpy_needs_ml_dtypes(monkeypatch):
    y = np.zeros((6, 4), np.float32)
    monkeypatch.setattr(runtime_args, "ml_dtypes_available", lambda: False)
    with pytest.raises(TilecBackendUnavailable, match=r"argument 'X' is bfloat16; .* pip install ml_dtypes"):
        bind(np.zeros((6, 4), np.uint16), y, kernel=widen)
    bind(torch.zeros(6, 4, dtype=torch.bfloat16), torch.from_numpy(y), kernel=widen)  # torch has its own bf16


def test_bfloat16_numpy_with_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert bind(np.zeros((6, 4), ml_dtypes.bfloat16), np.zeros((6, 4), np.float32), kernel=widen) == {"N": 6}
    with pytest.raises(TilecArgumentError, match=r"pass X.astype\(ml_dtypes.bfloat16\)"):
        bind(np.zeros((6, 4), np.float16), np.zeros((6, 4), np.float32), kernel=widen)


# ---------------------------------------------------------------------------------------------- through a call
def llvm_importable() -> bool:
    try:
        from tilec.lowering.llvm import load  # noqa: F401
    except ImportError:
        return False
    return True


needs_llvm = pytest.mark.skipif(not llvm_importable(), reason="tilec.lowering.llvm.load is not importable")


@needs_llvm
def test_torch_cpu_tensors_run_on_llvm_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "cache_dir", tmp_path)
    x = torch.arange(33 * 4, dtype=torch.float32).reshape(33, 4).to(torch.bfloat16)
    y = torch.zeros(33, 4)
    widen(x, y)
    torch.testing.assert_close(y, x.float() * 2)


def test_numpy_calls_never_import_torch(tmp_path):
    script = tmp_path / "numpy_only.py"
    script.write_text(textwrap.dedent("""
        import sys
        import numpy as np
        import tilec, tilec.language as T
        from tilec.runtime.args import bind_arguments, pick_backend

        @tilec.kernel
        def copy(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 8):
            with T.Kernel(T.ceildiv(N, block)) as bx:
                x = T.alloc_fragment((block,), "float32")
                T.copy(X[bx * block], x)
                T.copy(x, Y[bx * block])

        args = (np.ones(11, np.float32), np.zeros(11, np.float32))
        assert bind_arguments(copy.ir, args, pick_backend(args, None)) == {"N": 11}
        print("torch" in sys.modules)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
