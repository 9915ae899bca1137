"""The launch grid and loops."""
from ._builtin import builtin


@builtin
def Kernel(*grid):
    """``with T.Kernel(gx, gy) as (bx, by):`` launches a grid of blocks; the body is one block."""


@builtin
def Parallel(*extents):
    """``for i, j in T.Parallel(m, n):`` an elementwise loop over tile indices (vectorised by the backend)."""


@builtin
def serial(start, stop=None, step=1):
    """``for i in T.serial(n)`` a sequential loop (``range`` means the same)."""


@builtin
def Pipelined(start, stop=None, step=1, num_stages=2):
    """``for k in T.Pipelined(n, num_stages=3):`` a sequential loop whose copies into shared memory are
    software-pipelined over ``num_stages`` buffers."""
