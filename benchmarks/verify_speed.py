"""Speed of ``protect verify`` on one 1-megapixel pair, with a baseline from the same run.

    python benchmarks/verify_speed.py [--repeat 3] [--surrogate]

Prints the median time of ``verify_pair`` (visibility metrics + every
declutter attack on the original and the protected image + survival), the
goal being under 10 s without the surrogate; the time of running the attack
suite once on one image (the floor, since verify needs it twice) and their
ratio; the time of each stage.  With ``--surrogate`` (torch and the TAEF2
weights), also the time with the latent footprint on a 512 px crop.

The 1 MP image is the collage of the samples used by ``speed.py``, resized
to 1000 x 1000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
from speed import illustration, median_time  # noqa: E402

from protect import Settings, protect_image  # noqa: E402
from protect.declutter import ATTACKS, apply_attack  # noqa: E402
from protect.metrics import ciede2000, psnr, ssim, ssimulacra2  # noqa: E402
from protect.verify import Surrogate, verify_pair  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median of ``repeat`` runs (the warm-up run is done by the caller once)."""
    return median_time(fn, repeat) if repeat > 1 else _once(fn)


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--surrogate", action="store_true", help="also time the TAEF2 footprint")
    args = ap.parse_args()

    img = cv2.resize(illustration(2048), (1000, 1000), interpolation=cv2.INTER_AREA)
    out, _ = protect_image(img, Settings(0.4, "bench"))
    verify_pair(img[:64, :64], out[:64, :64], attacks=["none"])  # imports, first calls

    print(f"protect verify on one 1000x1000 pair (median of {args.repeat})")
    total = timed(lambda: verify_pair(img, out), args.repeat)
    suite = timed(lambda: [apply_attack(n, img, seed=0) for n in ATTACKS], args.repeat)
    print(f"  verify, no surrogate      {total:7.2f} s   (goal < 10 s: {'met' if total < 10 else 'MISSED'})")
    print(f"  attack suite once (floor) {suite:7.2f} s   verify / suite = {total / suite:.2f}x")
    print("  stages:")
    for name, fn in [
        ("PSNR", lambda: psnr(img, out, data_range=255)),
        ("SSIM", lambda: ssim(img, out, data_range=255)),
        ("SSIMULACRA2", lambda: ssimulacra2(img, out, data_range=255)),
        ("CIEDE2000", lambda: ciede2000(img, out, data_range=255)),
    ]:
        print(f"    {name:<22} {timed(fn, args.repeat):7.3f} s")
    for n in ATTACKS:
        print(f"    attack {n:<15} {timed(lambda n=n: apply_attack(n, img, seed=0), 1):7.3f} s")
    if args.surrogate:
        from protect.surrogate import SurrogateUnavailable, load_encoder

        try:
            enc = load_encoder()
        except SurrogateUnavailable as exc:
            print(f"  surrogate skipped: {exc}")
            return
        t = timed(lambda: verify_pair(img, out, surrogate=Surrogate(enc)), 1)
        print(f"  verify with TAEF2 footprint (512 px crop, {len(ATTACKS)} attacks x 3 encodes) {t:7.2f} s")


if __name__ == "__main__":
    main()
