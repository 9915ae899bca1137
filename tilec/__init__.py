"""tilec: a tile-level kernel DSL and compiler (Python ast -> tilec IR -> passes -> Triton or LLVM)."""
__version__ = "0.1.0"

from . import language  # noqa: F401
from .errors import *  # noqa: F401,F403
from .errors import TilecError  # noqa: F401
from .settings import settings  # noqa: F401
from .kernel import kernel, TileKernel  # noqa: F401
