"""The invisible watermark against attacks, beside a peer, in one run.

    python benchmarks/watermark.py [--jobs 2] [--sizes 1024,full] [--fp-crops 2000] [--quick]
                                   [--subset N] [--max-mp M] [--only NAME,..] [--fp-only] [--no-fp]

``--subset N`` keeps every k-th image so that N remain (samples and corpus
alike); ``--max-mp M`` measures full size only on images of at most M
megapixels (1024 px takes them all); ``--only`` names the files to measure.
Every image's row is written to ``benchmarks/results/watermark-rows.json`` as
soon as it is measured, and a run started again skips the rows already there
for the same algorithm (``--fresh`` starts over), so the run can be done in
pieces on a slow machine; the tables are made from every row there.

For every image of ``samples/`` and ``../shared/corpus/`` (when present), at
1024 px long side (area downscale) and at full size:

* invisibility of the mark alone (PSNR, SSIMULACRA2) next to protect's noise
  at strength 0.2, and of noise 0.4 + mark against noise 0.4 alone;
* exact recovery of the 64-bit payload after each attack: none, JPEG 50
  (4:2:0), WebP 80, resize 1/2 (not restored), resize 0.75, centre crop to
  50 % of the area, rotation 2 degrees, AdverseCleaner, noisy upscaling, the
  platform repost, brightness x1.2, smooth noise of 0.5 and 1 level RMS
  (blurred at 8 px: no key needed); for the mark alone and for noise + mark;
* the peer, ``invisible-watermark`` (methods dwtDctSvd and dwtDct, 32 bits),
  on the same images and attacks: exact recovery and mean bit accuracy;
* false positives (``--fp-only`` runs only this): detection on ``--fp-crops``
  unmarked crops (random position and size, 256-1024 px) read with 5 keys in
  turn, and on every marked image with 5 wrong keys; the count of detections,
  the largest payload-layer score and the smallest p-value seen;
* speed: embed + detect on a 2048 x 2048 image, one thread.

Writes ``benchmarks/results/watermark.json`` and ``watermark.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402

from protect import Settings, protect_image  # noqa: E402
from protect import io as pio  # noqa: E402
from protect.arrays import crop_center, data_range_of  # noqa: E402
from protect import watermark as wm  # noqa: E402
from protect.declutter import apply_attack  # noqa: E402
from protect.metrics import psnr, ssimulacra2  # noqa: E402
from protect.verify import flatten_8bit  # noqa: E402

KEY = "watermark-benchmark"
PAYLOAD = wm.payload_from_text("protect!")
PEER_BITS = np.array([int(b) for b in np.binary_repr(0xC0FFEE42, 32)], np.uint8)
CORPUS = ROOT.parent / "shared" / "corpus"


def _resize(x: np.ndarray, f: float) -> np.ndarray:
    h, w = x.shape[:2]
    out = cv2.resize(x, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return out if out.ndim == 3 else out[..., None]


def _crop_half_area(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    return np.ascontiguousarray(crop_center(x, round(h * 0.7071), round(w * 0.7071)))


def _rotate(x: np.ndarray, deg: float) -> np.ndarray:
    h, w = x.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    out = cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out if out.ndim == 3 else out[..., None]


def _smooth_noise(x: np.ndarray, rms: float, seed: int = 3, sigma: float = 8.0) -> np.ndarray:
    """Gaussian noise blurred at ``sigma`` px, scaled to ``rms`` levels, added to every channel alike:
    a change as invisible as the mark itself (1 level RMS is ~48 dB) that needs no key and no other
    post, and that moves a cell's mean by about its RMS (issue 15, "What limits it")."""
    rng = np.random.default_rng(seed)
    n = cv2.GaussianBlur(rng.standard_normal(x.shape[:2]).astype(np.float32), (0, 0), sigma)
    n *= np.float32(rms / max(float(n.std()), 1e-12))
    return np.clip(np.rint(x.astype(np.float32) + n[..., None]), 0, 255).astype(np.uint8)


ATTACKS = {
    "none": lambda x: x,
    "jpeg50": lambda x: apply_attack("jpeg50", x),
    "webp80": lambda x: apply_attack("webp80", x),
    "resize_half": lambda x: apply_attack("resize_half", x),
    "resize_0.75": lambda x: _resize(x, 0.75),
    "crop_half_area": _crop_half_area,
    "rotate_2deg": lambda x: _rotate(x, 2.0),
    "adverse_cleaner": lambda x: apply_attack("adverse_cleaner", x),
    "noisy_upscale": lambda x: apply_attack("noisy_upscale", x, seed=7),
    "repost": lambda x: apply_attack("repost", x),
    "brightness_1.2": lambda x: np.clip(x.astype(np.float32) * 1.2, 0, 255).astype(np.uint8),
    "smooth_noise_0.5": lambda x: _smooth_noise(x, 0.5),
    "smooth_noise_1": lambda x: _smooth_noise(x, 1.0),
}


