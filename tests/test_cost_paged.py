"""Cost model on split-KV paged decode (H200 sweep, benchmarks/results/h200/cost_sweep.json): occupancy from the Triton
backend's padded tiles, uneven splits, caller-known lengths; and the sweep's CPU timing helpers."""
import sys
from pathlib import Path

import pytest

from tilec.cost import counting, model
from tilec.cost.targets import get_target
from tilec.ops import paged

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import calibrate_cost  # noqa: E402
import cost_sweep as cs  # noqa: E402


def split(pages_per_split, **config):
    dims = {"NSEQ": 8, "HQ": 32, "HKV": 8, "D": 128, "NB": 2048, "BS": 16, "MAXB": 256,
            "NSPLIT": -(-256 // pages_per_split)}
    return paged.paged_split_kernel("bfloat16").specialize(
        dims, {"group": 4, "pages_per_split": pages_per_split, **config}, "triton", arch="h200")


def test_split_kernel_occupancy_uses_the_padded_tiles():
    # Triton pads the group of 4 query heads to a 16-row dot operand; ptxas (Triton 3.9, sm_90) gives the kernel 72
    # registers per thread at 4 warps: 7 blocks per SM, where the unpadded count said 13
    assert model.predict(split(16), "h200").occupancy == 7
    frag, through = model.register_tiles(split(16), get_target("h200"))
    assert frag >= 16 * 128 * 4 and through == 2 * 16 * 128 * 2  # acc 16x128 fp32; gathered K and V pages


def test_the_last_split_is_shorter_when_the_lengths_are_known():
    # 256 pages in splits of 18: 14 full splits and one of 4 pages; of 17: 15 full and one of 1
    counts = counting.Counting(split(18), 132 * 7, {"CL": 4096}).run()
    loop = next(p for p in counts.phases if p.name.startswith("loop"))
    assert loop.trips_max == 18 and loop.trips == round((14 * 18 + 4) / 15)
    unknown = counting.Counting(split(18), 132 * 7).run()
    assert next(p for p in unknown.phases if p.name.startswith("loop")).trips == 18  # the static cap
    # 960 blocks of which 64 short ones fit one wave of 7 x 132 = 924 slots; 1024 blocks of 17 pages need two
    # (measured on the H200: 59 us against 82 us)
    t = {pps: model.predict(split(pps), "h200", {"CL": 4096}).time_s for pps in (17, 18)}
    assert t[18] < 0.8 * t[17]


def test_cpu_timing_keeps_the_fastest_and_reports_its_own_noise():
    calls = iter([0.0, 0.0])
    assert cs.time_cpu(lambda: next(calls, None), repeats=2, pause_s=0) >= 0
    steady = [[1.0, 1.1, 1.0, 1.2], [2.0, 2.1, 2.2, 2.0], [3.0, 3.3, 3.1, 3.0]]
    noise = cs.self_agreement(steady)
    assert noise["self_rho"] == pytest.approx(1.0) and 0 < noise["round_spread_pct"] < 25
    assert cs.self_agreement([[1.0], [2.0]]) == {}


def test_prior_keeps_constants_the_cases_do_not_pin():
    # a single memory-bound kernel says nothing about the tensor cores: the fit leaves compute where it started
    rows = [(split(16), "h200", 80e-6, {"CL": 4096})]
    start = model.efficiency(get_target("h200"))["compute"]
    saved = dict(model._calibration_file().get("h200", {}))
    try:
        fitted = calibrate_cost.fit(rows, "h200", rounds=1)
    finally:
        model._calibration_file()["h200"] = saved
    assert fitted["compute"] == pytest.approx(start)
