from __future__ import annotations

from ..errors import TilecSyntaxError


def builtin(fn):
    """Mark a language function: its body never runs, the frontend translates calls to it."""
    name = fn.__name__

    def outside_kernel(*args, **kwargs):
        raise TilecSyntaxError(f"T.{name}(...) only has meaning inside a @tilec.kernel function body; "
                               f"call the kernel instead of T.{name} directly")

    outside_kernel.__name__ = name
    outside_kernel.__qualname__ = name
    outside_kernel.__doc__ = fn.__doc__
    outside_kernel.__wrapped__ = fn  # the signature the frontend binds arguments against
    outside_kernel._tilec_builtin = name
    return outside_kernel
