"""`tilec` command line: `ir` prints the generic IR or the IR after each pass (checked as text, and parsed back),
`lower` prints generated code; usage mistakes exit 2 with one line, TilecErrors exit 1."""
import importlib.util
import os
import subprocess
import sys

import pytest

from test_ir_text import SHAPES, matmul
from tilec.cli import main
from tilec.ir_text import parse_kernel_text
from tilec.printer import print_kernel

KERNELS = os.path.join(os.path.dirname(__file__), "test_ir_text.py")
MATMUL = f"{KERNELS}::matmul"
MATMUL_DIMS = ["--set", "M=100", "--set", "N=70", "--set", "K=33"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def sections(out: str) -> list:
    """[[stage, text]] from `tilec ir` output with `# ---- stage ----` headers."""
    result = []
    for line in out.splitlines(keepends=True):
        if line.startswith("# ---- "):
            result.append([line[len("# ---- "):].rsplit(" ----", 1)[0], ""])
        else:
            result[-1][1] += line
    return result


def test_ir_without_dims_prints_the_generic_ir(capsys):
    code, out, err = run(capsys, "ir", MATMUL, "--set", "block_m=32")
    assert code == 0 and err == ""
    assert "# ----" not in out and "alloc float32[%block_m, %block_k] shared\n" in out
    assert parse_kernel_text(out) == matmul.ir


def test_ir_prints_every_pass(capsys):
    code, out, err = run(capsys, "ir", MATMUL, *MATMUL_DIMS)
    assert code == 0 and err == ""
    stages = sections(out)
    assert [name for name, _ in stages] == ["frontend", "bind", "simplify", "fold-ranges (unchanged)", "verify (unchanged)", "software-pipeline",
                                                "place-memory (unchanged)", "plan-launch (unchanged)", "verify (unchanged)"]
    stages = dict(stages)
    assert "%a = alloc float32[64, 32] shared\n" in stages["simplify"] and " stages=[" not in stages["simplify"]
    pipelined = stages["software-pipeline"]
    assert "  %a = alloc float32[64, 32] shared stages=2\n" in pipelined
    assert "  %b = alloc float32[32, 64] shared stages=2\n" in pipelined
    assert "  for.pipelined %k = 0 to 2 step 1 num_stages=2 stages=[0, 0, 1] {\n" in pipelined
    assert parse_kernel_text(pipelined) == matmul.specialize(SHAPES[matmul], {})
    assert "grid %bx, %by in [(70 + 64 - 1) // 64, (100 + 64 - 1) // 64]" in stages["bind"]
    assert "grid %bx, %by in [2, 2]" in stages["simplify"]


def test_ir_one_stage_with_config_target_and_locs(capsys):
    code, out, _ = run(capsys, "ir", MATMUL, *MATMUL_DIMS, "--set", "block_k=16", "--set", "num_stages=3",
                       "--target", "triton", "--arch", "h100", "--stage", "software-pipeline", "--locs")
    assert code == 0 and "# ----" not in out
    assert "%a = alloc float32[64, 16] shared stages=3 loc(" in out and "stages=[0, 0, 2] loc(" in out
    planned = matmul.specialize(SHAPES[matmul], {"block_k": 16, "num_stages": 3}, "triton")
    assert parse_kernel_text(out) == planned.replace(launch=None)
    code, out, _ = run(capsys, "ir", MATMUL, "--stage", "frontend")
    assert code == 0 and out == print_kernel(matmul.ir)


def test_ir_plan_launch_stage_shows_the_plan_for_triton(capsys):
    code, out, _ = run(capsys, "ir", MATMUL, *MATMUL_DIMS, "--target", "triton", "--stage", "plan-launch")
    assert code == 0 and "\n  launch persistent=false num_warps=4 order=grouped group_rows=8\n" in out
    assert parse_kernel_text(out) == matmul.specialize(SHAPES[matmul], {}, "triton")
    code, out, _ = run(capsys, "ir", MATMUL, *MATMUL_DIMS, "--target", "triton")
    assert "# ---- plan-launch ----" in out and "# ---- verify (unchanged) ----" in out


@pytest.mark.parametrize("argv, message", [
    (["ir", "/no/such/file.py::k"], "no such file: /no/such/file.py"),
    (["ir", KERNELS], "expected FILE::KERNEL"),
    (["ir", f"{KERNELS}::nope"], "no @tilec.kernel named 'nope'; kernels there: gather_rows, matmul, mixed_ops"),
    (["ir", f"{KERNELS}::SHAPES"], "'SHAPES' is a dict, not a @tilec.kernel"),
    (["ir", MATMUL, "--set", "M512"], "--set takes NAME=VALUE, got 'M512'"),
    (["ir", MATMUL, "--set", "M=big"], "--set value 'big' is not an int"),
    (["ir", MATMUL, "--set", "Q=1"], "--set Q: kernel 'matmul' has dims M, K, N and config block_m"),
    (["ir", MATMUL, "--set", "M=8", "--set", "K=8"], "needs a value for every dim: add --set N=..."),
    (["ir", MATMUL, *MATMUL_DIMS, "--stage", "bogus"], "unknown stage 'bogus'; stages are frontend, bind"),
    (["lower", "--target", "llvm", MATMUL], "lowering to llvm needs a value for every dim"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tilec: error: ") and message in err


def test_import_failure_is_a_usage_error(capsys, tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import tilec\nraise RuntimeError('boom')\n")
    code, _, err = run(capsys, "ir", f"{bad}::k")
    assert code == 2 and "cannot import" in err and "RuntimeError: boom" in err


def test_tilec_errors_exit_1(capsys):
    code, out, err = run(capsys, "ir", MATMUL, *MATMUL_DIMS, "--set", "block_m=2.5")
    assert code == 1 and out == "" and "TilecArgumentError" in err and "block_m = 2.5" in err
    code, _, err = run(capsys, "ir", MATMUL, "--set", "M=4096", "--set", "N=4096", "--set", "K=4096",
                       "--set", "block_m=256", "--set", "block_n=256", "--set", "block_k=128", "--set",
                       "num_stages=4", "--target", "triton")
    assert code == 1 and "TilecResourceError" in err and "shared memory over capacity" in err


def test_python_dash_m_runs_the_cli(tmp_path):
    src = tmp_path / "k.py"
    src.write_text("import tilec, tilec.language as T\n\n@tilec.kernel\n"
                   "def scale(X: T.Tensor[(\"N\",), \"float32\"], *, f: float = 2.0):\n"
                   "    with T.Kernel(T.ceildiv(N, 4)) as bx:\n"
                   "        for i in T.Parallel(4):\n"
                   "            X[bx * 4 + i] = X[bx * 4 + i] * f\n")
    done = subprocess.run([sys.executable, "-m", "tilec", "ir", f"{src}::scale", "--set", "N=10", "--stage",
                           "simplify"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "  grid %bx in [3]\n" in done.stdout and "%X[%bx * 4 + %i] = %X[%bx * 4 + %i] * 2.0" in done.stdout
    done = subprocess.run([sys.executable, "-m", "tilec", "ir", f"{src}::missing"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "no @tilec.kernel named 'missing'" in done.stderr


@pytest.mark.skipif(importlib.util.find_spec("tilec.lowering.llvm") is None,
                    reason="the LLVM lowering (tilec.lowering.llvm) is not importable yet")
def test_lower_prints_llvm_ir(capsys):
    code, out, err = run(capsys, "lower", "--target", "llvm", MATMUL, *MATMUL_DIMS)
    assert code == 0, err
    assert "define" in out and "matmul" in out


def test_lower_prints_triton_source_as_planned(capsys):
    from tilec.lowering.triton import lower

    code, out, err = run(capsys, "lower", "--target", "triton", MATMUL, *MATMUL_DIMS)
    assert code == 0 and err == "" and "@triton.jit" in out
    assert out == lower(matmul.specialize(SHAPES[matmul], {}, "triton"))
    code, _, err = run(capsys, "lower", "--target", "triton", "--arch", "cpu", MATMUL, *MATMUL_DIMS)
    assert code == 1 and "TilecLoweringError" in err and "no launch plan" in err
