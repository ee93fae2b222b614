"""Arrays in, arrays out: the protection step, with no file I/O.

:func:`protect_image` validates its inputs, derives a seed from the artist
key and the image content, and runs one of two perturbation methods:

* ``"adversarial"`` (the default): the image-conditioned generator of
  :mod:`protect.kernels.generator`, designed offline against a
  latent-diffusion autoencoder (``design/train_colour_generator.py``) and shipped
  as ``kernels/generator.npz``; its output is scaled to a fixed
  visibility-weighted RMS per image;
* ``"texture"``: the original hand-shaped mid-band DCT noise of
  :mod:`protect.kernels.perturb`, placed by a texture mask (least visible,
  but it moves an autoencoder's latent about half as much as random noise).

Pixels are written in horizontal stripes, so the result is bit-identical to
processing the image in one piece.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arrays import check_image, check_plane, data_range_of
from .kernels import generator as genk
from .kernels import perturb, stats
from .kernels.apply import apply_field_kernel
from .perceptual import MASK, mask_rows

#: The perturbation methods, and the version of each one's algorithm.  The
#: version is part of the seed and of the batch fingerprint, so a change of
#: algorithm never silently reuses noise or outputs from an older one.
ALGORITHMS = {"adversarial": "gen16c-ss2-v2", "texture": "dct8-mid-v1"}
METHODS = tuple(ALGORITHMS)
DEFAULT_METHOD = "adversarial"
ALGORITHM = ALGORITHMS[DEFAULT_METHOD]

#: The default strength, and the named presets the page and the app offer
#: (artist-facing names for strengths of the default method).
DEFAULT_STRENGTH = 0.4
STRENGTH_PRESETS = {"light": 0.2, "standard": DEFAULT_STRENGTH, "strong": 0.7}

#: Amplitude at strength 1, in 8-bit code values, per method; strength
#: scales it linearly.  "texture": peak of the unit-RMS noise field before
#: masking.  "adversarial": visibility-weighted RMS of the generator's field
#: (see :func:`block_visibility_weight`).  Both calibrated so that strength 0.4
#: keeps the median SSIMULACRA2 >= 85 on samples/ and the shared corpus
#: (``benchmarks/strength_curve.py``; README).
AMPLITUDES_AT_FULL_STRENGTH = {"adversarial": 8.5, "texture": 18.0}

#: Visibility weight of a block, used to scale the generator's field: flat
#: blocks weigh 1, textured ones GEN_TEXTURED_WEIGHT, with the transition at
#: a luma standard deviation of GEN_TEXTURE_TAU (0-1 scale).  Where they come
#: from: the visibility weight of the first generator's training (BETA = 0.5,
#: TEXTURE_TAU = 0.03 in design/train_generator.py, gen16-taef2-v1, removed in
#: 3718f4a: see the git history).  The colour generator shipped now was trained
#: without them, so its weights do not record them, but
#: AMPLITUDES_AT_FULL_STRENGTH["adversarial"] was calibrated with them;
#: design/train_colour_generator.py records them in the metadata of the next
#: weights it makes, and tests/test_generator.py checks any weights that
#: record them.  The activity gain's tau and floor, by contrast, are read from
#: the weights.
GEN_TEXTURED_WEIGHT = 0.5
GEN_TEXTURE_TAU = 0.03

#: Gain of the generator on an exactly flat 8x8 block (a digital fill) whose
#: luma lies strictly inside PAPER_LUMA (0-1 scale); outside it (white paper,
#: black ink) flat blocks always get nothing.  The generator was trained with
#: 0 there.  Measured (benchmarks/isovis.py --quick on two flat samples): a
#: gain of 0.2 / 0.6 raises the iso-visibility ratio on flat art from 0.65x to
#: 0.94x / 1.13x, but draws the untrained blocks' atoms as a regular lattice
#: of coloured dots on the fill, plain at 200-300 % (max |d| 16 at 0.4), and
#: multiplies PNG size (up to x17 on samples/cel_flat_fills.png).  The eye
#: decides: 0, flat fills stay exactly as they are.
FLAT_GAIN = 0.0
PAPER_LUMA = (0.04, 0.96)

#: Rows per stripe (a multiple of 8).
STRIPE_ROWS = 256


def dct_basis() -> np.ndarray:
    """Orthonormal 8-point DCT-II matrix ``D[u, x]`` (float32)."""
    n = 8
    u = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    d = np.cos((2 * x + 1) * u * np.pi / (2 * n)) * np.sqrt(2.0 / n)
    d[0, :] = np.sqrt(1.0 / n)
    return d.astype(np.float32)


def mid_band(center: float = 4.0, width: float = 1.6) -> np.ndarray:
    """Mid-frequency weight of each 8x8 DCT coefficient, normalised to unit pixel RMS.

    The weight is a Gaussian ring in radial frequency ``r = sqrt(u^2 + v^2)``
    centred on ``center`` (periods of about 2.5-8 px), with the DC and the
    lowest ring (``r < 1.5``, gradients that show as blotches) switched off.
    Uniform coefficients in [-1, 1) have variance 1/3, and the DCT is
    orthonormal, so the pixel variance is ``sum(w^2) / (3 * 64)``; the band
    is scaled so that it is 1.
    """
    u = np.arange(8)[:, None]
    v = np.arange(8)[None, :]
    r = np.sqrt(u * u + v * v)
    w = np.exp(-0.5 * ((r - center) / width) ** 2)
    w[r < 1.5] = 0.0
    # sparse band: fewer random draws, same look.  The cut, like the ring's center 4.0 and width 1.6,
    # was set by hand in the first commit (7693d37) with no measurement recorded: it keeps 37 of the
    # ring's 60 coefficients, r from 2.0 to 6.4 (periods of about 2.5-8 px, the "mid band")
    w[w < 0.25] = 0.0
    w *= math.sqrt(3 * 64 / float(np.sum(w * w)))
    return w.astype(np.float32)


def band_atoms(band: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Band-weighted 2-D DCT basis images, one flattened row per nonzero coefficient.

    Row order is row-major over ``(u, v)``; pixel ``(y, x)`` of atom ``(u, v)`` is
    ``band[u, v] * basis[u, y] * basis[v, x]``, so ``sum_k c_k * atom_k`` is the
    inverse DCT of the coefficient block ``c * band``.
    """
    rows = [
        (band[u, v] * np.outer(basis[u], basis[v])).ravel()
        for u in range(8)
        for v in range(8)
        if band[u, v] != 0.0
    ]
    return np.ascontiguousarray(np.array(rows, dtype=np.float32))


