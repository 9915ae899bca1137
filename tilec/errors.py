"""One exception class per kind of error. Every message says where (argument name or source file:line) and what
would be right."""
from __future__ import annotations


class TilecError(Exception):
    """Base class of every error tilec raises on purpose."""


class TilecSyntaxError(TilecError):
    """A construct the kernel language does not support, an unknown name, a wrong arity (raised by the frontend)."""


class TilecTypeError(TilecError):
    """Dtype or shape mismatch inside a kernel, or a buffer used in the wrong memory tier."""


class TilecVerifyError(TilecError):
    """The IR is malformed (verifier); a bug in a pass or hand-written IR text."""


class TilecParseError(TilecError):
    """Textual IR that does not match the grammar."""


class TilecResourceError(TilecError):
    """A buffer or kernel exceeds the target's capacity (shared memory, registers)."""


class TilecArgumentError(TilecError):
    """A launch argument is wrong: dtype, rank, shape, contiguity, device, index out of range."""


class TilecLoweringError(TilecError):
    """The IR uses something a backend cannot express."""


class TilecBackendUnavailable(TilecError):
    """A backend's dependency (triton, torch, llvmlite, ml_dtypes) is missing."""


class TilecCacheError(TilecError):
    """The compile cache could not be used (never raised for a corrupt entry: that one is rebuilt)."""


def where(loc) -> str:
    """'file:line: ' prefix for a source location (or '' when unknown)."""
    return f"{loc}: " if loc is not None else ""
