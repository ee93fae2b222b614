"""Per-user folders and the artist key.

The key is looked up in this order: ``--key`` (visible to other users in
``ps``: the CLI warns), ``--key-file PATH``, the ``PROTECT_KEY`` environment
variable, the key file in the user's config folder.  When none exists, a
random key is generated and stored with 0600 permissions in the config folder
(0700), created atomically and exclusively (a full disk or a race leaves no
empty or half key file), and its path is reported once (at creation).  An
empty or unreadable key is refused with a clear error, never used as "".
The key is never written into outputs or logs.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import platformdirs

KEY_ENV = "PROTECT_KEY"


APP = "protect"


def config_dir() -> Path:
    """``$PROTECT_CONFIG_DIR``, else the platform's per-user config folder + ``protect``
    (platformdirs: ``$XDG_CONFIG_HOME/protect`` or ``~/.config/protect`` on Linux,
    ``~/Library/Application Support/protect`` on macOS, ``%APPDATA%\\protect`` (roaming,
    so the key follows a Windows user between machines) on Windows)."""
    if os.environ.get("PROTECT_CONFIG_DIR"):
        return Path(os.environ["PROTECT_CONFIG_DIR"])
    return Path(platformdirs.user_config_dir(APP, appauthor=False, roaming=True))


def cache_dir() -> Path:
    """``$PROTECT_CACHE_DIR``, else the platform's per-user cache folder + ``protect``
    (``$XDG_CACHE_HOME/protect`` or ``~/.cache/protect``, ``~/Library/Caches/protect``,
    ``%LOCALAPPDATA%\\protect\\Cache``)."""
    if os.environ.get("PROTECT_CACHE_DIR"):
        return Path(os.environ["PROTECT_CACHE_DIR"])
    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


class KeyProblem(ValueError):
    """The key cannot be used (the message is one line, for the user)."""


@dataclass(frozen=True)
class ResolvedKey:
    key: str
    source: str  # "option", "key file option", "environment", "key file"
    created: Path | None = None  # set when this call generated the key file

    def __repr__(self) -> str:  # never show the key itself
        return f"ResolvedKey(source={self.source!r}, created={self.created!r})"


def key_file() -> Path:
    return config_dir() / "key"


def private_folder(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700 whatever the umask."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(path, 0o700)
    except OSError:  # pragma: no cover - filesystems without modes
        pass
    return path


def validate_key(text: str, where: str) -> str:
    """``text`` stripped of surrounding blanks; :class:`KeyProblem` when nothing is left."""
    key = text.strip()
    if not key:
        raise KeyProblem(f"the key in {where} is empty; restore your key there (protect key import FILE) "
                         "or delete the empty file to have a new key made")
    if "\n" in key or "\r" in key:
        raise KeyProblem(f"the key in {where} spans several lines; a key is one line")
    return key


def read_key_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise KeyProblem(f"cannot read the key file {path}: {reason}") from None
    return validate_key(text, str(path))


def write_key_file(path: Path, key: str, *, replace: bool = False) -> None:
    """Write ``key`` to ``path`` atomically, 0600; exclusively unless ``replace``.

    The key goes to a temporary file first, is flushed to disk and only then
    linked (exclusive: fails with FileExistsError when ``path`` exists) or
    moved into place, so ``path`` is never empty or partial.
    """
    key = validate_key(key, "the new key")
    private_folder(path.parent)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic and exclusive
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def resolve_key(option: str | None = None, *, create: bool = True, key_path: Path | None = None) -> ResolvedKey | None:
    """Find the artist key (see the module docstring); create one if needed
    (with ``create=False``, return None instead).  Raises :class:`KeyProblem`."""
    if option is not None:
        return ResolvedKey(validate_key(option, "--key"), "option")
    if key_path is not None:
        try:
            return ResolvedKey(read_key_file(key_path), "key file option")
        except FileNotFoundError:
            raise KeyProblem(f"the key file {key_path} does not exist") from None
    env = os.environ.get(KEY_ENV)
    if env is not None:
        return ResolvedKey(validate_key(env, f"the {KEY_ENV} environment variable"), "environment")
    path = key_file()
    try:
        return ResolvedKey(read_key_file(path), "key file")
    except FileNotFoundError:
        if not create:
            return None
    try:
        write_key_file(path, secrets.token_urlsafe(32))
    except FileExistsError:  # another process created it first: use theirs
        return ResolvedKey(read_key_file(path), "key file")
    except OSError as exc:
        raise KeyProblem(f"cannot create your key file {path}: {exc.strerror or exc}") from None
    return ResolvedKey(read_key_file(path), "key file", created=path)
