"""Per-user folders and the artist key.

The key is looked up in this order: ``--key``, the ``PROTECT_KEY``
environment variable, the key file in the user's config folder.  When none
exists, a random key is generated, stored with 0600 permissions, and its
path is reported once (at creation).  The key is never written into
outputs or logs.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

KEY_ENV = "PROTECT_KEY"


def config_dir() -> Path:
    """``$PROTECT_CONFIG_DIR``, else the platform's per-user config folder + ``protect``."""
    if os.environ.get("PROTECT_CONFIG_DIR"):
        return Path(os.environ["PROTECT_CONFIG_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "protect"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "protect"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "protect"


def cache_dir() -> Path:
    """``$PROTECT_CACHE_DIR``, else the platform's per-user cache folder + ``protect``."""
    if os.environ.get("PROTECT_CACHE_DIR"):
        return Path(os.environ["PROTECT_CACHE_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "protect" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "protect"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "protect"


@dataclass(frozen=True)
class ResolvedKey:
    key: str
    source: str  # "option", "environment", "key file"
    created: Path | None = None  # set when this call generated the key file

    def __repr__(self) -> str:  # never show the key itself
        return f"ResolvedKey(source={self.source!r}, created={self.created!r})"


def key_file() -> Path:
    return config_dir() / "key"


def resolve_key(option: str | None = None, *, create: bool = True) -> ResolvedKey | None:
    """Find the artist key (see the module docstring); create one if needed
    (with ``create=False``, return None instead)."""
    if option:
        return ResolvedKey(option, "option")
    env = os.environ.get(KEY_ENV)
    if env:
        return ResolvedKey(env, "environment")
    path = key_file()
    try:
        return ResolvedKey(path.read_text(encoding="utf-8").strip(), "key file")
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return ResolvedKey(path.read_text(encoding="utf-8").strip(), "key file")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    try:
        os.chmod(path, 0o600)
    except OSError:  # pragma: no cover - e.g. filesystems without modes
        pass
    return ResolvedKey(key, "key file", created=path)
