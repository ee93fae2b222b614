"""A zoom sheet: what protect does where artists look first.

    python benchmarks/zoom_sheet.py                      # default method, strength 0.4 -> results/zoom_sheet.png
    python benchmarks/zoom_sheet.py --strength 0.7 --method texture --out /tmp/sheet.png
    python benchmarks/zoom_sheet.py --gauss 2.2          # i.i.d. Gaussian noise of that sigma instead, to compare
    python benchmarks/zoom_sheet.py --grain 2.25         # adaptive_attack.py's "grain" design (0.7 x strength +
                                                         # Gaussian noise of that sigma on the method's support)

One row per kind of region - flat skin, a flat fill, white paper, line art,
a painting - each found automatically in samples/ and ../shared/corpus (the
flattest, brightest or busiest window of a chosen image).  Columns: original,
protected and the difference x10 (grey = unchanged) at 1:1, then the same at
3x with nearest-neighbour zoom, so single pixels show.  The whole image is
protected (as ``protect`` would), then cut.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from isovis import gaussian, training_view  # noqa: E402

from protect.perceptual import REC601  # noqa: E402
from protect.pipeline import DEFAULT_METHOD, METHODS, Settings, protect_image  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
SIDE = 96


def _windows(u8: np.ndarray, side: int, step: int = 16):
    lum = u8.astype(np.float32) @ np.array(REC601, np.float32)
    h, w = lum.shape
    for y in range(0, h - side + 1, step):
        for x in range(0, w - side + 1, step):
            yield y, x, lum[y:y + side, x:x + side], u8[y:y + side, x:x + side]


def pick(u8: np.ndarray, kind: str, side: int = SIDE) -> tuple[int, int]:
    """Top-left corner of the window that best shows ``kind``."""
    best, where = None, (0, 0)
    for y, x, lum, rgb in _windows(u8, side):
        if kind == "flat":
            score = -float(lum.std()) - (100.0 if lum.mean() > 245 or lum.mean() < 10 else 0.0)
        elif kind == "paper":
            score = float(lum.mean()) - 4.0 * float(lum.std())
        elif kind == "skin":
            r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
            skin = (r > 180) & (r > g + 10) & (g > b) & (r - b < 110) & (r - b > 15)
            score = float(skin.mean()) - 0.02 * float(lum.std())
        elif kind == "lines":
            gy, gx = np.gradient(lum)
            e = np.hypot(gx, gy) > 40
            score = float(e.mean()) + (1.0 if 0.05 < e.mean() < 0.35 else 0.0)
        else:  # texture
            score = float(lum.std())
        if best is None or score > best:
            best, where = score, (y, x)
    return where


ROWS = [
    ("flat skin", "renpy/eileen-happy.png", "skin"),
    ("flat fill", "samples/cel_flat_fills.png", "flat"),
    ("white paper", "standardebooks/alice_tenniel_10.png", "paper"),
    ("line art", "samples/ink_line_art.png", "lines"),
    ("painting", "paintings/turner_shipwreck.jpg", "texture"),
]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((18, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def grain(full: np.ndarray, method: str, strength: float, sigma: float, gate: str = "support") -> np.ndarray:
    """The "grain" design experiment of benchmarks/adaptive_attack.py, on one image."""
    from adaptive_attack import MIX_METHOD_SCALE, add_gaussian, support_gate

    half = protect_image(full, Settings(strength * MIX_METHOD_SCALE, "zoom-sheet", method))[0]
    return add_gaussian(half, sigma, np.random.default_rng(1), support_gate(full, half, gate))


def sheet(method: str, strength: float, gauss: float | None, grain_sigma: float | None = None,
          grain_gate: str = "support") -> np.ndarray:
    rows = []
    for title, rel, kind in ROWS:
        path = ROOT / rel if rel.startswith("samples/") else CORPUS / rel
        if not path.is_file():
            continue
        full = training_view(path, long_side=1024)
        if grain_sigma:
            prot = grain(full, method, strength, grain_sigma, grain_gate)
        elif gauss:
            prot = gaussian(full, gauss, 1)
        else:
            prot = protect_image(full, Settings(strength, "zoom-sheet", method))[0]
        y, x = pick(full, kind)
        o, p = full[y:y + SIDE, x:x + SIDE], prot[y:y + SIDE, x:x + SIDE]
        d = np.clip(128 + 10 * (p.astype(np.int32) - o), 0, 255).astype(np.uint8)
        changed = float(np.mean(np.any(p != o, axis=2)))
        maxd = int(np.abs(p.astype(int) - o).max())
        z = lambda a: cv2.resize(a, (3 * SIDE, 3 * SIDE), interpolation=cv2.INTER_NEAREST)  # noqa: E731
        pad = np.full((3 * SIDE - SIDE, SIDE, 3), 255, np.uint8)
        small = [np.vstack([a, pad]) for a in (o, p, d)]
        cells = small + [z(o), z(p), z(d)]
        gap = np.full((3 * SIDE, 6, 3), 255, np.uint8)
        line = np.hstack([c for cell in cells for c in (cell, gap)])
        rows.append(_label(line, f"{title} ({path.name}): {100 * changed:.0f}% of pixels changed, max |d| {maxd}"
                                 "   | 1:1 original, protected, diff x10 | 3x original, protected, diff x10"))
    what = f"i.i.d. Gaussian sigma {gauss}" if gauss else f"{method} strength {strength}"
    if grain_sigma:
        from adaptive_attack import MIX_METHOD_SCALE

        what = f"grain: {method} at {MIX_METHOD_SCALE:g} x {strength} + Gaussian sigma {grain_sigma}, gate {grain_gate}"
    head = _label(np.full((4, rows[0].shape[1], 3), 255, np.uint8), f"protect zoom sheet: {what}")
    return np.vstack([head] + rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS)
    ap.add_argument("--strength", type=float, default=0.4)
    ap.add_argument("--gauss", type=float, default=None, help="show Gaussian noise of this sigma instead")
    ap.add_argument("--grain", type=float, default=None,
                    help="show adaptive_attack.py's 'grain' design with this sigma (2.25 matches strength 0.4)")
    ap.add_argument("--grain-gate", choices=("support", "amplitude"), default="support")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "zoom_sheet.png")
    args = ap.parse_args(argv)
    img = sheet(args.method, args.strength, args.gauss, args.grain, args.grain_gate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
