"""Elementwise math on scalars and tile elements."""
from ._builtin import builtin


@builtin
def exp(x): """e**x"""


@builtin
def exp2(x): """2**x"""


@builtin
def log(x): """natural log"""


@builtin
def log2(x): """log base 2"""


@builtin
def sqrt(x): """square root"""


@builtin
def rsqrt(x): """1/sqrt(x)"""


@builtin
def abs(x): """absolute value"""


@builtin
def relu(x): """max(x, 0)"""


@builtin
def sigmoid(x): """1/(1+exp(-x))"""


@builtin
def tanh(x): """hyperbolic tangent"""


@builtin
def max(a, b): """elementwise maximum"""


@builtin
def min(a, b): """elementwise minimum"""


@builtin
def where(cond, a, b): """a where cond else b"""


@builtin
def cast(x, dtype): """convert to dtype"""


@builtin
def ceildiv(a, b): """(a + b - 1) // b for non-negative integers"""


@builtin
def infinity(dtype): """+inf of a float dtype (write -T.infinity(dtype) for -inf)"""
