"""Where protect keeps the key and its cache, per platform.

The folders are those protect used before it took them from platformdirs
(issue 16): a user's existing key must still be found after the change.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest
from platformdirs.macos import MacOS
from platformdirs.unix import Unix
from platformdirs.windows import Windows

from protect import userdirs


def test_overrides_win_over_the_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("PROTECT_CONFIG_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("PROTECT_CACHE_DIR", str(tmp_path / "k"))
    assert userdirs.config_dir() == tmp_path / "c"
    assert userdirs.cache_dir() == tmp_path / "k"
    assert userdirs.key_file() == tmp_path / "c" / "key"


@pytest.mark.skipif(platformdirs.PlatformDirs is not Unix, reason="the running platform's folders: Linux/BSD")
def test_linux_folders_follow_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("PROTECT_CONFIG_DIR", raising=False)
    monkeypatch.delenv("PROTECT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert userdirs.config_dir() == tmp_path / "cfg" / "protect"
    assert userdirs.cache_dir() == tmp_path / "cache" / "protect"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert userdirs.config_dir() == Path.home() / ".config" / "protect"
    assert userdirs.cache_dir() == Path.home() / ".cache" / "protect"


def _as_platform(monkeypatch, cls):
    """Make platformdirs answer as on another platform (its functions build ``platformdirs.PlatformDirs``)."""
    monkeypatch.delenv("PROTECT_CONFIG_DIR", raising=False)
    monkeypatch.delenv("PROTECT_CACHE_DIR", raising=False)
    monkeypatch.setattr(platformdirs, "PlatformDirs", cls)


def test_macos_folders(monkeypatch):
    _as_platform(monkeypatch, MacOS)
    assert userdirs.config_dir() == Path.home() / "Library" / "Application Support" / "protect"
    assert userdirs.cache_dir() == Path.home() / "Library" / "Caches" / "protect"


def test_windows_folders(monkeypatch, tmp_path):
    """The key in the roaming %APPDATA%\\protect (as before), the cache in %LOCALAPPDATA%\\protect\\Cache
    (off Windows, platformdirs' environment fallback stands in for the Windows API)."""
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    import platformdirs.windows as win

    from_env = getattr(win, "get_win_folder_from_env_vars", None)
    if from_env is None:  # pragma: no cover - a platformdirs without the environment fallback
        pytest.skip("this platformdirs cannot read Windows folders from the environment")
    monkeypatch.setattr(win, "get_win_folder", from_env)
    _as_platform(monkeypatch, Windows)
    assert userdirs.config_dir() == tmp_path / "Roaming" / "protect"
    assert userdirs.cache_dir() == tmp_path / "Local" / "protect" / "Cache"
