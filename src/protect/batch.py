"""Batch protection: discovery, skip-if-done, parallel workers, a Report.

Rules (see README, "Where outputs go"):

* folder ``X`` -> sibling ``X_protected/`` mirroring the tree below ``X``;
* file ``a.png`` -> ``a_protected.png`` beside it;
* with ``--out DIR`` every output keeps its relative path and file name under
  ``DIR`` (a file given directly goes to ``DIR/name``);
* discovery skips hidden files and folders, folders named ``*_protected``,
  files whose name ends in ``_protected``, the ``--out`` folder, and the
  temporary files of atomic writes, so protect never picks up its own outputs;
* an output is up to date when it exists, the source has not changed since
  it was written, and the settings are the same (recorded in a small hidden
  state file, ``.protect-state.json``, in each output folder, so every
  machine that sees the outputs, e.g. the workers of a cluster and a rerun
  from another client, sees the record too; without a record, an output
  newer than its source counts as up to date).  Up-to-date outputs are
  skipped unless ``--overwrite``; that makes an interrupted run resumable.

Each file is processed in its own ``try``: a bad file costs one line naming
it and the reason, and the batch goes on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import __version__
from . import io as pio
from .pipeline import Settings, diff_stats, protect_image
from .metadata import MetadataSettings, authorship_exif, optout_xmp
from .provenance import ProvenanceError
from .visible import VisibleMark, apply_visible
from .watermark import ALGORITHM as MARK_ALGORITHM
from .watermark import detect_mark, embed_mark

SUFFIX = "_protected"

#: Name of the skip-if-done record kept in every output folder (hidden, so
#: discovery never takes it for an input and file browsers hide it).
STATE_NAME = ".protect-state.json"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Job:
    """One file to protect."""

    src: Path
    dst: Path
    rel: Path  # path relative to the input root it was found under (for masks, reports)
    mask: Path | None = None


@dataclass(frozen=True)
class Options:
    """Everything a worker needs besides the job (picklable)."""

    settings: Settings
    format: str | None = None  # None: same as the input
    jpeg_quality: int = 95
    max_pixels: int | None = pio.DEFAULT_MAX_PIXELS
    verify: bool = False
    mark: bytes | None = None  # 8-byte payload of the invisible watermark, or None
    metadata: MetadataSettings = MetadataSettings()  # opt-out XMP (on by default), author, copyright
    visible: VisibleMark | None = None  # a visible signature or logo, drawn before the noise
    c2pa: tuple[bytes, bytes] | None = None  # (certificate chain PEM, private key PEM) to sign a C2PA manifest
    c2pa_alg: str = "es256"

    def fingerprint(self, mask: Path | None) -> str:
        """Digest of every setting that changes the output bytes.

        The key enters only through :func:`key_id` (a slow, salted digest),
        never in clear; the result is stored in the state file beside the
        outputs, never in the images.
        """
        key_id = _key_id(self.settings.key)
        mask_id = None
        if mask is not None:
            st = mask.stat()
            mask_id = [str(mask), st.st_size, st.st_mtime_ns]
        payload = json.dumps(
            [__version__, self.settings.algorithm, self.settings.strength, key_id, self.format, self.jpeg_quality, mask_id,
             [MARK_ALGORITHM, self.mark.hex()] if self.mark is not None else None,
             [self.metadata.opt_out, self.metadata.author, self.metadata.copyright],
             _visible_id(self.visible),
             hashlib.sha256(self.c2pa[0]).hexdigest()[:16] if self.c2pa is not None else None]
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass
class FileResult:
    """The outcome for one file (one row of ``--json``)."""

    src: str
    dst: str
    status: str  # "protected", "skipped", "failed", "would protect"
    reason: str | None = None
    in_bytes: int | None = None
    out_bytes: int | None = None
    size_ratio: float | None = None
    psnr: float | None = None
    ssimulacra2: float | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    seconds: float | None = None
    note: str | None = None  # something the user should know about an output that was written
    mark_readable: bool | None = None  # with --mark: the mark was read back from the output right after embedding


@dataclass
class Report:
    """Counters and per-file results of a batch (black's Report, for images)."""

    results: list[FileResult] = field(default_factory=list)
    protected: int = 0
    skipped: int = 0
    failed: int = 0
    planned: int = 0
    seconds: float = 0.0

    def add(self, r: FileResult) -> None:
        self.results.append(r)
        if r.status == "protected":
            self.protected += 1
        elif r.status == "skipped":
            self.skipped += 1
        elif r.status == "failed":
            self.failed += 1
        else:
            self.planned += 1

    @property
    def exit_code(self) -> int:
        """0 when every file succeeded (or was skipped), 1 when any failed."""
        return EXIT_FAILED if self.failed else EXIT_OK

    @property
    def in_bytes(self) -> int:
        return sum(r.in_bytes or 0 for r in self.results if r.status == "protected")

    @property
    def out_bytes(self) -> int:
        return sum(r.out_bytes or 0 for r in self.results if r.status == "protected")

    def summary(self) -> str:
        parts = [f"{self.protected} protected", f"{self.skipped} up to date", f"{self.failed} failed"]
        if self.planned:
            parts.insert(0, f"{self.planned} to protect (dry run)")
        line = ", ".join(parts)
        if self.protected and self.in_bytes:
            growth = 100.0 * (self.out_bytes / self.in_bytes - 1.0)
            line += f"; {_mb(self.in_bytes)} in -> {_mb(self.out_bytes)} out ({growth:+.1f}%)"
        psnrs = [r.psnr for r in self.results if r.psnr is not None and np.isfinite(r.psnr)]
        if psnrs:
            line += f"; median PSNR {float(np.median(psnrs)):.1f} dB"
        scores = [r.ssimulacra2 for r in self.results if r.ssimulacra2 is not None]
        if scores:
            line += f", median SSIMULACRA2 {float(np.median(scores)):.1f}"
        return line + f"; {self.seconds:.1f} s"

    def to_json(self) -> dict:
        return {
            "version": __version__,
            "protected": self.protected,
            "skipped": self.skipped,
            "failed": self.failed,
            "planned": self.planned,
            "in_bytes": self.in_bytes,
            "out_bytes": self.out_bytes,
            "size_ratio": (self.out_bytes / self.in_bytes) if self.in_bytes else None,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "files": [asdict(r) for r in self.results],
        }


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


# ------------------------------------------------------------------ discovery


def is_protect_output(path: Path) -> bool:
    """True for names protect writes (``*_protected*`` and temp files)."""
    return path.stem.endswith(SUFFIX) or path.name.endswith(pio.TEMP_SUFFIX)


def _output_name(src: Path, fmt: str | None) -> str:
    suffix = pio.extension_for(fmt, src.suffix) if fmt else src.suffix
    return src.stem + suffix


def _within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def _walk_images(root: Path, exclude: Path | None) -> Iterator[Path]:
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
            for src in _walk_images(given, exclude):
                rel = src.relative_to(given)
                dst = dest_root / rel.parent / _output_name(src, fmt)
                yield Job(src, dst, rel, _find_mask(mask, rel))
        else:
            rel = Path(given.name)
            if out is not None:
                dst = out / _output_name(given, fmt)
            else:
                dst = given.with_name(given.stem + SUFFIX + Path(_output_name(given, fmt)).suffix)
            yield Job(given, dst, rel, _find_mask(mask, rel))


# ---------------------------------------------------------------- state file


@functools.lru_cache(maxsize=8)
def _key_id(key: str) -> str:
    """A digest that names the key in the state file without revealing it.

    The state file sits beside the outputs, which get published, so the
    digest is scrypt (2^14, 8, 1: about 50 ms, 16 MiB), not a fast hash: a
    dictionary attack on a weak key costs that much per guess.
    """
    return hashlib.scrypt(key.encode(), salt=b"protect-keyid-v1", n=2**14, r=8, p=1, dklen=16).hex()


class State:
    """What was written, with which settings: the skip-if-done record.

    One JSON file, :data:`STATE_NAME`, in every output folder, mapping each
    output's file name to the source and output stamps (size, mtime) and the
    settings fingerprint.  It lives beside the outputs so that any machine
    seeing them sees it (cluster workers, a rerun from another client).  The
    client alone reads and writes it, atomically; losing it is harmless (see
    the module docstring).
    """

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, dict]] = {}
        self._dirty: set[Path] = set()

    @classmethod
    def for_jobs(cls, jobs: list[Job]) -> State:  # noqa: ARG003 - folders are loaded as they are met
        return cls()

    def _entries(self, folder: Path) -> dict[str, dict]:
        entries = self._folders.get(folder)
        if entries is None:
            try:
                entries = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
                if not isinstance(entries, dict):
                    entries = {}
            except (OSError, ValueError):
                entries = {}
            self._folders[folder] = entries
        return entries

    @staticmethod
    def _stamp(p: Path) -> list[int]:
        st = p.stat()
        return [st.st_size, st.st_mtime_ns]

    def up_to_date(self, job: Job, fingerprint: str) -> bool:
        try:
            dst_stamp = self._stamp(job.dst)
            src_stamp = self._stamp(job.src)
        except OSError:
            return False
        dst = job.dst.resolve()
        rec = self._entries(dst.parent).get(dst.name)
        if rec is None:
            return dst_stamp[1] >= src_stamp[1]
        return rec == {"src": src_stamp, "dst": dst_stamp, "fp": fingerprint}

    def record(self, job: Job, fingerprint: str) -> None:
        dst = job.dst.resolve()
        try:
            rec = {"src": self._stamp(job.src), "dst": self._stamp(dst), "fp": fingerprint}
        except OSError:
            return
        self._entries(dst.parent)[dst.name] = rec
        self._dirty.add(dst.parent)

    def save(self) -> None:
        for folder in sorted(self._dirty):
            try:
                pio.atomic_write_bytes(folder / STATE_NAME, json.dumps(self._folders[folder]).encode())
            except OSError:
                pass  # a record that cannot be written only costs re-work next time
        self._dirty.clear()


