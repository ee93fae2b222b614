"""A keyed, invisible, tile-periodic watermark with a 64-bit payload.

Embedding
---------
A 128 x 128 luminance tile is synthesised in the Fourier domain from the
artist's key: the frequency bins of a band (periods of 4 to 16 px) are
shuffled by the key; a quarter of them carry a fixed *reference* (sync)
pattern, the rest are split into groups, one group per coded bit, each bin
with a keyed random phase and the sign of its bit.  The payload (64 bits)
gets a CRC-16 and a rate-1/2 convolutional code (constraint length 7, the
NASA/CCSDS generators 171/133 octal), 172 coded bits in all.  The tile is
repeated over the whole image and added to luminance (the same value on
every channel), scaled by a perceptual gain: weaker on flat colour, stronger
in texture, zero where alpha is 0.

Detection
---------
1. A band-pass residual of luminance (difference of Gaussians), normalised
   by its local RMS, suppresses the artwork and keeps the mark.
2. The tiling is a lattice: its autocorrelation has peaks at the lattice
   vectors, whose length and angle give the scale and rotation the image
   went through (resizing from 0.4x to 1.7x, rotations within 6 degrees).
3. The residual is folded onto one tile of that lattice (every pixel
   averaged into its tile position), which adds up all repetitions of the
   mark while the artwork averages out.
4. The folded tile is cross-correlated with the reference pattern at every
   cyclic shift (one FFT): the shift of the peak undoes any crop, and the
   peak's height in standard deviations of all shifts (``z``) is the
   detection statistic.
5. The coded bits are read as soft values from their frequency groups,
   Viterbi-decoded, and the CRC is checked.

A mark is reported *found* only when ``z >= Z_THRESHOLD`` and the CRC
matches.  False positives: under the null hypothesis (no mark, or another
key) the correlation at each shift is approximately standard normal, so the
chance that any of the ``n`` shifts and lattice candidates tried reaches
``z`` is at most ``n * Q(z)`` (Bonferroni); with ``n = 2 * 128^2`` and
``Z_THRESHOLD = 6.5
RANK_CROP = 1024  # side of the centre crop on which lattice candidates are ranked
LATTICE_CANDIDATES = 4  # lattices from the autocorrelation tried besides "unchanged"
VARIANCE_FLOOR = 0.5  # levels^2: rounding and mild compression noise`` that is 1.3e-6, and the CRC must also match (2^-16),
so the modelled false-positive rate is about 2e-11 per image.
``benchmarks/watermark.py`` checks it on thousands of unmarked crops.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .kernels import watermark as wk

__all__ = [
    "Detection",
    "payload_from_text",
    "payload_from_hex",
    "payload_text",
    "embed_mark",
    "detect_mark",
    "MARK_AMPLITUDE",
    "Z_THRESHOLD",
]

TILE = 128
PERIOD_MIN, PERIOD_MAX = 4.0, 16.0  # px, at the embedding scale
PAYLOAD_BITS = 64
CRC_BITS = 16
K = 7  # constraint length of the convolutional code
G0, G1 = 0o171, 0o133
CODED_BITS = 2 * (PAYLOAD_BITS + CRC_BITS + K - 1)
REFERENCE_FRACTION = 0.25
MARK_AMPLITUDE = 2.0  # peak gain in code values (8-bit) in textured areas
FLAT_GAIN = 0.3  # fraction of it on flat colour
Z_THRESHOLD = 6.5
RANK_CROP = 1024  # side of the centre crop on which lattice candidates are ranked
LATTICE_CANDIDATES = 4  # lattices from the autocorrelation tried besides "unchanged"
VARIANCE_FLOOR = 0.5  # levels^2: rounding and mild compression noise
SCALE_RANGE = (0.4, 1.7)
ANGLE_RANGE_DEG = 6.0
_DOMAIN = b"protect-watermark-v1"


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
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


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


@dataclass(frozen=True)
class _Layout:
    ref_rows: np.ndarray
    ref_cols: np.ndarray
    ref_phase: np.ndarray  # complex unit phasors
    bit_rows: np.ndarray  # (CODED_BITS, per_bit)
    bit_cols: np.ndarray
    bit_phase: np.ndarray
    reference: np.ndarray  # the (TILE, TILE) reference pattern, unit RMS over the tile


def _key_seed(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=16, person=_DOMAIN[:16]).digest(), "big")


@lru_cache(maxsize=8)
def _layout(key: str) -> _Layout:
    t = TILE
    fy = np.fft.fftfreq(t)[:, None]
    fx = np.fft.rfftfreq(t)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    band = (radius >= 1.0 / PERIOD_MAX) & (radius <= 1.0 / PERIOD_MIN)
    band[:, 0] = False  # keep only bins whose conjugates are implicit (no self-symmetric columns)
    band[:, -1] = False
    rows, cols = np.nonzero(band)
    rng = np.random.default_rng(_key_seed(key))
    order = rng.permutation(len(rows))
    rows, cols = rows[order], cols[order]
    phase = np.exp(2j * np.pi * rng.random(len(rows)))
    n_ref = int(len(rows) * REFERENCE_FRACTION)
    per_bit = (len(rows) - n_ref) // CODED_BITS
    n_ref = len(rows) - per_bit * CODED_BITS  # the leftover bins strengthen the reference
    spec = np.zeros((t, t // 2 + 1), np.complex128)
    spec[rows[:n_ref], cols[:n_ref]] = phase[:n_ref]
    reference = np.fft.irfft2(spec, s=(t, t))
    reference /= np.sqrt(np.mean(reference**2))
    data = slice(n_ref, None)
    return _Layout(
        rows[:n_ref], cols[:n_ref], phase[:n_ref],
        rows[data].reshape(CODED_BITS, per_bit), cols[data].reshape(CODED_BITS, per_bit),
        phase[data].reshape(CODED_BITS, per_bit), reference.astype(np.float32),
    )


def mark_tile(payload: bytes, key: str) -> np.ndarray:
    """The (TILE, TILE) float32 luminance pattern for ``payload`` under ``key``, unit RMS."""
    lay = _layout(key)
    symbols = 1.0 - 2.0 * conv_encode(_message_bits(payload)).astype(np.float64)
    spec = np.zeros((TILE, TILE // 2 + 1), np.complex128)
    spec[lay.ref_rows, lay.ref_cols] = lay.ref_phase
    spec[lay.bit_rows, lay.bit_cols] = lay.bit_phase * symbols[:, None]
    tile = np.fft.irfft2(spec, s=(TILE, TILE))
    return (tile / np.sqrt(np.mean(tile**2))).astype(np.float32)


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


def mark_gain(pixels: np.ndarray, *, amplitude: float = MARK_AMPLITUDE, alpha: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel amplitude (code values of the image's dtype): protect's
    perceptual mask (texture magnitude x density x shadows, the one that
    places the noise) scaled to ``amplitude``, with a floor of
    ``FLAT_GAIN * amplitude`` on flat colour; scaled by alpha."""
    from .pipeline import perceptual_mask

    maxval = 255.0 if pixels.dtype == np.uint8 else 65535.0
    mask = perceptual_mask(pixels)
    gain = (np.float32(amplitude * maxval / 255.0) * (np.float32(FLAT_GAIN) + np.float32(1.0 - FLAT_GAIN) * mask))
    if alpha is not None:
        gain *= alpha.astype(np.float32) / np.float32(maxval)
    return gain.astype(np.float32)


