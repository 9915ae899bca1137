"""The kernel language, imported as ``T``. These objects only have meaning inside a ``@tilec.kernel`` function:
the frontend reads the function's syntax tree and recognises each of them by identity. Calling one from plain
Python raises a TilecError that says so."""
from .tensor import Tensor, float16, bfloat16, float32, float64, int8, int32, int64, bool_, DTYPES
from .memory import alloc_shared, alloc_fragment, alloc_var, copy, fill, clear, atomic_add
from .loops import Kernel, Parallel, serial, Pipelined
from .math import (exp, exp2, log, log2, sqrt, rsqrt, abs, max, min, where, cast, ceildiv, infinity, relu,
                   sigmoid, tanh)
from .reduce import reduce_max, reduce_sum, reduce_min
from .gemm import gemm
from .macro import macro

__all__ = ["Tensor", "float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "bool_", "DTYPES",
           "alloc_shared", "alloc_fragment", "alloc_var", "copy", "fill", "clear", "atomic_add",
           "Kernel", "Parallel", "serial", "Pipelined",
           "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "abs", "max", "min", "where", "cast", "ceildiv",
           "infinity", "relu", "sigmoid", "tanh", "reduce_max", "reduce_sum", "reduce_min", "gemm", "macro"]
