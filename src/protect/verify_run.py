"""``protect verify`` on files: pair originals with protected copies, measure,
write the JSON and the visual report.

Files are read and written through ``io.py`` only; the measuring is
``verify.py``.  Each pair is measured in its own ``try``: a pair that cannot
be read or compared costs one line and counts as a failure.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import numpy as np

from . import __version__
from . import io as pio
from .arrays import data_range_of
from .files import SUFFIX, describe_error, discover
from .declutter import ATTACKS, attack_names
from .report import SHEET_ATTACKS, contact_sheet, render_html, sheet_filename
from .verify import (
    SURROGATE_CROP,
    PairReport,
    Surrogate,
    Thresholds,
    finite_median,
    flatten_8bit,
    median_by_attack,
    verify_pair,
)

__all__ = ["pair_files", "VerifyRun", "run_verify", "load_surrogate"]


def _counterpart(candidate: Path) -> Path | None:
    """``candidate`` itself, or the same name with another image extension
    (``--format`` changed it), or with the ``_protected`` suffix."""
    stems = [candidate.with_suffix(""), candidate.with_name(candidate.stem + SUFFIX)]
    for stem in stems:
        for ext in [candidate.suffix, *sorted(pio.EXTENSIONS)]:
            p = stem.with_name(stem.name + ext)
            if p.is_file():
                return p
    return None


def pair_files(original: Path, protected: Path) -> Iterator[tuple[str, Path, Path | None]]:
    """(name, original file, protected file or None) for two files or two folders.

    Folders are matched by relative path (the layout ``protect`` writes);
    a protected file may have another image extension or the
    ``_protected`` suffix.
    """
    if original.is_dir() != protected.is_dir():
        raise ValueError("give two files or two folders")
    if not original.is_dir():
        yield original.name, original, protected
        return
    for job in discover([original], out=protected):
        yield job.rel.as_posix(), job.src, _counterpart(job.dst)


def load_surrogate(weights: Path | None, *, enabled: bool, crop: int = SURROGATE_CROP) -> Surrogate:
    """The TAEF2 encoder of ``weights`` (default: the shared ones), or a :class:`Surrogate`
    without one that says why (turned off, torch or the weights missing)."""
    if not enabled:
        return Surrogate(note="turned off with --no-surrogate", crop=crop)
    from . import surrogate

    try:
        enc = surrogate.load_encoder(weights)
    except surrogate.SurrogateUnavailable as exc:
        return Surrogate(note=str(exc), crop=crop)
    used = weights if weights is not None else surrogate.default_weights()
    return Surrogate(enc, weights=str(used), crop=crop)


@dataclass
class VerifyRun:
    """The outcome of ``protect verify``: reports, failures, exit code."""

    reports: list[PairReport] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    failures: dict[str, list[str]] = field(default_factory=dict)  # threshold misses by name
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if (self.errors or any(self.failures.values())) else 0

    def to_json(self) -> dict:
        summary = {f: median_by_attack(self.reports, f) for f in ("survival", "footprint_ratio")}
        return {
            "version": __version__,
            "settings": self.settings,
            "attacks": {n: ATTACKS[n].summary for n in self.settings.get("attacks", [])},
            "pairs": [r.to_json() | {"failures": self.failures.get(r.name, [])} for r in self.reports],
            "errors": [{"name": n, "reason": why} for n, why in self.errors],
            "median": {
                "psnr": finite_median([r.psnr for r in self.reports]),
                "ssimulacra2": finite_median([r.ssimulacra2 for r in self.reports]),
                "ciede2000_mean": finite_median([r.ciede2000_mean for r in self.reports]),
                "survival": summary["survival"],
                "footprint_ratio": summary["footprint_ratio"],
            },
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
        }


def _first_frame(path: Path, max_pixels: int) -> tuple[pio.Frame, int]:
    img = pio.read_image(path, max_pixels=max_pixels)
    return img.frames[0], len(img.frames)


def run_verify(
    original: Path,
    protected: Path,
    *,
    attacks: list[str] | None = None,
    thresholds: Thresholds | None = None,
    surrogate: Surrogate | None = None,
    seed: int = 0,
    report_dir: Path | None = None,
    max_pixels: int = pio.DEFAULT_MAX_PIXELS,
    on_pair: Callable[[str, PairReport | None, str | None], None] | None = None,
) -> VerifyRun:
    """Verify every pair (the latent footprint with ``surrogate``, when it has an encoder);
    call ``on_pair(name, report, error)`` as each finishes."""
    t0 = time.perf_counter()
    surrogate = surrogate or Surrogate()
    measured = surrogate.encoder is not None
    thresholds = thresholds or Thresholds()
    names = attacks or attack_names()
    run = VerifyRun(settings={
        "original": str(original), "protected": str(protected), "attacks": names, "seed": seed,
        "surrogate": surrogate.weights if measured else None,
        "surrogate_crop": surrogate.crop if measured else None,
        "machine": f"{platform.machine()} {platform.system()}",
    })
    sheets: dict[str, str] = {}
    sheet_sizes: dict[str, tuple[int, int]] = {}
    keep = SHEET_ATTACKS if report_dir is not None else ()
    for name, src, dst in pair_files(Path(original), Path(protected)):
        try:
            if dst is None:
                raise pio.InputError("no protected counterpart found")
            fo, n_frames = _first_frame(src, max_pixels)
            fp, _ = _first_frame(dst, max_pixels)
            if fo.pixels.shape != fp.pixels.shape:
                raise pio.InputError(f"size or channels differ from the original: {fo.pixels.shape} vs "
                                     f"{fp.pixels.shape} ({dst})")
            pixels_p = fp.pixels if fp.pixels.dtype == fo.pixels.dtype else _same_depth(fp.pixels, fo.pixels.dtype)
            rep = verify_pair(fo.pixels, pixels_p, name=name, alpha=fo.alpha, attacks=names,
                              surrogate=surrogate, seed=seed, keep=keep)
            if n_frames > 1:
                rep.footprint_note = (rep.footprint_note or "") + " (animated: first frame only)"
            if report_dir is not None:
                data_range = data_range_of(fo.pixels.dtype)
                sheet = contact_sheet(rep, flatten_8bit(fo.pixels, fo.alpha, data_range),
                                      flatten_8bit(pixels_p, fo.alpha, data_range))
                rel = "sheets/" + sheet_filename(name)
                pio.write_image(report_dir / rel, pio.ImageFile([pio.Frame(sheet)], "PNG"))
                sheets[name] = rel
                sheet_sizes[name] = (sheet.shape[1], sheet.shape[0])
            rep.images.clear()
            run.reports.append(rep)
            run.failures[name] = rep.failures(thresholds)
            if on_pair:
                on_pair(name, rep, None)
        except Exception as exc:  # noqa: BLE001 - one bad pair must not stop the others
            reason = describe_error(exc) if not isinstance(exc, ValueError) else str(exc)
            run.errors.append((name, reason))
            if on_pair:
                on_pair(name, None, reason)
    run.seconds = time.perf_counter() - t0
    if report_dir is not None:
        page = render_html(run.reports, sheets, title=f"protect verify: {original} vs {protected}",
                           failures=run.failures, settings={k: v for k, v in run.settings.items() if k != "attacks"},
                           thresholds_given=thresholds.given, sheet_sizes=sheet_sizes)
        pio.atomic_write_bytes(report_dir / "index.html", page.encode("utf-8"))
    return run


def _same_depth(pixels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A protected copy saved at another bit depth, brought to the original's."""
    if dtype == np.uint8:
        return np.clip(np.rint(pixels.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return pixels.astype(np.uint16) * np.uint16(257)


def write_json(path: Path, run: VerifyRun) -> None:
    pio.atomic_write_bytes(path, (json.dumps(run.to_json(), indent=2) + "\n").encode())
