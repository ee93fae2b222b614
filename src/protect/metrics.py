"""Similarity metrics between an original image and a protected (or attacked) one.

All functions take two arrays of the same shape, a keyword-only
``data_range`` (the distance between the minimum and maximum possible
values: 255 for uint8, 65535 for uint16, 1.0 for float images in [0, 1]),
and never change their inputs.

Alpha: when an ``alpha`` array is given, :func:`ssimulacra2` composites both
images on white and on black and reports the worse score; :func:`psnr` and
:func:`ciede2000` leave out fully transparent pixels (their colour is never
seen).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["psnr", "ssim", "ssimulacra2", "ciede2000", "delta_e_ciede2000", "srgb_to_lab"]


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def psnr(
    reference: np.ndarray,
    distorted: np.ndarray,
    *,
    data_range: float,
    alpha: np.ndarray | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images.

    ``10 log10(data_range^2 / MSE)`` over every sample (all channels),
    leaving out pixels whose ``alpha`` is 0 when ``alpha`` is given.
    """
    _check_pair(reference, distorted)
    if data_range <= 0:
        raise ValueError("data_range must be positive")
    diff = reference.astype(np.float64) - distorted.astype(np.float64)
    sq = diff * diff
    if alpha is not None:
        keep = np.asarray(alpha) > 0
        if not keep.any():
            return math.inf
        sq = sq[keep]
    mse = float(np.mean(sq))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(float(data_range) ** 2 / mse)


def ssim(reference: np.ndarray, distorted: np.ndarray, *, data_range: float) -> float:
    """Mean structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004).

    Gaussian window with sigma 1.5 (11 taps), K1 = 0.01, K2 = 0.03, sample
    covariances, computed per channel and averaged, as in the paper and in
    scikit-image's ``structural_similarity(gaussian_weights=True,
    use_sample_covariance=False, sigma=1.5)``; borders are reflected
    (skimage crops them instead, so values differ slightly at borders).

    Z. Wang et al., "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4), 2004.
    """
    _check_pair(reference, distorted)
    a = reference.astype(np.float32)
    b = distorted.astype(np.float32)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    vals = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(float(np.mean(s, dtype=np.float64)))
    return float(np.mean(vals))


# --- SSIMULACRA2 -----------------------------------------------------------
#
# SSIMULACRA 2 (Jon Sneyers, Cloudinary, 2022), as defined by libjxl's
# tools/ssimulacra2.cc (BSD-3-Clause): SSIM and edge-difference maps of the
# XYB colour space at 6 scales, pooled with 1- and 4-norms into 108 features,
# weighted and mapped to a 0-100 scale (100 = identical, 90 = visually
# lossless at normal viewing, 70 = high quality, 50 = medium).  The 108
# weights and the final polynomial are the published parameters of the
# metric, from that file.  Differences from libjxl: the Gaussian blur
# (sigma 1.5) is OpenCV's FIR filter with reflected borders instead of
# libjxl's recursive Gaussian; tests/test_metrics.py records the agreement
# with an independent implementation (PyPI ``ssimulacra2``).

_SSIMULACRA2_WEIGHTS = np.array([
    0.0, 0.0007376606707406586, 0.0, 0.0,
    0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379,
    0.0, 1.1041726426657346, 0.00066284834129271, 0.00015231632783718752,
    0.0, 0.0016406437456599754, 0.0, 1.8422455520539298,
    11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653,
    0.0, 1.8787594979546387, 10.94906990605142, 0.0,
    0.0007289346991508072, 0.9677937080626833, 0.0, 0.00014003424285435884,
    0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063, 0.0,
    0.0, 0.0013648766163243398, 0.0, 0.0,
    0.0, 0.0, 0.0, 7.466890328078848,
    0.0, 17.445833984131262, 0.0006235601634041466, 0.0,
    0.0, 6.683678146179332, 0.00037724407979611296, 1.027889937768264,
    225.20515300849274, 0.0, 0.0, 19.213238186143016,
    0.0011401524586618361, 0.001237755635509985, 176.39317598450694, 0.0,
    0.0, 24.43300999870476, 0.28520802612117757, 0.0004485436923833408,
    0.0, 0.0, 0.0, 34.77906344483772,
    44.835625328877896, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0,
    0.0, 0.0008680556573291698, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0005313191874358747,
    0.0, 0.00016533814161379112, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0004179171803251336,
    0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0,
    0.0, 8.826982764996862, 23.19243343998926, 0.0,
    95.1080498811086, 0.9863978034400682, 0.9834382792465353, 0.0012286405048278493,
    171.2667255897307, 0.9807858872435379, 0.0, 0.0,
    0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
])

