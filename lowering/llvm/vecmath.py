"""exp, exp2, log and log2 of f32/f64 values as inline, branch-free LLVM instructions.

LLVM lowers `llvm.exp.*` and friends to one libm call per element, which keeps the loop vectoriser from widening
an elementwise loop. The code here uses only instructions the vectoriser widens (fmuladd, selects, integer ops on
the bit patterns), works on scalars and vectors alike, and stays within ~1-2 ulp of the correctly rounded result
(tests/test_llvm_math.py).

exp(x) = 2^n * e^r with n = round(x / ln2) and r = x - n*ln2 (Cody-Waite: ln2 split in two so n*ln2_hi is exact),
|r| <= ln2/2, e^r = 1 + r + r^2 P(r). 2^n is built in the exponent field as 2^(n//2) * 2^(n - n//2): each half is a
normal number, so results that overflow become inf and results in the subnormal range are rounded once, by the last
multiply. log(x) = k*ln2 + log1p(f) with x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)); log1p(f) = 2 atanh(s),
s = f / (2 + f), written as f - s (f - R(s^2)) so the rounding of s is damped by the small factor s.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from . import dtypes as dt


@dataclass(frozen=True)
class _Format:
    fty: ir.Type
    ity: ir.Type
    mant: int  # explicit mantissa bits
    bias: int
    round_magic: float  # 1.5 * 2^mant: adding it rounds to an integer held in the low mantissa bits
    ln2_hi: float  # trailing zero bits: n * ln2_hi is exact for the n that occur
    ln2_lo: float
    log2e_hi: float
    log2e_lo: float
    exp_clamp: float  # |x| beyond this is inf / 0 for exp (2^n's halves stay normal up to it)
    #: below these exp and exp2 are 0 (the result is under half the smallest subnormal): such lanes compute on 0
    #: instead and take 0 at the end. Computing the clamped input instead underflows in the last multiplies, which
    #: is slow on Intel cores (denormal results take a microcode assist there): masked logits (-inf) hit it in every
    #: causal attention tile, and a 256 x 128 diagonal tile of flash attention took 2.2x an unmasked one
    #: (Sapphire Rapids VM, 2026-12-07; clamping the input to -126 instead, where nothing underflows, removed it)
    exp_zero_below: float
    exp2_zero_below: float
    exp_poly: tuple  # P(r) coefficients, low order first
    log_terms: int  # terms of R(z) = sum 2 z^k / (2k + 1), k = 1..log_terms
    sqrt_half_bits: int
    min_normal: float


# The P coefficients are a relative-error weighted least-squares fit of (e^r - 1 - r) / r^2 on Chebyshev nodes of
# [-ln2/2, ln2/2] (done in 50-digit mpmath); max relative error of 1 + r + r^2 P(r): 3.8e-9 (f32), 1.2e-17 (f64).
FLOAT32 = _Format(dt.F32, dt.I32, 23, 127, 12582912.0, 0.693145751953125, 1.428606765330187e-06,
              1.4426950216293335, 1.925963033500011e-08, 150.0, -104.0, -150.0,
              (0.49999988079071045, 0.166665181517601, 0.04166953265666962, 0.008368915878236294,
               0.0013751407386735082),
              4, 0x3F3504F3, 1.1754943508222875e-38)
FLOAT64 = _Format(dt.F64, dt.I64, 52, 1023, 6755399441055744.0, 0.6931471803691238, 1.9082149292705877e-10,
              1.4426950408889634, 2.0355273740931033e-17, 1400.0, -745.2, -1075.0,
              (0.5000000000000012, 0.16666666666666483, 0.04166666666651632, 0.008333333333451433,
               0.0013888888946678828, 0.00019841269597118904, 2.480149034623507e-05, 2.755750728541229e-06,
               2.7631125446226205e-07, 2.50246452096493e-08),
              9, 0x3FE6A09E667F3BCD, 2.2250738585072014e-308)

FUNCTIONS = ("exp", "exp2", "log", "log2")


def emit(cg, name: str, x):
    """`name` (one of FUNCTIONS) of the f32/f64 scalar or vector `x`, built with `cg.b` and `cg.intrinsic`."""
    return _Emitter(cg, x)(name, x)


class _Emitter:
    def __init__(self, cg, x):
        self.cg, self.b = cg, cg.b
        elem = x.type.element if isinstance(x.type, ir.VectorType) else x.type
        self.fmt = FLOAT64 if isinstance(elem, ir.DoubleType) else FLOAT32
        self.lanes = dt.lanes_of(x)

    def __call__(self, name, x):
        return getattr(self, name)(x)

    # --------------------------------------------------------------------------------------------- helpers
    def f(self, c):
        return dt.const(self.fmt.fty, c, self.lanes)

    def i(self, c):
        return dt.const(self.fmt.ity, c, self.lanes)

    def fma(self, a, b, c):
        """a * b + c, fused where the target has FMA (every step here is accurate either way)."""
        return self.cg.intrinsic("llvm.fmuladd", a.type, [a, b, c])

    def horner(self, x, coeffs):
        acc = self.f(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.f(c))
        return acc

    def clamp(self, x, lo, hi):
        """NaN goes to `lo` (the callers restore it at the end): no NaN reaches the float -> int steps."""
        b = self.b
        x = b.select(b.fcmp_unordered("<", x, self.f(lo)), self.f(lo), x)
        return b.select(b.fcmp_ordered(">", x, self.f(hi)), self.f(hi), x)

    def keep_nan(self, x, y):
        b = self.b
        return b.select(b.fcmp_unordered("uno", x, x), b.fadd(x, x), y)  # x + x quiets a signalling NaN

    # --------------------------------------------------------------------------------------------- exp
    def round_int(self, t):
        """(float, int) nearest integer to t, |t| < 2^(mant-1): the magic constant pushes the fraction out."""
        b, m = self.b, self.fmt.round_magic
        shifted = b.fadd(t, self.f(m))
        n_int = b.sub(b.bitcast(shifted, self.i(0).type), b.bitcast(self.f(m), self.i(0).type))
        return b.fsub(shifted, self.f(m)), n_int

    def exp_core(self, r, n_int):
        """e^r * 2^n for |r| <= ln2/2 (a little more is fine) and |n| <= 2 * (bias - 1)."""
        b, fmt = self.b, self.fmt
        p = self.horner(r, fmt.exp_poly)
        y = b.fadd(self.f(1.0), self.fma(b.fmul(r, r), p, r))
        half = b.ashr(n_int, self.i(1))
        for k in (half, b.sub(n_int, half)):
            scale = b.bitcast(b.shl(b.add(k, self.i(fmt.bias)), self.i(fmt.mant)), y.type)
            y = b.fmul(y, scale)
        return y

    def zero_below(self, x, limit):
        """(x with the lanes under `limit` set to 0, those lanes): what exp/exp2 compute on, and where they give 0."""
        b = self.b
        under = b.fcmp_ordered("<", x, self.f(limit))
        return b.select(under, self.f(0.0), self.clamp(x, -self.fmt.exp_clamp, self.fmt.exp_clamp)), under

    def exp(self, x):
        fmt, b = self.fmt, self.b
        xc, under = self.zero_below(x, fmt.exp_zero_below)
        nf, n_int = self.round_int(b.fmul(xc, self.f(fmt.log2e_hi)))
        r = self.fma(nf, self.f(-fmt.ln2_hi), xc)
        r = self.fma(nf, self.f(-fmt.ln2_lo), r)
        return self.keep_nan(x, b.select(under, self.f(0.0), self.exp_core(r, n_int)))

    def exp2(self, x):
        fmt, b = self.fmt, self.b
        xc, under = self.zero_below(x, fmt.exp2_zero_below)
        nf, n_int = self.round_int(xc)
        frac = b.fsub(xc, nf)  # exact
        r = self.fma(frac, self.f(fmt.ln2_hi), b.fmul(frac, self.f(fmt.ln2_lo)))
        return self.keep_nan(x, b.select(under, self.f(0.0), self.exp_core(r, n_int)))

    # --------------------------------------------------------------------------------------------- log
    def log_parts(self, x):
        """(k, log1p(f)) with x = 2^k (1 + f) for finite x > 0; k as a float."""
        b, fmt = self.b, self.fmt
        ity = self.i(0).type
        tiny = b.fcmp_ordered("<", x, self.f(fmt.min_normal))  # subnormal: scale into the normal range
        shift = fmt.mant + 2
        x = b.select(tiny, b.fmul(x, self.f(float(2 ** shift))), x)
        bits = b.bitcast(x, ity)
        k = b.ashr(b.sub(bits, self.i(fmt.sqrt_half_bits)), self.i(fmt.mant))
        m = b.bitcast(b.sub(bits, b.shl(k, self.i(fmt.mant))), x.type)  # in [sqrt(1/2), sqrt(2))
        k = b.sub(k, b.select(tiny, self.i(shift), self.i(0)))
        f = b.fsub(m, self.f(1.0))  # exact (Sterbenz)
        s = b.fdiv(f, b.fadd(f, self.f(2.0)))
        z = b.fmul(s, s)
        r = b.fmul(z, self.horner(z, [2.0 / (2 * j + 1) for j in range(1, fmt.log_terms + 1)]))
        log1p = b.fsub(f, b.fmul(s, b.fsub(f, r)))
        return b.sitofp(k, x.type), log1p

    def log_specials(self, x, y):
        """0 -> -inf, negative -> NaN, +inf -> +inf, NaN -> NaN."""
        b = self.b
        y = b.select(b.fcmp_ordered("==", x, self.f(float("inf"))), x, y)
        y = b.select(b.fcmp_ordered("==", x, self.f(0.0)), self.f(float("-inf")), y)
        y = b.select(b.fcmp_ordered("<", x, self.f(0.0)), self.f(float("nan")), y)
        return self.keep_nan(x, y)

    def log(self, x):
        fmt, b = self.fmt, self.b
        k, l1p = self.log_parts(x)
        y = b.fadd(self.fma(k, self.f(fmt.ln2_lo), l1p), b.fmul(k, self.f(fmt.ln2_hi)))
        return self.log_specials(x, y)

    def log2(self, x):
        fmt, b = self.fmt, self.b
        k, l1p = self.log_parts(x)
        frac = self.fma(l1p, self.f(fmt.log2e_hi), b.fmul(l1p, self.f(fmt.log2e_lo)))
        return self.log_specials(x, b.fadd(k, frac))
