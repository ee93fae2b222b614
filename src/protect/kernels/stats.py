"""Kernels that measure a difference between two images."""

from __future__ import annotations

import numpy as np

from ._jit import njit_serial


@njit_serial
def diff_stats_kernel(a, b):
    """Sum of squared differences and largest absolute difference of two integer arrays.

    ``a`` and ``b`` are (h, w, c) uint8 or uint16 arrays of the same shape.
    Returns ``(sse, max_abs)`` as (float64, int64); the SSE is accumulated
    exactly in int64 per row, then in float64.
    """
    h, w, c = a.shape
    sse = 0.0
    mx = 0
    for y in range(h):
        row = 0
        for x in range(w):
            for ch in range(c):
                d = np.int64(a[y, x, ch]) - np.int64(b[y, x, ch])
                row += d * d
                if d < 0:
                    d = -d
                if d > mx:
                    mx = d
        sse += row
    return sse, mx


@njit_serial
def count_colours_kernel(pixels, alpha, limit):
    """Distinct colours of an (h, w, c) uint8/uint16 image, counted up to ``limit``.

    Pixels whose ``alpha`` (an (h, w) array, or a (1, 1) array of ones for
    none) is 0 are not counted.  Stops and returns ``limit + 1`` as soon as
    more than ``limit`` colours were seen, so a photograph or a painting
    costs a few hundred pixels.  Colours go into an open-addressing table of
    ``4 * (limit + 1)`` rounded up to a power of two.
    """
    h, w, c = pixels.shape
    size = 8
    while size < 4 * (limit + 1):
        size *= 2
    table = np.full(size, -1, np.int64)
    n = 0
    has_alpha = alpha.shape[0] == h and alpha.shape[1] == w
    for y in range(h):
        for x in range(w):
            if has_alpha and alpha[y, x] == 0:
                continue
            key = np.int64(0)
            for ch in range(c):
                key = key * np.int64(65536) + np.int64(pixels[y, x, ch])
            slot = (key * np.int64(0x9E3779B1)) & (size - 1)
            while True:
                v = table[slot]
                if v == key:
                    break
                if v == -1:
                    table[slot] = key
                    n += 1
                    if n > limit:
                        return n
                    break
                slot = (slot + 1) & (size - 1)
    return n
