"""Kernels of the image-conditioned perturbation generator.

The generator was designed offline against a latent-diffusion autoencoder
(``design/train_colour_generator.py``); here it runs without torch, block by block
on the 8-px grid:

1. :func:`generator_features_kernel` - the orthonormal 8x8 DCT of each luma
   block, the block's mean chroma (R - Y, B - Y) and the key's
   standard-normal noise for that block, through a 1x1 layer and ReLU (one
   hidden vector per block), and the block's luma variance for the
   visibility weight;
2. :func:`conv3x3_relu_kernel` - a 3x3 layer over the block grid (zero
   padding) and ReLU, then :func:`modulate_kernel` - each block's hidden
   vector times the key's sign for the block and an activity gain of its
   luma variance (next to nothing on flat colour);
3. :func:`synthesis_kernel` - every block's hidden vector weights a bank of
   16x16 RGB atoms, overlap-added with stride 8 (the block's atom starts 4 px
   above and left of the block), into a band of rows; the atoms carry a
   sin^2 window whose shifted copies sum to 1, so no block edge shows;
4. :func:`apply_field_kernel` - the scaled field added to each channel.

Matrix products are written as loops with a fixed summation order (no BLAS),
so the result is the same on every CPU and for every band split.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit_inline, njit_serial
from .hashing import splitmix64
from .rec601 import LUMA_B, LUMA_G, LUMA_R

_KZ = np.uint64(0xA0761D6478BD642F)
_KB = np.uint64(0xE7037ED1A0B428DB)
_TWO_PI = 2.0 * math.pi


@njit_inline
def block_normal(seed, by, bx, k):
    """Standard-normal value ``k`` of block (by, bx): Box-Muller on two 26-bit uniforms."""
    z = splitmix64(seed ^ (np.uint64(by) * _KZ) ^ (np.uint64(bx) * _KB) ^ (np.uint64(k) << np.uint64(56)))
    u1 = (np.float64(z >> np.uint64(38)) + 1.0) * (1.0 / 67108864.0)  # (0, 1]
    u2 = np.float64(z & np.uint64(0x3FFFFFF)) * (1.0 / 67108864.0)  # [0, 1)
    return np.float32(math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2))


_SIGN_CHANNEL = np.uint64(0xFF) << np.uint64(56)


@njit_inline
def block_sign(seed, by, bx):
    """The key's sign (+1 or -1) for block (by, bx): the top bit of a SplitMix64 hash."""
    z = splitmix64(seed ^ (np.uint64(by) * _KZ) ^ (np.uint64(bx) * _KB) ^ _SIGN_CHANNEL)
    return np.float32(1.0) if (z >> np.uint64(63)) == np.uint64(0) else np.float32(-1.0)


@njit_serial
def modulate_kernel(hidden, var, mean, seed, tau2, floor, flat_gain, paper_lo, paper_hi, activity_out):
    """In place: ``hidden[by, bx] *= block_sign * activity`` (``activity`` also written to
    ``activity_out[by, bx]``, (nby, nbx) float32), with ``activity``
    ``floor + (1 - floor) * var / (var + tau2)`` where the block's luma
    variance ``var`` (0-1 scale) is positive; on an exactly flat block,
    ``flat_gain`` when its mean luma ``mean`` lies strictly between
    ``paper_lo`` and ``paper_hi``, else 0 (white paper and black ink stay
    exactly as they are).

    The key's sign per block makes two keys' fields unrelated.
    """
    nby, nbx, c = hidden.shape
    for by in range(nby):
        for bx in range(nbx):
            v = var[by, bx]
            m = mean[by, bx]
            a = flat_gain if paper_lo < m < paper_hi else np.float32(0.0)
            if v > 0.0:
                a = floor + (np.float32(1.0) - floor) * (v / (v + tau2))
            activity_out[by, bx] = a
            g = block_sign(seed, by, bx) * a
            for ch in range(c):
                hidden[by, bx, ch] *= g