# ---------------------------------------------------------------- processing


def _visible_id(mark: VisibleMark | None) -> list | None:
    if mark is None:
        return None
    logo = hashlib.sha256(mark.logo.tobytes()).hexdigest()[:16] if mark.logo is not None else None
    font = os.path.basename(mark.font) if mark.font else None  # a different font draws a different signature
    return [mark.text, logo, mark.position, mark.opacity, mark.scale, font]


def _with_metadata(img: pio.ImageFile, settings: MetadataSettings) -> tuple[pio.ImageFile, str | None]:
    """``img`` with the opt-out XMP and authorship EXIF merged into what it had."""
    xmp, replaced = optout_xmp(img.xmp, settings)
    exif = authorship_exif(img.exif, settings)
    note = "its XMP could not be parsed and was replaced" if replaced else None
    return replace(img, xmp=xmp, exif=exif), note


def describe_error(exc: BaseException) -> str:
    """The one-line reason shown to the user for a file that failed."""
    if isinstance(exc, (pio.InputError, ProvenanceError)):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (try --workers 1, or a smaller image)"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"unexpected error: {type(exc).__name__}: {exc}"


def protect_file(job: Job, options: Options) -> FileResult:
    """Protect one file; never raises for a bad input (status "failed" instead)."""
    t0 = time.perf_counter()
    res = FileResult(src=str(job.src), dst=str(job.dst), status="failed")
    try:
        res.in_bytes = job.src.stat().st_size
        img = pio.read_image(job.src, max_pixels=options.max_pixels)
        data = _protect_decoded(img, options, res, mask=job.mask, title=job.dst.name)
        pio.atomic_write_bytes(job.dst, data)
        res.status = "protected"
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        res.reason = describe_error(exc)
    res.seconds = round(time.perf_counter() - t0, 4)
    return res