def embed_mark(
    pixels: np.ndarray,
    payload: bytes,
    key: str,
    *,
    amplitude: float = MARK_AMPLITUDE,
    alpha: np.ndarray | None = None,
) -> np.ndarray:
    """Add the invisible mark carrying ``payload`` (8 bytes) under ``key``.

    ``pixels``: (H, W, 1|3) uint8/uint16, kept as they are (a new array is
    returned, same shape and dtype).  ``amplitude`` is the gain in 8-bit code
    values in textured areas (flat areas get ``FLAT_GAIN`` of it).
    """
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3) or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError("pixels must be an (H, W, 1) or (H, W, 3) uint8/uint16 array")
    if len(payload) != 8:
        raise ValueError("the payload must be 8 bytes")
    if not key:
        raise ValueError("a key is needed")
    maxval = 255 if pixels.dtype == np.uint8 else 65535
    tile = mark_tile(bytes(payload), key)
    gain = mark_gain(pixels, amplitude=amplitude, alpha=alpha)
    out = np.empty_like(pixels)
    wk.embed_tile_kernel(np.ascontiguousarray(pixels), tile, gain, maxval, out)
    return out


# ------------------------------------------------------------------ detect


@dataclass
class Detection:
    """What ``detect_mark`` found."""

    found: bool
    payload: bytes | None  # only when found
    z: float  # sync peak in standard deviations
    p_value: float  # modelled chance of a sync peak this high without the mark
    scale: float  # estimated size relative to the marked original
    angle: float  # estimated rotation, degrees
    crc_ok: bool

    def to_json(self) -> dict:
        return {
            "found": self.found,
            "payload_hex": self.payload.hex() if self.payload is not None else None,
            "payload_text": payload_text(self.payload) if self.payload is not None else None,
            "z": round(self.z, 3),
            "p_value": self.p_value,
            "scale": round(self.scale, 4),
            "angle": round(self.angle, 3),
            "crc_ok": self.crc_ok,
        }


