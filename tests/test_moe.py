"""MoE ops: grouped GEMM, permute and unpermute on the LLVM backend (NumPy) and Triton's interpreter (torch CPU
tensors, target="triton"), against NumPy float64."""
import numpy as np
import pytest

from tilec.errors import TilecArgumentError
from tilec.ops.moe import grouped_gemm, grouped_gemm_reference, moe_permute, moe_unpermute, tile_schedule

RNG = np.random.default_rng(3)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def moe_reference(x, w, topk_ids, topk_weights):
    """out[s] = sum_j weight[s, j] * x[s] @ w[expert[s, j]], float64."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    out = np.zeros((x.shape[0], w.shape[2]))
    for s in range(x.shape[0]):
        for j in range(topk_ids.shape[1]):
            out[s] += topk_weights[s, j] * (x64[s] @ w64[topk_ids[s, j]])
    return out


# ------------------------------------------------------------------------------------------ grouped GEMM
@pytest.mark.parametrize("m,k,n,offsets,config", [
    (1, 1, 1, [1], {}),                                           # E = 1, one row
    (37, 20, 19, [10, 10, 30, 37], {"block_m": 16, "block_k": 16}),  # an empty group, ragged N and tails
    (53, 31, 64, [0, 0, 53], {}),                                  # leading empty groups
    (29, 17, 40, [5, 12, 20], {"block_m": 8}),                    # rows past offsets[-1] stay 0
    (130, 64, 96, [70, 71, 130], {}),                             # groups of 1 row between big ones
])
def test_grouped_gemm_llvm(m, k, n, offsets, config):
    offsets = np.array(offsets, np.int32)
    x, w = rand(m, k), rand(len(offsets), k, n)
    y = grouped_gemm(x, w, offsets, **config)
    assert y.shape == (m, n) and y.dtype == np.float32
    np.testing.assert_allclose(y, grouped_gemm_reference(x, w, offsets), rtol=1e-4, atol=1e-4)


def test_grouped_gemm_fp16_llvm():
    offsets = np.array([3, 40, 41], np.int32)
    x, w = rand(41, 24, dtype=np.float16), rand(3, 24, 33, dtype=np.float16)
    y = grouped_gemm(x, w, offsets)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), grouped_gemm_reference(x, w, offsets), rtol=5e-3, atol=5e-3)


def test_cpu_tiles_follow_rows_per_expert():
    from tilec.ops.moe import cpu_config

    assert cpu_config(1024, 16, 512, 1024) == dict(block_m=64, block_n=512, block_k=128, num_stages=1)
    assert cpu_config(1024, 64, 512, 1024)["block_m"] == 16  # 16 rows per expert: no 48 wasted rows a tile
    assert cpu_config(4096, 8, 1408, 2048)["block_m"] == 128  # capped
    assert cpu_config(4096, 8, 1408, 2048)["block_n"] == 480  # 1408 in three even parts
    assert cpu_config(37, 4, 19, 20)["block_k"] == 32


def test_tile_schedule_skips_empty_groups():
    assert tile_schedule(np.array([0, 5, 5, 12]), 4).tolist() == [[1, 0, 5], [1, 4, 5], [3, 5, 12], [3, 9, 12]]


@pytest.mark.parametrize("m,offsets,block_m", [(12, [0, 5, 5, 12], 4), (29, [5, 12, 20], 8), (7, [7], 16),
                                               (40, [0, 0, 0], 4), (33, [33, 33, 33, 33], 5),
                                               (9, [1, 2, 3, 4, 5, 6, 7, 8, 9], 4)])  # 9 tiles: 6 of them in rest
def test_device_schedule_is_the_host_schedule_plus_spare_rows(m, offsets, block_m):
    torch = pytest.importorskip("torch")
    from tilec.ops.moe import device_schedule

    main, rest = device_schedule(torch.tensor(offsets, dtype=torch.int32), m, block_m, target="triton")
    assert main.shape == (-(-m // block_m), 3) and rest.shape == (len(offsets), 3)
    sched = np.concatenate([main.numpy(), rest.numpy()])
    host = tile_schedule(np.array(offsets), block_m)
    np.testing.assert_array_equal(sched[:len(host)], host)
    # spare rows cover no row (the kernel skips them) and hold the end of the covered rows, the last one always
    assert (sched[len(host):] == [len(offsets) - 1, offsets[-1], offsets[-1]]).all()
    assert len(sched) > len(host)


def test_schedule_kernel_on_the_cpu_backend_matches_the_host_schedule():
    from tilec.ops.moe import tile_schedule_kernel

    offsets = np.array([3, 3, 20, 19, 40], np.int32)  # one decreasing and one past M: clipped, as on the host
    main, rest = np.full((-(-30 // 8), 3), -7, np.int32), np.full((5, 3), -7, np.int32)
    tile_schedule_kernel()(offsets, main, rest, block_m=8, rows=30)
    host = tile_schedule(np.maximum.accumulate(np.clip(offsets, 0, 30)), 8)
    sched = np.concatenate([main, rest])
    np.testing.assert_array_equal(sched[:len(host)], host)
    assert (sched[len(host):] == [4, 30, 30]).all()


@pytest.fixture
def nan_outputs(monkeypatch):
    """grouped_gemm's output starts as NaN instead of uninitialised memory, so a row no kernel writes shows."""
    from tilec.ops import _host

    def nan_empty(x, shape, dtype):
        y = _host.new_array(x, shape, dtype, "empty")
        y[...] = np.nan
        return y

    monkeypatch.setattr(_host, "empty", nan_empty)


