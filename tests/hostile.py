"""A folder of odd and hostile inputs, generated (nothing copied): used by
tests/test_hostile.py and benchmarks/hostile_batch.py.

``make_folder(root)`` writes the files and returns ``{relative path: "good" | "bad"}``:
"good" files must come out protected and decodable, "bad" ones must cost one
clear line each while the batch goes on.  Files that are not inputs at all
(hidden files, a folder named like an image) are not in the map.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def texture(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, c), 190, np.uint8)
    img[:, w // 2:] = rng.integers(30, 230, (h, w - w // 2, c), dtype=np.uint8)
    img[::5, : w // 2] = 40
    return img if c > 1 else img


def many_frame_gif(width: int = 1400, height: int = 1400, frames: int = 2000) -> bytes:
    """A small GIF whose frames are 1x1 pixels on a ``width`` x ``height`` screen:
    each frame decodes to the whole screen (``frames * width * height`` pixels)."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff")
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop for ever
    for i in range(frames):
        x, y = i % width, (i // width) % height
        out += b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms, no disposal
        out += b"\x2c" + struct.pack("<HHHHB", x, y, 1, 1, 0)
        out += b"\x02\x02\x44\x01\x00"  # LZW (min code size 2): clear, index 0, end
    out += b"\x3b"
    return bytes(out)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(side: int = 20000) -> bytes:
    """A valid PNG of ``side`` x ``side`` grey pixels, all zero: a few hundred kB that
    decode to ``side**2`` bytes."""
    raw = zlib.compress(b"\x00" * (side + 1) * 64, 9)  # 64 rows; the rest is missing (never decoded)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", raw) + _png_chunk(b"IEND", b""))


def iptc_app13(byline: str, copyright_notice: str) -> bytes:
    """The body of a Photoshop APP13 segment with IPTC-IIM By-line (2:80) and CopyrightNotice (2:116)."""
    iim = b""
    for ds, text in ((80, byline), (116, copyright_notice)):
        data = text.encode("utf-8")
        iim += b"\x1c\x02" + bytes([ds]) + struct.pack(">H", len(data)) + data
    iim = b"\x1c\x01\x5a\x00\x03\x1b\x25\x47" + iim  # 1:90 coded character set: UTF-8
    res = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    if len(iim) % 2:
        res += b"\x00"
    return b"Photoshop 3.0\x00" + res


def jpeg_with_app13(pixels: np.ndarray, body: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    seg = b"\xff\xed" + struct.pack(">H", len(body) + 2) + body
    return data[:2] + seg + data[2:]


def _save(img: Image.Image, path: Path, **kw) -> None:
    img.save(path, **kw)


def make_folder(root: Path) -> dict[str, str]:
    """Write the odd and hostile files under ``root``; return what each should give."""
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}

    def good(name: str) -> Path:
        kinds[name] = "good"
        return root / name

    def bad(name: str) -> Path:
        kinds[name] = "bad"
        return root / name

    rgb = texture(72, 96)
    grey = texture(72, 96, 1)[..., 0]
    alpha = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (72, 1))
    rgba = np.dstack([rgb, alpha])
    # --- ordinary files in every layout protect promises to keep
    _save(Image.fromarray(rgb), good("rgb.png"))
    _save(Image.fromarray(rgba, "RGBA"), good("rgba.png"))
    _save(Image.fromarray(grey, "L"), good("grey.png"))
    _save(Image.fromarray(np.dstack([grey, alpha]), "LA"), good("grey_alpha.png"))
    _save(Image.fromarray(rgb).quantize(64), good("palette.png"))
    pal = Image.fromarray(rgb).quantize(16)
    pal.info["transparency"] = 0
    _save(pal, good("palette_transparent.png"), transparency=0)
    _save(Image.fromarray(grey).convert("1"), good("bilevel.png"))
    cv2.imwrite(str(good("rgb16.png")), (texture(48, 64).astype(np.uint16) * 257)[..., ::-1])
    cv2.imwrite(str(good("grey16.png")), texture(48, 64, 1).astype(np.uint16) * 250)
    cv2.imwrite(str(good("rgba16.png")), np.dstack([texture(48, 64), alpha[:48, :64]]).astype(np.uint16) * 257)
    _save(Image.fromarray(rgb), good("photo.jpg"), quality=90)
    _save(Image.fromarray(grey), good("grey.jpg"), quality=90)
    _save(Image.fromarray(rgb), good("progressive.jpg"), quality=85, progressive=True)
    _save(Image.fromarray(rgb), good("upper.PNG"))
    _save(Image.fromarray(rgb), good("upper.JPEG"), quality=90)
    _save(Image.fromarray(rgb), good("ext.jpe"), quality=90)
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        _save(Image.fromarray(rgb), good(f"orient{o}.jpg"), quality=90, exif=ex.tobytes())
    for name, value in (("orient_99.jpg", 99), ("orient_0.jpg", 0)):
        ex = Image.Exif()
        ex[0x0112] = value
        _save(Image.fromarray(rgb), good(name), quality=90, exif=ex.tobytes())
    text_tag = (b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01" + struct.pack(">HHII", 0x0112, 2, 9, 26)
                + b"\x00\x00\x00\x00sideways\x00")  # orientation as the text "sideways"
    _save(Image.fromarray(rgb), good("orient_text.jpg"), quality=90, exif=text_tag)
    ex = Image.Exif()
    ex[0x013B] = "山田花子".encode()
    ex[0x8298] = "© 2026 山田花子".encode()
    _save(Image.fromarray(rgb), good("utf8_artist.jpg"), quality=90, exif=ex.tobytes())
    ex = Image.Exif()
    ex[0x8825] = {1: "N", 2: (35.0, 39.0, 31.0), 3: "E", 4: (139.0, 42.0, 5.0)}
    _save(Image.fromarray(rgb), good("gps.jpg"), quality=90, exif=ex.tobytes())
    good("iptc.jpg").write_bytes(jpeg_with_app13(rgb, iptc_app13("山田花子", "© 2026 Hanako Yamada")))
    ex = Image.Exif()
    ex[0x010E] = "x" * 200_000
    _save(Image.fromarray(rgb), good("exif_200kB.png"), exif=ex.tobytes())
    ex = Image.Exif()
    ex[0x010E] = "a description long enough"
    ex[0x0131] = "software"
    raw = bytearray(ex.tobytes())
    struct.pack_into(">I", raw, 6 + 8 + 2 + 4, 5000)  # a tag claiming more data than there is
    _save(Image.fromarray(rgb), good("exif_corrupt_tag.jpg"), quality=90, exif=bytes(raw))
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _save(Image.fromarray(rgb), good("icc.jpg"), quality=90, icc_profile=icc)
    _save(Image.fromarray(rgb), good("lossy.webp"), quality=80)
    _save(Image.fromarray(rgb), good("lossless.webp"), lossless=True)
    _save(Image.fromarray(rgba, "RGBA"), good("alpha.webp"), quality=80)
    frames = [Image.fromarray(texture(40, 48, seed=s)) for s in range(4)]
    frames[0].save(good("anim.webp"), save_all=True, append_images=frames[1:], duration=80, loop=0)
    frames[0].save(good("anim.gif"), save_all=True, append_images=frames[1:], duration=80, loop=0)
    frames[0].save(good("apng.png"), save_all=True, append_images=frames[1:], duration=80, loop=0)
    frames[0].save(good("two_pages.tif"), save_all=True, append_images=frames[1:2])
    _save(Image.fromarray(rgb), good("still.gif"))
    _save(Image.fromarray(rgb), good("pillow.tif"))
    _save(Image.fromarray(rgb), good("lzw.tif"), compression="tiff_lzw")
    _save(Image.fromarray(rgba, "RGBA"), good("alpha.tif"))
    cv2.imwrite(str(good("opencv.tif")), rgb[..., ::-1])
    cv2.imwrite(str(good("opencv_grey.tif")), grey)
    cv2.imwrite(str(good("opencv_rgb16.tif")), texture(40, 48).astype(np.uint16)[..., ::-1] * 257)
    _save(Image.fromarray(texture(40, 48, 1)[..., 0].astype(np.uint16) * 257), good("grey16.tif"))
    _save(Image.fromarray(rgb), good("rgb.bmp"))
    _save(Image.fromarray(rgb).quantize(32), good("palette.bmp"))
    _save(Image.fromarray(grey), good("grey.bmp"))
    _save(Image.fromarray(np.full((1, 1, 3), 128, np.uint8)), good("one_pixel.png"))
    _save(Image.fromarray(texture(1, 300)), good("one_row.png"))
    _save(Image.fromarray(texture(7, 3)), good("seven_by_three.png"))
    _save(Image.fromarray(texture(900, 1200)), good("large.jpg"), quality=90)
    _save(Image.fromarray(rgb), good("日本語の絵.png"))
    _save(Image.fromarray(rgb), good("with spaces and 'quotes'.png"))
    _save(Image.fromarray(rgb), good("new\nline.png"))
    _save(Image.fromarray(rgb), good("n" * 251 + ".png"))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    good("png_named.jpg").write_bytes(buf.getvalue())
    (root / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    _save(Image.fromarray(rgb), good("sub/deeper/nested.png"))
    os.symlink("rgb.png", good("link_to_rgb.png"))
    # --- not inputs: hidden, and a folder named like an image
    _save(Image.fromarray(rgb), root / ".hidden.png")
    (root / "folder.png").mkdir(exist_ok=True)
    _save(Image.fromarray(rgb), good("folder.png/inside.png"))

    # --- bad files: each one clear line
    bad("empty.png").write_bytes(b"")
    _save(Image.fromarray(rgb).convert("CMYK"), bad("cmyk.jpg"), quality=90)  # refused: no colour conversion
    bad("text.png").write_text("not an image at all\n")
    bad("html.webp").write_text("<!doctype html><title>404</title>")
    bad("zip.jpg").write_bytes(b"PK\x03\x04" + bytes(200))
    data = buf.getvalue()
    bad("truncated.png").write_bytes(data[: len(data) // 2])
    jpg = io.BytesIO()
    Image.fromarray(texture(200, 200)).save(jpg, "JPEG", quality=90)
    bad("truncated.jpg").write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 3])
    broken = bytearray(data)
    broken[40:60] = bytes(20)
    bad("corrupt_idat.png").write_bytes(bytes(broken))
    bad("header_only.gif").write_bytes(b"GIF89a\x10\x00\x10\x00\x00\x00\x00")
    bad("bad_header.bmp").write_bytes(b"BM" + bytes(60))
    bad("random.tif").write_bytes(b"II*\x00" + np.random.default_rng(1).bytes(500))
    bad("bomb_20000x20000.png").write_bytes(png_bomb())
    bad("gif_2000_frames_1400x1400.gif").write_bytes(many_frame_gif())
    _save(Image.fromarray(np.random.default_rng(2).random((16, 16)).astype(np.float32), "F"), bad("float32.tif"))
    os.symlink("loop.png", bad("loop.png"))
    os.symlink("a.png", bad("loop_a.png"))
    os.symlink("loop_a.png", root / "a.png")
    kinds["a.png"] = "bad"
    os.symlink("missing.png", bad("dangling.png"))
    os.symlink("/dev/zero", bad("dev_zero.png"))
    os.symlink("/dev/urandom", bad("dev_urandom.jpg"))
    os.mkfifo(bad("fifo.png"))
    return kinds
