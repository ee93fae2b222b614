"""The drag-and-drop entry (cli/protect_dragdrop.py), run as a script, and its frozen build.

The build test is marked slow: it needs PyInstaller (``pip install -e ".[freeze]"``)
and takes a few minutes; run it with ``python -m pytest -m slow tests/test_dragdrop.py``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "cli" / "protect_dragdrop.py"
SAMPLES = ROOT / "samples"


def _env(tmp_path, **extra):
    env = dict(os.environ)
    env.update(PROTECT_CONFIG_DIR=str(tmp_path / "cfg"), PROTECT_CACHE_DIR=str(tmp_path / "cache"),
               PROTECT_NO_PAUSE="1", PYTHONPATH=str(ROOT / "src"))
    env.pop("NUMBA_CACHE_DIR", None)
    env.update(extra)
    return env


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def _check_outputs(cmd: list[str], tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    art = tmp_path / "art"
    shutil.copytree(SAMPLES, art, ignore=shutil.ignore_patterns("*.py"))
    before = _digests(art)
    res = subprocess.run([*cmd, str(art)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Done. 8 picture(s) protected" in res.stdout
    written = sorted(p.name for p in (tmp_path / "art_protected").iterdir() if not p.name.startswith("."))
    assert written == sorted(before)
    assert _digests(art) == before  # originals untouched
    return res


def test_help_explains_usage_in_the_system_language(tmp_path):
    res = subprocess.run([sys.executable, str(ENTRY), "--help"], env=_env(tmp_path), capture_output=True, text=True)
    assert res.returncode == 0 and "drag pictures" in res.stdout and "double-click" in res.stdout
    res = subprocess.run([sys.executable, str(ENTRY), "--help"], env=_env(tmp_path, PROTECT_LANG="ja"),
                         capture_output=True, text=True)
    assert res.returncode == 0 and "ドラッグ＆ドロップ" in res.stdout


def _open_page(cmd: list[str], env: dict) -> tuple[subprocess.Popen, str, list[str]]:
    """Start the app without files; return the process, the page address and what it printed."""
    proc = subprocess.Popen(cmd, env={**env, "PROTECT_NO_BROWSER": "1", "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 120:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "http://127.0.0.1:" in line:
            return proc, line[line.index("http://"):].strip(), lines
    proc.kill()
    raise AssertionError("".join(lines))


def _check_page(cmd: list[str], env: dict) -> list[str]:
    import urllib.error
    import urllib.request

    proc, url, lines = _open_page(cmd, env)
    try:
        import http.cookiejar

        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(url) as r:  # the token is traded for a cookie, then the page
            assert r.status == 200 and b"/static/app.js" in r.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url.split("?")[0])
        assert refused.value.code == 403
    finally:
        proc.terminate()
        proc.wait(10)
    return lines


def test_no_arguments_opens_the_page_and_announces_the_new_key(tmp_path):
    pytest.importorskip("starlette")
    lines = _check_page([sys.executable, str(ENTRY)], _env(tmp_path))
    text = "".join(lines)
    assert "Created your secret key" in text and str(tmp_path / "cfg" / "key") in text
    assert "The protect page is open in your browser" in text


def test_drop_announces_a_created_key_in_japanese(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    shutil.copy(SAMPLES / "pixel_palette.png", art)
    res = subprocess.run([sys.executable, str(ENTRY), str(art)], env=_env(tmp_path, PROTECT_LANG="ja"),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "秘密の鍵を作成しました" in res.stdout and "完了しました。1 枚を保護しました" in res.stdout


def test_drop_folder_protects_it_originals_untouched(tmp_path):
    res = _check_outputs([sys.executable, str(ENTRY)], tmp_path, _env(tmp_path))
    assert "strength 0.4" in res.stdout
    # the numba cache went to the per-user cache folder, not next to the sources
    assert any((tmp_path / "cache" / "numba").rglob("*.nbi"))


def test_settings_file_is_read(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "cli"))
    try:
        import protect_dragdrop as dd
    finally:
        sys.path.pop(0)
    (tmp_path / "protect.toml").write_text('strength = 0.2\nformat = "png"\ncolour = "red"\n')
    settings, problem = dd.load_settings(tmp_path)
    assert settings["strength"] == 0.2 and settings["format"] == "png"
    assert "colour" in problem
    (tmp_path / "protect.toml").write_text("strength = = 1")
    settings, problem = dd.load_settings(tmp_path)
    assert settings["strength"] is None and "could not be read" in problem  # None: the default strength


def test_shared_config_is_read_and_protect_toml_wins(tmp_path):
    sys.path.insert(0, str(ROOT / "cli"))
    try:
        import protect_dragdrop as dd
    finally:
        sys.path.pop(0)
    cfg = Path(os.environ["PROTECT_CONFIG_DIR"])
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.toml").write_text('strength = 0.7\nauthor = "Ann"\nvisible = "© Ann"\n', encoding="utf-8")
    settings, problem = dd.load_settings(tmp_path)
    assert settings["strength"] == 0.7 and settings["author"] == "Ann" and problem is None
    (tmp_path / "protect.toml").write_text("strength = 0.2\n")
    settings, _ = dd.load_settings(tmp_path)
    assert settings["strength"] == 0.2 and settings["visible"] == "© Ann"


@pytest.mark.slow
def test_frozen_app_builds_and_protects_samples(tmp_path):
    pytest.importorskip("PyInstaller")
    dist = tmp_path / "dist"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "cli" / "build.py"), "--dist", str(dist),
                    "--work", str(tmp_path / "work")], check=True, capture_output=True, timeout=1200)
    exe = dist / "protect-app" / ("protect-app.exe" if sys.platform == "win32" else "protect-app")
    size = sum(p.stat().st_size for p in exe.parent.rglob("*") if p.is_file() and not p.is_symlink())
    env = _env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))  # numba's per-user cache goes here
    env.pop("PYTHONPATH")
    t1 = time.perf_counter()
    _check_outputs([str(exe)], tmp_path, env)
    first = time.perf_counter() - t1
    shutil.rmtree(tmp_path / "art")
    shutil.rmtree(tmp_path / "art_protected")
    t2 = time.perf_counter()
    _check_outputs([str(exe)], tmp_path, env)
    cached = time.perf_counter() - t2
    t3 = time.perf_counter()
    assert any("protect page is open" in line for line in _check_page([str(exe)], env))
    page = time.perf_counter() - t3
    print(f"\nbuild {t1 - t0:.0f} s, bundle {size / 1e6:.0f} MB, samples: first run {first:.1f} s, "
          f"cached {cached:.1f} s; page served and stopped in {page:.1f} s")
    assert any((tmp_path / "xdg").rglob("*.nbi")) or sys.platform != "linux"
    assert cached < first
