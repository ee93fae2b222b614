"""Build the drag-and-drop app with PyInstaller (onedir: starts faster than onefile).

    python -m pip install ".[freeze]"    # protect + pyinstaller
    python cli/build.py                  # -> dist/protect-app/protect-app[.exe]

Options: ``--dist DIR`` (default ``dist/``), ``--work DIR`` (default
``build/pyinstaller``), ``--clean``.  On macOS the build also makes
``dist/protect.app`` with argv emulation, so files dropped on the app's icon
arrive as arguments (see cli/README.md).

Notes on what the bundle needs:

* numba compiles the kernels at first start from their bytecode and caches
  the machine code per user, keyed by the executable (numba's own support
  for frozen apps), so later starts skip the compilation;
* typer's help output uses rich, which imports some modules lazily: they
  are listed as hidden imports;
* torch is never bundled (``--exclude-module torch``): the app does not
  measure, it only protects;
* with the ``ui`` extra installed, the page (``protect.ui``: its static files,
  Starlette, uvicorn, python-multipart) is bundled too, and the app opens it
  when started without files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "protect-app"
HIDDEN = ["rich.console", "rich.markup", "rich.table", "rich.panel", "typer.rich_utils",
          "numba.core.typing.cffi_utils"]
# Not needed by the app (protect never imports scipy; dask only runs `protect --scheduler`; the rest
# come in through optional imports of build tools and would only add size).
EXCLUDE = ["torch", "tkinter", "matplotlib", "IPython", "pytest", "ssimulacra2", "scipy", "pydantic",
           "pydantic_core", "yaml", "setuptools", "pkg_resources", "jinja2", "markupsafe", "charset_normalizer",
           "dask", "distributed"]


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def build(dist: Path, work: Path, clean: bool) -> Path:
    import PyInstaller.__main__

    args = [
        str(ROOT / "cli" / "protect_dragdrop.py"),
        "--name", NAME,
        "--onedir",
        "--console",
        "--noconfirm",
        "--distpath", str(dist),
        "--workpath", str(work),
        "--specpath", str(work),
        "--paths", str(ROOT / "src"),
        "--collect-submodules", "protect",
        # the generator's weights are package data (kernels/generator.npz)
        "--add-data", f"{ROOT / 'src' / 'protect' / 'kernels' / 'generator.npz'}{os.pathsep}protect/kernels",
    ]
    if _has("starlette") and _has("uvicorn"):  # the page (protect[ui]): opened when started without files
        args += ["--add-data", f"{ROOT / 'src' / 'protect' / 'ui' / 'static'}{os.pathsep}protect/ui/static",
                 "--collect-submodules", "uvicorn", "--collect-submodules", "starlette"]
        args += ["--collect-submodules", "python_multipart" if _has("python_multipart") else "multipart"]
    for h in HIDDEN:
        args += ["--hidden-import", h]
    for e in EXCLUDE:
        args += ["--exclude-module", e]
    if clean:
        args.append("--clean")
    if sys.platform == "darwin":
        args += ["--windowed", "--argv-emulation", "--osx-bundle-identifier", "org.protect.app"]
    PyInstaller.__main__.run(args)
    exe = dist / NAME / (NAME + (".exe" if sys.platform == "win32" else ""))
    if not exe.exists():
        raise SystemExit(f"build finished but {exe} is missing")
    example = ROOT / "cli" / "protect.toml.example"
    if example.exists():
        shutil.copy(example, dist / NAME / "protect.toml.example")
    return exe


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dist", type=Path, default=ROOT / "dist")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    ap.add_argument("--clean", action="store_true")
    args = ap.parse_args()
    exe = build(args.dist, args.work, args.clean)
    size = sum(p.stat().st_size for p in exe.parent.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"built {exe} ({size / 1e6:.0f} MB in {exe.parent})")
    subprocess.run([str(exe), "--help"], check=True, stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
