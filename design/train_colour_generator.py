"""Offline design of protect's colour generator (algorithm ``gen16c-ss2-v2``).

The successor of the first luma generator (``train_generator.py``,
gen16-taef2-v1, now in the git history only; issue 12): the same block-grid
network, but trained for latent shift per unit of *perceived* visibility
instead of per unit of (weighted) MSE.  The corpus, the held-out images and
the attacks come from ``corpus_data.py``.

Generator, for an sRGB image in [0, 1] (H and W multiples of 8):

* analysis per 8x8 block: the orthonormal DCT of luma (64 channels), the
  block means of two chroma signals (R - Y, B - Y), and ``Z_CHANNELS``
  standard-normal numbers from the artist key;
* a 1x1 layer and ReLU, a 3x3 layer over the block grid and ReLU;
* every block's hidden vector times the key's sign for that block (+-1) and
  a fixed activity gain ``var / (var + ACTIVITY_TAU^2)`` of the block's luma
  variance: two keys give unrelated fields, and flat colour (white paper,
  cel fills, smooth skin) gets next to nothing;
* synthesis: each hidden channel weights a 16x16 RGB atom, overlap-added with
  stride 8.  Every atom is multiplied by a fixed separable sin^2 window whose
  shifted copies sum to 1, so there are no block edges ("stamps").

Objective (minimised), with each crop's perturbation d first scaled to the
amplitude a* at which SSIMULACRA2 is TARGET_SCORE (see :func:`losses`):
``-log |E(A(clip(x + d))) - E(A(x))|`` (TAEF2, an expectation over attacks A
as in the first generator's script) ``+ log D(x, x + d) / k`` with D the distortion of
a differentiable SSIMULACRA 2 (``ssimulacra2_torch.py``) and k its slope in
amplitude, ``+ PEAK * log L4(d / JND)`` ``+ FLAT * (share of d's energy on flat
pixels)``, which keeps the pattern off flat colour where the eye finds it
first, ``+ DIVERSITY * corr(d_key1, d_key2)^2``.  Only d's shape is learned;
its size is set at protect time by the strength.

Usage::

    python design/train_colour_generator.py --steps 100 --out src/protect/kernels/generator.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
import ssimulacra2_torch  # noqa: E402
from corpus_data import ATTACKS, HELD_OUT, Data, apply_attack, corpus_files, native_side  # noqa: E402

from protect.kernels.rec601 import LUMA_B, LUMA_G, LUMA_R  # noqa: E402
from protect.pipeline import GEN_TEXTURE_TAU, GEN_TEXTURED_WEIGHT, PAPER_LUMA, dct_basis  # noqa: E402
from protect.surrogate import load_encoder  # noqa: E402

SEED = 20261201
Z_CHANNELS = 4
HIDDEN = 16
FLAT = 12.0  # weight of the flat-energy share
FLAT_TAU = 0.02  # local luma std (0-1) below which a pixel counts as flat
PEAK = 1.0  # weight of log L4(d / JND): no single pixel may stand out where SSIMULACRA2 does not look
JND_LEVELS = 1.5  # just-noticeable change on flat colour, 8-bit levels ...
JND_MASKING = 0.35  # ... plus this much per level of local luma standard deviation (contrast masking)
DIVERSITY = 1.0
ACTIVITY_TAU = 2.0 / 255.0  # block luma std at which a block's gain is halfway between FLOOR and 1
ACTIVITY_FLOOR = 0.2  # gain of a nearly flat block (skin shading, scanned paper); exactly flat blocks get 0
TARGET_SCORE = 86.0  # the SSIMULACRA2 at which the latent shift is maximised (iso-visibility)
CROP = 160  # side of the held-out crops the training curve is measured on
# Side the encoder sees in training, at native size and after the ½ / ¼ downscales (crops of 2x and 4x
# are cut for those).  The shipped weights were trained at 256: until the shared data module took a
# crop argument, native_side() used the first generator's CROP (256), not CROP above.
TRAIN_SIDE = 256
BATCH = 4
LR = 2e-3


def window16() -> np.ndarray:
    """sin^2 window of 16 taps; copies shifted by 8 sum to exactly 1."""
    u = np.arange(16)
    w = np.sin(np.pi * (u + 0.5) / 16) ** 2
    return np.outer(w, w).astype(np.float32)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of (N, 3, H, W), as the kernels compute it (protect.kernels.rec601)."""
    return LUMA_R * x[:, 0:1] + LUMA_G * x[:, 1:2] + LUMA_B * x[:, 2:3]