_BASIS = dct_basis()
_BAND = mid_band()
#: The "texture" method's atoms: :func:`band_atoms` of the default :func:`mid_band`
#: (what :func:`protect.kernels.perturb.dct_noise_kernel` takes).
ATOMS = band_atoms(_BAND, _BASIS)


@dataclass(frozen=True)
class Settings:
    """What :func:`protect_image` does.

    Parameters
    ----------
    strength : float
        In [0, 1]; 0 leaves the image unchanged, 0.4 is the default.
    key : str
        The artist's secret; with the image content it seeds the noise.
    method : {"adversarial", "texture"}
        The perturbation: the offline-designed, image-conditioned generator
        (default), or the hand-shaped texture-masked noise.
    """

    strength: float = DEFAULT_STRENGTH
    key: str = ""
    method: str = DEFAULT_METHOD

    def __post_init__(self) -> None:
        if self.method not in ALGORITHMS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.strength, (int, float)) or not math.isfinite(self.strength):
            raise ValueError(f"strength must be a number in [0, 1], got {self.strength!r}")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if not isinstance(self.key, str):
            raise TypeError("key must be a str")

    @property
    def amplitude(self) -> float:
        """Noise amplitude in 8-bit code values (linear in strength)."""
        return AMPLITUDES_AT_FULL_STRENGTH[self.method] * float(self.strength)

    @property
    def algorithm(self) -> str:
        """Versioned name of the method's algorithm."""
        return ALGORITHMS[self.method]


