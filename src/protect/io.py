"""Reading and writing image files: the only module that touches them.

What is kept from input to output:

* pixels at their bit depth: 8-bit stays 8-bit; 16-bit PNG and TIFF stay
  16-bit (decoded with OpenCV, because Pillow silently drops 16-bit RGB to 8
  bits; 16-bit PNG is encoded with OpenCV and its metadata chunks are then
  written by this module, a 16-bit colour TIFF is written by this module);
* greyscale stays greyscale; palette and bilevel images become RGB(A)/L,
  since a palette cannot carry the perturbation;
* alpha, byte for byte;
* the ICC profile, EXIF (with the orientation applied to the pixels and the
  tag reset to 1), DPI, XMP and PNG text chunks;
* animation: every frame, per-frame durations and the loop count.

Every write is atomic: the file is encoded in memory, written to a hidden
temporary file in the destination folder, flushed, and moved into place
with :func:`os.replace`, so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import io
import os
import re
import stat as stat_mod
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from .arrays import data_range_of
from .kernels.rec601 import LUMA_B, LUMA_G, LUMA_R  # plain floats: io stays free of numba

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXTENSIONS",
    "Frame",
    "ImageFile",
    "InputError",
    "TEMP_SUFFIX",
    "SourceStamp",
    "atomic_write_bytes",
    "check_decodes",
    "clean_temp_files",
    "exif_tobytes",
    "file_stamp",
    "is_temp_name",
    "read_source",
    "decode_image",
    "encode_image",
    "extension_for",
    "normalise_format",
    "read_image",
    "read_mask",
    "write_image",
]

#: Pillow's decompression-bomb limit; larger images need ``--max-pixels``.
#: It counts the pixels of every frame (an animation of 2000 frames of 1400x1400
#: is 3.9 gigapixels, not 2).
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

#: Bytes allowed per pixel of the limit (16-bit RGBA uncompressed is 8) plus room for metadata:
#: a file larger than ``max_pixels * BYTES_PER_PIXEL + BYTES_SLACK`` is refused before it is read.
BYTES_PER_PIXEL = 8
BYTES_SLACK = 64 << 20

#: File extensions protect reads, and the format each one means.
EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
}
_EXT_FOR_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif"}
_FORMAT_NAMES = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF",
                 "bmp": "BMP", "gif": "GIF"}
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF", "GIF"}
#: Formats that hold several frames (animation) or pages: APNG, animated WebP/GIF, multipage TIFF.
_ANIMATED_FORMATS = {"WEBP", "GIF", "PNG", "TIFF"}

#: Suffix of the temporary files of atomic writes (never picked up as inputs).
TEMP_SUFFIX = ".protect-tmp"
#: The whole name of such a file: "." + (a prefix of) the target's name + "." + 8 random
#: characters (tempfile's alphabet) + TEMP_SUFFIX.  Only names matching this are ever cleaned.
_TEMP_RE = re.compile(r"^\..*\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + r"$", re.DOTALL)
_NAME_MAX = 255
PNG_XMP_KEY = "XML:com.adobe.xmp"

_ORIENTATION = 0x0112
#: The process umask, read once at import (reading it means setting it): the mode
#: of files protect writes is ``0o666 & ~UMASK``, as ``open`` would give.
UMASK = os.umask(0)
os.umask(UMASK)


class InputError(Exception):
    """A file that cannot be protected; the message is one line, for the user."""


@dataclass(frozen=True)
class SourceStamp:
    """What identifies a file's content cheaply: size, modification time, inode, device."""

    size: int
    mtime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, st: os.stat_result) -> SourceStamp:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def file_stamp(path: str | os.PathLike) -> SourceStamp:
    """The :class:`SourceStamp` of ``path`` (following symlinks); raises OSError."""
    return SourceStamp.of(os.stat(path))