_OPSIN = np.array(
    [
        [0.30, 0.622, 0.078],
        [0.23, 0.692, 0.078],
        [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821],
    ],
    np.float32,
)
_OPSIN_BIAS = np.float32(0.0037930732552754493)


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_to_positive_xyb(lin: np.ndarray) -> np.ndarray:
    mixed = lin @ _OPSIN.T + _OPSIN_BIAS
    mixed = np.cbrt(np.maximum(mixed, 0.0)) - np.cbrt(_OPSIN_BIAS)
    x = 0.5 * (mixed[..., 0] - mixed[..., 1])
    y = 0.5 * (mixed[..., 0] + mixed[..., 1])
    b = mixed[..., 2]
    out = np.empty_like(mixed)
    out[..., 0] = x * 14.0 + 0.42
    out[..., 1] = y + 0.01
    out[..., 2] = (b - y) + 0.55
    return out


def _downsample2(lin: np.ndarray) -> np.ndarray:
    """2x2 box average; a partial last row/column averages what it has."""
    h, w, _ = lin.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        lin = np.pad(lin, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return lin.reshape(lin.shape[0] // 2, 2, lin.shape[1] // 2, 2, 3).mean(axis=(1, 3), dtype=np.float32)


def _blur(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)


def _ssimulacra2_linear(lin1: np.ndarray, lin2: np.ndarray) -> float:
    c2 = np.float32(0.0009)
    feats = np.zeros((3, 6, 6))  # channel, scale, [ssim L1, ssim L4, ring L1, ring L4, blur L1, blur L4]
    for scale in range(6):
        if lin1.shape[0] < 8 or lin1.shape[1] < 8:
            break
        if scale > 0:
            lin1, lin2 = _downsample2(lin1), _downsample2(lin2)
            if lin1.shape[0] < 8 or lin1.shape[1] < 8:
                break
        i1, i2 = _linear_to_positive_xyb(lin1), _linear_to_positive_xyb(lin2)
        mu1, mu2 = _blur(i1), _blur(i2)
        s11, s22, s12 = _blur(i1 * i1), _blur(i2 * i2), _blur(i1 * i2)
        num_m = 1.0 - (mu1 - mu2) ** 2
        num_s = 2.0 * (s12 - mu1 * mu2) + c2
        den_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + c2
        d = np.maximum(1.0 - num_m * num_s / den_s, 0.0)
        ed = (1.0 + np.abs(i2 - mu2)) / (1.0 + np.abs(i1 - mu1)) - 1.0
        ring, lost = np.maximum(ed, 0.0), np.maximum(-ed, 0.0)
        for k, m in enumerate((d, ring, lost)):
            m = m.reshape(-1, 3).astype(np.float64)
            feats[:, scale, 2 * k] = m.mean(axis=0)
            feats[:, scale, 2 * k + 1] = np.mean(m**4, axis=0) ** 0.25
    # weight order: channel, scale, norm n, then (ssim n, ring n, blur n)
    ordered = feats.reshape(3, 6, 3, 2).transpose(0, 1, 3, 2).reshape(-1)
    s = float(np.dot(_SSIMULACRA2_WEIGHTS, np.abs(ordered))) * 0.9562382616834844
    s = 2.326765642916932 * s - 0.020884521182843837 * s * s + 6.248496625763138e-05 * s**3
    return 100.0 - 10.0 * s**0.6276336467831387 if s > 0 else 100.0


def _to_linear_rgb(img: np.ndarray, data_range: float) -> np.ndarray:
    v = img.astype(np.float32) / np.float32(data_range)
    if v.ndim == 2:
        v = v[..., None]
    if v.shape[2] == 1:
        v = np.repeat(v, 3, axis=2)
    return _srgb_to_linear(np.clip(v[..., :3], 0.0, 1.0))


def ssimulacra2(
    reference: np.ndarray,
    distorted: np.ndarray,
    *,
    data_range: float,
    alpha: np.ndarray | None = None,
) -> float:
    """SSIMULACRA 2 score (100 = identical; >= 90 visually lossless; 70 high quality).

    Parameters
    ----------
    reference, distorted : (H, W, 3), (H, W, 1) or (H, W) arrays
        sRGB-encoded images (grey is repeated to RGB).
    data_range : float
        255 for uint8, 65535 for uint16, 1.0 for float images in [0, 1].
    alpha : (H, W) array, optional
        Opacity on the same ``data_range``; both images are composited on
        black and on white and the lower (worse) score is returned.

    References
    ----------
    J. Sneyers, "SSIMULACRA 2: Structural SIMilarity Unveiling Artifacts
    Compressed Renders As Ads", Cloudinary, 2022; libjxl tools/ssimulacra2.cc.
    """
    _check_pair(reference, distorted)
    if data_range <= 0:
        raise ValueError("data_range must be positive")
    if alpha is None:
        return _ssimulacra2_linear(_to_linear_rgb(reference, data_range), _to_linear_rgb(distorted, data_range))
    a = (np.asarray(alpha).astype(np.float32) / np.float32(data_range))[..., None]
    scores = []
    for bg in (0.0, 1.0):
        ref = reference.astype(np.float32) / np.float32(data_range)
        dis = distorted.astype(np.float32) / np.float32(data_range)
        ref = ref * a + bg * (1.0 - a)
        dis = dis * a + bg * (1.0 - a)
        scores.append(ssimulacra2(ref, dis, data_range=1.0))
    return min(scores)


# --- CIEDE2000 -------------------------------------------------------------

# sRGB (D65) -> CIE XYZ, IEC 61966-2-1; reference white D65 (2 degree observer).
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_D65 = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(img: np.ndarray, *, data_range: float) -> np.ndarray:
    """CIELAB (D65) of an sRGB image, float64 array of shape (..., 3).

    Grey images ((H, W) or (H, W, 1)) are treated as R = G = B.
    """
    v = np.asarray(img, np.float64) / float(data_range)
    if v.ndim == 2:
        v = v[..., None]
    if v.shape[-1] == 1:
        v = np.repeat(v, 3, axis=-1)
    v = np.clip(v[..., :3], 0.0, 1.0)
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    xyz = (lin @ _SRGB_TO_XYZ.T) / _D65
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def delta_e_ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between CIELAB arrays of shape (..., 3).

    kL = kC = kH = 1.  Implements the equations of G. Sharma, W. Wu and
    E. N. Dalal, "The CIEDE2000 color-difference formula: implementation
    notes, supplementary test data, and mathematical observations", Color
    Research & Application 30(1), 2005; tests/test_metrics.py checks it
    against that paper's 34 test pairs.
    """
    lab1 = np.asarray(lab1, np.float64)
    lab2 = np.asarray(lab2, np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    c7 = c_bar**7
    g = 0.5 * (1.0 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    chroma0 = (c1p * c2p) == 0.0

    d_l = L2 - L1
    d_c = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(chroma0, 0.0, dh)
    d_h = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    l_bar = 0.5 * (L1 + L2)
    cp_bar = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180.0,
        0.5 * h_sum,
        np.where(h_sum < 360.0, 0.5 * (h_sum + 360.0), 0.5 * (h_sum - 360.0)),
    )
    h_bar = np.where(chroma0, h_sum, h_bar)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    cp7 = cp_bar**7
    r_c = 2.0 * np.sqrt(cp7 / (cp7 + 25.0**7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    tl, tc, th = d_l / s_l, d_c / s_c, d_h / s_h
    return np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0.0))


def ciede2000(
    reference: np.ndarray,
    distorted: np.ndarray,
    *,
    data_range: float,
    alpha: np.ndarray | None = None,
    percentile: float = 99.0,
) -> tuple[float, float]:
    """Mean and ``percentile``-th percentile of the per-pixel CIEDE2000 difference.

    Both images are sRGB-encoded; a difference of about 1 is a just
    noticeable difference for side-by-side flat patches, and the mean over
    an image hides small visible spots, hence the high percentile as well.
    Pixels with ``alpha`` 0 are left out.
    """
    _check_pair(reference, distorted)
    if data_range <= 0:
        raise ValueError("data_range must be positive")
    ref = reference if reference.ndim == 3 else reference[..., None]
    dis = distorted if distorted.ndim == 3 else distorted[..., None]
    changed = np.any(ref != dis, axis=2)  # identical pixels have a difference of exactly 0
    de = np.zeros(changed.shape)
    de[changed] = delta_e_ciede2000(srgb_to_lab(ref[changed][:, None], data_range=data_range),
                                    srgb_to_lab(dis[changed][:, None], data_range=data_range))[:, 0]
    if alpha is not None:
        de = de[np.asarray(alpha) > 0]
    if de.size == 0:
        return 0.0, 0.0
    return float(np.mean(de)), float(np.percentile(de, percentile))
