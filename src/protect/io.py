"""Reading and writing image files: the only module that touches them.

What is kept from input to output:

* pixels at their bit depth: 8-bit stays 8-bit; 16-bit PNG stays 16-bit
  (decoded and encoded with OpenCV, because Pillow silently drops 16-bit
  RGB to 8 bits; the metadata chunks are then written by this module);
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
import struct
import tempfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXTENSIONS",
    "Frame",
    "ImageFile",
    "InputError",
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "decode_image",
    "encode_image",
    "extension_for",
    "normalise_format",
    "read_image",
    "read_mask",
    "write_image",
]

#: Pillow's decompression-bomb limit; larger images need ``--max-pixels``.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

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
_ANIMATED_FORMATS = {"WEBP", "GIF"}

#: Suffix of the temporary files of atomic writes (never picked up as inputs).
TEMP_SUFFIX = ".protect-tmp"
PNG_XMP_KEY = "XML:com.adobe.xmp"

_ORIENTATION = 0x0112
_UMASK = os.umask(0)
os.umask(_UMASK)


class InputError(Exception):
    """A file that cannot be protected; the message is one line, for the user."""


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


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageFile:
    """Decode an image file; raise :class:`InputError` with a one-line reason.

    Parameters
    ----------
    path : path-like
    max_pixels : int or None
        Refuse images with more pixels than this (``None``: no limit).  This
        replaces Pillow's own decompression-bomb limit, which is lifted while
        the file is read and restored afterwards.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError("is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    return decode_image(data, max_pixels=max_pixels)


def decode_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageFile:
    """Decode an image file held in memory (what :func:`read_image` does after
    reading the file); the inverse of :func:`encode_image`.  Same rules and
    the same one-line :class:`InputError` reasons as :func:`read_image`."""
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return _decode(bytes(data), max_pixels)
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit


def _decode(data: bytes, max_pixels: int | None) -> ImageFile:
    if not data:
        raise InputError("empty file (0 bytes)")
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
    if max_pixels is not None and w * h > max_pixels:
        raise InputError(
            f"too large: {w}x{h} = {w * h / 1e6:.1f} MP is over the {max_pixels / 1e6:.1f} MP limit "
            "(raise it with --max-pixels)"
        )

    ihdr = _png_ihdr(data[:33])
    frames: list[Frame] = []
    try:
        info = im.info
        exif_obj = im.getexif()
        orientation = int(exif_obj.get(_ORIENTATION, 1) or 1)
        exif_bytes = None
        if len(exif_obj):
            if _ORIENTATION in exif_obj:
                exif_obj[_ORIENTATION] = 1
            exif_bytes = exif_obj.tobytes()
        dpi = info.get("dpi")
        dpi = (float(dpi[0]), float(dpi[1])) if dpi else None
        xmp = info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        text = {}
        if fmt == "PNG":
            text = {k: _text_of(v) for k, v in getattr(im, "text", {}).items()}
        lossless = fmt == "WEBP" and b"VP8L" in data[12:40]
        if ihdr is not None and ihdr[0] == 16:
            pixels, alpha = _decode_16bit(data)
            frames.append(Frame(pixels, alpha))
        elif getattr(im, "n_frames", 1) > 1 and fmt in _ANIMATED_FORMATS:
            for fr in ImageSequence.Iterator(im):
                fr.load()
                dur = fr.info.get("duration")
                pixels, alpha = _split_pil(fr.convert("RGBA"))
                frames.append(Frame(pixels, alpha, int(dur) if dur is not None else None))
        else:
            im.load()
            pixels, alpha = _split_pil(im)
            frames.append(Frame(pixels, alpha, info.get("duration")))
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        if "truncated" in msg or "broken" in msg or isinstance(exc, (SyntaxError, EOFError)):
            raise InputError(f"truncated or corrupt image data ({msg})") from None
        raise InputError(f"cannot decode: {msg}") from None

    if orientation != 1:
        for fr in frames:
            fr.pixels = _apply_orientation(fr.pixels, orientation)
            if fr.alpha is not None:
                fr.alpha = _apply_orientation(fr.alpha, orientation)
    return ImageFile(
        frames=frames,
        format=fmt,
        icc_profile=info.get("icc_profile") or None,
        exif=exif_bytes,
        dpi=dpi,
        xmp=xmp,
        text=text,
        loop=info.get("loop"),
        lossless=lossless,
    )


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
        m = (m[..., 0].astype(np.float32) * 0.299 + m[..., 1] * 0.587 + m[..., 2] * 0.114)[..., None]
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
    maxval = 255.0 if fr.pixels.dtype == np.uint8 else 65535.0
    a = fr.alpha.astype(np.float32)[..., None] / maxval
    out = fr.pixels.astype(np.float32) * a + maxval * (1.0 - a)
    return np.clip(np.rint(out), 0, maxval).astype(fr.pixels.dtype)


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


def encode_image(img: ImageFile, *, format: str | None = None, jpeg_quality: int = 95) -> bytes:
    """Encode an :class:`ImageFile` to bytes in ``format`` (default: its own).

    JPEG is written with 4:4:4 chroma at ``jpeg_quality``; lossy WebP uses
    the same quality, lossless WebP stays lossless.  Formats without alpha
    get the image composited on white.  Only PNG keeps 16 bits per sample.
    """
    fmt = normalise_format(format) if format else img.format
    if fmt == "PNG" and img.bit_depth == 16 and not img.animated:
        return _encode_png16(img)
    keep_alpha = fmt in _ALPHA_FORMATS
    frames = [_pil_frame(fr, keep_alpha) for fr in img.frames]
    if not img.animated or fmt not in _ANIMATED_FORMATS:
        frames = frames[:1]
    first = frames[0]
    opts: dict = {}
    if img.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        opts["icc_profile"] = img.icc_profile
    if img.exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        opts["exif"] = img.exif
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
    if len(frames) > 1:
        durations = [fr.duration if fr.duration is not None else 100 for fr in img.frames]
        opts.update(save_all=True, append_images=frames[1:], duration=durations)
        if img.loop is not None:
            opts["loop"] = img.loop
        if fmt == "GIF":
            opts["disposal"] = 2
    elif fmt == "GIF" and img.loop is not None:
        opts["loop"] = img.loop
    buf = io.BytesIO()
    first.save(buf, format=fmt, **opts)
    return buf.getvalue()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
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