def _residual(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Band-pass luminance weighted for detection: ``band * a / v``, where ``a``
    is the mark's expected relative amplitude (the embedding gain, re-estimated
    from the image) and ``v`` the local variance of the artwork in the band
    plus a floor for quantisation noise: the matched-filter weighting, which
    trusts flat areas (little artwork to hide the mark) in proportion to how
    much mark they carry."""
    from .pipeline import luma8, perceptual_mask

    maxval = 255.0 if pixels.dtype == np.uint8 else 65535.0
    lum = luma8(pixels)
    band = cv2.GaussianBlur(lum, (0, 0), 0.6) - _smooth(lum, 5.0)
    var = _smooth(band * band, 6.0) + np.float32(VARIANCE_FLOOR)
    expected = np.float32(FLAT_GAIN) + np.float32(1.0 - FLAT_GAIN) * perceptual_mask(pixels, lum=lum)
    r = band * expected / var
    if alpha is not None:
        r *= alpha.astype(np.float32) / np.float32(maxval)
    limit = 5.0 * float(np.sqrt(np.mean(r * r))) + 1e-12
    np.clip(r, -limit, limit, out=r)
    return r


def _acf(r: np.ndarray, side: int) -> np.ndarray:
    h, w = r.shape
    ch, cw = min(h, side), min(w, side)
    crop = r[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
    crop = crop - crop.mean()
    power = np.abs(np.fft.rfft2(crop)) ** 2
    acf = np.fft.irfft2(power, s=crop.shape)
    return acf / max(acf[0, 0], 1e-12)


def _sample(acf: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    h, w = acf.shape
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    v = 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            v = v + wy * wx * acf[(y0 + dy) % h, (x0 + dx) % w]
    return v


def _lattice_score(acf: np.ndarray, s: np.ndarray, th: np.ndarray) -> np.ndarray:
    c, sn = np.cos(th), np.sin(th)
    vx1, vy1 = s * TILE * c, s * TILE * sn
    vx2, vy2 = -s * TILE * sn, s * TILE * c
    return _sample(acf, vy1, vx1) + _sample(acf, vy2, vx2)


def _find_lattices(r: np.ndarray, n: int = LATTICE_CANDIDATES) -> list[tuple[float, float]]:
    """Up to ``n`` distinct (scale, angle in radians) lattices with the highest
    autocorrelation at their lattice vectors, each refined on a finer grid.
    Several are kept because the artwork's own periodic structure (hatching,
    screentone) can outscore the mark's lattice; the sync pattern decides."""
    acf = _acf(r, 1024)
    limit = min(acf.shape) / 2.0 - 2.0
    s_max = min(SCALE_RANGE[1], limit / TILE)
    if s_max <= SCALE_RANGE[0]:
        return []
    step_s, step_t = 0.008, np.radians(0.35)
    s = np.arange(SCALE_RANGE[0], s_max, step_s)
    th = np.arange(-np.radians(ANGLE_RANGE_DEG), np.radians(ANGLE_RANGE_DEG) + 1e-9, step_t)
    S, TH = np.meshgrid(s, th, indexing="ij")
    score = _lattice_score(acf, S, TH)
    found: list[tuple[float, float]] = []
    for idx in np.argsort(score, axis=None)[::-1]:
        i, j = np.unravel_index(int(idx), score.shape)
        s0, t0 = float(s[i]), float(th[j])
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


