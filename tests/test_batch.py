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


@pytest.mark.parametrize("workers", [1, 2])
def test_the_same_file_twice_with_two_outputs_records_each_on_its_own_job(tmp_path, workers):
    # run_batch matched results to jobs by source path: the first output's record went to the
    # second job, so the first output was "not written by protect" on the next run.
    src = tmp_path / "a.png"
    Image.fromarray(textured()).save(src)
    one, two = tmp_path / "one", tmp_path / "two"
    jobs = [batch.Job(src, one / "a.png", Path("a.png"), root=one),
            batch.Job(src, two / "a.png", Path("a.png"), root=two)]
    options = batch.Options(Settings(0.4, KEY))
    first = batch.run_batch(jobs, options, workers=workers)
    assert first.protected == 2 and first.failed == 0
    assert sorted(r.dst for r in first.results) == sorted(str(j.dst) for j in jobs)
    again = batch.run_batch(jobs, options, workers=workers)
    assert again.skipped == 2 and again.failed == 0, [r.reason for r in again.results]
