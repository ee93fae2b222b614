"""The honest adversary: a purifier and a detector trained on protect's own outputs.

    pip install -e ".[adversary]"            # torch (CPU wheel: see README, "Dependencies")
    python benchmarks/adaptive_attack.py     # default mode, ~40 min on one thread; results/adaptive_attack.{json,md}
    python benchmarks/adaptive_attack.py --quick          # CI smoke run, a few minutes; results/adaptive_attack-quick.*
    python benchmarks/adaptive_attack.py --method texture # attack another method (default: pipeline.DEFAULT_METHOD)

protect is open source, so an attacker can make unlimited (original,
protected) pairs and train a network on them.  This script is that attacker,
on the CPU:

* **Purifiers**: a small residual U-Net (about 460 k parameters) trained to
  predict the original from the protected image, on 64 px crops of tiles cut
  from the training part of ``../shared/corpus`` (16 images), each tile
  protected as its own image with a fresh random key and a random strength in
  0.2-0.7.  Trained: on the attacked method (``--method``, default
  ``protect.pipeline.DEFAULT_METHOD``); on i.i.d. Gaussian noise at the same
  SSIMULACRA2 (a plain denoiser); with the wrong strength (0.7 only); on
  another method (``--other-method``); on the design variant "mix" (below);
  and, in the default mode, the first purifier fine-tuned with a TAEF2 latent
  loss (an attacker who knows the encoder).
* **Evaluation** on images and keys never trained on: the 5 held-out corpus
  images (those ``design/corpus_data.py`` holds out) and every image of
  ``samples/``, protected at full resolution with other keys, then centre
  (and, for the corpus, two random) crops.  Per crop: ``keep`` =
  |E(f(p)) - E(o)| / |E(p) - E(o)|, E the TAEF2 encoder, f the purifier,
  o the original, p the protected image (1 = nothing removed); the PSNR gain
  of f; and the **iso-visibility ratio** |E(p) - E(o)| / |E(g) - E(o)|, g
  = o plus i.i.d. Gaussian noise whose SSIMULACRA2 on the crop equals p's,
  before and after purification (p through its purifier, g through the
  Gaussian denoiser).  Purified images are rounded to 8 bits, as saved.
* **Detector**: a small CNN classifying protected vs unprotected 64 px crops
  (a third of its training tiles re-encoded as JPEG 85, 4:2:0); true- and
  false-positive rates per crop and per image (mean logit over crops) at
  several strengths, and after ``declutter`` ``repost`` (cap at 4096 px,
  JPEG 85).
* **Training curve** of the first purifier: median ``keep`` on held-out
  crops against training pairs seen and training seconds, and where removal
  (1 - keep) first reaches 50 %.
* **Design experiment ("grain")**: as "mix", but the Gaussian noise only where
  the method itself puts its pattern (its support, blurred: flat colour and
  white paper stay untouched, as with the method alone).
* **Design experiment ("mix")**: half of the method's strength (x0.7, half
  its energy) plus i.i.d. Gaussian noise, the total matched in SSIMULACRA2
  to the method alone: does an unpredictable component make the purifier's
  job harder, and what does it cost?

Everything runs on one thread (``--threads``) so that it can share a small
machine; start it with ``nice``.  It prints a skip line and exits 0 when
torch, the corpus or the TAEF2 weights are absent (CI fails on a crash, not
on a figure).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from strength_curve import image_files  # noqa: E402

from protect import io as pio  # noqa: E402
from protect.arrays import data_range_of  # noqa: E402
from protect.declutter import apply_attack, jpeg  # noqa: E402
from protect.metrics import psnr, ssimulacra2  # noqa: E402
from protect.pipeline import DEFAULT_METHOD, METHODS, Settings, protect_image  # noqa: E402
from protect.verify import finite_median, flatten_8bit  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # the skip line in main() says so
    torch = None

CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "benchmarks" / "results"
#: The corpus images the generator never trained on (design/corpus_data.HELD_OUT); never trained on here either.
HELD_OUT = ("van-gogh_starry-night.jpg", "comic-E05P01-part.png", "looking-glass_tenniel_46.png",
            "cover_just-so.jpg", "kipling_4-1.png")
TRAIN_STRENGTHS = (0.2, 0.7)
WRONG_STRENGTH = 0.7
MIX_METHOD_SCALE = 0.7  # the method's strength in "mix" (x0.7 = half its energy); Gaussian noise makes up the rest
GRAIN_SUPPORT_SIGMA = 3.0  # px: blur of the method's support (pixels it changed) that gates "grain"'s noise
STAGES = ("gaussian", "detector", "mix", "grain", "wrong", "other", "latent")  # besides the method's own purifier
CALIBRATION_LADDER = (0.1, 0.2, 0.4, 0.7)
SEED = 18


@dataclass
class Mode:
    """Sizes of one run (steps are optimiser steps of ``batch`` crops)."""

    name: str
    crop: int  # training crop side
    tile: int  # side of the tile protected as its own image
    batch: int
    steps_main: int  # attacked method, Gaussian denoiser and mix: the same budget
    steps_side: int  # wrong strength, other method
    steps_latent: int  # latent-loss fine-tune of the main purifier (0 = skip)
    detector_steps: int
    detector_batch: int
    curve_every: int
    eval_crop: int
    eval_extra_crops: int  # random crops per held-out corpus image, besides the centre
    eval_strengths: tuple[float, ...]
    detector_strengths: tuple[float, ...]
    detector_crops: int  # 64 px detector crops per image and source
    val_crops: int
    train_limit: int | None  # first N training images (None = all)
    channels: tuple[int, int, int] = (32, 64, 96)


MODES = {
    "default": Mode("default", crop=64, tile=128, batch=16, steps_main=500, steps_side=150, steps_latent=60,
                    detector_steps=300, detector_batch=32, curve_every=50, eval_crop=192, eval_extra_crops=2,
                    eval_strengths=(0.2, 0.4, 0.7), detector_strengths=(0.1, 0.2, 0.4, 0.7), detector_crops=16,
                    val_crops=12, train_limit=None),
    "quick": Mode("quick", crop=48, tile=96, batch=8, steps_main=60, steps_side=20, steps_latent=5,
                  detector_steps=40, detector_batch=16, curve_every=20, eval_crop=96, eval_extra_crops=0,
                  eval_strengths=(0.4,), detector_strengths=(0.2, 0.4), detector_crops=6, val_crops=4,
                  train_limit=6, channels=(16, 32, 48)),
}


# ----------------------------------------------------------------- images


@dataclass
class Picture:
    name: str
    group: str  # "train", "corpus" (held out) or "samples"
    pixels: np.ndarray  # native, as protect gets them
    alpha: np.ndarray | None
    data_range: float
    flat: np.ndarray = field(init=False)  # what a scraper sees: 8-bit, on white, 3 channels

    def __post_init__(self):
        self.flat = rgb(flatten_8bit(self.pixels, self.alpha, self.data_range))


def rgb(u8: np.ndarray) -> np.ndarray:
    return np.repeat(u8, 3, axis=2) if u8.shape[2] == 1 else u8


def load_picture(path: Path, group: str) -> Picture:
    fr = pio.read_image(path, max_pixels=None).frames[0]
    return Picture(path.name, group, fr.pixels, fr.alpha, data_range_of(fr.pixels.dtype))


def protect_flat(pixels, alpha, data_range, method: str, strength: float, key: str) -> np.ndarray:
    out, _ = protect_image(pixels, Settings(float(strength), key, method), alpha=alpha)
    return rgb(flatten_8bit(out, alpha, data_range))


def with_noise(base: np.ndarray, sigma: float, z: np.ndarray) -> np.ndarray:
    """``base`` (8-bit, or already float32) plus ``sigma`` times the noise draw ``z``, rounded to 8 bits as saved."""
    return np.clip(np.rint(base.astype(np.float32, copy=False) + np.float32(sigma) * z), 0, 255).astype(np.uint8)


def add_gaussian(u8: np.ndarray, sigma: float, rng: np.random.Generator, gate: np.ndarray | None = None) -> np.ndarray:
    z = rng.standard_normal(u8.shape, dtype=np.float32)
    if gate is not None:
        z *= gate
    return with_noise(u8, sigma, z)


def support_gate(o: np.ndarray, p: np.ndarray, kind: str = "support") -> np.ndarray:
    """(H, W, 1) weight in [0, 1] of "grain"'s noise, from the method's change of ``o`` into ``p``:

    * ``"support"``: where the method changed a pixel at all, blurred ``GRAIN_SUPPORT_SIGMA`` px;
    * ``"amplitude"``: the local RMS of the change (same blur), over its 95th percentile, capped at 1, so
      the noise follows the pattern's own strength (faint where the method is faint, on nearly flat shading).
    """
    import cv2

    d = p.astype(np.float32) - o.astype(np.float32)
    if kind == "support":
        changed = (np.abs(d).max(axis=2) > 0).astype(np.float32)
        return np.clip(cv2.GaussianBlur(changed, (0, 0), GRAIN_SUPPORT_SIGMA), 0.0, 1.0)[..., None]
    if kind != "amplitude":
        raise ValueError(f"unknown grain gate {kind!r}")
    rms = np.sqrt(np.maximum(cv2.GaussianBlur((d * d).mean(axis=2), (0, 0), GRAIN_SUPPORT_SIGMA), 0.0))
    ref = float(np.percentile(rms[rms > 1e-6], 95)) if np.any(rms > 1e-6) else 1.0
    return np.clip(rms / ref, 0.0, 1.0)[..., None]


def score(o: np.ndarray, p: np.ndarray) -> float:
    return float(ssimulacra2(o, p, data_range=255))


def match_sigma(o: np.ndarray, target: float, z: np.ndarray, iterations: int = 12) -> float:
    """Sigma of the fixed noise draw ``z`` whose SSIMULACRA2 on ``o`` equals ``target`` (bisection in log sigma)."""
    lo, hi = math.log(0.05), math.log(40.0)
    of = o.astype(np.float32)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        g = with_noise(of, math.exp(mid), z)
        if score(o, g) > target:  # not visible enough yet
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


# -------------------------------------------------------------- the nets

if torch is not None:

    class _Res(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.a = nn.Conv2d(c, c, 3, padding=1)
            self.b = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return x + self.b(F.relu(self.a(x)))

    def high_pass(x, gain: float = 64.0):
        """x minus its 5x5 box mean, amplified: the faint noise lives there."""
        return (x - F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, 1)) * gain

    class Purifier(nn.Module):
        """Residual U-Net, three scales: output = input + correction / 255 (the correction, in 8-bit code
        values, starts at zero).  It sees the image and its amplified high-pass: without that, and without the
        output in code values, training on a residual of about one code value stalls at the identity."""

        def __init__(self, channels=(32, 64, 96)):
            super().__init__()
            a, b, c = channels
            self.inp, self.e1 = nn.Conv2d(6, a, 3, padding=1), _Res(a)
            self.d1, self.e2 = nn.Conv2d(a, b, 3, 2, 1), _Res(b)
            self.d2, self.mid = nn.Conv2d(b, c, 3, 2, 1), _Res(c)
            self.u2, self.q2 = nn.ConvTranspose2d(c, b, 2, 2), _Res(b)
            self.u1, self.q1 = nn.ConvTranspose2d(b, a, 2, 2), _Res(a)
            self.out = nn.Conv2d(a, 3, 3, padding=1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def forward(self, x):
            h1 = self.e1(F.relu(self.inp(torch.cat([(x - 0.5) * 2, high_pass(x)], 1))))
            h2 = self.e2(F.relu(self.d1(h1)))
            h3 = self.mid(F.relu(self.d2(h2)))
            g2 = self.q2(F.relu(self.u2(h3)) + h2)
            g1 = self.q1(F.relu(self.u1(g2)) + h1)
            return x + self.out(g1) / 255.0

    class Detector(nn.Module):
        """Small CNN on the image and its high-pass: protected (logit > 0) or not, from a crop."""

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(6, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(),
            )
            self.head = nn.Linear(64, 1)

        def forward(self, x):
            return self.head(self.net(torch.cat([(x - 0.5) * 2, high_pass(x)], 1)).mean(dim=(2, 3)))[:, 0]


def to_tensor(batch_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch_u8.transpose(0, 3, 1, 2))).float() / 255.0


def purify(net, imgs_u8: np.ndarray) -> np.ndarray:
    """Run a purifier on (N, H, W, 3) uint8 crops; 8-bit result, as an attacker would save it."""
    n, h, w, _ = imgs_u8.shape
    ph, pw = (-h) % 4, (-w) % 4
    x = to_tensor(imgs_u8)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    with torch.no_grad():
        y = net(x)[:, :, :h, :w].clamp(0, 1)
    return (y * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------- training data


@dataclass
class Source:
    """How a training pair is made: ``kind`` "method", "gaussian", "mix" or "grain"."""

    kind: str
    method: str | None = None
    strengths: tuple[float, float] = TRAIN_STRENGTHS
    jpeg_share: float = 0.0  # share of tiles re-encoded as JPEG 85 (detector)
    gate: str = "support"  # "grain": how its noise is gated (support_gate's kind)


class PairMaker:
    """Fresh (original, altered) crops from random tiles of the training pictures, each tile protected
    as its own image with a new random key: unlimited pairs, as many keys as tiles."""

    def __init__(self, pictures: list[Picture], mode: Mode, sigma_of_strength, mix_sigma_of_strength, seed: int,
                 grain_sigma_of_strength=None):
        self.pictures = pictures
        self.mode = mode
        self.sigma = sigma_of_strength
        self.mix_sigma = mix_sigma_of_strength
        self.grain_sigma = grain_sigma_of_strength
        self.rng = np.random.default_rng(seed)
        self.keys_used = 0

    def _tile(self, size: int):
        pic = self.pictures[self.rng.integers(len(self.pictures))]
        h, w = pic.pixels.shape[:2]
        th, tw = min(size, h), min(size, w)
        y, x = self.rng.integers(h - th + 1), self.rng.integers(w - tw + 1)
        alpha = None if pic.alpha is None else pic.alpha[y:y + th, x:x + tw]
        return pic, pic.pixels[y:y + th, x:x + tw], alpha, pic.flat[y:y + th, x:x + tw]

    def altered(self, src: Source, pic, pixels, alpha, o, strength: float) -> np.ndarray:
        key = f"attacker-{self.rng.integers(2**62)}"
        self.keys_used += 1
        if src.kind == "method":
            return protect_flat(pixels, alpha, pic.data_range, src.method, strength, key)
        jitter = math.exp(self.rng.uniform(-0.25, 0.25))  # per-image spread of the matched sigma
        if src.kind == "gaussian":
            return add_gaussian(o, self.sigma(strength) * jitter, self.rng)
        p = protect_flat(pixels, alpha, pic.data_range, src.method, strength * MIX_METHOD_SCALE, key)
        if src.kind == "grain":
            return add_gaussian(p, self.grain_sigma(strength) * jitter, self.rng, support_gate(o, p, src.gate))
        return add_gaussian(p, self.mix_sigma(strength) * jitter, self.rng)

    def batch(self, src: Source, n: int, *, clean_share: float = 0.0):
        c, t = self.mode.crop, self.mode.tile
        xs, ys, labels = [], [], []
        while len(xs) < n:
            pic, pixels, alpha, o = self._tile(t)
            if min(o.shape[:2]) < c:
                continue
            lo, hi = src.strengths
            clean = self.rng.random() < clean_share
            p = o if clean else self.altered(src, pic, pixels, alpha, o, self.rng.uniform(lo, hi))
            if src.jpeg_share and self.rng.random() < src.jpeg_share:
                o, p = jpeg(o, quality=85), jpeg(p, quality=85)
            y, x = self.rng.integers(o.shape[0] - c + 1), self.rng.integers(o.shape[1] - c + 1)
            xs.append(p[y:y + c, x:x + c])
            ys.append(o[y:y + c, x:x + c])
            labels.append(0.0 if clean else 1.0)
        return np.stack(xs), np.stack(ys), np.array(labels, np.float32)


# ---------------------------------------------------------------- training


def latent_keep(encoder, o: np.ndarray, p: np.ndarray, f: np.ndarray) -> list[float]:
    """Per crop |E(f) - E(o)| / |E(p) - E(o)| (crops given as (N, H, W, 3) uint8)."""
    z = [encoder(x.astype(np.float32) / 255.0) for x in (o, p, f)]
    return [float(np.linalg.norm(zf - zo) / max(np.linalg.norm(zp - zo), 1e-12))
            for zo, zp, zf in zip(*z, strict=True)]


def train_purifier(name: str, src: Source, maker: PairMaker, mode: Mode, steps: int, *, seed: int,
                   val=None, encoder=None, log=print, init=None, latent_module=None, latent_weight=0.0):
    """Adam, cosine learning rate, MSE in 8-bit units.  ``val`` = (o, p) held-out crops for the curve."""
    torch.manual_seed(seed)
    net = Purifier(mode.channels) if init is None else init
    opt = torch.optim.Adam(net.parameters(), lr=1e-3 if init is None else 3e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    curve, seconds, seen = [], 0.0, 0

    def checkpoint(step):
        net.eval()
        keep = latent_keep(encoder, val[0], val[1], purify(net, val[1]))
        curve.append({"step": step, "pairs": seen, "seconds": round(seconds, 1),
                      "keep_median": float(np.median(keep))})
        log(f"  {name}: step {step} pairs {seen} {seconds:.0f} s keep {curve[-1]['keep_median']:.3f}")
        net.train()

    if val is not None:
        checkpoint(0)
    net.train()
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        p, o, _ = maker.batch(src, mode.batch)
        x, y = to_tensor(p), to_tensor(o)
        out = net(x)
        loss = F.mse_loss(out * 255.0, y * 255.0)
        if latent_module is not None:
            with torch.no_grad():
                zy = latent_module(y)
            loss = loss + latent_weight * F.mse_loss(latent_module(out), zy) * 1e4
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        seconds += time.perf_counter() - t0
        seen += len(p)
        if val is not None and (step % mode.curve_every == 0 or step == steps):
            checkpoint(step)
        elif step % 50 == 0:
            log(f"  {name}: step {step}/{steps} loss {loss.item():.3f} ({seconds:.0f} s)")
    net.eval()
    return net, {"name": name, "steps": steps, "pairs": seen, "seconds": round(seconds, 1),
                 "parameters": sum(p.numel() for p in net.parameters()), "curve": curve}


def train_detector(maker: PairMaker, src: Source, mode: Mode, *, seed: int, log=print):
    torch.manual_seed(seed)
    net = Detector()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for step in range(1, mode.detector_steps + 1):
        p, _, label = maker.batch(src, mode.detector_batch, clean_share=0.5)
        loss = F.binary_cross_entropy_with_logits(net(to_tensor(p)), torch.from_numpy(label))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            log(f"  detector: step {step}/{mode.detector_steps} loss {loss.item():.3f}")
    net.eval()
    return net, {"steps": mode.detector_steps, "pairs": mode.detector_steps * mode.detector_batch,
                 "seconds": round(time.perf_counter() - t0, 1), "parameters": sum(p.numel() for p in net.parameters())}


# ------------------------------------------------------------- calibration


def calibrate(pictures: list[Picture], method: str, mode: Mode, rng: np.random.Generator, n_tiles: int,
              grain_gate: str = "support"):
    """Gaussian sigma at the same median SSIMULACRA2 as the method (and as "mix"), per strength of a ladder,
    on training tiles of the eval crop size."""
    tiles = []
    while len(tiles) < n_tiles:
        pic = pictures[rng.integers(len(pictures))]
        h, w = pic.pixels.shape[:2]
        s = mode.eval_crop
        if min(h, w) < s:
            continue
        y, x = rng.integers(h - s + 1), rng.integers(w - s + 1)
        alpha = None if pic.alpha is None else pic.alpha[y:y + s, x:x + s]
        tiles.append((pic, pic.pixels[y:y + s, x:x + s], alpha, pic.flat[y:y + s, x:x + s]))
    rows = []
    for strength in CALIBRATION_LADDER:
        sig, mix, grain, scores = [], [], [], []
        for i, (pic, pixels, alpha, o) in enumerate(tiles):
            key = f"calibration-{i}"
            p = protect_flat(pixels, alpha, pic.data_range, method, strength, key)
            if np.array_equal(p, o):
                continue
            target = score(o, p)
            z = np.random.default_rng(i).standard_normal(o.shape, dtype=np.float32)
            sig.append(match_sigma(o, target, z))
            pm = protect_flat(pixels, alpha, pic.data_range, method, strength * MIX_METHOD_SCALE, key)
            mix.append(_match_mix_sigma(o, pm, target, z))
            grain.append(_match_mix_sigma(o, pm, target, z * support_gate(o, pm, grain_gate)))
            scores.append(target)
        rows.append({"strength": strength, "ssimulacra2_median": float(np.median(scores)),
                     "sigma": float(np.median(sig)), "mix_sigma": float(np.median(mix)),
                     "grain_sigma": float(np.median(grain))})
    return rows


def _match_mix_sigma(o: np.ndarray, pm: np.ndarray, target: float, z: np.ndarray, iterations: int = 12) -> float:
    """Sigma of Gaussian noise added on top of ``pm`` (the weaker protection) so that the sum scores ``target``."""
    if score(o, pm) <= target:
        return 0.0
    lo, hi = math.log(0.02), math.log(40.0)
    pf = pm.astype(np.float32)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        g = with_noise(pf, math.exp(mid), z)
        if score(o, g) > target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def interpolator(rows: list[dict], key: str):
    s = np.array([r["strength"] for r in rows])
    v = np.log(np.maximum([r[key] for r in rows], 1e-3))
    return lambda strength: float(np.exp(np.interp(strength, s, v)))


# --------------------------------------------------------------- evaluation


def crop_boxes(pic: Picture, side: int, extra: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    h, w = pic.flat.shape[:2]
    ch, cw = min(h, side) // 8 * 8, min(w, side) // 8 * 8
    boxes = [((h - ch) // 2, (w - cw) // 2, ch, cw)]
    for _ in range(extra):
        boxes.append((int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw))
    return boxes


def _cut(x: np.ndarray, box) -> np.ndarray:
    y, x0, h, w = box
    return x[y:y + h, x0:x0 + w]


def random_crops(x: np.ndarray, side: int, n: int, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    side = min(side, h, w)
    ys, xs = rng.integers(h - side + 1, size=n), rng.integers(w - side + 1, size=n)
    return np.stack([x[y:y + side, x0:x0 + side] for y, x0 in zip(ys, xs, strict=False)])


def _norm(a, b) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def _encode(encoder, imgs: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for i in range(0, len(imgs), 8):
        out += list(encoder(np.stack(imgs[i:i + 8]).astype(np.float32) / 255.0))
    return out


def prepare_crop(o, sources: dict[str, np.ndarray], encoder, rng: np.random.Generator) -> dict:
    """One evaluation crop: each source and its Gaussian twin (i.i.d. noise at the same SSIMULACRA2 on
    this crop), with their latent shifts; purifiers are added by :func:`purify_crop`."""
    images = {"clean": o}
    rec = {"sources": {}, "purifier_on_clean": {}}
    for name, p in sources.items():
        if np.array_equal(p, o):
            continue
        target = score(o, p)
        z = rng.standard_normal(o.shape, dtype=np.float32)
        sigma = match_sigma(o, target, z)
        g = with_noise(o, sigma, z)
        images[name], images[f"gauss|{name}"] = p, g
        rec["sources"][name] = {"ssimulacra2": target, "psnr": float(psnr(o, p, data_range=255)),
                                "twin_sigma": sigma, "twin_ssimulacra2": score(o, g),
                                "twin_psnr": float(psnr(o, g, data_range=255)), "purified": {}}
    names = list(images)
    lat = dict(zip(names, _encode(encoder, [images[n] for n in names]), strict=False))
    rec["clean_latent_norm"] = float(np.linalg.norm(lat["clean"]))
    for name, s in rec["sources"].items():
        s["shift"] = _norm(lat[name], lat["clean"])
        s["twin_shift"] = _norm(lat[f"gauss|{name}"], lat["clean"])
    return {"rec": rec, "images": images, "z_clean": lat["clean"]}


def purify_crop(crop: dict, pn: str, net, plan: dict[str, list[str]], encoder) -> None:
    """Run purifier ``pn`` on the clean crop (its own footprint), on the sources ``plan`` names it for and,
    for the Gaussian denoiser, on every Gaussian twin."""
    rec, images = crop["rec"], crop["images"]
    jobs = [("clean", None, None)]
    for name in rec["sources"]:
        if pn in plan.get(name, []):
            jobs.append((name, name, pn))
        if pn == "gaussian":
            jobs.append((f"gauss|{name}", name, "gaussian|twin"))
    outs = purify(net, np.stack([images[i] for i, _, _ in jobs]))
    zs = _encode(encoder, list(outs))
    for (_iname, name, key), f, z in zip(jobs, outs, zs, strict=False):
        shift = _norm(z, crop["z_clean"])
        if name is None:
            rec["purifier_on_clean"][pn] = shift
        else:
            rec["sources"][name]["purified"][key] = {"shift": shift,
                                                     "psnr": float(psnr(images["clean"], f, data_range=255))}


def summarise(crops: list[dict], main_purifier: dict[str, str]) -> list[dict]:
    """Medians over crops per (source, purifier): keep, PSNR gain, iso-visibility ratio before and after."""
    rows = []
    names = sorted({n for c in crops for n in c["sources"]})
    for name in names:
        recs = [c["sources"][name] for c in crops if name in c["sources"]]
        pns = sorted({pn for r in recs for pn in r["purified"] if not pn.endswith("|twin")})
        own = main_purifier.get(name)
        base = {
            "source": name, "crops": len(recs),
            "ssimulacra2": finite_median(r["ssimulacra2"] for r in recs),
            "psnr": finite_median(r["psnr"] for r in recs),
            "twin_psnr": finite_median(r["twin_psnr"] for r in recs),
            "isovis_before": finite_median(r["shift"] / max(r["twin_shift"], 1e-12) for r in recs),
            "twin_keep": finite_median(r["purified"]["gaussian|twin"]["shift"] / max(r["twin_shift"], 1e-12)
                                 for r in recs if "gaussian|twin" in r["purified"]),
            "twin_psnr_gain": finite_median(r["purified"]["gaussian|twin"]["psnr"] - r["twin_psnr"]
                                      for r in recs if "gaussian|twin" in r["purified"]),
        }
        for pn in pns:
            rr = [r for r in recs if pn in r["purified"]]
            row = dict(base, purifier=pn, own=(pn == own),
                       keep=finite_median(r["purified"][pn]["shift"] / max(r["shift"], 1e-12) for r in rr),
                       psnr_gain=finite_median(r["purified"][pn]["psnr"] - r["psnr"] for r in rr))
            row["isovis_after"] = finite_median(
                r["purified"][pn]["shift"] / max(r["purified"]["gaussian|twin"]["shift"], 1e-12)
                for r in rr if "gaussian|twin" in r["purified"])
            rows.append(row)
    return rows


def detector_rates(net, crops: dict[str, list[np.ndarray]]) -> dict:
    """Per source: share of crops (and of images, by mean logit) called protected."""
    out = {}
    for name, per_image in crops.items():
        logits = []
        for c in per_image:
            with torch.no_grad():
                logits.append(net(to_tensor(c)).numpy())
        out[name] = {"crops": int(sum(len(x) for x in logits)),
                     "images": len(logits),
                     "crop_rate": float(np.mean(np.concatenate(logits) > 0)),
                     "image_rate": float(np.mean([x.mean() > 0 for x in logits]))}
    return out


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a protected crop scores above an unprotected one (ties count half)."""
    pos, neg = np.asarray(pos), np.asarray(neg)
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


