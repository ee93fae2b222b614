"""A zoom sheet of the invisible mark on flat colour, to look at.

    python benchmarks/watermark_zoom.py [--out docs/img/watermark-zoom.png] [--zoom 2]

Five flat colours (mid grey, light grey, a red, a dark blue, near-white), each
256 x 384 px: the original, the invisible mark alone, and protect's noise at
strength 0.2, side by side, enlarged ``--zoom`` times (nearest neighbour, so
every code value shows as it is).  Flat colour is where a mark shows first.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from protect import Settings, protect_image  # noqa: E402
from protect import io as pio  # noqa: E402
from protect import watermark as wm  # noqa: E402

COLOURS = ((128, 128, 128), (230, 230, 230), (200, 80, 60), (40, 60, 120), (250, 250, 250))
KEY = "zoom-sheet-key"


def sheet(zoom: int) -> np.ndarray:
    rows = []
    gap = np.zeros((256, 8, 3), np.uint8)
    for colour in COLOURS:
        img = np.empty((256, 384, 3), np.uint8)
        img[:] = colour
        mark = wm.embed_mark(img, wm.payload_from_text("protect!"), KEY)
        noise, _ = protect_image(img, Settings(0.2, KEY))
        rows += [np.concatenate([img, gap, mark, gap, noise], axis=1), np.zeros((8, 3 * 384 + 16, 3), np.uint8)]
    out = np.concatenate(rows[:-1], axis=0)
    return np.repeat(np.repeat(out, zoom, axis=0), zoom, axis=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "watermark-zoom.png")
    ap.add_argument("--zoom", type=int, default=2)
    args = ap.parse_args(argv)
    buf = io.BytesIO()
    Image.fromarray(sheet(args.zoom)).save(buf, format="PNG", optimize=True)
    pio.atomic_write_bytes(args.out, buf.getvalue())
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
