"""The online-softmax step that flash, paged and split attention share, as a `T.macro` inlined into each kernel."""
import tilec.language as T


@T.macro
def online_softmax_update(s, p, v, acc, m, l, m_prev, m_safe, alpha, row_sum, rows, cols, dim, scale):  # noqa: E741
    """Fold one tile of raw logits s [rows, cols] (masked entries -inf) into the running row max m and sum l (fp32,
    [rows], both of base-2 logits s * scale) and the output accumulator acc [rows, dim]: acc = acc * 2^(m_old -
    m_new) + 2^(s * scale - m_new) @ v, l likewise. scale (softmax scale * log2(e)) must be > 0: then the scaled
    row max is the raw row max times scale, and the exponent s * scale - m is one fused multiply-add per element,
    the softmax's hot loop (_host.softmax_scale makes it so). p is s in v's dtype for the second
    GEMM; m_prev, m_safe, alpha and row_sum are [rows] scratch."""
    T.copy(m, m_prev)
    T.reduce_max(s, row_sum, dim=1)
    for i in T.Parallel(rows):
        m[i] = T.max(m_prev[i], row_sum[i] * scale)
        # a row with no visible key yet keeps m = -inf; subtract 0 then so exp2 gives 0, not NaN
        m_safe[i] = T.where(m[i] == -T.infinity("float32"), 0.0, m[i])
        alpha[i] = T.exp2(m_prev[i] - m_safe[i])
    for i, j in T.Parallel(rows, cols):
        s[i, j] = T.exp2(s[i, j] * scale - m_safe[i])
        p[i, j] = s[i, j]
    T.reduce_sum(s, row_sum, dim=1)
    for i in T.Parallel(rows):
        l[i] = l[i] * alpha[i] + row_sum[i]
    for i, d in T.Parallel(rows, dim):
        acc[i, d] = acc[i, d] * alpha[i]
    T.gemm(p, v, acc)
