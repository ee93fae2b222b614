"""The adaptive-attack benchmark's pieces (benchmarks/adaptive_attack.py), on synthetic images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import adaptive_attack as aa  # noqa: E402

from protect.metrics import ssimulacra2  # noqa: E402


def _picture(seed: int = 0, h: int = 160, w: int = 200) -> aa.Picture:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 1.1) % 255, (yy * 0.9) % 255, ((xx + yy) * 0.5) % 255], -1)
    px = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return aa.Picture("synthetic.png", "train", px, None, 255.0)


def test_untrained_purifier_returns_its_input_exactly():
    net = aa.Purifier((8, 16, 24)).eval()
    x = (np.random.default_rng(1).random((2, 36, 44, 3)) * 255).astype(np.uint8)  # not a multiple of 4: padded
    assert np.array_equal(aa.purify(net, x), x)


def test_match_sigma_reaches_the_target_score():
    o = _picture().flat[:96, :96]
    z = np.random.default_rng(2).standard_normal(o.shape, dtype=np.float32)
    target = 88.0
    sigma = aa.match_sigma(o, target, z)
    g = np.clip(np.rint(o.astype(np.float32) + np.float32(sigma) * z), 0, 255).astype(np.uint8)
    assert abs(ssimulacra2(o, g, data_range=255) - target) < 1.0


def test_pairs_use_a_new_key_per_tile_and_differ_from_the_original():
    pic = _picture()
    mode = aa.MODES["quick"]
    maker = aa.PairMaker([pic], mode, lambda s: 2.0, lambda s: 1.0, seed=3)
    for src in (aa.Source("method", aa.DEFAULT_METHOD), aa.Source("gaussian"), aa.Source("mix", aa.DEFAULT_METHOD)):
        p, o, label = maker.batch(src, 4)
        assert p.shape == o.shape == (4, mode.crop, mode.crop, 3)
        assert all(not np.array_equal(a, b) for a, b in zip(p, o, strict=False)), src.kind
        assert label.tolist() == [1.0] * 4
    assert maker.keys_used == 12
    p, o, label = maker.batch(aa.Source("method", aa.DEFAULT_METHOD), 16, clean_share=1.0)
    assert np.array_equal(p, o) and label.sum() == 0


def test_auc_counts_ties_half():
    assert aa.auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert aa.auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert aa.auc(np.array([1.0]), np.array([1.0])) == 0.5


def test_one_training_step_moves_the_purifier_towards_the_original():
    pic = _picture()
    mode = aa.MODES["quick"]
    maker = aa.PairMaker([pic], mode, lambda s: 2.0, lambda s: 1.0, seed=4)
    net, info = aa.train_purifier("g", aa.Source("gaussian"), maker, mode, 3, seed=0, log=lambda s: None)
    assert info["pairs"] == 3 * mode.batch and info["parameters"] > 0
    p, o, _ = maker.batch(aa.Source("gaussian"), 4)
    x = aa.to_tensor(p)
    with torch.no_grad():
        assert float((net(x) - x).abs().max()) > 0  # it learned a correction (still below a code value)


def test_staged_evaluation_summarises_keep_and_isovisibility():
    """prepare_crop / purify_crop / summarise / markdown on one crop, with a stand-in encoder."""
    o = _picture().flat[:64, :64].copy()
    rng = np.random.default_rng(5)
    p = aa.add_gaussian(o, 2.0, rng)

    def encoder(x):  # (N, H, W, 3) or (H, W, 3) in [0, 1] -> a coarse "latent"
        return np.asarray(x)[..., ::4, ::4, :] * 10.0

    crop = aa.prepare_crop(o, {"m@0.4": p, "same": o.copy()}, encoder, np.random.default_rng(6))
    assert list(crop["rec"]["sources"]) == ["m@0.4"]  # a source equal to the original is left out
    s = crop["rec"]["sources"]["m@0.4"]
    assert abs(s["twin_ssimulacra2"] - s["ssimulacra2"]) < 1.0 and s["shift"] > 0
    plan = {"m@0.4": ["m", "gaussian"]}
    identity = aa.Purifier((8, 16, 24)).eval()
    for name in ("m", "gaussian"):
        aa.purify_crop(crop, name, identity, plan, encoder)
    assert set(s["purified"]) == {"m", "gaussian", "gaussian|twin"}
    rows = aa.summarise([crop["rec"]], {"m@0.4": "m"})
    own = next(r for r in rows if r["purifier"] == "m")
    assert own["own"] and own["keep"] == pytest.approx(1.0) and own["psnr_gain"] == pytest.approx(0.0)
    assert own["isovis_after"] == pytest.approx(own["isovis_before"])  # identity purifiers change nothing
    assert crop["rec"]["purifier_on_clean"] == {"m": 0.0, "gaussian": 0.0}


def test_grain_stays_off_what_the_method_left_untouched():
    """The "grain" experiment adds noise only near pixels the method changed: a flat fill far from them stays
    byte-identical, and the noise is there where the method worked."""
    o = np.full((96, 96, 3), 200, np.uint8)
    p = o.copy()
    p[:32, :32] += np.uint8(2)  # the method changed the top-left corner only
    gate = aa.support_gate(o, p)
    assert gate.shape == (96, 96, 1) and gate.min() >= 0.0 and gate.max() <= 1.0
    assert gate[:24, :24].min() > 0.9 and gate[48:, 48:].max() == 0.0
    g = aa.add_gaussian(p, 3.0, np.random.default_rng(0), gate)
    assert np.array_equal(g[48:, 48:], o[48:, 48:])
    assert np.abs(g[:24, :24].astype(int) - p[:24, :24]).mean() > 1.0


def test_amplitude_gate_follows_the_pattern_strength():
    """The "amplitude" gate is faint where the method's change is faint (nearly flat shading at its floor)."""
    rng = np.random.default_rng(3)
    o = np.full((128, 128, 3), 180, np.uint8)
    p = o.astype(np.int16)
    p[:48, :48] += rng.integers(-4, 5, (48, 48, 3))  # textured: the full pattern
    p[80:, 80:] += rng.integers(-1, 2, (48, 48, 3))  # nearly flat: the pattern at a fifth
    p = p.astype(np.uint8)
    g = aa.support_gate(o, p, "amplitude")
    assert g[8:40, 8:40].mean() > 0.8 and 0.05 < g[88:120, 88:120].mean() < 0.5
    assert g[56:72, 100:].max() < 0.05  # untouched, away from both
    with pytest.raises(ValueError):
        aa.support_gate(o, p, "nonsense")
