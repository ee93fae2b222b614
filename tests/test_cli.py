"""The batch CLI through typer's test runner: outputs, skipping, errors, exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import textured
from PIL import Image
from typer.testing import CliRunner

from protect import batch
from protect import watermark as wm
from protect.cli import app

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def outputs(root: Path) -> list[str]:
    """The images under ``root`` (relative paths), leaving out protect's hidden state files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def make_tree(root: Path) -> dict[str, str]:
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(textured(seed=1)).save(root / "a.png")
    Image.fromarray(textured(seed=2)).save(root / "sub" / "b.jpg", quality=90)
    Image.fromarray(textured(seed=3)[..., 0], "L").save(root / "sub" / "deeper" / "c.webp", lossless=True)
    (root / "readme.txt").write_text("not an image, not picked up")
    return {str(p.relative_to(root)): sha(p) for p in root.rglob("*") if p.is_file()}


def test_folder_mirrored_originals_untouched_rerun_skips(tmp_path):
    src = tmp_path / "art"
    src.mkdir()
    hashes = make_tree(src)
    res = run(src, "--strength", "0.4", "--json", tmp_path / "r.json", "--workers", "1")
    assert res.exit_code == 0, res.output
    out = tmp_path / "art_protected"
    assert outputs(out) == ["a.png", "sub/b.jpg", "sub/deeper/c.webp"]
    assert {str(p.relative_to(src)): sha(p) for p in src.rglob("*") if p.is_file()} == hashes
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["protected"] == 3 and report["failed"] == 0
    for f in report["files"]:
        assert f["status"] == "protected" and f["out_bytes"] > 0 and f["in_bytes"] > 0
        assert f["size_ratio"] > 0 and f["psnr"] > 30 and f["seconds"] >= 0
    stamps = {p: p.stat().st_mtime_ns for p in (out / name for name in outputs(out))}
    res2 = run(src, "--json", tmp_path / "r2.json", "--workers", "1")
    assert res2.exit_code == 0
    r2 = json.loads((tmp_path / "r2.json").read_text())
    assert r2["skipped"] == 3 and r2["protected"] == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    res3 = run(src, "--strength", "0.5", "--json", tmp_path / "r3.json", "--workers", "1")
    assert json.loads((tmp_path / "r3.json").read_text())["protected"] == 3  # settings changed: redone
    res4 = run(src, "--strength", "0.5", "--overwrite", "--json", tmp_path / "r4.json", "--workers", "1")
    assert json.loads((tmp_path / "r4.json").read_text())["protected"] == 3
    assert res3.exit_code == res4.exit_code == 0


def test_state_lives_beside_outputs_so_another_client_sees_it(tmp_path, monkeypatch):
    """A rerun from another user (other cache folder) still knows which settings made the outputs."""
    src = tmp_path / "art"
    src.mkdir()
    make_tree(src)
    assert run(src, "--key", "k", "--workers", "1").exit_code == 0
    out = tmp_path / "art_protected"
    state = out / batch.STATE_DIR / "state.json"
    assert state.is_file() and stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / batch.STATE_DIR).stat().st_mode) == 0o700
    record = json.loads(state.read_text())["entries"]
    assert sorted(record) == ["a.png", "sub/b.jpg", "sub/deeper/c.webp"]
    assert set(record["sub/b.jpg"]) == {"src", "dst", "sha256", "fp", "mac"}
    monkeypatch.setenv("PROTECT_CACHE_DIR", str(tmp_path / "other-client-cache"))
    res = run(src, "--key", "k", "--workers", "1", "--json", tmp_path / "same.json")
    assert json.loads((tmp_path / "same.json").read_text())["skipped"] == 3, res.output
    # outputs are newer than their sources, so only the record can tell that the strength changed
    res = run(src, "--key", "k", "--strength", "0.5", "--workers", "1", "--json", tmp_path / "changed.json")
    assert json.loads((tmp_path / "changed.json").read_text())["protected"] == 3, res.output