def _protect_decoded(img: pio.ImageFile, options: Options, res: FileResult, *, mask: Path | None,
                     title: str) -> bytes:
    """The encoded protected file for a decoded one; fills ``res``'s figures (the heart of
    :func:`protect_file` and :func:`protect_bytes`)."""
    res.width, res.height, res.frames = img.width, img.height, len(img.frames)
    region = pio.read_mask(mask, size=(img.width, img.height)) if mask is not None else None
    frames = []
    worst_psnr = float("inf")
    scores = []
    notes: list[str] = []
    for fr in img.frames:
        base = fr.pixels if options.visible is None else apply_visible(fr.pixels, options.visible, alpha=fr.alpha,
                                                                       notes=notes if not frames else None)
        out, rep = protect_image(base, options.settings, alpha=fr.alpha, region=region)
        if options.mark is not None:
            out = embed_mark(out, options.mark, options.settings.key, alpha=fr.alpha)
            rep.psnr = diff_stats(fr.pixels, out)[0]
            if res.mark_readable is None:  # self-check on the first frame: can the mark be read back?
                back = detect_mark(out, options.settings.key, alpha=fr.alpha)
                res.mark_readable = bool(back.found and back.payload == options.mark)
                if not res.mark_readable:
                    notes.append("the invisible mark cannot be read back from this picture "
                                 "(too small or too transparent to carry it)")
        worst_psnr = min(worst_psnr, rep.psnr)
        if options.verify:
            from .metrics import ssimulacra2

            scores.append(ssimulacra2(fr.pixels, out, data_range=255 if out.dtype == np.uint8 else 65535,
                                      alpha=fr.alpha))
        frames.append(pio.Frame(out, fr.alpha, fr.duration))
    out_img = pio.with_frames(img, frames)
    if options.metadata.active:
        out_img, res.note = _with_metadata(out_img, options.metadata)
    if notes:
        res.note = "; ".join([*notes, *([res.note] if res.note else [])])
    data = pio.encode_image(out_img, format=options.format, jpeg_quality=options.jpeg_quality)
    if options.c2pa is not None:
        from .provenance import sign_c2pa

        data = sign_c2pa(data, pio.normalise_format(options.format) if options.format else img.format,
                         cert_chain=options.c2pa[0], private_key=options.c2pa[1], title=title,
                         algorithm=options.c2pa_alg)
    res.out_bytes = len(data)
    res.size_ratio = round(res.out_bytes / res.in_bytes, 4) if res.in_bytes else None
    res.psnr = round(worst_psnr, 2) if np.isfinite(worst_psnr) else None
    res.ssimulacra2 = round(min(scores), 2) if scores else None
    return data


