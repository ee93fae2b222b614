"""Adding a scaled field to an image: the last step of both methods.

One kernel, so the rounding and clipping of protect's output are written
once: the "texture" method passes its one-channel noise, the "adversarial"
method the generator's RGB field.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit_serial
from .rec601 import LUMA_B, LUMA_G, LUMA_R


@njit_serial
def apply_field_kernel(src, field, gain, amplitude, data_range, mono, out):
    """``out = clip(round(src + amplitude * gain * field), 0, data_range)``.

    ``src``/``out`` are (h, w, c) uint8/uint16, ``gain`` (h, w) float32 and
    ``field`` (h, w, f) float32 with f = 1 or 3:

    * f = 1: every channel takes ``field[..., 0]`` (a luma perturbation);
    * f = 3, c = 3: channel ``ch`` takes ``field[..., ch]``, or with ``mono``
      every channel takes the field's Rec. 601 luma, so a grey picture stays
      grey; f = 3, c = 1: the field's luma.

    A pixel whose gain is 0 is copied unchanged.  Rounding is half up
    (floor(v + 0.5)).
    """
    h, w, c = src.shape
    nf = field.shape[2]
    hi = np.float32(data_range)
    zero = np.float32(0.0)
    half = np.float32(0.5)
    for y in range(h):
        for x in range(w):
            g = gain[y, x]
            if g == 0.0:
                for ch in range(c):
                    out[y, x, ch] = src[y, x, ch]
                continue
            k = amplitude * g
            if nf == 1 or c == 1 or mono:
                if nf == 1:
                    f = field[y, x, 0]
                else:
                    f = (np.float32(LUMA_R) * field[y, x, 0] + np.float32(LUMA_G) * field[y, x, 1]
                         + np.float32(LUMA_B) * field[y, x, 2])
                for ch in range(c):
                    v = np.float32(src[y, x, ch]) + k * f + half
                    out[y, x, ch] = np.int64(min(max(v, zero), hi + half))
            else:
                for ch in range(c):
                    v = np.float32(src[y, x, ch]) + k * field[y, x, ch] + half
                    out[y, x, ch] = np.int64(min(max(v, zero), hi + half))
