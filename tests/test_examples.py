"""The examples run end to end on the CPU at small sizes and report success (main() returns 0)."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_MISSING = [m for m in ("tilec.lowering.llvm", "tilec.runtime.cache") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"the CPU path needs {_MISSING}, not present yet")


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv", [["--m", "67", "--n", "45", "--k", "130", "--repeat", "1"],
                                  ["--m", "1", "--n", "1", "--k", "1", "--repeat", "1"],
                                  ["--m", "31", "--n", "17", "--k", "9", "--dtype", "float16", "--repeat", "1"]])
def test_gemm_example(argv, capsys):
    assert load_example("gemm").main(argv) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "OK" in out


@pytest.mark.parametrize("argv", [["--m", "13", "--n", "129", "--repeat", "1"],
                                  ["--m", "3", "--n", "5003", "--repeat", "1"]])
def test_softmax_example(argv, capsys):
    assert load_example("softmax").main(argv) == 0
    out = capsys.readouterr().out
    assert "GB/s" in out and "OK" in out


def test_example_reports_failure(capsys, monkeypatch):
    module = load_example("gemm")
    monkeypatch.setitem(module.TOLERANCE, "float32", -1.0)  # no result can meet a negative tolerance
    assert module.main(["--m", "4", "--n", "4", "--k", "4", "--repeat", "1"]) == 1
    assert "FAILED" in capsys.readouterr().out
