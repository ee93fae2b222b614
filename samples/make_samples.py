"""Regenerate the artwork-like sample images in this folder.

    python samples/make_samples.py

Everything is drawn from a fixed seed, so the files are reproducible (up to
encoder versions).  Each file exercises one case that protect must handle:

=========================  ==================================================
file                       case
=========================  ==================================================
cel_flat_fills.png         flat colour fills with anti-aliased edges (RGB)
ink_line_art.png           black line art and hatching on white (greyscale L)
sky_gradient.png           smooth gradients with painted clouds (RGB)
comic_text.png             a comic panel with lettering (RGB)
sprite_transparent.png     a character sprite on a transparent background (RGBA)
painting_orient_icc.jpg    painterly JPEG, EXIF orientation 6, sRGB ICC profile
painting_16bit.png         painterly 16-bit RGB PNG
pixel_palette.png          palette (P mode) pixel art with a transparent colour
=========================  ==================================================
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(20261122)


def _smooth_noise(h: int, w: int, sigma: float) -> np.ndarray:
    n = RNG.standard_normal((h, w)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / (n.std() + 1e-6)


def painterly(h: int, w: int) -> np.ndarray:
    """Float RGB in [0, 1]: a soft background with many brush strokes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([0.35 + 0.3 * yy / h, 0.45 + 0.2 * xx / w, 0.6 - 0.2 * yy / h], -1)
    canvas = (base * 255).astype(np.uint8).copy()
    for _ in range(900):
        c = tuple(int(v) for v in RNG.integers(30, 230, 3))
        x0, y0 = int(RNG.integers(0, w)), int(RNG.integers(0, h))
        ang = RNG.uniform(0, np.pi)
        ln = RNG.uniform(8, 40)
        x1, y1 = int(x0 + ln * np.cos(ang)), int(y0 + ln * np.sin(ang))
        cv2.line(canvas, (x0, y0), (x1, y1), c, int(RNG.integers(2, 7)), cv2.LINE_AA)
    img = canvas.astype(np.float32) / 255
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    img += 0.03 * _smooth_noise(h, w, 1.0)[..., None]
    return np.clip(img, 0, 1)


def cel_flat_fills() -> Image.Image:
    w, h = 640, 480
    im = Image.new("RGB", (w * 2, h * 2), (250, 236, 214))
    d = ImageDraw.Draw(im)
    d.rectangle([0, h * 1.3, w * 2, h * 2], fill=(120, 170, 90))
    d.ellipse([300, 200, 900, 800], fill=(240, 200, 170), outline=(60, 40, 40), width=8)
    d.ellipse([430, 380, 520, 470], fill=(255, 255, 255), outline=(40, 30, 30), width=6)
    d.ellipse([680, 380, 770, 470], fill=(255, 255, 255), outline=(40, 30, 30), width=6)
    d.ellipse([460, 410, 500, 450], fill=(50, 90, 160))
    d.ellipse([710, 410, 750, 450], fill=(50, 90, 160))
    d.arc([500, 520, 700, 680], 20, 160, fill=(150, 40, 50), width=10)
    d.polygon([(250, 260), (600, 60), (950, 260), (900, 330), (300, 330)], fill=(90, 60, 140),
              outline=(40, 20, 60))
    return im.resize((w, h), Image.LANCZOS)


def ink_line_art() -> Image.Image:
    w, h = 600, 600
    canvas = np.full((h * 2, w * 2), 252, np.uint8)
    for _stroke in range(14):
        pts = np.cumsum(RNG.normal(0, 18, (30, 2)), 0) + RNG.uniform(200, 1000, 2)
        cv2.polylines(canvas, [pts.astype(np.int32)], False, 20, int(RNG.integers(2, 6)), cv2.LINE_AA)
    for k in range(40):  # hatching
        x = 700 + k * 10
        cv2.line(canvas, (x, 150), (x - 120, 450), 30, 2, cv2.LINE_AA)
    cv2.circle(canvas, (400, 800), 180, 15, 5, cv2.LINE_AA)
    im = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return Image.fromarray(im, "L")


