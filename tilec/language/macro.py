from __future__ import annotations

import functools

from ..errors import TilecSyntaxError


class Macro:
    """A function whose body is kernel code, inlined where a kernel calls it as a statement (`step(q, k, s)`).
    Its parameters are bound to the caller's values (tiles, tensors, scalars, Python constants); it sees only
    them, the module's globals and the names it assigns itself, and returns nothing."""

    def __init__(self, fn):
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        raise TilecSyntaxError(f"T.macro {self.fn.__name__}(...) only has meaning inside a @tilec.kernel function "
                               f"body, where it is inlined")


def macro(fn) -> Macro:
    """Mark a function as kernel code to inline at each call inside a kernel body (TileLang's T.macro)."""
    return Macro(fn)
