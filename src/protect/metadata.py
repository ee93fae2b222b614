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

from .io import exif_tobytes

__all__ = ["MetadataSettings", "optout_xmp", "authorship_exif", "data_mining_value", "strip_location_exif",
           "strip_location_xmp", "PLUS_NS", "DMI_PROHIBITED_AIML", "DMI_PROHIBITED_GENAI", "OPT_OUT_VALUES"]

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
DMI_PROHIBITED_AIML = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"
DMI_PROHIBITED_GENAI = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING"
#: ``--opt-out`` choices: the PLUS Data Mining term each one writes.
OPT_OUT_VALUES = {"aiml": DMI_PROHIBITED_AIML, "genai": DMI_PROHIBITED_GENAI}
EXIF_GPS_IFD = 0x8825
EXIF_NS = "http://ns.adobe.com/exif/1.0/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"
X = "adobe:ns:meta/"
XML_NS = "http://www.w3.org/XML/1998/namespace"
EXIF_ARTIST, EXIF_COPYRIGHT = 0x013B, 0x8298

for _prefix, _uri in (("rdf", RDF), ("dc", DC), ("plus", PLUS_NS), ("xmpRights", XMP_RIGHTS), ("x", X),
                     ("exif", EXIF_NS)):
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class MetadataSettings:
    """What to write: the opt-out (on by default; ``opt_out_kind`` "aiml" prohibits all
    AI/ML training, "genai" generative AI training only), author and copyright; and
    whether to remove the location (GPS) from EXIF and XMP."""

    opt_out: bool = True
    author: str | None = None
    copyright: str | None = None
    opt_out_kind: str = "aiml"
    strip_location: bool = False

    def __post_init__(self) -> None:
        if self.opt_out_kind not in OPT_OUT_VALUES:
            raise ValueError(f"unknown opt-out {self.opt_out_kind!r}; choose from {', '.join(OPT_OUT_VALUES)}")

    @property
    def active(self) -> bool:
        return self.opt_out or bool(self.author) or bool(self.copyright)


def _qname(ns: str, name: str) -> str:
    """ElementTree's qualified name ``{namespace}name``."""
    return f"{{{ns}}}{name}"


def _ours(settings: MetadataSettings) -> set[str]:
    names = set()
    if settings.opt_out:
        names.add(_qname(PLUS_NS, "DataMining"))
    if settings.author:
        names.add(_qname(DC, "creator"))
    if settings.copyright:
        names |= {_qname(DC, "rights"), _qname(XMP_RIGHTS, "Marked")}
    return names


def _description(settings: MetadataSettings) -> ET.Element:
    desc = ET.Element(_qname(RDF, "Description"), {_qname(RDF, "about"): ""})
    if settings.opt_out:
        ET.SubElement(desc, _qname(PLUS_NS, "DataMining")).text = OPT_OUT_VALUES[settings.opt_out_kind]
    if settings.author:
        seq = ET.SubElement(ET.SubElement(desc, _qname(DC, "creator")), _qname(RDF, "Seq"))
        ET.SubElement(seq, _qname(RDF, "li")).text = settings.author
    if settings.copyright:
        alt = ET.SubElement(ET.SubElement(desc, _qname(DC, "rights")), _qname(RDF, "Alt"))
        ET.SubElement(alt, _qname(RDF, "li"), {_qname(XML_NS, "lang"): "x-default"}).text = settings.copyright
        ET.SubElement(desc, _qname(XMP_RIGHTS, "Marked")).text = "True"
    return desc


