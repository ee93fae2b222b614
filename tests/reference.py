"""Slow NumPy references for the numba kernels, written independently of them.

Each follows the kernel's docstring, not its code: Python integers for the
hash, ``scipy.ndimage`` for the box filters, plain array expressions for
the rest.  ``tests/test_kernels.py`` compares every kernel with these.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
KY, KX, KC = 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93


def splitmix64(x: int) -> int:
    z = (x + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def block_uniforms(seed: int, by: int, bx: int, n: int) -> np.ndarray:
    """The ``n`` uniforms of block (by, bx): two per draw, high 24 bits first."""
    state = splitmix64(seed ^ ((by * KY) & M64) ^ ((bx * KX) & M64))
    vals = []
    for k in range((n + 1) // 2):
        z = splitmix64((state + k * KC) & M64)
        vals += [(z >> 40) * (2.0 / 16777216.0) - 1.0, (z & 0xFFFFFF) * (2.0 / 16777216.0) - 1.0]
    return np.array(vals[:n], np.float32)


def dct_noise(seed: int, atoms: np.ndarray, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Noise of the global 8-px block grid, cropped to [y0, y0+h) x [x0, x0+w)."""
    by0, bx0 = y0 // 8, x0 // 8
    by1, bx1 = (y0 + h - 1) // 8, (x0 + w - 1) // 8
    big = np.zeros(((by1 - by0 + 1) * 8, (bx1 - bx0 + 1) * 8), np.float64)
    for by in range(by0, by1 + 1):
        for bx in range(bx0, bx1 + 1):
            c = block_uniforms(seed, by, bx, atoms.shape[0]).astype(np.float64)
            blk = (c[:, None] * atoms.astype(np.float64)).sum(0).reshape(8, 8)
            big[(by - by0) * 8:(by - by0 + 1) * 8, (bx - bx0) * 8:(bx - bx0 + 1) * 8] = blk
    oy, ox = y0 - by0 * 8, x0 - bx0 * 8
    return big[oy:oy + h, ox:ox + w].astype(np.float32)


def luminance(src: np.ndarray, scale: float) -> np.ndarray:
    s = src.astype(np.float64)
    y = s[..., 0] if s.shape[2] < 3 else 0.299 * s[..., 0] + 0.587 * s[..., 1] + 0.114 * s[..., 2]
    return (y * scale).astype(np.float32)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def perceptual_mask(lum: np.ndarray, radius: int, t_low: float, t_high: float, g_t: float,
                    d_low: float, d_high: float, dark: float) -> np.ndarray:
    """The weight of every row of ``lum`` (the kernel writes a row range of it)."""
    L = lum.astype(np.float64)
    gx = np.abs(np.diff(L, axis=1, append=L[:, -1:]))
    gy = np.abs(np.diff(L, axis=0, append=L[-1:, :]))
    g = gx + gy
    size = 2 * radius + 1
    a = ndimage.uniform_filter(g, size=size, mode="nearest")
    f = ndimage.uniform_filter((g > g_t).astype(np.float64), size=size, mode="nearest")
    tex = _smoothstep((a - t_low) / (t_high - t_low)) * _smoothstep((f - d_low) / (d_high - d_low))
    lf = np.minimum(dark + (1 - dark) / 64.0 * L, 1.0)
    return (tex * lf).astype(np.float32)


