"""Moving bytes between memory places (KV-cache tiers): time = latency + bytes / bandwidth over the slowest link of
the path. Places: "hbm" (the accelerator's memory; "dram" on the CPU target), "host_dram", "cxl", "ssd",
"remote_hbm" (a peer accelerator over NVLink / Infinity Fabric / UB), "remote_dram" (another node's DRAM over
RDMA, or over the Unified Bus inside a CloudMatrix384 supernode). Every link figure is cited in targets.py:
PCIe 5 x16 ~ 64 GB/s per direction (PCI-SIG), GH200 NVLink-C2C 900 GB/s bidirectional (NVIDIA GH200 datasheet),
CloudMatrix384 UB 392 GB/s per NPU with ~ 1.5 us to remote DRAM vs ~ 0.2 us to local HBM (Huawei, arXiv
2506.12708), 400 Gb/s RDMA NICs as in Mooncake's transfer engine (Qin et al., FAST 2025).
"""
from __future__ import annotations

from ..errors import TilecArgumentError
from .targets import Target, get_target


def path_links(src: str, dst: str, target: Target) -> tuple:
    """The links a transfer from `src` to `dst` crosses (either direction of a known path)."""
    for key in (f"{src}->{dst}", f"{dst}->{src}"):
        if key in target.paths:
            return tuple(target.paths[key])
    places = sorted({p for k in target.paths for p in k.split("->")})
    raise TilecArgumentError(f"transfer: no path from {src!r} to {dst!r} on target {target.name}; places there: "
                             f"{', '.join(places)}")


def transfer(nbytes: float, src: str, dst: str, target="h100") -> float:
    """Seconds to move `nbytes` from `src` to `dst`: the sum of the links' latencies plus the bytes over the
    slowest link's bandwidth (links pipeline the stream, so only the narrowest one limits it)."""
    if nbytes < 0:
        raise TilecArgumentError(f"transfer: nbytes must be >= 0, got {nbytes}")
    target = get_target(target)
    if src == dst:
        return 0.0
    links = [target.links[name] for name in path_links(src, dst, target)]
    return sum(link.latency for link in links) + nbytes / min(link.bandwidth for link in links)


def kv_bytes_per_token(model: dict) -> int:
    """Bytes of KV cache one token adds, over all layers.

    MHA/GQA: {"layers", "kv_heads", "head_dim", "dtype_bytes"} -> layers x 2 (K and V) x kv_heads x head_dim x bytes
    (MHA is GQA with kv_heads = heads). MLA (DeepSeek-V2/V3): {"layers", "kv_lora_rank": 512, "rope_dim": 64,
    "dtype_bytes"} -> layers x (512 + 64) x bytes: one compressed latent plus the shared RoPE key per token."""
    try:
        layers, size = int(model["layers"]), int(model.get("dtype_bytes", 2))
        if "kv_lora_rank" in model:
            return layers * (int(model["kv_lora_rank"]) + int(model.get("rope_dim", 64))) * size
        return layers * 2 * int(model["kv_heads"]) * int(model["head_dim"]) * size
    except KeyError as e:
        raise TilecArgumentError(f"kv_bytes_per_token: the model dict lacks {e}; give layers, kv_heads, head_dim, "
                                 f"dtype_bytes (MHA/GQA) or layers, kv_lora_rank, rope_dim, dtype_bytes (MLA)") \
            from None
