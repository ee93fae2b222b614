"""benchmarks/robustness.py: the threshold check fails on a regression and names it."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import robustness  # noqa: E402


def test_check_names_each_figure_beyond_its_threshold():
    summary = {"psnr_median": 41.0, "png_growth_median": 1.2,
               "survival_median": {"jpeg75": 0.2, "blur1": 0.05, "none": None}}
    limits = {"psnr_median_min": 40.0, "png_growth_median_max": 1.1,
              "survival_median_min": {"jpeg75": 0.5, "blur1": 0.03, "none": 0.99}, "ssimulacra2_median_min": 85}
    misses = robustness.check(summary, limits)
    assert misses == ["png_growth_median_max: 1.200 > 1.1", "survival_median_min.jpeg75: 0.200 < 0.5",
                      "survival_median_min.none: not measured (threshold 0.99)",
                      "ssimulacra2_median_min: not measured (threshold 85)"]


def test_thresholds_file_has_both_modes_and_committed_full_result_meets_it():
    limits = tomllib.loads((ROOT / "benchmarks" / "thresholds.toml").read_text())
    assert set(limits) == {"quick", "full", "isovis_quick"}
    assert all(0 < v < 10 for v in limits["isovis_quick"].values())  # iso-visibility ratios (benchmarks/isovis.py)
    import json

    result = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    assert result["meta"]["mode"] == "full"
    assert robustness.check(result["summary"], limits["full"]) == []


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_every_attack_is_gated(mode):
    from protect.declutter import attack_names

    limits = tomllib.loads((ROOT / "benchmarks" / "thresholds.toml").read_text())[mode]
    assert set(limits["survival_median_min"]) == set(attack_names())


def test_watermark_recovery_is_gated_where_it_can_fail():
    limits = tomllib.loads((ROOT / "benchmarks" / "thresholds.toml").read_text())
    for mode in ("quick", "full"):
        gates = limits[mode].get("watermark_recovery_min", {})
        assert gates and all(0 < v <= 1 for v in gates.values())


def test_full_mode_with_the_encoder_finishes(tmp_path):
    """Full mode loads TAEF2 in the parent (to see whether the footprint can be measured) and again in each
    worker: with forked workers the second load hung forever in torch's load_state_dict (found on the first full
    run of the session).  One tiny picture, two workers: it must finish, with the footprint measured."""
    import json
    import subprocess

    from PIL import Image

    pytest.importorskip("torch")
    from protect.surrogate import default_weights

    if default_weights() is None:
        pytest.skip("no TAEF2 weights (../shared/models)")
    samples, corpus, results = tmp_path / "samples", tmp_path / "corpus", tmp_path / "results"
    samples.mkdir()
    corpus.mkdir()
    rng = __import__("numpy").random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype="uint8")).save(samples / "tiny.png")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "robustness.py"), "--samples", str(samples), "--corpus",
           str(corpus), "--results", str(results), "--jobs", "2"]
    try:
        subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("robustness.py full mode hung (encoder loaded in the parent, then in forked workers)")
    meta = json.loads((results / "latest.json").read_text())["meta"]
    assert meta["mode"] == "full" and meta["surrogate"] is True
