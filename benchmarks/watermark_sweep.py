"""Try the watermark's settings on the 29 pictures at 1024 px, mark alone (a design tool).

    python benchmarks/watermark_sweep.py [--set '{"CELL": 32, "FLAT_MOVE": 0.4}'] [--tag NAME] [--jobs 2]
                                         [--attacks none,jpeg50] [--no-ssimulacra2] [--full --max-mp 4]

``--set`` overrides module constants of ``protect.watermark`` (upper-case names, JSON values) in
every worker before anything is embedded, and clears its caches, so one run measures one setting
against the same attacks as ``benchmarks/watermark.py`` (smooth noise included), without the peer
and without the noise: about 2 minutes on 2 cores.  Prints the count of pictures whose exact
payload is read after each attack, the median SSIMULACRA2 and PSNR of the mark, and the mean embed
and detect times; writes ``benchmarks/results/watermark-sweep-<tag>.json``.  The curve in
``docs/watermark.md`` ("The curve of what was tried") was measured this way.

A count differs by a few pictures from key to key (the keyed layout and dithers change which cells
carry what): compare settings under the same key, as this tool does.

``--full`` measures the pictures longer than 1024 px at their own size instead (``--max-mp``: only
those of at most that many megapixels).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
import watermark as bench  # noqa: E402  (benchmarks/watermark.py: its attacks, key and payload)

from protect import io as pio  # noqa: E402
from protect import watermark as wm  # noqa: E402
from protect.metrics import psnr, ssimulacra2  # noqa: E402


def _apply(settings: dict) -> None:
    for name, value in settings.items():
        if not name.isupper() or not hasattr(wm, name):
            raise SystemExit(f"watermark has no setting {name!r}")
        setattr(wm, name, value)
    for name in dir(wm):
        cached = getattr(wm, name)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


def measure(job: tuple[str, dict, list[str], bool, bool]) -> dict:
    path, settings, attacks, with_ss2, full = job
    cv2.setNumThreads(1)
    _apply(settings)
    img = bench.load_picture(path, "full" if full else "1024")
    t0 = time.perf_counter()
    mark = wm.embed_mark(img, bench.PAYLOAD, bench.KEY, amplitude=wm.MARK_AMPLITUDE, step=wm.STEP)
    row = {"file": Path(path).name, "width": img.shape[1], "height": img.shape[0],
           "embed_s": time.perf_counter() - t0, "psnr": psnr(img, mark, data_range=255)}
    if with_ss2:
        row["ssimulacra2"] = ssimulacra2(img, mark, data_range=255)
    row["recovered"], row["score"], spent = {}, {}, 0.0
    for name in attacks:
        t0 = time.perf_counter()
        det = wm.detect_mark(np.ascontiguousarray(bench.ATTACKS[name](mark)), bench.KEY)
        spent += time.perf_counter() - t0
        row["recovered"][name] = bool(det.found and det.payload == bench.PAYLOAD)
        row["score"][name] = round(det.score, 1)
    row["detect_s"] = spent / max(len(attacks), 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="{}", help="JSON object: watermark constants to override")
    ap.add_argument("--tag", default="sweep")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--attacks", default=",".join(bench.ATTACKS))
    ap.add_argument("--no-ssimulacra2", action="store_true")
    ap.add_argument("--full", action="store_true", help="the pictures over 1024 px, at their own size")
    ap.add_argument("--max-mp", type=float, default=0.0, help="with --full: only pictures up to this many MP")
    args = ap.parse_args(argv)
    settings = json.loads(args.set)
    _apply(settings)  # fail here, not in a worker, on a name that does not exist
    attacks = args.attacks.split(",")
    files = bench.picture_files()
    if args.full:
        def large(f: Path) -> bool:
            with pio.Image.open(f) as im:
                w, h = im.size
            return max(w, h) > 1024 and (not args.max_mp or w * h <= args.max_mp * 1e6)

        files = [f for f in files if large(f)]
    t0 = time.time()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(measure, [(str(f), settings, attacks, not args.no_ssimulacra2, args.full)
                                       for f in files]))
    where = "at full size" if args.full else "at 1024 px"
    print(f"{args.tag} {json.dumps(settings)}: {len(rows)} pictures {where}, {time.time() - t0:.0f} s")
    print(" ".join(f"{a}:{sum(r['recovered'][a] for r in rows)}" for a in attacks))
    if not args.no_ssimulacra2:
        print(f"SSIMULACRA2 median {np.median([r['ssimulacra2'] for r in rows]):.2f}, "
              f"PSNR median {np.median([r['psnr'] for r in rows]):.2f} dB")
    print(f"embed {np.mean([r['embed_s'] for r in rows]):.2f} s, detect {np.mean([r['detect_s'] for r in rows]):.2f} s "
          "(means per picture and attack)")
    out = ROOT / "benchmarks" / "results" / f"watermark-sweep-{args.tag}.json"
    pio.atomic_write_bytes(out, (json.dumps({"settings": settings, "algorithm": wm.ALGORITHM, "rows": rows},
                                            indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
