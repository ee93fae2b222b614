"""Measure a protected image against its original: visibility, survival, latent footprint.

Arrays in, a :class:`PairReport` out; no file I/O here (``verify_run.py`` pairs
and reads the files and writes the JSON, ``report.py`` draws the sheets,
``cli.py`` prints).

Definitions
-----------
Let ``o`` be the original and ``p`` the protected image, both flattened to
8-bit RGB (or grey) as a scraper would see them (transparency composited on
white, 16-bit reduced to 8), and ``d = p - o`` the protection signal.  For
an attack ``A`` with linear geometric part ``G`` (crop or resize, identity
for most attacks), let ``r = A(p) - A(o)`` (the same random seed for both)
and ``g = G(d)``.  Then

* ``correlation = <r, g> / (|r| |g|)``: does what is left still look like
  the protection;
* ``energy = mean(r^2) / mean(d^2)``: how much difference is left at all,
  per pixel, relative to the protection as posted in the part of the
  image the attack keeps (the crop of a crop attack; so that a downscale,
  which averages fine noise away, counts as a loss even though what is
  left is exactly the downscaled protection); it can exceed 1 when an
  attack adds differences of its own (JPEG blocks);
* ``survival = max(correlation, 0)^2 * energy``: the fraction of the
  protection's energy that is still there *as the protection*; 1 for the
  identity attack, 0 when it is gone.

Latent footprint (when an encoder is given): for each attack,
``|E(A(p)) - E(A(o))| / |E(A(o))|`` on a centre crop (native pixels) of
the attacked images, next to the same figure for ``n``: the original plus
i.i.d. Gaussian noise scaled to the protected image's PSNR (seeded), and
their ratio.  A ratio of 1 means the protection moves the latent no more
than random noise of the same strength.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from dataclasses import asdict, dataclass, field
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .arrays import crop_center, data_range_of
from .declutter import ATTACKS, apply_attack, apply_geometry, apply_region, attack_names
from .metrics import ciede2000, psnr, ssim, ssimulacra2

__all__ = [
    "AttackResult",
    "PairReport",
    "Thresholds",
    "verify_pair",
    "survival",
    "gaussian_twin",
    "latent_shift",
    "flatten_8bit",
    "surrogate_crop",
    "Surrogate",
    "encoder_input",
    "finite_median",
    "SURROGATE_CROP",
]

SURROGATE_CROP = 512  # side of the centre crop the encoder sees (native pixels)


@dataclass
class AttackResult:
    """Survival (and latent footprint, when measured) under one attack."""

    attack: str
    correlation: float | None
    energy: float | None
    survival: float | None
    footprint: float | None = None
    footprint_gaussian: float | None = None
    footprint_ratio: float | None = None


@dataclass
class Thresholds:
    """Gates for ``protect verify --min-...``: None means not checked."""

    min_psnr: float | None = None
    min_ssimulacra2: float | None = None
    min_survival: float | None = None

    @property
    def given(self) -> bool:
        """True when at least one threshold is set (only then can a pair "meet" them)."""
        return any(v is not None for v in (self.min_psnr, self.min_ssimulacra2, self.min_survival))


@dataclass
class PairReport:
    """Everything verify measured for one original/protected pair."""

    name: str
    width: int
    height: int
    psnr: float
    ssim: float
    ssimulacra2: float
    ciede2000_mean: float
    ciede2000_p99: float
    attacks: list[AttackResult] = field(default_factory=list)
    footprint_note: str | None = None
    seconds: float = 0.0
    # attacked 8-bit images kept for the visual report (not serialised)
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def failures(self, thresholds: Thresholds) -> list[str]:
        """Human-readable reasons this pair misses the thresholds (empty if none)."""
        out = []
        if thresholds.min_psnr is not None and self.psnr < thresholds.min_psnr:
            out.append(f"PSNR {self.psnr:.2f} dB < {thresholds.min_psnr}")
        if thresholds.min_ssimulacra2 is not None and self.ssimulacra2 < thresholds.min_ssimulacra2:
            out.append(f"SSIMULACRA2 {self.ssimulacra2:.2f} < {thresholds.min_ssimulacra2}")
        if thresholds.min_survival is not None:
            for a in self.attacks:
                if a.survival is not None and a.survival < thresholds.min_survival:
                    out.append(f"survival after {a.attack} {a.survival:.3f} < {thresholds.min_survival}")
        return out

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("images")
        return _finite(d)


def _finite(obj):
    """JSON has no inf/nan: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# ------------------------------------------------------------------ helpers