def apply_noise(src: np.ndarray, noise: np.ndarray, gain: np.ndarray, amplitude: float, data_range: int) -> np.ndarray:
    d = (np.float32(amplitude) * gain.astype(np.float32)) * noise.astype(np.float32)
    v = src.astype(np.float32) + d[..., None] + np.float32(0.5)
    v = np.clip(v, 0, data_range + 0.5)
    return np.floor(v).astype(src.dtype)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter, pixel by pixel: for every window, solve the
    ridge regression of ``src`` on the guide's colours (Eq. 14 of the paper),
    then average the coefficients of every window covering each pixel.
    Borders are reflected (``abc|cba``), like cv2.BORDER_REFLECT."""
    guide = np.asarray(guide, np.float64)
    src = np.asarray(src, np.float64)
    h, w, cg = guide.shape
    r = radius
    gp = np.pad(guide, ((r, r), (r, r), (0, 0)), mode="symmetric")
    out = np.zeros_like(src)
    for c in range(src.shape[2]):
        pp = np.pad(src[..., c], r, mode="symmetric")
        a = np.zeros((h, w, cg))
        b = np.zeros((h, w))
        for y in range(h):
            for x in range(w):
                win_i = gp[y:y + 2 * r + 1, x:x + 2 * r + 1].reshape(-1, cg)
                win_p = pp[y:y + 2 * r + 1, x:x + 2 * r + 1].ravel()
                mu = win_i.mean(axis=0)
                cov = (win_i - mu).T @ (win_i - mu) / len(win_p)
                cov_ip = (win_i - mu).T @ (win_p - win_p.mean()) / len(win_p)
                a[y, x] = np.linalg.solve(cov + eps * np.eye(cg), cov_ip)
                b[y, x] = win_p.mean() - a[y, x] @ mu
        ap = np.pad(a, ((r, r), (r, r), (0, 0)), mode="symmetric")
        bp = np.pad(b, r, mode="symmetric")
        for y in range(h):
            for x in range(w):
                ma = ap[y:y + 2 * r + 1, x:x + 2 * r + 1].reshape(-1, cg).mean(axis=0)
                mb = bp[y:y + 2 * r + 1, x:x + 2 * r + 1].mean()
                out[y, x, c] = ma @ guide[y, x] + mb
    return out


def embed_tile(src: np.ndarray, tile: np.ndarray, gain: np.ndarray, maxval: int) -> np.ndarray:
    """The watermark tile repeated over the image, times the gain, added to every channel."""
    h, w, _ = src.shape
    t = tile.shape[0]
    reps = tile[np.arange(h)[:, None] % t, np.arange(w)[None, :] % t]
    v = src.astype(np.float64) + (reps.astype(np.float32) * gain.astype(np.float32)).astype(np.float32)[..., None]
    return np.clip(np.floor(v + 0.5), 0, maxval).astype(src.dtype)


def fold(residual: np.ndarray, a: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of ``residual`` per nearest tile position (u, v) = a @ (x, y), modulo ``period``."""
    h, w = residual.shape
    y, x = np.mgrid[0:h, 0:w]
    u = a[0, 0] * x + a[0, 1] * y
    v = a[1, 0] * x + a[1, 1] * y
    iu = np.floor(np.mod(u, period) + 0.5).astype(np.int64) % period
    iv = np.floor(np.mod(v, period) + 0.5).astype(np.int64) % period
    sums = np.zeros((period, period))
    counts = np.zeros((period, period), np.int64)
    np.add.at(sums, (iv, iu), residual)
    np.add.at(counts, (iv, iu), 1)
    return sums, counts


# ---------------------------------------------------------------- generator
# Independent re-statements of protect.kernels.generator: whole-array NumPy
# (block DCT by einsum, the 3x3 layer by padded shifts, synthesis by
# scattering each block's atom), with the key noise drawn by Python ints.

def block_normal(seed: int, by: int, bx: int, k: int) -> float:
    """Box-Muller standard normal from splitmix64(seed ^ by*KZ ^ bx*KB ^ k << 56)."""
    kz, kb = 0xA0761D6478BD642F, 0xE7037ED1A0B428DB
    z = splitmix64(seed ^ ((by * kz) & M64) ^ ((bx * kb) & M64) ^ ((k << 56) & M64))
    u1 = ((z >> 38) + 1) / 67108864.0
    u2 = (z & 0x3FFFFFF) / 67108864.0
    return float(np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2))


