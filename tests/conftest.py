from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own config and cache folders and no key in the environment."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("PROTECT_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("PROTECT_CACHE_DIR", str(base / "cache"))
    monkeypatch.delenv("PROTECT_KEY", raising=False)


def textured(h: int = 96, w: int = 128, seed: int = 0, channels: int = 3) -> np.ndarray:
    """An artwork-like test image: flat fill on the left, hatching/texture on the right."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, channels), 200, np.uint8)
    tex = rng.integers(40, 220, (h, w - w // 2, channels), dtype=np.uint8)
    img[:, w // 2:] = tex
    img[::6, : w // 2] = 30  # a few lines over the flat half
    return img