def _peer(img_rgb: np.ndarray, method: str):
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    bgr = np.ascontiguousarray(np.repeat(img_rgb, 3, axis=2) if img_rgb.shape[2] == 1 else img_rgb[..., ::-1])
    enc = WatermarkEncoder()
    enc.set_watermark("bits", PEER_BITS.tolist())
    marked = enc.encode(bgr, method)
    dec = WatermarkDecoder("bits", 32)

    def read(x: np.ndarray) -> float:
        x = np.ascontiguousarray(np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x)
        if min(x.shape[:2]) < 256:
            return 0.5  # the peer cannot read images under 256 px: chance
        bits = np.array(dec.decode(x, method), np.uint8)
        return float(np.mean(bits == PEER_BITS))

    return marked, read


def picture_files(corpus: bool = True) -> list[Path]:
    """``samples/``, then ``../shared/corpus/`` (when there and ``corpus``), sorted."""
    files = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix.lower() in pio.EXTENSIONS)
    if corpus and CORPUS.is_dir():
        files += sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in pio.EXTENSIONS)
    return files


def load_picture(path: str | Path, size: str) -> np.ndarray:
    """The picture flattened to 8 bits, area-downscaled to ``size`` px long side ("full": as it is)."""
    fr = pio.read_image(path, max_pixels=None).frames[0]
    img = flatten_8bit(fr.pixels, fr.alpha, data_range_of(fr.pixels.dtype))
    if size != "full":
        f = int(size) / max(img.shape[:2])
        if f < 1:
            img = _resize(img, f)
    return img


def measure(args: tuple[str, str]) -> dict:
    path, size = args
    cv2.setNumThreads(1)
    img = load_picture(path, size)
    mark = wm.embed_mark(img, PAYLOAD, KEY)
    noise02, _ = protect_image(img, Settings(0.2, KEY))
    noise04, _ = protect_image(img, Settings(0.4, KEY))
    both = wm.embed_mark(noise04, PAYLOAD, KEY)
    row = {
        "file": Path(path).name, "size": size, "width": img.shape[1], "height": img.shape[0],
        "psnr_mark": psnr(img, mark, data_range=255), "ssimulacra2_mark": ssimulacra2(img, mark, data_range=255),
        "ssimulacra2_noise02": ssimulacra2(img, noise02, data_range=255),
        "ssimulacra2_noise04": ssimulacra2(img, noise04, data_range=255),
        "ssimulacra2_noise04_mark": ssimulacra2(img, both, data_range=255),
        "recovered": {}, "recovered_with_noise": {}, "z": {}, "peer": {},
    }
    peers = {}
    if min(img.shape[:2]) >= 256:
        peers = {m: _peer(img, m) for m in ("dwtDctSvd", "dwtDct")}
    for name, attack in ATTACKS.items():
        det = wm.detect_mark(np.ascontiguousarray(attack(mark)), KEY)
        row["recovered"][name] = bool(det.found and det.payload == PAYLOAD)
        row["z"][name] = det.score
        det2 = wm.detect_mark(np.ascontiguousarray(attack(both)), KEY)
        row["recovered_with_noise"][name] = bool(det2.found and det2.payload == PAYLOAD)
        for method, (marked, read) in peers.items():
            marked_rgb = marked[..., ::-1] if img.shape[2] == 3 else marked[..., :1]
            acc = read(np.ascontiguousarray(attack(np.ascontiguousarray(marked_rgb)))[..., ::-1]
                       if img.shape[2] == 3 else np.ascontiguousarray(attack(np.ascontiguousarray(marked_rgb))))
            row["peer"].setdefault(method, {})[name] = acc
    # false positives: wrong keys on the marked image
    wrong = [wm.detect_mark(mark, f"wrong-{i}") for i in range(5)]
    row["wrong_key_found"] = sum(d.found for d in wrong)
    row["wrong_key_z"] = max(d.score for d in wrong)
    return row


FP_KEYS = [KEY, "artist key", "another artist", "k", "0123456789abcdef"]