def test_single_file_gets_suffix_beside_it(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = run(tmp_path / "a.png", "--workers", "1")
    assert res.exit_code == 0
    assert (tmp_path / "a_protected.png").is_file()
    res = run(tmp_path, "--workers", "1", "--dry-run")  # the folder: the output is not picked up
    assert "a_protected" not in res.output.replace("art_protected", "")
    assert res.output.count("would protect") == 1


def test_out_inside_input_is_not_reprocessed(tmp_path):
    src = tmp_path / "art"
    src.mkdir()
    make_tree(src)
    out = src / "export"
    for _ in range(2):
        res = run(src, "--out", out, "--json", tmp_path / "r.json", "--workers", "1")
        assert res.exit_code == 0
    assert outputs(out) == ["a.png", "sub/b.jpg", "sub/deeper/c.webp"]
    assert json.loads((tmp_path / "r.json").read_text())["skipped"] == 3


def test_bad_files_one_line_each_batch_goes_on(tmp_path):
    src = tmp_path / "art"
    src.mkdir()
    Image.fromarray(textured()).save(src / "good.png")
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("hello")
    data = (src / "good.png").read_bytes()
    (src / "cut.png").write_bytes(data[: len(data) // 2])
    Image.new("CMYK", (8, 8)).save(src / "cmyk.jpg")
    Image.fromarray(textured(300, 300)).save(src / "big.png")
    res = run(src, "--max-pixels", "50000", "--workers", "1", "--json", tmp_path / "r.json")
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 5
    for name, words in [("empty.png", "empty file"), ("text.jpg", "not an image"), ("cut.png", "truncated"),
                        ("cmyk.jpg", "unsupported colour mode"), ("big.png", "too large")]:
        assert any(name in e and words in e for e in errors), (name, errors)
    assert (tmp_path / "art_protected" / "good.png").is_file()
    assert not (tmp_path / "art_protected" / "empty.png").exists()
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["failed"] == 5 and rep["protected"] == 1 and rep["exit_code"] == 1


@pytest.mark.parametrize("args", [["--strength", "1.5"], ["--workers", "-1"], ["--format", "heic"], []])
def test_usage_errors_exit_2(tmp_path, args):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = run(*args, tmp_path / "a.png") if args else run("run")
    assert res.exit_code == 2, res.output


def test_missing_path_exit_2(tmp_path):
    assert run(tmp_path / "nope.png").exit_code == 2


def test_format_and_jpeg_quality(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = run(tmp_path / "a.png", "--format", "jpeg", "--out", tmp_path / "o", "--workers", "1")
    assert res.exit_code == 0
    assert Image.open(tmp_path / "o" / "a.jpg").format == "JPEG"


def test_mask_file_and_folder(tmp_path):
    src = tmp_path / "art"
    (src / "sub").mkdir(parents=True)
    img = textured()
    Image.fromarray(img).save(src / "sub" / "a.png")
    Image.fromarray(img).save(src / "b.png")
    masks = tmp_path / "masks"
    (masks / "sub").mkdir(parents=True)
    m = np.zeros(img.shape[:2], np.uint8)
    m[:, 100:] = 255
    Image.fromarray(m).save(masks / "sub" / "a.png")
    assert run(src, "--mask", masks, "--strength", "1", "--workers", "1").exit_code == 0
    a = np.asarray(Image.open(tmp_path / "art_protected" / "sub" / "a.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "art_protected" / "b.png")).astype(int)
    assert np.array_equal(a[:, :100], img[:, :100]) and (a[:, 100:] != img[:, 100:]).any()
    assert (b[:, 64:100] != img[:, 64:100]).any()  # no mask for b: whole image
    Image.fromarray(m[:50]).save(tmp_path / "wrong.png")
    res = run(src / "b.png", "--mask", tmp_path / "wrong.png", "--workers", "1")
    assert res.exit_code == 1 and "mask" in res.output


def test_key_file_created_private_printed_once_never_in_outputs(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = run(tmp_path / "a.png", "--workers", "1", "--json", tmp_path / "r.json")
    keyfile = Path(os.environ["PROTECT_CONFIG_DIR"]) / "key"
    assert keyfile.is_file() and stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert str(keyfile) in res.output
    key = keyfile.read_text().strip()
    res2 = run(tmp_path / "a.png", "--workers", "1", "--overwrite")
    assert str(keyfile) not in res2.output
    for p in [tmp_path / "a_protected.png", tmp_path / "r.json"]:
        assert key.encode() not in p.read_bytes()
    assert key not in res.output + res2.output
    cache = Path(os.environ["PROTECT_CACHE_DIR"])
    for p in [*cache.rglob("*"), *(tmp_path / batch.STATE_DIR).iterdir()]:
        if p.is_file():
            assert key.encode() not in p.read_bytes()
    assert (tmp_path / batch.STATE_DIR / "state.json").is_file()


def test_key_option_env_and_file_give_different_results(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    outs = []
    for i, (args, env) in enumerate([(["--key", "one"], None), ([], {"PROTECT_KEY": "two"}), ([], None)]):
        assert run(tmp_path / "a.png", "--out", tmp_path / f"o{i}", "--workers", "1", *args, env=env).exit_code == 0
        outs.append((tmp_path / f"o{i}" / "a.png").read_bytes())
    assert len(set(outs)) == 3
    assert run(tmp_path / "a.png", "--out", tmp_path / "o4", "--key", "one", "--workers", "1").exit_code == 0
    assert (tmp_path / "o4" / "a.png").read_bytes() == outs[0]


def test_interrupted_run_resumes_without_half_written_files(tmp_path, monkeypatch):
    src = tmp_path / "art"
    src.mkdir()
    for i in range(6):
        Image.fromarray(textured(seed=i)).save(src / f"{i}.png")
    real = batch.protect_file
    calls = {"n": 0}

    def flaky(job, options):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the batch
        return real(job, options)

    monkeypatch.setattr(batch, "protect_file", flaky)
    res = run(src, "--workers", "1")
    assert res.exit_code != 0
    out = tmp_path / "art_protected"
    assert outputs(out) == ["0.png", "1.png", "2.png"]  # complete files only, no temp files
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [batch.STATE_DIR]
    assert sorted(p.name for p in (out / batch.STATE_DIR).iterdir()) == ["lock", "secret", "state.json"]
    for name in outputs(out):
        Image.open(out / name).load()
    monkeypatch.setattr(batch, "protect_file", real)
    res = run(src, "--workers", "1", "--json", tmp_path / "r.json")
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["skipped"] == 3 and rep["protected"] == 3 and res.exit_code == 0


def test_two_workers_match_one_worker(tmp_path):
    src = tmp_path / "art"
    shutil.copytree(SAMPLES, src, ignore=shutil.ignore_patterns("*.py"))
    r1 = run(src, "--out", tmp_path / "one", "--workers", "1")
    r2 = run(src, "--out", tmp_path / "two", "--workers", "2")
    assert r1.exit_code == r2.exit_code == 0
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two") and outputs(tmp_path / "one")
    for name in outputs(tmp_path / "one"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_verify_adds_perceptual_score(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = run(tmp_path / "a.png", "--verify", "--json", tmp_path / "r.json", "--workers", "1")
    assert res.exit_code == 0 and "SSIMULACRA2" in res.output
    f = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert 0 < f["ssimulacra2"] <= 100


# ------------------------------------------------------------ verify, declutter


def _protected_tree(tmp_path):
    src = tmp_path / "art"
    make_tree(src)
    assert run(src, "--key", "k", "-q").exit_code == 0
    return src, tmp_path / "art_protected"


def test_verify_folders_json_report_and_thresholds(tmp_path):
    src, dst = _protected_tree(tmp_path)
    res = run("verify", src, dst, "--attacks", "none,jpeg75", "--no-surrogate",
              "--json", tmp_path / "v.json", "--report", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    assert "median over 3 pairs" in res.stdout and "jpeg75" in res.stdout
    data = json.loads((tmp_path / "v.json").read_text())
    assert len(data["pairs"]) == 3 and data["errors"] == [] and data["exit_code"] == 0
    assert [a["attack"] for a in data["pairs"][0]["attacks"]] == ["none", "jpeg75"]
    assert data["pairs"][0]["attacks"][0]["survival"] == pytest.approx(1.0)
    # --no-surrogate: no footprint measured, and the run says why, once
    assert data["settings"]["surrogate"] is None
    assert all(p["footprint_note"] == "turned off with --no-surrogate" for p in data["pairs"])
    assert all(a["footprint"] is None and a["footprint_ratio"] is None for p in data["pairs"] for a in p["attacks"])
    assert res.stdout.count("latent footprint skipped: turned off with --no-surrogate") == 1
    html = (tmp_path / "rep" / "index.html").read_text()
    assert html.count("<img class='sheet'") == 3 and "<svg" in html
    sheets = sorted((tmp_path / "rep" / "sheets").iterdir())
    assert len(sheets) == 3
    with Image.open(sheets[0]) as im:
        assert im.width == 5 * 384 + 4 * 4  # five panels, four gaps
    # a threshold that cannot be met: exit 1, one line naming the file and the figure
    res = run("verify", src / "a.png", dst / "a.png", "--attacks", "none", "--no-surrogate", "--min-psnr", "99")
    assert res.exit_code == 1 and "below threshold: a.png: PSNR" in res.output


def test_verify_missing_counterpart_and_mismatch_fail_per_pair(tmp_path):
    src, dst = _protected_tree(tmp_path)
    (dst / "a.png").unlink()
    Image.fromarray(textured(seed=9)[:50]).save(dst / "sub" / "b.jpg")
    res = run("verify", src, dst, "--attacks", "none", "--no-surrogate")
    assert res.exit_code == 1
    assert "error: a.png: no protected counterpart found" in res.output
    assert "error: sub/b.jpg: size or channels differ" in res.output
    assert "1 verified, 2 failed" in res.output


def test_verify_without_surrogate_says_skipped(tmp_path, monkeypatch):
    from protect import surrogate

    def unavailable(path=None, **kw):
        raise surrogate.SurrogateUnavailable("torch is not installed (pip install 'protect[surrogate]')")

    monkeypatch.setattr(surrogate, "load_encoder", unavailable)
    src, dst = _protected_tree(tmp_path)
    res = run("verify", src / "a.png", dst / "a.png", "--attacks", "none")
    assert res.exit_code == 0
    assert "latent footprint skipped: torch is not installed" in res.stdout


def test_verify_usage_errors(tmp_path):
    src, dst = _protected_tree(tmp_path)
    assert run("verify", src, dst / "a.png").exit_code == 2
    res = run("verify", src, dst, "--attacks", "sharpen")
    assert res.exit_code == 2 and "choose from" in res.output


def test_declutter_one_attack_to_file_and_all_to_folder(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(textured(seed=4)).save(src)
    res = run("declutter", src, tmp_path / "a_jpeg.png", "--attack", "jpeg75")
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "a_jpeg.png") as im:
        assert im.size == (128, 96) and im.mode == "RGB"
    res = run("declutter", src, tmp_path / "all", "--attack", "all")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "all").glob("a_*.png"))) == 15
    with Image.open(tmp_path / "all" / "a_resize_half.png") as im:
        assert im.size == (64, 48)
    assert run("declutter", src, tmp_path / "x.png", "--attack", "sharpen").exit_code == 2
    (tmp_path / "bad.png").write_bytes(b"not a png")
    res = run("declutter", tmp_path / "bad.png", tmp_path / "y.png", "--attack", "jpeg75")
    assert res.exit_code == 1 and "bad.png" in res.output and not (tmp_path / "y.png").exists()


# ------------------------------------------------------------ watermark CLI


def _big_cel(path):
    """The flat-colour sample at 1024 x 768: big enough to carry the mark a few times over."""
    with Image.open(SAMPLES / "cel_flat_fills.png") as im:
        im.convert("RGB").resize((1024, 768), Image.BICUBIC).save(path)


def test_mark_then_detect_with_and_without_the_key(tmp_path):
    _big_cel(tmp_path / "cel.png")
    res = run(tmp_path / "cel.png", "--key", "k1", "--mark", "ann_art", "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    row = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert row["psnr"] > 38 and row["mark_readable"] is True
    assert "cannot be read back" not in res.output
    res = run("detect", tmp_path / "cel_protected.png", tmp_path / "cel.png", "--key", "k1",
              "--json", tmp_path / "d.json")
    assert res.exit_code == 0
    lines = res.stdout.strip().splitlines()
    assert lines == [f"{tmp_path / 'cel_protected.png'}: found: ann_art (certain)",
                     f"{tmp_path / 'cel.png'}: no mark found"]
    data = json.loads((tmp_path / "d.json").read_text())["files"]
    assert data[0]["payload_text"] == "ann_art" and data[0]["payload_hex"] == "616e6e5f61727400"
    assert data[0]["confidence"] == "certain" and data[0]["algorithm"] == wm.ALGORITHM == "qim16w-sync128-v3"
    assert data[1]["found"] is False and data[1]["payload_hex"] is None and data[1]["confidence"] is None
    res = run("detect", tmp_path / "cel_protected.png", "--key", "other")
    assert res.exit_code == 0 and "no mark found" in res.stdout
    # --require: exit 1 when a file carries no mark, for scripts
    assert run("detect", tmp_path / "cel_protected.png", "--key", "k1", "--require").exit_code == 0
    res = run("detect", tmp_path / "cel_protected.png", tmp_path / "cel.png", "--key", "k1", "--require")
    assert res.exit_code == 1 and "found: ann_art" in res.stdout
    # a file named twice, or also inside a folder named, is listed once
    res = run("detect", tmp_path / "cel_protected.png", tmp_path / "cel_protected.png", tmp_path, "--key", "k1")
    assert res.exit_code == 0
    assert [ln.split(": ")[0] for ln in res.stdout.strip().splitlines()].count(str(tmp_path / "cel_protected.png")) == 1


def test_mark_self_check_says_when_the_picture_is_too_small(tmp_path):
    Image.fromarray(textured(120, 160)).save(tmp_path / "tiny.png")
    res = run(tmp_path / "tiny.png", "--key", "k1", "--mark", "ann_art", "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert "tiny.png: the invisible mark cannot be read back" in res.output
    row = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert row["mark_readable"] is False and "cannot be read back" in row["note"]
    # without --mark there is nothing to check
    res = run(tmp_path / "tiny.png", "--key", "k1", "--out", tmp_path / "plain", "--json", tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["files"][0]["mark_readable"] is None


def test_mark_options_are_validated(tmp_path):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", "--mark", "far too long").exit_code == 2
    assert run(tmp_path / "a.png", "--mark-hex", "zz").exit_code == 2
    assert run(tmp_path / "a.png", "--mark", "a", "--mark-hex", "0011223344556677").exit_code == 2
    # detect needs a key: without one (and no key file) it says so instead of inventing one
    res = run("detect", tmp_path / "a.png")
    assert res.exit_code == 2 and "no key" in res.output
    (tmp_path / "bad.png").write_bytes(b"nope")
    res = run("detect", tmp_path / "bad.png", "--key", "k")
    assert res.exit_code == 1 and "bad.png" in res.output


def test_method_option(tmp_path):
    from typer.testing import CliRunner

    from protect.cli import app

    src = tmp_path / "a.png"
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(src)
    runner = CliRunner()
    bad = runner.invoke(app, ["run", str(src), "--method", "nope", "--key", "k"])
    assert bad.exit_code == 2 and "--method" in bad.output
    outs = {}
    for m in ("adversarial", "texture"):
        res = runner.invoke(app, ["run", str(src), "--method", m, "--key", "k", "--out", str(tmp_path / m)])
        assert res.exit_code == 0, res.output
        outs[m] = np.asarray(Image.open(tmp_path / m / "a.png"))
    assert not np.array_equal(outs["adversarial"], outs["texture"])


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_prints_the_traceback_a_file_error_hides_never_the_key(tmp_path, monkeypatch, how):
    from protect import pipeline

    key = "a-long-secret-key-for-debug"

    real = batch.protect_image

    def broken(pixels, settings, **kw):
        if settings.key == "warm":  # batch.warm_jit
            return real(pixels, settings, **kw)
        raise RuntimeError(f"deep inside, with {settings.key} in the message")

    Image.fromarray(textured()).save(tmp_path / "a.png")
    monkeypatch.setattr(batch, "protect_image", broken)
    plain = run(tmp_path / "a.png", "--key", key, "--workers", "1")
    assert plain.exit_code == 1 and "error:" in plain.stderr and "Traceback" not in plain.stderr
    assert key not in plain.output
    args = ["--debug"] if how == "flag" else []
    env = {"PROTECT_DEBUG": "1"} if how == "env" else None
    res = run(tmp_path / "a.png", "--key", key, "--workers", "1", "--overwrite", *args, env=env)
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.stderr and "RuntimeError: deep inside" in res.stderr
    assert "in broken" in res.stderr  # the frame where it happened
    assert key not in res.stderr and key not in res.stdout and "<key>" in res.stderr
    assert "Traceback" not in res.stdout
    assert pipeline.protect_image is not broken