def protect_bytes(data: bytes, settings: Settings | Options | None = None, key: str | None = None
                  ) -> tuple[bytes, FileResult]:
    """Protect an image file held in memory: encoded bytes in, encoded bytes out.

    For engines that bring their own I/O (Spark, Ray Data, Beam, a web
    service).  The output has the input's format (unless ``Options.format``)
    and its metadata, exactly as ``protect FILE`` would write it: the same
    bytes for the same input, settings and key, on every machine.

    ``settings`` is a :class:`~protect.pipeline.Settings` (strength, method)
    or a full :class:`Options` (format, quality, marks, metadata); the key is
    ``key``, else the one in ``settings``, else ``PROTECT_KEY`` or the key
    file (never generated here).  Returns the bytes and a :class:`FileResult`
    (sizes, PSNR, dimensions, seconds); a bad input raises
    :class:`protect.io.InputError` with a one-line reason.
    """
    t0 = time.perf_counter()
    options = settings if isinstance(settings, Options) else Options(settings if settings is not None else Settings())
    key = key or options.settings.key
    if not key:
        from .userdirs import resolve_key

        found = resolve_key(None, create=False)
        if found is None:
            raise ValueError("protect_bytes needs a key: pass key=..., or set PROTECT_KEY")
        key = found.key
    options = replace(options, settings=replace(options.settings, key=key))
    res = FileResult(src="<bytes>", dst="<bytes>", status="failed", in_bytes=len(data))
    img = pio.decode_image(data, max_pixels=options.max_pixels)
    out = _protect_decoded(img, options, res, mask=None, title="image")
    res.status = "protected"
    res.seconds = round(time.perf_counter() - t0, 4)
    return out, res


