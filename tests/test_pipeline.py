"""protect_image: determinism, strength, masks, dtypes, tiling, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import textured

from protect import Settings, protect_image
from protect import pipeline as pl
from protect.arrays import ImageArrayError
from protect.metrics import psnr


def test_deterministic_for_image_key_strength():
    img = textured()
    a, _ = protect_image(img, Settings(0.4, "alice"))
    b, _ = protect_image(img.copy(), Settings(0.4, "alice"))
    np.testing.assert_array_equal(a, b)


def test_key_and_content_change_the_noise():
    img = textured()
    a, _ = protect_image(img, Settings(0.4, "alice"))
    b, _ = protect_image(img, Settings(0.4, "bob"))
    assert not np.array_equal(a, b)
    other = img.copy()
    other[0, 0, 0] ^= 1  # one bit of content changes the whole noise field
    c, _ = protect_image(other, Settings(0.4, "alice"))
    d_a = a.astype(int) - img
    d_c = c.astype(int) - other
    assert np.mean(d_a[:, 70:] == d_c[:, 70:]) < 0.9


def test_strength_zero_is_identity_and_input_untouched():
    img = textured()
    before = img.copy()
    out, rep = protect_image(img, Settings(0.0, "k"))
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(img, before)
    assert rep.psnr == float("inf")
    protect_image(img, Settings(1.0, "k"))
    np.testing.assert_array_equal(img, before)


def test_strength_is_monotonic():
    img = textured(128, 160)
    strengths = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.85, 1.0]
    p = [psnr(img, protect_image(img, Settings(s, "k"))[0], data_range=255) for s in strengths]
    assert all(x > y for x, y in zip(p, p[1:], strict=False)), p
    mad = [np.abs(protect_image(img, Settings(s, "k"))[0].astype(int) - img).mean() for s in strengths]
    assert all(x < y for x, y in zip(mad, mad[1:], strict=False)), mad


def test_flat_fill_and_gradient_stay_clean_texture_gets_noise():
    img = textured(96, 128)
    ramp = np.linspace(60, 190, 128)[None, :, None]
    img[:48] = np.repeat(np.repeat(ramp, 48, 0), 3, 2).astype(np.uint8)  # smooth gradient band
    img[48:, :64] = 200  # flat fill (no lines)
    out, rep = protect_image(img, Settings(1.0, "k", "texture"))
    diff = np.abs(out.astype(int) - img)
    assert diff[:40].max() == 0, "gradient must stay untouched (rows beyond the mask window)"
    assert diff[56:, :50].max() == 0, "flat fill must stay untouched"
    assert diff[56:, 72:].mean() > 1.0, "texture must get the noise"
    assert 0.1 < rep.coverage < 0.6


#: Keys over which the properties that involve a noise field are checked (not one lucky key).
KEYS = [f"key-{i}" for i in range(8)]


@pytest.mark.parametrize("method", pl.METHODS)
def test_alpha_zero_gets_no_noise_and_alpha_is_not_changed(method):
    img = textured()
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:, 100:] = 0
    alpha_before = alpha.copy()
    for key in KEYS:
        out, _ = protect_image(img, Settings(1.0, key, method), alpha=alpha)
        np.testing.assert_array_equal(out[:, 100:], img[:, 100:])
        # the opaque texture gets the noise, whatever the key (measured 8.1-8.9 over 31 keys, adversarial)
        assert np.abs(out[:, 64:100].astype(int) - img[:, 64:100]).mean() > 1.0, key
        np.testing.assert_array_equal(alpha, alpha_before)


def test_region_mask_controls_where_noise_goes():
    img = textured()
    region = np.zeros(img.shape[:2], np.uint8)
    region[:48] = 255
    out, _ = protect_image(img, Settings(1.0, "k", "texture"), region=region)
    np.testing.assert_array_equal(out[48:], img[48:])
    assert np.abs(out[:48, 64:].astype(int) - img[:48, 64:]).mean() > 1.0


def test_sixteen_bit_and_grey_keep_dtype_and_shape():
    img16 = textured().astype(np.uint16) * 257
    out, _ = protect_image(img16, Settings(0.6, "k"))
    assert out.dtype == np.uint16 and out.shape == img16.shape
    changed = out != img16
    assert changed.any()
    assert np.any((out[changed] % 257) != 0), "noise must use the 16-bit precision"
    grey = textured(channels=1)
    g_out, _ = protect_image(grey, Settings(0.6, "k"))
    assert g_out.shape == grey.shape and g_out.dtype == np.uint8 and (g_out != grey).any()


@pytest.mark.parametrize("stripe", [8, 24, 40])
def test_stripes_reproduce_the_whole_image(stripe):
    img = textured(101, 77, seed=5)
    whole, _ = protect_image(img, Settings(0.7, "k"), stripe_rows=4096)
    tiled, _ = protect_image(img, Settings(0.7, "k"), stripe_rows=stripe)
    np.testing.assert_array_equal(whole, tiled)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(pixels=np.zeros((8, 8, 3), np.float32)),
        dict(pixels=[[[0, 0, 0]]]),
        dict(pixels=np.zeros((8, 8), np.uint8)),
        dict(pixels=np.zeros((8, 8, 4), np.uint8)),
        dict(pixels=np.zeros((0, 8, 3), np.uint8)),
        dict(alpha=np.zeros((4, 4), np.uint8)),
        dict(region=np.zeros((9, 8), np.uint8)),
    ],
)
def test_validation(kwargs):
    # one exception type for every bad array (a ValueError), with the array named
    args = dict(pixels=np.zeros((8, 8, 3), np.uint8), alpha=None, region=None) | kwargs
    with pytest.raises(ImageArrayError) as exc:
        protect_image(args.pop("pixels"), Settings(0.4, "k"), **args)
    assert isinstance(exc.value, ValueError)
    assert next(iter(kwargs)).replace("region", "region mask") in str(exc.value)


@pytest.mark.parametrize("s", [-0.1, 1.01, float("nan"), "0.4"])
def test_settings_reject_bad_strength(s):
    with pytest.raises(ValueError):
        Settings(s, "k")


def test_count_colours_kernel_matches_numpy_and_stops_early():
    from protect.kernels import stats

    rng = np.random.default_rng(11)
    pal = rng.integers(0, 256, (9, 3), dtype=np.uint8)
    img = pal[rng.integers(0, 9, (40, 50))]
    none = np.ones((1, 1), np.uint8)
    assert stats.count_colours_kernel(img, none, 64) == len(np.unique(img.reshape(-1, 3), axis=0))
    alpha = np.full((40, 50), 255, np.uint8)
    alpha[img[..., 0] == pal[0, 0]] = 0  # colours seen only under alpha 0 do not count
    expect = len(np.unique(img[alpha > 0].reshape(-1, 3), axis=0))
    assert stats.count_colours_kernel(img, alpha, 64) == expect
    busy = rng.integers(0, 65536, (30, 30, 3), dtype=np.uint16)
    assert stats.count_colours_kernel(busy, none, 64) == 65  # stops at limit + 1


def test_palette_images_are_left_unchanged_with_a_note():
    from protect import io as pio

    img = pio.read_image(Path(__file__).resolve().parents[1] / "samples" / "pixel_palette.png")
    px = img.frames[0].pixels
    assert img.palette  # an indexed-colour PNG
    out, rep = pl.protect_image(px, pl.Settings(0.4, "k"), keep_palette=True)
    np.testing.assert_array_equal(out, px)
    assert rep.note and "colours" in rep.note
    # the same pixels from a true-colour file are protected: few colours alone do not make pixel art
    out0, rep0 = pl.protect_image(px, pl.Settings(0.4, "k"))
    assert rep0.note is None and not np.array_equal(out0, px)
    # one more colour than the limit, and it is protected as usual
    rng = np.random.default_rng(12)
    many = rng.integers(0, 256, (pl.PALETTE_MAX_COLOURS + 1, 3), dtype=np.uint8)
    assert len(np.unique(many, axis=0)) == pl.PALETTE_MAX_COLOURS + 1
    cells = np.arange(16 * 16).reshape(16, 16) % len(many)  # every colour, in 3 px cells
    tiles = np.ascontiguousarray(np.repeat(np.repeat(many[cells], 3, 0), 3, 1))
    out2, rep2 = pl.protect_image(tiles, pl.Settings(0.4, "k"), keep_palette=True)
    assert rep2.note is None and not np.array_equal(out2, tiles)
    # a bilevel engraving (grey, 2 levels) is protected: few levels, but not a palette
    ink = np.where(rng.random((64, 64)) < 0.3, 0, 255).astype(np.uint8)
    for grey in (ink[..., None], np.repeat(ink[..., None], 3, axis=2)):
        out3, rep3 = pl.protect_image(np.ascontiguousarray(grey), pl.Settings(0.4, "k"), keep_palette=True)
        assert rep3.note is None and not np.array_equal(out3, grey)
