"""Drag-and-drop entry point of the frozen protect app.

Drop image files or folders on the executable: each is protected with the
default settings (or those of a ``protect.toml`` next to the executable),
``_protected`` copies are written beside the originals, a progress bar and a
plain-language summary are shown, and, when the window was opened by the
drop, it waits for Enter before closing.  With nothing dropped it explains
how to use it.

Frozen-app details handled here, before anything imports numba:

* ``multiprocessing.freeze_support()`` so worker processes start the app
  correctly on Windows and macOS;
* numba's on-disk cache of compiled kernels in a per-user writable folder:
  the default (``__pycache__`` next to the kernel sources) is missing or
  read-only in a bundle.  In the frozen app numba (>= 0.57) keys its cache
  on the executable and keeps it in the per-user cache folder
  (``~/.cache/numba``, ``%LOCALAPPDATA%\\numba``, ``~/Library/Caches/numba``);
  run as a script, ``NUMBA_CACHE_DIR`` is pointed at protect's own cache
  folder.  Without a writable cache numba still works, compiling at every
  start;
* the key file lives in the normal per-user config folder, as for the
  command-line tool.

Exit codes are those of ``protect``: 0 all done, 1 some file failed,
2 nothing usable was given.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

SETTINGS_FILE = "protect.toml"
DEFAULTS = {"strength": 0.4, "workers": 0, "format": None, "jpeg_quality": 95,
            "author": None, "copyright": None, "mark": None, "visible": None, "opt_out": True}

USAGE = """\
protect - adds low-visibility protection noise to your pictures.

How to use it: drag pictures, or folders of pictures, onto this program's icon.
Protected copies are saved next to them (a folder "X" becomes "X_protected",
a picture "a.png" becomes "a_protected.png"). Your originals are never changed.

Settings: put a file named protect.toml next to this program, for example

    strength = 0.4        # 0.1 = barely any noise ... 1.0 = strongest
    format = "png"        # or "jpeg", "webp"; leave it out to keep each file's format
    jpeg_quality = 95
    author = "Your Name"          # written into the pictures' metadata
    copyright = "(c) 2026 Your Name"
    visible = "(c) Your Name"     # a visible signature in the corner
    mark = "yourname"             # an invisible mark (up to 8 letters), read back with "protect detect"

The pictures also get a "no AI training" notice in their metadata
(opt_out = false turns it off).

Command-line users: this program takes the same paths as "protect PATHS...".
"""


def app_dir() -> Path:
    """Folder of the executable when frozen, of this script otherwise."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent
    return Path(__file__).resolve().parent


def prepare_environment() -> None:
    """Point numba's cache at a per-user folder (must run before numba is imported)."""
    if "NUMBA_CACHE_DIR" not in os.environ and not getattr(sys, "frozen", False):
        from protect.userdirs import cache_dir

        folder = cache_dir() / "numba"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
        except OSError:
            pass  # no writable cache: numba compiles in memory every start (slower, still correct)


def load_settings(folder: Path) -> tuple[dict, str | None]:
    """Defaults updated by ``folder/protect.toml``; (settings, problem or None)."""
    import tomllib

    settings = dict(DEFAULTS)
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return settings, None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return settings, f"{path}: could not be read ({exc}); using the default settings"
    unknown = sorted(set(data) - set(DEFAULTS) - {"key"})
    for name in DEFAULTS:
        if name in data:
            settings[name] = data[name]
    if "key" in data:
        settings["key"] = str(data["key"])
    return settings, (f"{path}: ignoring unknown setting(s) {', '.join(unknown)}" if unknown else None)


def started_by_drop() -> bool:
    """True when this process owns its console window (opened by a drop or a
    double click), so the window would vanish as soon as we exit."""
    if os.environ.get("PROTECT_NO_PAUSE"):
        return False
    if os.environ.get("PROTECT_PAUSE"):
        return True
    if sys.platform == "win32":
        import ctypes

        pids = (ctypes.c_uint * 4)()
        return ctypes.windll.kernel32.GetConsoleProcessList(pids, 4) <= 2  # us (+ the bootloader)
    return False  # a terminal on Linux/macOS stays open; the macOS app sets PROTECT_PAUSE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pause = started_by_drop()
    try:
        return _run(argv)
    finally:
        if pause:
            try:
                input("\nPress Enter to close this window.")
            except EOFError:
                pass


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 2 if not argv else 0
    prepare_environment()
    from tqdm import tqdm

    from protect import io as pio
    from protect.batch import Options, default_workers, discover, run_batch, warm_jit
    from protect.pipeline import Settings
    from protect.userdirs import resolve_key

    settings, problem = load_settings(app_dir())
    if problem:
        print(problem)
    paths = [Path(a) for a in argv]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"Not found, skipped: {p}")
    paths = [p for p in paths if p.exists()]
    if not paths:
        print("Nothing to do: drop pictures or folders of pictures on the icon.")
        return 2
    try:
        strength = float(settings["strength"])
        fmt = pio.normalise_format(settings["format"]) if settings["format"] else None
        from protect.metadata import MetadataSettings
        from protect.visible import VisibleMark
        from protect.watermark import payload_from_text

        options = Options(
            settings=Settings(strength=strength, key=resolve_key(settings.get("key")).key),
            format=fmt,
            jpeg_quality=int(settings["jpeg_quality"]),
            max_pixels=pio.DEFAULT_MAX_PIXELS,
            verify=False,
            mark=payload_from_text(str(settings["mark"])) if settings["mark"] else None,
            metadata=MetadataSettings(opt_out=bool(settings["opt_out"]), author=settings["author"] or None,
                                      copyright=settings["copyright"] or None),
            visible=VisibleMark(text=str(settings["visible"])) if settings["visible"] else None,
        )
    except (TypeError, ValueError) as exc:
        print(f"protect.toml has a setting protect cannot use: {exc}")
        return 2
    jobs = list(discover(paths))
    if not jobs:
        print("No pictures found in what was dropped (PNG, JPEG, WebP, TIFF, BMP and GIF are supported).")
        return 2
    print(f"Protecting {len(jobs)} picture(s) at strength {strength:g}...")
    warm_jit(mark=options.mark is not None)
    failures = []
    with tqdm(total=len(jobs), unit="picture", file=sys.stdout, dynamic_ncols=True) as bar:
        def on_result(r) -> None:
            if r.status == "failed":
                failures.append(r)

        report = run_batch(jobs, options, workers=int(settings["workers"]) or default_workers(),
                           on_result=on_result, progress=bar)
    print()
    print(f"Done. {report.protected} picture(s) protected, {report.skipped} already up to date.")
    targets = sorted({str(j.dst.parent) for j in jobs})
    print("Saved in: " + ("\n  ".join([""] + targets) if len(targets) > 1 else targets[0]))
    if failures:
        print(f"{len(failures)} picture(s) could not be protected:")
        for r in failures:
            print(f"  {r.src}: {r.reason}")
    return report.exit_code


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
