"""Opt-out and authorship metadata: XMP (IPTC PLUS Data Mining, Dublin Core) and EXIF.

Pure functions on bytes; ``io.py`` writes them into the files (XMP as the
``XML:com.adobe.xmp`` iTXt chunk in PNG, Pillow's ``xmp=`` for JPEG and WebP;
EXIF Artist and Copyright).

* ``plus:DataMining`` (namespace ``http://ns.useplus.org/ldf/xmp/1.0/``) is
  the IPTC Photo Metadata property through which a rights holder states
  whether data mining, including AI/ML training, is allowed; protect writes
  the PLUS vocabulary term for "prohibited for AI/ML training",
  ``http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING``.
* ``--author`` goes to ``dc:creator`` and EXIF Artist, ``--copyright`` to
  ``dc:rights`` and EXIF Copyright; ``xmpRights:Marked`` is set when a
  copyright is given.

Existing XMP is kept: properties protect writes are replaced, everything else
stays.  An XMP packet that cannot be parsed is replaced (a file holds one
packet), and the caller is told so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from PIL import Image

__all__ = ["MetadataSettings", "optout_xmp", "authorship_exif", "data_mining_value", "PLUS_NS", "DMI_PROHIBITED_AIML"]

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
DMI_PROHIBITED_AIML = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"
X = "adobe:ns:meta/"
XML_NS = "http://www.w3.org/XML/1998/namespace"
EXIF_ARTIST, EXIF_COPYRIGHT = 0x013B, 0x8298

for _prefix, _uri in (("rdf", RDF), ("dc", DC), ("plus", PLUS_NS), ("xmpRights", XMP_RIGHTS), ("x", X)):
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class MetadataSettings:
    """What to write: the opt-out (on by default), author and copyright."""

    opt_out: bool = True
    author: str | None = None
    copyright: str | None = None

    @property
    def active(self) -> bool:
        return self.opt_out or bool(self.author) or bool(self.copyright)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _ours(settings: MetadataSettings) -> set[str]:
    names = set()
    if settings.opt_out:
        names.add(_q(PLUS_NS, "DataMining"))
    if settings.author:
        names.add(_q(DC, "creator"))
    if settings.copyright:
        names |= {_q(DC, "rights"), _q(XMP_RIGHTS, "Marked")}
    return names


def _description(settings: MetadataSettings) -> ET.Element:
    desc = ET.Element(_q(RDF, "Description"), {_q(RDF, "about"): ""})
    if settings.opt_out:
        ET.SubElement(desc, _q(PLUS_NS, "DataMining")).text = DMI_PROHIBITED_AIML
    if settings.author:
        seq = ET.SubElement(ET.SubElement(desc, _q(DC, "creator")), _q(RDF, "Seq"))
        ET.SubElement(seq, _q(RDF, "li")).text = settings.author
    if settings.copyright:
        alt = ET.SubElement(ET.SubElement(desc, _q(DC, "rights")), _q(RDF, "Alt"))
        ET.SubElement(alt, _q(RDF, "li"), {_q(XML_NS, "lang"): "x-default"}).text = settings.copyright
        ET.SubElement(desc, _q(XMP_RIGHTS, "Marked")).text = "True"
    return desc


def optout_xmp(existing: bytes | None, settings: MetadataSettings) -> tuple[bytes, bool]:
    """An XMP packet with ``settings`` merged into ``existing``.

    Returns ``(packet, replaced)``; ``replaced`` is True when an existing
    packet could not be parsed and was replaced.
    """
    root = rdf = None
    replaced = False
    if existing:
        try:
            text = existing.decode("utf-8", "replace").strip("\x00 \r\n\t")
            start = text.find("<x:xmpmeta")
            start = text.find("<rdf:RDF") if start < 0 else start
            end_tag = "</x:xmpmeta>" if text.startswith("<x:xmpmeta", start) else "</rdf:RDF>"
            end = text.find(end_tag)
            root = ET.fromstring(text[start:end + len(end_tag)]) if start >= 0 and end >= 0 else None
            rdf = root if root is not None and root.tag == _q(RDF, "RDF") else (
                root.find(_q(RDF, "RDF")) if root is not None else None)
            if rdf is None:
                raise ValueError("no rdf:RDF")
            if root.tag == _q(RDF, "RDF"):
                meta = ET.Element(_q(X, "xmpmeta"))
                meta.append(root)
                root = meta
        except (ET.ParseError, ValueError):
            root = rdf = None
            replaced = True
    if root is None:
        root = ET.Element(_q(X, "xmpmeta"))
        rdf = ET.SubElement(root, _q(RDF, "RDF"))
    ours = _ours(settings)
    for desc in rdf.findall(_q(RDF, "Description")):
        for child in list(desc):
            if child.tag in ours:
                desc.remove(child)
        for attr in list(desc.attrib):
            if attr in ours:
                del desc.attrib[attr]
    rdf.append(_description(settings))
    body = ET.tostring(root, encoding="unicode")
    packet = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body
              + '\n<?xpacket end="w"?>')
    return packet.encode("utf-8"), replaced


def data_mining_value(xmp: bytes | None) -> str | None:
    """The ``plus:DataMining`` value of an XMP packet (element or attribute), if any."""
    if not xmp:
        return None
    text = xmp.decode("utf-8", "replace")
    start, end = text.find("<x:xmpmeta"), text.find("</x:xmpmeta>")
    if start < 0 or end < 0:
        return None
    try:
        root = ET.fromstring(text[start:end + len("</x:xmpmeta>")])
    except ET.ParseError:
        return None
    for desc in root.iter(_q(RDF, "Description")):
        el = desc.find(_q(PLUS_NS, "DataMining"))
        if el is not None:
            return el.text
        if _q(PLUS_NS, "DataMining") in desc.attrib:
            return desc.attrib[_q(PLUS_NS, "DataMining")]
    return None


def authorship_exif(existing: bytes | None, settings: MetadataSettings) -> bytes | None:
    """``existing`` EXIF with Artist/Copyright set from ``settings`` (None when nothing to write)."""
    if not settings.author and not settings.copyright:
        return existing
    exif = Image.Exif()
    if existing:
        exif.load(existing if existing.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + existing)
    if settings.author:
        exif[EXIF_ARTIST] = settings.author
    if settings.copyright:
        exif[EXIF_COPYRIGHT] = settings.copyright
    return exif.tobytes()
