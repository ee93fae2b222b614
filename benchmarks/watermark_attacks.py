"""Removal and forgery of the invisible mark without the key: estimation and copy attacks.

    python benchmarks/watermark_attacks.py [--side 768] [--posts 40] [--targets 20] [--quick]

An attacker collects an artist's marked posts (same key, same payload) and
averages what they have in common:

* the residual of each post (luminance minus a Gaussian blur: ``highpass``,
  sigma 3 px; or the blur at sigma 8 minus the post's mean: ``lowpass``, where
  a low-frequency carrier would be), averaged at the same position in every
  post (``plain``) or first folded onto the 128 px sync tile, and onto the
  layout period (``fold128``, ``fold256`` for v3's 256 px layout: the attacker
  has read the code and knows both periods);
* from 5, 20 and 40 posts as they were posted; from 40 JPEG 85 reposts (with
  ``--all``, from 5 and 20 reposts too); the low-pass residual from 40 posts.

The estimate is then (a) *subtracted* from 20 other marked posts (removal):
the share still detected with the right payload is reported, with the PSNR
of the attacked post against the marked one; and (b) *added* to 20 posts that
were never marked (forgery by copying): every detection there is a forgery.
The estimate is scaled to an RMS of 1 level (about the mark's); the folded
high-pass estimate from the most posts is applied at 2 levels as well (``x2``).

Posts are 768 px centre-and-corner crops of ``samples/`` and
``../shared/corpus/`` at 1024 px long side; the attack figures are written to
``benchmarks/results/watermark-attacks.{json,md}`` after every row, and a run
started again with the same settings skips the rows already there (``--fresh``
starts over); ``--rows 0,3-5`` runs only those rows of the list (``--list``
prints it), so a slow machine can run them in pieces.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402

from protect import io as pio  # noqa: E402
from protect.arrays import data_range_of  # noqa: E402
from protect import watermark as wm  # noqa: E402
from protect.declutter import jpeg  # noqa: E402
from protect.metrics import psnr  # noqa: E402
from protect.perceptual import luma8  # noqa: E402
from protect.verify import flatten_8bit  # noqa: E402

KEY = "artist-key-under-attack"
PAYLOAD = wm.payload_from_text("ABCD1234")
CORPUS = ROOT.parent / "shared" / "corpus"
LAYOUT = f"fold{wm.CELLS * wm.CELL}"  # folding onto the payload layout's period (256 px in v3, 512 in v2)


def posts(side: int, n: int) -> list[np.ndarray]:
    """``n`` different ``side`` x ``side`` crops (grey images made RGB), cycling over the images and
    over the centre and four corners of each."""
    files = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix.lower() in pio.EXTENSIONS)
    if CORPUS.is_dir():
        files += sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in pio.EXTENSIONS)
    images = []
    for f in files:
        fr = pio.read_image(f, max_pixels=None).frames[0]
        img = flatten_8bit(fr.pixels, fr.alpha, data_range_of(fr.pixels.dtype))
        scale = 1024 / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA).reshape(-1, round(img.shape[1] * scale), img.shape[2])
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if min(img.shape[:2]) >= side:
            images.append(np.ascontiguousarray(img))
    out = []
    places = ("c", "tl", "br", "tr", "bl")
    for i in range(n):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        where = places[(i // len(images)) % len(places)]
        y = {"c": (h - side) // 2, "tl": 0, "tr": 0, "bl": h - side, "br": h - side}[where]
        x = {"c": (w - side) // 2, "tl": 0, "bl": 0, "tr": w - side, "br": w - side}[where]
        out.append(np.ascontiguousarray(img[y:y + side, x:x + side]))
    return out


def residual(img: np.ndarray, kind: str) -> np.ndarray:
    lum = luma8(img)
    if kind == "highpass":
        return lum - cv2.GaussianBlur(lum, (0, 0), 3.0)
    return cv2.GaussianBlur(lum, (0, 0), 8.0) - lum.mean()


def fold(r: np.ndarray, period: int) -> np.ndarray:
    """The average of ``r`` over every position modulo ``period``, tiled back to ``r``'s shape."""
    h, w = r.shape
    sums = np.zeros((period, period))
    counts = np.zeros((period, period))
    ys, xs = np.arange(h) % period, np.arange(w) % period
    np.add.at(sums, (ys[:, None], xs[None, :]), r)
    np.add.at(counts, (ys[:, None], xs[None, :]), 1)
    tile = sums / np.maximum(counts, 1)
    return np.tile(tile, (-(-h // period), -(-w // period)))[:h, :w]


def estimate(marked: list[np.ndarray], kind: str, folding: str) -> np.ndarray:
    """The averaged residual, scaled to an RMS of 1 level (about the mark's own: the attacker
    has read the code, and an estimate from few posts is mostly artwork, which at its own
    amplitude would wreck the picture instead of removing the mark)."""
    rs = [residual(m, kind) for m in marked]
    if folding != "plain":
        period = int(folding.removeprefix("fold"))
        rs = [fold(r, period) for r in rs]
    est = np.mean(rs, axis=0)
    return (est / max(float(np.sqrt(np.mean(est**2))), 1e-9)).astype(np.float32)


def apply(img: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img.astype(np.float32) + delta[..., None]), 0, 255).astype(np.uint8)


def configs(sizes: list[int], full: bool = False) -> list[tuple[str, str, str, int, float]]:
    """Every row of the attack table: (source, residual, folding, posts, gain)."""
    rows = [("posts", "highpass", folding, n, 1.0) for folding in ("plain", "fold128", LAYOUT) for n in sizes]
    rows += [("posts", "highpass", "fold128", sizes[-1], 2.0), ("posts", "lowpass", "plain", sizes[-1], 1.0),
             ("posts", "lowpass", LAYOUT, sizes[-1], 1.0), ("jpeg85 reposts", "highpass", "fold128", sizes[-1], 1.0),
             ("jpeg85 reposts", "highpass", "plain", sizes[-1], 1.0)]
    if full:
        rows += [("jpeg85 reposts", "highpass", folding, n, 1.0) for folding in ("plain", "fold128", LAYOUT)
                 for n in sizes[:-1]]
    return rows


def _row_id(cfg: tuple) -> str:
    source, kind, folding, n, gain = cfg
    return f"{source}|{kind}|{folding}|{n}|{gain:g}"


def run(side: int, n_posts: int, n_targets: int, sizes: list[int], full: bool = False,
        only: set[int] | None = None, done: dict | None = None, save=None) -> dict:
    """The attack table; ``only``: the indices of :func:`configs` to run; ``done``: rows measured
    before (by their id), kept and not run again; ``save(result)`` is called after every row."""
    pool = posts(side, n_posts + 2 * n_targets)
    cv2.setNumThreads(1)
    sources = pool[:n_posts]
    targets = pool[n_posts:n_posts + n_targets]  # other posts: marked, then cleaned with the estimate
    clean = pool[n_posts + n_targets:]  # never marked: the forger copies the estimate onto them
    marked_sources = [wm.embed_mark(p, PAYLOAD, KEY) for p in sources]
    marked_targets = [wm.embed_mark(p, PAYLOAD, KEY) for p in targets]
    reposts = [jpeg(m, quality=85) for m in marked_sources]
    done = dict(done or {})
    if "baseline" not in done:
        done["baseline"] = float(np.mean([(lambda d: d.found and d.payload == PAYLOAD)(wm.detect_mark(m, KEY))
                                          for m in marked_targets]))
    sources_of = {"posts": marked_sources, "jpeg85 reposts": reposts}
    table = configs(sizes, full)

    def result() -> dict:
        rows = [done[_row_id(c)] for c in table if _row_id(c) in done]
        return {"side": side, "targets": n_targets, "posts_total": n_posts, "algorithm": wm.ALGORITHM,
                "baseline_detected": done["baseline"], "rows": rows}

    for i, cfg in enumerate(table):
        if (only is not None and i not in only) or _row_id(cfg) in done:
            continue
        source_name, kind, folding, n, gain = cfg
        t0 = time.perf_counter()
        est = estimate(sources_of[source_name][:n], kind, folding)
        removed = [apply(m, -gain * est) for m in marked_targets]
        kept = [wm.detect_mark(x, KEY) for x in removed]
        forged = [wm.detect_mark(apply(c, gain * est), KEY) for c in clean]
        done[_row_id(cfg)] = {
            "source": source_name, "residual": kind, "folding": folding, "posts": n, "gain": gain,
            "removal_detected": float(np.mean([d.found and d.payload == PAYLOAD for d in kept])),
            "removal_psnr": float(np.median([psnr(m, x, data_range=255)
                                             for m, x in zip(marked_targets, removed, strict=True)])),
            "removal_min_score": float(min(d.score for d in kept)),
            "forgery_detections": int(sum(d.found for d in forged)),
            "forgery_sync_only": int(sum(d.sync_only for d in forged)),
            "forgery_max_score": float(max(d.score for d in forged)),
            "forgery_min_p": float(min(d.p_value for d in forged)),
            "seconds": time.perf_counter() - t0,
        }
        print(i, done[_row_id(cfg)], flush=True)
        if save is not None:
            save(result())
    return result()


def markdown(res: dict) -> str:
    lines = [f"Posts {res['side']} x {res['side']} px, algorithm {res.get('algorithm', '?')}; marked posts "
             f"detected before any attack: {100 * res['baseline_detected']:.0f} % of {res['targets']}.", "",
             "| estimate from | residual | folding | posts | applied | removal: still detected | PSNR | "
             "forgery: detections | sync only | largest forgery score |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['source']} | {r['residual']} | {r['folding']} | {r['posts']} | x{r['gain']:g} | "
                     f"{100 * r['removal_detected']:.0f} % | {r['removal_psnr']:.1f} dB | "
                     f"{r['forgery_detections']} of {res['targets']} | {r['forgery_sync_only']} | "
                     f"{r['forgery_max_score']:.1f} |")
    return "\n".join(lines) + "\n"


def _parse_rows(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=768)
    ap.add_argument("--posts", type=int, default=40)
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--rows", default="", help="only these rows of the table, e.g. 0,4-6 (see --list)")
    switches = {"--quick": "10 posts, 5 targets", "--all": "also the JPEG 85 reposts at every number of posts",
                "--list": "print the rows of the table and exit", "--fresh": "do not keep the rows of an earlier run"}
    for flag, text in switches.items():
        ap.add_argument(flag, action="store_true", help=text)
    args = ap.parse_args(argv)
    sizes = [n for n in (5, 20, 40) if n <= args.posts]
    if args.quick:
        args.posts, args.targets, sizes = 10, 5, [5, 10]
    if args.list:
        for i, cfg in enumerate(configs(sizes, args.all)):
            print(i, _row_id(cfg))
        return 0
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "watermark-attacks-quick" if args.quick else "watermark-attacks"
    done: dict = {}
    earlier = out / f"{name}.json"
    if earlier.exists() and not args.fresh:
        old = json.loads(earlier.read_text())
        same = (old.get("side"), old.get("targets"), old.get("posts_total"), old.get("algorithm")) == \
            (args.side, args.targets, args.posts, wm.ALGORITHM)
        if same:
            done = {_row_id((r["source"], r["residual"], r["folding"], r["posts"], r["gain"])): r for r in old["rows"]}
            done["baseline"] = old["baseline_detected"]
    t0 = time.perf_counter()

    def save(res: dict) -> None:
        md = (f"Measured {time.strftime('%Y-%m-%d')} (this run {time.perf_counter() - t0:.0f} s; "
              f"seconds per row in the json).\n\n" + markdown(res))
        pio.atomic_write_bytes(out / f"{name}.json", (json.dumps(res, indent=1) + "\n").encode())
        pio.atomic_write_bytes(out / f"{name}.md", md.encode())

    res = run(args.side, args.posts, args.targets, sizes, args.all, _parse_rows(args.rows) or None, done, save)
    save(res)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
