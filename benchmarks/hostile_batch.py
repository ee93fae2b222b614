"""A batch over a folder of odd and hostile files (issue 13's acceptance run).

    python benchmarks/hostile_batch.py [--workers 2] [--keep DIR]

Generates the folder (tests/hostile.py: ordinary files in every layout, odd
names and orientations, APNG, multipage and 16-bit TIFF, OpenCV TIFFs, big and
corrupt EXIF, IPTC, a 2000-frame GIF, a pixel bomb, truncated and fake files,
a symlink loop, a FIFO, /dev/zero...), puts a file and a folder protect did
not write where two outputs go, runs ``protect`` on it twice, and checks:
exit 1, exactly one error line per bad file naming it, every good file
protected, every output decodes (all its frames), the rerun skips every good
file.  Prints the figures; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hostile import make_folder  # noqa: E402
from PIL import Image  # noqa: E402


def _run(folder: Path, workers: int, report: Path, key_file: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "protect", str(folder), "--workers", str(workers), "--key-file",
                          str(key_file), "--json", str(report)], capture_output=True, text=True, env=env,
                         timeout=1800)
    return res, time.perf_counter() - t0


def _lines(stderr: str, prefix: str) -> list[str]:
    return [x.strip() for x in re.split(r"[\r\n]", stderr) if x.strip().startswith(prefix)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="build the folder here and keep it (default: a temporary folder)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="protect-hostile-"))
    folder = base / "odd"
    kinds = make_folder(folder)
    out = base / "odd_protected"
    out.mkdir()
    (out / "rgb.png").write_bytes((folder / "rgb.png").read_bytes())  # the artist's own copy, in the way
    (out / "photo.jpg").mkdir()  # a folder in the way
    kinds["rgb.png"] = kinds["photo.jpg"] = "bad"
    key = base / "key.txt"
    key.write_text("hostile-batch key\n")
    good = sorted(k for k, v in kinds.items() if v == "good")
    bad = sorted(k for k, v in kinds.items() if v == "bad")

    res, seconds = _run(folder, args.workers, base / "run1.json", key)
    rep = json.loads((base / "run1.json").read_text())
    status = {str(Path(f["src"]).relative_to(folder)): f for f in rep["files"]}
    errors, notes = _lines(res.stderr, "error:"), _lines(res.stderr, "note:")
    problems = []
    if res.returncode != 1:
        problems.append(f"exit code {res.returncode}, expected 1")
    if "Traceback" in res.stderr:
        problems.append("a traceback was printed")
    if len(errors) != len(bad):
        problems.append(f"{len(errors)} error lines for {len(bad)} bad files")
    for name in bad:
        shown = str(folder / name).splitlines()[0]
        if status.get(name, {}).get("status") != "failed":
            problems.append(f"bad file {name!r} not failed: {status.get(name, {}).get('status')}")
        elif sum(shown in e for e in errors) < 1:
            problems.append(f"no error line names {name!r}")
    decoded = 0
    for name in good:
        f = status.get(name)
        if f is None or f["status"] != "protected":
            problems.append(f"good file {name!r}: {f and (f['status'], f['reason'])}")
            continue
        try:
            with Image.open(f["dst"]) as im:
                n = getattr(im, "n_frames", 1)
                for i in range(n):
                    im.seek(i)
                    im.load()
                assert im.size == (f["width"], f["height"]), (im.size, f["width"], f["height"])
            decoded += 1
        except Exception as exc:  # noqa: BLE001
            problems.append(f"output of {name!r} does not decode: {exc}")
    res2, seconds2 = _run(folder, args.workers, base / "run2.json", key)
    rep2 = json.loads((base / "run2.json").read_text())
    if rep2["skipped"] != len(good) or rep2["protected"] != 0 or rep2["failed"] != len(bad):
        problems.append(f"rerun: {rep2['skipped']} skipped, {rep2['protected']} protected, {rep2['failed']} failed")
    leftovers = [p for p in out.rglob("*.protect-tmp")]
    if leftovers:
        problems.append(f"temp files left: {leftovers}")

    print(f"hostile batch: {len(kinds)} files ({len(good)} good, {len(bad)} bad), {args.workers} workers")
    print(f"  run 1: exit {res.returncode}, {rep['protected']} protected, {rep['failed']} failed, "
          f"{len(errors)} error lines, {len(notes)} notes, {seconds:.1f} s")
    print(f"  outputs decoded again (every frame): {decoded}/{len(good)}")
    print(f"  run 2: exit {res2.returncode}, {rep2['skipped']} up to date, {rep2['protected']} protected, "
          f"{rep2['failed']} failed, {seconds2:.1f} s")
    for e in errors:
        print("  " + (e if len(e) < 200 else e[:197] + "..."))
    for n in notes:
        print("  " + (n if len(n) < 200 else n[:197] + "..."))
    if problems:
        print("PROBLEMS:")
        for p in problems:
            print("  " + p)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
