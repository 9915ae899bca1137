"""Cost model on split-KV paged decode (H200 sweep, benchmarks/results/h200/cost_sweep.json): occupancy from the Triton
backend's padded tiles, uneven splits, caller-known lengths; and the sweep's CPU timing helpers."""
import sys
from pathlib import Path

import pytest

from tilec.cost import counting, model, registers
from tilec.cost.targets import get_target
from cost_kernels import paged_split
from tilec.ops import paged

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import calibrate_cost  # noqa: E402
import cost_sweep as cs  # noqa: E402


def test_split_kernel_occupancy_uses_the_padded_tiles():
    # Triton pads the group of 4 query heads to a 16-row dot operand; ptxas (Triton 3.9, sm_90, offline) gives the
    # kernel 64 registers per thread at 4 warps at 1 page per step and 1 stage: 8 blocks per SM
    # (benchmarks/results/h200/ptxas_registers.json), where the unpadded count said 13
    assert model.predict(paged_split(16), "h200").occupancy == 8
    frag, through = registers.register_tiles(paged_split(16), get_target("h200"))
    assert frag >= 16 * 128 * 4 and through == 2 * 16 * 128 * 2  # acc 16x128 fp32; gathered K and V pages


def test_the_last_split_is_shorter_when_the_lengths_are_known():
    # 256 pages in splits of 18: 14 full splits and one of 4 pages; of 17: 15 full and one of 1
    counts = counting.Counting(paged_split(18), 132 * 7, {"CL": 4096}).run()
    loop = next(p for p in counts.phases if p.name.startswith("loop"))
    assert loop.trips_max == 18 and loop.trips == round((14 * 18 + 4) / 15)
    unknown = counting.Counting(paged_split(18), 132 * 7).run()
    assert next(p for p in unknown.phases if p.name.startswith("loop")).trips == 18  # the static cap
    # a wave boundary: at 8 blocks per SM (ptxas: 64 registers, benchmarks/results/h200/ptxas_registers.json) 1024
    # blocks of 16 pages fit one wave of 8 x 132 = 1056 slots; 1152 blocks of 15 (the last split of 1 page) need two.
    # The 2026-11-29 kernel compiled to 72 registers (7 blocks per SM) and the H200 timed 960 blocks of 18 pages at
    # 59 us against 82 us for 1024 blocks of 17: the same boundary at 924 slots
    t = {pps: model.predict(paged_split(pps), "h200", {"CL": 4096}).time_s for pps in (15, 16)}
    assert t[16] < 0.8 * t[15]


def test_a_length_divided_by_the_page_size_is_not_taken_for_a_static_cap():
    """The unsplit kernel's loop runs ceil(ceil(CL / BS) / pages_per_iter) times: a huge CL divided down must not
    pass for a capped bound (it counted 2^36 trips and ran out of memory); unknown, CL is the largest dim."""
    kernel = paged.paged_decode_kernel("float32").specialize(
        dict(NSEQ=8, HQ=16, D=128, NB=1024, BS=16, HKV=4, MAXB=128),
        dict(group=4, scale_log2=0.1, pages_per_iter=4, num_stages=1), "llvm", arch="cpu")
    unknown = counting.Counting(kernel, 2).run()
    assert next(p for p in unknown.phases if p.name.startswith("loop")).trips == 1024 // 16 // 4
    assert any("data-dependent loop bound" in n for n in unknown.notes)
    known = counting.Counting(kernel, 2, {"CL": 2048}).run()
    assert next(p for p in known.phases if p.name.startswith("loop")).trips == 2048 // 16 // 4


def test_cpu_timing_keeps_the_fastest_and_reports_its_own_noise():
    calls = iter([0.0, 0.0])
    assert cs.time_cpu(lambda: next(calls, None), repeats=2, pause_s=0) >= 0
    steady = [[1.0, 1.1, 1.0, 1.2], [2.0, 2.1, 2.2, 2.0], [3.0, 3.3, 3.1, 3.0]]
    noise = cs.self_agreement(steady)
    assert noise["self_rho"] == pytest.approx(1.0) and 0 < noise["round_spread_pct"] < 25
    assert cs.self_agreement([[1.0], [2.0]]) == {}


