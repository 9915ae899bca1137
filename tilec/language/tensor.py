"""Tensor annotations and dtypes."""
from __future__ import annotations

from ..errors import TilecTypeError

DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "bool")
float16, bfloat16, float32, float64 = "float16", "bfloat16", "float32", "float64"
int8, int32, int64, bool_ = "int8", "int32", "int64", "bool"


class TensorSpec:
    """What ``T.Tensor[(dims...), dtype]`` evaluates to: dims are names (symbolic) or ints."""

    def __init__(self, shape, dtype):
        if isinstance(shape, (str, int)):
            shape = (shape,)
        shape = tuple(shape)
        for d in shape:
            if not (isinstance(d, str) and d.isidentifier()) and not (isinstance(d, int) and d >= 0):
                raise TilecTypeError(f"T.Tensor dimension {d!r} must be a name like 'M' or a non-negative int")
        if dtype not in DTYPES:
            raise TilecTypeError(f"T.Tensor dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        self.shape, self.dtype = shape, dtype

    def __repr__(self):
        return f"T.Tensor[{self.shape!r}, {self.dtype!r}]"


class _TensorFactory:
    def __getitem__(self, item):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TilecTypeError("write T.Tensor[(dims...), dtype], e.g. T.Tensor[('M', 'K'), 'float16']")
        return TensorSpec(*item)

    def __call__(self, shape, dtype):
        return TensorSpec(shape, dtype)


Tensor = _TensorFactory()
