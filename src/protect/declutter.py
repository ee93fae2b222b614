"""Declutter: the purification people run on scraped art before training.

Each attack is a small function from an 8-bit image to an 8-bit image, with
its parameters written out and its source cited, so that protect can measure
how much of its noise survives what a scraper would do.  Images are
``uint8`` arrays of shape (H, W, 3) or (H, W, 1); the result keeps the
channel layout.  Attacks with randomness take a ``seed`` and use only their
own generator: calling an attack twice with the same seed on the original
and on the protected image applies *the same* noise to both, so that their
difference isolates what is left of the protection.

:data:`ATTACKS` is the registry (name -> :class:`Attack`) that ``protect
verify``, ``protect declutter`` and the benchmarks use; each entry also has
a *geometry*: the linear part of the attack (crop, resize), applied to the
protection signal itself when comparing it with what survived.

Encoding to JPEG or WebP here happens in memory; nothing in this module
touches files (``io.py`` does that).
"""

from __future__ import annotations

import io as _bytes_io
from dataclasses import dataclass
from functools import partial
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from .arrays import check_image, crop_center
from .kernels.rec601 import REC601

__all__ = [
    "Attack",
    "ATTACKS",
    "attack_names",
    "apply_attack",
    "jpeg",
    "webp",
    "resize",
    "resize_restore",
    "gaussian_blur",
    "median",
    "bilateral",
    "nl_means",
    "guided_filter",
    "adverse_cleaner",
    "noisy_upscale",
    "center_crop",
    "platform_repost",
    "capped_size",
    "resize_to",
]


# ----------------------------------------------------------------- helpers


def _squeeze(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 1) -> (H, W) for OpenCV and Pillow; (H, W, 3) unchanged."""
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


def _like(result: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Give ``result`` the channel layout of ``pixels``."""
    if pixels.ndim == 3 and result.ndim == 2:
        return result[..., None]
    return result


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _half_size(h: int, w: int) -> tuple[int, int]:
    return max(1, round(h / 2)), max(1, round(w / 2))


def resize_to(x: np.ndarray, h: int, w: int, interpolation: int) -> np.ndarray:
    """``x`` (H, W[, C]) resized to ``h`` x ``w`` with OpenCV's ``interpolation``, its channel layout kept."""
    out = cv2.resize(_squeeze(x), (w, h), interpolation=interpolation)
    return _like(out, x)


def _center_fraction(x: np.ndarray, fraction: float) -> np.ndarray:
    h, w = x.shape[:2]
    return crop_center(x, max(1, round(h * fraction)), max(1, round(w * fraction)))


def capped_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    """(h, w) scaled down so that the longer side is at most ``max_side`` (never up)."""
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return h, w
    return max(1, round(h * scale)), max(1, round(w * scale))


# ----------------------------------------------------------------- attacks


