"""Which files protect works on, and how a failure on one is said.

* :func:`discover` - the :class:`Job` (source, output, region mask) for
  every image under the paths given, by the rules of "Where outputs go"
  (README): ``X/`` -> ``X_protected/``, ``a.png`` -> ``a_protected.png``,
  ``--out DIR`` keeps relative paths;
* :func:`walk_images` - the images below a folder, skipping hidden files and
  folders, protect's own outputs and temporary files;
* :func:`describe_error` - the one line shown for a file that failed.

Shared by the batch (``protect``), ``protect detect`` and ``protect verify``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import io as pio
from .provenance import ProvenanceError

__all__ = ["SUFFIX", "STATE_DIR", "Job", "discover", "walk_images", "is_protect_output", "describe_error"]

#: What protect adds to the name of an output file or folder.
SUFFIX = "_protected"
#: The hidden folder in each output root: state records, their secret, the lock.
STATE_DIR = ".protect"


@dataclass(frozen=True)
class Job:
    """One file to protect."""

    src: Path
    dst: Path
    rel: Path  # path relative to the input root it was found under (for masks, reports)
    mask: Path | None = None
    root: Path | None = None  # the output root whose .protect/ holds this output's record (default: dst's folder)
    seen: tuple[int, int] | None = None  # (size, mtime_ns) of the file at dst when planned; None: nothing there

    @property
    def out_root(self) -> Path:
        return self.root if self.root is not None else self.dst.parent


def is_protect_output(path: Path) -> bool:
    """True for names protect writes (``*_protected*`` and temp files)."""
    return path.stem.endswith(SUFFIX) or path.name.endswith(pio.TEMP_SUFFIX) or path.name == STATE_DIR


def _output_name(src: Path, fmt: str | None) -> str:
    suffix = pio.extension_for(fmt, src.suffix) if fmt else src.suffix
    return src.stem + suffix


def _within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def walk_images(root: Path, exclude: Path | None = None) -> Iterator[Path]:
    """The images below ``root`` (sorted, folder by folder), without hidden files and folders,
    ``*_protected`` folders, protect's outputs and temporary files, or the folder ``exclude``."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            sub = (here / d).resolve()
            if d.startswith(".") or d.endswith(SUFFIX) or (exclude is not None and sub == exclude):
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = here / name
            if name.startswith(".") or is_protect_output(p):
                continue
            if p.suffix.lower() in pio.EXTENSIONS:
                yield p


def _find_mask(mask: Path | None, rel: Path) -> Path | None:
    if mask is None:
        return None
    if mask.is_file():
        return mask
    base = mask / rel
    for cand in [base, base.with_suffix(".png"), *(base.with_suffix(e) for e in pio.EXTENSIONS)]:
        if cand.is_file():
            return cand
    return None


def discover(paths: Iterable[Path], *, out: Path | None = None, fmt: str | None = None,
             mask: Path | None = None) -> Iterator[Job]:
    """Yield a :class:`Job` for every image under ``paths`` (files or folders)."""
    out_res = out.resolve() if out is not None else None
    for given in paths:
        given = Path(given)
        if given.is_dir():
            root = given.resolve()
            dest_root = out if out is not None else given.parent / (given.name + SUFFIX)
            exclude = out_res if (out_res is not None and _within(out_res, root)) else None
            for src in walk_images(given, exclude):
                rel = src.relative_to(given)
                dst = dest_root / rel.parent / _output_name(src, fmt)
                yield Job(src, dst, rel, _find_mask(mask, rel), root=dest_root)
        else:
            rel = Path(given.name)
            if out is not None:
                dst = out / _output_name(given, fmt)
            else:
                dst = given.with_name(given.stem + SUFFIX + Path(_output_name(given, fmt)).suffix)
            yield Job(given, dst, rel, _find_mask(mask, rel), root=dst.parent)


def describe_error(exc: BaseException) -> str:
    """The one-line reason shown to the user for a file that failed."""
    if isinstance(exc, (pio.InputError, ProvenanceError)):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (try --workers 1, or a smaller image)"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    if isinstance(exc, OSError):
        if exc.errno == 36:  # ENAMETOOLONG
            return f"the output name is too long for the file system: {exc.filename or ''}".rstrip(": ")
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    text = " ".join(str(exc).split())
    return f"unexpected error: {type(exc).__name__}: {text}"
