"""Buffers in the memory tiers and moves between them."""
from ._builtin import builtin


@builtin
def alloc_shared(shape, dtype):
    """A tile in shared memory (on CPU: a packed, cache-resident buffer)."""


@builtin
def alloc_fragment(shape, dtype):
    """A tile in registers, distributed over the block's threads (on CPU: a local buffer)."""


@builtin
def alloc_var(dtype, init=None):
    """A mutable scalar."""


@builtin
def copy(src, dst, pad=None):
    """Copy a tile. A global tensor indexed with scalars names the tile's origin; the other operand gives its shape.
    Out-of-bounds elements read ``pad`` (default 0) and are not written."""


@builtin
def fill(buffer, value):
    """Set every element of a tile to ``value``."""


@builtin
def clear(buffer):
    """Set every element of a tile to zero."""


@builtin
def atomic_add(dst, value):
    """Atomically add ``value`` to the global element ``dst`` (e.g. ``T.atomic_add(Out[i, j], x)``)."""