def flatten_8bit(pixels: np.ndarray, alpha: np.ndarray | None, data_range: float) -> np.ndarray:
    """What a scraper sees: composited on white, 8 bits, (H, W, 3) or (H, W, 1) uint8."""
    x = np.asarray(pixels, np.float32)
    if x.ndim == 2:
        x = x[..., None]
    scale = np.float32(255.0 / data_range)
    if alpha is not None:
        a = np.asarray(alpha, np.float32)[..., None] / np.float32(data_range)
        x = x * a + np.float32(data_range) * (1.0 - a)
    return np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)


def survival(
    protection: np.ndarray, residual: np.ndarray, *, posted: np.ndarray | None = None
) -> tuple[float | None, float | None, float | None]:
    """(correlation, energy, survival) of ``residual`` against ``protection``.

    ``protection`` is G(d), the protection signal in the attacked geometry,
    and ``residual`` is A(p) - A(o), of the same shape.  ``posted`` is d
    itself, whose mean energy per pixel is the reference (default:
    ``protection``, for attacks without geometry).  Returns Nones when the
    protection is empty.
    """
    g = np.asarray(protection, np.float64).ravel()
    r = np.asarray(residual, np.float64).ravel()
    ref = g if posted is None else np.asarray(posted, np.float64).ravel()
    gg = float(g @ g)
    ref_power = float(ref @ ref) / ref.size
    if gg == 0.0 or ref_power == 0.0:
        return None, None, None
    rr = float(r @ r)
    corr = float(r @ g) / math.sqrt(rr * gg) if rr > 0 else 0.0
    energy = (rr / r.size) / ref_power
    return corr, energy, max(corr, 0.0) ** 2 * energy


def gaussian_twin(original: np.ndarray, target_mse: float, *, seed: int, iterations: int = 4) -> np.ndarray:
    """``original`` plus seeded i.i.d. Gaussian noise whose mean squared
    error (after rounding and clipping to 8 bits) matches ``target_mse``.

    Clipping at 0 and 255 removes part of the noise on white or black
    areas, so the noise scale is corrected a few times until the MSE
    matches within a fraction of a percent.
    """
    o = original.astype(np.float32)
    z = np.random.default_rng(seed).standard_normal(original.shape, dtype=np.float32)
    sigma = math.sqrt(max(target_mse, 0.0))
    out = original.copy()
    for _ in range(iterations):
        out = np.clip(np.rint(o + z * np.float32(sigma)), 0, 255).astype(np.uint8)
        mse = float(np.mean((out.astype(np.float32) - o) ** 2, dtype=np.float64))
        if mse == 0.0 or target_mse == 0.0:
            break
        sigma *= math.sqrt(target_mse / mse)
    return out


