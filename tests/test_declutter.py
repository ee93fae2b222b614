"""Declutter attacks: each behaves as its docstring says, on synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import textured

import reference as ref
from protect.arrays import ImageArrayError
from protect import declutter
from protect.declutter import ATTACKS, apply_attack, apply_geometry, apply_region


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_attack_keeps_dtype_layout_and_input(name, channels):
    img = textured(61, 83, seed=1, channels=channels)
    before = img.copy()
    out = apply_attack(name, img, seed=3)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == channels
    if name == "resize_half":
        assert out.shape[:2] == (round(61 / 2), round(83 / 2))
    else:
        assert out.shape == img.shape
    np.testing.assert_array_equal(img, before)
    # 2-D grey arrays are accepted and stay 2-D
    assert apply_attack(name, img[..., 0], seed=3).ndim == 2


@pytest.mark.parametrize("name", ["jpeg90", "jpeg75", "jpeg50", "repost", "blur1", "median3",
                                  "bilateral", "nlmeans", "adverse_cleaner", "resize_half_restore", "crop90"])
def test_flat_image_stays_flat(name):
    flat = np.full((64, 80, 3), (180, 120, 60), np.uint8)
    out = apply_attack(name, flat)
    # JPEG's colour conversion may move a flat colour by a level or two, never unevenly
    assert np.ptp(out.reshape(-1, 3), axis=0).max() == 0
    assert np.abs(out.astype(int) - flat).max() <= 2


def test_webp_keeps_flat_colour_close():
    flat = np.full((64, 80, 3), (180, 120, 60), np.uint8)
    out = apply_attack("webp80", flat).astype(int)
    # libwebp's lossy path (4:2:0 YUV with its own rounding) wobbles flat colour by a few levels
    assert np.abs(out - flat).max() <= 6
    assert out.reshape(-1, 3).std(axis=0).max() < 2.0


def test_jpeg_quality_orders_error():
    img = textured(96, 128, seed=2)
    errs = [np.abs(apply_attack(n, img).astype(int) - img).mean() for n in ("jpeg90", "jpeg75", "jpeg50")]
    assert errs[0] < errs[1] < errs[2]


@pytest.mark.parametrize("cg", [1, 3])
def test_guided_filter_matches_pixel_by_pixel_reference(cg):
    rng = np.random.default_rng(4)
    guide = rng.uniform(0, 255, (14, 17, cg)).astype(np.float32)
    guide[:, 8:] += 60  # an edge
    src = (guide[..., :1] * 0.5 + rng.normal(0, 6, (14, 17, 1))).astype(np.float32)
    src = np.concatenate([src, src[:, ::-1] * 0.3], axis=2)
    got = declutter.guided_filter(guide, src, radius=2, eps=16.0)
    want = ref.guided_filter(guide, src, 2, 16.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-2)


def test_adverse_cleaner_smooths_weak_noise_keeps_strong_edges():
    rng = np.random.default_rng(5)
    img = np.full((64, 64, 3), 60.0)
    img[:, 32:] = 200.0
    noisy = np.clip(np.rint(img + rng.normal(0, 2.0, img.shape)), 0, 255).astype(np.uint8)
    out = apply_attack("adverse_cleaner", noisy).astype(float)
    interior = (slice(8, 56), slice(4, 24))
    assert out[interior].std() < 0.5 * noisy[interior].astype(float).std()
    # the edge stays a step: one column apart, the full contrast is there
    assert out[:, 30].mean() < 70 and out[:, 33].mean() > 190


def test_noisy_upscale_is_seeded_and_its_noise_cancels_in_differences():
    img = textured(48, 64, seed=6)
    a = apply_attack("noisy_upscale", img, seed=1)
    assert np.array_equal(a, apply_attack("noisy_upscale", img, seed=1))
    assert not np.array_equal(a, apply_attack("noisy_upscale", img, seed=2))
    # away from clipping, a same-seed difference of two images is the resampled difference
    base = np.full((48, 64, 3), 128, np.uint8)
    bumped = base.copy()
    bumped[20:28, 30:38] += 20
    diff = apply_attack("noisy_upscale", bumped, seed=9).astype(int) - apply_attack("noisy_upscale", base, seed=9)
    assert np.abs(diff[:, :20]).max() <= 1  # far from the bump: no difference
    assert diff[24, 34].mean() > 10


def test_median_removes_isolated_pixel_and_blur_keeps_mean():
    img = np.full((32, 32, 1), 100, np.uint8)
    img[16, 16] = 255
    assert apply_attack("median3", img)[16, 16, 0] == 100
    blurred = apply_attack("blur1", img).astype(float)
    assert abs(blurred.sum() - img.astype(float).sum()) <= 32 * 32 * 0.5  # rounding only
    assert 100 < blurred[16, 16, 0] < 255 * 0.2 + 100


def test_geometry_matches_the_attack_on_a_smooth_image():
    yy, xx = np.mgrid[0:60, 0:90]
    img = np.clip(40 + yy * 1.5 + xx, 0, 255).astype(np.uint8)[..., None]
    for name in ("crop90", "resize_half"):
        attacked = apply_attack(name, img).astype(float)
        lin = apply_geometry(name, img.astype(np.float32))
        assert attacked.shape == lin.shape
        assert np.abs(attacked - lin)[2:-2, 2:-2].max() <= 1.0
    assert apply_region("crop90", img).shape[:2] == (54, 81)
    assert apply_region("jpeg75", img).shape == img.shape


def test_repost_caps_the_longest_side():
    big = np.zeros((10, 5000, 3), np.uint8)
    assert declutter.platform_repost(big).shape == (8, 4096, 3)
    assert declutter.platform_repost(big[:, :300]).shape == (10, 300, 3)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(KeyError, match="choose from"):
        apply_attack("sharpen", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageArrayError, match="uint8"):  # one type for a bad array: a ValueError
        apply_attack("jpeg75", np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(ValueError, match="shape|pixels"):
        apply_attack("jpeg75", np.zeros((8, 8, 4), np.uint8))