def _kind(mode: int) -> str:
    if stat_mod.S_ISDIR(mode):
        return "a folder"
    if stat_mod.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat_mod.S_ISCHR(mode):
        return "a character device"
    if stat_mod.S_ISBLK(mode):
        return "a block device"
    if stat_mod.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_source(path: str | os.PathLike, *, max_bytes: int | None = None) -> tuple[bytes, SourceStamp]:
    """The bytes of a regular file and its stamp; raise :class:`InputError` otherwise.

    The file is opened without blocking (a FIFO cannot hang the reader), must
    be a regular file (not a device such as ``/dev/zero``, a FIFO or a
    folder), must not be larger than ``max_bytes``, and must not change while
    it is read (checked against a second ``stat`` after reading).
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise InputError("is a folder, not a file") from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise InputError("symlink loop (the link points back at itself)") from None
        if isinstance(exc, FileNotFoundError) and path.is_symlink():
            raise InputError(f"broken symlink: its target {os.readlink(path)} does not exist") from None
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise InputError(f"is {_kind(st.st_mode)}, not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise InputError(f"too large: {st.st_size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit "
                             "(raise it with --max-pixels)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks, total, want = [], 0, st.st_size + 1  # one byte more than stat said: growth shows
        while total < want:
            chunk = os.read(fd, min(1 << 22, want - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    before = SourceStamp.of(st)
    try:
        after = file_stamp(path)
    except OSError:
        after = None
    if after != before or len(data) != before.size:
        raise InputError("changed while being read (saved over?); run again when it is finished")
    return data, before


@dataclass
class Frame:
    """One frame: colour channels, optional alpha, optional duration (ms)."""

    pixels: np.ndarray  # (H, W, 1) grey or (H, W, 3) RGB, uint8 or uint16
    alpha: np.ndarray | None = None  # (H, W), same dtype
    duration: int | None = None


@dataclass
class ImageFile:
    """A decoded image file with what must survive the round trip."""

    frames: list[Frame]
    format: str  # PNG, JPEG, WEBP, TIFF, BMP, GIF
    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation already applied and reset to 1
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks (XMP included there)
    loop: int | None = None
    lossless: bool = False  # WebP: the input was lossless
    iptc: bytes | None = None  # JPEG: the Photoshop APP13 segment body (IPTC-IIM By-line, CopyrightNotice...)
    source: SourceStamp | None = None  # the file as it was when read (size, mtime, inode)
    notes: list[str] = field(default_factory=list)  # things the user should know (one short phrase each)
    palette: bool = False  # the source was stored with indexed colour (PNG/GIF/BMP/TIFF mode P)

    @property
    def width(self) -> int:
        return int(self.frames[0].pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.frames[0].pixels.shape[0])

    @property
    def bit_depth(self) -> int:
        return 16 if self.frames[0].pixels.dtype == np.uint16 else 8

    @property
    def animated(self) -> bool:
        return len(self.frames) > 1


def normalise_format(name: str) -> str:
    """``"jpg"`` -> ``"JPEG"`` etc.; raises ValueError for unknown formats."""
    key = name.lower().lstrip(".")
    if key not in _FORMAT_NAMES:
        raise ValueError(f"unknown format {name!r} (choose from png, jpeg, webp, tiff, bmp, gif)")
    return _FORMAT_NAMES[key]


def extension_for(fmt: str, original_suffix: str = "") -> str:
    """File extension for a format, keeping the original one when it already fits."""
    if EXTENSIONS.get(original_suffix.lower()) == fmt:
        return original_suffix
    return _EXT_FOR_FORMAT[fmt]


# --------------------------------------------------------------------- reading


def _png_ihdr(head: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG header, or None if not a PNG."""
    if len(head) >= 29 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24], head[25]
    return None


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, ...) array."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.swapaxes(x, 0, 1)[:, ::-1],
        7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1],
        8: lambda x: np.swapaxes(x, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return a if op is None else np.ascontiguousarray(op(a))


def _split_pil(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels and alpha of a decoded Pillow frame, in a supported layout."""
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    elif mode == "PA":
        im, mode = im.convert("RGBA"), "RGBA"
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
        mode = im.mode
    elif mode == "RGBX":
        im, mode = im.convert("RGB"), "RGB"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        a = np.asarray(im).astype(np.uint16)
        return a[..., None], None
    if mode == "L":
        return np.asarray(im)[..., None], None
    if mode == "LA":
        a = np.asarray(im)
        return np.ascontiguousarray(a[..., :1]), np.ascontiguousarray(a[..., 1])
    if mode == "RGB":
        return np.asarray(im), None
    if mode == "RGBA":
        a = np.asarray(im)
        return np.ascontiguousarray(a[..., :3]), np.ascontiguousarray(a[..., 3])
    raise InputError(f"unsupported colour mode {mode} (convert the image to RGB first)")


def _decode_16bit(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise InputError("truncated or corrupt image data (16-bit decoder failed)")
    if a.dtype != np.uint16:
        a = a.astype(np.uint16) * np.uint16(257)
    if a.ndim == 2:
        return a[..., None], None
    if a.shape[2] == 3:
        return np.ascontiguousarray(a[..., ::-1]), None
    if a.shape[2] == 4:
        return np.ascontiguousarray(a[..., 2::-1]), np.ascontiguousarray(a[..., 3])
    if a.shape[2] == 2:
        return np.ascontiguousarray(a[..., :1]), np.ascontiguousarray(a[..., 1])
    raise InputError(f"unsupported channel count {a.shape[2]}")


def _text_of(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_bytes: int | None | str = "auto") -> ImageFile:
    """Decode an image file; raise :class:`InputError` with a one-line reason.

    Parameters
    ----------
    path : path-like
        A regular file (see :func:`read_source`).
    max_pixels : int or None
        Refuse images with more pixels than this, counted over all frames
        (``None``: no limit).  This replaces Pillow's own decompression-bomb
        limit, which is lifted while the file is read and restored afterwards.
    max_bytes : int, None or "auto"
        Refuse files larger than this before reading them; "auto" derives it
        from ``max_pixels`` (``BYTES_PER_PIXEL`` per pixel plus ``BYTES_SLACK``).

    Pillow's warnings (corrupt EXIF, odd palettes...) become entries of
    ``ImageFile.notes`` instead of stray lines on stderr.
    """
    limit = max_bytes if max_bytes != "auto" else (
        None if max_pixels is None else max_pixels * BYTES_PER_PIXEL + BYTES_SLACK)
    if isinstance(limit, str):
        raise ValueError(f"max_bytes must be an int, None or 'auto', not {limit!r}")
    data, stamp = read_source(path, max_bytes=limit)
    img = decode_image(data, max_pixels=max_pixels)
    img.source = stamp
    return img


def decode_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageFile:
    """Decode an image file held in memory (what :func:`read_image` does after
    reading the file); the inverse of :func:`encode_image`.  Same rules and
    the same one-line :class:`InputError` reasons as :func:`read_image`;
    Pillow's warnings become ``notes``."""
    if not data:
        raise InputError("empty file (0 bytes)")
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            img = _decode(bytes(data), max_pixels)
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    img.notes.extend(_warning_notes(caught))
    return img


def _warning_notes(caught) -> list[str]:
    notes = []
    for w in caught:
        text = " ".join(str(w.message).split())
        if len(text) > 160:
            text = text[:157] + "..."
        note = f"decoder warning: {text}"
        if note not in notes:
            notes.append(note)
    return notes


def _frame_count(im: Image.Image, fmt: str) -> int:
    if fmt not in _ANIMATED_FORMATS:
        return 1
    return int(getattr(im, "n_frames", 1) or 1)


_TIFF_STRUCTURE = {
    # baseline and extension tags that describe a TIFF's own layout: they are not EXIF and
    # break the output when passed back (SampleFormat, StripOffsets of the input file...)
    254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 269, 273, 274, 277, 278, 279, 280, 281, 282,
    283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 293, 296, 297, 317, 318, 319, 320, 321, 322, 323,
    324, 325, 330, 332, 333, 334, 338, 339, 340, 341, 342, 347, 351, 512, 513, 514, 515, 517, 518, 519,
    520, 521, 529, 530, 531, 532, 700, 32995, 32996, 32997, 32998, 33723, 34377, 34675, 37724, 50838, 50839,
}


def exif_tobytes(exif: Image.Exif) -> bytes:
    """``exif.tobytes()`` keeping non-ASCII text (UTF-8 Artist, Copyright...) byte for byte.

    Pillow decodes EXIF text as Latin-1 and encodes it back as ASCII with "?"
    for everything else; giving it the original bytes keeps them.
    """
    ifds = [exif] + [exif.get_ifd(t) for t in (0x8769, 0x8825) if t in exif]
    for d in ifds:
        for tag, value in list(d.items()):
            if isinstance(value, str) and not value.isascii():
                try:
                    d[tag] = value.encode("latin-1")
                except UnicodeEncodeError:
                    d[tag] = value.encode("utf-8")
    return exif.tobytes()


def _exif_of(im: Image.Image, fmt: str, notes: list[str]) -> tuple[int, bytes | None]:
    """(orientation to apply, EXIF bytes to keep) of a decoded file."""
    try:
        exif_obj = im.getexif()
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block costs the EXIF, not the file
        notes.append(f"its EXIF could not be read and was dropped ({type(exc).__name__})")
        return 1, None
    if fmt == "TIFF":
        for tag in [t for t in exif_obj if t in _TIFF_STRUCTURE and t != _ORIENTATION]:
            del exif_obj[tag]
    orientation = 1
    raw = exif_obj.get(_ORIENTATION, 1)
    try:
        value = int(raw[0] if isinstance(raw, (tuple, list)) and len(raw) == 1 else raw)
        if not 1 <= value <= 8:
            raise ValueError(value)
        orientation = value
    except (TypeError, ValueError, IndexError):
        notes.append(f"ignored a malformed EXIF orientation tag ({str(raw)[:20]!s})")
    if not len(exif_obj):
        return orientation, None
    if _ORIENTATION in exif_obj:
        exif_obj[_ORIENTATION] = 1
    try:
        return orientation, exif_tobytes(exif_obj)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"its EXIF could not be re-encoded and was dropped ({type(exc).__name__}: {exc})")
        return orientation, None


def _jpeg_app13(data: bytes) -> bytes | None:
    """The body of the first Photoshop APP13 segment (IPTC-IIM lives there), if any."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xDA:  # start of scan: no more metadata segments
            return None
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        body = data[i + 4:i + 2 + length]
        if marker == 0xED and body.startswith(b"Photoshop 3.0\x00"):
            return body
        i += 2 + length
    return None


def _decode(data: bytes, max_pixels: int | None) -> ImageFile:
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError("not an image, or a format protect cannot read") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on bad headers
        raise InputError(f"unreadable image header ({exc})") from None
    fmt = im.format
    if fmt == "MPO":  # multi-picture JPEG from cameras: the first picture is the JPEG
        fmt = "JPEG"
    if fmt not in _EXT_FOR_FORMAT:
        raise InputError(f"unsupported format {fmt}")
    w, h = im.size
    notes: list[str] = []
    if max_pixels is not None and w * h > max_pixels:
        raise InputError(
            f"too large: {w}x{h} = {w * h / 1e6:.1f} MP is over the {max_pixels / 1e6:.1f} MP limit "
            "(raise it with --max-pixels)"
        )

    ihdr = _png_ihdr(data[:33])
    palette = im.mode in ("P", "PA")
    frames: list[Frame] = []
    try:
        n_frames = _frame_count(im, fmt)
        if max_pixels is not None and n_frames * w * h > max_pixels:
            raise InputError(
                f"too large: {n_frames} frames of {w}x{h} = {n_frames * w * h / 1e6:.1f} MP in all is over the "
                f"{max_pixels / 1e6:.1f} MP limit (raise it with --max-pixels)"
            )
        info = im.info
        orientation, exif_bytes = _exif_of(im, fmt, notes)
        dpi = info.get("dpi")
        try:
            dpi = (float(dpi[0]), float(dpi[1])) if dpi else None
        except (TypeError, ValueError, IndexError):
            dpi = None
        xmp = info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        text = {}
        if fmt == "PNG":
            text = {k: _text_of(v) for k, v in getattr(im, "text", {}).items()}
        lossless = fmt == "WEBP" and b"VP8L" in data[12:40]
        if ihdr is not None and ihdr[0] == 16 and n_frames == 1:
            pixels, alpha = _decode_16bit(data)
            frames.append(Frame(pixels, alpha))
        elif fmt == "TIFF" and n_frames == 1 and _tiff_16bit_colour(im):
            pixels, alpha = _decode_16bit(data)
            frames.append(Frame(pixels, alpha))
        elif n_frames > 1:
            total = 0
            for page in ImageSequence.Iterator(im):
                page.load()
                total += page.size[0] * page.size[1]
                if max_pixels is not None and total > max_pixels:  # frames larger than the first
                    raise InputError(f"too large: its frames add up to over the {max_pixels / 1e6:.1f} MP limit")
                dur = page.info.get("duration")
                if fmt == "TIFF":
                    if page.size != (w, h):
                        raise InputError("a multipage TIFF whose pages differ in size (protect keeps pages "
                                         "of one size only)")
                    kept = page.mode in ("L", "RGB", "RGBA", "LA")
                    pixels, alpha = _split_pil(page if kept else page.convert("RGBA"))
                else:
                    pixels, alpha = _split_pil(page.convert("RGBA"))
                frames.append(Frame(pixels, alpha, int(dur) if dur is not None else None))
            shapes = {(f.pixels.shape, f.alpha is None) for f in frames}
            if len(shapes) > 1:  # pages of different layouts: bring them all to RGBA
                frames = [Frame(*_rgba(f), f.duration) for f in frames]
        else:
            im.load()
            pixels, alpha = _split_pil(im)
            frames.append(Frame(pixels, alpha, info.get("duration")))
    except InputError:
        raise
    except MemoryError:
        raise InputError("out of memory while decoding it (try --workers 1, or a smaller image)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
            ZeroDivisionError) as exc:
        msg = str(exc)
        if "truncated" in msg or "broken" in msg or isinstance(exc, (SyntaxError, EOFError)):
            raise InputError(f"truncated or corrupt image data ({msg})") from None
        raise InputError(f"cannot decode: {type(exc).__name__ + ': ' if not msg else ''}{msg}") from None

    if orientation != 1:
        for fr in frames:
            fr.pixels = _apply_orientation(fr.pixels, orientation)
            if fr.alpha is not None:
                fr.alpha = _apply_orientation(fr.alpha, orientation)
    loop = info.get("loop")
    return ImageFile(
        frames=frames,
        format=fmt,
        icc_profile=info.get("icc_profile") or None,
        exif=exif_bytes,
        dpi=dpi,
        xmp=xmp,
        text=text,
        loop=loop if isinstance(loop, int) else None,
        lossless=lossless,
        iptc=_jpeg_app13(data) if fmt == "JPEG" else None,
        notes=notes,
        palette=palette,
    )


def _tiff_16bit_colour(im: Image.Image) -> bool:
    """A 16-bit-per-sample colour TIFF (Pillow would decode it to 8 bits)."""
    try:
        bits = im.tag_v2.get(258)  # type: ignore[attr-defined]  # TIFF images only
    except AttributeError:
        return False
    if isinstance(bits, int):
        bits = (bits,)
    return bool(bits) and len(bits) >= 3 and all(b == 16 for b in bits)


def _rgba(fr: Frame) -> tuple[np.ndarray, np.ndarray]:
    px = fr.pixels if fr.pixels.shape[2] == 3 else np.repeat(fr.pixels, 3, axis=2)
    px = _to_8bit(px)
    alpha = _to_8bit(fr.alpha) if fr.alpha is not None else np.full(px.shape[:2], 255, np.uint8)
    return px, alpha


def read_mask(path: str | os.PathLike, *, size: tuple[int, int]) -> np.ndarray:
    """Read a region mask as (H, W) uint8: 255 = full strength, 0 = none.

    ``size`` is the (width, height) the mask must have (that of the image,
    after its EXIF orientation).  Colour masks are converted to grey; a
    16-bit mask is scaled to 8 bits.
    """
    img = read_image(path, max_pixels=None)
    fr = img.frames[0]
    m = fr.pixels
    if m.shape[2] == 3:
        m = (m[..., 0].astype(np.float32) * LUMA_R + m[..., 1] * LUMA_G + m[..., 2] * LUMA_B)[..., None]
    m = m[..., 0]
    if img.bit_depth == 16:
        m = m.astype(np.float32) / 257.0
    m = np.clip(np.rint(m), 0, 255).astype(np.uint8)
    if (m.shape[1], m.shape[0]) != tuple(size):
        raise InputError(f"mask {Path(path).name} is {m.shape[1]}x{m.shape[0]}, the image is {size[0]}x{size[1]}")
    return m


# --------------------------------------------------------------------- writing


def _to_8bit(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _composite_on_white(fr: Frame) -> np.ndarray:
    """Colour channels composited on white (for formats without alpha)."""
    if fr.alpha is None:
        return fr.pixels
    data_range = data_range_of(fr.pixels.dtype)
    a = fr.alpha.astype(np.float32)[..., None] / data_range
    out = fr.pixels.astype(np.float32) * a + data_range * (1.0 - a)
    return np.clip(np.rint(out), 0, data_range).astype(fr.pixels.dtype)


def _pil_frame(fr: Frame, keep_alpha: bool) -> Image.Image:
    pixels = fr.pixels if keep_alpha else _composite_on_white(fr)
    pixels = _to_8bit(pixels)
    alpha = _to_8bit(fr.alpha) if (keep_alpha and fr.alpha is not None) else None
    if pixels.shape[2] == 1:
        if alpha is None:
            return Image.fromarray(pixels[..., 0], "L")
        return Image.fromarray(np.dstack([pixels, alpha]), "LA")
    if alpha is None:
        return Image.fromarray(pixels, "RGB")
    return Image.fromarray(np.dstack([pixels, alpha]), "RGBA")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_insert_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """Insert ancillary chunks into a PNG right after its IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    ihdr_end = 8 + 4 + 4 + struct.unpack(">I", png[8:12])[0] + 4
    extra = b"".join(_png_chunk(k, b) for k, b in chunks)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _png_metadata_chunks(img: ImageFile) -> list[tuple[bytes, bytes]]:
    chunks: list[tuple[bytes, bytes]] = []
    if img.icc_profile:
        chunks.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(img.icc_profile)))
    if img.dpi:
        ppm = [max(1, int(round(d / 0.0254))) for d in img.dpi]
        chunks.append((b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if img.exif:
        raw = img.exif[6:] if img.exif.startswith(b"Exif\x00\x00") else img.exif
        chunks.append((b"eXIf", raw))
    for k, v in _png_text(img).items():
        chunks.append((b"iTXt", k.encode("latin-1", "replace")[:79] + b"\x00\x00\x00\x00\x00" + v.encode("utf-8")))
    return chunks


def _png_text(img: ImageFile) -> dict[str, str]:
    """PNG text chunks, with the XMP packet as the ``XML:com.adobe.xmp`` iTXt chunk
    (Pillow ignores ``xmp=`` for PNG)."""
    text = dict(img.text)
    if img.xmp:
        text[PNG_XMP_KEY] = img.xmp.decode("utf-8", "replace")
    return text


def _encode_png16(img: ImageFile) -> bytes:
    fr = img.frames[0]
    a = fr.pixels
    if a.shape[2] == 3:
        a = a[..., ::-1]
        if fr.alpha is not None:
            a = np.dstack([a, fr.alpha])
    elif fr.alpha is not None:
        # OpenCV cannot write grey+alpha; write it as RGBA, which keeps every value
        a = np.dstack([a, a, a, fr.alpha])
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:  # pragma: no cover
        raise InputError("16-bit PNG encoder failed")
    return png_insert_chunks(buf.tobytes(), _png_metadata_chunks(img))


#: The largest body of a JPEG marker segment (APP1 EXIF, APP13 IPTC).
JPEG_SEGMENT_MAX = 65533


def encode_image(img: ImageFile, *, format: str | None = None, jpeg_quality: int = 95,
                 notes: list[str] | None = None) -> bytes:
    """Encode an :class:`ImageFile` to bytes in ``format`` (default: its own).

    JPEG is written with 4:4:4 chroma at ``jpeg_quality``; lossy WebP uses
    the same quality, lossless WebP stays lossless.  Formats without alpha
    get the image composited on white.  PNG and TIFF keep 16 bits per
    sample.  Every frame or page is kept where the format can hold several
    (GIF, WebP, APNG, TIFF).  Whatever cannot be kept (frames, bit depth,
    transparency, EXIF over JPEG's 64 kB, IPTC outside JPEG) is said in
    ``notes`` (a list the caller passes), one short phrase each.
    """
    notes = notes if notes is not None else []
    fmt = normalise_format(format) if format else img.format
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = _encode(img, fmt, jpeg_quality, notes)
    notes.extend(n.replace("decoder warning", "encoder warning") for n in _warning_notes(caught))
    return data


def _say_losses(img: ImageFile, fmt: str, notes: list[str]) -> None:
    if img.animated and fmt not in _ANIMATED_FORMATS:
        notes.append(f"kept 1 of its {len(img.frames)} frames ({fmt} holds one; use --format png, gif, webp or tiff)")
    if img.bit_depth == 16 and not (fmt in ("PNG", "TIFF") and not img.animated):
        notes.append(f"written with 8 bits per sample ({fmt} output; PNG and TIFF keep 16)")
    if fmt not in _ALPHA_FORMATS and any(f.alpha is not None and int(f.alpha.min()) < int(np.iinfo(f.alpha.dtype).max)
                                         for f in img.frames):
        notes.append(f"transparency flattened on white ({fmt} has none)")
    if img.iptc and fmt != "JPEG":
        notes.append(f"its IPTC-IIM block (APP13) was not kept ({fmt} output; JPEG keeps it, XMP is kept)")


def _encode(img: ImageFile, fmt: str, jpeg_quality: int, notes: list[str]) -> bytes:
    _say_losses(img, fmt, notes)
    if fmt == "PNG" and img.bit_depth == 16 and not img.animated:
        return _encode_png16(img)
    if fmt == "TIFF" and img.bit_depth == 16 and not img.animated:
        fr = img.frames[0]
        if fr.pixels.shape[2] != 1 or fr.alpha is not None:
            return _encode_tiff16(img, notes)
    keep_alpha = fmt in _ALPHA_FORMATS
    if fmt == "TIFF" and img.bit_depth == 16 and not img.animated:
        frames = [Image.fromarray(np.ascontiguousarray(img.frames[0].pixels[..., 0]))]  # mode I;16
    else:
        frames = [_pil_frame(fr, keep_alpha) for fr in img.frames]
    if not img.animated or fmt not in _ANIMATED_FORMATS:
        frames = frames[:1]
    first = frames[0]
    opts: dict = {}
    exif = img.exif
    if exif and fmt == "JPEG":
        exif = _fit_exif(exif, JPEG_SEGMENT_MAX - 6, notes)
    if img.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        opts["icc_profile"] = img.icc_profile
    if exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        opts["exif"] = exif
    if img.dpi and fmt in ("PNG", "JPEG", "TIFF", "BMP"):
        opts["dpi"] = img.dpi
    if fmt == "JPEG":
        opts.update(quality=int(jpeg_quality), subsampling=0, optimize=True)
        if img.xmp:
            opts["xmp"] = img.xmp
    elif fmt == "WEBP":
        opts.update(lossless=img.lossless, quality=100 if img.lossless else int(jpeg_quality), method=4)
        if img.xmp:
            opts["xmp"] = img.xmp
    elif fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for k, v in _png_text(img).items():
            info.add_itxt(k, v)
        opts["pnginfo"] = info
    elif fmt == "TIFF":
        opts["compression"] = "tiff_lzw"
        # Pillow re-reads EXIF bytes for TIFF and writes its text as ASCII ("?" for the rest):
        # an Exif object holding bytes keeps UTF-8; the XMP goes in as tag 700 (xmp= is ignored)
        ex = Image.Exif()
        if opts.get("exif"):
            ex.load(opts["exif"] if opts["exif"].startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + opts["exif"])
            exif_tobytes(ex)
        if img.xmp:
            ex[700] = img.xmp
        if len(ex):
            opts["exif"] = ex
    if len(frames) > 1:
        opts.update(save_all=True, append_images=frames[1:])
        if fmt != "TIFF":
            opts["duration"] = [fr.duration if fr.duration is not None else 100 for fr in img.frames]
            if img.loop is not None:
                opts["loop"] = img.loop
        if fmt == "GIF":
            opts["disposal"] = 2
    elif fmt == "GIF" and img.loop is not None:
        opts["loop"] = img.loop
    buf = io.BytesIO()
    first.save(buf, format=fmt, **opts)
    data = buf.getvalue()
    if fmt == "JPEG" and img.iptc:
        data = _jpeg_insert_app13(data, img.iptc, notes)
    return data


#: EXIF text tags of the first directory that a 16-bit colour TIFF keeps (the EXIF sub-IFD is not written).
_TIFF16_TEXT_TAGS = (270, 271, 272, 305, 306, 315, 33432)


def _encode_tiff16(img: ImageFile, notes: list[str]) -> bytes:
    """A 16-bit colour (or grey + alpha, written as RGBA) TIFF: Deflate with the horizontal
    predictor, little-endian, one frame, with the ICC profile, XMP, DPI and the EXIF text tags
    (Artist, Copyright, ImageDescription...).  Written here because Pillow cannot write 16-bit
    colour and OpenCV writes no metadata."""
    fr = img.frames[0]
    a = fr.pixels
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if fr.alpha is not None:
        a = np.dstack([a, fr.alpha])
    a = np.ascontiguousarray(a, dtype="<u2")
    h, w, c = a.shape
    diff = a.copy()
    diff[:, 1:] = a[:, 1:] - a[:, :-1]  # predictor 2, modulo 2**16
    rows = max(1, (1 << 16) // (w * c * 2))
    strips = [zlib.compress(diff[y:y + rows].tobytes(), 6) for y in range(0, h, rows)]
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, packed value

    def add(tag: int, typ: int, values, fmt: str = "") -> None:
        if typ in (1, 2, 7):
            raw = bytes(values)
            entries.append((tag, typ, len(raw), raw))
        else:
            raw = struct.pack("<" + fmt * len(values), *values)
            entries.append((tag, typ, len(values) // (2 if typ == 5 else 1), raw))

    add(256, 4, [w], "I")
    add(257, 4, [h], "I")
    add(258, 3, [16] * c, "H")
    add(259, 3, [8], "H")  # Adobe Deflate
    add(262, 3, [2], "H")  # RGB
    add(273, 4, [0] * len(strips), "I")  # offsets, filled in below
    add(277, 3, [c], "H")
    add(278, 4, [rows], "I")
    add(279, 4, [len(x) for x in strips], "I")
    if img.dpi:
        for tag, d in ((282, img.dpi[0]), (283, img.dpi[1])):
            add(tag, 5, [max(1, int(round(d * 1000))), 1000], "I")
        add(296, 3, [2], "H")
    add(284, 3, [1], "H")
    add(317, 3, [2], "H")
    if c == 4:
        add(338, 3, [2], "H")  # unassociated alpha
    add(339, 3, [1] * c, "H")
    if img.xmp:
        add(700, 1, img.xmp)
    if img.icc_profile:
        add(34675, 7, img.icc_profile)
    if img.exif:
        try:
            ex = Image.Exif()
            ex.load(img.exif if img.exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + img.exif)
            for tag in _TIFF16_TEXT_TAGS:
                v = ex.get(tag)
                if v:
                    add(tag, 2, (v.encode("latin-1") if isinstance(v, str) else bytes(v)) + b"\x00")
            if any(t not in _TIFF16_TEXT_TAGS and t != _ORIENTATION for t in ex) or 0x8769 in ex or 0x8825 in ex:
                notes.append("a 16-bit colour TIFF keeps only the EXIF text tags (Artist, Copyright, "
                             "description...); use --format png to keep all of it")
        except Exception:  # noqa: BLE001
            notes.append("its EXIF could not be kept in a 16-bit colour TIFF")
    entries.sort(key=lambda e: e[0])
    data_start = 8
    pixel_bytes = b"".join(strips)
    ifd_at = data_start + len(pixel_bytes)
    ifd_at += ifd_at % 2
    extra_at = ifd_at + 2 + 12 * len(entries) + 4
    offsets, pos = [], data_start
    for x in strips:
        offsets.append(pos)
        pos += len(x)
    ifd, extra = bytearray(struct.pack("<H", len(entries))), bytearray()
    for tag, typ, count, raw in entries:
        if tag == 273:
            raw = struct.pack("<" + "I" * len(offsets), *offsets)
        if len(raw) <= 4:
            ifd += struct.pack("<HHI", tag, typ, count) + raw.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHII", tag, typ, count, extra_at + len(extra))
            extra += raw + (b"\x00" if len(raw) % 2 else b"")
    ifd += struct.pack("<I", 0)
    head = b"II*\x00" + struct.pack("<I", ifd_at)
    return head + pixel_bytes + b"\x00" * (ifd_at - data_start - len(pixel_bytes)) + bytes(ifd) + bytes(extra)


def _fit_exif(exif: bytes, limit: int, notes: list[str]) -> bytes | None:
    """EXIF bytes that fit ``limit``: the largest tags are dropped first (with a note)."""
    if len(exif) <= limit:
        return exif
    before = len(exif)
    try:
        ex = Image.Exif()
        ex.load(exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif)
        dropped: list[int] = []
        for _ in range(200):
            out = ex.tobytes()
            if len(out) <= limit:
                notes.append(f"its EXIF ({before / 1e3:.0f} kB) was trimmed to {len(out) / 1e3:.1f} kB to fit "
                             f"JPEG's 64 kB limit (dropped tag{'s' if len(dropped) > 1 else ''} "
                             f"{', '.join(f'0x{t:04X}' for t in dropped)})")
                return out
            sizes = []
            for ifd_tag, d in [(None, ex), *((t, ex.get_ifd(t)) for t in (0x8769, 0x8825) if t in ex)]:
                for t, v in d.items():
                    if t in (0x8769, 0x8825) and ifd_tag is None:
                        continue
                    size = len(v) if isinstance(v, (bytes, str)) else (len(v) * 8 if isinstance(v, tuple) else 8)
                    sizes.append((size, t, d))
            if not sizes:
                break
            size, tag, d = max(sizes, key=lambda x: x[0])
            del d[tag]
            dropped.append(tag)
    except Exception:  # noqa: BLE001 - unparseable: drop it below
        pass
    notes.append(f"its EXIF ({before / 1e3:.0f} kB) could not be made to fit JPEG's 64 kB limit and was dropped")
    return None


def _jpeg_insert_app13(jpeg: bytes, body: bytes, notes: list[str]) -> bytes:
    """``jpeg`` with an APP13 segment inserted after its APPn segments."""
    if len(body) > JPEG_SEGMENT_MAX or jpeg[:2] != b"\xff\xd8":
        notes.append("its IPTC-IIM block was too large to keep")
        return jpeg
    i = 2
    while i + 4 <= len(jpeg) and jpeg[i] == 0xFF and 0xE0 <= jpeg[i + 1] <= 0xEF:
        i += 2 + struct.unpack(">H", jpeg[i + 2:i + 4])[0]
    segment = b"\xff\xed" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:i] + segment + jpeg[i:]


def check_decodes(data: bytes, *, size: tuple[int, int], frames: int = 1) -> None:
    """Raise :class:`InputError` unless ``data`` decodes again to an image of ``size``
    (width, height) with ``frames`` frames: every output is checked before it is reported."""
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            im.load()
            got = (im.size, _frame_count(im, im.format or ""))
            if frames > 1:
                im.seek(frames - 1)
                im.load()
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"the output did not decode again ({type(exc).__name__}: {exc}); nothing was written") \
            from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    if got != (tuple(size), frames):
        raise InputError(f"the output decodes as {got[0][0]}x{got[0][1]} with {got[1]} frame(s), expected "
                         f"{size[0]}x{size[1]} with {frames}; nothing was written")


def _temp_prefix(name: str) -> str:
    """"." + the longest prefix of ``name`` that keeps the temp file's name within 255 bytes."""
    room = _NAME_MAX - len(".") - len(".") - 8 - len(TEMP_SUFFIX)
    raw = os.fsencode(name)
    if len(raw) > room:
        raw = raw[:room]
        name = raw.decode("utf-8", "ignore") if not isinstance(name, bytes) else os.fsdecode(raw)
        while len(os.fsencode(name)) > room:
            name = name[:-1]
    return "." + name + "."


def is_temp_name(name: str) -> bool:
    """True for the names of protect's own temporary files (and nothing else)."""
    return bool(_TEMP_RE.match(name))


def clean_temp_files(folder: str | os.PathLike[str], *, target: str | None = None) -> int:
    """Remove protect's own leftover temporary files in ``folder`` (only regular files
    matching its pattern; only those for ``target`` when given); return how many."""
    removed = 0
    prefix = _temp_prefix(target) if target is not None else None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        if not is_temp_name(e.name) or (prefix is not None and not e.name.startswith(prefix)):
            continue
        try:
            if e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed += 1
        except OSError:
            pass
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace).

    The temporary file is hidden, in the destination folder, named after the
    target but never longer than 255 bytes; ``mode`` defaults to 0666 minus
    the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, (0o666 & ~UMASK) if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_image(
    path: str | os.PathLike, img: ImageFile, *, format: str | None = None, jpeg_quality: int = 95
) -> int:
    """Encode and atomically write an image; return the number of bytes written."""
    data = encode_image(img, format=format, jpeg_quality=jpeg_quality)
    atomic_write_bytes(path, data)
    return len(data)


def with_frames(img: ImageFile, frames: list[Frame]) -> ImageFile:
    """A copy of ``img`` (same metadata) with other frames."""
    return replace(img, frames=frames)
