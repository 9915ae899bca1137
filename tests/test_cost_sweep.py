"""The cost sweep's statistics on synthetic data with known answers, its report writer, and its GPU cases built on
the host (no GPU here: the cases' configs and predictions, not their launches)."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cost_sweep as cs  # noqa: E402
from tilec.cost import model  # noqa: E402


def test_ranks_share_ties():
    assert cs.ranks([10, 30, 20, 20]).tolist() == [1.0, 4.0, 2.5, 2.5]


def test_spearman_known_values():
    x = [1, 2, 3, 4, 5]
    assert cs.spearman(x, [2, 4, 8, 16, 32]) == pytest.approx(1.0)  # monotone, not linear: still 1
    assert cs.spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # one swapped pair of neighbours in 5: rho = 1 - 6 * (1 + 1) / (5 * 24) = 0.9
    assert cs.spearman(x, [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert math.isnan(cs.spearman(x, [7, 7, 7, 7, 7]))


def test_spearman_matches_scipy_formula_with_ties():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    ra, rb = cs.ranks(a), cs.ranks(b)
    expected = np.cov(ra, rb)[0, 1] / (ra.std(ddof=1) * rb.std(ddof=1))
    assert cs.spearman(a, b) == pytest.approx(expected)


def test_median_ape():
    assert cs.median_ape([1.1, 2.0, 1.5], [1.0, 1.0, 1.0]) == pytest.approx(50.0)
    assert cs.median_ape([3.0, 3.0], [3.0, 3.0]) == 0.0


def test_pick_quality():
    predicted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    measured = [2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 1.5, 1.0, 4.0]
    zero, top8 = cs.pick_quality(predicted, measured)
    assert zero == pytest.approx(2.0)  # the model's #1 ran 2.0 against the best 1.0
    assert top8 == pytest.approx(1.5)  # its top 8 hold 1.5 at best; the best (1.0) is its 9th
    assert cs.pick_quality(predicted, measured, top_k=9)[1] == pytest.approx(1.0)


def test_sample_is_fixed_and_keeps_the_default():
    configs = [({"b": i}, None) for i in range(50)]
    first = cs.sample(configs, 10, {"b": 37})
    assert first[0][0] == {"b": 37} and len(first) == 10
    assert [c for c, _ in first] == [c for c, _ in cs.sample(configs, 10, {"b": 37})]
    assert len({c["b"] for c, _ in first}) == 10


def test_with_constants_restores_the_table():
    before = json.dumps(model._calibration_file(), sort_keys=True)
    seen = cs.with_constants({"cpu": {"compute": 0.01}}, lambda: model.efficiency(model.get_target("cpu")))
    assert seen["compute"] == 0.01
    assert json.dumps(model._calibration_file(), sort_keys=True) == before


def fake_case(kernel, shape, scale):
    """A case whose 'measured' times are the model's own predictions times `scale` (no launches)."""
    cases = cs.cpu_cases({"gemm"}, quick=True, n=6)
    case = cases[0 if shape == "a" else 1]
    case.kernel, case.shape = kernel, shape
    case.results = [(cfg, p * scale) for (cfg, _), p in zip(case.configs, cs.predict_case(case))]
    return case


def test_metrics_holdout_and_report(tmp_path):
    cases = [fake_case("gemm", "a", 2.0), fake_case("gemm", "b", 2.0)]
    row = cs.metrics(cases[0])
    assert row["spearman"] == pytest.approx(1.0) and row["median_ape_pct"] == pytest.approx(50.0)
    assert row["zero_pick_ratio"] == 1.0 and row["configs"] == 6
    held = cs.holdout(cases)
    assert set(held) == {"fit A -> eval B", "fit B -> eval A"}
    # measured = 2x predicted everywhere: the fit halves the model's speed, so the held-out error shrinks
    assert held["fit A -> eval B"]["rows"][0]["median_ape_pct"] < 25
    report = {"device": "test", "target": "cpu", "date": "today", "command": "pytest", "shipped": [row],
              "holdout": held}
    cs.write(report, tmp_path)
    assert "| gemm | a | 6 | 1.00 |" in (tmp_path / "cost_sweep.md").read_text()
    assert json.loads((tmp_path / "cost_sweep.json").read_text())["shipped"][0]["configs"] == 6