def optout_xmp(existing: bytes | None, settings: MetadataSettings) -> tuple[bytes, bool]:
    """An XMP packet with ``settings`` merged into ``existing``.

    Returns ``(packet, replaced)``; ``replaced`` is True when an existing
    packet could not be parsed and was replaced.
    """
    root: ET.Element | None = None
    rdf: ET.Element | None = None
    replaced = False
    if existing:
        try:
            text = existing.decode("utf-8", "replace").strip("\x00 \r\n\t")
            start = text.find("<x:xmpmeta")
            start = text.find("<rdf:RDF") if start < 0 else start
            end_tag = "</x:xmpmeta>" if text.startswith("<x:xmpmeta", start) else "</rdf:RDF>"
            end = text.find(end_tag)
            root = ET.fromstring(text[start:end + len(end_tag)]) if start >= 0 and end >= 0 else None
            rdf = root if root is not None and root.tag == _qname(RDF, "RDF") else (
                root.find(_qname(RDF, "RDF")) if root is not None else None)
            if root is None or rdf is None:
                raise ValueError("no rdf:RDF")
            if root.tag == _qname(RDF, "RDF"):
                meta = ET.Element(_qname(X, "xmpmeta"))
                meta.append(root)
                root = meta
        except (ET.ParseError, ValueError):
            root = rdf = None
            replaced = True
    if root is None or rdf is None:
        root = ET.Element(_qname(X, "xmpmeta"))
        rdf = ET.SubElement(root, _qname(RDF, "RDF"))
    ours = _ours(settings)
    for desc in rdf.findall(_qname(RDF, "Description")):
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
    for desc in root.iter(_qname(RDF, "Description")):
        el = desc.find(_qname(PLUS_NS, "DataMining"))
        if el is not None:
            return el.text
        if _qname(PLUS_NS, "DataMining") in desc.attrib:
            return desc.attrib[_qname(PLUS_NS, "DataMining")]
    return None


def authorship_exif(existing: bytes | None, settings: MetadataSettings) -> bytes | None:
    """``existing`` EXIF with Artist/Copyright set from ``settings`` (None when nothing to write)."""
    if not settings.author and not settings.copyright:
        return existing
    exif = _load_exif(existing)
    # EXIF text is "ASCII" by the letter of the standard; UTF-8 is what readers
    # (exiftool, Windows, Lightroom) accept, and Pillow would write "?" for each non-ASCII letter
    if settings.author:
        exif[EXIF_ARTIST] = settings.author.encode("utf-8")
    if settings.copyright:
        exif[EXIF_COPYRIGHT] = settings.copyright.encode("utf-8")
    return exif_tobytes(exif)


def _load_exif(existing: bytes | None) -> Image.Exif:
    exif = Image.Exif()
    if existing:
        exif.load(existing if existing.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + existing)
    return exif


def strip_location_exif(existing: bytes | None) -> tuple[bytes | None, bool]:
    """``existing`` EXIF without its GPS block; (bytes, whether there was one)."""
    if not existing:
        return existing, False
    exif = _load_exif(existing)
    if EXIF_GPS_IFD not in exif:
        return existing, False
    del exif[EXIF_GPS_IFD]
    return (exif_tobytes(exif) if len(exif) else None), True


def strip_location_xmp(existing: bytes | None) -> tuple[bytes | None, bool]:
    """``existing`` XMP without its ``exif:GPS*`` properties (elements and attributes)."""
    if not existing or b"GPS" not in existing:
        return existing, False
    text = existing.decode("utf-8", "replace")
    start, end = text.find("<x:xmpmeta"), text.find("</x:xmpmeta>")
    if start < 0 or end < 0:
        return existing, False
    try:
        root = ET.fromstring(text[start:end + len("</x:xmpmeta>")])
    except ET.ParseError:
        return existing, False
    found = False
    for desc in root.iter(_qname(RDF, "Description")):
        for child in list(desc):
            if child.tag.startswith("{" + EXIF_NS + "}GPS"):
                desc.remove(child)
                found = True
        for attr in list(desc.attrib):
            if attr.startswith("{" + EXIF_NS + "}GPS"):
                del desc.attrib[attr]
                found = True
    if not found:
        return existing, False
    body = ET.tostring(root, encoding="unicode")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body
            + '\n<?xpacket end="w"?>').encode("utf-8"), True
