"""Reductions of a tile along one dimension into a tile of one rank less."""
from ._builtin import builtin


@builtin
def reduce_max(src, dst, dim=-1, clear=True):
    """dst = max over ``dim`` of src (with clear=False: max(dst, that))."""


@builtin
def reduce_sum(src, dst, dim=-1, clear=True):
    """dst = sum over ``dim`` of src (with clear=False: dst + that)."""


@builtin
def reduce_min(src, dst, dim=-1, clear=True):
    """dst = min over ``dim`` of src (with clear=False: min(dst, that))."""
