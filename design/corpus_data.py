"""The corpus, its held-out images and the attacks the generator is trained through.

Shared by ``design/train_colour_generator.py`` (the shipped generator,
gen16c-ss2-v2) and the benchmarks that must hold out the same images.  It
came from the first generator's training script (``design/train_generator.py``,
gen16-taef2-v1, removed once superseded; it is in the git history).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# (attack, probability): the expectation over transformations
ATTACKS = [("native", 0.3), ("down2", 0.2), ("down4", 0.15), ("blur1", 0.1), ("jpeg75", 0.15), ("bilateral", 0.1)]
# Corpus images never trained on (one of each kind: painting, comic, engraving, cover, sprite).
HELD_OUT = {
    "van-gogh_starry-night.jpg",
    "comic-E05P01-part.png",
    "looking-glass_tenniel_46.png",
    "cover_just-so.jpg",
    "kipling_4-1.png",
}


def load_rgb(path: Path) -> np.ndarray:
    im = Image.open(path)
    im.load()
    if im.mode in ("RGBA", "LA", "P", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        bg.alpha_composite(im)
        im = bg
    return np.asarray(im.convert("RGB"), np.float32) / 255.0


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def _straight_through(x: torch.Tensor, fn) -> torch.Tensor:
    """fn applied in numpy on every image of the batch; gradient passed as identity."""
    arr = (x.detach().clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
    out = np.stack([fn(a) for a in arr]).astype(np.float32) / 255.0
    return x + (torch.from_numpy(out).permute(0, 3, 1, 2) - x).detach()


def _jpeg75(a: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=75, subsampling=2)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _bilateral(a: np.ndarray) -> np.ndarray:
    return cv2.bilateralFilter(a, 9, 75, 75)


def _blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    r = 3
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = k / k.sum()
    x = F.pad(x, (r, r, r, r), mode="reflect")
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def apply_attack(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "down2":
        return F.avg_pool2d(x, 2)
    if name == "down4":
        return F.avg_pool2d(x, 4)
    if name == "blur1":
        return _blur(x)
    if name == "jpeg75":
        return _straight_through(x, _jpeg75)
    if name == "bilateral":
        return _straight_through(x, _bilateral)
    return x


def native_side(name: str, crop: int) -> int:
    """Side of the crop to cut for ``name`` so that the encoder sees ``crop`` px after the downscale."""
    return {"down2": 2 * crop, "down4": 4 * crop}.get(name, crop)


class Data:
    def __init__(self, files: list[Path], rng: np.random.Generator):
        self.images = [load_rgb(f) for f in files]
        self.rng = rng

    def batch(self, side: int, n: int) -> torch.Tensor:
        out = []
        while len(out) < n:
            a = self.images[self.rng.integers(len(self.images))]
            h, w, _ = a.shape
            if h < side or w < side:
                continue
            y, x = self.rng.integers(0, h - side + 1), self.rng.integers(0, w - side + 1)
            c = a[y : y + side, x : x + side]
            if float(c.std()) < 0.02:  # blank paper teaches nothing
                continue
            out.append(c)
        return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy())