#: A colour image stored with indexed colour (a palette PNG or GIF) with at most
#: this many distinct (opaque) colours is pixel art: any perturbation multiplies its colours (6 -> 108
#: measured on samples/pixel_palette.png), breaks its palette and grows the
#: file many times over, so :func:`protect_image` leaves it unchanged and says
#: so in the report.  Grey images with few levels (ink line art, engravings,
#: screentone: 2-11 levels in the corpus) are protected as usual: the
#: generator leaves their paper and ink untouched and works on the edges.
PALETTE_MAX_COLOURS = 64


@dataclass
class ProtectReport:
    """What :func:`protect_image` measured while it worked."""

    psnr: float
    max_abs_diff: int
    coverage: float  # fraction of pixels whose mask weight exceeds 0.1
    seconds: float
    note: str | None = None  # why the image was left unchanged, when it was


def is_grey(pixels: np.ndarray) -> bool:
    """True for a one-channel image or an RGB one with R = G = B everywhere."""
    if pixels.shape[2] == 1:
        return True
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]))


def palette_colours(pixels: np.ndarray, alpha: np.ndarray | None = None) -> int | None:
    """The number of distinct opaque colours of a colour image when it is at most
    :data:`PALETTE_MAX_COLOURS` (a palette / pixel-art image), else None; None for
    grey images (one channel, or R = G = B everywhere)."""
    if pixels.shape[2] == 1:
        return None
    a = np.ones((1, 1), np.uint8) if alpha is None else np.ascontiguousarray(alpha)
    n = stats.count_colours_kernel(np.ascontiguousarray(pixels), a, PALETTE_MAX_COLOURS)
    if n > PALETTE_MAX_COLOURS or is_grey(pixels):
        return None
    return int(n)


def derive_seed(key: str, pixels: np.ndarray, algorithm: str = ALGORITHM) -> np.uint64:
    """64-bit seed from the key, the algorithm version and the image content.

    Seeding with the content means two images from the same artist never
    share a noise field, so averaging many posts does not reveal it.
    """
    h = hashlib.blake2b(digest_size=8, person=b"protect-seed")
    h.update(algorithm.encode())
    h.update(len(key.encode()).to_bytes(4, "little"))
    h.update(key.encode())
    h.update(repr((pixels.shape, pixels.dtype.str)).encode())
    h.update(hashlib.blake2b(np.ascontiguousarray(pixels).data, digest_size=32).digest())
    return np.uint64(int.from_bytes(h.digest(), "little"))


