"""A differentiable SSIMULACRA 2 in torch, for offline design only.

The same definition as :func:`protect.metrics.ssimulacra2` (libjxl's
tools/ssimulacra2.cc: SSIM and edge-difference maps of the XYB colour space at
6 scales, 1- and 4-norm pooled into 108 weighted features), written with torch
operations so that a generator can be trained against it.  The weights, the
opsin matrix and the final polynomial are taken from ``protect.metrics`` so
there is one copy of the published parameters.  ``tests/test_design.py``
checks that it agrees with ``protect.metrics.ssimulacra2``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from protect import metrics as _m  # noqa: E402

_W = torch.tensor(_m._SSIMULACRA2_WEIGHTS, dtype=torch.float64)
_OPSIN = torch.tensor(_m._OPSIN, dtype=torch.float32)
_BIAS = float(_m._OPSIN_BIAS)
_CBRT_BIAS = _BIAS ** (1.0 / 3.0)


def _gauss_kernel(sigma: float = 1.5) -> torch.Tensor:
    r = 6  # OpenCV's FIR length for sigma 1.5 on float images is 13 taps
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    return k / k.sum()


_K = _gauss_kernel()


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    r = _K.numel() // 2
    if min(x.shape[2], x.shape[3]) <= r:
        xp = F.pad(x, (r, r, r, r), mode="replicate")
    else:
        xp = F.pad(x, (r, r, r, r), mode="reflect")
    xp = F.conv2d(xp, _K.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(xp, _K.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def srgb_to_linear(v: torch.Tensor) -> torch.Tensor:
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055).clamp_min(1e-12) ** 2.4)


def _xyb(lin: torch.Tensor) -> torch.Tensor:
    mixed = torch.einsum("nchw,dc->ndhw", lin, _OPSIN) + _BIAS
    mixed = mixed.clamp_min(1e-12) ** (1.0 / 3.0) - _CBRT_BIAS
    x = 0.5 * (mixed[:, 0] - mixed[:, 1])
    y = 0.5 * (mixed[:, 0] + mixed[:, 1])
    b = mixed[:, 2]
    return torch.stack([x * 14.0 + 0.42, y + 0.01, (b - y) + 0.55], 1)


def distortion(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """The metric's weighted feature sum ``s`` (0 = identical), per image.

    ``ref``, ``dist``: (N, 3, H, W) sRGB in [0, 1].  The score is
    ``100 - 10 s'^0.6276`` with ``s'`` a cubic of ``s``: see :func:`score`.
    """
    l1, l2 = srgb_to_linear(ref), srgb_to_linear(dist)
    feats = []
    for scale in range(6):
        if scale > 0:
            if l1.shape[2] < 16 or l1.shape[3] < 16:
                break
            l1, l2 = F.avg_pool2d(l1, 2), F.avg_pool2d(l2, 2)
        i1, i2 = _xyb(l1), _xyb(l2)
        mu1, mu2 = _blur(i1), _blur(i2)
        s11, s22, s12 = _blur(i1 * i1), _blur(i2 * i2), _blur(i1 * i2)
        num_m = 1.0 - (mu1 - mu2) ** 2
        num_s = 2.0 * (s12 - mu1 * mu2) + 0.0009
        den_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + 0.0009
        d = (1.0 - num_m * num_s / den_s).clamp_min(0.0)
        ed = (1.0 + (i2 - mu2).abs()) / (1.0 + (i1 - mu1).abs()) - 1.0
        per = []
        for m in (d, ed.clamp_min(0.0), (-ed).clamp_min(0.0)):
            m = m.double()
            per.append(m.mean(dim=(2, 3)))  # (N, 3) L1
            per.append((m**4).mean(dim=(2, 3)).clamp_min(1e-30) ** 0.25)  # L4
        feats.append(torch.stack(per, -1))  # (N, 3, 6): ssim1, ssim4, ring1, ring4, blur1, blur4
    n = ref.shape[0]
    f = torch.zeros(n, 3, 6, 6, dtype=torch.float64)
    f[:, :, : len(feats)] = torch.stack(feats, 2)
    ordered = f.reshape(n, 3, 6, 3, 2).permute(0, 1, 2, 4, 3).reshape(n, -1)
    return (ordered.abs() @ _W) * 0.9562382616834844


def score(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """SSIMULACRA 2 score per image (100 = identical)."""
    return score_of_distortion(distortion(ref, dist))


def score_of_distortion(s: torch.Tensor) -> torch.Tensor:
    """The 0-100 score of a :func:`distortion` value."""
    s = 2.326765642916932 * s - 0.020884521182843837 * s * s + 6.248496625763138e-05 * s**3
    return 100.0 - 10.0 * s.clamp_min(1e-12) ** 0.6276336467831387
