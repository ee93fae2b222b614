"""The TAEF2 surrogate (optional extra): our module definition against the real weights.

Skipped without torch or without ../shared/models/taef2_*.pth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from protect import io as pio  # noqa: E402
from protect import surrogate  # noqa: E402
from protect.metrics import psnr  # noqa: E402
from protect.verify import Surrogate, gaussian_twin, verify_pair  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not (MODELS / "taef2_encoder.pth").is_file(), reason=f"no TAEF2 weights in {MODELS}")


@pytest.fixture(scope="module")
def encoder():
    return surrogate.load_encoder(MODELS / "taef2_encoder.pth")


ROUND_TRIP_IMAGE = CORPUS / "peppercarrot" / "fixing-the-project.jpg"


def _crop(side=256):
    if not ROUND_TRIP_IMAGE.is_file():
        from conftest import textured

        return textured(side, side, seed=1)
    px = pio.read_image(ROUND_TRIP_IMAGE).frames[0].pixels
    h, w = px.shape[:2]
    return np.ascontiguousarray(px[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2])


def test_encoder_shape_and_decoder_round_trip(encoder):
    crop = _crop()
    z = encoder(crop.astype(np.float32) / 255)
    assert z.shape == (32, 32, 32) and np.isfinite(z).all()
    if not ROUND_TRIP_IMAGE.is_file():
        pytest.skip("round trip needs the corpus image")
    dec = surrogate.load_decoder(MODELS / "taef2_decoder.pth")
    with torch.inference_mode():
        rec = dec(torch.from_numpy(z[None])).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
    # Measured on this 256 px centre crop: 34.1 dB with our definition; 17.0 dB with the
    # FLUX.2 GroupNorm branch left out, 15 dB with it moved inside the residual branch.
    assert psnr(crop, np.rint(rec * 255).astype(np.uint8), data_range=255) > 28


def test_gaussian_versus_gaussian_ratio_about_one_on_taef2(encoder):
    img = _crop()
    noisy = gaussian_twin(img, 16.0, seed=77)
    rep = verify_pair(img, noisy, attacks=["none"], surrogate=Surrogate(encoder, crop=256), seed=3)
    assert rep.attacks[0].footprint_ratio == pytest.approx(1.0, abs=0.1)


def test_missing_weights_say_so(tmp_path):
    with pytest.raises(surrogate.SurrogateUnavailable, match="not found"):
        surrogate.load_encoder(tmp_path / "nope.pth")
