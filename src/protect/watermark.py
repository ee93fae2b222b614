"""A keyed, invisible watermark with a 64-bit payload that a copied pattern cannot fake.

Two layers, both keyed (algorithm ``qim16w-sync128-v3``):

The payload: dither modulation of windowed cell means
-----------------------------------------------------
The image is cut into CELL x CELL px cells (16: 2 x 2 JPEG blocks).  A keyed
layout of CELLS x CELLS cells (256 px) repeats over the image: each cell of
it carries one coded bit (the payload, a CRC-16 and a rate-1/2 convolutional
code, constraint length 7, the NASA/CCSDS generators 171/133 octal: 172 coded
bits) or a keyed known *reference* bit (the other 84 cells).  A cell's
*windowed* luminance mean (weighted by a sine window that is zero at the
cell's edges, so that content crossing an edge under resampling or a fraction
of a pixel of misalignment barely moves it) is moved towards the nearest
point of its bit's lattice ``dither + bit * STEP / 2 + STEP * Z`` (the dither
is keyed per cell), by a smooth bump: all of the way in texture, FLAT_MOVE of
it on flat colour, where a change of mean shows (distortion-compensated QIM).
A pixel at 0 or 255 cannot move, so the others of its cell carry its share;
sync and payload are rounded to the picture's levels together (the sync
dithers the payload's fraction of a level), and passes put back what rounding
took.

The change depends on the picture (it is whatever moves *this* cell's mean
onto its lattice), so averaging many marked posts averages it away, and the
average added to another picture puts no cell on its lattice: neither
removal by an estimate nor forgery by copying works (see
``benchmarks/watermark_attacks.py``).

The sync: a tile-periodic pattern for the geometry
--------------------------------------------------
A 128 x 128 keyed luminance pattern (every frequency of the band of periods
4 to 16 px, keyed phases), repeated and added with a perceptual gain.  It
carries nothing; it gives the scale, rotation and crop offset after resizing,
rotation and cropping (lattice search by whitened autocorrelation, folding,
cross-correlation with the pattern, as in issue 5's detector).  A copied sync
pattern proves nothing: ``Detection.sync_only`` says when it is there
without the payload layer.

Detection
---------
1. The sync's lattice and offset; the cells of the original's grid read
   through that geometry (:class:`_CellReader`, without resampling the
   picture); the brightness gain searched (GAIN_RANGE) and which sync tile of
   the layout the grid starts on; the geometry refined to a fraction of a
   pixel by the reference cells' score on the middle cells.
2. Without the sync (it may have been estimated and subtracted): the grid is
   searched at unchanged geometry, every pixel offset and layout offset.
3. For every hypothesis, each cell's windowed mean becomes a phasor
   ``exp(2 pi i mean / (gain STEP))``, averaged per layout cell; the reference
   cells' correlation ``S`` with their keyed phasors gives the score
   ``|S|^2 / sum |F|^2``, exponential(1) without the mark whatever the picture
   (the reference phases are keyed and independent of it).  A common phase
   (a brightness offset) does not change it.
4. The best hypothesis's data cells, turned by the common phase and their
   dither, are soft bits for the Viterbi decoder; the CRC is checked.

False detections: the chance that any of the ``n`` hypotheses tried reaches
the score is at most ``n * exp(-score)`` (Bonferroni); with the CRC matching
as well (2^-16) that is the reported ``p_value``.  A mark is *found* when the
CRC matches and ``p_value < P_FOUND`` (1e-6), "certain" under P_CERTAIN
(1e-9), "likely" otherwise.  ``benchmarks/watermark.py`` checks it on
thousands of unmarked crops.

Version 1 (issue 5: the payload in the additive tile) is not read: it could be
estimated from a few posts and copied onto any picture.  Version 2
(``qim32-sync128-v2``: 32 px cells, box means) is not read either: no release
shipped it.
"""

from __future__ import annotations

import binascii
import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .arrays import check_image, crop_center, data_range_of
from .kernels import watermark as wk
from .perceptual import luma8, perceptual_mask

__all__ = [
    "Detection",
    "describe_detection",
    "payload_from_text",
    "payload_from_hex",
    "payload_text",
    "embed_mark",
    "detect_mark",
    "MARK_AMPLITUDE",
    "Z_THRESHOLD",
    "ALGORITHM",
]

TILE = 128  # side of the sync tile, px
PERIOD_MIN, PERIOD_MAX = 4.0, 16.0  # px, at the embedding scale: the sync pattern's band
PAYLOAD_BITS = 64
CRC_BITS = 16
K = 7  # constraint length of the convolutional code
G0, G1 = 0o171, 0o133
CODED_BITS = 2 * (PAYLOAD_BITS + CRC_BITS + K - 1)
# Sync gains in 8-bit code values (the tile has unit RMS): 0.8 in texture, 0.44 on flat colour (issue 5
# had 1.1 and 0.6; lowered in v2 for SSIMULACRA2, since the sync only has to give the geometry; 1.1 in
# texture read one picture more after rotation and resize 1/2 and cost 0.4 SSIMULACRA2, docs/watermark.md).
MARK_AMPLITUDE = 0.8
FLAT_GAIN = 0.55  # fraction of MARK_AMPLITUDE on flat colour
# The payload carrier: dither modulation (QIM) of the sine-windowed mean luminance of CELL x CELL
# cells.  16 px (2 x 2 JPEG blocks) rather than v2's 32: a layout then repeats 4 times as often; with
# 16 px cells alone (v2 otherwise) the 29 pictures at 1024 px read 28 instead of 25 unattacked, 28
# instead of 18 after a crop to half the area and 15 instead of 5 after brightening; the price is i.i.d.
# noise, whose share in a cell's mean doubles (noisy upscaling 5 -> 0 of 29).  See docs/watermark.md,
# "The curve of what was tried" (2026-12-01), for v3 as a whole.
CELL = 16
CELLS = 16  # the keyed layout repeats every CELLS x CELLS cells (256 px, 2 x 2 sync tiles)
FLAT_MOVE = 0.48  # the share of the way to the lattice a cell's mean is moved on flat colour ...
TEXTURE_MOVE = 2.0  # ... rising to all of it where the perceptual mask's cell mean reaches 1 / TEXTURE_MOVE
# The cell's change is a window ``sin ** BUMP_POWER`` (flatter than the reading window: a lower peak for
# the same change of mean, SSIMULACRA2 +0.4 against a sine bump at the same recovery)
BUMP_POWER = 0.5
STEP = 2.0  # quantiser step of the cell means, 8-bit levels (bits 0 / 1 are STEP / 2 apart)
REF_CELLS = CELLS * CELLS - CODED_BITS  # cells with keyed known bits: detection and sync
GAIN_RANGE = (0.8, 1.25)  # brightness/contrast gains searched when the sync gives the alignment
# relative, on a log grid: half a step off moves a 250-level mean by 0.25 level, a phase error of
# 2 pi 0.25 / STEP = 45 degrees at most (cos 0.7), under 0.1 level (18 degrees) for the median cell
GAIN_STEP = 0.002
FINAL_GAIN_SPAN = 5  # gain steps either side of the one chosen on the middle cells, tried on the whole picture
# Cells may have this share of pixels clipped (any channel at 0 or full scale): the lenient rule keeps
# white paper's cells (their unclipped pixels still carry the change), the strict one drops cells whose
# mean brightening clipped; both are tried (2 hypotheses' worth in the p-value) and the better kept.
CLIPPED = (0.5, 0.02)
REFINE_CELLS = 1024  # the cells nearest the middle (a 512 px square) on which gain and geometry are chosen
# The geometry refinement after the sync: (angle steps in degrees, relative scale steps, shifts in px) per
# stage, coarse to fine.  The sync's lattice search leaves ~0.1 degree and ~0.1 % (measured on rotation 2
# degrees: -1.89 found for -2.0), which moves a cell 500 px from the middle by ~1 px; a cell's mean needs
# ~0.1 px.  Hypotheses tried here count in the p-value like any other.
REFINE_STAGES = (
    (tuple(np.arange(-0.24, 0.2401, 0.04)), (-0.002, -0.001, 0.0, 0.001, 0.002), (-0.5, 0.0, 0.5)),
    (tuple(np.arange(-0.03, 0.0301, 0.01)), (-0.0005, 0.0, 0.0005), (-0.25, 0.0, 0.25)),
    ((-0.005, 0.0, 0.005), (-0.00025, 0.0, 0.00025), (-0.125, 0.0, 0.125)),
)
# px: the shifts searched in each quarter of the picture before the refinement (see fit_quadrants)
QUADRANT_SHIFTS = tuple(np.arange(-2.0, 2.01, 0.5))
# ... tried only when the middle cells score under this at the sync's geometry (unattacked they score
# 40-80 at 1 MP): it reads one more of the 29 pictures after rotation 2 degrees (kipling_11-1), none
# fewer after any attack, and would add ~60 % to the detection time if always run
QUADRANT_FIT_BELOW = 40.0
QUADRANT_MIN_CELLS = CELLS * CELLS // 2  # ... and only when every quarter has this many usable cells
# px: the grid of cell phases tried when the cell grid is searched without the sync (then every pixel
# around the best), at 16 instead of 256 phases: set for v2's 32 px cells (a cell's score fell to
# about half at 4 px off on texture); with 16 px cells the coarse grid is at most 2 px off, and the
# removal rows of benchmarks/watermark_attacks.py whose estimate strips the sync still read 100 %
SUBSHIFT = 4
P_FOUND = 1e-6  # modelled chance of a false detection under which a mark is reported found
P_CERTAIN = 1e-9  # ... and reported "certain"
# sync z above which the sync pattern counts as present (it proves nothing alone: only `sync_only`
# uses it); issue 5's 2,000 unmarked crops peaked at 5.9
Z_THRESHOLD = 6.5
# side of the centre crop whose autocorrelation gives the lattice candidates and on which they are
# ranked: two 1.7x tiles fit (the largest scale searched), and a 1 MP FFT keeps 4 MP pictures fast
RANK_CROP = 1024
# lattices from the autocorrelation tried besides "unchanged" (issue 5: the true one was within
# the first 3 on its 29 images after resize and rotation; 8 leaves a margin at 1 MP of folding each)
LATTICE_CANDIDATES = 8
# frequency bins: the local average that whitens the crop's power spectrum; wider than a lattice
# spike (1-2 bins after the Hann window) so the spikes stand out, narrower than the artwork's slope
WHITEN_SIGMA = 4.0
# rings of spatial frequency over the band (periods 4-16 px), for whitening the folded tile: enough to
# follow the artwork's fall-off with frequency, each ring still holding hundreds of bins
SYNC_RINGS = 6
# levels^2 added to the local variance in the detection residual's weighting: rounding to 8 bits is
# 1/12, mild JPEG noise on flat colour ~0.3; the floor keeps flat areas from weighing infinitely
VARIANCE_FLOOR = 0.5
# sizes searched relative to the marked original: down to 0.4 (a 4 px sync period becomes 1.6 px,
# near Nyquist) and up to 1.7 (two tiles must fit the 1024 px rank crop's autocorrelation)
SCALE_RANGE = (0.4, 1.7)
# rotations searched, degrees: straightening a scan or photo; beyond it the lattice search's grid
# (0.25 degree) grows with no attack of the issue needing it
ANGLE_RANGE_DEG = 6.0
ALGORITHM = "qim16w-sync128-v3"  # v1 (issue 5, additive payload) is not read: it could be copied
_DOMAIN = b"protect-wm-v3"


