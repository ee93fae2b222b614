"""The artist key (issue 13): never empty, created atomically and exclusively in a 0700
folder, not on the command line unwarned, and movable (protect key path|show|export|import)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import textured
from PIL import Image
from typer.testing import CliRunner

from protect import userdirs
from protect.cli import app

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env, input=input)


def keyfile() -> Path:
    return Path(os.environ["PROTECT_CONFIG_DIR"]) / "key"


@pytest.mark.parametrize("content", ["", "   \n", "\n\n"])
def test_empty_or_blank_key_file_is_refused(tmp_path, content):
    keyfile().parent.mkdir(parents=True)
    keyfile().write_text(content)
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = run(tmp_path / "a.png", "--workers", "1")
    assert res.exit_code == 2 and "is empty" in res.output and str(keyfile()) in res.output
    assert not (tmp_path / "a_protected.png").exists()
    (tmp_path / "k").write_text(content)
    res = run(tmp_path / "a.png", "--key-file", tmp_path / "k", "--workers", "1")
    assert res.exit_code == 2 and "is empty" in res.output
    res = run(tmp_path / "a.png", "--workers", "1", env={"PROTECT_KEY": content or " "})
    assert res.exit_code == 2 and "PROTECT_KEY" in res.output


def test_unreadable_key_file_is_a_clear_error(tmp_path):
    keyfile().mkdir(parents=True)  # a folder where the key should be: unreadable even for root
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = run(tmp_path / "a.png", "--workers", "1")
    assert res.exit_code == 2 and "cannot read the key file" in res.output and "Traceback" not in res.output


def test_key_creation_is_atomic_exclusive_and_private_whatever_the_umask(tmp_path):
    """Six simultaneous first runs (real processes), umask 0: one key, the same for all."""
    cfg = tmp_path / "cfg"
    code = ("import importlib.util as u, os, sys; os.umask(0);"  # userdirs alone (stdlib only): fast starts
            "s = u.spec_from_file_location('userdirs', sys.argv[1]);"
            "m = sys.modules['userdirs'] = u.module_from_spec(s);"
            "s.loader.exec_module(m); r = m.resolve_key(); print(r.key, r.created is not None)")
    env = {**os.environ, "PROTECT_CONFIG_DIR": str(cfg)}
    argv = [sys.executable, "-c", code, str(ROOT / "src" / "protect" / "userdirs.py")]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({o[0] for o in outs}) == 1 and len(outs[0][0]) >= 40
    assert [o[1] for o in outs].count("True") == 1  # exactly one created it
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o700
    assert stat.S_IMODE((cfg / "key").stat().st_mode) == 0o600
    assert sorted(p.name for p in cfg.iterdir()) == ["key"]  # no temp files left


def test_a_failed_write_leaves_no_key_file(tmp_path, monkeypatch):
    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", lambda fd: full_disk(fd, b""))
    with pytest.raises(userdirs.KeyProblem, match="No space left"):
        userdirs.resolve_key()
    assert not keyfile().exists() and list(keyfile().parent.iterdir()) == []


def test_key_on_the_command_line_warns_key_file_and_env_do_not(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    (tmp_path / "k.txt").write_text("sekrit\n")
    res = run(tmp_path / "a.png", "--key", "sekrit", "--out", tmp_path / "o1", "--workers", "1")
    assert res.exit_code == 0 and "warning: --key is visible" in res.output and "ps" in res.output
    res = run(tmp_path / "a.png", "--key-file", tmp_path / "k.txt", "--out", tmp_path / "o2", "--workers", "1")
    assert res.exit_code == 0 and "warning" not in res.output
    res = run(tmp_path / "a.png", "--out", tmp_path / "o3", "--workers", "1", env={"PROTECT_KEY": "sekrit"})
    assert res.exit_code == 0 and "warning" not in res.output
    a, b, c = ((tmp_path / d / "a.png").read_bytes() for d in ("o1", "o2", "o3"))
    assert a == b == c  # the same key by all three routes
    assert "sekrit" not in res.output


def test_key_path_show_export_import_roundtrip(tmp_path, monkeypatch):
    assert run("key", "path").output.strip() == str(keyfile())
    assert run("key", "show").exit_code == 1  # no key yet
    Image.fromarray(textured()).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", "--workers", "1").exit_code == 0  # makes the key
    key = keyfile().read_text().strip()
    assert run("key", "show").output.strip() == key
    res = run("key", "export", tmp_path / "backup.key")
    assert res.exit_code == 0 and stat.S_IMODE((tmp_path / "backup.key").stat().st_mode) == 0o600
    assert run("key", "export", tmp_path / "backup.key").exit_code == 1  # never overwrites
    # a new computer: another config folder, import the backup, same outputs
    monkeypatch.setenv("PROTECT_CONFIG_DIR", str(tmp_path / "newpc"))
    res = run("key", "import", tmp_path / "backup.key")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "newpc" / "key").read_text().strip() == key
    assert stat.S_IMODE((tmp_path / "newpc").stat().st_mode) == 0o700
    # a different key is not replaced without --force, and the old one is kept
    (tmp_path / "other.key").write_text("another key\n")
    assert run("key", "import", tmp_path / "other.key").exit_code == 1
    assert run("key", "import", tmp_path / "other.key", "--force").exit_code == 0
    assert (tmp_path / "newpc" / "key").read_text().strip() == "another key"
    [old] = (tmp_path / "newpc").glob("key.old-*")
    assert old.read_text().strip() == key
    (tmp_path / "empty.key").write_text("\n")
    assert run("key", "import", tmp_path / "empty.key", "--force").exit_code == 1
    res = run("key", "import", "-", "--force", input="from stdin\n")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "newpc").glob("key.old-*"))) == 2
    assert (tmp_path / "newpc" / "key").read_text().strip() == "from stdin"
