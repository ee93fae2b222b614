"""Kernels of the image-conditioned perturbation generator.

The generator was designed offline against a latent-diffusion autoencoder
(``design/train_generator.py``); here it runs without torch, block by block
on the 8-px grid:

1. :func:`generator_features_kernel` - the orthonormal 8x8 DCT of each luma
   block plus the key's standard-normal noise for that block, through a 1x1
   layer and ReLU (one hidden vector per block), and the block's luma
   variance for the visibility weight;
2. :func:`conv3x3_relu_kernel` - a 3x3 layer over the block grid (zero
   padding) and ReLU;
3. :func:`synthesis_kernel` - every block's hidden vector weights a bank of
   16x16 atoms, overlap-added with stride 8 (the block's atom starts 4 px
   above and left of the block), into a band of rows.

Matrix products are written as loops with a fixed summation order (no BLAS),
so the result is the same on every CPU and for every band split.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit_inline, njit_serial
from .perturb import splitmix64

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


@njit_serial
def generator_features_kernel(lum, scale, dct, seed, w1t, b1, hidden_out, var_out):
    """First generator layer for every 8x8 block of a luma image.

    Parameters
    ----------
    lum : (h, w) float32
        Luma; multiplied by ``scale`` it must be on a 0-1 scale.  Blocks past
        the bottom or right edge repeat the last row or column.
    scale : float32
    dct : (8, 8) float32
        Orthonormal DCT-II matrix (rows are basis vectors).
    seed : uint64
        Seed of the key noise; channel ``k`` of block (by, bx) is
        :func:`block_normal` ``(seed, by, bx, k)``.
    w1t : (64 + z, hidden) float32
        Input-major weights: rows 0-63 take DCT coefficient ``8 u + v``,
        rows 64.. the key-noise channels.
    b1 : (hidden,) float32
    hidden_out : (nby, nbx, hidden) float32
        Receives ReLU(features @ w1t + b1).
    var_out : (nby, nbx) float32
        Receives each block's luma variance (0-1 scale): AC energy / 64.
    """
    h, w = lum.shape
    nby, nbx, hid = hidden_out.shape
    nz = w1t.shape[0] - 64
    blk = np.empty((8, 8), np.float32)
    tmp = np.empty((8, 8), np.float32)
    acc = np.empty(hid, np.float32)
    for by in range(nby):
        for bx in range(nbx):
            for u in range(8):
                y = min(by * 8 + u, h - 1)
                for v in range(8):
                    x = min(bx * 8 + v, w - 1)
                    blk[u, v] = lum[y, x] * scale
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
                    row = u * 8 + v
                    for o in range(hid):
                        acc[o] += c * w1t[row, o]
            for k in range(nz):
                g = block_normal(seed, by, bx, k)
                for o in range(hid):
                    acc[o] += g * w1t[64 + k, o]
            for o in range(hid):
                hidden_out[by, bx, o] = max(acc[o], np.float32(0.0))
            var_out[by, bx] = ac / np.float32(64.0)


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
    """Overlap-add every block's atom combination into a band of rows.

    ``hidden`` (nby, nbx, c); ``atoms`` (c, 256): atom ``c`` as a flattened
    16x16 image; block (by, bx) contributes ``sum_c hidden[by, bx, c] *
    atoms[c]`` with its top-left corner at pixel (8 by - 4, 8 bx - 4).
    ``out`` (rows, w) float32 receives pixel rows ``row0 .. row0 + rows``
    (``row0`` a multiple of 8); blocks are added in row-major order.
    """
    rows, w = out.shape
    nby, nbx, c = hidden.shape
    out[:, :] = 0.0
    a = np.empty(256, np.float32)
    by_first = max(0, row0 // 8 - 1)
    by_last = min(nby - 1, (row0 + rows - 1) // 8 + 1)
    for by in range(by_first, by_last + 1):
        for bx in range(nbx):
            for k in range(256):
                a[k] = 0.0
            live = False
            for ch in range(c):
                s = hidden[by, bx, ch]
                if s == 0.0:
                    continue
                live = True
                for k in range(256):
                    a[k] += s * atoms[ch, k]
            if not live:
                continue
            for u in range(16):
                y = by * 8 - 4 + u - row0
                if y < 0 or y >= rows:
                    continue
                for v in range(16):
                    x = bx * 8 - 4 + v
                    if x < 0 or x >= w:
                        continue
                    out[y, x] += a[u * 16 + v]


@njit_serial
def weighted_energy_kernel(field, block_weight, row0):
    """``sum(weight * field**2)`` over a band; each pixel takes its 8x8 block's weight."""
    rows, w = field.shape
    total = 0.0
    for y in range(rows):
        by = (row0 + y) // 8
        for x in range(w):
            f = np.float64(field[y, x])
            total += np.float64(block_weight[by, x // 8]) * f * f
    return total
