"""Visibility of the protection per strength: PSNR, SSIMULACRA2 and PNG growth.

    python benchmarks/strength_curve.py [--strengths 0.1,0.2,0.4,0.7,1.0] [--jobs 2] [--method texture]
                                        [--corpus ../shared/corpus] [--markdown FILE]

For every image of ``samples/`` and of the shared corpus (skipped when
absent), at full resolution, protects it at each strength (fixed key) and
measures PSNR and SSIMULACRA2 against the original (alpha: worse of black
and white backgrounds), plus the size of the protected image re-encoded
losslessly as PNG relative to the original re-encoded the same way (the
honest "noise is incompressible" figure, independent of the source format).
Prints per-set medians, 10th percentiles, and the goal check: median
SSIMULACRA2 >= 85 at strength 0.4.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from protect import io as pio  # noqa: E402
from protect.arrays import data_range_of  # noqa: E402
from protect.metrics import ssimulacra2  # noqa: E402
from protect.pipeline import Settings, protect_image  # noqa: E402

KEY = "benchmark-key"


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in pio.EXTENSIONS)


def png_size(pixels: np.ndarray, alpha: np.ndarray | None) -> int:
    """Bytes of the image as protect writes it to PNG (the size figure of every benchmark)."""
    fr = pio.Frame(pixels, alpha)
    img = pio.ImageFile([fr], "PNG")
    return len(pio.encode_image(img))


def measure(path: Path, strengths: list[float], method: str = "adversarial") -> list[dict]:
    img = pio.read_image(path, max_pixels=None)
    fr = img.frames[0]
    data_range = data_range_of(fr.pixels.dtype)
    base = png_size(fr.pixels, fr.alpha)
    rows = []
    for s in strengths:
        out, rep = protect_image(fr.pixels, Settings(s, KEY, method), alpha=fr.alpha, keep_palette=img.palette)
        rows.append({
            "file": path.name,
            "strength": s,
            "psnr": rep.psnr,
            "ssimulacra2": ssimulacra2(fr.pixels, out, data_range=data_range, alpha=fr.alpha),
            "png_growth": png_size(out, fr.alpha) / base,
            "coverage": rep.coverage,
        })
    return rows


def summarise(name: str, rows: list[dict], strengths: list[float]) -> list[str]:
    lines = [f"| {name} | strength | PSNR median (dB) | SSIMULACRA2 median | SSIMULACRA2 p10 | PNG size ratio median "
             "| max | PNG sources: median / max |",
             "|---|---|---|---|---|---|---|---|"]
    for s in strengths:
        r = [x for x in rows if x["strength"] == s]
        p = np.array([min(x["psnr"], 99.0) for x in r])
        q = np.array([x["ssimulacra2"] for x in r])
        g = np.array([x["png_growth"] for x in r])
        gp = np.array([x["png_growth"] for x in r if x["file"].lower().endswith(".png")] or [np.nan])
        lines.append(f"| {len(r)} images | {s:.1f} | {np.median(p):.1f} | {np.median(q):.1f} | "
                     f"{np.percentile(q, 10):.1f} | {np.median(g):.2f} | {np.max(g):.2f} | "
                     f"{np.median(gp):.2f} / {np.max(gp):.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strengths", default="0.1,0.2,0.4,0.7,1.0")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    ap.add_argument("--method", default="adversarial", help="perturbation method (adversarial or texture)")
    args = ap.parse_args(argv)
    strengths = [float(s) for s in args.strengths.split(",")]
    sets = {"samples": image_files(ROOT / "samples")}
    if args.corpus.is_dir():
        sets["corpus"] = image_files(args.corpus)
    else:
        print(f"(corpus not found at {args.corpus}; samples only)")
    out_lines: list[str] = []
    all_rows: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for name, files in sets.items():
            futs = [pool.submit(measure, f, strengths, args.method) for f in files]
            rows = [r for fut in futs for r in fut.result()]
            for r in rows:
                print(f"  {name:8s} {r['file'][:32]:32s} s={r['strength']:.1f} PSNR {r['psnr']:5.1f} "
                      f"SSIMULACRA2 {r['ssimulacra2']:5.1f} PNG x{r['png_growth']:.2f} cover {r['coverage']:.2f}",
                      flush=True)
            all_rows += rows
            out_lines += summarise(name, rows, strengths) + [""]
    out_lines += summarise("all", all_rows, strengths)
    text = "\n".join(out_lines)
    print(text)
    at = [x["ssimulacra2"] for x in all_rows if x["strength"] == 0.4]
    ok = True
    if at:
        med = float(np.median(at))
        ok = med >= 85.0
        print(f"\ngoal: median SSIMULACRA2 at strength 0.4 >= 85: {med:.1f} -> {'PASS' if ok else 'FAIL'}")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
