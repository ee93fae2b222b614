"""Speed of protect on a 2048x2048 illustration, with baselines from the same run.

    python benchmarks/speed.py [--size 2048] [--repeat 5] [--files 8]

Prints:

* kernel throughput on one core (MP/s): the default method's generator
  (features, 3x3 layer, two synthesis passes, apply; goal >= 60) and the
  texture method's luma + perceptual mask + block-DCT noise + apply, run in
  stripes as protect_image runs them, on random texture (every block live:
  the worst case) and on the illustration (flat blocks skip synthesis);
* the transform choice: block-DCT synthesis vs. NumPy FFT synthesis of
  band-limited noise of the same size, in the same run;
* end-to-end ``protect`` time per image (decode + protect + encode + atomic
  write) relative to Pillow's decode + encode of the same PNG (goal <= 1.5x);
* batch speed-up of 2 workers over 1 on ``--files`` copies (goal >= 1.8x;
  only meaningful on a machine with >= 2 free cores);
* output size against input size.

Figures are medians of ``--repeat`` runs; machines are noisy, so the goals
are checked here, not in unit tests.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from protect import pipeline as pl  # noqa: E402
from protect.batch import Options, protect_file, run_batch, warm_jit  # noqa: E402
from protect.files import Job  # noqa: E402
from protect.kernels import perturb  # noqa: E402
from protect.pipeline import Settings  # noqa: E402


def illustration(size: int) -> np.ndarray:
    """A size x size collage of the samples: flat fills, line art, painting, sky."""
    names = ["cel_flat_fills.png", "ink_line_art.png", "comic_text.png", "sky_gradient.png"]
    half = size // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    for i, n in enumerate(names):
        im = Image.open(ROOT / "samples" / n).convert("RGB").resize((half, half), Image.LANCZOS)
        y, x = divmod(i, 2)
        canvas[y * half:(y + 1) * half, x * half:(x + 1) * half] = np.asarray(im)
    return canvas


def median_time(fn, repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def kernels_once(img: np.ndarray, out: np.ndarray) -> None:
    """The kernel part of protect_image: luma, mask, noise, apply, in stripes."""
    amplitude = np.float32(pl.AMPLITUDES_AT_FULL_STRENGTH["texture"] * 0.4)
    pl.run_stripes("texture", img, seed=np.uint64(7), amplitude=amplitude, data_range=255, out=out)


def fft_noise(h: int, w: int, seed: int) -> np.ndarray:
    """Band-limited noise by FFT synthesis: the alternative transform."""
    rng = np.random.default_rng(seed)
    spec = rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fx * fx + fy * fy)
    spec *= np.exp(-0.5 * ((r - 0.25) / 0.08) ** 2)
    return np.fft.irfft2(spec, s=(h, w)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--files", type=int, default=8)
    args = ap.parse_args(argv)
    n = args.size
    mp = n * n / 1e6
    img = illustration(n)
    warm_jit()
    all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if all_cpus:
        os.sched_setaffinity(0, {min(all_cpus)})  # one core for the single-core figures
    print(f"image: {n}x{n} illustration collage of samples/ ({mp:.1f} MP), one core, median of {args.repeat}")

    out = np.empty_like(img)
    busy = np.random.default_rng(0).integers(0, 256, img.shape, dtype=np.uint8)  # texture everywhere
    t_live = median_time(lambda: kernels_once(busy, out), args.repeat)
    t_img = median_time(lambda: kernels_once(img, out), args.repeat)
    amp = np.float32(pl.AMPLITUDES_AT_FULL_STRENGTH["adversarial"] * 0.4)
    def generator_once(x: np.ndarray) -> None:
        pl.run_stripes("adversarial", x, seed=np.uint64(7), amplitude=amp, data_range=255, out=out)

    t_gen = median_time(lambda: generator_once(img), args.repeat)
    t_gen_live = median_time(lambda: generator_once(busy), args.repeat)
    settings = Settings(0.4, "bench")
    t_api = median_time(lambda: pl.protect_image(img, settings), args.repeat)
    print(f"kernel, texture everywhere   : {t_live * 1e3:7.1f} ms  {mp / t_live:6.1f} MP/s  (worst case)")
    print(f"kernel, on the illustration  : {t_img * 1e3:7.1f} ms  {mp / t_img:6.1f} MP/s  (texture method)")
    print(f"generator (default), illus.  : {t_gen * 1e3:7.1f} ms  {mp / t_gen:6.1f} MP/s  (goal >= 60)")
    print(f"generator, texture everywhere: {t_gen_live * 1e3:7.1f} ms  {mp / t_gen_live:6.1f} MP/s  (worst case)")
    print(f"protect_image (+seed, stats) : {t_api * 1e3:7.1f} ms  {mp / t_api:6.1f} MP/s")

    noise = np.empty((n, n), np.float32)
    ones = np.ones((n, n), np.float32)
    t_dct = median_time(lambda: perturb.dct_noise_kernel(np.uint64(1), pl.ATOMS, 0, 0, ones, noise), args.repeat)
    t_fft = median_time(lambda: fft_noise(n, n, 1), args.repeat)
    print(f"noise synthesis: block DCT {t_dct * 1e3:.1f} ms vs NumPy FFT {t_fft * 1e3:.1f} ms "
          f"-> DCT is {t_fft / t_dct:.1f}x faster, and tiles exactly (stripes need no halo for the noise)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "illustration.png"
        Image.fromarray(img).save(src)
        data = src.read_bytes()

        def pillow_roundtrip() -> None:
            im = Image.open(io.BytesIO(data))
            im.load()
            buf = io.BytesIO()
            im.save(buf, "PNG")

        options = Options(settings=settings)
        job = Job(src, tmp / "out.png", Path("illustration.png"))
        t_pil = median_time(pillow_roundtrip, args.repeat)
        t_e2e = median_time(lambda: protect_file(job, options), args.repeat)
        res = protect_file(job, options)
        print(f"Pillow decode+encode (PNG)   : {t_pil * 1e3:7.1f} ms")
        print(f"protect end to end (PNG)     : {t_e2e * 1e3:7.1f} ms  -> {t_e2e / t_pil:.2f}x Pillow (goal <= 1.5)")
        print(f"output size: {res.in_bytes} -> {res.out_bytes} bytes (x{res.size_ratio:.3f}), PSNR {res.psnr} dB")

        if all_cpus:
            os.sched_setaffinity(0, all_cpus)
        folder = tmp / "batch"
        folder.mkdir()
        for i in range(args.files):
            shutil.copy(src, folder / f"img{i:02d}.png")
        jobs = [Job(p, tmp / "o" / p.name, Path(p.name)) for p in sorted(folder.iterdir())]
        times = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            rep = run_batch(jobs, options, workers=workers, overwrite=True)
            times[workers] = time.perf_counter() - t0
            assert rep.failed == 0
        cores = len(all_cpus) if all_cpus else os.cpu_count()
        print(f"batch of {args.files}: 1 worker {times[1]:.2f} s, 2 workers {times[2]:.2f} s "
              f"-> speed-up {times[1] / times[2]:.2f}x (goal >= 1.8; {cores} cores available)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
