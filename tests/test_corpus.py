"""Real illustrations from ../shared/corpus (skipped when the corpus is absent).

Every file is decoded by protect.io (large PNGs, RGBA line art, JPEG
paintings), protected at the default strength on a centre crop, and checked
for the visibility promise on that crop; the full-resolution curve is
benchmarks/strength_curve.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protect import Settings, protect_image
from protect import io as pio
from protect import pipeline as pl
from protect.metrics import ssimulacra2

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in pio.EXTENSIONS) if CORPUS.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"corpus not found at {CORPUS}")


@pytest.mark.parametrize("method", ["adversarial", "texture"])
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_image_protects_within_visibility_budget(path, method):
    img = pio.read_image(path)
    fr = img.frames[0]
    h, w = img.height, img.width
    y0, x0 = max(0, h // 2 - 256), max(0, w // 2 - 256)
    crop = np.ascontiguousarray(fr.pixels[y0:y0 + 512, x0:x0 + 512])
    alpha = None if fr.alpha is None else np.ascontiguousarray(fr.alpha[y0:y0 + 512, x0:x0 + 512])
    settings = Settings(0.4, "corpus-test", method)
    out, rep = protect_image(crop, settings, alpha=alpha)
    assert out.shape == crop.shape and out.dtype == crop.dtype
    score = ssimulacra2(crop, out, data_range=255, alpha=alpha)
    assert score >= 70.0, f"{path.name}: SSIMULACRA2 {score:.1f} at strength 0.4"
    # analytic floors on the RMS of what was added (clipping only lowers it):
    # texture: unit-RMS noise times a mask <= 1 -> RMS <= the amplitude;
    # adversarial: scaled to a visibility-weighted RMS equal to the amplitude,
    # with block weights >= GEN_TEXTURED_WEIGHT -> RMS <= amplitude / sqrt(that weight).
    rms_max = settings.amplitude
    if method == "adversarial":
        rms_max /= np.sqrt(pl.GEN_TEXTURED_WEIGHT)
    floor = 20 * np.log10(255 / rms_max)
    assert rep.psnr >= floor - 0.3, (rep.psnr, floor)
