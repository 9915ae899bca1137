"""One settings object that mirrors the environment variables (read when tilec is imported; change fields at will)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


@dataclass
class Settings:
    #: TILEC_CACHE=0 disables the on-disk and in-memory compile cache.
    cache: bool = field(default_factory=lambda: _flag("TILEC_CACHE", True))
    #: TILEC_CACHE_DIR overrides ~/.cache/tilec.
    cache_dir: Path = field(default_factory=lambda: Path(os.environ.get("TILEC_CACHE_DIR")
                                                         or Path.home() / ".cache" / "tilec"))
    #: TILEC_TARGET forces the backend ("llvm" or "triton") when a call does not say.
    target: str | None = field(default_factory=lambda: os.environ.get("TILEC_TARGET") or None)
    #: TILEC_NUM_THREADS: CPU threads for the LLVM backend (default: all cores).
    num_threads: int = field(default_factory=lambda: int(os.environ.get("TILEC_NUM_THREADS") or os.cpu_count() or 1))
    #: TILEC_DEBUG=1 prints each stage's output as it is produced.
    debug: bool = field(default_factory=lambda: _flag("TILEC_DEBUG", False))
    #: TRITON_INTERPRET=1 (Triton's own variable) runs Triton kernels on torch CPU tensors.
    triton_interpret: bool = field(default_factory=lambda: _flag("TRITON_INTERPRET", False))


settings = Settings()