def chroma_means(x: torch.Tensor) -> torch.Tensor:
    y = luma(x)
    return F.avg_pool2d(torch.cat([x[:, 0:1] - y, x[:, 2:3] - y], 1), 8)


class ColourGenerator(nn.Module):
    def __init__(self, z_channels: int = Z_CHANNELS, hidden: int = HIDDEN):
        super().__init__()
        d = torch.from_numpy(dct_basis())
        self.register_buffer("dct", torch.einsum("ui,vj->uvij", d, d).reshape(64, 1, 8, 8))
        self.register_buffer("window", torch.from_numpy(window16()))
        self.l1 = nn.Conv2d(64 + 2 + z_channels, hidden, 1)
        self.l2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.atoms = nn.Parameter(torch.randn(hidden, 3, 16, 16) * 0.05)
        self.flat_gain = 0.0  # training; load_exported(..., runtime=True) sets protect's FLAT_GAIN

    def windowed_atoms(self) -> torch.Tensor:
        return self.atoms * self.window

    def forward(self, x: torch.Tensor, z: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """``z`` (N, Z, H/8, W/8) key noise; ``sign`` (N, 1, H/8, W/8) the key's +-1 per block."""
        y = luma(x)
        f = F.conv2d(y, self.dct, stride=8)
        h = F.relu(self.l1(torch.cat([f, chroma_means(x), z], 1)))
        h = F.relu(self.l2(h))
        var = f[:, 1:].pow(2).sum(1, keepdim=True) / 64.0  # AC energy / 64 ...
        flat = (F.max_pool2d(y, 8) + F.max_pool2d(-y, 8)) == 0  # ... and exactly 0 on a constant block
        var = torch.where(flat, torch.zeros_like(var), var)
        h = h * (sign * activity(var, f[:, :1] / 8.0, self.flat_gain))
        return F.conv_transpose2d(h, self.windowed_atoms(), stride=8, padding=4)


def activity(var: torch.Tensor, mean: torch.Tensor, flat_gain: float = 0.0) -> torch.Tensor:
    """Fixed per-block gain from the block's luma variance: ACTIVITY_FLOOR on nearly flat blocks, rising
    to 1 on texture and edges; on an exactly flat block ``flat_gain`` (0 in training; protect's
    ``pipeline.FLAT_GAIN`` at run time) unless its mean luma is that of white paper or black ink
    (outside ``pipeline.PAPER_LUMA``), which gets 0."""
    g = ACTIVITY_FLOOR + (1.0 - ACTIVITY_FLOOR) * var / (var + ACTIVITY_TAU**2)
    lo, hi = PAPER_LUMA
    flat = torch.where((mean > lo) & (mean < hi), torch.full_like(g, flat_gain), torch.zeros_like(g))
    return torch.where(var > 0, g, flat)


def flat_weight(x: torch.Tensor) -> torch.Tensor:
    y = luma(x)
    m = F.avg_pool2d(y, 9, 1, 4, count_include_pad=False)
    v = (F.avg_pool2d(y * y, 9, 1, 4, count_include_pad=False) - m * m).clamp_min(0)
    return 1.0 / (1.0 + v / FLAT_TAU**2)


def jnd(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel just-noticeable change (0-1 scale): a floor on flat colour, rising with local contrast."""
    y = luma(x)
    m = F.avg_pool2d(y, 9, 1, 4, count_include_pad=False)
    sd = (F.avg_pool2d(y * y, 9, 1, 4, count_include_pad=False) - m * m).clamp_min(1e-12).sqrt()
    return JND_LEVELS / 255.0 + JND_MASKING * sd


def draw(gen, x, rng):
    z = torch.randn(x.shape[0], Z_CHANNELS, x.shape[2] // 8, x.shape[3] // 8, generator=rng)
    sign = torch.randint(0, 2, (x.shape[0], 1, x.shape[2] // 8, x.shape[3] // 8), generator=rng) * 2.0 - 1.0
    d = gen(x, z, sign)
    return d / d.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-20).sqrt()


LADDER = (0.7, 1.8, 4.5, 11.0)  # RMS levels tried to find each image's iso-visibility amplitude


@torch.no_grad()
def iso_amplitude(x: torch.Tensor, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the RMS (0-1 scale) at which ``x + a * unit`` scores TARGET_SCORE in SSIMULACRA2,
    and ``k = d log(distortion) / d log(a)`` there (log-linear interpolation along LADDER)."""
    amps = torch.tensor(LADDER) / 255.0
    s = torch.stack([ssimulacra2_torch.distortion(x, (x + a * unit).clamp(0, 1)).float() for a in amps], 1)
    sc = ssimulacra2_torch.score_of_distortion(s)
    la, ls = amps.log(), s.clamp_min(1e-9).log()
    out_a, out_k = [], []
    for i in range(x.shape[0]):
        j = int((sc[i] >= TARGET_SCORE).sum()) - 1  # last amplitude still above the target
        j = min(max(j, 0), len(LADDER) - 2)
        t = ((sc[i, j] - TARGET_SCORE) / (sc[i, j] - sc[i, j + 1]).clamp_min(1e-6)).clamp(-1.0, 2.0)
        out_a.append((la[j] + t * (la[j + 1] - la[j])).exp())
        out_k.append(((ls[i, j + 1] - ls[i, j]) / (la[j + 1] - la[j])).clamp(0.5, 3.0))
    return torch.stack(out_a), torch.stack(out_k)


def losses(gen, enc, x_big, attack, rng, offset):
    """Terms of the objective on one batch, at each image's iso-visibility amplitude.

    ``x_big`` is 8 px larger than the crop the encoder sees, and the crop
    starts at ``offset``: the encoder's 8-px grid never lines up with the
    generator's, so the generator cannot learn patterns that only work in one
    phase of the grid (they show as stripes and do not survive a crop).

    The perturbation's shape d (unit RMS) is scaled to the amplitude a* at
    which SSIMULACRA2 is TARGET_SCORE (found without gradient).  Since the
    latent shift is about linear in the amplitude and the distortion goes as
    a^k, a shape change that raises the distortion by a factor f lowers a*
    by f^(1/k); the objective ``log shift(a* d) - log(D(a* d)) / k`` (a*, k
    held fixed) has exactly that gradient: it maximises the shift at equal
    SSIMULACRA2, not at equal RMS."""
    d = draw(gen, x_big, rng)
    corr2 = (d * draw(gen, x_big, rng)).mean(dim=(1, 2, 3)).pow(2)
    oy, ox = offset
    n = x_big.shape[2] - 8
    x = x_big[:, :, oy:oy + n, ox:ox + n]
    d = d[:, :, oy:oy + n, ox:ox + n]
    d = d / d.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-20).sqrt()
    amp, k = iso_amplitude(x, d.detach())
    d = d * amp.view(-1, 1, 1, 1)
    p = (x + d).clamp(0, 1)
    with torch.no_grad():
        z0 = enc(apply_attack(attack, x))
    s = (enc(apply_attack(attack, p)) - z0).flatten(1).norm(dim=1)
    vis = ssimulacra2_torch.distortion(x, p).float().clamp_min(1e-9) ** (1.0 / k)
    fw = flat_weight(x)
    flat_share = (fw * d * d).mean(dim=(1, 2, 3)) / (d * d).mean(dim=(1, 2, 3))
    peak = ((d / jnd(x)) ** 4).mean(dim=(1, 2, 3)).clamp_min(1e-20) ** 0.25 / amp
    return s, vis, flat_share, corr2, peak


def _gauss_iso_shift(enc, x, rng):
    g = torch.randn(x.shape, generator=rng)
    g = g / g.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
    amp, _ = iso_amplitude(x, g)
    return (enc((x + g * amp.view(-1, 1, 1, 1)).clamp(0, 1)) - enc(x)).flatten(1).norm(dim=1)


def gaussian_ratio(gen, enc, x, rng):
    """Held-out check: latent shift at SSIMULACRA2 = TARGET_SCORE over Gaussian RGB noise's (median)."""
    with torch.no_grad():
        s, _, fs, _, _ = losses(gen, enc, x, "native", rng, (4, 4))
        sg = _gauss_iso_shift(enc, x[:, :, 4:-4, 4:-4], rng)
        return float((s / sg).median()), float(fs.mean())


def export(gen: ColourGenerator, path: Path, meta: dict) -> None:
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in gen.state_dict().items()}
    np.savez(
        path,
        w1=sd["l1.weight"][:, :, 0, 0],  # (hidden, 64 + 2 + z)
        b1=sd["l1.bias"],
        w2=sd["l2.weight"],  # (hidden, hidden, 3, 3)
        b2=sd["l2.bias"],
        atoms=gen.windowed_atoms().detach().numpy().astype(np.float32),  # (hidden, 3, 16, 16), window applied
        meta=np.array(json.dumps(meta)),
    )