def diff_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(PSNR in dB, largest absolute difference) of two uint8/uint16 images of the
    same shape, in one numba pass (``inf`` for identical images)."""
    sse, max_abs = stats.diff_stats_kernel(a, b)
    data_range = data_range_of(a.dtype)
    psnr = math.inf if sse == 0 else 10.0 * math.log10(data_range * data_range * a.size / sse)
    return psnr, int(max_abs)


class GeneratorWeights:
    """The shipped generator (``kernels/generator.npz``) in the layouts the kernels take."""

    def __init__(self, path: Path):
        with np.load(path, allow_pickle=False) as z:
            w1 = z["w1"].astype(np.float32)  # (hidden, 64 + 2 + z)
            self.w1t = np.ascontiguousarray(w1.T)
            self.b1 = np.ascontiguousarray(z["b1"], np.float32)
            self.w2t = np.ascontiguousarray(z["w2"].transpose(2, 3, 1, 0), np.float32)  # (3, 3, in, out)
            self.b2 = np.ascontiguousarray(z["b2"], np.float32)
            atoms = z["atoms"].astype(np.float32)  # (hidden, 3, 16, 16), window applied
            # kernel layout: (hidden, 16 * 16 * 3), index (u * 16 + v) * 3 + channel
            self.atoms = np.ascontiguousarray(atoms.transpose(0, 2, 3, 1).reshape(atoms.shape[0], 768))
            self.meta = json.loads(str(z["meta"]))
        self.hidden = self.w1t.shape[1]
        self.z_channels = self.w1t.shape[0] - 66
        # the fixed activity gain, as trained (design/train_colour_generator.py)
        self.activity_tau = float(self.meta["activity_tau"])
        self.activity_floor = float(self.meta["activity_floor"])
        self.dct = _BASIS


GENERATOR_FILE = Path(__file__).with_name("kernels") / "generator.npz"


@functools.lru_cache(maxsize=1)
def generator_weights() -> GeneratorWeights:
    """The shipped generator, loaded once per process."""
    return GeneratorWeights(GENERATOR_FILE)


def generator_hidden(pixels: np.ndarray, seed: np.uint64,
                     net: GeneratorWeights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hidden vectors after both layers and the key's signs (nby, nbx, c), each block's luma
    variance and activity gain (nby, nbx)) of an (H, W, C) uint8/uint16 image."""
    h, w, _ = pixels.shape
    nby, nbx = -(-h // 8), -(-w // 8)
    h1 = np.empty((nby, nbx, net.hidden), np.float32)
    var = np.empty((nby, nbx), np.float32)
    mean = np.empty((nby, nbx), np.float32)
    genk.generator_features_kernel(np.ascontiguousarray(pixels), np.float32(1.0 / data_range_of(pixels.dtype)),
                                   net.dct, seed, net.w1t, net.b1, h1, var, mean)
    h2 = np.empty_like(h1)
    genk.conv3x3_relu_kernel(h1, net.w2t, net.b2, h2)
    act = np.empty((nby, nbx), np.float32)  # each block's activity gain, as applied (without the key's sign)
    genk.modulate_kernel(h2, var, mean, seed, np.float32(net.activity_tau**2), np.float32(net.activity_floor),
                         np.float32(FLAT_GAIN), np.float32(PAPER_LUMA[0]), np.float32(PAPER_LUMA[1]), act)
    return h2, var, act


def _block_sums(a: np.ndarray) -> np.ndarray:
    """Sums of an (H, W) array over the 8x8 block grid (partial blocks at the edges), int64/float64."""
    h, w = a.shape
    acc = np.int64 if a.dtype.kind in "ui" else np.float64
    rows = np.add.reduceat(a, np.arange(0, h, 8), axis=0, dtype=acc)
    return np.add.reduceat(rows, np.arange(0, w, 8), axis=1, dtype=acc)


def generator_field(pixels: np.ndarray, seed: np.uint64, *, net: GeneratorWeights | None = None) -> np.ndarray:
    """The generator's raw (unscaled) RGB field for a whole (H, W, C) image, (H, W, 3) float32."""
    net = net or generator_weights()
    h2, _, _ = generator_hidden(pixels, seed, net)
    out = np.empty(pixels.shape[:2] + (3,), np.float32)
    genk.synthesis_kernel(h2, net.atoms, 0, out)
    return out


def block_visibility_weight(var: np.ndarray) -> np.ndarray:
    """Per-block visibility weight from luma variance: 1 flat, GEN_TEXTURED_WEIGHT textured."""
    t = var / np.float32(GEN_TEXTURE_TAU**2)
    return (np.float32(GEN_TEXTURED_WEIGHT) + np.float32(1.0 - GEN_TEXTURED_WEIGHT) / (1.0 + t)).astype(np.float32)


def _weigh_by_alpha_and_region(gain: np.ndarray, alpha: np.ndarray | None, region: np.ndarray | None,
                               y0: int, y1: int, data_range: int) -> int:
    """Multiply a stripe's ``gain`` by alpha (opacity, 0..``data_range``) and the artist's
    region mask, in place; return how many of its pixels keep weight > 0.1."""
    if alpha is not None:
        gain *= alpha[y0:y1].astype(np.float32) * np.float32(1.0 / data_range)
    if region is not None:
        gain *= region[y0:y1].astype(np.float32) * np.float32(1.0 / 255.0)
    return int(np.count_nonzero(gain > 0.1))


def _generator_stripes(pixels: np.ndarray, *, seed: np.uint64, amplitude: np.float32, data_range: int,
                       alpha: np.ndarray | None, region: np.ndarray | None, stripe: int, out: np.ndarray) -> int:
    """The "adversarial" method: run the generator, scale its RGB field so that
    its visibility-weighted RMS per channel is ``amplitude``, and add it in
    stripes; return how many pixels got weight > 0.1.  ``data_range`` is the image's
    :func:`~protect.arrays.data_range_of`.

    The energy is averaged over the area that carries the pattern: opaque
    pixels (weighted by alpha) of active blocks (weighted by their activity
    gain), so a sprite on a transparent canvas, or a drawing on mostly white
    paper, gets the same local strength as a picture full of texture.  The
    field is synthesised twice per stripe (once to measure its energy, once
    to apply it), so only the block-grid hidden vectors (1/64 of the pixels
    times the hidden width) are held for the whole image.
    """
    net = generator_weights()
    h, w, _ = pixels.shape
    h2, var, act = generator_hidden(pixels, seed, net)
    weight = block_visibility_weight(var)
    field_buf = np.empty((stripe, w, 3), np.float32)
    total = 0.0
    # the scale is set on what can be seen and carries the pattern: transparent pixels and
    # blocks the activity gain leaves alone do not count
    counts = _block_sums(np.ones((h, w), np.uint8)) if alpha is None else _block_sums(alpha) / float(data_range)
    opaque = float(np.sum(counts * act, dtype=np.float64))
    for y0 in range(0, h, stripe):
        y1 = min(h, y0 + stripe)
        field = field_buf[: y1 - y0]
        genk.synthesis_kernel(h2, net.atoms, y0, field)
        if alpha is not None:
            field *= np.sqrt(alpha[y0:y1].astype(np.float32) * np.float32(1.0 / data_range))[..., None]
        total += genk.weighted_energy_kernel(field, weight, y0)
    vis_rms = math.sqrt(total / (3.0 * opaque)) if opaque > 0 else 0.0
    if vis_rms == 0.0:
        out[...] = pixels
        return 0
    scale = np.float32(amplitude / vis_rms)
    mono = is_grey(pixels)  # a black-and-white drawing or engraving gets no colour specks
    gain_buf = np.empty((stripe, w), np.float32)
    covered = 0
    for y0 in range(0, h, stripe):
        y1 = min(h, y0 + stripe)
        field = field_buf[: y1 - y0]
        gain = gain_buf[: y1 - y0]
        gain[...] = 1.0
        covered += _weigh_by_alpha_and_region(gain, alpha, region, y0, y1, data_range)
        genk.synthesis_kernel(h2, net.atoms, y0, field)
        apply_field_kernel(pixels[y0:y1], field, gain, scale, data_range, mono, out[y0:y1])
    return covered


def _texture_stripes(pixels: np.ndarray, *, seed: np.uint64, amplitude: np.float32, data_range: int,
                     alpha: np.ndarray | None, region: np.ndarray | None, stripe: int, out: np.ndarray) -> int:
    """The "texture" method: block-DCT noise placed by the perceptual mask, over
    horizontal stripes; return how many pixels got weight > 0.1.

    No validation: :func:`protect_image` has done it.  Buffers are allocated
    once per call, at stripe size, so memory stays bounded.
    """
    h, w, _ = pixels.shape
    halo = MASK.radius + 1
    scale8 = np.float32(255.0 / data_range)  # the mask works on a 0-255 scale
    lum_buf = np.empty((stripe + 2 * halo, w), np.float32)
    gain_buf = np.empty((stripe, w), np.float32)
    noise_buf = np.empty((stripe, w), np.float32)
    covered = 0
    for y0 in range(0, h, stripe):
        y1 = min(h, y0 + stripe)
        a0 = max(0, y0 - halo)
        a1 = min(h, y1 + halo)
        lum = lum_buf[: a1 - a0]
        gain = gain_buf[: y1 - y0]
        noise = noise_buf[: y1 - y0]
        perturb.luminance_kernel(pixels[a0:a1], scale8, lum)
        mask_rows(lum, y0 - a0, gain)
        covered += _weigh_by_alpha_and_region(gain, alpha, region, y0, y1, data_range)
        perturb.dct_noise_kernel(seed, ATOMS, y0, 0, gain, noise)
        apply_field_kernel(pixels[y0:y1], noise[..., None], gain, amplitude, data_range, False, out[y0:y1])
    return covered


#: The stripe runner of each method (same keyword-only parameters, same return value).
_STRIPE_RUNNERS = {"adversarial": _generator_stripes, "texture": _texture_stripes}


def run_stripes(method: str, pixels: np.ndarray, *, seed: np.uint64, amplitude: np.float32, data_range: int,
                alpha: np.ndarray | None = None, region: np.ndarray | None = None, stripe: int = STRIPE_ROWS,
                out: np.ndarray) -> int:
    """Method ``method``'s perturbation of ``pixels`` into ``out``, stripe by stripe, with no
    validation and no seeding (what :func:`protect_image` runs after both; benchmarks time it
    alone).  ``amplitude`` is on the image's scale, ``data_range`` its
    :func:`~protect.arrays.data_range_of` as an int, ``stripe`` a multiple of 8.  Returns how many
    pixels got weight > 0.1."""
    return _STRIPE_RUNNERS[method](pixels, seed=seed, amplitude=amplitude, data_range=data_range, alpha=alpha,
                                   region=region, stripe=stripe, out=out)


def protect_image(
    pixels: np.ndarray,
    settings: Settings,
    *,
    alpha: np.ndarray | None = None,
    region: np.ndarray | None = None,
    stripe_rows: int = STRIPE_ROWS,
    keep_palette: bool = False,
) -> tuple[np.ndarray, ProtectReport]:
    """Add the protection perturbation to an image.

    Parameters
    ----------
    pixels : (H, W, C) uint8 or uint16
        Colour channels (C = 3) or grey (C = 1); dtype is kept.
    settings : Settings
        Strength and key.
    alpha : (H, W) array of the same dtype, optional
        Opacity; the noise is scaled by ``alpha / max`` (none where alpha is 0).
        Alpha itself is never changed.
    region : (H, W) uint8 array, optional
        The artist's region mask: 255 = full strength, 0 = none.
    stripe_rows : int
        Rows processed at a time (rounded up to a multiple of 8).
    keep_palette : bool
        The image came from an indexed-colour (palette) file: when it has at
        most :data:`PALETTE_MAX_COLOURS` colours and is not grey, leave it
        unchanged (pixel art) and say so in ``report.note``.

    Returns
    -------
    protected : ndarray, same shape and dtype as ``pixels``
        A copy of ``pixels`` when ``strength`` is 0, or for pixel art with
        ``keep_palette`` (``report.note`` says so).
    report : ProtectReport
    """
    t0 = time.perf_counter()
    check_image(pixels, "pixels")
    if not isinstance(settings, Settings):
        raise TypeError("settings must be a protect.Settings")
    h, w, c = pixels.shape
    alpha = check_plane(alpha, (h, w), "alpha")
    region = check_plane(region, (h, w), "region mask")
    if int(stripe_rows) < 8:
        raise ValueError("stripe_rows must be >= 8")
    stripe = int(math.ceil(int(stripe_rows) / 8) * 8)

    data_range = int(data_range_of(pixels.dtype))  # an int, the type the kernels take
    out = np.empty_like(pixels)
    if settings.strength == 0.0:
        out[...] = pixels
        return out, ProtectReport(math.inf, 0, 0.0, time.perf_counter() - t0)

    colours = palette_colours(pixels, alpha) if keep_palette else None
    if colours is not None:
        out[...] = pixels
        note = (f"left unchanged: {colours} colours (pixel art or a palette image; noise would break its "
                f"palette and multiply its size)")
        return out, ProtectReport(math.inf, 0, 0.0, time.perf_counter() - t0, note)

    seed = derive_seed(settings.key, pixels, settings.algorithm)
    amplitude = np.float32(settings.amplitude * data_range / 255.0)
    covered = run_stripes(settings.method, pixels, seed=seed, amplitude=amplitude, data_range=data_range,
                          alpha=alpha, region=region, stripe=stripe, out=out)
    psnr, max_abs = diff_stats(pixels, out)
    report = ProtectReport(
        psnr=psnr,
        max_abs_diff=max_abs,
        coverage=covered / float(h * w),
        seconds=time.perf_counter() - t0,
    )
    return out, report