def false_positive_crops(files: list[Path], n: int, seed: int = 0) -> dict:
    """``n`` unmarked crops (random position, side 256-1024 px) of ``files``, each read with one of
    FP_KEYS in turn: the detections (all false), the largest score and the smallest p-value."""
    rng = np.random.default_rng(seed)
    images = []
    for f in files:
        fr = pio.read_image(f, max_pixels=None).frames[0]
        images.append(flatten_8bit(fr.pixels, fr.alpha, data_range_of(fr.pixels.dtype)))
    found, scores, ps, sync_only = 0, [], [], 0
    t0 = time.perf_counter()
    for i in range(n):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        side = int(rng.integers(min(256, h, w), min(1024, h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        det = wm.detect_mark(np.ascontiguousarray(img[y:y + side, x:x + side]), FP_KEYS[i % len(FP_KEYS)])
        found += det.found
        sync_only += det.sync_only
        scores.append(det.score)
        ps.append(det.p_value)
        if (i + 1) % 200 == 0:
            print(f"false positives: {i + 1} crops, {found} found, largest score {max(scores):.2f}, "
                  f"smallest p {min(ps):.2g} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"crops": n, "keys": len(FP_KEYS), "found": int(found), "sync_only": int(sync_only),
            "max_z": float(max(scores)), "p99_z": float(np.percentile(scores, 99)), "min_p": float(min(ps))}


def speed() -> dict:
    cv2.setNumThreads(1)
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (2048, 2048, 3), dtype=np.uint8), (0, 0), 1.5)
    wm.detect_mark(wm.embed_mark(img[:256, :256], PAYLOAD, KEY), KEY)  # JIT
    t0 = time.perf_counter()
    m = wm.embed_mark(img, PAYLOAD, KEY)
    t1 = time.perf_counter()
    det = wm.detect_mark(m, KEY)
    t2 = time.perf_counter()
    return {"embed_s": t1 - t0, "detect_s": t2 - t1, "found": det.found}


def _rate(rows: list[dict], key: str, attack: str) -> float:
    vals = [r[key][attack] for r in rows]
    return 100.0 * sum(vals) / len(vals)


def _peer_rate(rows: list[dict], method: str) -> tuple[dict, dict]:
    rows = [r for r in rows if method in r["peer"]]
    exact = {a: 100.0 * np.mean([r["peer"][method][a] == 1.0 for r in rows]) for a in ATTACKS}
    acc = {a: float(np.mean([r["peer"][method][a] for r in rows])) for a in ATTACKS}
    return exact, acc


def markdown(rows: list[dict], fp: dict, sp: dict, size: str) -> str:
    sel = [r for r in rows if r["size"] == size]
    lines = [f"**{size} px** ({len(sel)} images): exact 64-bit payload recovered (%); peer: exact 32 bits (%) / "
             "mean bit accuracy", "",
             "| attack | protect mark | protect noise 0.4 + mark | dwtDctSvd | dwtDct |", "|---|---|---|---|---|"]
    peer = {m: _peer_rate(sel, m) for m in ("dwtDctSvd", "dwtDct")}
    for a in ATTACKS:
        cells = [f"{_rate(sel, 'recovered', a):.0f}", f"{_rate(sel, 'recovered_with_noise', a):.0f}"]
        cells += [f"{peer[m][0][a]:.0f} / {peer[m][1][a]:.2f}" for m in peer]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    med = lambda k: float(np.median([r[k] for r in sel]))  # noqa: E731
    lines += ["", f"Visibility (medians): mark alone PSNR {med('psnr_mark'):.1f} dB, SSIMULACRA2 "
              f"{med('ssimulacra2_mark'):.1f} (noise 0.2: {med('ssimulacra2_noise02'):.1f}); noise 0.4 + mark "
              f"{med('ssimulacra2_noise04_mark'):.1f} (noise 0.4 alone: {med('ssimulacra2_noise04'):.1f}); the mark "
              f"alone at least as good as noise 0.2 on "
              f"{sum(r['ssimulacra2_mark'] >= r['ssimulacra2_noise02'] for r in sel)} of {len(sel)} images.", ""]
    return "\n".join(lines)


def _fp_line(fp: dict) -> str:
    return (f"False positives: {fp['found']} detections on {fp['crops']} unmarked crops read with "
            f"{fp.get('keys', 1)} keys (largest payload-layer score {fp['max_z']:.2f}, 99th percentile "
            f"{fp['p99_z']:.2f}, smallest p-value {fp.get('min_p', float('nan')):.2g}; a mark is found under "
            f"p {wm.P_FOUND:g} with the CRC matching).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--sizes", default="1024,full")
    ap.add_argument("--fp-crops", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="samples only, 1024 px, 200 crops")
    ap.add_argument("--subset", type=int, default=0, help="keep N evenly spaced images of the set")
    ap.add_argument("--max-mp", type=float, default=0.0, help="full size only on images up to this many MP")
    ap.add_argument("--only", default="", help="comma-separated file names to measure")
    ap.add_argument("--fp-only", action="store_true", help="only the false-positive crops")
    ap.add_argument("--no-fp", action="store_true", help="skip the false-positive crops and the speed step")
    ap.add_argument("--fresh", action="store_true", help="do not keep the rows of an earlier run")
    ap.add_argument("--tables-only", action="store_true", help="measure nothing: the tables from the rows there")
    args = ap.parse_args(argv)
    sizes = args.sizes.split(",")
    if args.quick:
        sizes, args.fp_crops = ["1024"], 200
    files = picture_files(corpus=not args.quick)
    every_file = list(files)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    if args.fp_only:
        fp = false_positive_crops(every_file, args.fp_crops)
        line = _fp_line(fp)
        print(line)
        pio.atomic_write_bytes(out / "watermark-fp.json", (json.dumps(fp, indent=1) + "\n").encode())
        pio.atomic_write_bytes(out / "watermark-fp.md", (f"Measured {time.strftime('%Y-%m-%d')}, algorithm "
                                                         f"{wm.ALGORITHM}.\n\n{line}\n").encode())
        return 0
    if args.subset and args.subset < len(files):
        files = [files[round(i * (len(files) - 1) / max(args.subset - 1, 1))] for i in range(args.subset)]
    if args.only:
        names = set(args.only.split(","))
        files = [f for f in files if f.name in names]
    name = "watermark-quick" if args.quick else f"watermark-subset{args.subset}" if args.subset else "watermark"
    cache = out / f"{name}-rows.json"
    done: dict = {}
    if cache.exists() and not args.fresh:
        old = json.loads(cache.read_text())
        if old.get("algorithm") == wm.ALGORITHM:
            done = old["rows"]

    def wanted(f: Path, size: str) -> bool:
        if size != "full" or not args.max_mp:
            return True
        with pio.Image.open(f) as im:
            return im.size[0] * im.size[1] <= args.max_mp * 1e6

    def small(f: Path) -> bool:  # at most 1024 px long: "full" is the same picture as "1024"
        with pio.Image.open(f) as im:
            return max(im.size) <= 1024

    todo = [(str(f), s) for s in sizes for f in files
            if wanted(f, s) and f"{f.name}@{s}" not in done and not (s == "full" and "1024" in sizes and small(f))]
    if args.tables_only:
        todo = []
    t0 = time.perf_counter()

    def save_row(row: dict) -> None:
        """Add a row to the cache, keeping rows another run wrote there meanwhile (runs in parallel)."""
        if cache.exists():
            old = json.loads(cache.read_text())
            if old.get("algorithm") == wm.ALGORITHM:
                done.update({k: v for k, v in old["rows"].items() if k not in done})
        done[f"{row['file']}@{row['size']}"] = row
        pio.atomic_write_bytes(cache, (json.dumps({"algorithm": wm.ALGORITHM, "rows": done}, indent=1,
                                                  default=float) + "\n").encode())

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(measure, todo):
            save_row(row)
            print(row["file"], row["size"], {a: int(v) for a, v in row["recovered"].items()}, flush=True)
    if cache.exists():
        done.update(json.loads(cache.read_text()).get("rows", {}))
    if "full" in sizes and "1024" in sizes:  # pictures at most 1024 px long: their full-size row is the 1024 one
        for f in files:
            if f"{f.name}@1024" in done and f"{f.name}@full" not in done and small(f):
                done[f"{f.name}@full"] = dict(done[f"{f.name}@1024"], size="full", same_as_1024=True)
    names = {f.name for f in files}
    rows = [r for r in done.values() if r["size"] in sizes and r["file"] in names]
    fp = sp = None
    if not args.no_fp:
        fp = false_positive_crops(every_file, args.fp_crops)
        sp = speed()
    wrong = sum(r["wrong_key_found"] for r in rows)
    n_images = len({r["file"] for r in rows})
    text = [f"Measured {time.strftime('%Y-%m-%d')}, algorithm {wm.ALGORITHM} ({n_images} images; this run "
            f"{time.perf_counter() - t0:.0f} s).", ""]
    text += [markdown(rows, fp, sp, s) for s in sizes if any(r["size"] == s for r in rows)]
    text.append(f"{wrong} detections on {5 * len(rows)} marked images read with a wrong key.")
    if fp is not None:
        text.append(_fp_line(fp))
    if sp is not None:
        text.append(f"Speed (2048 x 2048, one thread): embed {sp['embed_s']:.2f} s + detect {sp['detect_s']:.2f} s "
                    f"= {sp['embed_s'] + sp['detect_s']:.2f} s (goal < 0.3 s).")
    md = "\n".join(text) + "\n"
    print(md)
    pio.atomic_write_bytes(out / f"{name}.json", (json.dumps(
        {"rows": rows, "false_positives": fp, "speed": sp}, indent=1, default=float) + "\n").encode())
    pio.atomic_write_bytes(out / f"{name}.md", md.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
