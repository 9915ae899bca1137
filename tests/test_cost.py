"""Cost model: targets as data, predictions that move the right way, autotune legality, KV-tier transfers."""
import json

import pytest

import tilec
import tilec.language as T
from tilec.cost import autotune, transfer
from tilec.cost.model import predict
from tilec.cost.targets import TARGETS, get_target, load_target
from tilec.errors import TilecArgumentError


@tilec.kernel
def matmul(A: T.Tensor[("M", "K"), "bfloat16"], B: T.Tensor[("K", "N"), "bfloat16"],
           C: T.Tensor[("M", "N"), "float32"], *, block_m: int = 128, block_n: int = 128,
           block_k: int = 64, num_stages: int = 3):
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
def scale(X: T.Tensor[("N",), "float32"], Y: T.Tensor[("N",), "float32"], *, block: int = 1024):
    with T.Kernel(T.ceildiv(N, block)) as bx:
        x = T.alloc_fragment((block,), "float32")
        T.copy(X[bx * block], x)
        for i in T.Parallel(block):
            x[i] = x[i] * 2.0
        T.copy(x, Y[bx * block])


@tilec.kernel
def gather_rows(X: T.Tensor[("R", "D"), "float32"], Idx: T.Tensor[("S",), "int32"],
                Y: T.Tensor[("S", "D"), "float32"], *, block_s: int = 16):
    with T.Kernel(T.ceildiv(S, block_s)) as bx:
        ids = T.alloc_fragment((block_s,), "int32")
        rows = T.alloc_fragment((block_s, D), "float32")
        T.copy(Idx[bx * block_s], ids)
        for i, d in T.Parallel(block_s, D):
            rows[i, d] = X[ids[i], d]
        T.copy(rows, Y[bx * block_s, 0])


def test_gemm_flops_are_2mnk_with_awkward_shapes():
    for m, n, k in ((1, 1, 1), (127, 131, 67), (4096, 4096, 4096)):
        r = matmul.cost("h100", M=m, N=n, K=k)
        # the model counts whole tiles (padded lanes still run on the tensor cores)
        tiles = -(-m // 128) * -(-n // 128) * -(-k // 64)
        assert r.flops == {"bfloat16": 2 * 128 * 128 * 64 * tiles}
        assert r.time_s > 0 and r.occupancy >= 1 and r.bound in ("compute", "memory", "latency")
        assert r.grid == -(-m // 128) * -(-n // 128)
    big = matmul.cost("h100", M=4096, N=4096, K=4096, block_n=256)
    assert big.flops["bfloat16"] == 2 * 4096 ** 3 and big.bound == "compute"
    # bytes clipped to the tensors: a 127x67 A is read once per column of blocks, never more than its tiles
    small = matmul.cost("h100", M=127, N=131, K=67)
    assert small.bytes_by_tier["l2"] == 2 * (127 * 67 * 2) + 67 * 131 * 2 + 127 * 131 * 4
    assert "compute-bound" in str(big) and "bfloat16" in str(big)


def test_more_bytes_never_predict_less_time():
    prev = 0.0
    for k in (64, 128, 500, 1024, 4096, 8192):
        t = matmul.cost("h100", M=1024, N=1024, K=k).time_s
        assert t >= prev
        prev = t
    prev = 0.0
    for n in (1, 1000, 10 ** 5, 10 ** 6, 10 ** 7):
        t = scale.cost("h100", N=n).time_s
        assert t >= prev
        prev = t


def test_memory_bound_faster_on_h200_compute_bound_faster_on_b200():
    h100, h200 = scale.cost("h100", N=1 << 26), scale.cost("h200", N=1 << 26)
    assert h100.bound == "memory" and h200.time_s < h100.time_s
    # bytes: read and write 4 bytes per element, nothing more
    assert h100.bytes_by_tier["hbm"] == pytest.approx(8 * (1 << 26))
    g100 = matmul.cost("h100", M=8192, N=8192, K=8192, block_n=256)
    g200 = matmul.cost("h200", M=8192, N=8192, K=8192, block_n=256)
    b200 = matmul.cost("b200", M=8192, N=8192, K=8192, block_n=256)
    assert g100.bound == "compute" and b200.time_s < g100.time_s / 1.3
    assert g200.time_s == pytest.approx(g100.time_s, rel=0.05)  # same compute


def test_gather_pays_sectors():
    r = gather_rows.cost("h100", R=10 ** 6, D=8, S=4096)
    # each gathered row is 32 bytes = one sector; the row indices come in by tiles
    assert r.bytes_by_tier["l2"] == pytest.approx(4096 * 32 + 4096 * 4 + 4096 * 8 * 4)
    narrow = gather_rows.cost("h100", R=10 ** 6, D=1, S=4096)  # 4 useful bytes, a whole sector moved
    assert narrow.bytes_by_tier["l2"] == pytest.approx(4096 * 32 + 4096 * 4 + 4096 * 4)


def test_cpu_gathers_cost_core_cycles_per_element():
    from tilec.cost.counting import Counting
    from tilec.cost.model import Timing, efficiency

    bound = gather_rows.specialize({"R": 10 ** 6, "D": 64, "S": 4096}, {}, "llvm", arch="cpu")
    counts = Counting(bound, 2).run()
    # X[ids[i], d] is gathered (its row index is a tile's value); the copies of Idx and rows are not
    assert sum(ph.gathers for ph in counts.phases) == 4096 * 64
    cpu = get_target("cpu")
    phase = next(ph for ph in counts.phases if ph.gathers)
    with_gathers = Timing(counts, cpu, efficiency(cpu), {}).phase(phase, 1, cpu.sms)[1]
    phase.gathers = 0
    assert with_gathers > Timing(counts, cpu, efficiency(cpu), {}).phase(phase, 1, cpu.sms)[1]


def test_targets_and_errors(tmp_path):
    h100 = get_target("H100")
    assert h100.sms == 132 and h100.memory["hbm"].bandwidth == 3.35e12 and h100.smem_per_block == 227 * 1024
    assert h100.peak_flops("bfloat16", matrix=True) == 989e12
    for name in ("h200", "h800", "h20", "a100", "b200", "mi300x", "ascend910c", "cpu"):
        t = get_target(name)
        assert t.sms > 0 and t.memory[t.global_tier].bandwidth > 0 and t.vector_flops["float32"] > 0
    with pytest.raises(TilecArgumentError, match="known targets: h100"):
        get_target("tpu9")
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"name": "halfh100", "base": "h100", "sms": 66,
                                "memory": {"hbm": {"capacity": 4e10, "bandwidth": 1.6e12, "latency": 5e-7}}}))
    t = load_target(path)
    assert t.sms == 66 and get_target("halfh100") is t and t.memory["l2"] == h100.memory["l2"]
    assert scale.cost("halfh100", N=1 << 26).time_s > scale.cost("h100", N=1 << 26).time_s
    toml = tmp_path / "y.toml"
    toml.write_text('name = "tiny"\nkind = "cpu"\nsms = 1\nsmem_per_block = 1024\nregs_per_block = 1024\n')
    assert load_target(toml).sms == 1
    bad = tmp_path / "z.json"
    bad.write_text('{"name": "q", "speed": 3}')
    with pytest.raises(TilecArgumentError, match="unknown field"):
        load_target(bad)
    TARGETS.pop("halfh100"), TARGETS.pop("tiny")


