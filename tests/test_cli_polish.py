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


# ---------------------------------------------------------------- CLI polish

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402

SAMPLE = ROOT / "samples" / "comic_text.png"  # not pixel_palette.png: palette pixel art is left unchanged (issue 12)


@pytest.fixture
def art(tmp_path):
    folder = tmp_path / "art"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "a.png")
    return folder


def _env(**extra) -> dict:
    return {**os.environ, **extra}


def test_json_dash_goes_to_stdout_alone(art):
    res = _protect(str(art), "--key", "k", "--json", "-")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["protected"] == 1 and not (art.parent / "-").exists()
    res = _protect("detect", str(art.parent / "art_protected" / "a.png"), "--key", "k", "--json", "-")
    assert json.loads(res.stdout)["files"][0]["found"] is False and "no mark found" in res.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal_and_verbose_lines(art):
    res = _protect(str(art), "--key", "k", "-v")
    assert res.returncode == 0
    assert "img/s" not in res.stderr and "%|" not in res.stderr
    assert f"protected: {art / 'a.png'} -> {art.parent / 'art_protected' / 'a.png'} (PSNR" in res.stderr
    res = _protect(str(art), "--key", "k", "--verbose")
    assert "(up to date)" in res.stderr


def test_mistyped_command_suggests_the_right_one(tmp_path):
    res = _protect("verfy", "a", "b")
    assert res.returncode == 2 and "Did you mean 'verify'?" in res.stderr
    res = _protect("detcet", "x.png")
    assert res.returncode == 2 and "Did you mean 'detect'?" in res.stderr


def test_out_equal_to_the_input_is_one_usage_error(art):
    res = _protect(str(art), "--key", "k", "--out", str(art))
    assert res.returncode == 2 and "would replace the originals" in res.stderr
    res = _protect(str(art / "a.png"), "--key", "k", "--out", str(art))
    assert res.returncode == 2 and "would replace the originals" in res.stderr
    assert sorted(p.name for p in art.iterdir()) == ["a.png"]


def test_heic_and_avif_are_skipped_with_a_note(art):
    (art / "phone.HEIC").write_bytes(b"\0" * 10)
    (art / "web.avif").write_bytes(b"\0" * 10)
    res = _protect(str(art), "--key", "k")
    assert res.returncode == 0
    assert "note: skipped 1 .avif, 1 .heic file(s)" in res.stderr


def test_fixed_choices_and_examples_in_help():
    res = _protect("run", "--help", env=_env(COLUMNS="200"))
    assert "Examples" in res.stdout and "adversarial" in res.stdout and "bottom-right" in res.stdout
    for panel in ("Strength and key", "Output", "Marks and metadata", "Visible signature", "Running"):
        assert panel in res.stdout
    res = _protect(str(SAMPLE), "--method", "fancy")
    assert res.returncode == 2 and "texture" in res.stderr
    res = _protect(str(SAMPLE), "--visible", "x", "--visible-position", "middle")
    assert res.returncode == 2 and "tiled" in res.stderr


def test_config_file_is_shared_and_the_command_line_wins(art, tmp_path):
    cfg = Path(os.environ["PROTECT_CONFIG_DIR"])
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.toml").write_text('strength = 0.2\nauthor = "Ann"\ncolour = "red"\n', encoding="utf-8")
    res = _protect(str(art), "--key", "k", "--out", str(tmp_path / "from_config"))
    assert res.returncode == 0 and "unknown setting 'colour' ignored" in res.stderr
    (cfg / "config.toml").unlink()
    _protect(str(art), "--key", "k", "--strength", "0.2", "--author", "Ann", "--out", str(tmp_path / "explicit"))
    _protect(str(art), "--key", "k", "--out", str(tmp_path / "default"))
    same = (tmp_path / "from_config" / "a.png").read_bytes()
    assert same == (tmp_path / "explicit" / "a.png").read_bytes()
    assert same != (tmp_path / "default" / "a.png").read_bytes()
    (cfg / "config.toml").write_text("strength = 0.2\n", encoding="utf-8")
    _protect(str(art), "--key", "k", "--strength", "0.4", "--out", str(tmp_path / "override"))
    assert (tmp_path / "override" / "a.png").read_bytes() == (tmp_path / "default" / "a.png").read_bytes()


def test_config_values_of_the_wrong_type_are_named(tmp_path):
    from protect.config import read_settings

    (tmp_path / "c.toml").write_text('strength = "strong"\nopt_out = 1\nmark = "ann"\n')
    settings, problems = read_settings(tmp_path / "c.toml")
    assert settings == {"mark": "ann"} and len(problems) == 2 and "strength" in problems[0]
    (tmp_path / "bad.toml").write_text("strength = = 1")
    values, problems = read_settings(tmp_path / "bad.toml")
    assert values == {} and "not valid TOML" in problems[0]
