"""Image I/O round trips: every case protect promises to keep, and bad inputs."""

from __future__ import annotations

import io
import os
import zlib

import cv2
import numpy as np
import pytest
from conftest import textured
from PIL import Image, ImageCms, JpegImagePlugin

from protect import Settings, protect_image
from protect import io as pio


def _protect_roundtrip(src_path, dst_path, fmt=None):
    img = pio.read_image(src_path)
    frames = []
    for fr in img.frames:
        out, _ = protect_image(fr.pixels, Settings(0.8, "k"), alpha=fr.alpha)
        frames.append(pio.Frame(out, fr.alpha, fr.duration))
    pio.write_image(dst_path, pio.with_frames(img, frames), format=fmt)
    return img, pio.read_image(dst_path)


@pytest.fixture
def srgb_icc():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_rgba_png_alpha_bytes_identical(tmp_path):
    rgba = np.dstack([textured(), np.random.default_rng(0).integers(0, 256, (96, 128), dtype=np.uint8)])
    rgba[:, :10, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    before, after = _protect_roundtrip(tmp_path / "a.png", tmp_path / "b.png")
    np.testing.assert_array_equal(after.frames[0].alpha, rgba[..., 3])
    np.testing.assert_array_equal(after.frames[0].pixels[:, :10], rgba[:, :10, :3])  # alpha 0: untouched
    assert not np.array_equal(after.frames[0].pixels, rgba[..., :3])


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
def test_icc_profile_and_dpi_kept(tmp_path, srgb_icc, ext):
    Image.fromarray(textured()).save(tmp_path / f"a{ext}", icc_profile=srgb_icc, dpi=(300, 300))
    _, after = _protect_roundtrip(tmp_path / f"a{ext}", tmp_path / f"b{ext}")
    assert after.icc_profile == srgb_icc
    if ext != ".webp":
        assert after.dpi is not None and round(after.dpi[0]) == 300


def test_exif_orientation_applied_and_reset_other_tags_kept(tmp_path):
    stored = textured(64, 96)  # stored 96 wide x 64 high; orientation 6 displays it 64 x 96
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "a description"
    Image.fromarray(stored).save(tmp_path / "a.jpg", exif=exif.tobytes(), quality=95)
    img = pio.read_image(tmp_path / "a.jpg")
    assert (img.width, img.height) == (64, 96)
    shown = np.asarray(Image.open(tmp_path / "a.jpg").transpose(Image.Transpose.ROTATE_270))
    np.testing.assert_array_equal(img.frames[0].pixels, shown)
    _, after = _protect_roundtrip(tmp_path / "a.jpg", tmp_path / "b.jpg")
    out = Image.open(tmp_path / "b.jpg")
    assert out.size == (64, 96)
    assert out.getexif()[0x0112] == 1
    assert out.getexif()[0x010E] == "a description"


def test_sixteen_bit_png_stays_sixteen_bit_with_metadata(tmp_path, srgb_icc):
    rng = np.random.default_rng(0)
    rgb16 = (textured().astype(np.uint16) * 257 + rng.integers(0, 200, (96, 128, 3))).astype(np.uint16)
    ok, buf = cv2.imencode(".png", rgb16[..., ::-1])
    data = pio.png_insert_chunks(buf.tobytes(), [(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(srgb_icc))])
    (tmp_path / "a.png").write_bytes(data)
    before, after = _protect_roundtrip(tmp_path / "a.png", tmp_path / "b.png")
    np.testing.assert_array_equal(before.frames[0].pixels, rgb16)
    assert after.bit_depth == 16
    back = cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (96, 128, 3)
    assert after.icc_profile == srgb_icc
    assert Image.open(tmp_path / "b.png").info.get("icc_profile") == srgb_icc  # other readers see it


def test_sixteen_bit_grey_png(tmp_path):
    g16 = (textured(channels=1)[..., 0].astype(np.uint16) * 257 + 3).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), g16)
    _, after = _protect_roundtrip(tmp_path / "g.png", tmp_path / "h.png")
    assert after.frames[0].pixels.shape == (96, 128, 1) and after.bit_depth == 16


def test_greyscale_stays_greyscale(tmp_path):
    Image.fromarray(textured(channels=1)[..., 0], "L").save(tmp_path / "g.png")
    _, after = _protect_roundtrip(tmp_path / "g.png", tmp_path / "h.png")
    assert Image.open(tmp_path / "h.png").mode == "L"
    assert after.frames[0].pixels.shape[2] == 1