def test_autotune_picks_only_legal_configs(tmp_path):
    dims = dict(M=2048, N=2048, K=2048)
    space = {"block_m": [64, 128, 256], "block_n": [128, 256], "block_k": [64, 128], "num_stages": [2, 4]}
    legal = autotune.enumerate_configs(matmul, dims, space, "h100")
    # 256x256x128 bf16 with 4 stages needs 512 KiB of shared memory: never legal on a 227 KiB block limit
    assert 0 < len(legal) < 24
    assert {"block_m": 256, "block_n": 256, "block_k": 128, "num_stages": 4} not in [c for c, _ in legal]
    ranked = autotune.rank_configs(matmul, dims, "h100", space)
    assert [r.time_s for r in ranked] == sorted(r.time_s for r in ranked)
    best = autotune.pick_config(matmul, dims, "h100", space)
    assert best in [c for c, _ in legal]
    # only huge tiles in the space: nothing fits
    with pytest.raises(tilec.TilecResourceError, match="no config"):
        autotune.pick_config(matmul, dims, "h100", {"block_m": [512], "block_n": [512], "block_k": [256]})
    assert autotune.default_space(matmul)["num_stages"] == [1, 2, 3, 4]
    calls = []
    cache = tmp_path / "tune.json"

    def run(config):
        calls.append(config)
        return 1.0 if config["num_stages"] == 2 else 2.0  # a "measurement" that disagrees with the model
    won = autotune.tune_measured(matmul, dims, "h100", run=run, space=space, top_k=3, cache_file=cache)
    assert len(calls) == 3 and won in calls
    again = autotune.tune_measured(matmul, dict(M=2000, N=1100, K=2048), "h100", run=run, space=space,
                                   top_k=3, cache_file=cache)  # same power-of-two bucket: from the cache
    assert again == won and len(calls) == 3


def test_tuned_winners_are_kept_apart_by_dtype_and_held_values(tmp_path):
    """One Python body builds the GEMM kernel of every dtype under one name: a winner measured for one dtype, or
    with other values held, must not answer for another."""
    from tilec.ops.gemm import gemm_kernel

    fp32, bf16 = gemm_kernel(False, False, "float32", "float32"), gemm_kernel(False, False, "bfloat16", "bfloat16")
    assert fp32.__name__ == bf16.__name__
    dims = dict(M=256, N=256, K=256)
    space = {"block_m": [32, 64], "block_n": [32, 64], "block_k": [32], "num_stages": [1, 2]}
    assert autotune.tuning_key(fp32, dims, "h100", space) != autotune.tuning_key(bf16, dims, "h100", space)
    held = {**space, "block_k": [16]}
    assert autotune.tuning_key(fp32, dims, "h100", space) != autotune.tuning_key(fp32, dims, "h100", held)
    cache, calls = tmp_path / "tune.json", []

    def run(config):
        calls.append(config)
        return float(config["block_m"] * config["num_stages"])
    for kernel in (fp32, bf16):
        won = autotune.tune_measured(kernel, dims, "h100", run=run, space=space, top_k=2, cache_file=cache)
        assert won in calls[-2:]
    assert len(calls) == 4  # the bf16 kernel was timed, not answered from the fp32 entry
    assert len(json.loads(cache.read_text())) == 2


def test_transfer_is_latency_plus_bytes_over_slowest_link():
    h100 = get_target("h100")
    pcie = h100.links["pcie5"]
    assert transfer.transfer(1 << 30, "hbm", "host_dram", "h100") == pcie.latency + (1 << 30) / pcie.bandwidth
    assert pcie.bandwidth == 64e9
    ssd = transfer.transfer(1e9, "ssd", "hbm", "h100")  # pcie then nvme: nvme limits
    assert ssd == pytest.approx(pcie.latency + h100.links["nvme"].latency + 1e9 / h100.links["nvme"].bandwidth)
    assert transfer.transfer(0, "hbm", "hbm") == 0.0
    # GH200's C2C beats PCIe; a CloudMatrix384 UB hop to remote DRAM is 392 GB/s after ~1.5 us
    assert transfer.transfer(1e9, "hbm", "host_dram", "gh200") < transfer.transfer(1e9, "hbm", "host_dram", "h100")
    assert transfer.transfer(392e9, "hbm", "remote_dram", "ascend910c") == pytest.approx(1 + 1.5e-6)
    with pytest.raises(TilecArgumentError, match="no path"):
        transfer.transfer(1, "hbm", "moon", "h100")
    gqa = {"layers": 32, "kv_heads": 8, "head_dim": 128, "dtype_bytes": 2}  # Llama-3-8B
    assert transfer.kv_bytes_per_token(gqa) == 131072
    mla = {"layers": 61, "kv_lora_rank": 512, "rope_dim": 64, "dtype_bytes": 2}  # DeepSeek-V3
    assert transfer.kv_bytes_per_token(mla) == 61 * 576 * 2
    with pytest.raises(TilecArgumentError, match="lacks"):
        transfer.kv_bytes_per_token({"layers": 2})


