"""batch: the figures of a file, which job a result belongs to, file statuses, JIT warm-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import textured
from PIL import Image

from protect import Settings, batch
from protect import io as pio
from protect import pipeline as pl
from protect.files import Job, discover
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
    job = Job(src, tmp_path / "out" / "a.png", Path("a.png"))
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
    jobs = [Job(src, one / "a.png", Path("a.png"), root=one),
            Job(src, two / "a.png", Path("a.png"), root=two)]
    options = batch.Options(Settings(0.4, KEY))
    first = batch.run_batch(jobs, options, workers=workers)
    assert first.protected == 2 and first.failed == 0
    assert sorted(r.dst for r in first.results) == sorted(str(j.dst) for j in jobs)
    again = batch.run_batch(jobs, options, workers=workers)
    assert again.skipped == 2 and again.failed == 0, [r.reason for r in again.results]


def test_statuses_are_an_enum_with_the_old_strings():
    assert [s.value for s in batch.Status] == ["protected", "skipped", "failed", "would protect"]
    assert batch.Status("would protect") is batch.Status.WOULD_PROTECT
    assert f"{batch.Status.PROTECTED}" == "protected" and batch.Status.FAILED == "failed"
    res = batch.FileResult("a", "b", batch.Status.SKIPPED)
    assert json.dumps(batch.BatchReport(results=[res]).to_json()["files"][0]["status"]) == '"skipped"'


def test_every_status_protect_gives_is_a_status_member(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    Image.fromarray(textured()).save(art / "a.png")
    (art / "bad.png").write_bytes(b"not a picture")
    jobs = list(discover([art]))
    options = batch.Options(Settings(0.4, KEY))
    reports = [batch.run_batch(jobs, options, dry_run=True), batch.run_batch(jobs, options),
               batch.run_batch(jobs, options)]
    seen = {r.status for rep in reports for r in rep.results}
    assert seen == set(batch.Status)
    assert all(isinstance(r.status, batch.Status) for rep in reports for r in rep.results)
    # --json is byte for byte what it was with plain strings
    rep = reports[1]
    plain = batch.BatchReport(results=[batch.FileResult(**{**r.__dict__, "status": str(r.status.value)})
                                  for r in rep.results])
    for r in plain.results:
        plain.protected += r.status == "protected"
        plain.failed += r.status == "failed"
    plain.seconds = rep.seconds
    assert json.dumps(plain.to_json()) == json.dumps(rep.to_json())


_WARM_CHECK = r"""
import numpy as np
from numba.core.registry import CPUDispatcher
from protect import batch, pipeline as pl, watermark as wm
from protect.kernels import generator, perturb, stats, watermark as wk

def compiled():
    n = 0
    for mod in (generator, perturb, stats, wk):
        for v in vars(mod).values():
            if isinstance(v, CPUDispatcher):
                n += len(v.signatures)
    return n

batch.warm_jit(mark=True)
after_warm = compiled()
rng = np.random.default_rng(0)
rgb = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
grey16 = rng.integers(0, 65536, (40, 50, 1), dtype=np.uint16)
a8 = np.full((70, 90), 200, np.uint8)
a16 = np.full((40, 50), 60000, np.uint16)
for method in pl.METHODS:
    s = pl.Settings(0.5, "k", method)
    pl.protect_image(rgb, s)
    pl.protect_image(rgb, s, alpha=a8)
    pl.protect_image(grey16, s, alpha=a16)
    pl.protect_image(rgb, s, keep_palette=True)
print(after_warm, compiled())
"""


def test_warm_jit_compiles_what_every_method_needs():
    # warm_jit warmed only the default method's kernels: a --method texture run compiled the
    # texture kernels inside its first file (and in every worker)
    out = subprocess.run([sys.executable, "-c", _WARM_CHECK], capture_output=True, text=True, timeout=300,
                         check=True)
    after_warm, after_use = map(int, out.stdout.split())
    assert after_warm > 0 and after_use == after_warm, "a kernel was compiled after warm_jit"


def test_warm_jit_is_cheap(monkeypatch):
    calls = []
    real = batch.protect_image

    def spy(pixels, settings, **kw):
        calls.append((pixels.shape, settings.method))
        return real(pixels, settings, **kw)

    monkeypatch.setattr(batch, "protect_image", spy)
    batch.warm_jit()
    assert {m for _, m in calls} == set(pl.METHODS)
    assert all(shape[0] * shape[1] <= 32 * 32 for shape, _ in calls)  # tiny arrays only


def test_mask_key_hides_the_key_and_leaves_words_alone():
    long_key = "correct horse battery"
    assert batch.mask_key(f"bad value '{long_key}' in x{long_key}y", long_key) == "bad value '<key>' in x<key>y"
    assert batch.mask_key("the source changed while protect worked on it", "k") == (
        "the source changed while protect worked on it")
    assert batch.mask_key("key=k, 'k' (k)", "k") == "key=<key>, '<key>' (<key>)"
    assert batch.mask_key("nothing to hide", "") == "nothing to hide"


def test_summary_figures_count_protected_files_only():
    """A file that failed after its PSNR was measured (e.g. the output path changed under protect) must not
    give the summary a median PSNR: "0 protected, 1 failed; median PSNR 34.6 dB" spoke of nothing written."""
    rep = batch.BatchReport()
    rep.add(batch.FileResult("a.png", "a_protected.png", "failed", reason="something else wrote it",
                             psnr=34.6, ssimulacra2=88.0))
    assert "PSNR" not in rep.summary() and "SSIMULACRA2" not in rep.summary()
    rep.add(batch.FileResult("b.png", "b_protected.png", "protected", psnr=40.0, ssimulacra2=90.0))
    assert "median PSNR 40.0 dB" in rep.summary() and "median SSIMULACRA2 90.0" in rep.summary()