@njit_serial
def generator_features_kernel(src, scale, dct, seed, w1t, b1, hidden_out, var_out, mean_out):
    """First generator layer for every 8x8 block of an image.

    Parameters
    ----------
    src : (h, w, c) uint8 or uint16
        The image, grey (c = 1) or RGB (c = 3).  Times ``scale`` it is on a
        0-1 scale.  Blocks past the bottom or right edge repeat the last row
        or column.
    scale : float32
    dct : (8, 8) float32
        Orthonormal DCT-II matrix (rows are basis vectors).
    seed : uint64
        Seed of the key noise; channel ``k`` of block (by, bx) is
        :func:`block_normal` ``(seed, by, bx, k)``.
    w1t : (64 + 2 + z, hidden) float32
        Input-major weights: rows 0-63 take luma DCT coefficient ``8 u + v``,
        rows 64 and 65 the block means of R - Y and B - Y (0 for grey), rows
        66.. the key-noise channels.
    b1 : (hidden,) float32
    hidden_out : (nby, nbx, hidden) float32
        Receives ReLU(features @ w1t + b1).
    var_out : (nby, nbx) float32
        Receives each block's luma variance (0-1 scale): AC energy / 64, and
        exactly 0 when every pixel of the block has the same luma.
    mean_out : (nby, nbx) float32
        Receives each block's mean luma (0-1 scale): DC / 8.
    """
    h, w, nc = src.shape
    nby, nbx, hid = hidden_out.shape
    nz = w1t.shape[0] - 66
    blk = np.empty((8, 8), np.float32)
    tmp = np.empty((8, 8), np.float32)
    acc = np.empty(hid, np.float32)
    for by in range(nby):
        for bx in range(nbx):
            cr = np.float32(0.0)
            cb = np.float32(0.0)
            lo = np.float32(np.inf)
            hi = np.float32(-np.inf)
            for u in range(8):
                y = min(by * 8 + u, h - 1)
                for v in range(8):
                    x = min(bx * 8 + v, w - 1)
                    if nc >= 3:
                        r = np.float32(src[y, x, 0]) * scale
                        g = np.float32(src[y, x, 1]) * scale
                        b = np.float32(src[y, x, 2]) * scale
                        lum = np.float32(LUMA_R) * r + np.float32(LUMA_G) * g + np.float32(LUMA_B) * b
                        cr += r - lum
                        cb += b - lum
                    else:
                        lum = np.float32(src[y, x, 0]) * scale
                    blk[u, v] = lum
                    lo = min(lo, lum)
                    hi = max(hi, lum)
            # tmp = D @ blk
            for u in range(8):
                for j in range(8):
                    s = np.float32(0.0)
                    for i in range(8):
                        s += dct[u, i] * blk[i, j]
                    tmp[u, j] = s
            for o in range(hid):
                acc[o] = b1[o]
            ac = np.float32(0.0)
            # coefficient (u, v) = (tmp @ D^T)[u, v]
            for u in range(8):
                for v in range(8):
                    c = np.float32(0.0)
                    for j in range(8):
                        c += tmp[u, j] * dct[v, j]
                    if u + v > 0:
                        ac += c * c
                    else:
                        mean_out[by, bx] = c * np.float32(0.125)
                    row = u * 8 + v
                    for o in range(hid):
                        acc[o] += c * w1t[row, o]
            cr *= np.float32(1.0 / 64.0)
            cb *= np.float32(1.0 / 64.0)
            for o in range(hid):
                acc[o] += cr * w1t[64, o]
            for o in range(hid):
                acc[o] += cb * w1t[65, o]
            for k in range(nz):
                g = block_normal(seed, by, bx, k)
                for o in range(hid):
                    acc[o] += g * w1t[66 + k, o]
            for o in range(hid):
                hidden_out[by, bx, o] = max(acc[o], np.float32(0.0))
            var_out[by, bx] = ac / np.float32(64.0) if hi > lo else np.float32(0.0)


@njit_serial
def conv3x3_relu_kernel(src, w2t, b2, out):
    """``out = ReLU(conv3x3(src) + b2)`` on the block grid, zero padding.

    ``src`` (nby, nbx, c_in); ``w2t`` (3, 3, c_in, c_out) with tap (dy, dx)
    multiplying ``src[by + dy - 1, bx + dx - 1]``; ``out`` (nby, nbx, c_out).
    """
    nby, nbx, cin = src.shape
    cout = out.shape[2]
    acc = np.empty(cout, np.float32)
    for by in range(nby):
        for bx in range(nbx):
            for o in range(cout):
                acc[o] = b2[o]
            for dy in range(3):
                yy = by + dy - 1
                if yy < 0 or yy >= nby:
                    continue
                for dx in range(3):
                    xx = bx + dx - 1
                    if xx < 0 or xx >= nbx:
                        continue
                    for c in range(cin):
                        s = src[yy, xx, c]
                        if s == 0.0:
                            continue
                        for o in range(cout):
                            acc[o] += s * w2t[dy, dx, c, o]
            for o in range(cout):
                out[by, bx, o] = max(acc[o], np.float32(0.0))


@njit_serial
def synthesis_kernel(hidden, atoms, row0, out):
    """Overlap-add every block's atom combination into a band of RGB rows.

    ``hidden`` (nby, nbx, c); ``atoms`` (c, 768): atom ``c`` as a flattened
    (16, 16, 3) RGB image; block (by, bx) contributes ``sum_c hidden[by, bx,
    c] * atoms[c]`` with its top-left corner at pixel (8 by - 4, 8 bx - 4).
    ``out`` (rows, w, 3) float32 receives pixel rows ``row0 .. row0 + rows``
    (``row0`` a multiple of 8); blocks are added in row-major order.  The
    inner loops run over contiguous memory with no reduction, so they
    vectorise without reordering any sum.
    """
    rows, w, _ = out.shape
    nby, nbx, c = hidden.shape
    out[:, :, :] = 0.0
    a = np.empty(768, np.float32)
    by_first = max(0, row0 // 8 - 1)
    by_last = min(nby - 1, (row0 + rows - 1) // 8 + 1)
    for by in range(by_first, by_last + 1):
        for bx in range(nbx):
            a[:] = 0.0
            live = False
            for ch in range(c):
                s = hidden[by, bx, ch]
                if s == 0.0:
                    continue
                live = True
                for k in range(768):
                    a[k] += s * atoms[ch, k]
            if not live:
                continue
            x0 = bx * 8 - 4
            v0 = max(0, -x0)
            v1 = min(16, w - x0)
            for u in range(16):
                y = by * 8 - 4 + u - row0
                if y < 0 or y >= rows:
                    continue
                for v in range(v0, v1):
                    base = (u * 16 + v) * 3
                    out[y, x0 + v, 0] += a[base]
                    out[y, x0 + v, 1] += a[base + 1]
                    out[y, x0 + v, 2] += a[base + 2]


@njit_serial
def weighted_energy_kernel(field, block_weight, row0):
    """``sum(weight * |field|^2)`` over a band of (rows, w, 3); each pixel takes its 8x8 block's weight."""
    rows, w, nc = field.shape
    total = 0.0
    for y in range(rows):
        by = (row0 + y) // 8
        for x in range(w):
            e = 0.0
            for ch in range(nc):
                f = np.float64(field[y, x, ch])
                e += f * f
            total += np.float64(block_weight[by, x // 8]) * e
    return total
