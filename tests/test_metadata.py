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
