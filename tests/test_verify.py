"""verify: survival definitions, the Gaussian comparison and the footprint ratio."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import textured

from protect import Settings, protect_image
from protect.verify import PairReport, Surrogate, Thresholds, flatten_8bit, gaussian_twin, survival, verify_pair


@pytest.fixture(scope="module")
def pair():
    img = textured(96, 128, seed=11)
    out, _ = protect_image(img, Settings(0.5, "verify-test"))
    return img, out


def test_survival_definitions():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(20, 30, 3))
    assert survival(g, g) == pytest.approx((1.0, 1.0, 1.0))
    corr, energy, surv = survival(g, 0.5 * g)
    assert (corr, energy, surv) == pytest.approx((1.0, 0.25, 0.25))
    assert survival(g, -g)[2] == 0.0  # anti-correlated: nothing of the protection is left
    other = rng.normal(size=g.shape)
    corr, energy, surv = survival(g, other)
    assert abs(corr) < 0.05 and surv < 0.005
    assert survival(np.zeros_like(g), g) == (None, None, None)
    # energy is relative to the posted signal, per pixel
    assert survival(g[::2], g[::2], posted=2 * g)[1] == pytest.approx(0.25, rel=0.05)


def test_identity_attack_survival_is_one_and_pair_report_is_json(pair):
    img, out = pair
    rep = verify_pair(img, out, attacks=["none", "blur1"])
    none = rep.attacks[0]
    assert (none.correlation, none.energy, none.survival) == pytest.approx((1.0, 1.0, 1.0))
    assert rep.attacks[1].survival < 0.5  # a blur removes most mid-band noise
    assert rep.psnr < math.inf and 0 < rep.ssimulacra2 < 100 and rep.ciede2000_p99 >= rep.ciede2000_mean > 0
    json.dumps(rep.to_json(), allow_nan=False)
    assert rep.footprint_note is None and rep.attacks[0].footprint is None


def test_identical_images_have_no_survival_and_json_has_no_inf():
    img = textured(40, 40, seed=1)
    rep = verify_pair(img, img.copy(), attacks=["none"])
    assert rep.psnr == math.inf and rep.attacks[0].survival is None
    assert json.loads(json.dumps(rep.to_json(), allow_nan=False))["psnr"] is None


def test_gaussian_twin_matches_target_mse_even_on_white():
    img = textured(64, 64, seed=2)
    img[:20] = 255  # clipping at white eats part of the noise
    twin = gaussian_twin(img, 9.0, seed=4)
    mse = np.mean((twin.astype(float) - img) ** 2)
    assert mse == pytest.approx(9.0, rel=0.01)
    assert np.array_equal(twin, gaussian_twin(img, 9.0, seed=4))


def _random_projection_encoder():
    """A fixed stand-in for an image encoder: 8x8 patches -> ReLU(random projection)."""
    w = np.random.default_rng(123).normal(size=(8 * 8 * 3, 16)) / 8.0

    def encode(x):
        h, wd = x.shape[0] // 8 * 8, x.shape[1] // 8 * 8
        patches = x[:h, :wd].reshape(h // 8, 8, wd // 8, 8, 3).transpose(0, 2, 1, 3, 4).reshape(h // 8, wd // 8, -1)
        return np.maximum(patches @ w, 0.0) + 0.1

    return encode


def test_gaussian_versus_gaussian_footprint_ratio_is_about_one():
    img = textured(128, 160, seed=3)
    noisy = gaussian_twin(img, 16.0, seed=77)  # "protection" that is itself Gaussian noise
    rep = verify_pair(img, noisy, attacks=["none", "jpeg75"], surrogate=Surrogate(_random_projection_encoder()), seed=5)
    for a in rep.attacks:
        assert a.footprint_ratio == pytest.approx(1.0, abs=0.1), a


def test_structured_perturbation_beats_gaussian_on_an_encoder_that_sees_it():
    img = textured(128, 160, seed=3)
    enc = _random_projection_encoder()
    # a perturbation along the encoder's own first direction moves its output most
    direction = np.random.default_rng(123).normal(size=(8 * 8 * 3, 16))[:, 0].reshape(8, 8, 3)
    pert = np.tile(np.sign(direction), (16, 20, 1)) * 4
    protected = np.clip(img.astype(float) + pert, 0, 255).astype(np.uint8)
    rep = verify_pair(img, protected, attacks=["none"], surrogate=Surrogate(enc))
    assert rep.attacks[0].footprint_ratio > 1.5


def test_thresholds_and_errors(pair):
    img, out = pair
    rep = verify_pair(img, out, attacks=["none", "blur1"])
    assert rep.failures(Thresholds()) == []
    misses = rep.failures(Thresholds(min_psnr=80, min_ssimulacra2=99.9, min_survival=0.9))
    assert len(misses) == 3 and any("blur1" in m for m in misses)
    with pytest.raises(ValueError, match="size"):
        verify_pair(img, out[:50])
    with pytest.raises(KeyError, match="choose from"):
        verify_pair(img, out, attacks=["sharpen"])


def test_sixteen_bit_and_alpha_are_flattened_like_a_scraper_sees_them():
    img = textured(48, 64, seed=4)
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255
    flat = flatten_8bit(img, alpha, 255.0)
    assert (flat[:, :32] == 255).all() and np.array_equal(flat[:, 32:], img[:, 32:])
    wide = img.astype(np.uint16) * 257
    assert np.array_equal(flatten_8bit(wide, None, 65535.0), img)
    out, _ = protect_image(wide, Settings(0.5, "k"))
    rep = verify_pair(wide, out, attacks=["none", "jpeg75"])
    assert isinstance(rep, PairReport) and rep.attacks[0].survival == pytest.approx(1.0)


@pytest.mark.parametrize("where", ["attack", "encoder"])
def test_verify_pair_shuts_its_thread_pool_down_when_an_attack_raises(pair, monkeypatch, where):
    # the pool had no `with`: an attack (or the encoder) that raised left its threads behind
    from protect import verify

    pools = []

    class Recording(verify.ThreadPoolExecutor):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.closed = False
            pools.append(self)

        def shutdown(self, *a, **kw):
            self.closed = True
            super().shutdown(*a, **kw)

    def broken(name, pixels, seed=0):
        raise RuntimeError("this attack breaks")

    def broken_encoder(x):
        raise RuntimeError("this encoder breaks")

    monkeypatch.setattr(verify, "ThreadPoolExecutor", Recording)
    if where == "attack":
        monkeypatch.setattr(verify, "apply_attack", broken)
        kw = {}
    else:
        kw = {"surrogate": verify.Surrogate(encoder=broken_encoder)}
    img, out = pair
    with pytest.raises(RuntimeError, match="breaks"):
        verify_pair(img, out, attacks=["none"], **kw)
    assert len(pools) == 1 and pools[0].closed
    assert all(not t.is_alive() for t in pools[0]._threads)  # noqa: SLF001 - the threads are gone
