"""The offline design tools agree with what protect ships (torch only; skipped without it)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "design"))

import ssimulacra2_torch  # noqa: E402

from protect.metrics import ssimulacra2  # noqa: E402


@pytest.mark.parametrize("sigma", [1.0, 3.0, 8.0])
def test_torch_ssimulacra2_agrees_with_protect_metrics(sigma):
    # The training objective must measure what the benchmarks measure: the same published
    # definition, up to the blur's border handling (a fraction of a point).
    rng = np.random.default_rng(int(sigma * 10))
    a = np.zeros((96, 128, 3), np.uint8)
    a[:, :64] = (220, 180, 150)  # flat skin
    a[:, 64:] = rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)  # texture
    b = np.clip(np.rint(a + rng.normal(0, sigma, a.shape)), 0, 255).astype(np.uint8)
    t = lambda u: torch.from_numpy(u.astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    assert float(ssimulacra2_torch.score(t(a), t(b))) == pytest.approx(ssimulacra2(a, b, data_range=255), abs=1.0)
    # and it has a gradient
    x = t(b).requires_grad_(True)
    ssimulacra2_torch.distortion(t(a), x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_held_out_images_are_the_same_everywhere():
    """The adversary benchmark must never train on an image the generator was trained on either."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import adaptive_attack
    import corpus_data

    assert set(adaptive_attack.HELD_OUT) == corpus_data.HELD_OUT


def test_native_side_scales_with_the_downscale():
    import corpus_data

    assert [corpus_data.native_side(a, 100) for a in ("native", "down2", "down4", "blur1")] == [100, 200, 400, 100]
