"""Opt-out and authorship metadata, written and read back in PNG, JPEG and WebP."""

from __future__ import annotations

import pytest
from conftest import textured
from PIL import Image
from typer.testing import CliRunner

from protect import io as pio
from protect.cli import app
from protect.metadata import DMI_PROHIBITED_AIML, MetadataSettings, data_mining_value, optout_xmp

EXISTING = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
            b'xmp:CreatorTool="Krita" plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"/>'
            b'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def test_merge_keeps_other_properties_and_replaces_ours():
    packet, replaced = optout_xmp(EXISTING, MetadataSettings(author="Ann"))
    assert not replaced
    text = packet.decode()
    assert 'CreatorTool="Krita"' in text and "DMI-ALLOWED" not in text
    assert data_mining_value(packet) == DMI_PROHIBITED_AIML and "<rdf:li>Ann</rdf:li>" in text
    fresh, _ = optout_xmp(None, MetadataSettings())
    assert data_mining_value(fresh) == DMI_PROHIBITED_AIML
    broken, replaced = optout_xmp(b"<x:xmpmeta><unclosed", MetadataSettings())
    assert replaced and data_mining_value(broken) == DMI_PROHIBITED_AIML


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp"])
def test_cli_writes_opt_out_and_authorship_readable_back(tmp_path, ext):
    src = tmp_path / f"a{ext}"
    Image.fromarray(textured()).save(src, **({"xmp": EXISTING} if ext != ".png" else {}))
    res = CliRunner().invoke(app, [str(src), "--key", "k", "--author", "Ann Artist", "--copyright", "(c) Ann", "-q"])
    assert res.exit_code == 0, res.output
    out = pio.read_image(tmp_path / f"a_protected{ext}")
    assert data_mining_value(out.xmp) == DMI_PROHIBITED_AIML
    exif = Image.Exif()
    exif.load(out.exif)
    assert exif[0x013B] == "Ann Artist" and exif[0x8298] == "(c) Ann"
    if ext != ".png":
        assert b"Krita" in out.xmp  # what was there is kept
    if ext == ".png":  # the XMP is the iTXt chunk readers look for
        with Image.open(tmp_path / "a_protected.png") as im:
            assert "XML:com.adobe.xmp" in im.text


def test_no_metadata_leaves_xmp_alone(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(textured()).save(src)
    assert CliRunner().invoke(app, [str(src), "--key", "k", "--no-metadata", "-q"]).exit_code == 0
    assert pio.read_image(tmp_path / "a_protected.png").xmp is None


def _raw_exif(path):
    """EXIF text values as the bytes in the file (Pillow shows them as Latin-1)."""
    exif = Image.open(path).getexif()
    return {t: (v.encode("latin-1") if isinstance(v, str) else v) for t, v in exif.items()}


def test_iptc_iim_byline_and_copyright_are_kept(tmp_path):
    from hostile import iptc_app13, jpeg_with_app13
    from PIL import IptcImagePlugin

    (tmp_path / "a.jpg").write_bytes(jpeg_with_app13(textured(), iptc_app13("山田花子", "© 2026 Hanako")))
    before = IptcImagePlugin.getiptcinfo(Image.open(tmp_path / "a.jpg"))
    assert before[(2, 80)] == "山田花子".encode()
    res = CliRunner().invoke(app, [str(tmp_path / "a.jpg"), "--key", "k", "-q"])
    assert res.exit_code == 0, res.output
    after = IptcImagePlugin.getiptcinfo(Image.open(tmp_path / "a_protected.jpg"))
    assert after[(2, 80)] == "山田花子".encode() and after[(2, 116)] == "© 2026 Hanako".encode()
    # a format that cannot hold it says so
    res = CliRunner().invoke(app, [str(tmp_path / "a.jpg"), "--key", "k", "--format", "png"])
    assert res.exit_code == 0 and "IPTC-IIM block (APP13) was not kept" in res.output


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
def test_utf8_author_in_exif_artist(tmp_path, ext):
    Image.fromarray(textured()).save(tmp_path / f"a{ext}")
    res = CliRunner().invoke(app, [str(tmp_path / f"a{ext}"), "--key", "k", "--author", "山田花子",
                                   "--copyright", "© 山田花子", "-q"])
    assert res.exit_code == 0, res.output
    raw = _raw_exif(tmp_path / f"a_protected{ext}")
    assert raw[0x013B] == "山田花子".encode() and raw[0x8298] == "© 山田花子".encode()


def test_existing_utf8_exif_text_is_kept_byte_for_byte(tmp_path):
    ex = Image.Exif()
    ex[0x010E] = "夕焼けの絵".encode()
    ex[0x0112] = 6
    Image.fromarray(textured()).save(tmp_path / "a.jpg", exif=ex.tobytes(), quality=90)
    assert CliRunner().invoke(app, [str(tmp_path / "a.jpg"), "--key", "k", "-q"]).exit_code == 0
    assert _raw_exif(tmp_path / "a_protected.jpg")[0x010E] == "夕焼けの絵".encode()


def test_strip_location_removes_gps_from_exif_and_xmp(tmp_path):
    ex = Image.Exif()
    ex[0x8825] = {1: "N", 2: (35.0, 39.0, 31.0), 3: "E", 4: (139.0, 42.0, 5.0)}
    ex[0x013B] = "Ann"
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
           b'exif:GPSLatitude="35,39.5N" exif:GPSLongitude="139,42.1E" exif:ExposureTime="1/60"/>'
           b'</rdf:RDF></x:xmpmeta>')
    Image.fromarray(textured()).save(tmp_path / "a.jpg", exif=ex.tobytes(), xmp=xmp, quality=90)
    res = CliRunner().invoke(app, [str(tmp_path / "a.jpg"), "--key", "k", "-q", "--out", tmp_path / "kept"])
    assert res.exit_code == 0
    assert 0x8825 in Image.open(tmp_path / "kept" / "a.jpg").getexif()  # kept by default
    res = CliRunner().invoke(app, [str(tmp_path / "a.jpg"), "--key", "k", "-q", "--strip-location"])
    assert res.exit_code == 0, res.output
    out = pio.read_image(tmp_path / "a_protected.jpg")
    exif = Image.open(tmp_path / "a_protected.jpg").getexif()
    assert 0x8825 not in exif and exif[0x013B] == "Ann"
    assert b"GPSLatitude" not in out.xmp and b"ExposureTime" in out.xmp
    assert data_mining_value(out.xmp) == DMI_PROHIBITED_AIML


def test_opt_out_genai(tmp_path):
    from protect.metadata import DMI_PROHIBITED_GENAI

    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--key", "k", "-q", "--opt-out", "genai"])
    assert res.exit_code == 0, res.output
    assert data_mining_value(pio.read_image(tmp_path / "a_protected.png").xmp) == DMI_PROHIBITED_GENAI
    assert DMI_PROHIBITED_GENAI.endswith("DMI-PROHIBITED-GENAIMLTRAINING")
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--key", "k", "--opt-out", "nope"])
    assert res.exit_code == 2