def sky_gradient() -> Image.Image:
    w, h = 720, 480
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top = np.array([0.16, 0.32, 0.70], np.float32)
    bottom = np.array([0.98, 0.72, 0.55], np.float32)
    img = top * (1 - yy) + bottom * yy + np.zeros((1, w, 1), np.float32)
    clouds = np.clip(_smooth_noise(h, w, 18) * 0.6 + _smooth_noise(h, w, 3) * 0.25, 0, None)
    clouds *= np.clip(1.2 - yy[..., 0] * 1.6, 0, 1)
    img = img * (1 - clouds[..., None] * 0.5) + clouds[..., None] * 0.5
    hills = (h * 0.78 + 30 * np.sin(np.linspace(0, 7, w))).astype(int)
    for x in range(w):
        img[hills[x]:, x] = (0.12, 0.20, 0.16)
    return Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


def comic_text() -> Image.Image:
    w, h = 640, 420
    art = (painterly(h, w) * 255).astype(np.uint8)
    im = Image.fromarray(art, "RGB")
    d = ImageDraw.Draw(im)
    d.rectangle([6, 6, w - 7, h - 7], outline=(0, 0, 0), width=5)
    d.ellipse([30, 24, 400, 160], fill=(255, 255, 255), outline=(0, 0, 0), width=3)
    d.polygon([(200, 150), (260, 150), (250, 210)], fill=(255, 255, 255))
    font = ImageFont.load_default(size=26)
    d.text((70, 55), "Keep your hands", fill=(0, 0, 0), font=font)
    d.text((70, 90), "off my sketches!", fill=(0, 0, 0), font=font)
    return im


def sprite_transparent() -> Image.Image:
    w, h = 360, 540
    rgba = np.zeros((h * 2, w * 2, 4), np.uint8)
    body = np.zeros((h * 2, w * 2), np.uint8)
    cv2.ellipse(body, (w, 300), (170, 200), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.ellipse(body, (w, 760), (230, 300), 0, 0, 360, 255, -1, cv2.LINE_AA)
    tex = painterly(h * 2, w * 2)
    rgba[..., :3] = (tex * 255).astype(np.uint8)
    rgba[..., 3] = body
    small = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_AREA)
    small[small[..., 3] == 0, :3] = 0  # fully transparent pixels carry black
    return Image.fromarray(small, "RGBA")


def painting_orient_icc() -> tuple[Image.Image, bytes, bytes]:
    h, w = 512, 384  # stored sideways; orientation 6 shows it 384 wide x 512 high... rotated
    img = Image.fromarray((painterly(h, w) * 255).astype(np.uint8), "RGB")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    exif[0x010E] = "protect sample: painterly JPEG with orientation 6"
    return img, icc, exif.tobytes()


def painting_16bit() -> np.ndarray:
    h, w = 280, 400
    img = cv2.GaussianBlur(painterly(h, w), (0, 0), 1.2)
    return (np.clip(img, 0, 1) * 65535 + 0.5).astype(np.uint16)


def pixel_palette() -> Image.Image:
    cells = RNG.integers(0, 6, (24, 32))
    cells[:3] = 0
    cells[-3:, ::2] = 0
    palette = [0, 0, 0, 240, 90, 80, 250, 210, 90, 90, 200, 120, 70, 110, 220, 250, 250, 250]
    small = Image.fromarray(cells.astype(np.uint8), "P")
    small.putpalette(palette)
    small.info["transparency"] = 0
    return small.resize((320, 240), Image.NEAREST)


def main() -> None:
    cel_flat_fills().save(HERE / "cel_flat_fills.png", optimize=True)
    ink_line_art().save(HERE / "ink_line_art.png", optimize=True)
    sky_gradient().save(HERE / "sky_gradient.png", optimize=True)
    comic_text().save(HERE / "comic_text.png", optimize=True)
    sprite_transparent().save(HERE / "sprite_transparent.png", optimize=True)
    img, icc, exif = painting_orient_icc()
    img.save(HERE / "painting_orient_icc.jpg", quality=90, icc_profile=icc, exif=exif, dpi=(300, 300))
    bgr16 = cv2.cvtColor(painting_16bit(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(HERE / "painting_16bit.png"), bgr16)
    pal = pixel_palette()
    pal.save(HERE / "pixel_palette.png", transparency=0)


if __name__ == "__main__":
    main()
