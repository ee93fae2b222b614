"""protect.protect_bytes: encoded bytes in, encoded bytes out, the same bytes ``protect FILE`` writes."""

from __future__ import annotations

import io
import sys
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import protect
from protect import io as pio
from protect.batch import Options
from protect.pipeline import Settings

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
IMAGES = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in pio.EXTENSIONS)


def test_same_bytes_as_the_command_line_for_every_sample(tmp_path):
    res = subprocess.run([sys.executable, "-m", "protect", str(SAMPLES), "--out", str(tmp_path / "cli"),
                          "--key", "bytes-key", "--workers", "1", "-q"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert len(IMAGES) == 8
    for src in IMAGES:
        out, report = protect.protect_bytes(src.read_bytes(), Settings(strength=0.4), key="bytes-key")
        assert out == (tmp_path / "cli" / src.name).read_bytes(), src.name
        again, _ = protect.protect_bytes(src.read_bytes(), Settings(strength=0.4, key="bytes-key"))
        assert again == out  # deterministic, key given either way
        assert report.status == "protected" and report.out_bytes == len(out) and report.in_bytes == src.stat().st_size
        assert report.width and report.height
        if src.name == "pixel_palette.png":  # palette pixel art is left unchanged, with a note (issue 12)
            assert report.psnr is None and "left unchanged" in (report.note or "")
        else:
            assert report.psnr > 30


def test_format_and_metadata_kept():
    src = SAMPLES / "painting_orient_icc.jpg"
    before = Image.open(io.BytesIO(src.read_bytes()))
    out, _ = protect.protect_bytes(src.read_bytes(), Settings(), key="k")
    after = Image.open(io.BytesIO(out))
    assert after.format == "JPEG" and after.info.get("icc_profile") == before.info.get("icc_profile")
    assert b"DMI-PROHIBITED-AIMLTRAINING" in out  # the opt-out XMP, as protect FILE writes it
    png16 = (SAMPLES / "painting_16bit.png").read_bytes()
    out16, _ = protect.protect_bytes(png16, Options(Settings(), format="png"), key="k")
    assert pio.decode_image(out16).bit_depth == 16


def test_key_from_environment_and_errors(monkeypatch):
    data = (SAMPLES / "comic_text.png").read_bytes()
    with pytest.raises(ValueError, match="needs a key"):
        protect.protect_bytes(data, Settings())
    monkeypatch.setenv("PROTECT_KEY", "env-key")
    assert protect.protect_bytes(data)[0] == protect.protect_bytes(data, key="env-key")[0]
    assert protect.protect_bytes(data)[0] != protect.protect_bytes(data, key="other")[0]
    with pytest.raises(pio.InputError, match="not an image"):
        protect.protect_bytes(b"hello", key="k")
