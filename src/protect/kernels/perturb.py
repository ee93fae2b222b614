"""Kernels of the protection perturbation.

The perturbation is synthesised block by block in the 8x8 DCT domain: each
block gets key-seeded coefficients, weighted by a mid-frequency band
profile, and is brought back to pixels by the inverse DCT written as two
8x8 matrix products.  It is then modulated in pixel space by a perceptual
mask (texture and luminance masking) and added to every colour channel.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit_inline, njit_serial
from .hashing import splitmix64
from .rec601 import LUMA_B, LUMA_G, LUMA_R

_KY = np.uint64(0xC2B2AE3D27D4EB4F)
_KX = np.uint64(0x165667B19E3779F9)
_KC = np.uint64(0xD6E8FEB86659FD93)


@njit_inline
def block_hash(seed, a, b):
    """64-bit hash of (seed, a, b); a, b are >= 0 integers (block row, column)."""
    return splitmix64(seed ^ (np.uint64(a) * _KY) ^ (np.uint64(b) * _KX))


@njit_inline
def stream_uniform_pair(state, k):
    """Two uniforms in [-1, 1) from draw ``k`` of the stream that starts at ``state``.

    Draw ``k`` is ``splitmix64(state + k * _KC)``; its top and bottom 24-bit
    halves give the two values (exactly representable in float32).
    """
    z = splitmix64(state + np.uint64(k) * _KC)
    hi = np.int64(z >> np.uint64(40))
    lo = np.int64(z & np.uint64(0xFFFFFF))
    return (
        np.float32(hi * (2.0 / 16777216.0) - 1.0),
        np.float32(lo * (2.0 / 16777216.0) - 1.0),
    )


@njit_serial
def dct_noise_kernel(seed, atoms, y0, x0, gain, out):
    """Synthesise block-DCT noise into ``out``.

    Each block ``(by, bx)`` of the global 8-px grid is a random combination
    of the ``n`` atoms (band-weighted 2-D DCT basis images): atom ``k``
    is multiplied by uniform ``k`` of the stream ``block_hash(seed, by, bx)``
    (draw ``k // 2``, high half for even ``k``) and the products are summed
    in order ``k = 0, 1, ...``.

    Parameters
    ----------
    seed : uint64
        Seed of the counter-based hash.
    atoms : (n, 64) float32
        Row ``k`` is ``band[u, v] * outer(basis[u], basis[v])`` flattened, for
        the ``n`` coefficients ``(u, v)`` of the band.
    y0, x0 : int
        Global position of ``out[0, 0]``.
    gain : (h, w) float32
        Only used to skip work: a block whose gain is 0 everywhere in ``out``
        gets zeros (the noise there would be multiplied by 0 anyway).
    out : (h, w) float32
        Receives the noise.
    """
    h, w = out.shape
    n = atoms.shape[0]
    blk = np.zeros(64, np.float32)
    by0 = y0 // 8
    by1 = (y0 + h - 1) // 8
    bx0 = x0 // 8
    bx1 = (x0 + w - 1) // 8
    for by in range(by0, by1 + 1):
        ya = max(by * 8 - y0, 0)
        yb = min(by * 8 + 8 - y0, h)
        for bx in range(bx0, bx1 + 1):
            xa = max(bx * 8 - x0, 0)
            xb = min(bx * 8 + 8 - x0, w)
            live = False
            for oy in range(ya, yb):
                for ox in range(xa, xb):
                    if gain[oy, ox] != 0.0:
                        live = True
                        break
                if live:
                    break
            if not live:
                for oy in range(ya, yb):
                    for ox in range(xa, xb):
                        out[oy, ox] = 0.0
                continue
            state = block_hash(seed, by, bx)
            for i in range(64):
                blk[i] = 0.0
            for k in range(0, n, 2):
                r0, r1 = stream_uniform_pair(state, k // 2)
                for i in range(64):
                    blk[i] += r0 * atoms[k, i]
                if k + 1 < n:
                    for i in range(64):
                        blk[i] += r1 * atoms[k + 1, i]
            dy = y0 - by * 8
            dx = x0 - bx * 8
            for oy in range(ya, yb):
                row = (oy + dy) * 8
                for ox in range(xa, xb):
                    out[oy, ox] = blk[row + ox + dx]


@njit_serial
def luminance_kernel(src, scale, out):
    """Rec. 601 luma of an (h, w, c) image, times ``scale``, into (h, w) float32.

    ``c`` is 1 (grey) or >= 3 (RGB first); other channels are ignored.
    """
    h, w, c = src.shape
    if c < 3:
        for y in range(h):
            for x in range(w):
                out[y, x] = np.float32(src[y, x, 0]) * scale
    else:
        for y in range(h):
            for x in range(w):
                out[y, x] = (
                    np.float32(LUMA_R) * np.float32(src[y, x, 0])
                    + np.float32(LUMA_G) * np.float32(src[y, x, 1])
                    + np.float32(LUMA_B) * np.float32(src[y, x, 2])
                ) * scale


@njit_serial
def perceptual_mask_kernel(lum, radius, t_low, t_high, g_t, d_low, d_high, dark, row0, out):
    """Texture and luminance masking weight in [0, 1].

    With ``g = |dY/dx| + |dY/dy|`` (forward differences, edge-replicated) and
    box means over a ``(2r+1)^2`` window (edge-replicated):

    * magnitude ``a = mean(g)``, mapped by a smoothstep from ``t_low`` (flat
      fills, smooth gradients: no noise) to ``t_high`` (full noise);
    * density ``f = mean(g > g_t)``, the fraction of the window that has
      texture, mapped by a smoothstep from ``d_low`` to ``d_high``.  An
      isolated edge (a line, the border of a flat fill) covers only a
      couple of columns of the window, so flat colour next to a line stays
      clean, while hatching, brushwork and texture get the noise;
    * luminance factor, lowering the weight in deep shadows where a
      code-value step is most visible: linear from ``dark`` at Y = 0 to 1 at
      Y >= 64.

    The weight is the product of the three.

    Parameters
    ----------
    lum : (h, w) float32
        Luma on a 0-255 scale, including ``radius`` + 1 halo rows above and
        below the rows wanted (fewer at the image border).
    radius : int
        Window radius, >= 1.
    t_low, t_high, g_t, d_low, d_high, dark : float32
        See above; ``t_low < t_high`` and ``d_low < d_high``.
    row0 : int
        Row of ``lum`` that corresponds to ``out[0]``.
    out : (n, w) float32
        ``n`` rows, the same width as ``lum``.
    """
    h, w = lum.shape
    n = out.shape[0]
    r = radius
    ya = max(row0 - r, 0)
    yb = min(row0 + n - 1 + r, h - 1)
    act = np.empty(w + 2 * r, np.float32)
    den = np.empty(w + 2 * r, np.float32)
    hs = np.empty((h, w), np.float32)  # only rows ya..yb are written and read
    hd = np.empty((h, w), np.float32)
    for y in range(ya, yb + 1):
        yn = y + 1 if y + 1 < h else y
        for x in range(w - 1):
            v = lum[y, x]
            act[r + x] = abs(lum[y, x + 1] - v) + abs(lum[yn, x] - v)
        act[r + w - 1] = abs(lum[yn, w - 1] - lum[y, w - 1])
        for k in range(r):
            act[k] = act[r]
            act[r + w + k] = act[r + w - 1]
        for x in range(w + 2 * r):
            den[x] = np.float32(1.0) if act[x] > g_t else np.float32(0.0)
        s = np.float32(0.0)
        sd = np.float32(0.0)
        for k in range(2 * r + 1):
            s += act[k]
            sd += den[k]
        hs[y, 0] = s
        hd[y, 0] = sd
        for x in range(1, w):
            s += act[x + 2 * r] - act[x - 1]
            sd += den[x + 2 * r] - den[x - 1]
            hs[y, x] = s
            hd[y, x] = sd
    inv = np.float32(1.0 / ((2 * r + 1) * (2 * r + 1)))
    inv_span = np.float32(1.0) / (t_high - t_low)
    inv_dspan = np.float32(1.0) / (d_high - d_low)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    three = np.float32(3.0)
    two = np.float32(2.0)
    lf_slope = (one - dark) / np.float32(64.0)
    col = np.zeros(w, np.float32)
    cold = np.zeros(w, np.float32)
    for k in range(-r, r + 1):
        kk = min(max(row0 + k, 0), h - 1)
        for x in range(w):
            col[x] += hs[kk, x]
            cold[x] += hd[kk, x]
    for i in range(n):
        y = row0 + i
        if i > 0:
            add = min(y + r, h - 1)
            sub = max(y - r - 1, 0)
            for x in range(w):
                col[x] += hs[add, x] - hs[sub, x]
                cold[x] += hd[add, x] - hd[sub, x]
        for x in range(w):
            t = min(max((col[x] * inv - t_low) * inv_span, zero), one)
            d = min(max((cold[x] * inv - d_low) * inv_dspan, zero), one)
            tex = t * t * (three - two * t) * (d * d * (three - two * d))
            lf = min(dark + lf_slope * lum[y, x], one)
            out[i, x] = tex * lf
