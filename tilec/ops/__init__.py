"""Ready-made operators written in the DSL. Each takes NumPy arrays (run by the LLVM backend on the CPU) or torch
tensors (Triton on CUDA; Triton's interpreter for CPU tensors with target="triton") and returns a new array of the
same kind (kv_scatter writes its caches in place)."""
from .attention import flash_attention
from .gemm import gemm
from .indexer import lightning_indexer, topk_indices
from .kv_cache import kv_gather, kv_scatter
from .moe import grouped_gemm, moe_permute, moe_unpermute
from .paged import paged_attention
from .softmax import softmax
from .sparse import sparse_attention

__all__ = ["gemm", "softmax", "flash_attention", "paged_attention", "sparse_attention", "lightning_indexer",
           "topk_indices", "grouped_gemm", "moe_permute", "moe_unpermute", "kv_gather", "kv_scatter"]
