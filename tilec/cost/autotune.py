"""Config choice from the cost model: enumerate the legal configs, rank them by predicted time, pick the best with no
measurement, or time the model's top-k and cache the winner per shape bucket.

`config="auto"` on a kernel call is meant to call `pick_config(kernel, dims, target)` and use its result (the lead
wires it into TileKernel.__call__); `tune_measured` is the measured variant for benchmarks.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math

from ..errors import TilecArgumentError, TilecResourceError
from ..settings import settings
from .counting import tile_bytes
from .model import CostReport, efficiency, predict
from .targets import get_target

STAGES = (1, 2, 3, 4)


def backend_for(target) -> str:
    return "llvm" if get_target(target).kind == "cpu" else "triton"


def default_space(tile_kernel, target="h100") -> dict:
    """Powers of two from a quarter to four times each `block*` default (not under 16 on GPUs, where tensor-core
    tiles need it), 1-4 `num_stages`; other config constants stay at their defaults."""
    floor = 1 if get_target(target).kind == "cpu" else 16
    space = {}
    for c in tile_kernel.ir.config:
        if c.dtype != "index":
            continue
        if c.name == "num_stages":
            space[c.name] = list(STAGES)
        elif c.name.startswith("block") and c.value >= 1:
            exp = round(math.log2(c.value))
            values = sorted({2 ** e for e in range(exp - 2, exp + 3) if 2 ** e >= min(floor, c.value)})
            space[c.name] = values
    return space


def check_capacity(bound, target) -> None:
    """Shared tiles with their pipeline copies and fragments within the target's per-block limits. (The
    place-memory pass runs before software pipelining, so it cannot see the multi-buffering yet.) Fragments
    count with the model's register overhead: a tile that fills the whole register file would spill."""
    target = get_target(target)
    smem, frag = tile_bytes(bound)
    regs = frag * efficiency(target)["reg_overhead"] if target.kind != "cpu" else frag
    if smem > target.smem_per_block or regs > target.regs_per_block:
        raise TilecResourceError(f"{bound.name}: {smem} bytes of shared tiles (pipeline copies included) and "
                                 f"~{regs:.0f} bytes of registers for fragments exceed {target.name}'s "
                                 f"{target.smem_per_block} and {target.regs_per_block} bytes per block")


def enumerate_configs(tile_kernel, dims: dict, space: dict, target="h100") -> list:
    """[(config, bound kernel)] for every combination in `space` that passes all passes on `target` and fits its
    shared-memory and register capacity (a config that raises TilecResourceError is left out)."""
    unknown = set(space) - {c.name for c in tile_kernel.ir.config}
    if unknown:
        raise TilecArgumentError(f"{tile_kernel.__name__}: search space names {', '.join(sorted(unknown))}, which "
                                 f"are not config constants of this kernel")
    names = list(space)
    legal = []
    for values in itertools.product(*(space[n] for n in names)):
        config = dict(zip(names, values))
        try:
            bound = tile_kernel.specialize(dims, config, backend_for(target), arch=target)
            check_capacity(bound, target)
            legal.append((config, bound))
        except TilecResourceError:
            continue
    return legal


def rank_configs(tile_kernel, dims: dict, target="h100", space: dict | None = None,
                 assume: dict | None = None) -> list[CostReport]:
    """Cost reports of every legal config, fastest predicted first (`assume`: values of tensors that loop bounds
    read, when the caller knows them; see model.predict)."""
    space = default_space(tile_kernel, target) if space is None else space
    reports = []
    for config, bound in enumerate_configs(tile_kernel, dims, space, target):
        report = predict(bound, target, assume)
        report.config = config
        reports.append(report)
    if not reports:
        raise TilecResourceError(f"{tile_kernel.__name__}: no config in {space} fits target {get_target(target).name}"
                                 f"; add smaller block sizes or fewer stages to the space")
    return sorted(reports, key=lambda r: r.time_s)


def pick_config(tile_kernel, dims: dict, target="h100", space: dict | None = None,
                assume: dict | None = None) -> dict:
    """The config the model predicts fastest (no measurement)."""
    return dict(rank_configs(tile_kernel, dims, target, space, assume)[0].config)


def shape_bucket(dims: dict) -> str:
    """Dims rounded up to powers of two: shapes in one bucket share a tuned config."""
    return ",".join(f"{k}={1 << max(int(v) - 1, 0).bit_length()}" for k, v in sorted(dims.items()))


def tuning_key(tile_kernel, dims: dict, target, space: dict | None, assume: dict | None = None) -> str:
    """Where a measured winner is cached: the kernel's name and a digest of its IR (kernels built by one Python
    function for several dtypes share the name, and a winner for fp32 tiles is no answer for bf16 ones), of the
    searched space (values a caller holds, such as causal=True, are one-value entries there) and of the assumed
    tensor values (a context length), the target and the shape bucket."""
    from ..printer import print_kernel

    digest = hashlib.sha1(print_kernel(tile_kernel.ir).encode())
    digest.update(repr((sorted((space or {}).items()), sorted((assume or {}).items()))).encode())
    return (f"{tile_kernel.fn.__module__}.{tile_kernel.__name__}@{digest.hexdigest()[:12]}|{get_target(target).name}"
            f"|{shape_bucket(dims)}")


def tune_measured(tile_kernel, dims: dict, target="h100", run=None, space: dict | None = None, top_k: int = 8,
                  cache_file=None, assume: dict | None = None) -> dict:
    """Time the model's `top_k` configs with `run(config) -> seconds` and return the fastest; the winner is cached
    per kernel, space, target and shape bucket (tuning_key) in `settings.cache_dir/autotune.json`, so later calls
    skip the timing."""
    if run is None:
        raise TilecArgumentError("tune_measured: pass run=callable(config) -> seconds that times one config")
    from tqdm import tqdm

    path = cache_file or settings.cache_dir / "autotune.json"
    key = tuning_key(tile_kernel, dims, target, space, assume)
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return cached[key]["config"]
    ranked = rank_configs(tile_kernel, dims, target, space, assume)[:top_k]
    timed = [(float(run(r.config)), r) for r in tqdm(ranked, desc=f"tuning {tile_kernel.__name__}", unit="config")]
    seconds, best = min(timed, key=lambda x: x[0])
    cached[key] = {"config": best.config, "measured_s": seconds, "predicted_s": best.time_s}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cached, indent=1, sort_keys=True))
    return dict(best.config)
