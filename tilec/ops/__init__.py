"""Ready-made operators written in the DSL. Each takes NumPy arrays (run by the LLVM backend on the CPU) or torch
tensors (Triton on CUDA; Triton's interpreter for CPU tensors with target="triton") and returns a new array of the
same kind."""
from .gemm import gemm
from .softmax import softmax

__all__ = ["gemm", "softmax"]
