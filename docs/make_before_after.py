"""Draw docs/img/before_after.png: a 1:1 crop of samples/cel_flat_fills.png before and after protect
(Standard preset, a fixed key), shown at 200 %, beside the difference x10 (grey = unchanged).

    PYTHONPATH=src python docs/make_before_after.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from protect import io as pio
from protect.pipeline import STRENGTH_PRESETS, Settings, protect_image

ROOT = Path(__file__).resolve().parents[1]
CROP = (slice(150, 330), slice(200, 440))  # rows, columns: the face's outline on flat colour
ZOOM = 2


def main() -> None:
    src = pio.read_image(ROOT / "samples" / "cel_flat_fills.png").frames[0].pixels
    out, _ = protect_image(src, Settings(strength=STRENGTH_PRESETS["standard"], key="docs figure"))
    before, after = src[CROP], out[CROP]
    diff = np.clip(128 + 10 * (after.astype(np.int32) - before.astype(np.int32)), 0, 255).astype(np.uint8)
    tiles = [Image.fromarray(t).resize((t.shape[1] * ZOOM, t.shape[0] * ZOOM), Image.NEAREST)
             for t in (before, after, diff)]
    labels = ["original (200 %)", f"protected, Standard = {STRENGTH_PRESETS['standard']} (200 %)",
              "difference x10 (grey = unchanged)"]
    gap, head = 12, 34
    w, h = tiles[0].size
    sheet = Image.new("RGB", (3 * w + 4 * gap, h + head + gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 18)
    except OSError:
        font = ImageFont.load_default()
    for i, (tile, label) in enumerate(zip(tiles, labels, strict=False)):
        x = gap + i * (w + gap)
        sheet.paste(tile, (x, head))
        draw.text((x, 8), label, fill=(30, 30, 30), font=font)
    target = ROOT / "docs" / "img" / "before_after.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, optimize=True)
    print(f"wrote {target} ({sheet.size[0]}x{sheet.size[1]})")


if __name__ == "__main__":
    main()