def test_prior_keeps_constants_the_cases_do_not_pin():
    # a single memory-bound kernel says nothing about the tensor cores: the fit leaves compute where it started
    rows = [(paged_split(16), "h200", 80e-6, {"CL": 4096})]
    start = model.efficiency(get_target("h200"))["compute"]
    saved = dict(model._calibration_file().get("h200", {}))
    try:
        fitted = calibrate_cost.fit(rows, "h200", rounds=1)
    finally:
        model._calibration_file()["h200"] = saved
    assert fitted["compute"] == pytest.approx(start)


def reduce(nsplit):
    return paged.paged_reduce_kernel("bfloat16").specialize({"NSEQ": 8, "HQ": 32, "NSPLIT": nsplit, "D": 128}, {},
                                                            "triton", arch="h200")


def test_reduce_kernel_spills_past_64_splits():
    # ptxas (Triton 3.9, sm_90): 87 registers at 64 splits, a 7 KB stack frame at 86 and 128 (both padded to 128);
    # the H200 timed the reduce at ~10 us and ~150 us
    h200 = get_target("h200")
    assert not registers.spills(reduce(64), h200, 128) and registers.spills(reduce(86), h200, 128)
    t64, t128 = (model.predict(reduce(n), "h200").time_s for n in (64, 128))
    assert t128 > 5 * t64


def test_pipelined_gathers_skip_registers_and_stage_count():
    # at 2-4 stages the gathered K/V pages go to shared memory by cp.async (ptxas: 125-128 registers at 8 pages per
    # step, against 198 at 1 stage), one buffer whatever num_stages says: shared memory limits the block to 3 per SM
    one, two, four = (model.predict(paged_split(16, pages_per_iter=8, num_stages=s), "h200", {"CL": 4096})
                      for s in (1, 2, 4))
    assert one.occupancy == 2 and two.occupancy == four.occupancy == 3
    assert four.time_s == pytest.approx(two.time_s)


def test_pages_past_a_split_end_read_one_cached_page():
    # 11 pages per split in steps of 8: the second step's 5 pages past the end read page 0 (every block's, cached)
    counts = counting.Counting(paged_split(11, pages_per_iter=8, num_stages=2), 132 * 3, {"CL": 4096}).run()
    loop = next(p for p in counts.phases if p.name.startswith("loop"))
    missed = sum(nb * miss for t, nb, miss in loop.loads if t == "KC")
    through = sum(nb for t, nb, miss in loop.loads if t == "KC")
    assert missed / through == pytest.approx(11 / 16, rel=0.05)


def test_unpipelined_blocks_share_one_round_trip_not_hide_it():
    # an unpipelined (one gather buffer) loop: the resident blocks run in lockstep, so a step lasts one round trip
    # plus every block's transfer. H200 sweep (results/h200/cost_sweep_paged_graph): 26 pages per split at 1 page per
    # step measured 59.2 us, at 2 pages per step 49.0 us (both ~5 blocks per SM), which the model had tied
    assumed = {"CL": 4096}
    one = sum(model.predict(b, "h200", assumed).time_s for b in [paged_split(26, pages_per_iter=1, num_stages=4)])
    two = sum(model.predict(b, "h200", assumed).time_s for b in [paged_split(26, pages_per_iter=2, num_stages=3)])
    assert one > 1.1 * two
    # more blocks per SM lengthen a step of the same tile (1 -> 5 blocks per SM: 1.17 -> 2.04 us measured)
    target, eff = get_target("h200"), model.efficiency(get_target("h200"))
    counts = counting.Counting(paged_split(26, pages_per_iter=1, num_stages=4), 132 * 8, assumed).run()
    loop = next(p for p in counts.phases if p.name.startswith("loop"))
    timing = model.Timing(counts, target, eff, model.dram_scale(counts, target))
    steps = [timing.phase(loop, b, 132)[0] / loop.trips for b in (1, 3, 5)]
    assert steps[0] < steps[1] < steps[2]
