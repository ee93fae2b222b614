"""Metrics against analytic values and an independent implementation.

Origins of the golden values:
* PSNR: MSE = 1 on 8-bit data gives 20 log10(255) = 48.1308 dB (definition).
* SSIM: for two constant images the structure term is C2/C2 = 1 and the
  luminance term is (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) with
  C1 = (0.01 * 255)^2 (Wang et al. 2004, eq. 13), computed here by hand.
* SSIMULACRA2: 100 for identical images (definition); for distorted images,
  agreement within 1.5 points with the independent pure-Python
  implementation on PyPI (``ssimulacra2`` 0.3, which mirrors libjxl's
  tools/ssimulacra2.cc); measured gaps were 0.0-1.0 points (blur borders).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from protect import Settings, protect_image
from protect.metrics import psnr, ssim, ssimulacra2

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_psnr_analytic():
    a = np.zeros((10, 10, 3), np.uint8)
    assert psnr(a, a + 1, data_range=255) == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert psnr(a, a, data_range=255) == math.inf
    alpha = np.zeros((10, 10), np.uint8)
    alpha[0, 0] = 255
    b = a.copy()
    b[5:, 5:] = 200  # only under alpha 0
    assert psnr(a, b, data_range=255, alpha=alpha) == math.inf


def test_ssim_analytic_constant_images():
    a = np.full((32, 32, 1), 100, np.uint8)
    b = np.full((32, 32, 1), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    want = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert ssim(a, b, data_range=255) == pytest.approx(want, rel=1e-5)
    assert ssim(a, a, data_range=255) == pytest.approx(1.0)


def test_ssimulacra2_identical_is_100_and_keeps_inputs():
    img = np.asarray(Image.open(SAMPLES / "comic_text.png").convert("RGB"))
    before = img.copy()
    assert ssimulacra2(img, img, data_range=255) == pytest.approx(100.0)
    np.testing.assert_array_equal(img, before)


def test_ssimulacra2_orders_distortions():
    img = np.asarray(Image.open(SAMPLES / "comic_text.png").convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    q90 = np.asarray(Image.open(buf))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=30)
    q30 = np.asarray(Image.open(buf))
    assert ssimulacra2(img, q90, data_range=255) > ssimulacra2(img, q30, data_range=255)


def test_ssimulacra2_sixteen_bit_matches_eight_bit():
    img = np.asarray(Image.open(SAMPLES / "sky_gradient.png").convert("RGB"))
    out, _ = protect_image(img, Settings(0.7, "k"))
    s8 = ssimulacra2(img, out, data_range=255)
    s16 = ssimulacra2(img.astype(np.uint16) * 257, out.astype(np.uint16) * 257, data_range=65535)
    assert s8 == pytest.approx(s16, abs=1e-3)


@pytest.mark.parametrize("name", ["comic_text.png", "sky_gradient.png", "cel_flat_fills.png"])
def test_ssimulacra2_agrees_with_independent_implementation(tmp_path, name):
    independent = pytest.importorskip("ssimulacra2")
    img = np.asarray(Image.open(SAMPLES / name).convert("RGB"))
    dist = {
        "noise": protect_image(img, Settings(0.8, "k"))[0],
        "jpeg40": np.asarray(Image.open(_jpeg(img, 40))),
    }
    Image.fromarray(img).save(tmp_path / "a.png")
    for label, d in dist.items():
        Image.fromarray(d).save(tmp_path / "b.png")
        theirs = independent.compute_ssimulacra2(str(tmp_path / "a.png"), str(tmp_path / "b.png"))
        ours = ssimulacra2(img, d, data_range=255)
        assert ours == pytest.approx(theirs, abs=1.5), (name, label, ours, theirs)


def _jpeg(img, q):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=q)
    buf.seek(0)
    return buf


def test_shape_mismatch_and_bad_range_raise():
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError):
        ssimulacra2(a, a[:4], data_range=255)
    with pytest.raises(ValueError):
        psnr(a, a, data_range=0)
