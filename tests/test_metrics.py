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
* CIEDE2000: the 34 test pairs of Sharma, Wu & Dalal, "The CIEDE2000
  color-difference formula: implementation notes, supplementary test data,
  and mathematical observations", Color Res. Appl. 30(1), 2005, Table 1
  (values to 4 decimals).  scikit-image 0.26's ``deltaE_ciede2000`` gave
  the same 34 values within 5e-5 when this test was written.
* sRGB -> CIELAB: white (100, 0, 0) by definition; pure red, green and blue
  from the sRGB/D65 equations of IEC 61966-2-1 and CIE 15 (the values
  Bruce Lindbloom's calculator lists: red 53.2408, 80.0925, 67.2032).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from conftest import textured

from protect import Settings, protect_image
from protect.metrics import ciede2000, delta_e_ciede2000, psnr, srgb_to_lab, ssim, ssimulacra2

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


SHARMA_2005 = """
50.0000 2.6772 -79.7751 50.0000 0.0000 -82.7485 2.0425
50.0000 3.1571 -77.2803 50.0000 0.0000 -82.7485 2.8615
50.0000 2.8361 -74.0200 50.0000 0.0000 -82.7485 3.4412
50.0000 -1.3802 -84.2814 50.0000 0.0000 -82.7485 1.0000
50.0000 -1.1848 -84.8006 50.0000 0.0000 -82.7485 1.0000
50.0000 -0.9009 -85.5211 50.0000 0.0000 -82.7485 1.0000
50.0000 0.0000 0.0000 50.0000 -1.0000 2.0000 2.3669
50.0000 -1.0000 2.0000 50.0000 0.0000 0.0000 2.3669
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0009 7.1792
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0010 7.1792
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0011 7.2195
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0012 7.2195
50.0000 -0.0010 2.4900 50.0000 0.0009 -2.4900 4.8045
50.0000 -0.0010 2.4900 50.0000 0.0010 -2.4900 4.8045
50.0000 -0.0010 2.4900 50.0000 0.0011 -2.4900 4.7461
50.0000 2.5000 0.0000 50.0000 0.0000 -2.5000 4.3065
50.0000 2.5000 0.0000 73.0000 25.0000 -18.0000 27.1492
50.0000 2.5000 0.0000 61.0000 -5.0000 29.0000 22.8977
50.0000 2.5000 0.0000 56.0000 -27.0000 -3.0000 31.9030
50.0000 2.5000 0.0000 58.0000 24.0000 15.0000 19.4535
50.0000 2.5000 0.0000 50.0000 3.1736 0.5854 1.0000
50.0000 2.5000 0.0000 50.0000 3.2972 0.0000 1.0000
50.0000 2.5000 0.0000 50.0000 1.8634 0.5757 1.0000
50.0000 2.5000 0.0000 50.0000 3.2592 0.3350 1.0000
60.2574 -34.0099 36.2677 60.4626 -34.1751 39.4387 1.2644
63.0109 -31.0961 -5.8663 62.8187 -29.7946 -4.0864 1.2630
61.2901 3.7196 -5.3901 61.4292 2.2480 -4.9620 1.8731
35.0831 -44.1164 3.7933 35.0232 -40.0716 1.5901 1.8645
22.7233 20.0904 -46.6940 23.0331 14.9730 -42.5619 2.0373
36.4612 47.8580 18.3852 36.2715 50.5065 21.2231 1.4146
90.8027 -2.0831 1.4410 91.1528 -1.6435 0.0447 1.4441
90.9257 -0.5406 -0.9208 88.6381 -0.8985 -0.7239 1.5381
6.7747 -0.2908 -2.4247 5.8714 -0.0985 -2.2286 0.6377
2.0776 0.0795 -1.1350 0.9033 -0.0636 -0.5514 0.9082
"""


def test_ciede2000_matches_sharma_2005_test_data():
    rows = np.array([[float(v) for v in line.split()] for line in SHARMA_2005.strip().splitlines()])
    got = delta_e_ciede2000(rows[:, 0:3], rows[:, 3:6])
    np.testing.assert_allclose(got, rows[:, 6], rtol=0, atol=1e-4)
    # symmetric in its arguments
    np.testing.assert_allclose(delta_e_ciede2000(rows[:, 3:6], rows[:, 0:3]), got, atol=1e-9)


def test_srgb_to_lab_known_colours():
    px = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    lab = srgb_to_lab(px, data_range=255)[0]
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(lab[1], [53.2408, 80.0925, 67.2032], atol=0.02)
    np.testing.assert_allclose(lab[2], [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(lab[3], [87.7347, -86.1827, 83.1793], atol=0.02)
    np.testing.assert_allclose(lab[4], [32.2970, 79.1875, -107.8602], atol=0.02)
    grey = srgb_to_lab(np.full((1, 1, 1), 119, np.uint8), data_range=255)[0, 0]
    assert abs(grey[1]) < 0.01 and abs(grey[2]) < 0.01  # grey has no chroma


def test_ciede2000_stats_alpha_and_sixteen_bit():
    img = textured(40, 50, seed=3)
    assert ciede2000(img, img, data_range=255) == (0.0, 0.0)
    other = img.copy()
    other[:, :10] = np.clip(other[:, :10].astype(int) + 12, 0, 255).astype(np.uint8)
    mean, p99 = ciede2000(img, other, data_range=255)
    assert 0 < mean < p99
    alpha = np.full((40, 50), 255, np.uint8)
    alpha[:, :10] = 0  # the changed pixels are invisible
    assert ciede2000(img, other, data_range=255, alpha=alpha) == (0.0, 0.0)
    wide = ciede2000(img.astype(np.uint16) * 257, other.astype(np.uint16) * 257, data_range=65535)
    np.testing.assert_allclose(wide, (mean, p99), rtol=1e-9)
