"""How far protect's perturbation moves a latent-diffusion autoencoder, per method.

    pip install -e ".[surrogate]"            # torch (on these machines: pip install torch==2.13.0 first)
    python benchmarks/footprint.py           # samples/ + ../shared/corpus, writes results/footprint.{json,md}
    python benchmarks/footprint.py --limit 4 --attacks none,jpeg75 --strengths 0.4   # a quick look

Footprint ratio = |E(A(p)) - E(A(o))| / |E(A(g)) - E(A(o))|: the latent shift
of the protected image p over that of the original o plus i.i.d. Gaussian
noise g at the same MSE (``verify.gaussian_twin``), E the TAEF2 encoder
(``../shared/models``), A an attack.  1.0 = no better than random noise.

Per image, method ("adversarial", the shipped generator; "texture", the
hand-shaped kernel) and strength:

* native pixels: the centre crop (``--crop``, default 512) of o, p and g,
  clean and after each declutter attack (attacks at ``--attack-strength``
  only, default 0.4; the others get the clean figure);
* training size: the whole image area-downscaled (OpenCV INTER_AREA) to a
  long side of 1024 and 512 px, then the same centre crop; images already
  that small are left out of that column (n/a);
* SSIMULACRA2 of p against o at full resolution (alpha flattened).

Medians over the images are printed and written as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from bench_paths import CORPUS, RESULTS, ROOT  # first: puts src/ on sys.path
from strength_curve import image_files  # noqa: E402

from protect import io as pio  # noqa: E402
from protect.arrays import data_range_of  # noqa: E402
from protect.declutter import apply_attack, attack_names, capped_size, resize_to  # noqa: E402
from protect.metrics import ssimulacra2  # noqa: E402
from protect.pipeline import METHODS, Settings, protect_image  # noqa: E402
from protect.verify import encoder_input, finite_median, flatten_8bit, gaussian_twin, surrogate_crop  # noqa: E402

KEY = "footprint-benchmark"
TRAIN_SIZES = (1024, 512)

_ENC = None


def _init(threads: int) -> None:
    global _ENC
    from protect.surrogate import load_encoder

    _ENC = load_encoder(threads=threads)


def _latent(u8: np.ndarray, crop: int) -> np.ndarray:
    return _ENC(encoder_input(u8, crop))


def _ratio(o: np.ndarray, p: np.ndarray, g: np.ndarray, crop: int, z0: np.ndarray | None = None) -> float | None:
    if np.array_equal(p, o):  # nothing was added here (e.g. the texture mask found no texture): no ratio
        return None
    z0 = _latent(o, crop) if z0 is None else z0
    num = np.linalg.norm(_latent(p, crop) - z0)
    den = np.linalg.norm(_latent(g, crop) - z0)
    return float(num / max(den, 1e-12))


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2, dtype=np.float64))


def _area(u8: np.ndarray, long_side: int) -> np.ndarray:
    """Area downscale to ``long_side`` as a training pipeline would (callers skip smaller images)."""
    return resize_to(u8, *capped_size(*u8.shape[:2], long_side), cv2.INTER_AREA)


def measure(job: tuple) -> list[dict]:
    path, methods, strengths, attack_strength, attacks, crop = job
    img = pio.read_image(path, max_pixels=None)
    fr = img.frames[0]
    data_range = data_range_of(fr.pixels.dtype)
    o_full = flatten_8bit(fr.pixels, fr.alpha, data_range)
    o_crop = surrogate_crop(o_full, crop)
    rows = []
    cache: dict[tuple, np.ndarray] = {}  # clean latents of the original, per (attack or size)
    for method in methods:
        for strength in strengths:
            t0 = time.perf_counter()
            out, rep = protect_image(fr.pixels, Settings(strength, KEY, method), alpha=fr.alpha,
                                     keep_palette=img.palette)
            seconds = time.perf_counter() - t0
            p_full = flatten_8bit(out, fr.alpha, data_range)
            row = {
                "image": Path(path).name, "method": method, "strength": strength, "psnr": rep.psnr,
                "ssimulacra2": ssimulacra2(o_full, p_full, data_range=255), "seconds": seconds,
                "megapixels": o_full.shape[0] * o_full.shape[1] / 1e6, "native": {}, "downscaled": {},
            }
            p_crop = surrogate_crop(p_full, crop)
            seed = abs(hash((Path(path).name, method, strength))) % (2**31)
            g_crop = gaussian_twin(o_crop, _mse(p_crop, o_crop), seed=seed)
            for attack in (attacks if strength == attack_strength else ["none"]):
                ao, ap, ag = (apply_attack(attack, x, seed=seed) for x in (o_crop, p_crop, g_crop))
                key = ("attack", attack)
                if key not in cache:
                    cache[key] = _latent(ao, crop)
                row["native"][attack] = _ratio(ao, ap, ag, crop, cache[key])
            g_full = gaussian_twin(o_full, _mse(p_full, o_full), seed=seed + 1)
            for size in TRAIN_SIZES:
                if max(o_full.shape[:2]) <= size:
                    row["downscaled"][str(size)] = None
                    continue
                key = ("size", size)
                ao = _area(o_full, size)
                if key not in cache:
                    cache[key] = _latent(ao, crop)
                row["downscaled"][str(size)] = _ratio(ao, _area(p_full, size), _area(g_full, size), crop, cache[key])
            rows.append(row)
    return rows


def _p10(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.percentile(v, 10)) if v else None


def summarise(rows: list[dict], attacks: list[str]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["strength"]), []).append(r)
    out = []
    for (method, strength), rs in sorted(groups.items()):
        s = {
            "method": method, "strength": strength, "images": len(rs),
            "psnr_median": finite_median(r["psnr"] for r in rs),
            "ssimulacra2_median": finite_median(r["ssimulacra2"] for r in rs),
            "ssimulacra2_p10": _p10(r["ssimulacra2"] for r in rs),
            "native": {a: finite_median(r["native"].get(a) for r in rs) for a in attacks},
            "downscaled": {str(n): finite_median(r["downscaled"][str(n)] for r in rs) for n in TRAIN_SIZES},
            "seconds_per_megapixel": finite_median(r["seconds"] / r["megapixels"] for r in rs),
        }
        s["native_worst_attack"] = min(
            ((v, a) for a, v in s["native"].items() if v is not None and a != "none"), default=(None, None)
        )
        out.append(s)
    return out


def _f(v, fmt="{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def markdown(summary: list[dict], attacks: list[str], meta: dict) -> str:
    lines = [
        f"Footprint ratio vs i.i.d. Gaussian noise at the same MSE (TAEF2), medians over {meta['images']} images; "
        f"native = centre crop {meta['crop']} px; attacks at strength {meta['attack_strength']}.",
        "",
        "| method | strength | PSNR | SSIMULACRA2 median / p10 | native clean | worst attack | 1024 px | 512 px |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        worst_v, worst_a = s["native_worst_attack"]
        worst = "–" if worst_v is None else f"{worst_v:.2f} ({worst_a})"
        lines.append(
            f"| {s['method']} | {s['strength']} | {_f(s['psnr_median'], '{:.1f}')} | "
            f"{_f(s['ssimulacra2_median'], '{:.1f}')} / {_f(s['ssimulacra2_p10'], '{:.1f}')} | "
            f"{_f(s['native'].get('none'))} | {worst} | {_f(s['downscaled']['1024'])} | {_f(s['downscaled']['512'])} |"
        )
    at = [s for s in summary if s["strength"] == meta["attack_strength"]]
    if at and len(attacks) > 1:
        lines += ["", f"Per attack, native pixels, strength {meta['attack_strength']}:", "",
                  "| attack | " + " | ".join(s["method"] for s in at) + " |",
                  "|---|" + "---|" * len(at)]
        for a in attacks:
            lines.append(f"| {a} | " + " | ".join(_f(s["native"].get(a)) for s in at) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strengths", default="0.2,0.4,0.7")
    ap.add_argument("--attack-strength", type=float, default=0.4)
    ap.add_argument("--attacks", default="all", help="comma-separated declutter attacks, or 'all'")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--crop", type=int, default=512, help="native centre crop side (<= 768 as the issue asks)")
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "footprint")
    args = ap.parse_args(argv)
    strengths = [float(s) for s in args.strengths.split(",")]
    chosen = [a for a in args.attacks.split(",") if a != "none"]
    attacks = attack_names() if args.attacks == "all" else ["none", *chosen]
    methods = args.methods.split(",")
    files = image_files(ROOT / "samples")
    if not args.no_corpus and CORPUS.is_dir():
        files += image_files(CORPUS)
    files = files[: args.limit] if args.limit else files
    jobs = [(str(f), methods, strengths, args.attack_strength, attacks, args.crop) for f in files]
    t0 = time.time()
    rows: list[dict] = []
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(1,)) as ex:
        for i, rs in enumerate(ex.map(measure, jobs), 1):
            rows += rs
            r = rs[0]
            print(f"[{i}/{len(jobs)}] {r['image']}: " + ", ".join(
                f"{x['method']} {x['strength']} ratio {x['native']['none']:.2f} ssimulacra2 {x['ssimulacra2']:.1f}"
                for x in rs), flush=True)
    summary = summarise(rows, attacks)
    meta = {
        "date": _dt.date.today().isoformat(), "images": len(files), "crop": args.crop,
        "attack_strength": args.attack_strength, "strengths": strengths, "attacks": attacks,
        "machine": platform.platform(), "seconds": round(time.time() - t0, 1),
    }
    md = markdown(summary, attacks, meta)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1))
    args.out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
