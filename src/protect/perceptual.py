"""Luma and the perceptual mask: the primitives the protection and the watermark share.

* :data:`REC601` - the luma weights (defined once, in :mod:`protect.kernels.rec601`);
* :func:`luma8` - an image's Rec. 601 luma on a 0-255 scale;
* :data:`MASK` - the parameters of the perceptual (texture/luminance) mask,
  one named tuple;
* :func:`perceptual_mask` / :func:`mask_rows` - that mask, for a whole image
  or for the rows of a stripe.

The *perceptual mask* is computed from the image and says where noise hides;
it is not the artist's *region* mask (``--mask``), which says where noise may
go at all (see docs/glossary.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .arrays import data_range_of
from .kernels import perturb
from .kernels.rec601 import REC601

__all__ = ["REC601", "MaskParams", "MASK", "luma8", "perceptual_mask", "mask_rows"]


class MaskParams(NamedTuple):
    """Parameters of :func:`protect.kernels.perturb.perceptual_mask_kernel` (0-255 luma scale)."""

    radius: int  # the box window is (2 radius + 1)^2 px
    t_low: float  # mean gradient below which a window is flat (weight 0) ...
    t_high: float  # ... and above which it is fully textured (weight 1)
    g_t: float  # gradient that counts a pixel as textured, for the density
    d_low: float  # share of textured pixels below which the window counts as an isolated edge ...
    d_high: float  # ... and above which as texture
    dark: float  # weight at black (luminance masking), rising linearly to 1


#: The perceptual mask's parameters.  Where they come from: set by hand with
#: the "texture" method in the first commit (7693d37), with no measurement
#: recorded; they have not been retuned since (the default "adversarial"
#: method does not use this mask, only the texture method and the watermark
#: do).  What each does, on the 0-255 luma scale: t_low 3 / t_high 24 bound
#: the smoothstep of the window's mean gradient (a smooth gradient of about
#: one level per px stays at 0); g_t 4 and the density band 0.3-0.6 keep flat
#: colour beside a single line at 0 while hatching gets the noise; dark 0.5
#: halves the weight at black; radius 4 is a 9x9 window, a little over one
#: 8x8 block.  Changing any of them changes the texture method's output and
#: the watermark (bump their algorithm versions).
MASK = MaskParams(radius=4, t_low=3.0, t_high=24.0, g_t=4.0, d_low=0.3, d_high=0.6, dark=0.5)


def luma8(pixels: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an (H, W, C) uint8/uint16 image on a 0-255 scale, (H, W) float32."""
    lum = np.empty(pixels.shape[:2], np.float32)
    perturb.luminance_kernel(np.ascontiguousarray(pixels), np.float32(255.0 / data_range_of(pixels.dtype)), lum)
    return lum


def mask_rows(lum: np.ndarray, row0: int, out: np.ndarray) -> None:
    """The perceptual mask of rows ``row0 .. row0 + len(out)`` of ``lum`` (a stripe of
    luma with its halo of ``MASK.radius + 1`` rows), into ``out``."""
    perturb.perceptual_mask_kernel(
        lum, MASK.radius, np.float32(MASK.t_low), np.float32(MASK.t_high), np.float32(MASK.g_t),
        np.float32(MASK.d_low), np.float32(MASK.d_high), np.float32(MASK.dark), row0, out,
    )


def perceptual_mask(pixels: np.ndarray, *, lum: np.ndarray | None = None) -> np.ndarray:
    """The texture/luminance masking weight in [0, 1] that places protect's noise,
    for a whole (H, W, C) uint8/uint16 image (the watermark's gain uses it too).
    ``lum``: the image's :func:`luma8`, when the caller has it already."""
    h, w, _ = pixels.shape
    if lum is None:
        lum = luma8(pixels)
    out = np.empty((h, w), np.float32)
    mask_rows(lum, 0, out)
    return out
