"""Never lose or misreport an artist's file (issue 13): files protect did not write at
output paths, sources changed during the work, leftover temp files, long names."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from conftest import textured
from PIL import Image
from typer.testing import CliRunner

from protect import batch
from protect import io as pio
from protect.cli import app


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def report(path: Path) -> dict:
    return json.loads(path.read_text())


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def art(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(textured(seed=i)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("older", [True, False])
def test_user_file_at_output_path_is_never_replaced_nor_counted_up_to_date(tmp_path, older):
    """A copy of the original (older or newer than the source) sitting where the output goes."""
    src = art(tmp_path / "art")
    out = tmp_path / "art_protected"
    out.mkdir()
    mine = out / "0.png"
    mine.write_bytes((src / "0.png").read_bytes())  # an unprotected copy: the worst case
    t = (src / "0.png").stat().st_mtime + (-100 if older else 100)
    os.utime(mine, (t, t))
    before = mine.read_bytes()
    res = run(src, "--key", "k", "--workers", "1", "--json", tmp_path / "r.json")
    assert res.exit_code == 1
    assert mine.read_bytes() == before
    rep = report(tmp_path / "r.json")
    assert rep["protected"] == 1 and rep["failed"] == 1 and rep["skipped"] == 0
    [line] = errors(res.output)
    assert str(mine) in line and "did not write" in line and "--overwrite" in line
    res = run(src, "--key", "k", "--workers", "1", "--overwrite")
    assert res.exit_code == 0 and mine.read_bytes() != before
    assert run(src, "--key", "k", "--workers", "1").exit_code == 0  # now protect's own: up to date


def test_folder_in_the_way_is_an_error_even_with_overwrite(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.jpg")
    (tmp_path / "a_protected.jpg").mkdir()
    (tmp_path / "a_protected.jpg" / "keep.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        res = run(tmp_path / "a.jpg", "--key", "k", "--workers", "1", *extra)
        assert res.exit_code == 1 and "folder is in the way" in res.output
    assert (tmp_path / "a_protected.jpg" / "keep.txt").read_text() == "mine"


def test_output_edited_after_protect_wrote_it_is_not_ours_any_more(tmp_path):
    """Same size and mtime, other bytes: only the content hash can tell."""
    src = art(tmp_path / "art", 1)
    assert run(src, "--key", "k", "--workers", "1").exit_code == 0
    out = tmp_path / "art_protected" / "0.png"
    st = out.stat()
    data = bytearray(out.read_bytes())
    data[-20] ^= 0xFF
    out.write_bytes(bytes(data))
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = run(src, "--key", "k", "--workers", "1", "--strength", "0.5")
    assert res.exit_code == 1 and "did not write" in res.output
    assert out.read_bytes() == bytes(data)


def test_a_forged_record_is_not_trusted(tmp_path):
    src = art(tmp_path / "art", 1)
    assert run(src, "--key", "k", "--workers", "1").exit_code == 0
    out = tmp_path / "art_protected"
    (out / "0.png").write_bytes(b"the artist's own notes")
    state = out / batch.STATE_DIR / "state.json"
    doc = json.loads(state.read_text())
    rec = doc["entries"]["0.png"]
    st = (out / "0.png").stat()
    rec["dst"] = [st.st_size, st.st_mtime_ns]
    rec["sha256"] = batch.sha256_file(out / "0.png")  # mac left as it was: it no longer matches
    state.write_text(json.dumps(doc))
    res = run(src, "--key", "k", "--workers", "1", "--strength", "0.6")
    assert res.exit_code == 1 and (out / "0.png").read_bytes() == b"the artist's own notes"


def test_state_and_secret_are_private_and_hold_no_key_digest(tmp_path):
    src = art(tmp_path / "art", 1)
    assert run(src, "--key", "testkey", "--workers", "1").exit_code == 0
    folder = tmp_path / "art_protected" / batch.STATE_DIR
    for name in ("state.json", "secret"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    text = (folder / "state.json").read_text()
    import hashlib

    for digest in (hashlib.sha256(b"testkey").hexdigest(), batch._key_id("testkey"), "testkey"):
        assert digest[:16] not in text


def test_source_saved_over_during_the_work_is_not_written_nor_recorded(tmp_path, monkeypatch):
    src = art(tmp_path / "art", 1)
    real = batch.protect_image

    def artist_saves_meanwhile(pixels, *a, **k):
        if pixels.shape[0] > 16:  # not the kernels' warm-up
            Image.fromarray(textured(seed=9)).save(src / "0.png")  # the artist saves a new version
        return real(pixels, *a, **k)

    monkeypatch.setattr(batch, "protect_image", artist_saves_meanwhile)
    res = run(src, "--key", "k", "--workers", "1")
    assert res.exit_code == 1 and "source changed while protect worked" in res.output
    assert not (tmp_path / "art_protected" / "0.png").exists()
    monkeypatch.setattr(batch, "protect_image", real)
    res = run(src, "--key", "k", "--workers", "1", "--json", tmp_path / "r.json")
    assert res.exit_code == 0 and report(tmp_path / "r.json")["protected"] == 1


def test_read_source_refuses_a_file_that_changes_while_read(tmp_path, monkeypatch):
    p = tmp_path / "a.png"
    p.write_bytes(b"x" * 1000)
    real = os.read
    calls = []

    def read_and_touch(fd, n):
        data = real(fd, n)
        if not calls:
            calls.append(n)
            with open(p, "ab") as f:
                f.write(b"more")
        return data

    monkeypatch.setattr(os, "read", read_and_touch)
    with pytest.raises(pio.InputError, match="changed while being read"):
        pio.read_source(p)


def test_leftover_temp_files_of_a_killed_write_are_cleaned_only_ours(tmp_path):
    src = art(tmp_path / "art", 2)
    out = tmp_path / "art_protected"
    assert run(src, "--key", "k", "--workers", "1").exit_code == 0
    # what a kill during os.write leaves: a hidden full-size temp file named by atomic_write_bytes
    fd, leftover = tempfile.mkstemp(prefix=pio._temp_prefix("1.png"), suffix=pio.TEMP_SUFFIX, dir=out)
    os.write(fd, (out / "1.png").read_bytes())
    os.close(fd)
    users = [out / ".notes.protect-tmp", out / "draft.protect-tmp.png", out / ".x.12345678.protect-tmp.bak"]
    for p in users:
        p.write_text("the artist's")
    (out / "1.png").unlink()
    assert run(src, "--key", "k", "--workers", "1").exit_code == 0
    assert not Path(leftover).exists()
    assert all(p.read_text() == "the artist's" for p in users)


def test_255_byte_file_name(tmp_path):
    name = "n" * 251 + ".png"
    assert len(name.encode()) == 255
    src = tmp_path / "art"
    src.mkdir()
    Image.fromarray(textured()).save(src / name)
    res = run(src, "--key", "k", "--workers", "1")
    assert res.exit_code == 0, res.output
    Image.open(tmp_path / "art_protected" / name).load()
    # a single file gets "_protected" added: too long for the file system, one clear line
    res = run(src / name, "--key", "k", "--workers", "1")
    assert res.exit_code == 1 and "name is too long" in errors(res.output)[0]


def test_a_file_written_at_the_output_path_during_the_work_is_not_replaced(tmp_path, monkeypatch):
    """Between planning and writing something else puts a file there: kept; the same bytes
    (this job's own output, from a worker killed before it reported) are fine."""
    src = art(tmp_path / "art", 1)
    out = tmp_path / "art_protected" / "0.png"
    real = batch.protect_image

    def someone_writes_meanwhile(pixels, *a, **k):
        if pixels.shape[0] > 16:  # not the kernels' warm-up
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(b"another program's file")
        return real(pixels, *a, **k)

    monkeypatch.setattr(batch, "protect_image", someone_writes_meanwhile)
    res = run(src, "--key", "k", "--workers", "1")
    assert res.exit_code == 1 and "something else wrote" in res.output
    assert out.read_bytes() == b"another program's file"
    monkeypatch.setattr(batch, "protect_image", real)
    out.unlink()
    assert run(src, "--key", "k", "--workers", "1", "--out", tmp_path / "ref").exit_code == 0
    expected = (tmp_path / "ref" / "0.png").read_bytes()

    def own_output_meanwhile(pixels, *a, **k):
        if pixels.shape[0] > 16:
            out.write_bytes(expected)
        return real(pixels, *a, **k)

    monkeypatch.setattr(batch, "protect_image", own_output_meanwhile)
    res = run(src, "--key", "k", "--workers", "1")
    assert res.exit_code == 0, res.output