def surrogate_crop(x: np.ndarray, side: int) -> np.ndarray:
    """The centre crop the surrogate encoder sees: at most ``side`` square, sides multiples of 8."""
    h, w = x.shape[:2]
    return crop_center(x, min(h, side) // 8 * 8, min(w, side) // 8 * 8)


def encoder_input(u8: np.ndarray, side: int) -> np.ndarray:
    """An 8-bit image as the encoder takes it: its :func:`surrogate_crop`, float32 in [0, 1], RGB."""
    x = surrogate_crop(u8, side).astype(np.float32) / np.float32(255.0)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return x


def latent_shift(encode: Callable[[np.ndarray], np.ndarray], reference: np.ndarray, other: np.ndarray,
                 *, crop: int = SURROGATE_CROP, reference_latent: np.ndarray | None = None) -> float:
    """``|E(other) - E(reference)| / |E(reference)|`` on a centre crop of two 8-bit images."""
    z0 = reference_latent if reference_latent is not None else encode(encoder_input(reference, crop))
    z1 = encode(encoder_input(other, crop))
    return float(np.linalg.norm(z1 - z0)) / max(float(np.linalg.norm(z0)), 1e-12)


# -------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Surrogate:
    """The latent encoder ``protect verify`` measures the footprint with, or why there is none."""

    encoder: Callable[[np.ndarray], np.ndarray] | None = None  # (H, W, 3) float [0, 1] -> latent array
    note: str | None = None  # why there is no encoder (said in the report)
    weights: str | None = None  # the weights file it was loaded from (recorded in the JSON)
    crop: int = SURROGATE_CROP  # side of the centre crop the encoder sees (native pixels)


def verify_pair(
    original: np.ndarray,
    protected: np.ndarray,
    *,
    name: str = "",
    alpha: np.ndarray | None = None,
    data_range: float | None = None,
    attacks: Sequence[str] | None = None,
    surrogate: Surrogate | None = None,
    seed: int = 0,
    keep: Sequence[str] = (),
) -> PairReport:
    """Measure one pair.

    Parameters
    ----------
    original, protected : (H, W, C) arrays of the same shape and dtype
        uint8 or uint16, C = 1 or 3.
    alpha : (H, W) array, optional
        Opacity of the original (on ``data_range``).
    data_range : float, optional
        Defaults to the dtype's (255 or 65535).
    attacks : sequence of str, optional
        Attack names (default: every registered attack, "none" first).
    surrogate : Surrogate, optional
        The encoder that enables the latent footprint, the side of the crop it
        sees, or why there is none (recorded in the report); default: none.
    seed : int
        Seed of the attacks' noise and of the Gaussian comparison.
    keep : sequence of str
        Attacks whose attacked 8-bit images (original and protected) are kept
        in ``report.images`` (keys ``"<attack>"`` and ``"<attack>:original"``).
    """
    t0 = time.perf_counter()
    if original.shape != protected.shape:
        raise ValueError(f"images differ in size: {original.shape} vs {protected.shape}")
    if original.dtype != protected.dtype:
        raise ValueError(f"images differ in bit depth: {original.dtype} vs {protected.dtype}")
    if data_range is None:
        data_range = data_range_of(original.dtype)
    surrogate = surrogate or Surrogate()
    encoder, crop = surrogate.encoder, surrogate.crop
    names = list(attacks) if attacks is not None else attack_names()
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise KeyError(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(ATTACKS)}")

    mean_de, p99_de = ciede2000(original, protected, data_range=data_range, alpha=alpha)
    report = PairReport(
        name=name,
        width=int(original.shape[1]),
        height=int(original.shape[0]),
        psnr=psnr(original, protected, data_range=data_range, alpha=alpha),
        ssim=ssim(original, protected, data_range=data_range),
        ssimulacra2=ssimulacra2(original, protected, data_range=data_range, alpha=alpha),
        ciede2000_mean=mean_de,
        ciede2000_p99=p99_de,
        footprint_note=surrogate.note if encoder is None else None,
    )

    o8 = flatten_8bit(original, alpha, data_range)
    p8 = flatten_8bit(protected, alpha, data_range)
    d = p8.astype(np.float32) - o8.astype(np.float32)
    twin = None
    if encoder is not None:
        twin = gaussian_twin(o8, float(np.mean(d * d, dtype=np.float64)), seed=seed + 1)

    # OpenCV and Pillow release the GIL: attack the original and the protected
    # image (and the Gaussian twin) side by side.
    inputs = (o8, p8) if twin is None else (o8, p8, twin)
    # (a `with`: an attack or the encoder that raises leaves no thread behind)
    with ThreadPoolExecutor(max_workers=len(inputs)) as pool:
        extra = [k for k in keep if k not in names]  # measured for the pictures only, not reported
        for attack in [*names, *extra]:
            attacked = list(pool.map(partial(apply_attack, attack, seed=seed), inputs))
            ao, ap = attacked[0], attacked[1]
            corr, energy, surv = survival(apply_geometry(attack, d), ap.astype(np.float32) - ao.astype(np.float32),
                                          posted=apply_region(attack, d))
            res = AttackResult(attack, corr, energy, surv)
            if encoder is not None and attack in names:
                z0 = encoder(encoder_input(ao, crop))
                res.footprint = latent_shift(encoder, ao, ap, crop=crop, reference_latent=z0)
                res.footprint_gaussian = latent_shift(encoder, ao, attacked[2], crop=crop, reference_latent=z0)
                if res.footprint_gaussian > 0:
                    res.footprint_ratio = res.footprint / res.footprint_gaussian
            if attack in keep:
                report.images[attack] = ap
                report.images[attack + ":original"] = ao
            if attack in names:
                report.attacks.append(res)
    report.seconds = time.perf_counter() - t0
    return report


def median_by_attack(reports: Sequence[PairReport], key: str) -> dict[str, float | None]:
    """Median of one :class:`AttackResult` field per attack over several pairs."""
    values: dict[str, list[float]] = {}
    for rep in reports:
        for a in rep.attacks:
            v = getattr(a, key)
            values.setdefault(a.attack, [])
            if v is not None:
                values[a.attack].append(v)
    return {k: finite_median(v) for k, v in values.items()}


def finite_median(values: Iterable[float | None]) -> float | None:
    """The median of the finite values (None, inf and NaN left out), or None when there are none."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(vals)) if vals else None