@pytest.mark.parametrize("m,k,n,offsets,block_m", [
    (37, 20, 19, [10, 10, 30, 37], 16),  # 4 tiles, 3 in main: one real tile in rest
    (64, 17, 40, [5, 12, 20], 16),       # 3 tiles, 4 in main: a spare row in main, rows 20.. zeroed
    (29, 8, 8, [0, 0, 0], 8),            # no tile at all: every row zeroed
    (50, 9, 33, [50], 16),               # one expert covering all rows, M not a multiple of block_m
])
def test_grouped_gemm_torch_path_writes_every_row(nan_outputs, m, k, n, offsets, block_m):
    """The torch path (device schedule, main and rest launches, moe_zero_rows) on the LLVM backend: fast, and the
    same kernels and schedule as on a GPU."""
    torch = pytest.importorskip("torch")
    offsets = np.array(offsets, np.int32)
    x, w = rand(m, k), rand(len(offsets), k, n)
    y = grouped_gemm(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(offsets), target="llvm",
                     block_m=block_m, block_n=16, block_k=8)
    assert isinstance(y, torch.Tensor)
    np.testing.assert_allclose(y.numpy(), grouped_gemm_reference(x, w, offsets), rtol=1e-4, atol=1e-4)


def test_grouped_gemm_numpy_writes_every_row(nan_outputs):
    offsets = np.array([0, 7, 7, 20], np.int32)
    x, w = rand(31, 12), rand(4, 12, 10)
    np.testing.assert_allclose(grouped_gemm(x, w, offsets, block_m=8), grouped_gemm_reference(x, w, offsets),
                               rtol=1e-4, atol=1e-4)


def test_grouped_gemm_torch_unchecked_offsets_stay_inside(nan_outputs):
    """check=False with decreasing offsets and one past M: clipped as on the host, no write outside y."""
    torch = pytest.importorskip("torch")
    offsets = np.array([6, 3, 25, 99], np.int32)
    x, w = rand(30, 8), rand(4, 8, 12)
    y = grouped_gemm(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(offsets), check=False,
                     target="llvm", block_m=4, block_n=16, block_k=8)
    clipped = np.maximum.accumulate(np.clip(offsets, 0, 30))
    np.testing.assert_allclose(y.numpy(), grouped_gemm_reference(x, w, clipped), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grouped_gemm(x, w, offsets, check=False, block_m=4),
                               grouped_gemm_reference(x, w, clipped), rtol=1e-4, atol=1e-4)


def test_grouped_gemm_empty_dims():
    torch = pytest.importorskip("torch")
    for xs, ws, offs in [((0, 4), (2, 4, 3), [0, 0]), ((5, 0), (2, 0, 3), [2, 5]), ((5, 4), (2, 4, 0), [2, 5])]:
        x, w, offsets = rand(*xs), rand(*ws), np.array(offs, np.int32)
        for args in [(x, w, offsets), (torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(offsets))]:
            y = grouped_gemm(*args)
            assert tuple(y.shape) == (xs[0], ws[2]) and not np.asarray(y).any()


@pytest.mark.parametrize("m,k,n,offsets", [(37, 20, 19, [10, 10, 30, 37]), (29, 17, 40, [5, 12, 20]),
                                           (9, 8, 8, [0, 0, 0]), (64, 8, 16, [5, 12, 20])])
