"""Tile matrix multiply."""
from ._builtin import builtin


@builtin
def gemm(a, b, c, transpose_a=False, transpose_b=False):
    """c += a @ b (a, b in shared or fragment tiles, c a fragment accumulator)."""