def test_palette_png_becomes_rgba(tmp_path):
    p = Image.fromarray((textured(channels=1)[..., 0] // 32).astype(np.uint8), "P")
    p.putpalette([i * 30 % 256 for i in range(24)])
    p.save(tmp_path / "p.png", transparency=0)
    _, after = _protect_roundtrip(tmp_path / "p.png", tmp_path / "q.png")
    assert Image.open(tmp_path / "q.png").mode == "RGBA"


def test_jpeg_written_at_q95_444(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.jpg", quality=80)
    _protect_roundtrip(tmp_path / "a.jpg", tmp_path / "b.jpg")
    out = Image.open(tmp_path / "b.jpg")
    assert JpegImagePlugin.get_sampling(out) == 0  # 4:4:4
    q = out.quantization[0]
    ref = io.BytesIO()
    Image.fromarray(textured()).save(ref, "JPEG", quality=95)
    assert q == Image.open(ref).quantization[0]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_frames_durations_loop_kept(tmp_path, fmt):
    frames = [Image.fromarray(textured(seed=i)) for i in range(3)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[80, 120, 200], loop=3,
                   **({"lossless": True} if fmt == "WEBP" else {}))
    before, after = _protect_roundtrip(path, tmp_path / f"out.{fmt.lower()}")
    assert len(after.frames) == 3
    assert [f.duration for f in after.frames] == [80, 120, 200]
    assert after.loop == 3
    assert any(not np.array_equal(a.pixels, b.pixels) for a, b in zip(before.frames, after.frames, strict=False))


def test_format_conversion_composites_alpha_on_white_for_jpeg(tmp_path):
    rgba = np.dstack([textured(), np.full((96, 128), 255, np.uint8)])
    rgba[:, :20, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    _, after = _protect_roundtrip(tmp_path / "a.png", tmp_path / "a.jpg", fmt="jpeg")
    assert after.format == "JPEG" and after.frames[0].alpha is None
    assert after.frames[0].pixels[:, :16].min() >= 250


# ----------------------------------------------------------------- bad inputs


def _bad(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_bad_inputs_give_one_line_reasons(tmp_path):
    good = io.BytesIO()
    Image.fromarray(textured(200, 200)).save(good, "PNG")
    cases = {
        "empty.png": (b"", "empty file"),
        "notes.png": (b"this is not an image at all\n" * 4, "not an image"),
        "truncated.png": (good.getvalue()[: len(good.getvalue()) // 2], "truncated"),
    }
    for name, (data, words) in cases.items():
        with pytest.raises(pio.InputError) as exc:
            pio.read_image(_bad(tmp_path, name, data))
        assert words in str(exc.value) and "\n" not in str(exc.value), name


def test_unsupported_mode_is_refused(tmp_path):
    Image.new("CMYK", (16, 16), (0, 50, 100, 0)).save(tmp_path / "c.jpg")
    with pytest.raises(pio.InputError, match="unsupported colour mode CMYK"):
        pio.read_image(tmp_path / "c.jpg")


def test_too_large_is_refused_unless_limit_raised(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    with pytest.raises(pio.InputError, match="too large.*--max-pixels"):
        pio.read_image(tmp_path / "a.png", max_pixels=1000)
    assert pio.read_image(tmp_path / "a.png", max_pixels=96 * 128).width == 128


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    dst = tmp_path / "out.png"
    dst.write_bytes(b"previous output")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        pio.atomic_write_bytes(dst, b"new data")
    assert dst.read_bytes() == b"previous output"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_written_files_have_normal_permissions(tmp_path):
    pio.atomic_write_bytes(tmp_path / "x.bin", b"1")
    mode = (tmp_path / "x.bin").stat().st_mode & 0o777
    assert mode == 0o666 & ~pio.UMASK


def test_max_pixels_governs_not_pillows_own_bomb_limit(tmp_path, monkeypatch):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would call this a bomb (> 2x limit)
    assert pio.read_image(tmp_path / "a.png", max_pixels=10**6).width == 128
    with pytest.raises(pio.InputError, match="--max-pixels"):
        pio.read_image(tmp_path / "a.png", max_pixels=5000)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored
