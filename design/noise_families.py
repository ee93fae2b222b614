"""Which *stationary* or hand-shaped noise families beat i.i.d. Gaussian noise at equal SSIMULACRA2?

    python design/noise_families.py [CROP]        # 8 images, 256 px crops by default; ~15 min on 2 cores

The first step of issue 12's search, before any training: colour directions
(luma, opponent R-G and B-Y, blue alone, ...), spatial bands (difference of
Gaussians), texture-weighted gain, keyed sign-modulated sharpening and
gradient-aligned noise, each scaled to a ladder of RMS levels, against
Gaussian RGB noise on the same crops.  Prints the iso-visibility ratio
(TAEF2 latent shift at equal SSIMULACRA2, 85 and 90; medians over the
images, then per image).  Results are quoted in docs/effect.md.
"""

import sys
import time
import math
from pathlib import Path
import numpy as np
import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from protect import io as pio  # noqa: E402
from protect.kernels.rec601 import LUMA_B, LUMA_G, LUMA_R  # noqa: E402
from protect.arrays import data_range_of  # noqa: E402
from protect.metrics import ssimulacra2  # noqa: E402
from protect.verify import flatten_8bit  # noqa: E402
from protect.surrogate import load_encoder  # noqa: E402

ENC = load_encoder()
CROP = int(sys.argv[1]) if len(sys.argv) > 1 else 256
FILES = [
    "samples/cel_flat_fills.png",
    "samples/sprite_transparent.png",
    "../shared/corpus/renpy/eileen-happy.png",
    "../shared/corpus/peppercarrot/shichimi-concept-art.jpg",
    "../shared/corpus/standardebooks/alice_tenniel_10.png",
    "../shared/corpus/paintings/turner_shipwreck.jpg",
    "../shared/corpus/peppercarrot/fixing-the-project.jpg",
    "samples/ink_line_art.png",
]