def load_exported(path: Path, *, runtime: bool = False) -> ColourGenerator:
    """The inverse of :func:`export` (the window is already in the stored atoms); with
    ``runtime``, flat blocks get protect's ``pipeline.FLAT_GAIN`` as protect applies it."""
    with np.load(path, allow_pickle=False) as z:
        gen = ColourGenerator(z_channels=z["w1"].shape[1] - 66, hidden=z["w1"].shape[0])
        w = window16()
        sd = gen.state_dict()
        sd["l1.weight"] = torch.from_numpy(z["w1"])[:, :, None, None]
        sd["l1.bias"] = torch.from_numpy(z["b1"])
        sd["l2.weight"] = torch.from_numpy(z["w2"])
        sd["l2.bias"] = torch.from_numpy(z["b2"])
        sd["atoms"] = torch.from_numpy(z["atoms"] / w)
    gen.load_state_dict(sd)
    if runtime:
        from protect.pipeline import FLAT_GAIN

        gen.flat_gain = FLAT_GAIN
    return gen


def settings_meta(train: list[Path], steps: int) -> dict:
    """Everything needed to reproduce the weights (stored in the npz's ``meta``)."""
    return {
        "algorithm": "gen16c-ss2-v2", "seed": SEED, "steps": steps, "z_channels": Z_CHANNELS, "hidden": HIDDEN,
        "flat": FLAT, "flat_tau": FLAT_TAU, "peak": PEAK, "jnd_levels": JND_LEVELS,
        "jnd_masking": JND_MASKING, "grid_offsets": True, "activity_tau": ACTIVITY_TAU,
        "activity_floor": ACTIVITY_FLOOR, "block_sign": True,
        "target_score": TARGET_SCORE, "ladder": LADDER, "diversity": DIVERSITY, "crop": CROP,
        "train_side": TRAIN_SIDE,
        "batch": BATCH, "lr": LR, "attacks": ATTACKS, "held_out": sorted(HELD_OUT), "train": [f.name for f in train],
        "torch": torch.__version__,
        # not used in training: the run-time scaling of the field (pipeline.block_visibility_weight) that
        # AMPLITUDES_AT_FULL_STRENGTH is calibrated under; recorded so the weights say it (tests/test_generator.py)
        "textured_weight": GEN_TEXTURED_WEIGHT, "texture_tau": GEN_TEXTURE_TAU,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=HERE.parents[1] / "shared" / "corpus")
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--out", type=Path, default=Path("src/protect/kernels/generator.npz"))
    ap.add_argument("--log", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    files = corpus_files(args.corpus)
    train = [f for f in files if f.name not in HELD_OUT]
    held = [f for f in files if f.name in HELD_OUT]
    print(f"train on {len(train)} images, hold out {len(held)}", flush=True)
    data = Data(train, rng)
    held_x = Data(held, np.random.default_rng(SEED + 1)).batch(CROP + 8, 6)
    enc = load_encoder().module
    gen = ColourGenerator()
    opt = torch.optim.Adam(gen.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    gen_rng = torch.Generator().manual_seed(SEED)
    names = [a for a, _ in ATTACKS]
    probs = np.array([p for _, p in ATTACKS])
    log = args.log.open("w") if args.log else None
    t0 = time.time()
    run: list[list[float]] = []
    for step in range(args.steps + 1):
        if step % 40 == 0:
            r, fs = gaussian_ratio(gen, enc, held_x, torch.Generator().manual_seed(SEED))
            rec = {"step": step, "seconds": round(time.time() - t0, 1), "held_out_iso_ss2_ratio": r,
                   "held_out_flat_share": fs}
            print(json.dumps(rec), flush=True)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if step > 0:
                export(gen, args.out.with_suffix(".partial.npz"), {**settings_meta(train, args.steps), "step": step})
        if step == args.steps:
            break
        attack = names[rng.choice(len(names), p=probs / probs.sum())]
        x = data.batch(native_side(attack, TRAIN_SIDE) + 8, BATCH)
        offset = (int(rng.integers(8)), int(rng.integers(8)))
        s, vis, fs, corr2, peak = losses(gen, enc, x, attack, gen_rng, offset)
        loss = (-torch.log(s + 1e-12) + torch.log(vis + 1e-12) + PEAK * torch.log(peak) + FLAT * fs
                + DIVERSITY * corr2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run.append([float(loss.detach()), float(fs.detach().mean()), float(corr2.detach().mean().sqrt())])
        if step % 5 == 4:
            m = np.mean(run, 0)
            print(f"step {step + 1} loss {m[0]:.4f} flat {m[1]:.3f} keycorr {m[2]:.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
            run = []
    meta = settings_meta(train, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(gen, args.out, meta)
    print(f"wrote {args.out}", flush=True)
    if log:
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
