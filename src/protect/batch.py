"""Batch protection: one file's work, skip-if-done, parallel workers, a BatchReport.

The jobs come from :func:`protect.files.discover`, the options from
:mod:`protect.options`.  Rules (see README, "Where outputs go"; the first four
are the discovery's):

* folder ``X`` -> sibling ``X_protected/`` mirroring the tree below ``X``;
* file ``a.png`` -> ``a_protected.png`` beside it;
* with ``--out DIR`` every output keeps its relative path and file name under
  ``DIR`` (a file given directly goes to ``DIR/name``);
* discovery skips hidden files and folders, folders named ``*_protected``,
  files whose name ends in ``_protected``, the ``--out`` folder, and the
  temporary files of atomic writes, so protect never picks up its own outputs;
* protect replaces or skips only outputs it can prove it wrote: each output
  root (the ``X_protected`` folder, the ``--out`` folder, or the folder of a
  single file) holds a hidden ``.protect/`` folder with the state records
  (output size, mtime and SHA-256, source size and mtime, a digest of the
  settings), each authenticated with an HMAC under a random secret kept
  there with 0600 permissions.  Beside the outputs, so that every worker of a
  cluster and a rerun from any machine sees them.  An output is up to date
  when its record matches the file, the source and the settings: it is
  skipped unless ``--overwrite``, which makes an interrupted run resumable.
  Any other file (or folder) at an output path is a per-file error naming
  it; ``--overwrite`` replaces such a file deliberately (never a folder);
* one run at a time per output root (a lock in ``.protect/``); protect's own
  leftover temporary files there are removed when the next run starts.

Each file is processed in its own ``try``: a bad file costs one line naming
it and the reason, and the batch goes on; a worker process that dies costs
only the file it was working on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import stat
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np

from . import __version__
from . import io as pio
from .arrays import data_range_of
from .files import STATE_DIR, Job, describe_error
from .pipeline import METHODS, Settings, diff_stats, palette_colours, protect_image
from .metadata import MetadataSettings, authorship_exif, optout_xmp, strip_location_exif, strip_location_xmp
from .userdirs import private_folder
from .visible import VisibleMark, apply_visible
from .watermark import ALGORITHM as MARK_ALGORITHM
from .watermark import detect_mark, embed_mark

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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

    def fingerprint(self, mask: Path | None, secret: bytes = b"") -> str:
        """Keyed digest of every setting that changes the output bytes.

        Every field of this dataclass enters it, except those named in
        :data:`FINGERPRINT_EXCLUDED` (each with its reason), so a new option
        is part of it without anyone remembering to add it; nested settings
        (:class:`~protect.pipeline.Settings`, ``MetadataSettings``,
        ``VisibleMark``) enter field by field the same way (see
        :func:`_fingerprint_value`).  An HMAC under ``secret`` (the output
        root's state secret), the key entering only through :func:`_key_id`
        (slow and salted): the stored value says nothing about the key to
        whoever cannot read the secret, and a leaked secret still leaves a weak
        key one scrypt per guess to find.
        """
        mask_id = None
        if mask is not None:
            st = mask.stat()
            mask_id = [str(mask), st.st_size, st.st_mtime_ns]
        fields = {f.name: _fingerprint_value(getattr(self, f.name), f.name)
                  for f in dataclasses.fields(self) if f.name not in FINGERPRINT_EXCLUDED}
        payload = json.dumps([__version__, mask_id, fields], sort_keys=True)
        return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:32]


#: The :class:`Options` fields left out of the fingerprint, each with why: they never change the bytes written.
FINGERPRINT_EXCLUDED = {
    "max_pixels": "a limit: a file over it is refused, one under it is written the same whatever the limit",
    "verify": "only measures the output (SSIMULACRA2 in the report); the bytes written are the same",
}


def _fingerprint_value(value, name: str = ""):
    """A JSON value standing for ``value`` in :meth:`Options.fingerprint`: dataclasses field by
    field (recursively), bytes and arrays by a digest, the key by :func:`_key_id`, the watermark
    payload with the mark's algorithm version, a font by its file name."""
    if isinstance(value, Settings):
        d = {f.name: (_key_id(value.key) if f.name == "key" else _fingerprint_value(getattr(value, f.name), f.name))
             for f in dataclasses.fields(value)}
        d["algorithm"] = value.algorithm  # the method's version: a new algorithm never reuses an old output
        return d
    if name == "mark" and isinstance(value, bytes):
        return [MARK_ALGORITHM, value.hex()]
    if name == "c2pa" and isinstance(value, tuple):
        # the certificate chain names the signer; the private key is not digested into the state
        # (a C2PA signature differs on every run anyway)
        return hashlib.sha256(value[0]).hexdigest()[:16]
    if name == "font" and isinstance(value, str):
        return os.path.basename(value)  # a different font draws a different signature
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _fingerprint_value(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        return hashlib.sha256(a.dtype.str.encode() + repr(a.shape).encode() + a.tobytes()).hexdigest()[:16]
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(value).hexdigest()[:16]
    if isinstance(value, (tuple, list)):
        return [_fingerprint_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"the fingerprint has no rule for {name}: {type(value).__name__}")


class Status(StrEnum):
    """What became of one file.  Each member is its string (the ``status`` of ``--json``, the
    page's rows, the CSS class and message key the page picks from it), so the output is the same."""

    PROTECTED = "protected"
    SKIPPED = "skipped"  # up to date
    FAILED = "failed"
    WOULD_PROTECT = "would protect"  # a dry run


@dataclass
class FileResult:
    """The outcome for one file (one row of ``--json``)."""

    src: str
    dst: str
    status: Status  # (a string that names a member is taken as that member)
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
    note: str | None = None  # what the user should know about an output that was written ("; "-separated)
    mark_readable: bool | None = None  # with --mark: the mark was read back from the output right after embedding
    proof: dict | None = field(default=None, repr=False)  # what the state records (not in --json)
    trace: str | None = field(default=None, repr=False)  # a failure's traceback, key masked (--debug)

    def __post_init__(self) -> None:
        self.status = Status(self.status)


@dataclass
class BatchReport:
    """Counters and per-file results of a batch (black's Report, for images)."""

    results: list[FileResult] = field(default_factory=list)
    protected: int = 0
    skipped: int = 0
    failed: int = 0
    planned: int = 0
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C: the run stopped early
    left: int = 0  # files not processed because of the interruption

    def add(self, r: FileResult) -> None:
        self.results.append(r)
        if r.status == Status.PROTECTED:
            self.protected += 1
        elif r.status == Status.SKIPPED:
            self.skipped += 1
        elif r.status == Status.FAILED:
            self.failed += 1
        else:
            self.planned += 1

    @property
    def exit_code(self) -> int:
        """0 when every file succeeded (or was skipped), 1 when any failed, 130 when interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK

    def stopped_line(self) -> str:
        """What to print after Ctrl-C."""
        done = self.protected + self.skipped + self.failed
        return f"stopped: {done} done, {self.left} left \u2014 run the same command to resume"

    @property
    def in_bytes(self) -> int:
        return sum(r.in_bytes or 0 for r in self.results if r.status == Status.PROTECTED)

    @property
    def out_bytes(self) -> int:
        return sum(r.out_bytes or 0 for r in self.results if r.status == Status.PROTECTED)

    def summary(self) -> str:
        parts = [f"{self.protected} protected", f"{self.skipped} up to date", f"{self.failed} failed"]
        if self.planned:
            parts.insert(0, f"{self.planned} to protect (dry run)")
        line = ", ".join(parts)
        if self.protected and self.in_bytes:
            growth = 100.0 * (self.out_bytes / self.in_bytes - 1.0)
            line += f"; {_mb(self.in_bytes)} in -> {_mb(self.out_bytes)} out ({growth:+.1f}%)"
        written = [r for r in self.results if r.status == Status.PROTECTED]  # figures of what was written only
        psnrs = [r.psnr for r in written if r.psnr is not None and np.isfinite(r.psnr)]
        if psnrs:
            line += f"; median PSNR {float(np.median(psnrs)):.1f} dB"
        scores = [r.ssimulacra2 for r in written if r.ssimulacra2 is not None]
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
            "interrupted": self.interrupted,
            "left": self.left,
            "files": [{k: v for k, v in asdict(r).items() if k not in _NOT_IN_JSON} for r in self.results],
        }


#: FileResult fields that stay out of ``--json``: the state's proof, and the traceback (``--debug`` prints it).
_NOT_IN_JSON = ("proof", "trace")


def mask_key(text: str, key: str) -> str:
    """``text`` with the artist's key replaced by ``<key>``: every occurrence of a key of 8
    characters or more; a shorter one only where it stands alone (not inside a word: a key
    "k" must not turn "worked" into "wor<key>ed")."""
    if not key:
        return text
    if len(key) >= 8:
        return text.replace(key, "<key>")
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", "<key>", text)


def traceback_text(exc: BaseException, key: str) -> str:
    """The traceback of ``exc`` as text, the key masked (what ``--debug`` prints for a file that failed)."""
    return mask_key("".join(traceback.format_exception(exc)), key)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


# ---------------------------------------------------------------- state file

_STATE_VERSION = 1
#: The state is saved after every STATE_SAVE_EVERY protected files (and always at the end, Ctrl-C
#: included).  Where the number comes from: set by hand in the first commit (7693d37), not measured.
#: What it trades: a save rewrites and fsyncs the whole state file, so saving after every file would
#: cost time quadratic in the batch size; a run killed hard (SIGKILL, power loss) loses at most the
#: records of the last STATE_SAVE_EVERY - 1 files: the next run finds their outputs "foreign" (one
#: line each; --overwrite redoes them), never silently takes them as its own.
STATE_SAVE_EVERY = 16


@functools.lru_cache(maxsize=8)
def _key_id(key: str) -> str:
    """A digest that names the key without revealing it: scrypt (2^14, 8, 1: about
    50 ms, 16 MiB), so a dictionary attack on a weak key costs that much per guess."""
    return hashlib.scrypt(key.encode(), salt=b"protect-keyid-v1", n=2**14, r=8, p=1, dklen=16).hex()


class BatchLocked(Exception):
    """Another run holds the lock of an output root (the message is one line)."""


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_or_create_secret(folder: Path) -> bytes:
    """The root's random secret (created atomically and exclusively, 0600)."""
    path = folder / "secret"
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            return bytes.fromhex(text)
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        pass
    private_folder(folder)
    tmp = folder / f".secret.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process made one first: use theirs
        except FileExistsError:
            pass
        except OSError:  # no hard links here: replace (a race costs only re-work)
            os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


class RootState:
    """The records of one output root, in ``ROOT/.protect/state.json``."""

    def __init__(self, root: Path):
        self.root = root
        self.folder = root / STATE_DIR
        self.path = self.folder / "state.json"
        self.entries: dict[str, dict] = {}
        self._secret: bytes | None = None
        self.dirty = False
        try:
            self._secret = bytes.fromhex((self.folder / "secret").read_text(encoding="ascii").strip())
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and doc.get("version") == _STATE_VERSION and isinstance(doc.get("entries"), dict):
                self.entries = doc["entries"]
        except (OSError, ValueError, UnicodeDecodeError):
            pass

    @property
    def secret(self) -> bytes:
        """The secret, created on first need (never for a dry run)."""
        if self._secret is None:
            self._secret = _read_or_create_secret(self.folder)
        return self._secret

    def key(self, dst: Path) -> str:
        try:
            return str(dst.relative_to(self.root))
        except ValueError:
            return str(dst)

    def _mac(self, name: str, rec: dict) -> str:
        body = json.dumps([name, rec.get("src"), rec.get("dst"), rec.get("sha256"), rec.get("fp")])
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def get(self, dst: Path) -> dict | None:
        """The authenticated record for ``dst`` (None when missing or forged)."""
        name = self.key(dst)
        rec = self.entries.get(name)
        if not isinstance(rec, dict) or self._secret is None:
            return None
        if not hmac.compare_digest(str(rec.get("mac", "")), self._mac(name, rec)):
            return None
        return rec

    def put(self, dst: Path, rec: dict) -> None:
        name = self.key(dst)
        rec = dict(rec)
        rec["mac"] = self._mac(name, rec)
        self.entries[name] = rec
        self.dirty = True

    def drop(self, dst: Path) -> None:
        if self.entries.pop(self.key(dst), None) is not None:
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            private_folder(self.folder)
            doc = {"version": _STATE_VERSION, "entries": self.entries}
            pio.atomic_write_bytes(self.path, json.dumps(doc).encode(), mode=0o600)
            self.dirty = False
        except OSError:
            pass  # records that cannot be written only cost re-work (and --overwrite) next time


class State:
    """What protect wrote, with which settings: the skip-if-done records and the
    proof of ownership, one :class:`RootState` per output root (see the module docstring)."""

    def __init__(self, roots: Iterable[Path] = ()):
        self.roots: dict[Path, RootState] = {}
        for r in roots:
            self.root(r)

    @classmethod
    def for_jobs(cls, jobs: Iterable[Job]) -> State:
        return cls(sorted({j.out_root for j in jobs}))

    def root(self, root: Path) -> RootState:
        key = Path(os.path.abspath(root))
        if key not in self.roots:
            self.roots[key] = RootState(key)
        return self.roots[key]

    def _of(self, job: Job) -> tuple[RootState, Path]:
        return self.root(job.out_root), Path(os.path.abspath(job.dst))

    def check(self, job: Job, options: Options) -> tuple[str, str | None]:
        """What is at ``job.dst``: ("absent" | "current" | "ours" | "foreign" | "blocked", reason).

        "current": protect wrote it, from this very source with these settings;
        "ours": protect wrote it (the source or settings changed since);
        "foreign": a file protect cannot prove it wrote (replaced only with --overwrite);
        "blocked": a folder or a special file (never replaced).
        """
        try:
            st = os.lstat(job.dst)
        except FileNotFoundError:
            return "absent", None
        except OSError as exc:
            if exc.errno == 36:  # ENAMETOOLONG
                return "blocked", (f"the output name is too long for the file system "
                                   f"({len(os.fsencode(job.dst.name))} bytes; use --out DIR to keep the "
                                   "original name)")
            return "blocked", f"cannot check the output path {job.dst}: {exc.strerror or exc}"
        if stat.S_ISDIR(st.st_mode):
            return "blocked", f"a folder is in the way of the output {job.dst}; move it away"
        if stat.S_ISLNK(st.st_mode):
            return "foreign", (f"the output path {job.dst} is a symlink protect did not make; "
                               "move it away, or pass --overwrite to replace the link")
        if not stat.S_ISREG(st.st_mode):
            return "blocked", f"the output path {job.dst} is a special file; move it away"
        rs, dst = self._of(job)
        rec = rs.get(dst)
        if rec is None or rec.get("dst") != _stamp(st) or rec.get("sha256") != sha256_file(job.dst):
            return "foreign", (f"{job.dst} exists and protect did not write it (or it was changed since); "
                               "move it away, or pass --overwrite to replace it")
        try:
            src_stamp = _stamp(os.stat(job.src))
        except OSError:
            return "ours", None
        if rec.get("src") == src_stamp and rec.get("fp") == options.fingerprint(job.mask, rs.secret):
            return "current", None
        return "ours", None

    def record(self, job: Job, result: FileResult, options: Options) -> None:
        """Record a written output from the proof its worker returned."""
        if result.proof is None:
            return
        rs, dst = self._of(job)
        try:
            rs.put(dst, {**result.proof, "fp": options.fingerprint(job.mask, rs.secret)})
        except OSError:
            pass

    def adopt(self, job: Job, options: Options) -> bool:
        """Record the regular file now at ``job.dst`` as written by this run (for a worker
        killed between its atomic replace and its report); False when there is none."""
        try:
            st = os.lstat(job.dst)
            if not stat.S_ISREG(st.st_mode):
                return False
            proof = {"src": _stamp(os.stat(job.src)), "dst": _stamp(st), "sha256": sha256_file(job.dst)}
        except OSError:
            return False
        self.record(job, FileResult(str(job.src), str(job.dst), Status.PROTECTED, proof=proof), options)
        return True

    def forget(self, job: Job) -> None:
        rs, dst = self._of(job)
        rs.drop(dst)

    def save(self) -> None:
        for rs in self.roots.values():
            rs.save()


class OutputLocks:
    """One exclusive lock per output root (``ROOT/.protect/lock``), held for a run."""

    def __init__(self, roots: Iterable[Path]):
        self.roots = sorted({Path(os.path.abspath(r)) for r in roots})
        self._fds: list[int] = []

    def __enter__(self) -> OutputLocks:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            return self
        try:
            for root in self.roots:
                folder = root / STATE_DIR
                private_folder(folder)
                fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    try:
                        holder = os.read(fd, 64).decode("ascii", "replace").strip()
                    except OSError:
                        holder = ""
                    os.close(fd)
                    who = f" (pid {holder})" if holder.isdigit() else ""
                    raise BatchLocked(f"another protect run{who} is writing to {root}; "
                                      "wait for it to finish, then run the same command again") from None
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self._fds.append(fd)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for fd in self._fds:
            try:
                os.close(fd)  # closing releases the flock
            except OSError:
                pass
        self._fds = []


# ---------------------------------------------------------------- processing


def _with_metadata(img: pio.ImageFile, settings: MetadataSettings) -> tuple[pio.ImageFile, str | None]:
    """``img`` with the opt-out XMP and authorship EXIF merged into what it had."""
    xmp, replaced = optout_xmp(img.xmp, settings)
    exif = authorship_exif(img.exif, settings)
    note = "its XMP could not be parsed and was replaced" if replaced else None
    return replace(img, xmp=xmp, exif=exif), note


def prepare_metadata(img: pio.ImageFile, settings: MetadataSettings, notes: list[str]) -> pio.ImageFile:
    """``img`` with the location removed when asked (``--strip-location``)."""
    if not settings.strip_location:
        return img
    exif, _ = strip_location_exif(img.exif)
    xmp, _ = strip_location_xmp(img.xmp)
    return replace(img, exif=exif, xmp=xmp)


def _dst_seen(path: Path) -> tuple[int, int] | None:
    try:
        return tuple(_stamp(os.lstat(path)))  # type: ignore[return-value]
    except FileNotFoundError:
        return None


def _holds(path: Path, digest: str) -> bool:
    """True when ``path`` is a regular file whose SHA-256 is ``digest``."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode) and sha256_file(path) == digest
    except OSError:
        return False


def protect_file(job: Job, options: Options) -> FileResult:
    """Protect one file; never raises for a bad input (status "failed" instead).

    The source is stamped when read and checked again before the output is
    written; the encoded output must decode again; the output path must hold
    what :func:`plan` saw there.  On success ``result.proof`` carries what the
    state records: the source's and output's (size, mtime) and the output's SHA-256.
    """
    t0 = time.perf_counter()
    res = FileResult(src=str(job.src), dst=str(job.dst), status=Status.FAILED)
    notes: list[str] = []
    try:
        img = pio.read_image(job.src, max_pixels=options.max_pixels)
        res.in_bytes = img.source.size if img.source is not None else None
        notes.extend(img.notes)
        data = _protect_decoded(img, options, res, mask=job.mask, title=job.dst.name, notes=notes)
        try:
            now = pio.file_stamp(job.src)
        except OSError:
            now = None
        if now != img.source:
            raise pio.InputError("the source changed while protect worked on it (saved over?); "
                                 "nothing was written, run again")
        digest = hashlib.sha256(data).hexdigest()
        if _dst_seen(job.dst) != job.seen and not _holds(job.dst, digest):
            # (the same bytes are this very job's output, written by a worker killed before it
            # could report: a cluster runs the task again; anything else is not replaced)
            raise pio.InputError(f"something else wrote {job.dst} while protect worked; it was not replaced")
        pio.atomic_write_bytes(job.dst, data)
        st = os.stat(job.dst)
        assert img.source is not None  # read_image(path) always stamps the file it read
        res.proof = {"src": [img.source.size, img.source.mtime_ns], "dst": _stamp(st), "sha256": digest}
        res.status = Status.PROTECTED
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        res.reason = mask_key(describe_error(exc), options.settings.key)  # the key never in a message
        res.trace = traceback_text(exc, options.settings.key)
    if notes and res.status == Status.PROTECTED:
        res.note = "; ".join(dict.fromkeys(notes))
    res.seconds = round(time.perf_counter() - t0, 4)
    return res


def _protect_decoded(img: pio.ImageFile, options: Options, res: FileResult, *, mask: Path | None,
                     title: str, notes: list[str]) -> bytes:
    """The encoded protected file for a decoded one, checked to decode again; fills ``res``'s
    figures and adds what the user should know to ``notes`` (the heart of :func:`protect_file`
    and :func:`protect_bytes`)."""
    res.width, res.height, res.frames = img.width, img.height, len(img.frames)
    region = pio.read_mask(mask, size=(img.width, img.height)) if mask is not None else None
    frames: list[pio.Frame] = []
    worst_psnr = float("inf")
    scores = []
    for fr in img.frames:
        base = fr.pixels if options.visible is None else apply_visible(fr.pixels, options.visible, alpha=fr.alpha,
                                                                       notes=notes if not frames else None)
        out, rep = protect_image(base, options.settings, alpha=fr.alpha, region=region, keep_palette=img.palette)
        if rep.note and rep.note not in notes:
            notes.append(rep.note)
        if options.mark is not None:
            out = embed_mark(out, options.mark, options.settings.key, alpha=fr.alpha)
            if res.mark_readable is None:  # self-check on the first frame: can the mark be read back?
                back = detect_mark(out, options.settings.key, alpha=fr.alpha)
                res.mark_readable = bool(back.found and back.payload == options.mark)
                if not res.mark_readable:
                    notes.append("the invisible mark cannot be read back from this picture "
                                 "(too small or too transparent to carry it)")
        # every figure in one place, of the output against the original (the visible mark and
        # the invisible one are part of what changed)
        psnr, score = _figures(fr.pixels, out, fr.alpha, ssimulacra2=options.verify)
        worst_psnr = min(worst_psnr, psnr)
        if score is not None:
            scores.append(score)
        frames.append(pio.Frame(out, fr.alpha, fr.duration))
    out_img = pio.with_frames(img, frames)
    if options.metadata.active:
        out_img, note = _with_metadata(out_img, options.metadata)
        if note:
            notes.append(note)
    out_img = prepare_metadata(out_img, options.metadata, notes)
    fmt = pio.normalise_format(options.format) if options.format else img.format
    data = pio.encode_image(out_img, format=options.format, jpeg_quality=options.jpeg_quality, notes=notes)
    if options.c2pa is not None:
        from .provenance import sign_c2pa

        data = sign_c2pa(data, fmt, cert_chain=options.c2pa[0], private_key=options.c2pa[1], title=title,
                         algorithm=options.c2pa_alg, genai_only=options.metadata.opt_out_kind == "genai")
    kept_frames = len(frames) if (len(frames) > 1 and fmt in pio._ANIMATED_FORMATS) else 1
    pio.check_decodes(data, size=(img.width, img.height), frames=kept_frames)
    res.out_bytes = len(data)
    res.size_ratio = round(res.out_bytes / res.in_bytes, 4) if res.in_bytes else None
    res.psnr = round(worst_psnr, 2) if np.isfinite(worst_psnr) else None
    res.ssimulacra2 = round(min(scores), 2) if scores else None
    return data


def _figures(original: np.ndarray, out: np.ndarray, alpha: np.ndarray | None, *,
             ssimulacra2: bool) -> tuple[float, float | None]:
    """(PSNR, SSIMULACRA2 or None) of a frame as written against the frame as it was read."""
    psnr = diff_stats(original, out)[0]
    if not ssimulacra2:
        return psnr, None
    from .metrics import ssimulacra2 as score

    return psnr, score(original, out, data_range=data_range_of(out.dtype), alpha=alpha)


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
    res = FileResult(src="<bytes>", dst="<bytes>", status=Status.FAILED, in_bytes=len(data))
    img = pio.decode_image(data, max_pixels=options.max_pixels)
    notes = list(img.notes)
    out = _protect_decoded(img, options, res, mask=None, title="image", notes=notes)
    res.note = "; ".join(dict.fromkeys(notes)) or None
    res.status = Status.PROTECTED
    res.seconds = round(time.perf_counter() - t0, 4)
    return out, res


def warm_jit(*, mark: bool = False) -> None:
    """Compile (or load from the on-disk cache) the kernels a run needs, on tiny images: every
    method's (8-bit RGB, 16-bit grey with alpha), the palette count, and the watermark's only when
    the run adds a mark."""
    tiny = np.zeros((16, 16, 3), np.uint8)
    tiny[::2] = 200
    tiny[1::4, ::3] = (10, 90, 250)
    grey16 = tiny.astype(np.uint16)[..., :1] * 257
    alpha16 = np.full((16, 16), 9, np.uint16)
    for method in METHODS:
        settings = Settings(0.5, "warm", method)
        protect_image(tiny, settings)
        protect_image(grey16, settings, alpha=alpha16)
    palette_colours(tiny, np.full((16, 16), 255, np.uint8))
    if mark:
        embed_mark(tiny, bytes(8), "warm")  # (not detect_mark: its search costs seconds even on a tiny image)


def _worker_init(mark: bool) -> None:
    # Ctrl-C at a terminal reaches the whole process group: the workers leave it to the
    # main process, which stops them (a worker never dies half-way through a write on its own).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_jit(mark=mark)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def plan(jobs: Iterable[Job], options: Options, *, overwrite: bool, state: State) -> tuple[list[Job], list[FileResult]]:
    """Split jobs into those to run and immediate results (skips, collisions, files in the way).

    The jobs returned carry ``seen``: what was at their output path, which
    :func:`protect_file` checks again before replacing it.
    """
    todo: list[Job] = []
    done: list[FileResult] = []
    seen: dict[Path, Path] = {}
    for job in jobs:
        try:
            dst_res = job.dst.resolve()
            if dst_res == job.src.resolve():
                done.append(FileResult(str(job.src), str(job.dst), Status.FAILED,
                                       reason="output would overwrite the original"))
                continue
            if dst_res in seen:
                done.append(FileResult(str(job.src), str(job.dst), Status.FAILED,
                                       reason=f"output collides with that of {seen[dst_res]}"))
                continue
            seen[dst_res] = job.src
            what, reason = state.check(job, options)
        except (OSError, RuntimeError) as exc:  # a symlink loop, a path that cannot be resolved
            why = "symlink loop" if "loop" in str(exc).lower() or getattr(exc, "errno", None) == 40 else \
                describe_error(exc)
            done.append(FileResult(str(job.src), str(job.dst), Status.FAILED, reason=f"cannot use this path: {why}"))
            continue
        if what == "blocked" or (what == "foreign" and not overwrite):
            done.append(FileResult(str(job.src), str(job.dst), Status.FAILED, reason=reason))
            continue
        if what == "current" and not overwrite:
            done.append(FileResult(str(job.src), str(job.dst), Status.SKIPPED, reason="up to date"))
            continue
        todo.append(replace(job, seen=_dst_seen(job.dst)))
    return todo, done


def _roots_of(jobs: Iterable[Job]) -> list[Path]:
    return sorted({Path(os.path.abspath(j.out_root)) for j in jobs})


def clean_leftovers(jobs: Iterable[Job]) -> int:
    """Remove protect's own temporary files left by a killed run in the output folders of ``jobs``."""
    folders = {Path(os.path.abspath(j.dst.parent)) for j in jobs} | {r / STATE_DIR for r in _roots_of(jobs)}
    return sum(pio.clean_temp_files(f) for f in folders if f.is_dir())


@contextlib.contextmanager
def _ctrl_c():
    """The first Ctrl-C raises KeyboardInterrupt (the run stops cleanly); a second one,
    while it stops, exits at once with 130 (it never hangs).  Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hits = []

    def on_sigint(signum, frame):
        hits.append(signum)
        if len(hits) > 1:
            for pool in list(_LIVE_POOLS):  # no worker outlives the run
                for p in list(getattr(pool, "_processes", {}).values()):
                    try:
                        p.kill()
                    except (OSError, AttributeError):
                        pass
            os.write(2, b"\nprotect: stopped at once (second Ctrl-C); run the same command to resume\n")
            os._exit(EXIT_INTERRUPTED)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_batch(
    jobs: list[Job],
    options: Options,
    *,
    workers: int = 1,
    overwrite: bool = False,
    dry_run: bool = False,
    on_result=None,
    progress=None,
    worker: Callable[[Job, Options], FileResult] | None = None,
    runner=None,
) -> BatchReport:
    """Protect ``jobs``; call ``on_result(FileResult)`` as each finishes.

    ``progress`` is an optional object with ``update(n)`` (a tqdm bar);
    ``worker`` replaces :func:`protect_file` (a module-level function, for
    the process pool).  ``runner(todo, options, finish)``, when given, runs
    the planned jobs instead of the local process pool and calls
    ``finish(job, FileResult)`` for each (``protect.distributed`` runs them on a
    Dask cluster this way).  Takes the lock of every output root (raises
    :class:`BatchLocked`), cleans protect's leftover temp files there, and
    on Ctrl-C stops the workers, keeps what is done and returns a report with
    ``interrupted`` set (``exit_code`` 130).
    """
    t0 = time.perf_counter()
    report = BatchReport()
    state = State.for_jobs(jobs)
    if dry_run:
        todo, immediate = plan(jobs, options, overwrite=overwrite, state=state)
        for r in immediate + [FileResult(str(j.src), str(j.dst), Status.WOULD_PROTECT) for j in todo]:
            report.add(r)
            if on_result:
                on_result(r)
            if progress is not None:
                progress.update(1)
        report.seconds = time.perf_counter() - t0
        return report
    with OutputLocks(_roots_of(jobs)), _ctrl_c():
        clean_leftovers(jobs)
        _run_locked(jobs, options, workers, overwrite, on_result, progress, worker, runner, state, report)
    report.seconds = time.perf_counter() - t0
    return report


def _run_locked(jobs, options, workers, overwrite, on_result, progress, worker, runner, state, report) -> None:
    fn = worker if worker is not None else protect_file  # looked up now: tests may replace protect_file
    _key_id(options.settings.key)  # the slow digest once, now, not inside the first record
    todo, immediate = plan(jobs, options, overwrite=overwrite, state=state)
    for r in immediate:
        report.add(r)
        if on_result:
            on_result(r)
        if progress is not None:
            progress.update(1)
    # results belong to jobs by the job itself, never by a path: the same file may be given
    # twice with two outputs
    finished: set[int] = set()  # id() of the jobs in todo that are done

    def finish(job: Job, r: FileResult) -> None:
        if r.status == Status.PROTECTED:
            state.record(job, r, options)
        elif job.seen is None or _dst_seen(job.dst) != job.seen:
            state.forget(job)  # an output protect had written is gone or replaced: its record goes too
        finished.add(id(job))  # only now: a Ctrl-C during the record leaves the file to the adoption below
        report.add(r)
        if r.status == Status.PROTECTED and report.protected % STATE_SAVE_EVERY == 0:
            state.save()
        if on_result:
            on_result(r)
        if progress is not None:
            progress.update(1)

    try:
        n = max(1, min(int(workers), len(todo)))
        if runner is not None:
            runner(todo, options, finish)
        elif n == 1:
            for job in todo:
                finish(job, fn(job, options))
        else:
            _run_pool(todo, options, n, fn, finish)
    except KeyboardInterrupt:
        report.interrupted = True
        for j in todo:
            if id(j) in finished:
                continue
            # an in-flight write that was cut short leaves no temp file behind ...
            pio.clean_temp_files(j.dst.parent, target=j.dst.name)
            # ... and one killed after its os.replace, before its result came back, left a whole
            # output (the folder is locked: nothing else wrote it) that is recorded as protect's
            if _dst_seen(j.dst) != j.seen and state.adopt(j, options):
                finished.add(id(j))
                report.add(FileResult(str(j.src), str(j.dst), Status.PROTECTED, note="finished while stopping"))
        report.left = sum(1 for j in todo if id(j) not in finished)
    finally:
        state.save()


_LIVE_POOLS: set = set()


def _new_pool(n: int, options: Options) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=n, initializer=_worker_init, initargs=(options.mark is not None,))
    _LIVE_POOLS.add(pool)
    return pool


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel what waits, kill what runs (no waiting on in-flight files)."""
    _LIVE_POOLS.discard(pool)
    procs = list(getattr(pool, "_processes", {}).values())  # the executor has no public kill
    for p in procs:
        try:
            p.kill()
        except (OSError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.join(timeout=1.0)
        except (OSError, AttributeError, AssertionError):
            pass


#: After Ctrl-C, how long files in flight may take to finish before their workers are killed.
STOP_GRACE_S = 1.0


def _crashed(job: Job) -> FileResult:
    return FileResult(str(job.src), str(job.dst), Status.FAILED,
                      reason="the worker process died on this file (killed, or out of memory: try --workers 1 "
                             "or a smaller --max-pixels); the other files went on")


def _run_pool(todo: list[Job], options: Options, n: int, fn, finish) -> None:
    """Run ``todo`` on ``n`` worker processes, at most one file in flight per worker.

    When a worker dies (the out-of-memory killer, a crash in a decoder), every
    file that was in flight is run again alone in a fresh worker: only the
    one that kills it again fails; the pool is restarted for the rest.  On
    Ctrl-C (KeyboardInterrupt in this, the main, thread) the workers are
    killed at once and the exception propagates; a second Ctrl-C exits at once.
    """
    pending = deque(todo)
    pool = _new_pool(n, options)
    empty_breaks = 0
    inflight: dict = {}
    try:
        while pending:
            inflight = {}
            suspects: list[Job] = []
            broken = False
            while (pending or inflight) and not broken:
                while pending and len(inflight) < n:
                    job = pending.popleft()
                    try:
                        inflight[pool.submit(fn, job, options)] = job
                    except BrokenProcessPool:
                        pending.appendleft(job)
                        broken = True
                        break
                if not inflight:
                    break
                done, _ = wait(inflight, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = inflight.pop(fut)
                    try:
                        r = fut.result()
                    except BrokenProcessPool:
                        suspects.append(job)
                        broken = True
                        continue
                    except Exception as exc:  # noqa: BLE001 - one file only
                        r = FileResult(str(job.src), str(job.dst), Status.FAILED,
                                       reason=mask_key(f"unexpected error in the worker: {describe_error(exc)}",
                                                       options.settings.key),
                                       trace=traceback_text(exc, options.settings.key))
                    finish(job, r)
            if not broken:
                continue
            suspects.extend(inflight.values())
            _stop_pool(pool)
            if not suspects:  # the pool died with nothing in flight (while starting)
                empty_breaks += 1
                if empty_breaks > 3:
                    while pending:
                        job = pending.popleft()
                        finish(job, FileResult(str(job.src), str(job.dst), Status.FAILED,
                                               reason="the worker processes keep dying on start; try --workers 1"))
                    return
            for job in suspects:  # alone, so that only the file that kills its worker fails
                solo = _new_pool(1, options)
                try:
                    r = solo.submit(fn, job, options).result()
                except BrokenProcessPool:
                    r = _crashed(job)
                finally:
                    _stop_pool(solo)
                finish(job, r)
            pool = _new_pool(n, options)
    except KeyboardInterrupt:
        try:  # files in flight get a moment to finish (and be recorded); then the workers are killed
            done, _ = wait(inflight, timeout=STOP_GRACE_S)
            for fut in done:
                try:
                    finish(inflight[fut], fut.result())
                except Exception:  # noqa: BLE001 - a file that did not finish is simply left
                    pass
        finally:
            _stop_pool(pool)
        raise
    else:
        pool.shutdown(wait=True)
        _LIVE_POOLS.discard(pool)