def load(f):
    img = pio.read_image(ROOT / f, max_pixels=None)
    fr = img.frames[0]
    data_range = data_range_of(fr.pixels.dtype)
    u8 = flatten_8bit(fr.pixels, fr.alpha, data_range)
    if u8.shape[2] == 1:
        u8 = np.repeat(u8, 3, 2)
    h, w = u8.shape[:2]
    s = min(1.0, 1024 / max(h, w))
    if s < 1:
        u8 = cv2.resize(u8, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    h, w = u8.shape[:2]
    c = min(CROP, h, w) // 8 * 8
    return np.ascontiguousarray(u8[(h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c])


IMGS = [load(f) for f in FILES if (ROOT / f).is_file()]


def enc(batch):  # list of uint8 -> latents
    return ENC(np.stack([b.astype(np.float32) / 255 for b in batch]))


def blur(z, s):
    return cv2.GaussianBlur(z, (0, 0), s, borderType=cv2.BORDER_REFLECT) if s > 0 else z


def luma(x):
    return x[..., 0] * LUMA_R + x[..., 1] * LUMA_G + x[..., 2] * LUMA_B


COL = {
    "rgb": None,
    "Y": np.array([1, 1, 1]) / math.sqrt(3),
    "RG": np.array([1, -1, 0]) / math.sqrt(2),
    "BY": np.array([-0.5, -0.5, 1]) / math.sqrt(1.5),
    "B": np.array([0, 0, 1.0]),
    "G": np.array([0, 1.0, 0]),
}


def family(x, rs, col="rgb", band=None, gain=None):
    h, w, _ = x.shape
    if col == "rgb":
        z = rs.standard_normal((h, w, 3)).astype(np.float32)
    else:
        z = rs.standard_normal((h, w)).astype(np.float32)

    def filt(q):
        if band is None:
            return q
        lo, hi = band  # DoG: blur(lo) - blur(hi)
        return blur(q, lo) - (blur(q, hi) if hi else 0)

    if z.ndim == 3:
        z = np.stack([filt(z[..., i]) for i in range(3)], -1)
    else:
        z = filt(z)[..., None] * COL[col][None, None, :].astype(np.float32)
    if gain is not None:
        z = z * gain(x)[..., None]
    return z


def tex_gain(p, s=2.0, floor=0.0):
    def g(x):
        y = luma(x.astype(np.float32))
        m = blur(y, s)
        v = np.sqrt(np.maximum(blur(y * y, s) - m * m, 0))
        t = v / (v + 4.0)
        return (floor + (1 - floor) * t) ** p

    return g


def apply(x, d, a):
    d = d / max(np.sqrt(np.mean(d**2)), 1e-9)
    return np.clip(np.rint(x.astype(np.float32) + a * d), 0, 255).astype(np.uint8)


def curve(x, d, amps):
    ps = [apply(x, d, a) for a in amps]
    z = enc([x] + ps)
    z0 = z[0]
    sh = [float(np.linalg.norm(zi - z0)) for zi in z[1:]]
    ss = [ssimulacra2(x, p, data_range=255) for p in ps]
    return ss, sh


def at(ss, sh, target):
    # interpolate log(shift) against ss2 (ss decreasing with amplitude)
    ss = np.array(ss)
    sh = np.log(np.array(sh) + 1e-9)
    o = np.argsort(ss)
    if target < ss[o][0] or target > ss[o][-1]:
        # extrapolate linearly with the end pair
        i = 0 if target < ss[o][0] else len(ss) - 2
        a, b = o[i], o[i + 1]
    else:
        i = max(0, np.searchsorted(ss[o], target) - 1)
        i = min(i, len(ss) - 2)
        a, b = o[i], o[i + 1]
    t = (target - ss[a]) / (ss[b] - ss[a] + 1e-9)
    return float(np.exp(sh[a] + t * (sh[b] - sh[a])))


GAUSS_AMPS = [2, 3.5, 5, 7]


def baseline():
    out = []
    for i, x in enumerate(IMGS):
        d = family(x, np.random.default_rng(1000 + i))
        out.append(curve(x, d, GAUSS_AMPS))
    return out


def evaluate(name, mk, amps, base, targets=(85, 90)):
    t0 = time.time()
    ratios = {t: [] for t in targets}
    ssmin = []
    for i, x in enumerate(IMGS):
        d = mk(x, np.random.default_rng(i))
        ss, sh = curve(x, d, amps)
        ssmin.append(ss)
        for t in targets:
            ratios[t].append(at(ss, sh, t) / at(*base[i], t))
    r = {t: float(np.median(v)) for t, v in ratios.items()}
    print(
        f"{name:40s} r85={r[85]:.2f} r90={r[90]:.2f}  per-img85="
        + " ".join(f"{v:.2f}" for v in ratios[85])
        + f"  ss@amps(img0)={[round(s, 1) for s in ssmin[0]]}  {time.time() - t0:.0f}s",
        flush=True,
    )
    return r


def sharpen(x, rs, s=1.0, smooth=8):
    """Keyed sign-modulated unsharp mask: sharpen here, soften there (zero on flat colour)."""
    xf = x.astype(np.float32)
    hp = xf - np.stack([blur(xf[..., i], s) for i in range(3)], -1)
    k = (
        blur(rs.standard_normal(x.shape[:2]).astype(np.float32), smooth)
        if smooth
        else rs.standard_normal(x.shape[:2]).astype(np.float32)
    )
    return hp * (k / k.std())[..., None]


def gradnoise(x, rs, s=1.0):
    """Keyed noise along the luma gradient: moves edges a little."""
    y = blur(luma(x.astype(np.float32)), s)
    gy, gx = np.gradient(y)
    z = rs.standard_normal((2,) + y.shape).astype(np.float32)
    return (gx * z[0] + gy * z[1])[..., None] * np.ones(3, np.float32)


def main():
    base = baseline()
    A = [2, 3.5, 5, 7]
    evaluate("gauss rgb (self-check: 1.00)", lambda x, rs: family(x, rs), A, base)
    extra = {"isoB": [0, -0.194, 1.0], "B+.3Y": [0.3, 0.3, 1.3], "R": [1, 0, 0], "B-G": [0, -1, 1], "R-B": [1, 0, -1]}
    for n, c in extra.items():
        COL[n] = np.array(c, float) / np.linalg.norm(c)
    for col in ["Y", "RG", "BY", "B", "isoB", "B+.3Y", "R", "B-G", "R-B"]:
        evaluate(f"white {col}", lambda x, rs, c=col: family(x, rs, c), A + [10], base)
    for band in [(0, 0.7), (0, 1.5), (0.7, 2), (1.5, 4), (3, 8), (1.0, 0)]:
        evaluate(f"rgb band {band}", lambda x, rs, b=band: family(x, rs, "rgb", b), A, base)
    evaluate("blue band (0, 0.7)", lambda x, rs: family(x, rs, "B", (0, 0.7)), A + [10], base)
    for p in [0.5, 1, 2]:
        evaluate(
            f"rgb white * texture^{p}",
            lambda x, rs, p=p: family(x, rs, "rgb", None, tex_gain(p)),
            [1.5, 2.5, 3.5, 5],
            base,
        )
    evaluate("luma white * texture", lambda x, rs: family(x, rs, "Y", None, tex_gain(1)), [1.5, 2.5, 3.5, 5], base)
    for s, sm in [(1.0, 8), (1.0, 0), (0.7, 2), (2.0, 8), (1.0, 32)]:
        evaluate(f"sharpen s={s} smooth={sm}", lambda x, rs, s=s, sm=sm: sharpen(x, rs, s, sm), [1, 2, 3, 5], base)
    evaluate("gradient-aligned noise", gradnoise, [1, 2, 3, 5], base)


if __name__ == "__main__":
    main()