def test_grouped_gemm_triton_interpreter_with_spare_tiles(nan_outputs, m, k, n, offsets):
    torch = pytest.importorskip("torch")
    offsets = np.array(offsets, np.int32)
    x, w = rand(m, k), rand(len(offsets), k, n)
    y = grouped_gemm(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(offsets), target="triton",
                     block_m=16, block_n=16, block_k=16)
    np.testing.assert_allclose(y.numpy(), grouped_gemm_reference(x, w, offsets), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------ permute / unpermute
@pytest.mark.parametrize("ntok,h,n,num_experts,topk", [(1, 1, 1, 1, 1), (13, 20, 19, 5, 2), (31, 48, 33, 8, 3)])
def test_moe_layer_llvm(ntok, h, n, num_experts, topk):
    x, w = rand(ntok, h), rand(num_experts, h, n)
    topk_ids = np.stack([RNG.permutation(num_experts)[:topk] for _ in range(ntok)]).astype(np.int32)
    topk_weights = RNG.random((ntok, topk)).astype(np.float32)
    xp, offsets, perm = moe_permute(x, topk_ids, num_experts)
    assert offsets.dtype == np.int32 and offsets[-1] == ntok * topk
    assert np.array_equal(xp, x[perm // topk])
    assert np.all(np.diff(topk_ids.reshape(-1)[perm]) >= 0)  # rows are in expert order
    out = moe_unpermute(grouped_gemm(xp, w, offsets), perm, topk_weights)
    assert out.shape == (ntok, n)
    np.testing.assert_allclose(out, moe_reference(x, w, topk_ids, topk_weights), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------ Triton interpreter
def test_moe_triton_interpreter():
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    ntok, h, n, num_experts, topk = 7, 16, 12, 4, 2
    x, w = rand(ntok, h), rand(num_experts, h, n)
    topk_ids = np.array([[0, 2], [2, 0], [0, 3], [3, 2], [0, 2], [2, 3], [0, 3]], np.int32)  # expert 1 unused
    topk_weights = RNG.random((ntok, topk)).astype(np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    xp, offsets, perm = moe_permute(xt, torch.from_numpy(topk_ids), num_experts, target="triton")
    assert offsets.tolist() == [5, 5, 10, 14]
    y = grouped_gemm(xp, wt, offsets, target="triton", block_m=16, block_n=16, block_k=16)
    out = moe_unpermute(y, perm, torch.from_numpy(topk_weights), target="triton")
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), moe_reference(x, w, topk_ids, topk_weights), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target", ["llvm", "triton"])
def test_grouped_gemm_last_tile_stops_at_the_last_offset(target):
    """The last expert's tile runs 2 rows past offsets[-1] (rows that must stay 0) and no later tile overwrites
    them: only the `if` in the kernel keeps them out."""
    offsets = np.array([5, 12, 18], np.int32)
    x, w = rand(29, 17), rand(3, 17, 40)
    if target == "triton":
        torch = pytest.importorskip("torch")
        pytest.importorskip("triton")
        y = grouped_gemm(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(offsets), target="triton",
                         block_m=8, block_n=16, block_k=16).numpy()
    else:
        y = grouped_gemm(x, w, offsets, block_m=8)
    assert not y[18:].any()
    np.testing.assert_allclose(y, grouped_gemm_reference(x, w, offsets), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("offsets,message", [([3, 2, 9], r"offsets\[1\] = 2.*non-decreasing"),
                                             ([3, 5, 10], r"offsets\[2\] = 10.*within \[0, 9\]")])
def test_bad_offsets_are_refused(offsets, message):
    with pytest.raises(TilecArgumentError, match=message):
        grouped_gemm(rand(9, 4), rand(3, 4, 5), np.array(offsets, np.int32))


def test_bad_shapes_and_ids_name_the_argument():
    with pytest.raises(TilecArgumentError, match=r"'w' must have shape \(3, 4, 5\)"):
        grouped_gemm(rand(9, 4), rand(3, 6, 5), np.array([1, 2, 3], np.int32))
    with pytest.raises(TilecArgumentError, match=r"'offsets' must have shape \(3,\)"):
        grouped_gemm(rand(9, 4), rand(3, 4, 5), np.array([1, 9], np.int32))
    with pytest.raises(TilecArgumentError, match=r"topk_ids\[1, 0\] = 4.*\[0, 3\]"):
        moe_permute(rand(2, 4), np.array([[0, 1], [4, 0]], np.int32), 4)
    with pytest.raises(TilecArgumentError, match=r"'y' must have shape \(4, 3\)"):
        moe_unpermute(rand(3, 3), np.arange(4, dtype=np.int32), rand(2, 2))
    with pytest.raises(TilecArgumentError, match="repeats a slot"):
        moe_unpermute(rand(4, 3), np.array([0, 1, 1, 3], np.int32), rand(2, 2))