def jpeg(pixels: np.ndarray, *, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Encode as baseline JPEG with Pillow (libjpeg) and decode again.

    ``subsampling="4:2:0"`` halves the chroma resolution, as Pillow does by
    default and as social platforms re-encode uploads.
    """
    mode = "L" if _squeeze(pixels).ndim == 2 else "RGB"
    buf = _bytes_io.BytesIO()
    Image.fromarray(_squeeze(pixels), mode).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    with Image.open(_bytes_io.BytesIO(buf.getvalue())) as im:
        return _like(np.asarray(im.convert(mode)), pixels)


def webp(pixels: np.ndarray, *, quality: int) -> np.ndarray:
    """Encode as lossy WebP with Pillow (libwebp, method 4) and decode again."""
    squeezed = _squeeze(pixels)
    rgb = np.repeat(squeezed[..., None], 3, axis=2) if squeezed.ndim == 2 else squeezed
    buf = _bytes_io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "WEBP", quality=quality, method=4)
    with Image.open(_bytes_io.BytesIO(buf.getvalue())) as im:
        out = np.asarray(im.convert("RGB"))
    if squeezed.ndim == 2:  # WebP has no grey mode; back to grey with Rec.601 luma
        out = _to_u8(out.astype(np.float32) @ np.array(REC601, np.float32))
    return _like(out, pixels)


def resize(pixels: np.ndarray, *, scale: float) -> np.ndarray:
    """Downscale by ``scale`` with area averaging (cv2.INTER_AREA), as a
    training pipeline shrinks images to its training size."""
    h, w = pixels.shape[:2]
    return resize_to(pixels, max(1, round(h * scale)), max(1, round(w * scale)), cv2.INTER_AREA)


def resize_restore(pixels: np.ndarray, *, scale: float) -> np.ndarray:
    """Downscale by ``scale`` (area) and upscale back to the original size
    (bicubic): the classic "resize purification"."""
    h, w = pixels.shape[:2]
    small = resize(pixels, scale=scale).astype(np.float32)
    return _to_u8(resize_to(small, h, w, cv2.INTER_CUBIC))


def gaussian_blur(pixels: np.ndarray, *, sigma: float) -> np.ndarray:
    """Gaussian blur (kernel size from sigma, mirrored borders)."""
    return _like(cv2.GaussianBlur(_squeeze(pixels), (0, 0), sigma), pixels)


def median(pixels: np.ndarray, *, size: int) -> np.ndarray:
    """Median filter over a ``size`` x ``size`` window (cv2.medianBlur)."""
    return _like(cv2.medianBlur(_squeeze(pixels), size), pixels)


def bilateral(pixels: np.ndarray, *, diameter: int, sigma_color: float, sigma_space: float) -> np.ndarray:
    """Edge-preserving bilateral filter (Tomasi & Manduchi, ICCV 1998), cv2.bilateralFilter."""
    return _like(cv2.bilateralFilter(_squeeze(pixels), diameter, sigma_color, sigma_space), pixels)


def nl_means(pixels: np.ndarray, *, h: float, template: int = 7, search: int = 21) -> np.ndarray:
    """Non-local means denoising (Buades, Coll & Morel, CVPR 2005), OpenCV's
    fastNlMeansDenoising(Colored); colour images are filtered in CIELAB with
    the same strength for luminance and colour."""
    squeezed = _squeeze(pixels)
    if squeezed.ndim == 2:
        out = cv2.fastNlMeansDenoising(squeezed, None, h, template, search)
    else:
        out = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(squeezed), None, h, h, template, search)
    return _like(out, pixels)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    k = 2 * radius + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, *, radius: int, eps: float) -> np.ndarray:
    """Guided filter (He, Sun & Tang, ECCV 2010 / TPAMI 2013), built from box filters.

    Parameters
    ----------
    guide : (H, W, 3) or (H, W, 1) float32 array
        The guidance image; a colour guide uses the full 3x3 colour
        covariance of the paper's Eq. 14 (as opencv-contrib's
        ``ximgproc.guidedFilter`` does).
    src : (H, W, C) float32 array
        The image to filter; each channel is filtered separately.
    radius : int
        Window radius r (windows are (2r + 1)^2 pixels, reflected at borders).
    eps : float
        Regularisation, on the scale of the data squared (16 on 0-255 data
        means edges weaker than about 4 levels are smoothed away).

    Returns
    -------
    (H, W, C) float32 array.
    """
    guide = np.asarray(guide, np.float32)
    src = np.asarray(src, np.float32)
    if guide.ndim == 2:
        guide = guide[..., None]
    if src.ndim == 2:
        src = src[..., None]
    out = np.empty_like(src)
    if guide.shape[2] == 1:
        g = guide[..., 0]
        mean_g = _box(g, radius)
        var_g = _box(g * g, radius) - mean_g * mean_g
        for c in range(src.shape[2]):
            p = src[..., c]
            mean_p = _box(p, radius)
            a = (_box(g * p, radius) - mean_g * mean_p) / (var_g + eps)
            b = mean_p - a * mean_g
            out[..., c] = _box(a, radius) * g + _box(b, radius)
        return out
    mean_g = _box(guide, radius)  # (H, W, 3)
    # Covariance of the guide (symmetric 3x3 per pixel) plus eps * I.
    s = {}
    for i in range(3):
        for j in range(i, 3):
            s[i, j] = _box(guide[..., i] * guide[..., j], radius) - mean_g[..., i] * mean_g[..., j]
            if i == j:
                s[i, j] = s[i, j] + eps
    # Inverse by cofactors (the matrix is symmetric positive definite).
    c00 = s[1, 1] * s[2, 2] - s[1, 2] * s[1, 2]
    c01 = s[0, 2] * s[1, 2] - s[0, 1] * s[2, 2]
    c02 = s[0, 1] * s[1, 2] - s[0, 2] * s[1, 1]
    c11 = s[0, 0] * s[2, 2] - s[0, 2] * s[0, 2]
    c12 = s[0, 2] * s[0, 1] - s[0, 0] * s[1, 2]
    c22 = s[0, 0] * s[1, 1] - s[0, 1] * s[0, 1]
    det = s[0, 0] * c00 + s[0, 1] * c01 + s[0, 2] * c02
    inv = ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))
    for c in range(src.shape[2]):
        p = src[..., c]
        mean_p = _box(p, radius)
        cov = [_box(guide[..., i] * p, radius) - mean_g[..., i] * mean_p for i in range(3)]
        a = [(inv[i][0] * cov[0] + inv[i][1] * cov[1] + inv[i][2] * cov[2]) / det for i in range(3)]
        b = mean_p - a[0] * mean_g[..., 0] - a[1] * mean_g[..., 1] - a[2] * mean_g[..., 2]
        q = _box(b, radius)
        for i in range(3):
            q = q + _box(a[i], radius) * guide[..., i]
        out[..., c] = q
    return out


def adverse_cleaner(
    pixels: np.ndarray,
    *,
    bilateral_passes: int = 64,
    diameter: int = 5,
    sigma_color: float = 8.0,
    sigma_space: float = 8.0,
    guided_passes: int = 4,
    radius: int = 4,
    eps: float = 16.0,
) -> np.ndarray:
    """AdverseCleaner-style purification (lllyasviel/AdverseCleaner, 2023).

    64 successive bilateral filters (d=5, sigma_color=8, sigma_space=8) on the
    0-255 float image, then 4 guided filters (radius 4, eps 16) that take the
    filtered image as input and the *original input* as guide, which puts
    back edges the bilateral passes softened.  The published tool used
    opencv-contrib's ``ximgproc.guidedFilter``; :func:`guided_filter` is the
    same filter from box filters.
    """
    img = _squeeze(pixels).astype(np.float32)
    y: np.ndarray = img.copy()
    for _ in range(bilateral_passes):
        y = cv2.bilateralFilter(y, diameter, sigma_color, sigma_space)
    for _ in range(guided_passes):
        y = guided_filter(img, y, radius=radius, eps=eps)
        if y.shape[2] == 1 and img.ndim == 2:
            y = y[..., 0]
    return _like(_to_u8(y), pixels)


def noisy_upscale(pixels: np.ndarray, *, sigma: float, seed: int) -> np.ndarray:
    """Noisy upscaling, a CPU stand-in for Hönig et al. (ICLR 2025).

    Adds i.i.d. Gaussian noise of standard deviation ``sigma`` (on a 0-1
    scale) drawn from ``seed``, downscales to half size (area) and upscales
    back (bicubic).  The published attack upscales with a diffusion
    upscaler, which also removes the added noise; this stand-in keeps the
    part that matters for survival: the protection is drowned in fresh noise
    and resampled.
    """
    h, w = pixels.shape[:2]
    rng = np.random.default_rng(seed)
    noisy = pixels.astype(np.float32) + rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(255 * sigma)
    noisy = np.clip(noisy, 0, 255)
    hh, hw = _half_size(h, w)
    small = resize_to(noisy, hh, hw, cv2.INTER_AREA)
    return _to_u8(resize_to(small, h, w, cv2.INTER_CUBIC))


def center_crop(pixels: np.ndarray, *, fraction: float) -> np.ndarray:
    """Keep the centre ``fraction`` of each side and resize back (bicubic)."""
    return _to_u8(_center_crop_geometry(pixels.astype(np.float32), fraction=fraction))


def _center_crop_geometry(x: np.ndarray, *, fraction: float) -> np.ndarray:
    h, w = x.shape[:2]
    return resize_to(np.ascontiguousarray(_center_fraction(x, fraction)), h, w, cv2.INTER_CUBIC)


def _center_crop_region(x: np.ndarray, *, fraction: float) -> np.ndarray:
    return _center_fraction(x, fraction)


def platform_repost(pixels: np.ndarray, *, max_side: int = 4096, quality: int = 85) -> np.ndarray:
    """What a large social site does to an upload: longest side capped at
    ``max_side`` (area downscale), then JPEG at ``quality`` with 4:2:0 chroma."""
    return jpeg(_cap_geometry(pixels, max_side=max_side), quality=quality)


def _cap_geometry(x: np.ndarray, *, max_side: int) -> np.ndarray:
    h, w = x.shape[:2]
    ch, cw = capped_size(h, w, max_side)
    if (ch, cw) == (h, w):
        return x
    return resize_to(x, ch, cw, cv2.INTER_AREA)


def _identity(pixels: np.ndarray) -> np.ndarray:
    return pixels.copy()


def _resize_geometry(x: np.ndarray, *, scale: float) -> np.ndarray:
    h, w = x.shape[:2]
    return resize_to(x, max(1, round(h * scale)), max(1, round(w * scale)), cv2.INTER_AREA)


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class Attack:
    """One named purification step.

    ``apply(pixels, seed)`` runs it on a uint8 image; ``geometry(x)`` is its
    linear geometric part (crop/resize) for float arrays, ``None`` when the
    attack keeps every pixel where it was; ``region(x)`` is the part of the
    image that is kept at all (the crop, without resizing), ``None`` for the
    whole image.
    """

    name: str
    summary: str
    apply: Callable[[np.ndarray, int], np.ndarray]
    geometry: Callable[[np.ndarray], np.ndarray] | None = None
    region: Callable[[np.ndarray], np.ndarray] | None = None


def _seedless(fn: Callable[..., np.ndarray], **params) -> Callable[[np.ndarray, int], np.ndarray]:
    bound = partial(fn, **params)
    return lambda pixels, seed: bound(pixels)


def _seeded(fn: Callable[..., np.ndarray], **params) -> Callable[[np.ndarray, int], np.ndarray]:
    bound = partial(fn, **params)
    return lambda pixels, seed: bound(pixels, seed=seed)


_REGISTRY = [
    Attack("none", "no attack (the protection as posted)", _seedless(_identity)),
    Attack("jpeg90", "JPEG quality 90, 4:2:0 chroma (Pillow)", _seedless(jpeg, quality=90)),
    Attack("jpeg75", "JPEG quality 75, 4:2:0 chroma (Pillow)", _seedless(jpeg, quality=75)),
    Attack("jpeg50", "JPEG quality 50, 4:2:0 chroma (Pillow)", _seedless(jpeg, quality=50)),
    Attack("webp80", "lossy WebP quality 80 (Pillow/libwebp)", _seedless(webp, quality=80)),
    Attack("resize_half_restore", "downscale to 1/2 (area), upscale back (bicubic)",
           _seedless(resize_restore, scale=0.5)),
    Attack("resize_half", "downscale to 1/2 (area), not restored", _seedless(resize, scale=0.5),
           partial(_resize_geometry, scale=0.5)),
    Attack("blur1", "Gaussian blur, sigma 1 px", _seedless(gaussian_blur, sigma=1.0)),
    Attack("median3", "median filter 3x3", _seedless(median, size=3)),
    Attack("bilateral", "bilateral filter d=9, sigma colour 75, sigma space 75 (OpenCV tutorial values)",
           _seedless(bilateral, diameter=9, sigma_color=75.0, sigma_space=75.0)),
    Attack("nlmeans", "OpenCV non-local means, h=10 (luma and colour), 7x7 patches, 21x21 search",
           _seedless(nl_means, h=10.0)),
    Attack("adverse_cleaner", "AdverseCleaner: 64 bilateral (d5, 8, 8) + 4 guided filters (r4, eps 16)",
           _seedless(adverse_cleaner)),
    Attack("noisy_upscale", "Gaussian noise sigma 0.05, downscale 1/2, bicubic upscale (Hönig et al. stand-in)",
           _seeded(noisy_upscale, sigma=0.05)),
    Attack("crop90", "centre crop to 90% of each side, resized back (bicubic)",
           _seedless(center_crop, fraction=0.9), partial(_center_crop_geometry, fraction=0.9),
           partial(_center_crop_region, fraction=0.9)),
    Attack("repost", "platform repost: longest side capped at 4096 px, then JPEG 85 4:2:0",
           _seedless(platform_repost), partial(_cap_geometry, max_side=4096)),
]

ATTACKS: dict[str, Attack] = {a.name: a for a in _REGISTRY}


def attack_names(*, include_none: bool = True) -> list[str]:
    """Registered attack names in their documented order."""
    return [n for n in ATTACKS if include_none or n != "none"]


def apply_attack(name: str, pixels: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Run the attack ``name`` on an 8-bit image.

    Parameters
    ----------
    name : str
        A key of :data:`ATTACKS`.
    pixels : (H, W, 3), (H, W, 1) or (H, W) uint8 array
        The image (never modified).
    seed : int
        Seed of the attack's own noise, if it has any.

    Raises
    ------
    KeyError
        For an unknown attack name (the message lists the known ones).
    protect.arrays.ImageArrayError
        (a ``ValueError``) for a non-uint8 array or an unsupported shape.
    """
    if name not in ATTACKS:
        raise KeyError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        return apply_attack(name, pixels[..., None], seed=seed)[..., 0]
    check_image(pixels, "the attacked image", dtypes=(np.uint8,), min_side=2,
                hint="convert 16-bit images to 8-bit first")
    return ATTACKS[name].apply(np.ascontiguousarray(pixels), seed)


def apply_geometry(name: str, x: np.ndarray) -> np.ndarray:
    """The geometric (linear) part of attack ``name`` applied to a float array."""
    geometry = ATTACKS[name].geometry
    x = np.asarray(x, np.float32)
    return x if geometry is None else geometry(x)


def apply_region(name: str, x: np.ndarray) -> np.ndarray:
    """The part of ``x`` that attack ``name`` keeps (its crop), unresized."""
    region = ATTACKS[name].region
    return x if region is None else region(x)