def warm_jit(*, mark: bool = False) -> None:
    """Compile (or load from the on-disk cache) the kernels a run needs, on a tiny image;
    the watermark's only when the run adds a mark."""
    tiny = np.zeros((16, 16, 3), np.uint8)
    tiny[::2] = 200
    protect_image(tiny, Settings(0.5, "warm"))
    if mark:
        embed_mark(tiny, bytes(8), "warm")
    protect_image(tiny.astype(np.uint16)[..., :1], Settings(0.5, "warm"), alpha=np.full((16, 16), 9, np.uint16))


def _worker_init(mark: bool) -> None:
    warm_jit(mark=mark)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def plan(jobs: Iterable[Job], options: Options, *, overwrite: bool, state: State) -> tuple[list[Job], list[FileResult]]:
    """Split jobs into those to run and immediate results (skips, collisions, originals)."""
    todo: list[Job] = []
    done: list[FileResult] = []
    seen: dict[Path, Path] = {}
    for job in jobs:
        dst_res = job.dst.resolve()
        if dst_res == job.src.resolve():
            done.append(FileResult(str(job.src), str(job.dst), "failed", reason="output would overwrite the original"))
            continue
        if dst_res in seen:
            done.append(FileResult(str(job.src), str(job.dst), "failed",
                                   reason=f"output collides with that of {seen[dst_res]}"))
            continue
        seen[dst_res] = job.src
        if not overwrite and state.up_to_date(job, options.fingerprint(job.mask)):
            done.append(FileResult(str(job.src), str(job.dst), "skipped", reason="up to date"))
            continue
        todo.append(job)
    return todo, done


def run_batch(
    jobs: list[Job],
    options: Options,
    *,
    workers: int = 1,
    overwrite: bool = False,
    dry_run: bool = False,
    on_result=None,
    progress=None,
    runner=None,
) -> Report:
    """Protect ``jobs``; call ``on_result(FileResult)`` as each finishes.

    ``progress`` is an optional object with ``update(n)`` (a tqdm bar).
    ``runner(todo, options, finish)``, when given, runs the planned jobs
    instead of the local process pool and calls ``finish(FileResult)`` for
    each (``protect.distributed`` runs them on a Dask cluster this way).
    """
    t0 = time.perf_counter()
    report = Report()
    state = State.for_jobs(jobs)
    todo, immediate = plan(jobs, options, overwrite=overwrite, state=state)
    for r in immediate:
        report.add(r)
        if on_result:
            on_result(r)
        if progress is not None:
            progress.update(1)
    if dry_run:
        for job in todo:
            r = FileResult(str(job.src), str(job.dst), "would protect")
            report.add(r)
            if on_result:
                on_result(r)
            if progress is not None:
                progress.update(1)
        report.seconds = time.perf_counter() - t0
        return report

    by_src = {str(j.src): j for j in todo}

    def finish(r: FileResult) -> None:
        report.add(r)
        if r.status == "protected":
            state.record(by_src[r.src], options.fingerprint(by_src[r.src].mask))
            if report.protected % 16 == 0:
                state.save()
        if on_result:
            on_result(r)
        if progress is not None:
            progress.update(1)

    try:
        workers = max(1, min(int(workers), len(todo)))
        if runner is not None:
            runner(todo, options, finish)
        elif workers == 1:
            for job in todo:
                finish(protect_file(job, options))
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                     initargs=(options.mark is not None,)) as pool:
                futures = {pool.submit(protect_file, job, options): job for job in todo}
                for fut in as_completed(futures):
                    job = futures[fut]
                    try:
                        r = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a crashed worker fails its file only
                        r = FileResult(str(job.src), str(job.dst), "failed", reason=f"worker crashed: {exc}")
                    finish(r)
    finally:
        state.save()
    report.seconds = time.perf_counter() - t0
    return report