# -------------------------------------------------------------------- report


def _f(v, fmt="{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f} %"


def markdown(res: dict) -> str:
    m, meta = res["method"], res["meta"]
    lines = [f"Adaptive attacker against `--method {m}` (`{meta['algorithm']}`), mode {meta['mode']}, "
             f"{meta['date']}, {meta['machine']}, {meta['seconds'] / 60:.0f} min in all"
             + ("." if meta["complete"] else f"; INCOMPLETE, stages done: {', '.join(meta['stages_done'])}.")
             + f" `{meta['command']}`", ""]
    tr = res["training"]
    head = next((r for r in res["summary"] if r["source"] == f"{m}@0.4" and r["own"]), None)
    twin = head and head["twin_keep"]
    if head and head["keep"] is not None:
        lines += [f"**In plain words:** an attacker who trains this network on {tr[m]['pairs']} protected crops of "
                  f"{meta['train_images']} artworks ({tr[m]['seconds'] / 60:.0f} minutes of training on one thread) "
                  f"removes "
                  f"{_pct(max(0.0, 1 - head['keep']))} of the effect of `{m}` at strength 0.4 on the TAEF2 encoder "
                  f"(keep {head['keep']:.2f}); the same network trained on random noise of the same visibility "
                  f"removes {_pct(None if twin is None else max(0.0, 1 - twin))} of the noise's effect.", ""]
    lines.append(f"Purifier: residual U-Net, {tr[m]['parameters']:,} parameters, trained on {meta['train_images']} "
                 f"corpus images ({meta['crop']} px crops of {meta['tile']} px tiles, each tile protected with a new "
                 f"random key, strength 0.2-0.7). Evaluated on {meta['eval_crops']} crops ({meta['eval_crop']} px) "
                 f"of {meta['eval_images']} images never trained on (held-out corpus + samples/), unseen keys.")
    lines += ["", "| purifier (trained on) | pairs | training min (1 thread, wall) |", "|---|---|---|"]
    for name, t in tr.items():
        lines.append(f"| {name} | {t['pairs']} | {t['seconds'] / 60:.1f} |")
    lines += ["", "`keep` = |E(f(p)) - E(o)| / |E(p) - E(o)| on TAEF2 (1 = the purifier removed nothing); "
              "iso-vis = latent shift over that of i.i.d. Gaussian noise at the same SSIMULACRA2 "
              "(after: each through its own purifier, the noise through the Gaussian denoiser). Medians over crops.",
              "", "| images | purifier | SSIMULACRA2 | PSNR | keep | PSNR gain (dB) | iso-vis before | iso-vis after |"
              " Gaussian twin keep | twin PSNR gain |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["summary"]:
        lines.append(
            f"| {r['source']} | {r['purifier']}{' (own)' if r['own'] else ''} | {_f(r['ssimulacra2'], '{:.1f}')} | "
            f"{_f(r['psnr'], '{:.1f}')} | {_f(r['keep'])} | {_f(r['psnr_gain'], '{:+.2f}')} | "
            f"{_f(r['isovis_before'])} | {_f(r.get('isovis_after'))} | {_f(r['twin_keep'])} | "
            f"{_f(r['twin_psnr_gain'], '{:+.2f}')} |")
    floor = res.get("purifier_on_clean")
    if floor:
        lines += ["", "Purifier run on unprotected crops (its own footprint, as a fraction of the latent shift of "
                  f"`{m}` at 0.4, median): " + ", ".join(f"{k} {v:.2f}" for k, v in floor.items() if v is not None)]
    cv = res["curve"]
    lines += ["", f"Training curve of the `{m}` purifier (held-out crops, strength 0.4): " +
              ", ".join(f"{c['pairs']} pairs / {c['seconds'] / 60:.1f} min: keep {c['keep_median']:.2f}"
                        for c in cv["points"]),
              "", "50 % removal (keep <= 0.5): " + (
                  f"reached after {cv['half_removal']['pairs']} pairs, "
                  f"{cv['half_removal']['seconds'] / 60:.1f} min of training"
                  if cv["half_removal"] else f"not reached (best keep {cv['best_keep']:.2f})")]
    d = res["detector"] or {}
    lines += [] if not d else ["", f"Detector: {d['training']['parameters']:,}-parameter CNN, "
              f"{d['training']['pairs']} crops "
              f"(half protected at 0.2-0.7, a third JPEG 85), {d['training']['seconds'] / 60:.1f} min; "
              f"64 px crops of the held-out images; 'protected' = logit > 0; per image = mean logit over "
              f"{meta['detector_crops']} crops.", "",
              "| images | crop rate | image rate |", "|---|---|---|"]
    for name, r in d.get("rates", {}).items():
        kind = "FPR" if name.startswith("clean") else "TPR"
        lines.append(f"| {name} ({kind}) | {_pct(r['crop_rate'])} of {r['crops']} | "
                     f"{_pct(r['image_rate'])} of {r['images']} |")
    if d:
        lines.append(f"\nAUC (crops, strength 0.4): {d['auc_0.4']:.3f} PNG, {d['auc_repost']:.3f} after repost.")
    mix = res.get("mix")
    if mix and "mix" in res["training"]:
        lines += ["", f"Design experiment \"mix\" ({m} at 0.7 x strength + i.i.d. Gaussian, total SSIMULACRA2 "
                  f"matched to {m} alone): see the `mix@0.4` rows; speed {mix['seconds_method']:.2f} s "
                  f"protect + {mix['seconds_noise']:.2f} s noise on {mix['megapixels']:.1f} MP."]
    if "grain" in res["training"]:
        gate = meta.get("grain_gate", "support")
        how = (f"only on {m}'s own support, blurred {GRAIN_SUPPORT_SIGMA:g} px" if gate == "support" else
               f"scaled by the local RMS of {m}'s own change (blurred {GRAIN_SUPPORT_SIGMA:g} px, over its 95th "
               "percentile)")
        lines += ["", f"Design experiment \"grain\" (as mix, the Gaussian noise {how}; flat colour untouched; "
                  f"gate `{gate}`): see the `grain@0.4` rows."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS, help="the method attacked")
    ap.add_argument("--other-method", default=None, help="method of the 'different method' purifier")
    ap.add_argument("--quick", action="store_true", help="CI smoke run (a few minutes)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every training budget (e.g. 0.5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-latent", action="store_true", help="skip the latent-loss attacker")
    ap.add_argument("--eval-crop", type=int, default=None, help="side of the evaluation crops (default 192)")
    ap.add_argument("--eval-extra-crops", type=int, default=None,
                    help="random crops per held-out corpus image besides the centre (default 2)")
    ap.add_argument("--stages", default="all",
                    help=f"comma-separated stages besides the method's own purifier: {','.join(STAGES)} (default all)")
    ap.add_argument("--grain-gate", choices=("support", "amplitude"), default="support",
                    help="how the 'grain' experiment gates its noise (see support_gate)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    stages = set(STAGES) if args.stages == "all" else {s.strip() for s in args.stages.split(",") if s.strip()}
    if stages - set(STAGES):
        ap.error(f"unknown stage(s) {', '.join(sorted(stages - set(STAGES)))}; choose from {', '.join(STAGES)}")
    if args.no_latent:
        stages.discard("latent")
    mode = MODES["quick" if args.quick else "default"]
    if args.scale != 1.0:
        sc = lambda n: max(1, int(round(n * args.scale)))  # noqa: E731
        mode = Mode(**{**mode.__dict__, "steps_main": sc(mode.steps_main), "steps_side": sc(mode.steps_side),
                       "steps_latent": 0 if not mode.steps_latent else sc(mode.steps_latent),
                       "detector_steps": sc(mode.detector_steps)})
    if args.eval_crop or args.eval_extra_crops is not None:
        mode = Mode(**{**mode.__dict__, "eval_crop": args.eval_crop or mode.eval_crop,
                       "eval_extra_crops": mode.eval_extra_crops if args.eval_extra_crops is None
                       else args.eval_extra_crops})
    out = args.out or RESULTS / ("adaptive_attack-quick" if args.quick else "adaptive_attack")
    if torch is None:
        print("adaptive_attack: skipped: torch is not installed (pip install -e '.[adversary]')")
        return 0
    if not CORPUS.is_dir():
        print(f"adaptive_attack: skipped: no corpus at {CORPUS}")
        return 0
    from protect.surrogate import SurrogateUnavailable, load_encoder

    try:
        encoder = load_encoder(threads=args.threads)
    except SurrogateUnavailable as e:
        print(f"adaptive_attack: skipped: {e}")
        return 0
    torch.set_num_threads(args.threads)
    method = args.method
    other = args.other_method or next(m for m in METHODS if m != method)
    t_start = time.time()
    log = lambda s: print(f"[{(time.time() - t_start) / 60:5.1f} min] {s}", flush=True)  # noqa: E731

    files = image_files(CORPUS)
    train_files = [f for f in files if f.name not in HELD_OUT]
    if mode.train_limit:
        train_files = sorted(train_files, key=lambda f: f.stat().st_size)[: mode.train_limit]
    train = [load_picture(f, "train") for f in train_files]
    evals = [load_picture(f, "corpus") for f in files if f.name in HELD_OUT]
    evals += [load_picture(f, "samples") for f in image_files(ROOT / "samples")]
    if args.quick:
        evals = [e for e in evals if e.name in ("comic-E05P01-part.png", "kipling_4-1.png")] + \
                [e for e in evals if e.group == "samples"][:2]
    log(f"{len(train)} training images, {len(evals)} evaluation images; method {method}, other {other}")

    rng = np.random.default_rng(SEED)
    cal = calibrate(train, method, mode, rng, n_tiles=4 if args.quick else 12, grain_gate=args.grain_gate)
    for r in cal:
        log(f"calibration {method} {r['strength']}: SSIMULACRA2 {r['ssimulacra2_median']:.1f} = Gaussian sigma "
            f"{r['sigma']:.2f}; mix adds sigma {r['mix_sigma']:.2f}, grain {r['grain_sigma']:.2f}")
    sigma_of, mix_sigma_of = interpolator(cal, "sigma"), interpolator(cal, "mix_sigma")
    grain_sigma_of = interpolator(cal, "grain_sigma")

    # --- evaluation material (protected at full resolution, unseen keys), cut into crops
    eval_sources = [f"{method}@{s:g}" for s in mode.eval_strengths] + [f"{other}@0.4", "mix@0.4", "grain@0.4"]
    crops, val_o, val_p = [], [], []
    det_crops: dict[str, list[np.ndarray]] = {}
    det_sources = ["clean"] + [f"{method}@{s:g}" for s in mode.detector_strengths] + ["clean+repost",
                                                                                      f"{method}@0.4+repost"]
    mix_speed = None
    for k, pic in enumerate(evals):
        key = f"victim-{k}"
        erng = np.random.default_rng(SEED + 100 + k)
        boxes = crop_boxes(pic, mode.eval_crop, mode.eval_extra_crops if pic.group == "corpus" else 0, erng)
        full: dict[str, np.ndarray] = {"clean": pic.flat}
        for s in sorted(set(mode.eval_strengths) | set(mode.detector_strengths)):
            full[f"{method}@{s:g}"] = protect_flat(pic.pixels, pic.alpha, pic.data_range, method, s, key)
        full[f"{other}@0.4"] = protect_flat(pic.pixels, pic.alpha, pic.data_range, other, 0.4, key)
        t0 = time.perf_counter()
        half = protect_flat(pic.pixels, pic.alpha, pic.data_range, method, 0.4 * MIX_METHOD_SCALE, key)
        t1 = time.perf_counter()
        mixed = add_gaussian(half, mix_sigma_of(0.4), erng)
        t2 = time.perf_counter()
        mp = pic.flat.shape[0] * pic.flat.shape[1] / 1e6
        if mix_speed is None or mp > mix_speed["megapixels"]:
            mix_speed = {"megapixels": mp, "seconds_method": t1 - t0, "seconds_noise": t2 - t1}
        for _b, box in enumerate(boxes):
            o = _cut(pic.flat, box)
            src = {n: _cut(full[n], box) for n in eval_sources if n not in ("mix@0.4", "grain@0.4")}
            # mix: the weaker protection, then Gaussian noise topped up so the crop scores as the method alone
            target = score(o, src[f"{method}@0.4"])
            hc = _cut(half, box)
            z = erng.standard_normal(o.shape, dtype=np.float32)
            sig = _match_mix_sigma(o, hc, target, z)
            src["mix@0.4"] = with_noise(hc, sig, z)
            # grain: the same, the noise only on the method's support
            zg = z * support_gate(o, hc, args.grain_gate)
            gsig = _match_mix_sigma(o, hc, target, zg)
            src["grain@0.4"] = with_noise(hc, gsig, zg)
            crops.append({"image": pic.name, "group": pic.group, "box": list(box), "o": o, "src": src,
                          "mix_sigma": sig, "grain_sigma": gsig})
        if pic.group == "corpus":
            vrng = np.random.default_rng(SEED + 200 + k)
            n = max(1, mode.val_crops // sum(e.group == "corpus" for e in evals))
            side = min(96, mode.eval_crop)
            for _ in range(n):
                (box,) = crop_boxes(pic, side, 1, vrng)[1:]
                val_o.append(_cut(pic.flat, box))
                val_p.append(_cut(full[f"{method}@0.4"], box))
        drng = np.random.default_rng(SEED + 300 + k)
        full["clean+repost"] = apply_attack("repost", pic.flat)
        full[f"{method}@0.4+repost"] = apply_attack("repost", full[f"{method}@0.4"])
        for n in det_sources:
            det_crops.setdefault(n, []).append(random_crops(full[n], 64, mode.detector_crops, drng))
        del mixed
        log(f"eval image {pic.name}: {len(boxes)} crops")
    val = (np.stack(val_o), np.stack(val_p))

    # --- evaluation crops: sources, Gaussian twins and their latents, once
    log(f"preparing {len(crops)} evaluation crops (Gaussian twins matched in SSIMULACRA2)")
    prepared = []
    for i, c in enumerate(crops):
        pc = prepare_crop(c["o"], c["src"], encoder, np.random.default_rng(SEED + 400 + i))
        pc["rec"].update(image=c["image"], group=c["group"], box=c["box"], mix_sigma=c["mix_sigma"],
                         grain_sigma=c["grain_sigma"])
        prepared.append(pc)
    records = [pc["rec"] for pc in prepared]
    strengths = [f"{method}@{s:g}" for s in mode.eval_strengths]
    main_purifier = {n: method for n in strengths}
    main_purifier.update({f"{other}@0.4": other, "mix@0.4": "mix", "grain@0.4": "grain"})
    wrong = f"{method}@{WRONG_STRENGTH:g} only"
    plan: dict[str, list[str]] = {n: [method, "gaussian", wrong, other, f"{method}+latent"] for n in strengths}
    plan[f"{other}@0.4"] = [other, method, "gaussian"]
    plan["mix@0.4"] = ["mix", method, "gaussian"]
    plan["grain@0.4"] = ["grain", method, "gaussian"]

    maker = PairMaker(train, mode, sigma_of, mix_sigma_of, SEED + 1, grain_sigma_of)
    training: dict[str, dict] = {}
    detector: dict | None = None
    purifiers: list[str] = []

    def write(done: bool) -> None:
        """Results so far (every stage rewrites them, so an interrupted run still leaves what it measured)."""
        summary = summarise(records, main_purifier)
        by_group = {g: summarise([r for r in records if r["group"] == g], main_purifier)
                    for g in ("corpus", "samples")}
        ref = f"{method}@0.4"
        floor = {pn: finite_median(r["purifier_on_clean"][pn] / max(r["sources"][ref]["shift"], 1e-12)
                             for r in records if ref in r["sources"] and pn in r["purifier_on_clean"])
                 for pn in purifiers}
        points = training[method]["curve"]
        half = next((p for p in points if p["keep_median"] <= 0.5), None)
        curve = {"points": points, "half_removal": half, "best_keep": min(p["keep_median"] for p in points),
                 "val_crops": len(val[0])}
        meta = {"date": _dt.date.today().isoformat(), "mode": mode.name, "scale": args.scale, "complete": done,
                "stages_done": purifiers + (["detector"] if detector else []),
                "algorithm": Settings(0.4, "", method).algorithm,
                "machine": f"{platform.machine()} {platform.system()}, {args.threads} thread(s)",
                "torch": torch.__version__, "train_images": len(train), "train_names": [p.name for p in train],
                "eval_images": len(evals), "eval_names": [p.name for p in evals], "eval_crops": len(records),
                "eval_crop": mode.eval_crop, "crop": mode.crop, "tile": mode.tile, "batch": mode.batch,
                "detector_crops": mode.detector_crops, "keys_used": maker.keys_used, "grain_gate": args.grain_gate,
                "seconds": round(time.time() - t_start, 1),
                "command": "python benchmarks/adaptive_attack.py " + " ".join(sys.argv[1:] if argv is None else argv)}
        res = {"method": method, "other_method": other, "meta": meta, "calibration": cal, "training": training,
               "summary": summary, "by_group": by_group, "purifier_on_clean": floor, "curve": curve,
               "detector": detector, "mix": mix_speed, "crops": records}
        md = markdown(res)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(out.with_suffix(".json"))
        out.with_suffix(".md").write_text(md)
        if done:
            print(md)
        state = "complete" if done else "so far: " + ", ".join(meta["stages_done"])
        log(f"wrote {out.with_suffix('.json')} and .md ({state})")

    def stage(name: str, net, info: dict) -> None:
        training[name] = info
        purifiers.append(name)
        for pc in prepared:
            purify_crop(pc, name, net, plan, encoder)
        write(False)

    def purifier_stage(i: int, name: str, src: Source, steps: int, v=None) -> object:
        log(f"training purifier '{name}' ({steps} steps of {mode.batch})")
        net, info = train_purifier(name, src, maker, mode, steps, seed=SEED + 10 + i, val=v, encoder=encoder,
                                   log=log)
        stage(name, net, info)
        return net

    # --- stages, most important first
    main_net = purifier_stage(0, method, Source("method", method), mode.steps_main, val)
    if "gaussian" in stages:
        purifier_stage(1, "gaussian", Source("gaussian"), mode.steps_main)

    if "detector" in stages:
        log(f"training detector ({mode.detector_steps} steps of {mode.detector_batch})")
        det, det_info = train_detector(maker, Source("method", method, jpeg_share=1 / 3), mode, seed=SEED + 30,
                                       log=log)

        def logits(name):
            with torch.no_grad():
                return np.concatenate([det(to_tensor(c)).numpy() for c in det_crops[name]])

        detector = {"training": det_info, "rates": detector_rates(det, det_crops),
                    "auc_0.4": auc(logits(f"{method}@0.4"), logits("clean")),
                    "auc_repost": auc(logits(f"{method}@0.4+repost"), logits("clean+repost"))}
        write(False)

    if "mix" in stages:
        purifier_stage(2, "mix", Source("mix", method), mode.steps_main)
    if "grain" in stages:
        purifier_stage(5, "grain", Source("grain", method, gate=args.grain_gate), mode.steps_main)
    if "wrong" in stages:
        purifier_stage(3, wrong, Source("method", method, (WRONG_STRENGTH, WRONG_STRENGTH)), mode.steps_side)
    if "other" in stages:
        purifier_stage(4, other, Source("method", other), mode.steps_side)
    if mode.steps_latent and "latent" in stages:
        name = f"{method}+latent"
        log(f"fine-tuning '{method}' with a TAEF2 latent loss ({mode.steps_latent} steps) -> '{name}'")
        import copy

        net, info = train_purifier(name, Source("method", method), maker, mode, mode.steps_latent, seed=SEED + 20,
                                   init=copy.deepcopy(main_net), latent_module=encoder.module, latent_weight=1.0,
                                   log=log)
        info["pairs"] += training[method]["pairs"]
        info["seconds"] = round(info["seconds"] + training[method]["seconds"], 1)
        info["note"] = f"'{method}' purifier fine-tuned with pixel MSE + TAEF2 latent MSE (figures include both)"
        stage(name, net, info)
    write(True)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
