"""The `tilec` command (also `python -m tilec`):

    tilec ir FILE::KERNEL [--set M=512 --set block_m=64 ...] [--target llvm|triton] [--arch h100] [--stage NAME]
        the generic IR, or (once every dim has a --set value) the IR after each pass, or after one stage
    tilec lower --target triton|llvm FILE::KERNEL --set M=512 ...
        the generated Triton source or LLVM IR

Usage mistakes (missing file or kernel, a bad --set) print one line and exit 2; a TilecError exits 1.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from .errors import TilecError
from .kernel import BACKENDS, TileKernel, lower
from .printer import print_kernel

FRONTEND = "frontend"


class UsageError(Exception):
    """A mistake in the command line itself (exit status 2)."""


# ---------------------------------------------------------------------------------------------- loading
def load_kernel(spec: str) -> TileKernel:
    """`path/to/file.py::name` -> the @tilec.kernel object `name` defined in that file."""
    path, sep, name = spec.rpartition("::")
    if not sep or not path or not name:
        raise UsageError(f"expected FILE::KERNEL (e.g. examples/matmul.py::matmul), got {spec!r}")
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    module_name = "_tilec_cli_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None:
        raise UsageError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and inspect look modules up by name
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # so the file can import its neighbours
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any failure of the user's module is a usage error here
        raise UsageError(f"cannot import {path}: {type(e).__name__}: {e}") from None
    kernel = getattr(module, name, None)
    if not isinstance(kernel, TileKernel):
        found = sorted(n for n, v in vars(module).items() if isinstance(v, TileKernel))
        what = "no" if kernel is None else f"'{name}' is a {type(kernel).__name__}, not a"
        raise UsageError(f"{path}: {what} @tilec.kernel named '{name}'; kernels there: {', '.join(found) or 'none'}")
    return kernel


def parse_value(text: str):
    """A --set value: an int, a float or true/false."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    raise UsageError(f"--set value {text!r} is not an int, a float, true or false")


def parse_sets(kernel: TileKernel, items) -> tuple[dict, dict]:
    """`--set NAME=VALUE` items -> (dims, config), checking every name against the kernel."""
    values = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set takes NAME=VALUE, got {item!r}")
        values[name.strip()] = parse_value(text.strip())
    dim_names = [d.name for d in kernel.ir.dims]
    config_names = [c.name for c in kernel.ir.config]
    unknown = [n for n in values if n not in dim_names and n not in config_names]
    if unknown:
        raise UsageError(f"--set {', '.join(unknown)}: kernel '{kernel.__name__}' has dims "
                         f"{', '.join(dim_names) or 'none'} and config {', '.join(config_names) or 'none'}")
    return kernel.split_kwargs(values)


def require_all_dims(kernel: TileKernel, dims: dict, why: str):
    missing = [d.name for d in kernel.ir.dims if d.name not in dims]
    if missing:
        raise UsageError(f"{why} needs a value for every dim: add --set {'=... --set '.join(missing)}=...")


# ---------------------------------------------------------------------------------------------- commands
def stage_outputs(kernel: TileKernel, dims, config, backend, arch) -> list:
    """[(stage name, IR)]: the frontend's IR, then the IR after each pass."""
    outs = [(FRONTEND, kernel.ir)]
    kernel.specialize(dims, config, backend, arch, record=lambda name, k: outs.append((name, k)))
    return outs


def run_ir(args) -> int:
    kernel = load_kernel(args.kernel)
    dims, config = parse_sets(kernel, args.set)
    if args.stage == FRONTEND or (not dims and kernel.ir.dims and args.stage is None):
        print(print_kernel(kernel.ir, locs=args.locs), end="")
        return 0
    require_all_dims(kernel, dims, f"the IR after {args.stage or 'the passes'}")
    outs = stage_outputs(kernel, dims, config, args.target, args.arch)
    if args.stage is not None:
        chosen = [k for name, k in outs if name == args.stage]
        if not chosen:
            raise UsageError(f"unknown stage {args.stage!r}; stages are {', '.join(dict(outs))}")
        print(print_kernel(chosen[-1], locs=args.locs), end="")
        return 0
    previous = None
    for name, k in outs:
        if k == previous:
            print(f"# ---- {name} (unchanged) ----")
            continue
        print(f"# ---- {name} ----")
        print(print_kernel(k, locs=args.locs), end="")
        previous = k
    return 0


def run_lower(args) -> int:
    kernel = load_kernel(args.kernel)
    dims, config = parse_sets(kernel, args.set)
    require_all_dims(kernel, dims, f"lowering to {args.target}")
    bound = kernel.specialize(dims, config, args.target, args.arch)
    print(lower(bound, args.target), end="")
    return 0


def add_common(p: argparse.ArgumentParser):
    p.add_argument("kernel", metavar="FILE::KERNEL", help="a Python file and the @tilec.kernel in it")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a dim or config value (repeatable), e.g. --set M=512 --set block_m=64")
    p.add_argument("--arch", default=None, help="hardware whose capacities the passes check (default: the "
                                                "target's, cpu for llvm and h100 for triton)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tilec", description="tilec: a tile-level kernel DSL and compiler")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ir", help="print the IR (generic, after each pass, or after one stage)")
    add_common(p)
    p.add_argument("--target", choices=BACKENDS, default="llvm", help="backend the passes prepare for")
    p.add_argument("--stage", default=None, help=f"print only this stage: {FRONTEND} or a pass name (bind, "
                                                 f"simplify, fold-ranges, verify, software-pipeline, place-memory, "
                                                 f"plan-launch with --target triton)")
    p.add_argument("--locs", action="store_true", help='end each statement with loc("file:line")')
    p.set_defaults(run=run_ir)

    p = sub.add_parser("lower", help="print the generated Triton source or LLVM IR")
    add_common(p)
    p.add_argument("--target", choices=BACKENDS, required=True)
    p.set_defaults(run=run_lower)

    from .cost.cli import add_cost_commands

    add_cost_commands(sub)  # `tilec cost` and `tilec roofline`
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as e:
        print(f"tilec: error: {e}", file=sys.stderr)
        return 2
    except TilecError as e:
        print(f"tilec: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `tilec ir ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
