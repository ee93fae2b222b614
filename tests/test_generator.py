"""The image-conditioned generator ("adversarial" method): kernels against
NumPy references, the shipped weights, and protect_image's promises."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import reference as ref
from protect import pipeline as pl
from protect.kernels import generator as genk
from protect.kernels.apply import apply_field_kernel

NET = pl.generator_weights()
ROOT = Path(__file__).resolve().parents[1]
#: Keys over which the properties that involve a noise field are checked (not one lucky key).
KEYS = [f"key-{i}" for i in range(8)]


def _image(h=72, w=88, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 200, np.uint8)
    img[:, w // 2:] = rng.integers(0, 256, (h, w - w // 2, 3), dtype=np.uint8)  # flat half, noisy half
    img[h // 3: h // 2, :] = 30
    return img


def test_block_normal_matches_reference_and_is_standard_normal():
    seed = 0x1234_5678_9ABC_DEF0
    for by, bx, k in [(0, 0, 0), (3, 7, 1), (1000, 5, 3), (2**20, 2**20, 7)]:
        expected = ref.block_normal(seed, by, bx, k)
        assert genk.block_normal(np.uint64(seed), by, bx, k) == pytest.approx(expected, abs=1e-6)
    v = np.array([genk.block_normal(np.uint64(seed), by, bx, 0) for by in range(100) for bx in range(100)])
    assert abs(v.mean()) < 0.03 and abs(v.std() - 1.0) < 0.03
    assert abs(np.mean(np.abs(v) > 1.96) - 0.05) < 0.01  # the tails of a normal, not of a uniform


@pytest.mark.parametrize("h,w,c", [(64, 80, 3), (37, 50, 3), (8, 8, 3), (3, 5, 3), (37, 50, 1)])
def test_features_match_reference(h, w, c):
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, c), dtype=np.uint8)
    nby, nbx = -(-h // 8), -(-w // 8)
    hid = np.empty((nby, nbx, NET.hidden), np.float32)
    var = np.empty((nby, nbx), np.float32)
    mean = np.empty((nby, nbx), np.float32)
    genk.generator_features_kernel(img, np.float32(1 / 255), NET.dct, np.uint64(99), NET.w1t, NET.b1, hid, var, mean)
    rh, rv, rm = ref.generator_features(img.astype(np.float64) / 255.0, NET.dct, 99, NET.w1t, NET.b1)
    np.testing.assert_allclose(mean, rm, atol=1e-5)
    np.testing.assert_allclose(hid, rh, atol=2e-4 * max(1.0, np.abs(rh).max()))
    np.testing.assert_allclose(var, rv, rtol=1e-4, atol=1e-7)


def test_modulate_matches_reference_and_signs_are_balanced():
    rng = np.random.default_rng(13)
    hid = np.maximum(rng.standard_normal((20, 30, NET.hidden)), 0).astype(np.float32)
    var = rng.uniform(0, 1e-3, (20, 30)).astype(np.float32)
    mean = rng.uniform(0, 1, (20, 30)).astype(np.float32)
    var[0, :3] = 0.0
    mean[0, :3] = (1.0, 0.5, 0.0)  # flat white paper, a flat fill, flat black ink
    out = hid.copy()
    act = np.empty(var.shape, np.float32)
    genk.modulate_kernel(out, var, mean, np.uint64(77), np.float32(1e-4), np.float32(0.2), np.float32(0.6),
                         np.float32(0.04), np.float32(0.96), act)
    np.testing.assert_allclose(out, ref.modulate(hid, var, mean, 77, 1e-4, 0.2, 0.6, (0.04, 0.96)),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(act, ref.activity(var, mean, 1e-4, 0.2, 0.6, (0.04, 0.96)), rtol=1e-5, atol=1e-7)
    assert not out[0, 0].any() and not out[0, 2].any()  # paper and ink get nothing
    assert np.allclose(np.abs(out[0, 1]), 0.6 * hid[0, 1])  # a flat fill gets the flat gain
    signs = np.array([genk.block_sign(np.uint64(5), by, bx) for by in range(60) for bx in range(60)])
    assert set(np.unique(signs)) == {-1.0, 1.0} and abs(signs.mean()) < 0.05


def test_conv3x3_matches_reference():
    rng = np.random.default_rng(1)
    src = np.maximum(rng.standard_normal((9, 13, NET.hidden)), 0).astype(np.float32)
    out = np.empty_like(src)
    genk.conv3x3_relu_kernel(src, NET.w2t, NET.b2, out)
    np.testing.assert_allclose(out, ref.conv3x3_relu(src, NET.w2t, NET.b2), atol=1e-4)


@pytest.mark.parametrize("h,w,row0,rows", [(72, 88, 0, 72), (72, 88, 16, 24), (37, 50, 32, 5), (5, 3, 0, 5)])
def test_synthesis_matches_reference(h, w, row0, rows):
    rng = np.random.default_rng(2)
    nby, nbx = -(-h // 8), -(-w // 8)
    hid = np.maximum(rng.standard_normal((nby, nbx, NET.hidden)), 0).astype(np.float32)
    out = np.empty((rows, w, 3), np.float32)
    genk.synthesis_kernel(hid, NET.atoms, row0, out)
    full = ref.synthesis(hid, NET.atoms, h, w)
    np.testing.assert_allclose(out, full[row0:row0 + rows], atol=1e-4)


def test_weighted_energy_kernel():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((16, 20, 3)).astype(np.float32)
    wb = rng.uniform(0, 1, (4, 3)).astype(np.float32)
    expect = np.sum(np.repeat(np.repeat(wb, 8, 0), 8, 1)[8:24, :20, None] * f.astype(np.float64) ** 2)
    assert genk.weighted_energy_kernel(f, wb, 8) == pytest.approx(expect, rel=1e-6)


def test_shipped_weights_record_how_they_were_made():
    meta = NET.meta
    for k in ("seed", "steps", "train", "held_out", "attacks", "torch"):
        assert k in meta, k
    assert not set(meta["train"]) & set(meta["held_out"])
    assert pl.GENERATOR_FILE.stat().st_size < 4 * 2**20  # "a few MB at most"
    # the record describes the weights the kernels run: the loader's layouts have the sizes it names
    assert (NET.hidden, NET.z_channels) == (meta["hidden"], meta["z_channels"])
    assert NET.w1t.shape == (64 + 2 + meta["z_channels"], meta["hidden"])
    assert NET.w2t.shape == (3, 3, meta["hidden"], meta["hidden"])
    assert NET.atoms.shape == (meta["hidden"], 16 * 16 * 3)


def _module_constants(path: Path) -> dict:
    """The module-level NAME = literal assignments of a Python file (read, not imported: no torch)."""
    import ast

    out = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            arithmetic = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop)
            if all(isinstance(n, arithmetic) for n in ast.walk(node.value)):  # 0.5, 2.0 / 255.0
                out[node.targets[0].id] = eval(compile(ast.Expression(node.value), str(path), "eval"), {})
    return out


def test_run_time_constants_agree_with_where_they_were_set():
    # the shipped weights name the algorithm version they implement
    assert NET.meta["algorithm"] == pl.ALGORITHMS["adversarial"]
    # the activity gain is read from the weights' metadata, as trained
    colour = _module_constants(ROOT / "design" / "train_colour_generator.py")
    assert (NET.activity_tau, NET.activity_floor) == (colour["ACTIVITY_TAU"], colour["ACTIVITY_FLOOR"])
    # GEN_TEXTURED_WEIGHT / GEN_TEXTURE_TAU weigh the field's RMS at run time (AMPLITUDES_AT_FULL_STRENGTH
    # was calibrated with them): the colour script records them in the weights it makes, and weights
    # that record them must agree (the shipped gen16c-ss2-v2 weights predate the record)
    for name, value in (("textured_weight", pl.GEN_TEXTURED_WEIGHT), ("texture_tau", pl.GEN_TEXTURE_TAU)):
        if name in NET.meta:
            assert NET.meta[name] == value, name


def test_adversarial_is_default_and_stripes_are_exact():
    img = _image()
    s = pl.Settings(0.4, "k")
    assert s.method == "adversarial"
    whole, rep = pl.protect_image(img, s)
    for rows in (8, 24, 64):
        striped, _ = pl.protect_image(img, s, stripe_rows=rows)
        np.testing.assert_array_equal(striped, whole)
    assert 30 < rep.psnr < 60


def test_strength_is_monotonic_and_zero_is_identity():
    img = _image(seed=4)
    psnrs = [pl.protect_image(img, pl.Settings(st, "k"))[1].psnr for st in (0.1, 0.2, 0.4, 0.7, 1.0)]
    assert all(a > b for a, b in zip(psnrs, psnrs[1:], strict=False)), psnrs
    same, _ = pl.protect_image(img, pl.Settings(0.0, "k"))
    np.testing.assert_array_equal(same, img)


def test_key_varies_the_perturbation():
    # two keys' fields are unrelated: over 8 keys (28 pairs) the correlation is near 0 on average and
    # never large (measured: mean |r| 0.07, max 0.24 on this 96 px image of 144 blocks)
    img = _image(96, 96, seed=5)
    d = [pl.protect_image(img, pl.Settings(0.4, key))[0].astype(np.float64) - img for key in KEYS]
    again = pl.protect_image(img, pl.Settings(0.4, KEYS[0]))[0].astype(np.float64) - img
    np.testing.assert_array_equal(again, d[0])
    corr = [np.corrcoef(d[i].ravel(), d[j].ravel())[0, 1] for i in range(len(d)) for j in range(i + 1, len(d))]
    assert float(np.mean(np.abs(corr))) < 0.15 and max(np.abs(corr)) < 0.5, np.round(corr, 3)


def test_apply_field_kernel_rgb_and_grey():
    rng = np.random.default_rng(10)
    src = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    field = rng.standard_normal((6, 7, 3)).astype(np.float32) * 4
    gain = rng.uniform(0, 1, (6, 7)).astype(np.float32)
    gain[0, 0] = 0.0
    out = np.empty_like(src)
    apply_field_kernel(src, field, gain, np.float32(1.5), 255, False, out)
    expect = np.clip(np.floor(src + np.float32(1.5) * gain[..., None] * field + 0.5), 0, 255)
    np.testing.assert_array_equal(out, expect)
    grey = src[:, :, :1].copy()
    out_g = np.empty_like(grey)
    apply_field_kernel(grey, field, gain, np.float32(1.5), 255, False, out_g)
    lum = field @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(out_g[..., 0], np.clip(np.floor(grey[..., 0] + 1.5 * gain * lum + 0.5), 0, 255), atol=1)
    grey3 = np.repeat(grey, 3, axis=2)
    out_m = np.empty_like(grey3)
    apply_field_kernel(grey3, field, gain, np.float32(1.5), 255, True, out_m)
    np.testing.assert_array_equal(out_m, np.repeat(out_g, 3, axis=2))


def test_a_grey_picture_stays_grey():
    # A black-and-white engraving saved as RGB must not come out with colour specks.
    rng = np.random.default_rng(15)
    ink = np.where(rng.random((64, 64)) < 0.3, 20, 240).astype(np.uint8)
    img = np.repeat(ink[..., None], 3, axis=2)
    out, _ = pl.protect_image(img, pl.Settings(1.0, "k"))
    assert not np.array_equal(out, img)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_colour_field_alpha_and_16bit():
    img = _image(seed=6)
    out, _ = pl.protect_image(img, pl.Settings(0.5, "k"))
    d = out.astype(int) - img
    inside = (img > 8).all(axis=2) & (img < 247).all(axis=2)  # no clipping there
    assert not np.array_equal(d[inside, 0], d[inside, 2])  # a colour field, not a luma one
    alpha = np.zeros(img.shape[:2], np.uint8)
    alpha[:, :40] = 255
    out_a, _ = pl.protect_image(img, pl.Settings(0.5, "k"), alpha=alpha)
    np.testing.assert_array_equal(out_a[:, 40:], img[:, 40:])
    img16 = img.astype(np.uint16) * 257
    out16, rep16 = pl.protect_image(img16, pl.Settings(0.5, "k"))
    assert out16.dtype == np.uint16 and 30 < rep16.psnr < 60
    grey = img[:, :, :1].copy()
    out_g, _ = pl.protect_image(grey, pl.Settings(0.5, "k"))
    assert out_g.shape == grey.shape and not np.array_equal(out_g, grey)


def test_torch_definition_matches_numba():
    torch = pytest.importorskip("torch")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "design"))
    import train_colour_generator as tg

    gen = tg.load_exported(pl.GENERATOR_FILE, runtime=True)
    img = _image(64, 80, seed=7)  # flat fill, flat dark band and noise: every branch of the activity gain
    seed = np.uint64(4242)
    field = pl.generator_field(img, seed)
    zz = np.array([[[genk.block_normal(seed, by, bx, k) for bx in range(10)] for by in range(8)]
                   for k in range(NET.z_channels)], np.float32)
    sign = np.array([[genk.block_sign(seed, by, bx) for bx in range(10)] for by in range(8)], np.float32)
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        t = gen(x, torch.from_numpy(zz[None]), torch.from_numpy(sign[None, None]))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(field, t, atol=1e-5 * max(1.0, float(np.abs(t).max())))


def test_region_mask_limits_the_generator():
    img = _image(seed=8)
    region = np.zeros(img.shape[:2], np.uint8)
    region[:40, :] = 255
    out, rep = pl.protect_image(img, pl.Settings(1.0, "k"), region=region)
    np.testing.assert_array_equal(out[40:], img[40:])
    assert not np.array_equal(out[:40], img[:40])
    assert rep.coverage == pytest.approx(40 / img.shape[0])


def test_transparent_canvas_does_not_dilute_the_strength():
    # 16-bit, so rounding is negligible.  The strength is set on what can be seen: the opaque part
    # of a sprite gets the same RMS as the same pixels protected as an opaque picture of their
    # own, whatever hides under alpha 0.
    rng = np.random.default_rng(9)
    tex = cv2.GaussianBlur(rng.uniform(0, 65535, (96, 48, 3)).astype(np.float32), (0, 0), 1.5)
    img = np.full((96, 96, 3), 30000, np.uint16)
    img[:, :48] = tex.astype(np.uint16)
    img[:, 48:] = rng.integers(0, 65536, (96, 48, 3), dtype=np.uint16)  # busy pixels under alpha 0
    alpha = np.zeros((96, 96), np.uint16)
    alpha[:, :48] = 65535
    alone = np.ascontiguousarray(img[:, :48])
    rms = lambda o, x: np.sqrt(np.mean(((o[8:-8, 8:40].astype(float) - x[8:-8, 8:40]) / 257.0) ** 2))  # noqa: E731
    ratios = []
    for key in KEYS:  # a property of the scaling, so over several keys (one field's RMS varies with its key)
        settings = pl.Settings(1.0, key)
        out, _ = pl.protect_image(img, settings, alpha=alpha)
        np.testing.assert_array_equal(out[:, 48:], img[:, 48:])
        out_alone, _ = pl.protect_image(alone, settings)
        assert rms(out, img) > 0.3 * settings.amplitude, key
        ratios.append(rms(out, img) / rms(out_alone, alone))
    # measured over 31 keys: 0.91-1.01, median 0.95 (the atoms that reach under alpha 0 are cut off)
    assert all(0.8 < r < 1.2 for r in ratios), ratios
    assert abs(float(np.median(ratios)) - 1.0) < 0.1, ratios


def test_white_paper_and_black_ink_are_left_untouched():
    # The activity gain is 0 on a flat block of paper or ink luma, and an atom reaches 4 px past
    # its block: far from the drawing, white paper stays exactly as it was.
    rng = np.random.default_rng(14)
    for fill in (255, 0):
        img = np.full((128, 128, 3), fill, np.uint8)
        img[48:80, 48:80] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        out, _ = pl.protect_image(img, pl.Settings(1.0, "k"))
        changed = np.any(out != img, axis=2)
        assert changed[48:80, 48:80].mean() > 0.5
        far = np.ones((128, 128), bool)
        far[32:96, 32:96] = False
        assert not changed[far].any()
