"""The invisible watermark: coding, kernels against references, round trips, false positives."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from conftest import textured

import reference as ref
from protect import watermark as wm
from protect.declutter import apply_attack
from protect.kernels import watermark as wk
from protect.pipeline import luma8

SAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "samples"
PAYLOAD = wm.payload_from_text("ann_art")


def test_payload_parsing():
    assert wm.payload_from_text("abc") == b"abc\0\0\0\0\0"
    assert wm.payload_from_hex("0011223344556677") == bytes.fromhex("0011223344556677")
    assert wm.payload_text(b"abc\0\0\0\0\0") == "abc" and wm.payload_text(bytes(range(8))) is None
    for bad in ("", "nine char", "é"):
        with pytest.raises(ValueError):
            wm.payload_from_text(bad)
    with pytest.raises(ValueError):
        wm.payload_from_hex("00112233")


def test_crc16_check_value():
    # the standard check value of CRC-16/CCITT-FALSE over "123456789"
    assert wm.crc16(b"123456789") == 0x29B1


def test_convolutional_code_impulse_response_and_viterbi():
    coded = wm.conv_encode(np.array([1], np.uint8))
    # an impulse walks through the register: the output pairs are the generator taps, MSB first
    taps0 = [(wm.G0 >> (wm.K - 1 - i)) & 1 for i in range(wm.K)]
    taps1 = [(wm.G1 >> (wm.K - 1 - i)) & 1 for i in range(wm.K)]
    assert coded[0::2].tolist() == taps0 and coded[1::2].tolist() == taps1
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, 80).astype(np.uint8)
    symbols = 1.0 - 2.0 * wm.conv_encode(bits)
    assert np.array_equal(wm.viterbi_decode(symbols, 80), bits)
    flips = rng.choice(len(symbols), 10, replace=False)  # ~6 % hard errors, spread out
    noisy = symbols.copy()
    noisy[flips] *= -1
    assert np.array_equal(wm.viterbi_decode(noisy, 80), bits)


def test_kernels_match_references():
    rng = np.random.default_rng(2)
    src = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    tile = rng.normal(size=(16, 16)).astype(np.float32)
    gain = rng.uniform(0, 4, (37, 53)).astype(np.float32)
    out = np.empty_like(src)
    wk.embed_tile_kernel(src, tile, gain, 255, out)
    np.testing.assert_array_equal(out, ref.embed_tile(src, tile, gain, 255))
    r = rng.normal(size=(41, 39)).astype(np.float32)
    a = np.linalg.inv(np.array([[math.cos(0.03), -math.sin(0.03)], [math.sin(0.03), math.cos(0.03)]]) * 0.8)
    sums = np.zeros((16, 16))
    counts = np.zeros((16, 16), np.int64)
    wk.fold_kernel(r, a[0, 0], a[0, 1], a[1, 0], a[1, 1], 16, sums, counts)
    want_s, want_c = ref.fold(r, a, 16)
    np.testing.assert_array_equal(counts, want_c)
    np.testing.assert_allclose(sums, want_s, atol=1e-9)


def _art() -> np.ndarray:
    """Flat fills, outlines and a textured patch, 1024 x 768 (the flat-colour sample scaled up): the
    kind of art the mark must survive on, at a size that carries the payload a few times over."""
    from protect import io as pio

    img = pio.read_image(SAMPLES / "cel_flat_fills.png").frames[0].pixels
    return cv2.resize(img, (1024, 768), interpolation=cv2.INTER_CUBIC)


def _rotate(img, deg):
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _crop_half_area(img):
    h, w = img.shape[:2]
    ch, cw = round(h * 0.7071), round(w * 0.7071)
    return np.ascontiguousarray(img[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw])


def _resize(img, f):
    h, w = img.shape[:2]
    return cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


# The attacks this mark survives on this flat-colour sample (benchmarks/watermark.py has the full
# per-attack table, including those it does not always survive: WebP 80, noisy upscaling, brightness x1.2).
ROUND_TRIPS = {
    "none": lambda x: x,
    "resize_half": lambda x: apply_attack("resize_half", x),
    "resize_0.75": lambda x: _resize(x, 0.75),
    "crop_half_area": _crop_half_area,
    "rotate_2deg": lambda x: _rotate(x, 2.0),
    "repost": lambda x: apply_attack("repost", x),
    "jpeg50": lambda x: apply_attack("jpeg50", x),
}


@pytest.fixture(scope="module")
def marked():
    img = _art()
    return img, wm.embed_mark(img, PAYLOAD, "artist key")


@pytest.mark.parametrize("attack", list(ROUND_TRIPS))
def test_round_trip_recovers_exact_payload(marked, attack):
    _, m = marked
    det = wm.detect_mark(np.ascontiguousarray(ROUND_TRIPS[attack](m)), "artist key")
    assert det.found and det.payload == PAYLOAD and det.crc_ok, det
    assert det.p_value < wm.P_FOUND and det.confidence in ("certain", "likely") and det.present


def test_wrong_key_and_unmarked_say_not_found(marked):
    img, m = marked
    for pixels, key in ((m, "another key"), (img, "artist key"), (textured(300, 300, seed=4), "artist key")):
        det = wm.detect_mark(pixels, key)
        assert not det.found and det.payload is None and not det.present and det.confidence is None


def test_mark_is_luminance_only_keeps_alpha_zero_pixels_dtype_and_grey():
    img = textured(160, 200, seed=7)
    alpha = np.full((160, 200), 255, np.uint8)
    alpha[:, :50] = 0
    m = wm.embed_mark(img, PAYLOAD, "k", alpha=alpha)
    assert np.array_equal(m[:, :50], img[:, :50])
    d = m.astype(int) - img
    unclipped = (img > 5).all(axis=2) & (img < 250).all(axis=2)
    assert (d[..., 0] == d[..., 1])[unclipped].mean() > 0.99  # the same change on every channel
    grey = wm.embed_mark(img[..., :1], PAYLOAD, "k")
    assert grey.shape == (160, 200, 1) and grey.dtype == np.uint8
    wide = wm.embed_mark(img.astype(np.uint16) * 257, PAYLOAD, "k")
    assert wide.dtype == np.uint16
    # 16 bits get the same mark as 8 bits, to within the 8-bit rounding
    assert np.abs(wide[..., 0].astype(float) / 257 - m[..., 0])[unclipped].mean() < 0.5
    assert 20 * math.log10(255 / np.sqrt(np.mean(d.astype(float) ** 2))) > 42


def test_cell_means_land_on_their_bits_lattice():
    # on texture (move 1) every whole cell's mean sits on its bit's lattice after embedding,
    # rounding included; the cells of a half-transparent region are left alone
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(60, 200, (256, 320, 3), dtype=np.uint8), (0, 0), 1.0)
    alpha = np.full((256, 320), 255, np.uint8)
    alpha[:, 256:] = 128
    lum = luma8(img)
    hi, lo = img.max(axis=2).astype(np.float32), img.min(axis=2).astype(np.float32)
    lay = wm._cells("k")
    bits = wm._cell_bits(PAYLOAD, "k")
    change, target = wm._qim_change(lum, hi, lo, alpha >= 255, bits, lay.dither, wm.STEP, np.ones((8, 10)))
    ny, nx = 256 // wm.CELL, 320 // wm.CELL
    means = wm._project(lum + change, ny, nx)
    idx = (np.arange(ny)[:, None] % wm.CELLS) * wm.CELLS + np.arange(nx)[None, :] % wm.CELLS
    off = lay.dither[idx] + bits[idx] * wm.STEP / 2
    err = np.mod(means - off + wm.STEP / 2, wm.STEP) - wm.STEP / 2
    assert np.abs(err[:, :8]).max() < 1e-3  # exactly on the lattice before rounding
    assert np.all(change[:, 256:] == 0) and np.isnan(target[:, 8:]).all()


def test_copied_and_averaged_patterns_neither_forge_nor_remove():
    """The estimation attack of issue 15, small: average the high-pass residuals of marked posts
    folded on the sync tile; adding the estimate to unmarked posts must not make them read as
    marked, and subtracting it from another marked post must not remove the mark."""
    from protect import io as pio

    names = ["cel_flat_fills.png", "comic_text.png", "ink_line_art.png", "sky_gradient.png"]
    imgs = []
    for n in names:
        x = pio.read_image(SAMPLES / n).frames[0].pixels[..., :3]
        x = np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x
        imgs.append(np.ascontiguousarray(cv2.resize(x, (768, 768), interpolation=cv2.INTER_CUBIC)))
    marked = [wm.embed_mark(x, PAYLOAD, "artist key") for x in imgs]

    def folded_residual(x):
        lum = luma8(x)
        r = lum - cv2.GaussianBlur(lum, (0, 0), 3.0)
        return np.tile(r.reshape(6, 128, 6, 128).mean(axis=(0, 2)), (6, 6))

    est = np.mean([folded_residual(m) for m in marked[:3]], axis=0)
    est = est / np.sqrt(np.mean(est**2))  # about the mark's own RMS
    forged = np.clip(np.rint(imgs[3] + 1.5 * est[..., None]), 0, 255).astype(np.uint8)
    det = wm.detect_mark(forged, "artist key")
    assert not det.found and not det.present and det.sync_z >= wm.Z_THRESHOLD and det.sync_only
    assert "no mark found" in wm.describe_detection(det)
    cleaned = np.clip(np.rint(marked[3] - 1.5 * est[..., None]), 0, 255).astype(np.uint8)
    det = wm.detect_mark(cleaned, "artist key")
    assert det.found and det.payload == PAYLOAD


def test_describe_detection_lines(marked):
    _, m = marked
    assert wm.describe_detection(wm.detect_mark(m, "artist key")) == "found: ann_art (certain)"
    assert wm.describe_detection(wm.detect_mark(m, "other")) == "no mark found"


def test_too_small_a_picture_reads_nothing_and_says_so_by_not_finding():
    small = textured(120, 160, seed=2)
    det = wm.detect_mark(wm.embed_mark(small, PAYLOAD, "k"), "k")
    assert not det.found


def test_bad_arguments():
    img = textured(64, 64)
    with pytest.raises(ValueError):
        wm.embed_mark(img, b"short", "k")
    with pytest.raises(ValueError):
        wm.embed_mark(img, PAYLOAD, "")
    with pytest.raises(ValueError):
        wm.detect_mark(img[..., :2], "k")


def test_batch_fingerprint_names_the_mark_algorithm(monkeypatch):
    # outputs marked by an older algorithm must not count as up to date
    from protect import Settings, batch

    opts = batch.Options(Settings(0.4, "k"), mark=PAYLOAD)
    before = opts.fingerprint(None)
    monkeypatch.setattr(batch, "MARK_ALGORITHM", "an-older-mark")
    assert opts.fingerprint(None) != before
    assert batch.Options(Settings(0.4, "k")).fingerprint(None) == batch.Options(Settings(0.4, "k")).fingerprint(None)