def generator_features(rgb01: np.ndarray, dct: np.ndarray, seed: int, w1t: np.ndarray, b1: np.ndarray):
    """(ReLU(first layer) per block, block variance) for a 0-1 (h, w, 1 or 3) image (edge-padded to 8).

    Features: luma DCT (64, index 8 u + v), block means of R - Y and B - Y (0 for grey), key noise."""
    h, w, c = rgb01.shape
    nby, nbx = -(-h // 8), -(-w // 8)
    x = np.pad(rgb01.astype(np.float64), ((0, nby * 8 - h), (0, nbx * 8 - w), (0, 0)), mode="edge")
    if c == 3:
        y = x @ np.array([0.299, 0.587, 0.114])
        chroma = np.stack([x[..., 0] - y, x[..., 2] - y], -1)
    else:
        y = x[..., 0]
        chroma = np.zeros(y.shape + (2,))
    blocks = y.reshape(nby, 8, nbx, 8).transpose(0, 2, 1, 3)
    cm = chroma.reshape(nby, 8, nbx, 8, 2).mean(axis=(1, 3))
    d = dct.astype(np.float64)
    coef = np.einsum("ui,abij,vj->abuv", d, blocks, d).reshape(nby, nbx, 64)
    nz = w1t.shape[0] - 66
    z = np.array([[[block_normal(seed, by, bx, k) for k in range(nz)] for bx in range(nbx)] for by in range(nby)])
    feats = np.concatenate([coef, cm, z.reshape(nby, nbx, nz)], axis=2)
    hidden = np.maximum(feats @ w1t.astype(np.float64) + b1, 0.0)
    var = (coef[:, :, 1:] ** 2).sum(axis=2) / 64.0
    var[blocks.max(axis=(2, 3)) == blocks.min(axis=(2, 3))] = 0.0  # a constant block has none
    return hidden, var, blocks.mean(axis=(2, 3))


def block_sign(seed: int, by: int, bx: int) -> float:
    kz, kb = 0xA0761D6478BD642F, 0xE7037ED1A0B428DB
    z = splitmix64(seed ^ ((by * kz) & M64) ^ ((bx * kb) & M64) ^ (0xFF << 56))
    return 1.0 if z >> 63 == 0 else -1.0


def modulate(hidden: np.ndarray, var: np.ndarray, mean: np.ndarray, seed: int, tau2: float, floor: float,
             flat_gain: float, paper: tuple[float, float]) -> np.ndarray:
    nby, nbx, _ = hidden.shape
    sign = np.array([[block_sign(seed, by, bx) for bx in range(nbx)] for by in range(nby)])
    return hidden * (sign * activity(var, mean, tau2, floor, flat_gain, paper))[..., None]


def activity(var: np.ndarray, mean: np.ndarray, tau2: float, floor: float, flat_gain: float,
             paper: tuple[float, float]) -> np.ndarray:
    """Each block's activity gain (the generator's modulate kernel, without the key's sign)."""
    flat = np.where((mean > paper[0]) & (mean < paper[1]), flat_gain, 0.0)
    return np.where(var > 0, floor + (1 - floor) * var / (var + tau2), flat)


def conv3x3_relu(src: np.ndarray, w2t: np.ndarray, b2: np.ndarray) -> np.ndarray:
    nby, nbx, _ = src.shape
    p = np.pad(src.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    acc = np.zeros((nby, nbx, w2t.shape[3])) + b2
    for dy in range(3):
        for dx in range(3):
            acc += p[dy:dy + nby, dx:dx + nbx] @ w2t[dy, dx].astype(np.float64)
    return np.maximum(acc, 0.0)


def synthesis(hidden: np.ndarray, atoms: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w, 3): every block's atom mix (atoms (c, 768) in (u, v, channel) order) scattered at (8 by - 4, 8 bx - 4)."""
    nby, nbx, _ = hidden.shape
    big = np.zeros((nby * 8 + 8, nbx * 8 + 8, 3))  # 4 px margin on every side
    per_block = hidden.astype(np.float64) @ atoms.astype(np.float64)  # (nby, nbx, 768)
    for by in range(nby):
        for bx in range(nbx):
            big[by * 8:by * 8 + 16, bx * 8:bx * 8 + 16] += per_block[by, bx].reshape(16, 16, 3)
    return big[4:4 + h, 4:4 + w]
