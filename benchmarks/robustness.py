"""Robustness of the protection, as a regression gate.

    python benchmarks/robustness.py --quick          # CI: samples/ only, no surrogate (~1 min)
    python benchmarks/robustness.py                  # release: samples + ../shared/corpus, surrogate if present

Protects a fixed set of images at strength 0.4 with a fixed key, runs every
declutter attack through ``verify_pair`` and collects, per image and as
medians: visibility (PSNR, SSIMULACRA2, CIEDE2000), survival per attack, the
TAEF2 footprint ratio per attack (full mode, when torch and the weights are
there), PNG size growth and protect's speed.  Writes
``benchmarks/results/latest.json`` and ``latest.md`` (full mode; the quick
mode writes ``latest-quick.*``, not committed), then checks every
figure against ``benchmarks/thresholds.toml`` (one reviewed file, a section
per mode) and exits 1 naming each figure that fell below its threshold.

The invisible watermark is measured on top of the noise (noise 0.4 + mark,
as ``protect --mark`` writes it): its visibility together with the noise, and
the fraction of images whose exact payload is read back after each attack.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing
import os
import platform
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench_paths import CORPUS, RESULTS, ROOT, THRESHOLDS  # first: puts src/ on sys.path
from strength_curve import png_size, image_files  # noqa: E402

from protect import __version__  # noqa: E402
from protect import io as pio  # noqa: E402
from protect.declutter import attack_names  # noqa: E402
from protect.pipeline import Settings, protect_image  # noqa: E402
from protect.declutter import apply_attack  # noqa: E402
from protect.metrics import ssimulacra2  # noqa: E402
from protect.arrays import data_range_of  # noqa: E402
from protect.verify import Surrogate, finite_median, flatten_8bit, verify_pair  # noqa: E402
from protect.watermark import detect_mark, embed_mark, payload_from_text  # noqa: E402

KEY = "robustness-benchmark"
MARK = payload_from_text("protect!")
STRENGTH = 0.4


_ENCODER = None


def _init_worker(surrogate: bool) -> None:
    global _ENCODER
    if surrogate:
        from protect.surrogate import load_encoder

        _ENCODER = load_encoder(threads=1)


def measure(path: str) -> dict:
    img = pio.read_image(path, max_pixels=None)
    fr = img.frames[0]
    protect_image(fr.pixels[:16, :16], Settings(STRENGTH, KEY))  # JIT loaded before timing
    t0 = time.perf_counter()
    out, rep = protect_image(fr.pixels, Settings(STRENGTH, KEY), alpha=fr.alpha, keep_palette=img.palette)
    seconds = time.perf_counter() - t0
    vr = verify_pair(fr.pixels, out, name=Path(path).name, alpha=fr.alpha, surrogate=Surrogate(_ENCODER))
    # noise + invisible mark: how visible together, and is the mark read back after each attack
    data_range = data_range_of(fr.pixels.dtype)
    marked = embed_mark(out, MARK, KEY, alpha=fr.alpha)
    flat = flatten_8bit(marked, fr.alpha, data_range)
    recovered = {}
    for attack in attack_names():
        det = detect_mark(apply_attack(attack, flat, seed=0), KEY)
        recovered[attack] = bool(det.found and det.payload == MARK)
    return {
        "file": str(Path(path).relative_to(Path(path).parents[1])),
        "width": vr.width,
        "height": vr.height,
        "psnr": vr.psnr,
        "ssimulacra2": vr.ssimulacra2,
        "ciede2000_mean": vr.ciede2000_mean,
        "ciede2000_p99": vr.ciede2000_p99,
        "coverage": rep.coverage,
        "png_growth": png_size(out, fr.alpha) / png_size(fr.pixels, fr.alpha),
        "protect_seconds": seconds,
        "survival": {a.attack: a.survival for a in vr.attacks},
        "footprint_ratio": {a.attack: a.footprint_ratio for a in vr.attacks},
        "verify_seconds": vr.seconds,
        "ssimulacra2_with_mark": ssimulacra2(fr.pixels, marked, data_range=data_range, alpha=fr.alpha),
        "watermark_recovered": recovered,
    }


def summarise(rows: list[dict]) -> dict:
    attacks = attack_names()
    q = [r["ssimulacra2"] for r in rows]
    mp = sum(r["width"] * r["height"] for r in rows) / 1e6
    return {
        "images": len(rows),
        "psnr_median": finite_median([min(r["psnr"], 99.0) for r in rows]),
        "ssimulacra2_median": finite_median(q),
        "ssimulacra2_p10": float(np.percentile(q, 10)),
        "ciede2000_p99_median": finite_median([r["ciede2000_p99"] for r in rows]),
        "png_growth_median": finite_median([r["png_growth"] for r in rows]),
        "protect_mp_per_s": mp / sum(r["protect_seconds"] for r in rows),
        "survival_median": {a: finite_median([r["survival"].get(a) for r in rows]) for a in attacks},
        "footprint_ratio_median": {a: finite_median([r["footprint_ratio"].get(a) for r in rows]) for a in attacks},
        "ssimulacra2_with_mark_median": finite_median([r["ssimulacra2_with_mark"] for r in rows]),
        "watermark_recovery": {a: float(np.mean([r["watermark_recovered"][a] for r in rows])) for a in attacks},
    }


def _compare(name: str, value: float | None, limit: float, is_max: bool) -> str | None:
    if value is None:
        return f"{name}: not measured (threshold {limit})"
    if is_max and value > limit:
        return f"{name}: {value:.3f} > {limit}"
    if not is_max and value < limit:
        return f"{name}: {value:.3f} < {limit}"
    return None


def check(summary: dict, limits: dict) -> list[str]:
    """Every figure beyond its threshold, as a line naming it.

    A key ``<figure>_min`` (or ``_max``) bounds ``summary[<figure>]``; a
    table ``[<figure>_min]`` bounds the per-attack values of that figure.
    """
    misses = []
    for key, limit in limits.items():
        is_max = key.endswith("_max")
        figure = key.removesuffix("_max") if is_max else key.removesuffix("_min")
        if isinstance(limit, dict):
            for attack, lim in limit.items():
                miss = _compare(f"{key}.{attack}", summary.get(figure, {}).get(attack), lim, is_max)
                if miss:
                    misses.append(miss)
        else:
            miss = _compare(key, summary.get(figure), limit, is_max)
            if miss:
                misses.append(miss)
    return misses


def markdown(summary: dict, meta: dict) -> str:
    fp = summary["footprint_ratio_median"]
    with_fp = any(v is not None for v in fp.values())
    lines = [
        f"Measured {meta['date']} on {meta['machine']} ({meta['mode']} mode, {summary['images']} images, "
        f"strength {STRENGTH}, protect {meta['version']}, {meta['algorithm']}).",
        "",
        "| visibility | value |",
        "|---|---|",
        f"| PSNR median | {summary['psnr_median']:.1f} dB |",
        f"| SSIMULACRA2 median / 10th percentile | {summary['ssimulacra2_median']:.1f} / "
        f"{summary['ssimulacra2_p10']:.1f} |",
        f"| CIEDE2000 p99, median | {summary['ciede2000_p99_median']:.2f} |",
        f"| PNG size ratio, median | {summary['png_growth_median']:.3f} |",
        f"| protect speed (one core) | {summary['protect_mp_per_s']:.0f} MP/s |",
        f"| SSIMULACRA2 median with the invisible mark added | {summary['ssimulacra2_with_mark_median']:.1f} |",
        "",
        "| attack | noise survival (median) | mark recovered (noise + mark) |"
        + (" footprint ratio (median) |" if with_fp else ""),
        "|---|---|---|" + ("---|" if with_fp else ""),
    ]
    for a, v in summary["survival_median"].items():
        row = f"| {a} | {'n/a' if v is None else f'{v:.3f}'} | {100 * summary['watermark_recovery'][a]:.0f} % |"
        if with_fp:
            row += f" {'n/a' if fp[a] is None else f'{fp[a]:.2f}'} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="samples/ only, no surrogate (the CI gate)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-surrogate", action="store_true", help="skip the TAEF2 footprint in full mode")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--samples", type=Path, default=ROOT / "samples", help="the bundled samples (always measured)")
    ap.add_argument("--thresholds", type=Path, default=THRESHOLDS)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    mode = "quick" if args.quick else "full"
    files = image_files(args.samples)
    if not args.quick and args.corpus.is_dir():
        files += image_files(args.corpus)
    surrogate = False
    if not args.quick and not args.no_surrogate:
        from protect.surrogate import SurrogateUnavailable, load_encoder

        try:
            load_encoder()
            surrogate = True
        except SurrogateUnavailable as exc:
            print(f"footprint skipped: {exc}")
    t0 = time.perf_counter()
    # Workers are spawned, not forked: the parent has just run torch (load_encoder above), and a forked
    # child that loads the encoder again hangs in torch's load_state_dict.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init_worker, initargs=(surrogate,),
                             mp_context=context) as pool:
        rows = list(pool.map(measure, [str(f) for f in files]))
    summary = summarise(rows)
    meta = {
        "date": _dt.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores",
        "mode": mode,
        "version": __version__,
        "algorithm": Settings().algorithm,
        "surrogate": surrogate,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    limits = tomllib.loads(args.thresholds.read_text())[mode]
    misses = check(summary, limits)
    result = {"meta": meta, "summary": summary, "images": rows, "thresholds": limits, "misses": misses}
    args.results.mkdir(parents=True, exist_ok=True)
    stem = "latest" if mode == "full" else "latest-quick"  # the committed table is the full one
    pio.atomic_write_bytes(args.results / f"{stem}.json", (json.dumps(result, indent=2) + "\n").encode())
    table = markdown(summary, meta)
    pio.atomic_write_bytes(args.results / f"{stem}.md", table.encode())
    print(table)
    print(f"{len(files)} images in {meta['seconds']} s; results in {args.results / (stem + '.json')}")
    if misses:
        print(f"REGRESSION: {len(misses)} figure(s) below the thresholds in {args.thresholds}:")
        for m in misses:
            print(f"  {m}")
        return 1
    print(f"all figures within {args.thresholds.name} [{mode}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
