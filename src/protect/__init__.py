"""protect: fast, CPU-only, measured protection noise for artists' images."""

from __future__ import annotations

__version__ = "0.1.0"

from .pipeline import ProtectReport, Settings, protect_image  # noqa: E402

__all__ = ["ProtectReport", "Settings", "protect_image", "__version__"]
