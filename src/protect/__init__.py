"""protect: fast, CPU-only, measured protection noise for artists' images."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["ProtectReport", "Settings", "protect_bytes", "protect_image", "__version__"]

_LAZY = {"ProtectReport", "Settings", "protect_image"}


def __getattr__(name: str):
    # Imported on first use, so that ``protect.userdirs`` (and the frozen app's
    # start-up, which must set NUMBA_CACHE_DIR first) do not pull in numba.
    if name in _LAZY:
        from . import pipeline

        return getattr(pipeline, name)
    if name == "protect_bytes":
        from .batch import protect_bytes

        return protect_bytes
    raise AttributeError(f"module 'protect' has no attribute {name!r}")
