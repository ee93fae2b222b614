"""Latent shift at equal visibility: protect's default method against i.i.d. Gaussian noise.

    pip install -e ".[bench,surrogate]"     # torch (on these machines: pip install torch==2.13.0 first)
    python benchmarks/isovis.py                          # samples/ + ../shared/corpus, 512 px crops
    python benchmarks/isovis.py --quick                  # CI gate: 4 samples, 256 px, clean + JPEG 75
    python benchmarks/isovis.py --pgd 3                  # also the per-image PGD ceiling on 3 images

For every image (downscaled with INTER_AREA to a long side of at most 1024
px, as a training pipeline would, alpha composited on white), protect's
method at a ladder of strengths and i.i.d. Gaussian RGB noise at a ladder of
standard deviations are added; on the centre crop (``--crop``) we measure
SSIMULACRA2 (``protect.metrics.ssimulacra2``) and the TAEF2 latent shift
``|E(A(p)) - E(A(o))|`` for each attack A (none, JPEG 75, WebP 80,
AdverseCleaner, noisy upscaling, a 1/2 downscale).  Visibility is always that
of the posted image p (before the attack).

Per image, log(latent shift) is interpolated linearly in SSIMULACRA2 along
each ladder, and the **iso-visibility ratio** at a target score (85 and 90)
is the method's shift over Gaussian noise's shift at that same score.
Medians over the images are reported, for all images and for the images the
generator never saw in training (its ``held_out`` list, plus samples/).
1.0 means "no better than random noise of the same visibility".

``--pgd N`` adds the ceiling: per-image projected gradient ascent on TAEF2
itself (L-infinity radius 1-4/255, 10 steps), interpolated the same way,
with its time per image.  It needs the encoder's gradient, so it is a
measurement, never something protect could run.

Writes ``results/isovis.json`` and ``results/isovis.md`` (``--quick``:
``isovis-quick.*``, not committed) and, with ``--gate``, exits 1 when a
median falls below ``[isovis]`` in ``thresholds.toml``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import sys
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np

from bench_paths import CORPUS, RESULTS, ROOT, THRESHOLDS  # first: puts src/ on sys.path
from strength_curve import image_files  # noqa: E402

from protect import io as pio  # noqa: E402
from protect.arrays import data_range_of  # noqa: E402
from protect.declutter import apply_attack  # noqa: E402
from protect.metrics import ssimulacra2  # noqa: E402
from protect.pipeline import DEFAULT_METHOD, METHODS, Settings, generator_weights, protect_image  # noqa: E402
from protect.verify import finite_median, flatten_8bit, surrogate_crop  # noqa: E402

KEY = "isovis-benchmark"
TARGETS = (85.0, 90.0)
ATTACKS = ("none", "jpeg75", "webp80", "adverse_cleaner", "noisy_upscale", "resize_half")
STRENGTHS = (0.2, 0.3, 0.4, 0.55, 0.7, 1.0)
SIGMAS = (1.0, 1.5, 2.2, 3.2, 4.5, 6.5)  # i.i.d. Gaussian noise, 8-bit levels (about 48 to 32 dB)
QUICK_FILES = ("cel_flat_fills.png", "sprite_transparent.png", "comic_text.png", "painting_orient_icc.jpg")


def training_view(path: Path, long_side: int = 1024) -> np.ndarray:
    """The image as a scraper's training pipeline sees it: 8-bit RGB on white, long side <= ``long_side``.

    Returns the *full* downscaled image (protect runs on it; crops come later)."""
    img = pio.read_image(path, max_pixels=None)
    fr = img.frames[0]
    data_range = data_range_of(fr.pixels.dtype)
    px, alpha = fr.pixels, fr.alpha
    h, w = px.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        px = cv2.resize(px, size, interpolation=cv2.INTER_AREA)
        if px.ndim == 2:
            px = px[..., None]
        alpha = None if alpha is None else cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    u8 = flatten_8bit(px, alpha, data_range)
    if u8.shape[2] == 1:
        u8 = np.repeat(u8, 3, axis=2)
    return np.ascontiguousarray(u8)


def gaussian(u8: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal(u8.shape, dtype=np.float32)
    return np.clip(np.rint(u8.astype(np.float32) + np.float32(sigma) * z), 0, 255).astype(np.uint8)


class Encoder:
    """TAEF2 on 8-bit crops, in batches."""

    def __init__(self, threads: int | None):
        from protect.surrogate import load_encoder

        self.enc = load_encoder(threads=threads)

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(images), 4):
            batch = np.stack([np.asarray(x, np.float32) / np.float32(255.0) for x in images[i:i + 4]])
            out.append(self.enc(batch))
        return np.concatenate(out)


def shifts(
    enc: Encoder, original: np.ndarray, variants: list[np.ndarray], attacks, seed: int
) -> dict[str, list[float]]:
    """Per attack, |E(A(v)) - E(A(o))| for every variant v (all crops of one size)."""
    out = {}
    for attack in attacks:
        imgs = [apply_attack(attack, x, seed=seed) for x in [original] + variants]
        if imgs[0].ndim == 2:
            imgs = [np.repeat(x[..., None], 3, 2) for x in imgs]
        side = min(x.shape[0] for x in imgs), min(x.shape[1] for x in imgs)
        imgs = [x[: side[0] // 8 * 8, : side[1] // 8 * 8] for x in imgs]
        z = enc(imgs)
        out[attack] = [float(np.linalg.norm(zi - z[0])) for zi in z[1:]]
    return out


def at_score(scores, values, target: float) -> float | None:
    """log(value) interpolated linearly in score at ``target``; None when the ladder does not reach it.

    A ladder that misses the target by at most 3 points is extrapolated from its two nearest points."""
    s = np.asarray(scores, np.float64)
    v = np.log(np.maximum(np.asarray(values, np.float64), 1e-12))
    order = np.argsort(s)
    s, v = s[order], v[order]
    if len(s) < 2 or target < s[0] - 3 or target > s[-1] + 3:
        return None
    i = int(np.clip(np.searchsorted(s, target) - 1, 0, len(s) - 2))
    if s[i + 1] == s[i]:
        return float(math.exp(v[i]))
    t = (target - s[i]) / (s[i + 1] - s[i])
    return float(math.exp(v[i] + t * (v[i + 1] - v[i])))


def pgd(enc_module, crop: np.ndarray, eps: float, steps: int = 10) -> np.ndarray:
    """L-infinity PGD maximising |E(x + d) - E(x)| on TAEF2 (random start, sign steps)."""
    import torch

    x = torch.from_numpy(crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        z0 = enc_module(x)
    g = torch.Generator().manual_seed(0)
    d = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
    alpha = 2.5 * eps / steps
    for _ in range(steps):
        d.requires_grad_(True)
        loss = (enc_module((x + d).clamp(0, 1)) - z0).pow(2).sum()
        (grad,) = torch.autograd.grad(loss, d)
        d = (d.detach() + alpha * grad.sign()).clamp(-eps, eps)
    p = ((x + d).clamp(0, 1) * 255).round()
    return p[0].permute(1, 2, 0).numpy().astype(np.uint8)


def measure_image(enc: Encoder, path: Path, *, method: str, crop: int, attacks, strengths, sigmas,
                  pgd_eps=()) -> dict:
    full = training_view(path)
    o = surrogate_crop(full, crop)
    seed = sum(path.name.encode()) * 7919
    t0 = time.perf_counter()
    method_full = [protect_image(full, Settings(s, KEY, method))[0] for s in strengths]
    t_method = (time.perf_counter() - t0) / len(strengths)
    m = [surrogate_crop(x, crop) for x in method_full]
    g = [surrogate_crop(gaussian(full, s, seed + i), crop) for i, s in enumerate(sigmas)]
    row = {
        "image": path.name, "crop": list(o.shape[:2]), "method_seconds": t_method,
        "method_ss2": [ssimulacra2(o, x, data_range=255) for x in m],
        "gauss_ss2": [ssimulacra2(o, x, data_range=255) for x in g],
        "method_ss2_full": [ssimulacra2(full, x, data_range=255) for x in method_full],
    }
    sh = shifts(enc, o, m + g, attacks, seed)
    row["method_shift"] = {a: v[: len(m)] for a, v in sh.items()}
    row["gauss_shift"] = {a: v[len(m):] for a, v in sh.items()}
    row["ratio"] = {}
    for a in attacks:
        row["ratio"][a] = {}
        for t in TARGETS:
            num = at_score(row["method_ss2"], row["method_shift"][a], t)
            den = at_score(row["gauss_ss2"], row["gauss_shift"][a], t)
            row["ratio"][a][str(t)] = None if num is None or den is None else num / den
    if pgd_eps:
        t0 = time.perf_counter()
        ps = [pgd(enc.enc.module, o, e / 255.0) for e in pgd_eps]
        row["pgd_seconds"] = (time.perf_counter() - t0) / len(pgd_eps)
        row["pgd_ss2"] = [ssimulacra2(o, x, data_range=255) for x in ps]
        psh = shifts(enc, o, ps, ("none", "jpeg75"), seed)
        row["pgd_ratio"] = {}
        for a in ("none", "jpeg75"):
            row["pgd_ratio"][a] = {}
            for t in TARGETS:
                num = at_score(row["pgd_ss2"], psh[a], t)
                den = at_score(row["gauss_ss2"], row["gauss_shift"][a], t)
                row["pgd_ratio"][a][str(t)] = None if num is None or den is None else num / den
    return row


def summarise(rows: list[dict], attacks, held_out: set[str]) -> dict:
    out = {}
    for group, sel in (("all", rows), ("held_out", [r for r in rows if r["image"] in held_out])):
        g = {"n": len(sel)}
        for a in attacks:
            for t in TARGETS:
                g[f"{a}@{t:g}"] = finite_median(r["ratio"][a][str(t)] for r in sel)
        if any("pgd_ratio" in r for r in sel):
            for a in ("none", "jpeg75"):
                for t in TARGETS:
                    g[f"pgd_{a}@{t:g}"] = finite_median(r["pgd_ratio"][a][str(t)] for r in sel if "pgd_ratio" in r)
            g["pgd_seconds"] = finite_median(r.get("pgd_seconds") for r in sel)
        out[group] = g
    i04 = None
    if rows and 0.4 in rows[0]["strengths"]:
        i04 = rows[0]["strengths"].index(0.4)
    if i04 is not None:
        out["ss2_at_0.4_crop_median"] = finite_median(r["method_ss2"][i04] for r in rows)
        out["ss2_at_0.4_full_median"] = finite_median(r["method_ss2_full"][i04] for r in rows)
    return out


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        f"# Iso-visibility ratio ({result['date']}, method `{result['method']}` = {result['algorithm']})",
        "",
        f"{result['settings']}",
        "",
        "Latent shift of protect's method over i.i.d. Gaussian noise's at the same SSIMULACRA2 (TAEF2; 1.0 = no "
        "better than random noise). Medians over images.",
        "",
        "| attack | all @85 | all @90 | held-out @85 | held-out @90 |",
        "|---|---|---|---|---|",
    ]
    f = lambda v: "n/a" if v is None else f"{v:.2f}×"  # noqa: E731
    for a in result["attacks"]:
        lines.append(f"| {a} | {f(s['all'].get(f'{a}@85'))} | {f(s['all'].get(f'{a}@90'))} | "
                     f"{f(s['held_out'].get(f'{a}@85'))} | {f(s['held_out'].get(f'{a}@90'))} |")
    if "pgd_none@85" in s["all"]:
        lines += ["", "Per-image PGD on TAEF2 (the ceiling; L∞ 1–4/255, 10 steps): "
                  f"{f(s['all']['pgd_none@85'])} at 85, {f(s['all']['pgd_none@90'])} at 90; after JPEG 75 "
                  f"{f(s['all']['pgd_jpeg75@85'])}; {s['all']['pgd_seconds']:.1f} s per crop."]
    if "ss2_at_0.4_crop_median" in s:
        lines += ["", f"SSIMULACRA2 at strength 0.4: median {s['ss2_at_0.4_crop_median']:.1f} on the crops, "
                  f"{s['ss2_at_0.4_full_median']:.1f} on the whole (downscaled) images; n = {s['all']['n']} images "
                  f"({s['held_out']['n']} held out)."]
    lines += ["", "| image | ratio @85 clean | @85 JPEG 75 | SSIMULACRA2 at 0.4 |", "|---|---|---|---|"]
    for r in result["rows"]:
        i = r["strengths"].index(0.4) if 0.4 in r["strengths"] else None
        ss = "" if i is None else f"{r['method_ss2'][i]:.1f}"
        lines.append(f"| {r['image']} | {f(r['ratio']['none']['85.0'])} | "
                     f"{f(r['ratio'].get('jpeg75', {}).get('85.0'))} | {ss} |")
    return "\n".join(lines) + "\n"


def gate(summary: dict, section: str) -> list[str]:
    limits = tomllib.loads(THRESHOLDS.read_text()).get(section, {})
    fails = []
    for name, lo in limits.items():
        v = summary["all"].get(name)
        if v is None or v < lo:
            fails.append(f"iso-visibility ratio {name} = {v} < {lo}")
    return fails


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 samples, 256 px crops, clean + JPEG 75 (CI)")
    ap.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--images", default=None, help="comma-separated file names to keep")
    ap.add_argument("--attacks", default=None, help=f"comma-separated (default {','.join(ATTACKS)})")
    ap.add_argument("--pgd", type=int, default=0, help="PGD ceiling on the first N images")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--gate", action="store_true", help="exit 1 below thresholds.toml [isovis] / [isovis_quick]")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    try:
        enc = Encoder(args.threads)
    except Exception as exc:  # torch or the weights missing
        print(f"isovis: no TAEF2 encoder ({exc}); nothing measured", file=sys.stderr)
        return 1
    if args.quick:
        files = [ROOT / "samples" / n for n in QUICK_FILES]
        crop, attacks = args.crop or 256, ("none", "jpeg75")
        strengths, sigmas = (0.2, 0.4, 0.7, 1.0), (1.0, 2.2, 4.5, 6.5)
    else:
        files = image_files(ROOT / "samples") + (image_files(CORPUS) if CORPUS.is_dir() else [])
        crop = args.crop or 512
        attacks = tuple(args.attacks.split(",")) if args.attacks else ATTACKS
        strengths, sigmas = STRENGTHS, SIGMAS
    if args.images:
        keep = set(args.images.split(","))
        files = [f for f in files if f.name in keep]
    if args.limit:
        files = files[: args.limit]
    meta = generator_weights().meta
    held_out = set(meta.get("held_out", [])) | {p.name for p in (ROOT / "samples").iterdir()}
    rows = []
    t0 = time.time()
    for i, f in enumerate(files):
        r = measure_image(enc, f, method=args.method, crop=crop, attacks=attacks, strengths=strengths,
                          sigmas=sigmas, pgd_eps=(1, 2, 3, 4) if i < args.pgd else ())
        r["strengths"], r["sigmas"] = list(strengths), list(sigmas)
        rows.append(r)
        rr = r["ratio"]["none"]
        print(f"{f.name:36s} ratio@85 {rr['85.0'] or float('nan'):.2f} @90 {rr['90.0'] or float('nan'):.2f}  "
              f"ss2(0.4) {r['method_ss2'][strengths.index(0.4)]:.1f}  ({time.time() - t0:.0f} s)", flush=True)
    summary = summarise(rows, attacks, held_out)
    algorithm = Settings(0.4, "", args.method).algorithm
    result = {
        "date": _dt.date.today().isoformat(), "method": args.method, "algorithm": algorithm,
        "settings": f"{len(files)} images, {crop} px centre crops of images downscaled to ≤ 1024 px; strengths "
                    f"{list(strengths)}; Gaussian σ {list(sigmas)} levels; key {KEY!r}; "
                    f"{platform.machine()}, {platform.python_version()}",
        "attacks": list(attacks), "summary": summary, "rows": rows, "seconds": time.time() - t0,
    }
    name = "isovis-quick" if args.quick else "isovis"
    out = args.out or RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result).split("\n| image")[0])
    if args.gate:
        fails = gate(summary, "isovis_quick" if args.quick else "isovis")
        for line in fails:
            print("FAIL:", line)
        if fails:
            return 1
        print("iso-visibility ratios within thresholds.toml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
