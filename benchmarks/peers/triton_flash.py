"""A hand-written Triton FlashAttention-2 forward pass (bf16/fp16, [B, H, S, D], Sq = Skv), the peer that shows what
Triton itself reaches on the same GPU: tensor descriptors for Q/K/V/O, base-2 online softmax with the scale folded
into one multiply-add, causal blocks launched longest first with the diagonal tiles in a second, masked loop."""
import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def fold_tile(q, k_desc, v_desc, row, start, acc, m_i, l_i, scale_log2, rows, MASKED: tl.constexpr,
              BLOCK_N: tl.constexpr):
    """One key tile folded into the running (acc, m, l); MASKED applies the causal diagonal."""
    s = tl.dot(q, k_desc.load([row, 0]).T)
    if MASKED:
        s = tl.where(rows[:, None] >= start + tl.arange(0, BLOCK_N)[None, :], s, -float("inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1) * scale_log2)
    p = tl.math.exp2(s * scale_log2 - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(q.dtype), v_desc.load([row, 0]), acc * alpha[:, None])
    return acc, m_new, l_i


@triton.jit
def flash_fwd(Q, K, V, O, scale_log2, rows_total, S: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr,
              BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, STAGES: tl.constexpr, WARP_SPECIALIZE: tl.constexpr):
    tile = tl.program_id(0)
    if CAUSAL:
        tile = tl.num_programs(0) - 1 - tile
    base = tl.program_id(1) * S  # row of this (batch, head) in the [B * H * S, D] view
    q_desc = tl.make_tensor_descriptor(Q, shape=[rows_total, D], strides=[D, 1], block_shape=[BLOCK_M, D])
    k_desc = tl.make_tensor_descriptor(K, shape=[rows_total, D], strides=[D, 1], block_shape=[BLOCK_N, D])
    v_desc = tl.make_tensor_descriptor(V, shape=[rows_total, D], strides=[D, 1], block_shape=[BLOCK_N, D])
    o_desc = tl.make_tensor_descriptor(O, shape=[rows_total, D], strides=[D, 1], block_shape=[BLOCK_M, D])
    q = q_desc.load([base + tile * BLOCK_M, 0])
    rows = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    m_i = tl.full([BLOCK_M], -float("inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    unmasked_end = tile * BLOCK_M if CAUSAL else S
    for start in tl.range(0, unmasked_end, BLOCK_N, num_stages=STAGES, warp_specialize=WARP_SPECIALIZE):
        acc, m_i, l_i = fold_tile(q, k_desc, v_desc, base + start, start, acc, m_i, l_i, scale_log2, rows, False,
                                  BLOCK_N)
    if CAUSAL:
        for start in tl.range(tile * BLOCK_M, (tile + 1) * BLOCK_M, BLOCK_N, num_stages=STAGES):
            acc, m_i, l_i = fold_tile(q, k_desc, v_desc, base + start, start, acc, m_i, l_i, scale_log2, rows, True,
                                      BLOCK_N)
    o_desc.store([base + tile * BLOCK_M, 0], (acc / l_i[:, None]).to(O.dtype.element_ty))


def flash_attention(q, k, v, causal=False, block_m=128, block_n=64, stages=3, warps=8, warp_specialize=False):
    """softmax(q k^T / sqrt(D)) v for contiguous q, k, v [B, H, S, D] with S a multiple of block_m."""
    b, h, s, d = q.shape
    assert s % block_m == 0 and block_m % block_n == 0
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device=q.device))
    o = torch.empty_like(q)
    flash_fwd[(s // block_m, b * h)](q, k, v, o, LOG2E / d ** 0.5, b * h * s, S=s, D=d, BLOCK_M=block_m,
                                     BLOCK_N=block_n, CAUSAL=causal, STAGES=stages, WARP_SPECIALIZE=warp_specialize,
                                     num_warps=warps, num_stages=stages)
    return o