# ----------------------------------------------------------------- payload


def payload_from_text(text: str) -> bytes:
    """Up to 8 ASCII characters (e.g. an artist handle), padded with NULs."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("the mark must be ASCII text (use --mark-hex for other bytes)") from None
    if not raw or len(raw) > 8:
        raise ValueError(f"the mark must be 1 to 8 ASCII characters, got {len(raw)}")
    return raw.ljust(8, b"\0")


def payload_from_hex(text: str) -> bytes:
    """16 hexadecimal digits (64 bits)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("--mark-hex needs 16 hexadecimal digits") from None
    if len(raw) != 8:
        raise ValueError(f"--mark-hex needs 16 hexadecimal digits (8 bytes), got {len(raw)} bytes")
    return raw


def payload_text(payload: bytes) -> str | None:
    """The payload as text when it is printable ASCII padded with NULs, else None."""
    body = payload.rstrip(b"\0")
    if body and all(32 <= b < 127 for b in body) and b"\0" not in body:
        return body.decode("ascii")
    return None


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected): the standard library's CRC-CCITT."""
    return binascii.crc_hqx(data, 0xFFFF)


def _bits(data: bytes, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))[:n].astype(np.uint8)


def _message_bits(payload: bytes) -> np.ndarray:
    crc = crc16(payload).to_bytes(2, "big")
    return np.concatenate([_bits(payload, PAYLOAD_BITS), _bits(crc, CRC_BITS)])


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """next_state[state, bit], output symbols out[state, bit, 2] (+1 for 0, -1 for 1),
    and for every state its two predecessors: pred_state[state, 2], pred_bit[state, 2]."""
    n_states = 1 << (K - 1)
    nxt = np.zeros((n_states, 2), np.int64)
    out = np.zeros((n_states, 2, 2), np.float64)
    pred_state = np.zeros((n_states, 2), np.int64)
    pred_bit = np.zeros((n_states, 2), np.int64)
    filled = np.zeros(n_states, np.int64)
    for s in range(n_states):
        for b in (0, 1):
            reg = (b << (K - 1)) | s
            d = reg >> 1
            nxt[s, b] = d
            out[s, b, 0] = 1 - 2 * _parity(reg & G0)
            out[s, b, 1] = 1 - 2 * _parity(reg & G1)
            pred_state[d, filled[d]] = s
            pred_bit[d, filled[d]] = b
            filled[d] += 1
    return nxt, out, pred_state, pred_bit


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 convolutional code with K - 1 zero tail bits; returns 0/1 coded bits."""
    nxt, out, _, _ = _trellis()
    state = 0
    coded = []
    for b in [*map(int, bits), *([0] * (K - 1))]:
        coded += [int(out[state, b, 0] < 0), int(out[state, b, 1] < 0)]
        state = nxt[state, b]
    return np.array(coded, np.uint8)


def viterbi_decode(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """Soft-decision Viterbi: ``soft`` holds one value per coded bit, positive for 0.

    Maximises the correlation of the coded symbols with ``soft`` over all
    messages of ``n_bits`` bits followed by the K - 1 zero tail bits.
    """
    nxt, out, pred_state, pred_bit = _trellis()
    n_states = nxt.shape[0]
    steps = n_bits + K - 1
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((steps, n_states), np.int64)
    for t in range(steps):
        y0, y1 = soft[2 * t], soft[2 * t + 1]
        cand = (metric[pred_state] + out[pred_state, pred_bit, 0] * y0 + out[pred_state, pred_bit, 1] * y1)
        if t >= n_bits:  # tail: only 0 inputs
            cand = np.where(pred_bit == 0, cand, -np.inf)
        pick = np.argmax(cand, axis=1)
        choice[t] = pick
        metric = cand[np.arange(n_states), pick]
    state = 0  # the tail drives the encoder back to state 0
    decoded = np.zeros(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        k = choice[t, state]
        decoded[t] = pred_bit[state, k]
        state = pred_state[state, k]
    return decoded[:n_bits]


# ------------------------------------------------------------ keyed layout


def _key_seed(key: str, purpose: bytes) -> int:
    h = hashlib.blake2b(key.encode("utf-8"), digest_size=16, person=_DOMAIN, salt=purpose.ljust(16, b"\0")[:16])
    return int.from_bytes(h.digest(), "big")


@dataclass(frozen=True)
class _Sync:
    rows: np.ndarray
    cols: np.ndarray
    phase: np.ndarray  # complex unit phasors
    tile: np.ndarray  # the (TILE, TILE) sync pattern, unit RMS


@lru_cache(maxsize=8)
def _sync(key: str) -> _Sync:
    """The keyed sync pattern: every bin of the band, with a keyed random phase."""
    t = TILE
    fy = np.fft.fftfreq(t)[:, None]
    fx = np.fft.rfftfreq(t)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    band = (radius >= 1.0 / PERIOD_MAX) & (radius <= 1.0 / PERIOD_MIN)
    band[:, 0] = False  # keep only bins whose conjugates are implicit (no self-symmetric columns)
    band[:, -1] = False
    rows, cols = np.nonzero(band)
    rng = np.random.default_rng(_key_seed(key, b"sync"))
    phase = np.exp(2j * np.pi * rng.random(len(rows)))
    spec = np.zeros((t, t // 2 + 1), np.complex128)
    spec[rows, cols] = phase
    tile = np.fft.irfft2(spec, s=(t, t))
    tile /= np.sqrt(np.mean(tile**2))
    return _Sync(rows, cols, phase, tile.astype(np.float32))


def mark_tile(key: str) -> np.ndarray:
    """The (TILE, TILE) float32 sync pattern under ``key``, unit RMS (it carries no payload)."""
    return _sync(key).tile


@dataclass(frozen=True)
class _Cells:
    dither: np.ndarray  # (CELLS * CELLS,) keyed offsets of the quantiser, in [0, STEP)
    data: np.ndarray  # (CODED_BITS,) the cell index that carries each coded bit
    ref: np.ndarray  # (REF_CELLS,) the reference cells' indices
    ref_bits: np.ndarray  # their keyed known bits


@lru_cache(maxsize=8)
def _cells(key: str) -> _Cells:
    rng = np.random.default_rng(_key_seed(key, b"cells"))
    order = rng.permutation(CELLS * CELLS)
    dither = rng.random(CELLS * CELLS) * STEP
    ref_bits = rng.integers(0, 2, REF_CELLS).astype(np.uint8)
    return _Cells(dither, order[:CODED_BITS], order[CODED_BITS:], ref_bits)


def _cell_bits(payload: bytes, key: str) -> np.ndarray:
    """The bit (0/1) that every cell index of the layout carries for ``payload``."""
    lay = _cells(key)
    bits = np.zeros(CELLS * CELLS, np.uint8)
    bits[lay.data] = conv_encode(_message_bits(payload))
    bits[lay.ref] = lay.ref_bits
    return bits


@lru_cache(maxsize=1)
def _bump() -> np.ndarray:
    """The (CELL, CELL) shape of a cell's change: a window ``sin ** BUMP_POWER`` (low at the edges:
    0.31 of its peak on the edge pixels, 0.1 at the corners, so neighbouring cells join with a small
    step), scaled so that adding ``A * bump`` moves the cell's windowed mean (:func:`_project`) by
    exactly ``A``."""
    window = np.sin(np.pi * (np.arange(CELL) + 0.5) / CELL) ** BUMP_POWER
    shape = np.outer(window, window)
    return (shape / (shape * _window2(CELL)).sum()).astype(np.float32)


@lru_cache(maxsize=16)
def _window(k: int) -> np.ndarray:
    """The (k,) sine window a cell's mean is read with, summing to 1.

    A box mean moves whenever content crosses the cell's edge (resampling, a fraction of a pixel of
    misalignment, JPEG ringing at a line on the edge); the sine window weighs the edges by nothing, so
    the windowed mean moves far less: after rotating a picture by 0.5 degree and back, the 16 px cell
    means of ``alice_tenniel_10`` moved by 0.78 levels RMS as box means and 0.41 windowed, those of
    ``van-gogh_starry-night`` 0.43 and 0.20 (2026-12-01)."""
    w = np.sin(np.pi * (np.arange(k) + 0.5) / k)
    return (w / w.sum()).astype(np.float32)


def _window2(k: int) -> np.ndarray:
    """The (k, k) reading window, summing to 1."""
    w = _window(k)
    return np.outer(w, w)


def _windowed(x: np.ndarray, k: int) -> np.ndarray:
    """``F[y, x]``: the sine-windowed mean of the k x k px square whose top-left corner is (y, x)
    (0 outside the picture)."""
    w = _window(k)
    return cv2.sepFilter2D(np.ascontiguousarray(x, dtype=np.float32), -1, w, w, anchor=(0, 0),
                           borderType=cv2.BORDER_CONSTANT)


def _integral(x: np.ndarray) -> np.ndarray:
    """The (H + 1, W + 1) float64 summed-area table of ``x``."""
    return cv2.integral(np.ascontiguousarray(x, dtype=np.float32), sdepth=cv2.CV_64F)


def _cell_sums(table: np.ndarray, y0: int, x0: int, ny: int, nx: int) -> np.ndarray:
    """The (ny, nx) sums over the CELL x CELL cells starting at (y0, x0), from a summed-area table."""
    ys = y0 + CELL * np.arange(ny + 1)
    xs = x0 + CELL * np.arange(nx + 1)
    t = table[ys[:, None], xs[None, :]]
    return t[1:, 1:] - t[:-1, 1:] - t[1:, :-1] + t[:-1, :-1]


def _project(x: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """The (ny, nx) windowed cell means of ``x`` (cells from the top-left corner; see :func:`_window`)."""
    return _windowed(x, CELL)[:ny * CELL:CELL, :nx * CELL:CELL][:ny, :nx].astype(np.float64)


def _channel_extremes(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's largest and smallest channel, (H, W) in the image's dtype (np.maximum over the
    channels: the values of .max(axis=2), several times faster on (H, W, 3))."""
    top, bottom = pixels[..., 0], pixels[..., 0]
    for c in range(1, pixels.shape[2]):
        top, bottom = np.maximum(top, pixels[..., c]), np.minimum(bottom, pixels[..., c])
    return top, bottom


