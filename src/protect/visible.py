"""The visible watermark: a text signature or a logo, blended into the picture.

Text is drawn with Pillow in an OFL-licensed font found on this computer
(Noto Sans CJK / Noto Sans JP / Source Han Sans, see :func:`find_font`; or
the file named by ``PROTECT_FONT``), so "©" and Japanese work.  When no such
font is installed, ASCII text falls back to OpenCV's built-in Hershey
"duplex" vector font (public domain, part of OpenCV, no font file needed);
other text is refused with a message saying what to install.  Both are
drawn at 4x size and reduced with area averaging: light lettering with a
dark outline, legible on any background.  A logo is any image; its own
alpha is used.  A signature that does not fit inside the picture's margins
is drawn smaller, and :func:`apply_visible` says so (``notes``).

Arrays in, arrays out; the logo file is read by the caller through ``io.py``.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .arrays import data_range_of
from .kernels.rec601 import REC601

__all__ = ["VisibleMark", "POSITIONS", "HERSHEY", "FONT_ENV", "apply_visible", "find_font", "text_layer",
           "font_text_layer"]

POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center", "tiled")
_SUPERSAMPLE = 4
_FONT = cv2.FONT_HERSHEY_DUPLEX
HERSHEY = "hershey"  # VisibleMark(font=HERSHEY): OpenCV's built-in vector font (ASCII only)
FONT_ENV = "PROTECT_FONT"
#: OFL-licensed fonts with Japanese glyphs, in order of preference (file names as the
#: Debian/Ubuntu packages fonts-noto-cjk, Google Fonts and Adobe ship them).
FONT_FILES = (
    "NotoSansCJK-Bold.ttc", "NotoSansCJKjp-Bold.otf", "NotoSansJP-Bold.otf", "NotoSansJP-Bold.ttf",
    "NotoSansCJK-Regular.ttc", "NotoSansCJKjp-Regular.otf", "NotoSansJP-Regular.otf", "NotoSansJP-Regular.ttf",
    "NotoSansJP-VariableFont_wght.ttf", "NotoSansJP[wght].ttf",
    "SourceHanSans-Bold.ttc", "SourceHanSansJP-Bold.otf", "SourceHanSans-Regular.ttc", "SourceHanSansJP-Regular.otf",
)
NO_FONT = ("no font with these characters was found: install Noto Sans CJK (Debian/Ubuntu: apt install "
           "fonts-noto-cjk; Windows/macOS: install \"Noto Sans JP\" from fonts.google.com) or set "
           f"{FONT_ENV} to an OTF/TTF/TTC font file; without one only ASCII text can be drawn")


def _font_dirs() -> list[Path]:
    home = Path.home()
    if sys.platform == "win32":
        return [Path(os.environ.get("WINDIR", r"C:\Windows")) / "Fonts",
                Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "Microsoft" / "Windows" / "Fonts"]
    if sys.platform == "darwin":
        return [home / "Library" / "Fonts", Path("/Library/Fonts"), Path("/System/Library/Fonts")]
    data = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return [Path(data) / "fonts", home / ".fonts", Path("/usr/local/share/fonts"), Path("/usr/share/fonts")]


@functools.cache
def _search_fonts(dirs: tuple[Path, ...]) -> str | None:
    wanted = {name.lower(): rank for rank, name in enumerate(FONT_FILES)}
    best = None
    for folder in dirs:
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                rank = wanted.get(name.lower())
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, os.path.join(dirpath, name))
    return best[1] if best else None


def find_font() -> str | None:
    """The font file for text: ``$PROTECT_FONT``, else the first of :data:`FONT_FILES` found
    in the user's and the system's font folders; None when there is none."""
    chosen = os.environ.get(FONT_ENV)
    if chosen:
        if not Path(chosen).is_file():
            raise ValueError(f"{FONT_ENV}={chosen}: no such font file")
        return chosen
    return _search_fonts(tuple(_font_dirs()))


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
    font: str | None = None  # a font file, HERSHEY, or None: find_font(), else HERSHEY for ASCII text

    def __post_init__(self):
        if (self.text is None) == (self.logo is None):
            raise ValueError("give either a text or a logo")
        if self.text is not None and not self.text.strip():
            raise ValueError("the visible text is empty")
        if self.text is not None:
            if any(ord(c) < 32 for c in self.text):
                raise ValueError("the visible text must be one line without control characters")
            font = self.font if self.font is not None else find_font()
            if font is None or font == HERSHEY:
                if not self.text.isascii():
                    raise ValueError(NO_FONT if font is None else
                                     "the built-in vector font has only ASCII glyphs; give a font file")
                font = HERSHEY
            elif not Path(font).is_file():
                raise ValueError(f"font file not found: {font}")
            object.__setattr__(self, "font", font)
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


@functools.lru_cache(maxsize=8)
def _pil_font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size=size, index=0)  # in a .ttc, face 0 is the Japanese one (Noto, Source Han)


def font_text_layer(text: str, height: int, font: str) -> np.ndarray:
    """Like :func:`text_layer`, drawn by Pillow in the font file ``font`` (the em is ``height`` px)."""
    from PIL import Image, ImageDraw

    big = max(8, height) * _SUPERSAMPLE
    ring = max(2, round(big / 14))
    face = _pil_font(font, big)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=face,
                                                                               stroke_width=ring)
    pad = _SUPERSAMPLE
    w, h = int(right - left) + 2 * pad, int(bottom - top) + 2 * pad
    w += (-w) % _SUPERSAMPLE
    h += (-h) % _SUPERSAMPLE
    layers = []
    for stroke in (0, ring):
        canvas = Image.new("L", (w, h), 0)
        ImageDraw.Draw(canvas).text((pad - left, pad - top), text, font=face, fill=255, stroke_width=stroke,
                                    stroke_fill=255)
        layers.append(np.asarray(canvas))
    small = (w // _SUPERSAMPLE, h // _SUPERSAMPLE)
    fill, edge = (cv2.resize(m, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0 for m in layers)
    rgb = fill[..., None] * np.float32(0.96) + (1.0 - fill[..., None]) * np.float32(0.08)
    return np.dstack([rgb, rgb, rgb, np.maximum(fill, edge)]).astype(np.float32)


def _logo_layer(logo: np.ndarray, width: int) -> np.ndarray:
    rgba = logo if logo.shape[2] == 4 else np.dstack([logo, np.full(logo.shape[:2], 255, logo.dtype)])
    rgba = rgba.astype(np.float32) / data_range_of(logo.dtype)
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


def apply_visible(pixels: np.ndarray, mark: VisibleMark, *, alpha: np.ndarray | None = None,
                  notes: list[str] | None = None) -> np.ndarray:
    """Blend ``mark`` into ``pixels`` ((H, W, 1|3) uint8/uint16); a new array of the same shape and dtype.

    Where the picture is transparent the mark is weakened by the same amount
    (it is never painted onto empty canvas) and the alpha itself is unchanged.
    A mark that would be clipped by the picture's edges (or its margins, but
    for ``tiled``) is drawn smaller; a line saying so is appended to ``notes``.
    """
    H, W, C = pixels.shape
    data_range = data_range_of(pixels.dtype)
    size = max(4, round(min(H, W) * mark.scale))
    if mark.text is None:
        assert mark.logo is not None  # VisibleMark holds a text or a logo
        layer = _logo_layer(mark.logo, size)
    elif mark.font in (None, HERSHEY):
        layer = text_layer(mark.text, size)
    else:
        layer = font_text_layer(mark.text, size, mark.font)
    margin = max(2, round(min(H, W) * 0.02))
    room_h, room_w = (H, W) if mark.position == "tiled" else (H - 2 * margin, W - 2 * margin)
    if layer.shape[0] > room_h or layer.shape[1] > room_w:  # never clipped by the picture's edges
        f = max(min(room_h / layer.shape[0], room_w / layer.shape[1]), 1e-3)
        if notes is not None:
            notes.append(f"the visible {'signature' if mark.text is not None else 'logo'} did not fit and was "
                         f"drawn at {100 * f:.0f} % of the requested size (a shorter text or a smaller "
                         "--visible-scale avoids this)")
        layer = cv2.resize(layer, (max(1, int(layer.shape[1] * f)), max(1, int(layer.shape[0] * f))),
                           interpolation=cv2.INTER_AREA)
    h, w = layer.shape[:2]
    out = pixels.astype(np.float32)
    colour = layer[..., :3] * np.float32(data_range)
    if C == 1:
        colour = (colour @ np.array(REC601, np.float32))[..., None]
    a = layer[..., 3:] * np.float32(mark.opacity)
    for y, x in _placements(mark.position, (H, W), (h, w), margin):
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, H), min(x + w, W)
        if y1 <= y0 or x1 <= x0:
            continue
        ly, lx = y0 - y, x0 - x
        aa = a[ly:ly + y1 - y0, lx:lx + x1 - x0]
        if alpha is not None:
            aa = aa * (alpha[y0:y1, x0:x1, None].astype(np.float32) / np.float32(data_range))
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = region * (1.0 - aa) + colour[ly:ly + y1 - y0, lx:lx + x1 - x0] * aa
    return np.clip(np.rint(out), 0, data_range).astype(pixels.dtype)
