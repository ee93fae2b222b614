"""batch: the figures of a file, which job a result belongs to, file statuses, JIT warm-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import textured
from PIL import Image

from protect import Settings, batch
from protect import io as pio
from protect.pipeline import diff_stats
from protect.visible import HERSHEY, VisibleMark

KEY = "batch-test-key"


@pytest.mark.parametrize("mark", [None, b"12345678"], ids=["no-mark", "mark"])
@pytest.mark.parametrize("visible", [False, True], ids=["plain", "visible"])
def test_psnr_is_measured_against_the_original(tmp_path, mark, visible):
    # With --visible, the PSNR was measured against the visibly marked image without --mark
    # (46 dB) and against the original with it (29 dB): every figure is of output vs original.
    src = tmp_path / "a.png"
    original = textured(128, 160)
    Image.fromarray(original).save(src)
    vis = VisibleMark(text="Ann", font=HERSHEY, scale=0.3, opacity=1.0) if visible else None
    options = batch.Options(Settings(0.4, KEY), mark=mark, visible=vis)
    job = batch.Job(src, tmp_path / "out" / "a.png", Path("a.png"))
    res = batch.protect_file(job, options)
    assert res.status == "protected", res.reason
    written = pio.read_image(job.dst).frames[0].pixels
    assert res.psnr == round(diff_stats(original, written)[0], 2)
    if visible:
        assert res.psnr < 35  # the visible mark is part of what changed
