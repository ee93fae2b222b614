"""Kernels of the invisible watermark: tile-periodic embedding and folding.

Arrays and scalars in, preallocated arrays out, no validation (see
``protect/watermark.py`` for the checks and the meaning of the arguments).
"""

from __future__ import annotations

import numpy as np

from ._jit import njit_serial


@njit_serial
def embed_tile_kernel(src, tile, amplitude, data_range, out):
    """``out = clip(round(src + tile[y % T, x % T] * amplitude[y, x]), 0, data_range)`` on every channel.

    ``src`` and ``out`` are (h, w, c) uint8/uint16, ``tile`` a (T, T) float32
    luminance pattern, ``amplitude`` an (h, w) float32 map (code values).
    The same value is added to every channel, so the mark changes luminance
    only and grey stays grey.
    """
    h, w, c = src.shape
    t = tile.shape[0]
    for y in range(h):
        ty = y % t
        for x in range(w):
            d = tile[ty, x % t] * amplitude[y, x]
            for ch in range(c):
                v = np.float32(src[y, x, ch]) + d
                v = np.floor(v + np.float32(0.5))
                if v < 0:
                    v = 0
                elif v > data_range:
                    v = data_range
                out[y, x, ch] = v


@njit_serial
def fold_kernel(residual, a11, a12, a21, a22, period, sums, counts):
    """Fold an image onto one tile of a (possibly scaled and rotated) lattice.

    Pixel (x, y) has tile coordinates ``u = a11 x + a12 y``, ``v = a21 x + a22 y``
    (in tile pixels, taken modulo ``period``); its ``residual`` value is added
    to the nearest bin ``sums[v, u]`` and ``counts[v, u]`` is incremented.
    """
    h, w = residual.shape
    p = np.float64(period)
    # a positive whole number of periods added to u and v keeps them positive,
    # so truncation is floor and one integer modulo gives the bin
    span = abs(a11) * w + abs(a12) * h + abs(a21) * w + abs(a22) * h + 2.0
    off = p * np.floor(span / p + 1.0) + 0.5
    for y in range(h):
        u = a12 * y + off
        v = a22 * y + off
        for x in range(w):
            iu = np.int64(u) % period
            iv = np.int64(v) % period
            sums[iv, iu] += residual[y, x]
            counts[iv, iu] += 1
            u += a11
            v += a21