def _cell_view(x: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """``x[:ny * CELL, :nx * CELL]`` as (ny, CELL, nx, CELL)."""
    return x[:ny * CELL, :nx * CELL].reshape(ny, CELL, nx, CELL)


def _qim_change(lum: np.ndarray, hi: np.ndarray, lo: np.ndarray, opaque: np.ndarray, bits: np.ndarray,
                dither: np.ndarray, step: float, move: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (H, W) float32 luminance change (8-bit levels) that moves the windowed mean of every whole cell
    onto its bit's quantiser lattice ``dither + bit * step / 2 + step * Z``, by the nearest point
    that does not push a channel out of [0, 255] (``hi`` / ``lo``: each pixel's largest / smallest
    channel).  ``move`` (per cell, 0-1) is the share of the way there (distortion-compensated
    QIM: less on flat colour, where a change of mean shows).  Cells that are not fully opaque are
    left alone.  Returns the change and the cells' target means (NaN where left alone)."""
    h, w = lum.shape
    ny, nx = h // CELL, w // CELL
    change = np.zeros((h, w), np.float32)
    if ny == 0 or nx == 0:
        return change, np.zeros((ny, nx))
    bump = _bump()
    mean = _project(lum, ny, nx)
    idx = (np.arange(ny)[:, None] % CELLS) * CELLS + (np.arange(nx)[None, :] % CELLS)
    offset = dither[idx] + bits[idx] * (step / 2.0)
    a0 = np.mod(offset - mean + step / 2.0, step) - step / 2.0  # nearest lattice point, in [-step/2, step/2)
    # a pixel at 255 (0) cannot go up (down): the others of the cell carry its share
    wb = np.abs(bump) * _window2(CELL)  # each pixel's share in moving the windowed mean
    weight = wb[None, :, None, :] / wb.sum()
    free_up = (weight * (_cell_view(hi, ny, nx) < 254.5)).sum(axis=(1, 3))
    free_dn = (weight * (_cell_view(lo, ny, nx) > 0.5)).sum(axis=(1, 3))
    cands = np.stack([a0, a0 - step, a0 + step])
    free = np.where(cands > 0, free_up[None], free_dn[None])
    cost = np.where(free > 0.1, np.abs(cands) / np.maximum(free, 1e-6), np.inf)
    pick = np.argmin(cost, axis=0)
    amount = np.take_along_axis(cands, pick[None], 0)[0]
    boost = np.take_along_axis(free, pick[None], 0)[0]
    movable = np.isfinite(cost.min(axis=0))
    amount = amount * move
    best = np.where(movable, amount / np.maximum(boost, 1e-6), 0.0)
    used = (_cell_view(opaque, ny, nx).all(axis=(1, 3)) if not opaque.all() else True) & movable
    best = np.where(used, best, 0.0)
    change[:ny * CELL, :nx * CELL] = (best[:, None, :, None].astype(np.float32) * bump[None, :, None, :]
                                      ).reshape(ny * CELL, nx * CELL)
    return change, np.where(used, mean + amount, np.nan)


# ------------------------------------------------------------------- embed


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones are done at reduced resolution (detection only needs them smooth)."""
    f = int(sigma // 2)
    if f < 2:
        return cv2.GaussianBlur(x, (0, 0), sigma)
    h, w = x.shape
    small = cv2.resize(x, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def mark_amplitude_map(pixels: np.ndarray, *, amplitude: float = MARK_AMPLITUDE, alpha: np.ndarray | None = None,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel amplitude (code values of the image's dtype): protect's
    perceptual mask (texture magnitude x density x shadows, the one that
    places the noise) scaled to ``amplitude``, with a floor of
    ``FLAT_GAIN * amplitude`` on flat colour; scaled by alpha.  ``mask``: the
    perceptual mask, when the caller has it already."""
    data_range = data_range_of(pixels.dtype)
    if mask is None:
        mask = perceptual_mask(pixels)
    amp = (np.float32(amplitude * data_range / 255.0) * (np.float32(FLAT_GAIN) + np.float32(1.0 - FLAT_GAIN) * mask))
    if alpha is not None:
        amp *= alpha.astype(np.float32) / np.float32(data_range)
    return amp.astype(np.float32)


def embed_mark(
    pixels: np.ndarray,
    payload: bytes,
    key: str,
    *,
    amplitude: float = MARK_AMPLITUDE,
    alpha: np.ndarray | None = None,
    step: float = STEP,
) -> np.ndarray:
    """Add the invisible mark carrying ``payload`` (8 bytes) under ``key``.

    ``pixels``: (H, W, 1|3) uint8/uint16, kept as they are (a new array is
    returned, same shape and dtype).  ``amplitude`` is the sync pattern's gain
    in 8-bit code values in textured areas (flat areas get ``FLAT_GAIN`` of it);
    ``step`` the quantiser step of the cell means that carry the payload.
    """
    check_image(pixels)
    if len(payload) != 8:
        raise ValueError("the payload must be 8 bytes")
    if not key:
        raise ValueError("a key is needed")
    data_range = int(data_range_of(pixels.dtype))  # an int, as the kernel was compiled for
    to8 = np.float32(255.0 / data_range)
    h, w, _ = pixels.shape
    unit = np.ones((1, 1), np.float32)
    tile = mark_tile(key)
    mask = perceptual_mask(pixels)
    tiled = np.tile(tile, (-(-h // TILE), -(-w // TILE)))[:h, :w]
    sync = tiled * mark_amplitude_map(pixels, amplitude=amplitude, alpha=alpha, mask=mask)
    src = np.ascontiguousarray(pixels)
    synced = np.empty_like(pixels)
    wk.embed_tile_kernel(src, unit, sync, data_range, synced)
    # the payload's targets are set on the synced, rounded and clipped image; then sync and payload
    # are added to the original and rounded once, so that the sync dithers the payload's fraction of a
    # level on flat colour (rounded alone, a 0.4 level change of mean became a hard-edged disc one
    # level deep in each cell; rounded together, SSIMULACRA2 +1.3 on the 29 pictures at 1024 px,
    # recovery within two pictures per attack, mostly better); the passes below put back what
    # rounding took from each cell
    lum = luma8(synced)
    top, bottom = _channel_extremes(synced)
    hi, lo = top.astype(np.float32) * to8, bottom.astype(np.float32) * to8
    opaque = np.ones((h, w), bool) if alpha is None else alpha >= data_range
    lay = _cells(key)
    ny, nx = h // CELL, w // CELL
    texture = _cell_view(mask, ny, nx).mean(axis=(1, 3)) if ny and nx else np.zeros((ny, nx))
    move = FLAT_MOVE + (1.0 - FLAT_MOVE) * np.minimum(1.0, TEXTURE_MOVE * texture)
    change, target = _qim_change(lum, hi, lo, opaque, _cell_bits(bytes(payload), key), lay.dither, step, move)
    out = np.empty_like(pixels)
    wk.embed_tile_kernel(src, unit, (sync + change / to8).astype(np.float32), data_range, out)
    for _ in range(3):  # put back what rounding and clipping took from each cell's mean
        ny, nx = target.shape
        if ny == 0 or nx == 0:
            break
        miss = target - _project(luma8(out), ny, nx)
        miss = np.where(np.isfinite(target), np.clip(miss, -step, step), 0.0)
        change[:ny * CELL, :nx * CELL] += (miss[:, None, :, None].astype(np.float32)
                                           * _bump()[None, :, None, :]).reshape(ny * CELL, nx * CELL)
        wk.embed_tile_kernel(src, unit, (sync + change / to8).astype(np.float32), data_range, out)
    return out


# ------------------------------------------------------------------ detect


@dataclass
class Detection:
    """What ``detect_mark`` found."""

    found: bool
    payload: bytes | None  # only when found
    confidence: str | None  # "certain" or "likely" when found
    p_value: float  # modelled chance of a detection this strong without the mark (CRC included when it matched)
    score: float  # the reference cells' statistic: |S|^2 / E|S|^2, exponential(1) without the mark
    present: bool  # the key's payload layer is there (p < 1e-4 before the CRC), read or not
    sync_z: float  # the sync pattern's peak in standard deviations (geometry only: it proves nothing)
    scale: float  # estimated size relative to the marked original
    angle: float  # estimated rotation, degrees
    gain: float  # estimated brightness/contrast gain
    crc_ok: bool

    @property
    def z(self) -> float:
        """The detection statistic (``score``), under the name earlier versions used."""
        return self.score

    @property
    def sync_only(self) -> bool:
        """The key's sync pattern is there but no payload layer: a copied or badly damaged mark."""
        return self.sync_z >= Z_THRESHOLD and not self.present

    def to_json(self) -> dict:
        return {
            "found": self.found,
            "confidence": self.confidence,
            "payload_hex": self.payload.hex() if self.payload is not None else None,
            "payload_text": payload_text(self.payload) if self.payload is not None else None,
            "p_value": self.p_value,
            "score": round(self.score, 3),
            "present": self.present,
            "sync_z": round(self.sync_z, 3),
            "sync_only": self.sync_only,
            "scale": round(self.scale, 4),
            "angle": round(self.angle, 3),
            "gain": round(self.gain, 4),
            "crc_ok": self.crc_ok,
            "algorithm": ALGORITHM,
        }


def describe_detection(det: Detection) -> str:
    """One plain line: ``found: ann_art (certain)``, or why nothing was found."""
    if det.found and det.payload is not None:
        text = payload_text(det.payload)
        shown = text if text is not None else det.payload.hex()
        if det.confidence == "certain":
            return f"found: {shown} (certain)"
        return f"found: {shown} (likely; about 1 chance in {1 / max(det.p_value, 1e-300):.0e} that it is a coincidence)"
    if det.present:
        return "no mark could be read (a mark made with this key is there, but too damaged to read its text)"
    if det.sync_only:
        return "no mark found (this key's alignment pattern is there without its payload: a copied or damaged mark)"
    return "no mark found"


def _residual(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Band-pass luminance weighted for detection: ``band * a / v``, where ``a``
    is the mark's expected relative amplitude (the embedding gain, re-estimated
    from the image) and ``v`` the local variance of the artwork in the band
    plus a floor for quantisation noise: the matched-filter weighting, which
    trusts flat areas (little artwork to hide the mark) in proportion to how
    much mark they carry."""
    data_range = data_range_of(pixels.dtype)
    lum = luma8(pixels)
    # the sync's band: sigma 0.6 px takes off what lies above it (periods under ~3 px: demosaicing and
    # JPEG noise), sigma 5 px what lies below (periods over ~20 px: the artwork's shading)
    band = cv2.GaussianBlur(lum, (0, 0), 0.6) - _smooth(lum, 5.0)
    # the artwork's local power in that band, over about a sync period and a half
    var = _smooth(band * band, 6.0) + np.float32(VARIANCE_FLOOR)
    expected = np.float32(FLAT_GAIN) + np.float32(1.0 - FLAT_GAIN) * perceptual_mask(pixels, lum=lum)
    r = band * expected / var
    if alpha is not None:
        r *= alpha.astype(np.float32) / np.float32(data_range)
    limit = 5.0 * float(np.sqrt(np.mean(r * r))) + 1e-12  # 5 RMS: an edge's outliers do not dominate the fold
    np.clip(r, -limit, limit, out=r)
    return r


def _acf(r: np.ndarray, side: int) -> np.ndarray:
    """Whitened autocorrelation of a centre crop (at most ``side`` square),
    normalised to 1 at lag 0: the inverse transform of the power spectrum
    divided by its own local average (Gaussian, ``WHITEN_SIGMA`` bins), so
    the artwork's smooth spectrum flattens out and the spikes of a periodic
    mark become sharp peaks at the lattice vectors."""
    crop = crop_center(r, side, side).astype(np.float32)
    ch, cw = crop.shape
    crop = (crop - crop.mean()) * np.outer(np.hanning(ch), np.hanning(cw)).astype(np.float32)
    # half spectrum (the crop is real), rows centred so the blur sees neighbouring frequencies
    power = np.fft.fftshift(np.abs(np.fft.rfft2(crop)) ** 2, axes=0).astype(np.float32)
    local = cv2.GaussianBlur(power, (0, 0), WHITEN_SIGMA, borderType=cv2.BORDER_REFLECT)
    # a cap at 20x the local power: no one artwork spike (a hatching, a halftone screen) dominates, while
    # the sync's spikes (about 10x their neighbourhood on a 1 MP crop at the embedded amplitude) pass whole
    white = np.minimum(power / (local + np.float32(1e-12)) - 1.0, 20.0)
    acf = np.fft.irfft2(np.fft.ifftshift(white, axes=0), s=crop.shape)
    return acf / max(float(acf[0, 0]), 1e-12)


def _sample(acf: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    h, w = acf.shape
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    v = np.zeros(np.shape(fy))
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            v = v + wy * wx * acf[(y0 + dy) % h, (x0 + dx) % w]
    return np.asarray(v)


_LATTICE_POINTS = ((1, 0), (0, 1), (1, 1), (1, -1))  # in lattice vectors; their negatives are implied


def _lattice_score(acf: np.ndarray, s: np.ndarray, th: np.ndarray) -> np.ndarray:
    """Sum of the autocorrelation at the lattice points (within the crop) of
    the lattice with vectors ``s * TILE`` rotated by ``th``."""
    c, sn = np.cos(th), np.sin(th)
    h, w = acf.shape
    total = np.zeros(np.broadcast(s, th).shape)
    for a, b in _LATTICE_POINTS:
        x = s * TILE * (a * c - b * sn)
        y = s * TILE * (a * sn + b * c)
        inside = (np.abs(x) < w / 2 - 2) & (np.abs(y) < h / 2 - 2)
        total = total + np.where(inside, _sample(acf, y, x), 0.0)
    return np.asarray(total)


def _find_lattices(r: np.ndarray, n: int = LATTICE_CANDIDATES) -> list[tuple[float, float]]:
    """Up to ``n`` distinct (scale, angle in radians) lattices with the highest
    whitened autocorrelation at their lattice points, each refined on a finer grid."""
    acf = _acf(r, RANK_CROP)
    limit = min(acf.shape) / 2.0 - 2.0
    s_max = min(SCALE_RANGE[1], limit / TILE)
    if s_max <= SCALE_RANGE[0]:
        return []
    # the grid: a lattice point 128 px out moves 0.5 px per 0.004 of scale and per 0.25 degree, about the
    # autocorrelation peak's half width; each candidate is then refined on a 9 x 9 grid four times finer
    step_s, step_t = 0.004, np.radians(0.25)
    s = np.arange(SCALE_RANGE[0], s_max, step_s)
    th = np.arange(-np.radians(ANGLE_RANGE_DEG), np.radians(ANGLE_RANGE_DEG) + 1e-9, step_t)
    S, TH = np.meshgrid(s, th, indexing="ij")
    score = _lattice_score(acf, S, TH)
    found: list[tuple[float, float]] = []
    for idx in np.argsort(score, axis=None)[::-1]:
        i, j = np.unravel_index(int(idx), score.shape)
        s0, t0 = float(s[i]), float(th[j])
        # neighbours of a peak kept already (the peak's skirt spans a few grid steps) are not new candidates
        if any(abs(s0 - a) < 0.03 and abs(t0 - b) < np.radians(1.5) for a, b in found):
            continue  # a neighbour of a peak already kept
        found.append((s0, t0))
        if len(found) == n:
            break
    refined = []
    for s0, t0 in found:
        fs = np.linspace(s0 - step_s, s0 + step_s, 9)
        ft = np.linspace(t0 - step_t, t0 + step_t, 9)
        FS, FT = np.meshgrid(fs, ft, indexing="ij")
        sc = _lattice_score(acf, FS, FT)
        i, j = np.unravel_index(int(np.argmax(sc)), sc.shape)
        refined.append((float(fs[i]), float(ft[j])))
    return refined


def _fold(r: np.ndarray, scale: float, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    m = np.array([[c, -s], [s, c]]) * scale  # columns: lattice vectors / TILE
    a = np.linalg.inv(m)
    sums = np.zeros((TILE, TILE), np.float64)
    counts = np.zeros((TILE, TILE), np.int64)
    wk.fold_kernel(r, a[0, 0], a[0, 1], a[1, 0], a[1, 1], TILE, sums, counts)
    folded = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return folded - folded[counts > 0].mean() if (counts > 0).any() else folded


@lru_cache(maxsize=1)
def _rings() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ring index (0 .. SYNC_RINGS - 1) of every rfft2 bin of the tile, the
    in-band mask, and the bins' frequencies fy (column) and fx (row), cycles per pixel."""
    fy = np.fft.fftfreq(TILE)[:, None]
    fx = np.fft.rfftfreq(TILE)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    edges = np.linspace(1.0 / PERIOD_MAX, 1.0 / PERIOD_MIN + 1e-9, SYNC_RINGS + 1)
    ring = np.clip(np.digitize(radius, edges) - 1, 0, SYNC_RINGS - 1)
    inband = (radius >= edges[0]) & (radius <= edges[-1])
    return ring, inband, fy, fx


def _ring_mean(rings: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per ring index (0 for a ring with no values)."""
    total = np.bincount(rings.ravel(), weights=values.ravel(), minlength=SYNC_RINGS)
    return total / np.maximum(np.bincount(rings.ravel(), minlength=SYNC_RINGS), 1)


def _whiten(spec: np.ndarray) -> np.ndarray:
    """Divide a folded tile's spectrum by the RMS magnitude of its ring, so
    the correlation weighs every ring of the band alike whatever the artwork
    left in it (a square root of full whitening: measured best)."""
    ring, inband, _, _ = _rings()
    rms = np.sqrt(_ring_mean(ring[inband], np.abs(spec[inband]) ** 2)) + 1e-20
    return spec / rms[ring]


def _subpixel(corr: np.ndarray, dy: int, dx: int) -> tuple[float, float]:
    """The correlation peak's position refined by a parabola through its neighbours."""
    def vertex(m: float, c: float, p: float) -> float:
        den = m - 2.0 * c + p
        return float(np.clip(0.5 * (m - p) / den, -0.5, 0.5)) if den < 0 else 0.0

    t = corr.shape[0]
    c = corr[dy, dx]
    return (dy + vertex(corr[(dy - 1) % t, dx], c, corr[(dy + 1) % t, dx]),
            dx + vertex(corr[dy, (dx - 1) % t], c, corr[dy, (dx + 1) % t]))


def _sync_search(r: np.ndarray, key: str) -> tuple[float, list[tuple[float, float, float, float]]]:
    """The sync pattern's peak z and its best lattice as found and as refined by the peak itself,
    each (scale, angle in radians, dy, dx), where (dy, dx) is the crop offset modulo the tile:
    folded-tile position ``(v, u)`` is tile position ``(v - dy, u - dx)``."""
    sync = _sync(key)
    candidates = [(1.0, 0.0)]
    if min(r.shape) >= 2 * SCALE_RANGE[0] * TILE + 8:
        for cand in _find_lattices(r):
            if abs(cand[0] - 1.0) > 1e-3 or abs(cand[1]) > 1e-4:
                candidates.append(cand)
    ref_spec = np.conj(np.fft.rfft2(sync.tile))

    def corr_of(res: np.ndarray, scale: float, angle: float):
        spec = np.fft.rfft2(_fold(res, scale, angle))
        corr = np.fft.irfft2(_whiten(spec) * ref_spec, s=(TILE, TILE))
        sd = corr.std()
        return (float((corr.max() - corr.mean()) / sd) if sd > 0 else 0.0), corr

    if len(candidates) > 1 and r.size > RANK_CROP**2:
        # rank the lattices on a centre crop, then measure the best on the whole image
        crop = crop_center(r, RANK_CROP, RANK_CROP)
        candidates = [max(candidates, key=lambda c: corr_of(crop, *c)[0])]
    best = None
    for scale, angle in candidates:
        z, corr = corr_of(r, scale, angle)
        if best is None or z > best[0]:
            best = (z, scale, angle, corr)
    assert best is not None
    z, scale, angle, corr = best
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    raw = (scale, angle, *_subpixel(corr, int(peak[0]), int(peak[1])))
    # the cell means need the geometry to a fraction of a pixel over the whole image: refine the
    # lattice by the sync peak itself (the lattice search's grid leaves ~0.2 degree errors)
    crop = crop_center(r, RANK_CROP, RANK_CROP)
    zr = corr_of(crop, scale, angle)[0]
    refined = (scale, angle)
    # halving steps from a third of the lattice grid's (0.25 degree, 0.004): the sync peak's z is flat
    # to ~0.05 degree, so this is rough; the payload stage refines further on the reference cells
    for d_angle, d_scale in ((0.08, 0.002), (0.04, 0.001), (0.02, 0.0005)):
        s0, a0 = refined
        for cand in ((s0, a0 + math.radians(d_angle)), (s0, a0 - math.radians(d_angle)),
                     (s0 * (1 + d_scale), a0), (s0 * (1 - d_scale), a0)):
            zc = corr_of(crop, *cand)[0]
            if zc > zr:
                zr, refined = zc, cand
    scale, angle = refined
    if crop.size < r.size:
        corr = corr_of(r, scale, angle)[1]
    else:
        z, corr = max(z, zr), corr_of(r, scale, angle)[1]
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy, dx = _subpixel(corr, int(peak[0]), int(peak[1]))
    return z, [raw, (scale, angle, dy, dx)]


@lru_cache(maxsize=1)
def _offset_table() -> np.ndarray:
    """(offsets, grid positions) -> layout cell index: grid position ``(gy, gx)`` (modulo CELLS)
    is cell ``((gy + oy) % CELLS, (gx + ox) % CELLS)`` under offset ``(oy, ox)``."""
    g = np.arange(CELLS)
    oy, ox, gy, gx = np.meshgrid(g, g, g, g, indexing="ij")
    return (((gy + oy) % CELLS) * CELLS + (gx + ox) % CELLS).reshape(CELLS * CELLS, CELLS * CELLS)


@lru_cache(maxsize=1)
def _gains() -> np.ndarray:
    """The brightness gains searched: GAIN_RANGE on a log grid of GAIN_STEP that holds 1 exactly."""
    lo, hi = math.ceil(math.log(GAIN_RANGE[0]) / GAIN_STEP), math.floor(math.log(GAIN_RANGE[1]) / GAIN_STEP)
    return np.exp(GAIN_STEP * np.arange(lo, hi + 1))


def _targets(key: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference cells' expected phasors (0 on data cells) and the mask of reference cells."""
    lay = _cells(key)
    target = np.zeros(CELLS * CELLS, np.complex128)
    target[lay.ref] = np.exp(2j * np.pi * (lay.dither[lay.ref] + lay.ref_bits * (STEP / 2.0)) / STEP)
    mask = np.zeros(CELLS * CELLS)
    mask[lay.ref] = 1.0
    return target, mask


def _fold_phasors(means: np.ndarray, grid: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """(len(gains), CELLS * CELLS): the mean phasor ``exp(2 pi i mean / (gain STEP))`` of the
    cells at each grid position (modulo CELLS); 0 where no cell was seen."""
    n = CELLS * CELLS
    if len(means) == 0:
        return np.zeros((len(gains), n), np.complex128)
    ph = np.exp(2j * np.pi * means[None, :] / (gains[:, None] * STEP))
    rows = (np.arange(len(gains))[:, None] * n + grid[None, :]).ravel()
    re = np.bincount(rows, weights=ph.real.ravel(), minlength=len(gains) * n)
    im = np.bincount(rows, weights=ph.imag.ravel(), minlength=len(gains) * n)
    count = np.maximum(np.bincount(grid, minlength=n), 1)
    return (re + 1j * im).reshape(len(gains), n) / count[None, :]


def _score(folded: np.ndarray, key: str, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every row of ``folded`` and every offset: the reference correlation ``S`` (complex) and
    its statistic ``|S|^2 / sum |F|^2`` over the reference cells (exponential(1) without the mark,
    whatever the image: the reference phases are keyed and independent of it)."""
    target, mask = _targets(key)
    table = _offset_table()[offsets]  # (n_offsets, grid)
    s = folded @ np.conj(target)[table].T
    norm = (np.abs(folded) ** 2) @ mask[table].T
    return s, np.abs(s) ** 2 / np.maximum(norm, 1e-30)


@dataclass
class _Tables:
    """An image's windowed means of CELL x CELL squares (:func:`_windowed`) and summed-area tables
    of its pixels inside and opaque and of its clipped pixels: any grid of cells is then read in
    O(cells)."""

    windowed: np.ndarray
    inside: np.ndarray
    clipped: np.ndarray


def _grid_means(tables: _Tables, y0: int, x0: int, clipped: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The windowed means of the whole CELL x CELL cells on the grid starting at (y0, x0) that are all
    inside the image and opaque and have under ``clipped`` of their pixels clipped to black or
    white (see :func:`_usable`), and their grid positions modulo CELLS."""
    h, w = tables.windowed.shape
    ny, nx = (h - y0) // CELL, (w - x0) // CELL
    if ny <= 0 or nx <= 0:
        return np.zeros(0), np.zeros(0, np.int64)
    area = float(CELL * CELL)
    means = tables.windowed[y0:y0 + ny * CELL:CELL, x0:x0 + nx * CELL:CELL][:ny, :nx].astype(np.float64)
    ok = (_cell_sums(tables.inside, y0, x0, ny, nx) > area - 0.5) & \
         (_cell_sums(tables.clipped, y0, x0, ny, nx) < clipped * area)
    grid = (np.arange(ny)[:, None] % CELLS) * CELLS + (np.arange(nx)[None, :] % CELLS)
    return means[ok], grid[ok]


def _usable(pixels: np.ndarray, alpha: np.ndarray | None, data_range: float) -> np.ndarray:
    """1 where a cell mean can use a pixel, 0.5 where a channel is clipped to black or white
    (brightening clips a saturated colour's channel and its luminance stops following), 0 where
    it is not opaque."""
    top, bottom = _channel_extremes(pixels)
    ok = np.where((bottom > 0) & (top < data_range), np.float32(1.0), np.float32(0.5))
    if alpha is not None:
        ok[alpha < data_range] = 0.0
    return ok


MAP_ROW = 4096  # points per row of the maps handed to cv2.remap (which takes under 32767 columns)


def _remap_points(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at the points (x, y) (pixel centres at integers); 0 outside."""
    if x.size == 0 or min(image.shape) == 0:
        return np.zeros(x.shape, np.float32)
    # cv2.remap's maps must be under 32767 columns: the points go in rows of MAP_ROW, padded
    n = x.size
    rows = -(-n // MAP_ROW)
    mx = np.full(rows * MAP_ROW, -1.0e4, np.float32)
    my = np.full(rows * MAP_ROW, -1.0e4, np.float32)
    mx[:n], my[:n] = x.ravel(), y.ravel()
    out = cv2.remap(image, mx.reshape(rows, MAP_ROW), my.reshape(rows, MAP_ROW), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.ravel()[:n].reshape(x.shape)


class _CellReader:
    """Cell means of the marked original's grid read straight from the attacked picture, for any
    geometry, without resampling it: a cell's windowed mean (:func:`_window`) is the picture filtered
    once by the window scaled to the cell's size there (``k = round(CELL * scale)`` px), sampled
    bilinearly at the cell's centre mapped by the geometry.  Whether a cell is inside, opaque and
    not clipped is read from its 2 x 2 quarter cells' boxes (``round(CELL / 2 * scale)`` px, from
    summed-area tables: a rotated cell's corners count) and from the box its window covers.  A
    geometry is then tried in O(cells), so the refinement can search angle, scale and shift finely."""

    def __init__(self, lum: np.ndarray, usable: np.ndarray):
        self.h, self.w = lum.shape
        self.lum = lum
        self.tables = (_integral(usable > 0.2), _integral((usable > 0.2) & (usable < 0.75)))
        self._boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._windowed: dict[int, np.ndarray] = {}

    def windowed(self, k: int) -> np.ndarray:
        """The luminance's windowed means of k x k px squares, top-left anchored (see :func:`_windowed`)."""
        if k not in self._windowed:
            self._windowed[k] = _windowed(self.lum, k)
        return self._windowed[k]

    def boxes(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Box means (k x k px, top-left anchored) of the inside-and-opaque mask and of the clipped
        mask: ``B[y, x]`` is the mean over rows y .. y + k - 1 and columns x .. x + k - 1."""
        if k not in self._boxes:
            out = []
            for t in self.tables:
                b = (t[k:, k:] - t[:-k, k:] - t[k:, :-k] + t[:-k, :-k]) / float(k * k)
                out.append(b.astype(np.float32))
            self._boxes[k] = (out[0], out[1])
        return self._boxes[k]

    def layout(self, geometry: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices (in cells, on the original's grid) of every cell whose image lies
        at least partly inside the picture under ``geometry``."""
        scale, angle, dy, dx = geometry
        c, s = math.cos(angle), math.sin(angle)
        inv = np.linalg.inv(np.array([[c, -s], [s, c]]) * scale)
        corners = inv @ np.array([[0, self.w, 0, self.w], [0, 0, self.h, self.h]], float)
        u, v = corners[0] - dx, corners[1] - dy
        js = np.arange(math.floor(u.min() / CELL) - 1, math.ceil(u.max() / CELL) + 1)
        is_ = np.arange(math.floor(v.min() / CELL) - 1, math.ceil(v.max() / CELL) + 1)
        ii, jj = np.meshgrid(is_, js, indexing="ij")
        return ii.ravel(), jj.ravel()

    @staticmethod
    def points(ii: np.ndarray, jj: np.ndarray, geometry: tuple[float, float, float, float],
               within: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) image coordinates (pixel centres at integers) of the points at ``within`` (px from
        the cell's top-left corner, the same for x and y) of each cell, shape (len(within)**2, n)."""
        scale, angle, dy, dx = geometry
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        u = (CELL * jj[None, :] + np.repeat(within, len(within))[:, None]) + dx
        v = (CELL * ii[None, :] + np.tile(within, len(within))[:, None]) + dy
        return c * u - s * v, s * u + c * v

    def centres(self, ii: np.ndarray, jj: np.ndarray,
                geometry: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) image coordinates of the centres of cells (ii, jj), shape (n,)."""
        x, y = self.points(ii, jj, geometry, np.array([0.5 * CELL - 0.5]))
        return x[0], y[0]

    def cells(self, geometry: tuple[float, float, float, float], clipped: float):
        """The cells (row, column indices) that are wholly inside and opaque with under ``clipped``
        of their pixels clipped (see :func:`_usable`), their means and grid positions modulo CELLS."""
        ii, jj = self.layout(geometry)
        if len(ii) == 0:
            return ii, jj, np.zeros(0), np.zeros(0, np.int64)
        k = max(2, int(round(CELL / 2 * geometry[0])))
        x, y = self.points(ii, jj, geometry, np.array([0.25 * CELL - 0.5, 0.75 * CELL - 0.5]))
        inside, clip = self.boxes(k)
        off = (k - 1) / 2.0
        # inside: the four quarter boxes (a rotated cell's corners) and the box the mean's window
        # covers (round(CELL * scale) px, which can reach a fraction of a pixel past the quarters')
        kw = self.window_size(geometry[0])
        xc, yc = self.centres(ii, jj, geometry)
        offw = (kw - 1) / 2.0
        ok = (_remap_points(inside, x - off, y - off).min(axis=0) > 0.999) & \
             (_remap_points(self.boxes(kw)[0], xc - offw, yc - offw) > 0.999) & \
             (_remap_points(clip, x - off, y - off).mean(axis=0) < clipped)
        ii, jj = ii[ok], jj[ok]
        return ii, jj, self.means(ii, jj, geometry), self.grid(ii, jj)

    @staticmethod
    def window_size(scale: float) -> int:
        """The side, px, of a cell's reading window in a picture at ``scale``."""
        return max(4, int(round(CELL * scale)))

    def means(self, ii: np.ndarray, jj: np.ndarray, geometry: tuple[float, float, float, float]) -> np.ndarray:
        """The windowed means of cells (ii, jj) of the original's grid under ``geometry``."""
        k = self.window_size(geometry[0])
        x, y = self.centres(ii, jj, geometry)
        off = (k - 1) / 2.0
        return _remap_points(self.windowed(k), x - off, y - off).astype(np.float64)

    @staticmethod
    def grid(ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
        return np.mod(ii, CELLS) * CELLS + np.mod(jj, CELLS)


def _about_centre(geometry: tuple[float, float, float, float], centre: tuple[float, float], d_angle: float,
                  d_scale: float, ty: float, tx: float) -> tuple[float, float, float, float]:
    """``geometry`` turned by ``d_angle``, scaled by ``1 + d_scale`` about the image point ``centre``
    (x, y) and shifted by (tx, ty) image px: small changes about the picture's middle, so that the
    angle, scale and shift can be searched one at a time (about the tile origin they are coupled)."""
    scale, angle, dy, dx = geometry
    scale2, angle2 = scale * (1.0 + d_scale), angle + d_angle
    c2, s2 = math.cos(angle2) * scale2, math.sin(angle2) * scale2
    m2 = np.array([[c2, -s2], [s2, c2]])
    turn = (1.0 + d_scale) * np.array([[math.cos(d_angle), -math.sin(d_angle)], [math.sin(d_angle), math.cos(d_angle)]])
    cen = np.array(centre, float)
    d = np.linalg.solve(m2, cen - turn @ cen + np.array([tx, ty])) + np.array([dx, dy])
    return scale2, angle2, float(d[1]), float(d[0])


def _decode(hypothesis: tuple, key: str) -> tuple[bytes, bool]:
    """The payload a hypothesis (score, S, folded phasors, offset, gain, geometry) reads and whether
    its CRC matches: every data cell's phasor, turned by the reference's common phase (an offset of
    brightness turns them all alike) and by its keyed dither, is +1 for a 0 bit and -1 for a 1."""
    _, s, folded, offset, _, _ = hypothesis
    lay = _cells(key)
    cellwise = np.zeros(CELLS * CELLS, np.complex128)
    cellwise[_offset_table()[offset]] = folded
    turned = cellwise * np.exp(-1j * (np.angle(s) + 2 * np.pi * lay.dither / STEP))
    soft = turned.real[lay.data]
    soft = soft / (np.abs(soft).mean() + 1e-30)
    bits = viterbi_decode(soft, PAYLOAD_BITS + CRC_BITS)
    payload = np.packbits(bits[:PAYLOAD_BITS]).tobytes()
    return payload, int.from_bytes(np.packbits(bits[PAYLOAD_BITS:]).tobytes(), "big") == crc16(payload)


def detect_mark(pixels: np.ndarray, key: str, *, alpha: np.ndarray | None = None) -> Detection:
    """Look for a mark made with ``key``; see the module docstring for the method."""
    check_image(pixels)
    if not key:
        raise ValueError("a key is needed")
    data_range = data_range_of(pixels.dtype)
    lum = luma8(pixels)
    usable = _usable(pixels, alpha, data_range)
    n = CELLS * CELLS
    hypotheses = 0
    best = None  # (score, S, folded row, offset, gain, geometry)

    # 1. the geometry from the sync pattern: read the cells of the original's grid through it, search
    #    the brightness gain and which of the sync tiles of the layout the grid starts on; refine the
    #    geometry to a fraction of a pixel (a cell's mean moves with its window) by the reference cells'
    #    score, angle and scale about the picture's middle, then the shift
    r = _residual(pixels, alpha)
    sync_z, geometries = _sync_search(r, key)
    gains = _gains()
    q = TILE // CELL
    aligned = np.array([oy * CELLS + ox for oy in range(0, CELLS, q) for ox in range(0, CELLS, q)])
    reader = _CellReader(lum, usable)
    centre = ((reader.w - 1) / 2.0, (reader.h - 1) / 2.0)

    def consider_cells(means: np.ndarray, grid: np.ndarray, offsets: np.ndarray, use_gains: np.ndarray,
                       geometry: tuple) -> tuple[float, float]:
        nonlocal best, hypotheses
        folded = _fold_phasors(means, grid, use_gains)
        s, stat = _score(folded, key, offsets)
        hypotheses += stat.size
        i, j = np.unravel_index(int(np.argmax(stat)), stat.shape)
        if best is None or stat[i, j] > best[0]:
            best = (float(stat[i, j]), s[i, j], folded[i], int(offsets[j]), float(use_gains[i]), geometry)
        return float(stat[i, j]), float(use_gains[i])

    def consider(tables: _Tables, y0: int, x0: int, clipped: float, offsets: np.ndarray, use_gains: np.ndarray,
                 geometry: tuple) -> float:
        means, grid = _grid_means(tables, y0, x0, clipped)
        return consider_cells(means, grid, offsets, use_gains, geometry)[0]

    def centre_cells(ii: np.ndarray, jj: np.ndarray, geometry: tuple) -> np.ndarray:
        """The REFINE_CELLS cells nearest the picture's middle (the gain and geometry are chosen on them)."""
        if len(ii) <= REFINE_CELLS:
            return np.arange(len(ii))
        x, y = reader.centres(ii, jj, geometry)
        dist = (x - centre[0]) ** 2 + (y - centre[1]) ** 2
        return np.argsort(dist, kind="stable")[:REFINE_CELLS]

    start = None
    for geometry in geometries:  # choose the geometry, clipping rule and gain on the middle cells
        for clipped in CLIPPED:
            ii, jj, means, grid = reader.cells(geometry, clipped)
            pick = centre_cells(ii, jj, geometry)
            stat, gain = consider_cells(means[pick], grid[pick], aligned, gains, geometry)
            if start is None or stat > start[0]:
                start = (stat, geometry, clipped, gain, ii[pick], jj[pick])
    assert start is not None
    _, start_geometry, clipped, start_gain, ii, jj = start
    grid = reader.grid(ii, jj)

    def try_geometry(cand: tuple, one_gain: np.ndarray, cells: tuple | None = None) -> float:
        """The reference score of ``cells`` (ii, jj, grid; the middle cells by default) read at ``cand``."""
        nonlocal hypotheses
        ci, cj, cgrid = (ii, jj, grid) if cells is None else cells
        stat = float(_score(_fold_phasors(reader.means(ci, cj, cand), cgrid, one_gain), key, aligned)[1].max())
        hypotheses += len(aligned)
        return stat

    def fit_quadrants(geometry: tuple, one_gain: np.ndarray) -> list[tuple]:
        """The geometry corrected by the shifts that best read each quarter of the picture: a small
        error of angle and scale shows as shifts that grow with the distance from the middle, which a
        shift search about the middle cannot undo (the sync left `kipling_11-1` 0.17 degree off after a
        2 degree rotation).  Returns the corrected geometry and its mirror in angle, to be scored."""
        qi, qj, _, _ = reader.cells(geometry, clipped)
        if len(qi) < 4 * CELLS * CELLS:
            return []
        x, y = reader.centres(qi, qj, geometry)
        rows, rhs = [], []
        for part in ((x < centre[0]) & (y < centre[1]), (x >= centre[0]) & (y < centre[1]),
                     (x < centre[0]) & (y >= centre[1]), (x >= centre[0]) & (y >= centre[1])):
            if part.sum() < QUADRANT_MIN_CELLS:  # a quarter of paper, transparency or outside: no fit
                return []
            quarter = (qi[part], qj[part], reader.grid(qi[part], qj[part]))
            _, ty, tx = max((try_geometry(_about_centre(geometry, centre, 0.0, 0.0, ty, tx), one_gain, quarter), ty, tx)
                            for ty in QUADRANT_SHIFTS for tx in QUADRANT_SHIFTS)
            px, py = float(x[part].mean()) - centre[0], float(y[part].mean()) - centre[1]
            rows += [[1.0, 0.0, px, -py], [0.0, 1.0, py, px]]
            rhs += [tx, ty]
        tx, ty, d_scale, d_angle = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
        return [_about_centre(geometry, centre, sign * float(d_angle), float(d_scale), float(ty), float(tx))
                for sign in (1.0, -1.0)]

    def refine(geometry: tuple, gain: float) -> tuple[float, tuple]:
        """Coarse to fine (REFINE_STAGES) at one gain: the score on the middle cells and the geometry."""
        one_gain = np.array([gain])
        geo_score = try_geometry(geometry, one_gain)
        for cand in (fit_quadrants(geometry, one_gain) if geo_score < QUADRANT_FIT_BELOW else []):
            stat = try_geometry(cand, one_gain)
            if stat > geo_score:
                geo_score, geometry = stat, cand
        for d_angles, d_scales, shifts in REFINE_STAGES:
            base = geometry
            for da in d_angles:  # angle and scale about the middle, then the shift
                for ds in d_scales:
                    if da == 0 and ds == 0:
                        continue
                    cand = _about_centre(base, centre, math.radians(da), ds, 0.0, 0.0)
                    stat = try_geometry(cand, one_gain)
                    if stat > geo_score:
                        geo_score, geometry = stat, cand
            base = geometry
            for ty in shifts:
                for tx in shifts:
                    if ty == 0 and tx == 0:
                        continue
                    cand = _about_centre(base, centre, 0.0, 0.0, ty, tx)
                    stat = try_geometry(cand, one_gain)
                    if stat > geo_score:
                        geo_score, geometry = stat, cand
        return geo_score, geometry

    # at the gain chosen at the sync's geometry and, when that is another, at gain 1: while the geometry
    # is off the gain search is at chance, and at a wrong gain no geometry scores
    refined = [(*refine(start_geometry, g), g) for g in sorted({start_gain, 1.0})]
    _, geometry, gain = max(refined, key=lambda t: t[0])
    # then every cell of the picture at the geometry found, at the gains next to the one chosen and at 1
    near = np.abs(np.log(gains / gain)) <= FINAL_GAIN_SPAN * GAIN_STEP + 1e-9
    final_gains = gains[near | (gains == 1.0)]
    unit_best = None  # the best hypothesis at gain 1: decoded too when the best one's CRC fails
    for clipped in CLIPPED:
        _, _, means, grid_all = reader.cells(geometry, clipped)
        consider_cells(means, grid_all, aligned, final_gains, geometry)
        folded = _fold_phasors(means, grid_all, np.ones(1))
        s1, stat1 = _score(folded, key, aligned)
        j = int(np.argmax(stat1[0]))
        if unit_best is None or stat1[0, j] > unit_best[0]:
            unit_best = (float(stat1[0, j]), s1[0, j], folded[0], int(aligned[j]), 1.0, geometry)
    # 2. without the sync (it may have been estimated and subtracted): unchanged geometry, the cell
    #    grid searched on a SUBSHIFT px grid, then every pixel around the best, and over every
    #    offset of the layout, gain 1
    tables = _Tables(reader.windowed(CELL), *reader.tables)
    one, everything, unchanged = np.ones(1), np.arange(n), (1.0, 0.0, 0.0, 0.0)
    coarse = max((consider(tables, y0, x0, CLIPPED[0], everything, one, unchanged), y0, x0)
                  for y0 in range(0, CELL, SUBSHIFT) for x0 in range(0, CELL, SUBSHIFT))
    _, y0, x0 = coarse
    for y in range(y0 - SUBSHIFT // 2, y0 + SUBSHIFT // 2 + 1):
        for x in range(x0 - SUBSHIFT // 2, x0 + SUBSHIFT // 2 + 1):
            if (y, x) != (y0, x0):
                consider(tables, y % CELL, x % CELL, CLIPPED[0], everything, one, unchanged)
    # the payload, from the best hypothesis and from the best at gain 1 (the gain is poorly pinned on
    # pictures whose cells are mostly one level, e.g. white paper): the first whose CRC matches.  The
    # p-value is the union bound over every hypothesis tried, times the number of hypotheses decoded.
    assert best is not None
    candidates = [best] + ([unit_best] if unit_best is not None and unit_best[3:5] != best[3:5] else [])
    decoded = [_decode(c, key) for c in candidates]
    chosen = next((i for i, d in enumerate(decoded) if d[1]), 0)
    score, s, folded, offset, gain, (scale, angle, _, _) = candidates[chosen]
    payload, crc_ok = decoded[chosen]
    p_layer = min(1.0, hypotheses * math.exp(-best[0]))  # is the payload layer there at all
    p_value = min(1.0, len(candidates) * hypotheses * math.exp(-score)) * (2.0**-CRC_BITS if crc_ok else 1.0)
    found = bool(crc_ok and p_value < P_FOUND)
    confidence = ("certain" if p_value < P_CERTAIN else "likely") if found else None
    return Detection(found, payload if found else None, confidence, p_value, score, p_layer < 1e-4,
                     sync_z, scale, math.degrees(angle), gain, crc_ok)