def test_cuda_cases_build_on_the_host():
    pytest.importorskip("torch")
    cases = cs.cuda_cases({"gemm", "paged", "grouped_gemm"}, quick=True, n=30, arch="h100", device="cpu")
    assert [c.kernel for c in cases] == ["gemm", "gemm", "grouped_gemm", "paged_decode"]
    for case in cases:
        assert len(case.configs) >= 30, case.kernel
        predicted = cs.predict_case(case)
        assert all(p > 0 and math.isfinite(p) for p in predicted)
        cfg, bounds = case.configs[0]
        assert [b.name for b in case.rebind(cfg)] == [b.name for b in bounds]
    gemm = cases[0]
    assert gemm.configs[0][0] == dict(block_m=128, block_n=128, block_k=64, num_stages=3)  # the default leads


def test_cpu_llm_cases_build_on_the_host():
    cases = cs.cpu_cases({"attention", "grouped_gemm", "paged", "sparse"}, quick=True, n=12)
    assert [c.kernel for c in cases] == ["flash_attention", "grouped_gemm", "paged_decode", "sparse_attention"]
    for case in cases:
        assert case.target == "cpu" and len(case.configs) == 12, case.kernel
        predicted = cs.predict_case(case)
        assert all(p > 0 and math.isfinite(p) for p in predicted)
        assert len(set(predicted)) > 1, case.kernel  # the configs differ, so must their predictions
        for cfg, bounds in case.configs[:3]:
            assert [b.name for b in case.rebind(cfg)] == [b.name for b in bounds]
    flash, grouped, paged, sparse = cases
    assert flash.configs[0][0]["block_m"] == 64 and flash.configs[0][0]["block_n"] == 64  # the default leads
    assert grouped.configs[0][0] == dict(block_m=64, block_n=64, block_k=32, num_stages=2)
    # the schedule's tile count (the NT dim) follows each config's block_m: 8 experts of 1024 rows
    for cfg, (bound,) in grouped.configs:
        nt = dict(bound.bound)["NT"]
        assert 1024 // cfg["block_m"] <= nt <= 1024 // cfg["block_m"] + 8
    # paged: split kernel plus reduce, no step wider than its split, NSPLIT from pages_per_split (64 pages)
    for cfg, (split, reduce) in paged.configs:
        assert cfg["pages_per_iter"] <= cfg["pages_per_split"]
        assert dict(split.bound)["NSPLIT"] == dict(reduce.bound)["NSPLIT"] == -(-64 // cfg["pages_per_split"])
    assert all(16 % cfg["block_h"] == 0 for cfg, _ in sparse.configs)  # blocks never straddle kv heads
    assert sparse.configs[0][0]["block_h"] == 16



def test_replay_finds_every_case_kernel():
    import cost_replay

    cases = cs.cpu_cases({"softmax", "attention", "grouped_gemm", "paged", "sparse"}, quick=True, n=1)
    for case in cases:
        group = cost_replay.KERNEL_GROUP[case.kernel]
        assert any(c.kernel == case.kernel for c in cs.cpu_cases({group}, quick=True, n=1))


def test_replay_merges_sweeps_the_last_one_wins():
    import cost_replay

    def report(date, seconds, kernels=("gemm",)):
        return {"device": "d", "target": "cpu", "date": date, "command": date,
                "runs": [{"kernel": k, "shape": "s", "config": {}, "measured_s": seconds} for k in kernels],
                "shipped": [{"kernel": k, "shape": "s"} for k in kernels]}
    merged = cost_replay.merge([report("old", 1.0, ("gemm", "softmax_rows")), report("new", 2.0)])
    assert sorted((r["kernel"], r["measured_s"]) for r in merged["runs"]) == [("gemm", 2.0), ("softmax_rows", 1.0)]
    assert len(merged["shipped"]) == 2 and merged["date"] == "old, new"
    with pytest.raises(SystemExit):
        cost_replay.merge([report("a", 1.0), {**report("b", 1.0), "target": "h200"}])
