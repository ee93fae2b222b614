"""protect verify in plain language: a verdict per image, no "ok" without thresholds, 1:1 sheets,
the skipped latent footprint said once."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _protect(*args):
    return subprocess.run([sys.executable, "-m", "protect", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_verify_speaks_plainly_and_sheets_are_one_to_one(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    for name in ("cel_flat_fills.png", "pixel_palette.png"):
        shutil.copy(ROOT / "samples" / name, art)
    assert _protect(art, "--key", "k", "-q").returncode == 0
    res = _protect("verify", art, tmp_path / "art_protected", "--no-surrogate", "--attacks", "repost,jpeg75",
                   "--report", tmp_path / "report")
    assert res.returncode == 0, res.stderr
    verdicts = [line for line in res.stdout.splitlines() if line.strip().startswith("verdict:")]
    assert len(verdicts) == 4  # two lines per image
    assert any("at 100 %" in v for v in verdicts) and any("typical repost" in v for v in verdicts)
    assert res.stdout.count("latent footprint skipped") == 1
    assert "no thresholds given" in res.stderr and "below threshold" not in res.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert ">ok<" not in page and "meets your thresholds" not in page and "typical repost" in page
    for m in re.finditer(r"<img class='sheet' width='(\d+)' height='(\d+)' src='([^']+)'", page):
        w, h, src = int(m[1]), int(m[2]), m[3]
        assert Image.open(tmp_path / "report" / src).size == (w, h)  # drawn at its own size
    assert "max-width: none" in page
    res = _protect("verify", art, tmp_path / "art_protected", "--no-surrogate", "--attacks", "repost",
                   "--min-psnr", "20", "--report", tmp_path / "report2")
    assert res.returncode == 0 and "0 below threshold" in res.stderr
    assert "meets your thresholds" in (tmp_path / "report2" / "index.html").read_text()


def test_plain_verdict_thresholds():
    from protect.report import plain_verdict
    from protect.verify import AttackResult, PairReport

    rep = PairReport("a", 10, 10, 40.0, 0.99, 92.0, 0.5, 1.0,
                     attacks=[AttackResult("repost", 0.9, 0.5, 0.1, None, None, None)])
    lines = plain_verdict(rep)
    assert lines[0].startswith("hard to see at 100 %") and "leaves little of it (10 %" in lines[1]
    rep.ssimulacra2 = 70.0
    rep.attacks = []
    lines = plain_verdict(rep)
    assert lines[0].startswith("visible at 100 %") and "not measured" in lines[1]
    assert np.isfinite(rep.psnr)
