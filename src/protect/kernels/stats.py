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
