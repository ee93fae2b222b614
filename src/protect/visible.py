"""The visible watermark: a text signature or a logo, blended into the picture.

Text is drawn with OpenCV's built-in Hershey "duplex" vector font (public
domain, part of OpenCV itself, so no font file is needed and the result is
the same wherever the same OpenCV runs), at 4x size and reduced with area
averaging for smooth edges: light lettering with a dark outline, legible on
any background.  A logo is any image; its own alpha is used.

Arrays in, arrays out; the logo file is read by the caller through ``io.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["VisibleMark", "POSITIONS", "apply_visible", "text_layer"]

POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center", "tiled")
_SUPERSAMPLE = 4
_FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass(frozen=True)
class VisibleMark:
    """What to draw and where.

    ``scale`` is the mark's height (text) or width (logo) as a fraction of
    the image's shorter side; ``opacity`` 0..1 multiplies the mark's alpha.
    """

    text: str | None = None
    logo: np.ndarray | None = None  # (h, w, 4) uint8 RGBA or (h, w, 3) RGB
    position: str = "bottom-right"
    opacity: float = 0.5
    scale: float = 0.05

    def __post_init__(self):
        if (self.text is None) == (self.logo is None):
            raise ValueError("give either a text or a logo")
        if self.text is not None and not self.text.strip():
            raise ValueError("the visible text is empty")
        if self.text is not None and not self.text.isascii():
            raise ValueError("the visible text must be ASCII (the built-in vector font has no other glyphs)")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {', '.join(POSITIONS)}")
        if not 0.0 < self.opacity <= 1.0:
            raise ValueError("opacity must be in (0, 1]")
        if not 0.005 <= self.scale <= 1.0:
            raise ValueError("scale must be between 0.005 and 1")


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def text_layer(text: str, height: int) -> np.ndarray:
    """(h, w, 4) float32 RGBA in [0, 1]: near-white lettering, dark outline, ``height`` px tall.

    The strokes are drawn thin and thickened by dilation (OpenCV caps the
    stroke width of its text), the outline is a wider dilation of the same.
    """
    big = max(8, height) * _SUPERSAMPLE
    font_scale = big / 22.0  # Hershey glyphs are ~22 units tall at scale 1
    bold = max(1, round(big / 28))  # half the stroke width added by the fill
    ring = max(2, round(big / 14))  # width of the dark outline
    (tw, th), base = cv2.getTextSize(text, _FONT, font_scale, 2)
    pad = bold + ring + _SUPERSAMPLE
    w, h = tw + 2 * pad, th + base + 2 * pad
    w += (-w) % _SUPERSAMPLE
    h += (-h) % _SUPERSAMPLE
    strokes = np.zeros((h, w), np.uint8)
    cv2.putText(strokes, text, (pad, pad + th), _FONT, font_scale, 255, 2, cv2.LINE_AA)
    fill = cv2.dilate(strokes, _disk(bold))
    edge = cv2.dilate(strokes, _disk(bold + ring))
    small = (w // _SUPERSAMPLE, h // _SUPERSAMPLE)
    fill = cv2.resize(fill, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    edge = cv2.resize(edge, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    rgb = fill[..., None] * np.float32(0.96) + (1.0 - fill[..., None]) * np.float32(0.08)
    return np.dstack([rgb, rgb, rgb, np.maximum(fill, edge)]).astype(np.float32)


def _logo_layer(logo: np.ndarray, width: int) -> np.ndarray:
    rgba = logo if logo.shape[2] == 4 else np.dstack([logo, np.full(logo.shape[:2], 255, logo.dtype)])
    rgba = rgba.astype(np.float32) / (255.0 if logo.dtype == np.uint8 else 65535.0)
    h = max(1, round(rgba.shape[0] * width / rgba.shape[1]))
    interp = cv2.INTER_AREA if width < rgba.shape[1] else cv2.INTER_CUBIC
    return np.clip(cv2.resize(rgba, (max(1, width), h), interpolation=interp), 0.0, 1.0)


def _placements(position: str, img_hw: tuple[int, int], mark_hw: tuple[int, int], margin: int) -> list[tuple[int, int]]:
    (H, W), (h, w) = img_hw, mark_hw
    if position == "tiled":
        step_y, step_x = h * 4, w + w // 2
        out = []
        for row, y in enumerate(range(margin, H, step_y)):
            offset = (step_x // 2) * (row % 2)
            out += [(y, x) for x in range(margin - offset, W, step_x)]
        return out
    y = margin if position.startswith("top") else (H - h - margin if position.startswith("bottom") else (H - h) // 2)
    x = margin if position.endswith("left") else (W - w - margin if position.endswith("right") else (W - w) // 2)
    return [(y, x)]


def apply_visible(pixels: np.ndarray, mark: VisibleMark, *, alpha: np.ndarray | None = None) -> np.ndarray:
    """Blend ``mark`` into ``pixels`` ((H, W, 1|3) uint8/uint16); a new array of the same shape and dtype.

    Where the picture is transparent the mark is weakened by the same amount
    (it is never painted onto empty canvas) and the alpha itself is unchanged.
    """
    H, W, C = pixels.shape
    maxval = 255.0 if pixels.dtype == np.uint8 else 65535.0
    size = max(4, round(min(H, W) * mark.scale))
    layer = text_layer(mark.text, size) if mark.text is not None else _logo_layer(mark.logo, size)
    if layer.shape[0] > H or layer.shape[1] > W:  # never larger than the picture
        f = min(H / layer.shape[0], W / layer.shape[1])
        layer = cv2.resize(layer, (max(1, int(layer.shape[1] * f)), max(1, int(layer.shape[0] * f))),
                           interpolation=cv2.INTER_AREA)
    h, w = layer.shape[:2]
    out = pixels.astype(np.float32)
    colour = layer[..., :3] * np.float32(maxval)
    if C == 1:
        colour = (colour @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    a = layer[..., 3:] * np.float32(mark.opacity)
    margin = max(2, round(min(H, W) * 0.02))
    for y, x in _placements(mark.position, (H, W), (h, w), margin):
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, H), min(x + w, W)
        if y1 <= y0 or x1 <= x0:
            continue
        ly, lx = y0 - y, x0 - x
        aa = a[ly:ly + y1 - y0, lx:lx + x1 - x0]
        if alpha is not None:
            aa = aa * (alpha[y0:y1, x0:x1, None].astype(np.float32) / np.float32(maxval))
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = region * (1.0 - aa) + colour[ly:ly + y1 - y0, lx:lx + x1 - x0] * aa
    return np.clip(np.rint(out), 0, maxval).astype(pixels.dtype)
