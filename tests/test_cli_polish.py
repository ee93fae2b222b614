"""The package and the command line as a new user meets them: python -m protect, -V, help, messages."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from protect import __version__

ROOT = Path(__file__).resolve().parents[1]


def _protect(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protect", *args], capture_output=True, text=True, timeout=120, **kw)


def test_python_m_protect_and_short_version_flag():
    for flag in ("-V", "--version"):
        res = _protect(flag)
        assert res.returncode == 0 and res.stdout.strip() == f"protect {__version__}"


def test_distribution_name_and_runtime_dependencies():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "protect-art"  # "protect" on PyPI is someone else's package
    assert meta["scripts"]["protect"] == "protect.cli:main"
    runtime = " ".join(meta["dependencies"])
    assert "scipy" not in runtime and "torch" not in runtime  # scipy is for the tests only
    assert "scipy" in " ".join(meta["optional-dependencies"]["test"])
    assert {"starlette", "uvicorn", "python-multipart"} <= {d.split(">")[0].split("<")[0]
                                                           for d in meta["optional-dependencies"]["ui"]}
    # no runtime module imports scipy
    for path in (ROOT / "src" / "protect").rglob("*.py"):
        assert "import scipy" not in path.read_text() and "from scipy" not in path.read_text(), path