def _q(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def detect_mark(pixels: np.ndarray, key: str, *, alpha: np.ndarray | None = None) -> Detection:
    """Look for a mark made with ``key``; see the module docstring for the method."""
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3) or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError("pixels must be an (H, W, 1) or (H, W, 3) uint8/uint16 array")
    lay = _layout(key)
    r = _residual(pixels, alpha)
    candidates = [(1.0, 0.0)]
    if min(r.shape) >= 2 * SCALE_RANGE[0] * TILE + 8:
        for cand in _find_lattices(r):
            if abs(cand[0] - 1.0) > 1e-3 or abs(cand[1]) > 1e-4:
                candidates.append(cand)
    n_candidates = len(candidates)
    ref_spec = np.conj(np.fft.rfft2(lay.reference))

    def sync(res: np.ndarray, scale: float, angle: float):
        folded = _fold(res, scale, angle)
        corr = np.fft.irfft2(np.fft.rfft2(folded) * ref_spec, s=(TILE, TILE))
        sd = corr.std()
        z = float((corr.max() - corr.mean()) / sd) if sd > 0 else 0.0
        return z, folded, np.unravel_index(int(np.argmax(corr)), corr.shape)

    if len(candidates) > 1 and r.size > RANK_CROP**2:
        # rank the lattices on a centre crop, then measure the best on the whole image
        h, w = r.shape
        y0, x0 = (h - min(h, RANK_CROP)) // 2, (w - min(w, RANK_CROP)) // 2
        crop = r[y0:y0 + RANK_CROP, x0:x0 + RANK_CROP]
        candidates = [max(candidates, key=lambda c: sync(crop, *c)[0])]
    best = None
    for scale, angle in candidates:
        z, folded, shift = sync(r, scale, angle)
        if best is None or z > best[0]:
            best = (z, scale, angle, folded, shift)
    z, scale, angle, folded, (dy, dx) = best
    n_tests = n_candidates * TILE * TILE
    p_value = min(1.0, n_tests * _q(z))
    aligned = np.roll(folded, (-dy, -dx), axis=(0, 1))
    spec = np.fft.rfft2(aligned)
    soft = np.real(spec[lay.bit_rows, lay.bit_cols] * np.conj(lay.bit_phase)).sum(axis=1)
    soft = soft / (np.abs(soft).mean() + 1e-12)
    bits = viterbi_decode(soft, PAYLOAD_BITS + CRC_BITS)
    payload = np.packbits(bits[:PAYLOAD_BITS]).tobytes()
    crc = int.from_bytes(np.packbits(bits[PAYLOAD_BITS:]).tobytes(), "big")
    crc_ok = crc == crc16(payload)
    found = bool(z >= Z_THRESHOLD and crc_ok)
    return Detection(found, payload if found else None, z, p_value, scale, math.degrees(angle), crc_ok)