def test_cli_cost_and_roofline(tmp_path, capsys):
    from tilec.cli import build_parser

    parser = build_parser()
    sets = ["--set", "M=512", "--set", "N=512", "--set", "K=512"]
    args = parser.parse_args(["cost", f"{__file__}::matmul", *sets, "--top", "3"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "matmul on h100" in out and "configs by predicted time" in out
    png = tmp_path / "roof.png"
    args = parser.parse_args(["roofline", f"{__file__}::matmul", *sets, "--target", "h200", "--out", str(png)])
    assert args.run(args) == 0 and png.stat().st_size > 1000


def test_cpu_gemm_cycles_follow_the_micro_kernel():
    from tilec.cost.cpu import gemm_cycles
    core = get_target("cpu").core
    k = 64
    # one row keeps too few accumulator chains to hide the FMA latency: slower per row than a full 12-row block
    assert gemm_cycles(1, 32, k, 4, core)[0] > 1.5 * gemm_cycles(12, 32, k, 4, core)[0] / 12
    # more columns never cost fewer cycles; a ragged tail costs at least its share of a full panel
    assert gemm_cycles(24, 40, k, 4, core)[0] >= gemm_cycles(24, 32, k, 4, core)[0] * 40 / 32
    # a one-vector panel issues one FMA per splat of a[i, k]: the splats, on one shuffle pipe, bound it (measured
    # ~1.9x slower than two-vector panels on the host), unlike a two-vector panel of the same FMAs
    lanes = core["simd_bytes"] // 4
    one, two = gemm_cycles(64, lanes, k, 4, core)[0], gemm_cycles(64, 2 * lanes, k, 4, core)[0]
    assert one / lanes > 1.5 * two / (2 * lanes)


def test_cpu_stages_only_prefetch():
    """On the CPU num_stages sets the prefetch distance; there is no pipeline fill and drain to pay."""
    times = {s: matmul.cost("cpu", M=256, N=256, K=1024, block_m=64, block_n=64, block_k=64, num_stages=s).time_s
             for s in (1, 2, 4)}
    assert times[2] == pytest.approx(times[4])


@tilec.kernel
def halves(X: T.Tensor[("M", "N"), "float32"], Y: T.Tensor[("M", "N"), "float32"], *, block_m: int = 1,
           block_n: int = 1024):
    """Two loops over disjoint column halves of the block's rows: the second reads nothing the first did."""
    with T.Kernel(T.ceildiv(M, block_m)) as bx:
        x = T.alloc_fragment((block_m, block_n), "float32")
        for jb in T.serial(T.ceildiv(N, 2 * block_n)):
            T.copy(X[bx * block_m, jb * block_n], x)
            T.copy(x, Y[bx * block_m, jb * block_n])
        for jb in T.serial(T.ceildiv(N, 2 * block_n)):
            T.copy(X[bx * block_m, N // 2 + jb * block_n], x)
            T.copy(x, Y[bx * block_m, N // 2 + jb * block_n])


def test_a_second_pass_over_a_blocks_own_rows_reads_the_cache_when_they_fit():
    from tilec.ops.softmax import softmax_kernel

    online = softmax_kernel("float32", True)  # pass 1: max and sum over the row blocks; pass 2: re-read and write
    dram = get_target("cpu").global_tier
    m, n = 8192, 16384  # 512 MiB of X: more than any last-level cache, so DRAM sees what the caches miss
    x_bytes = m * n * 4
    fits = online.cost("cpu", M=m, N=n, block_m=1, block_n=1024).bytes_by_tier[dram]  # 64 KiB of rows a block
    spills = online.cost("cpu", M=m, N=n, block_m=64, block_n=1024).bytes_by_tier[dram]  # 4 MiB
    assert fits == pytest.approx(2 * x_bytes)  # X once, Y once
    assert spills == pytest.approx(3 * x_bytes)  # X twice
    # the same tensor read in a later loop, but other tiles of it: no reuse
    assert halves.cost("cpu", M=m, N=n).bytes_by_tier[dram] == pytest.approx(2 * x_bytes)
