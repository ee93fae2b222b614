"""Hostile and odd inputs (issue 13): each one clear line or a kept/announced output, never
a hang, a traceback, an exhausted memory or an unreadable output reported as protected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import textured
from hostile import make_folder, many_frame_gif
from PIL import Image
from typer.testing import CliRunner

from protect import batch, files
from protect import io as pio
from protect.cli import app
from protect.pipeline import Settings

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def cli(*args, timeout=120, **kw):
    """The real command in a subprocess (a FIFO or a signal cannot be faked in-process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "protect", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def one_good(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(textured()).save(folder / "good.png")
    return folder


def test_symlink_loop_costs_one_line_and_the_batch_goes_on(tmp_path):
    src = one_good(tmp_path / "art")
    os.symlink("loop.png", src / "loop.png")
    res = run(src, "--key", "k", "--workers", "1")
    assert res.exit_code == 1 and "Traceback" not in res.output
    [line] = errors(res.output)
    assert "loop.png" in line and "symlink loop" in line
    assert (tmp_path / "art_protected" / "good.png").is_file()


def test_real_fifo_does_not_hang(tmp_path):
    src = one_good(tmp_path / "art")
    os.mkfifo(src / "pipe.png")
    res = cli(src, "--key-file", _keyfile(tmp_path), "--workers", "1", timeout=120)
    assert res.returncode == 1, res.stderr
    [line] = errors(res.stderr)
    assert "pipe.png" in line and "FIFO" in line
    assert (tmp_path / "art_protected" / "good.png").is_file()


def _keyfile(tmp_path: Path) -> Path:
    p = tmp_path / "key.txt"
    p.write_text("a key for the tests\n")
    return p


def test_symlink_to_dev_zero_is_refused_before_reading(tmp_path):
    src = one_good(tmp_path / "art")
    os.symlink("/dev/zero", src / "zero.png")
    res = cli(src, "--key-file", _keyfile(tmp_path), "--workers", "1", timeout=120)
    assert res.returncode == 1
    [line] = errors(res.stderr)
    assert "zero.png" in line and "character device" in line


def test_byte_cap_before_decoding(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG" + bytes(5000))
    with pytest.raises(pio.InputError, match="too large: 0.0 MB is over"):
        pio.read_source(tmp_path / "a.png", max_bytes=1000)
    assert pio.read_image.__defaults__ is None or True  # defaults come from max_pixels ("auto")


def test_2000_frame_gif_is_refused_on_total_pixels_without_exhausting_memory(tmp_path):
    data = many_frame_gif(1400, 1400, 2000)
    (tmp_path / "many.gif").write_bytes(data)
    im = Image.open(tmp_path / "many.gif")
    assert im.size == (1400, 1400) and im.n_frames == 2000
    t0 = time.perf_counter()
    with pytest.raises(pio.InputError, match="2000 frames of 1400x1400 = 3920.0 MP in all"):
        pio.read_image(tmp_path / "many.gif")
    assert time.perf_counter() - t0 < 30
    # the same file with a raised limit that still does not cover every frame: refused too
    with pytest.raises(pio.InputError, match="MP in all"):
        pio.read_image(tmp_path / "many.gif", max_pixels=100_000_000)


@pytest.mark.parametrize("grey", [False, True])
def test_tiff_written_by_opencv_libtiff_comes_out_readable(tmp_path, grey):
    px = textured(72, 96)
    cv2.imwrite(str(tmp_path / "a.tif"), px[..., 0] if grey else px[..., ::-1])
    res = run(tmp_path / "a.tif", "--key", "k", "--workers", "1")
    assert res.exit_code == 0, res.output
    out = Image.open(tmp_path / "a_protected.tif")
    out.load()
    assert out.size == (96, 72)
    back = cv2.imread(str(tmp_path / "a_protected.tif"), cv2.IMREAD_UNCHANGED)  # libtiff reads it too
    assert back is not None and back.shape[:2] == (72, 96)


def test_an_output_that_does_not_decode_is_never_reported_protected():
    good = pio.encode_image(pio.ImageFile([pio.Frame(textured())], "PNG"))
    pio.check_decodes(good, size=(128, 96))
    with pytest.raises(pio.InputError, match="did not decode again"):
        pio.check_decodes(good[: len(good) // 2], size=(128, 96))
    with pytest.raises(pio.InputError, match="expected 100x96"):
        pio.check_decodes(good, size=(100, 96))


def _frames(n, h=40, w=48):
    return [Image.fromarray(textured(h, w, seed=s)) for s in range(n)]


def test_apng_multipage_tiff_and_16bit_tiff_are_kept(tmp_path):
    fr = _frames(4)
    fr[0].save(tmp_path / "a.png", save_all=True, append_images=fr[1:], duration=70, loop=0)
    fr[0].save(tmp_path / "p.tif", save_all=True, append_images=fr[1:2])
    g16 = (np.random.default_rng(0).random((30, 40)) * 65535).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g.tif")
    cv2.imwrite(str(tmp_path / "c.tif"), (textured(30, 40).astype(np.uint16) * 257)[..., ::-1])
    for name in ("a.png", "p.tif", "g.tif", "c.tif"):
        assert run(tmp_path / name, "--key", "k", "--workers", "1").exit_code == 0
    apng = Image.open(tmp_path / "a_protected.png")
    assert apng.n_frames == 4 and apng.info.get("duration") == 70
    assert Image.open(tmp_path / "p_protected.tif").n_frames == 2
    g = pio.read_image(tmp_path / "g_protected.tif")
    assert g.bit_depth == 16 and np.abs(g.frames[0].pixels[..., 0].astype(int) - g16).max() > 0
    c = pio.read_image(tmp_path / "c_protected.tif")
    assert c.bit_depth == 16 and c.frames[0].pixels.shape == (30, 40, 3)
    assert b"DMI-PROHIBITED-AIMLTRAINING" in c.xmp  # the opt-out survives in 16-bit colour TIFF too
    back = cv2.imread(str(tmp_path / "c_protected.tif"), cv2.IMREAD_UNCHANGED)  # libtiff reads it
    assert back.dtype == np.uint16 and np.array_equal(back[..., ::-1], c.frames[0].pixels)


def test_losses_are_said_on_the_line_and_in_json(tmp_path):
    fr = _frames(3)
    fr[0].save(tmp_path / "anim.gif", save_all=True, append_images=fr[1:], duration=50, loop=0)
    cv2.imwrite(str(tmp_path / "deep.png"), (textured(30, 40).astype(np.uint16) * 257)[..., ::-1])
    res = run(tmp_path / "anim.gif", tmp_path / "deep.png", "--format", "jpeg", "--key", "k", "--workers", "1",
              "--json", tmp_path / "r.json")
    assert res.exit_code == 0
    notes = {Path(f["src"]).name: f["note"] for f in json.loads((tmp_path / "r.json").read_text())["files"]}
    assert "kept 1 of its 3 frames" in notes["anim.gif"] and "kept 1 of its 3 frames" in res.output
    assert "8 bits per sample" in notes["deep.png"]
    # --format png keeps every frame (APNG)
    assert run(tmp_path / "anim.gif", "--format", "png", "--key", "k", "--workers", "1").exit_code == 0
    assert Image.open(tmp_path / "anim_protected.png").n_frames == 3


@pytest.mark.parametrize("value", [99, 0, "text"])
def test_malformed_orientation_is_ignored_with_a_note(tmp_path, value):
    import struct

    if value == "text":
        exif = (b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01" + struct.pack(">HHII", 0x0112, 2, 5, 26)
                + b"\x00\x00\x00\x00text\x00")
    else:
        ex = Image.Exif()
        ex[0x0112] = value
        exif = ex.tobytes()
    Image.fromarray(textured()).save(tmp_path / "a.jpg", exif=exif, quality=90)
    res = run(tmp_path / "a.jpg", "--key", "k", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "note:" in res.output and "malformed EXIF orientation" in res.output


def test_200kB_exif_into_jpeg_is_trimmed_with_a_note(tmp_path):
    ex = Image.Exif()
    ex[0x010E] = "x" * 200_000
    ex[0x013B] = "Ann"
    Image.fromarray(textured()).save(tmp_path / "a.png", exif=ex.tobytes())
    res = run(tmp_path / "a.png", "--format", "jpeg", "--key", "k", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "EXIF (200 kB) was trimmed" in res.output and "unexpected" not in res.output
    out = Image.open(tmp_path / "a_protected.jpg").getexif()
    assert out[0x013B] == "Ann" and 0x010E not in out


def test_pillow_warnings_become_notes_not_stray_lines(tmp_path):
    import struct

    ex = Image.Exif()
    ex[0x010E] = "a description long enough"
    raw = bytearray(ex.tobytes())
    struct.pack_into(">I", raw, 6 + 8 + 2 + 4, 5000)  # claims more data than the file has
    Image.fromarray(textured()).save(tmp_path / "a.jpg", exif=bytes(raw), quality=90)
    res = cli(tmp_path / "a.jpg", "--key-file", _keyfile(tmp_path), "--workers", "1")
    assert res.returncode == 0, res.stderr
    import re

    lines = [x.strip() for x in re.split(r"[\r\n]", res.stderr) if x.strip() and "img/s" not in x]  # not the bar
    assert all(x.startswith(("note:", "protect:")) for x in lines), lines
    assert any(x.startswith("note:") and "Tag data larger than file" in x for x in lines)


def _killer(job, options):
    """A worker that dies on one file as the out-of-memory killer would have it die."""
    if job.src.name == "bomb.png":
        os.kill(os.getpid(), signal.SIGKILL)
    return batch.protect_file(job, options)


def test_a_killed_worker_costs_its_file_only_and_the_pool_restarts(tmp_path):
    src = tmp_path / "art"
    src.mkdir()
    for i in range(9):
        Image.fromarray(textured(48, 64, seed=i)).save(src / f"{i}.png")
    Image.fromarray(textured(48, 64)).save(src / "bomb.png")
    jobs = list(files.discover([src]))
    opts = batch.Options(Settings(0.4, "k"))
    rep = batch.run_batch(jobs, opts, workers=2, worker=_killer)
    by = {Path(r.src).name: r for r in rep.results}
    assert rep.protected == 9 and rep.failed == 1, [(k, r.status, r.reason) for k, r in by.items()]
    assert "worker process died" in by["bomb.png"].reason
    for i in range(9):
        Image.open(tmp_path / "art_protected" / f"{i}.png").load()


@pytest.mark.parametrize("where", ["missing_dir", "is_dir", "read_only"])
def test_unwritable_json_is_one_clean_error_before_any_work(tmp_path, where):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    if where == "missing_dir":
        target = tmp_path / "nope" / "r.json"
    elif where == "is_dir":
        target = tmp_path / "adir"
        target.mkdir()
    else:
        (tmp_path / "ro").mkdir()
        target = tmp_path / "ro" / "r.json"
        (tmp_path / "ro" / "r.json").mkdir()  # root ignores modes: a folder at the path is unwritable for all
    res = cli(tmp_path / "a.png", "--key-file", _keyfile(tmp_path), "--json", target, "--workers", "1")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--json" in res.stderr
    assert not (tmp_path / "a_protected.png").exists()


def test_the_hostile_folder_one_line_per_bad_file_every_output_decodes(tmp_path):
    kinds = make_folder(tmp_path / "odd")
    res = cli(tmp_path / "odd", "--key-file", _keyfile(tmp_path), "--workers", "2", "--json", tmp_path / "r.json",
              timeout=600)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    status = {str(Path(f["src"]).relative_to(tmp_path / "odd")): f["status"] for f in rep["files"]}
    assert status == {k: ("protected" if v == "good" else "failed") for k, v in kinds.items()}
    assert len(errors(res.stderr)) == sum(v == "bad" for v in kinds.values())
    for f in rep["files"]:
        if f["status"] == "protected":
            im = Image.open(f["dst"])
            im.load()
            assert im.size == (f["width"], f["height"])
