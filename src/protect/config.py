"""One settings file shared by the command line, the page and the app.

``config.toml`` in the per-user config folder (next to the key file:
``~/.config/protect/config.toml`` on Linux, ``%APPDATA%\\protect\\config.toml``
on Windows, ``~/Library/Application Support/protect/config.toml`` on macOS),
for example::

    strength = 0.4
    author = "Ann"
    copyright = "© 2026 Ann"
    mark = "ann_art"
    visible = "© Ann"
    out = "~/Pictures/protected"

Every setting is optional; what the command line, the page or the app is
told explicitly wins over it.  The key is never read from here (it has its
own file).  This module reads text only; it imports nothing heavy.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from .userdirs import config_dir

CONFIG_NAME = "config.toml"

#: setting -> accepted Python types
SETTINGS: dict[str, tuple[type, ...]] = {
    "strength": (int, float),
    "method": (str,),
    "format": (str,),
    "jpeg_quality": (int,),
    "workers": (int,),
    "author": (str,),
    "copyright": (str,),
    "mark": (str,),
    "visible": (str,),
    "visible_position": (str,),
    "opt_out": (bool,),
    "out": (str,),
}


def config_file() -> Path:
    return config_dir() / CONFIG_NAME


def read_settings(path: Path) -> tuple[dict, list[str]]:
    """(the known settings of ``path`` with the right types, one line per problem); no file: ({}, [])."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        return {}, [f"{path}: could not be read ({exc.strerror or exc}); using the defaults"]
    try:
        data = tomllib.loads(text)
    except ValueError as exc:
        return {}, [f"{path}: not valid TOML ({exc}); using the defaults"]
    settings, problems = {}, []
    for name, value in data.items():
        types = SETTINGS.get(name)
        if types is None:
            problems.append(f"{path}: unknown setting {name!r} ignored" +
                            (" (the key has its own file)" if name == "key" else ""))
        elif isinstance(value, bool) and bool not in types or not isinstance(value, types):
            problems.append(f"{path}: {name} = {value!r} ignored (expected {' or '.join(t.__name__ for t in types)})")
        else:
            settings[name] = value
    return settings, problems


def load_config() -> tuple[dict, list[str]]:
    """The user's ``config.toml`` (see the module docstring)."""
    return read_settings(config_file())


def cli_defaults(settings: dict) -> dict:
    """``settings`` as a click ``default_map`` for the ``run`` and ``ui`` commands."""
    run = {}
    for name, param in (("strength", "strength"), ("method", "method"), ("format", "fmt"),
                        ("jpeg_quality", "jpeg_quality"), ("workers", "workers"), ("author", "author"),
                        ("copyright", "copyright_"), ("mark", "mark"), ("visible", "visible_text"),
                        ("visible_position", "visible_position"), ("out", "out")):
        if name in settings:
            run[param] = settings[name]
    if "opt_out" in settings:
        run["no_metadata"] = not settings["opt_out"]
    ui = {k: v for k, v in run.items() if k == "workers"}  # the page reads "out" and the rest itself
    run.pop("out", None)  # a fixed output folder for every run would surprise; the page uses it
    return {"run": run, "ui": ui}
