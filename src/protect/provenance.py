"""C2PA provenance (optional extra ``protect-art[c2pa]``): a signed manifest saying
"not for AI training".

``sign_c2pa`` takes the encoded bytes of an output and returns them with a
C2PA manifest embedded, signed offline with the artist's certificate chain
and private key (``c2pa-python``; nothing is sent anywhere, no timestamp
authority is contacted).  The manifest holds:

* ``c2pa.actions.v2``: ``c2pa.created`` with the IPTC digital source type
  ``digitalCreation`` (made by a person with software);
* ``c2pa.training-mining``: ``c2pa.ai_training``, ``c2pa.ai_generative_training``,
  ``c2pa.ai_inference`` and ``c2pa.data_mining`` all ``notAllowed``.

A certificate that is not on a C2PA trust list still gives a valid manifest;
readers report the signer as untrusted.  The manifest carries the
certificate chain, so it adds tens of kilobytes to each file.
"""

from __future__ import annotations

import io
import json

from . import __version__

__all__ = ["ProvenanceError", "ProvenanceUnavailable", "sign_c2pa", "MIME", "training_mining_assertion", "ALGORITHMS"]

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "TIFF": "image/tiff", "GIF": "image/gif"}
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
_NOT_ALLOWED = {"use": "notAllowed"}


class ProvenanceError(RuntimeError):
    """A manifest could not be signed (the message is one line, for the user)."""


class ProvenanceUnavailable(ProvenanceError):
    """c2pa-python is not installed, or the format cannot carry a manifest."""


def training_mining_assertion() -> dict:
    entries = ("c2pa.ai_training", "c2pa.ai_generative_training", "c2pa.ai_inference", "c2pa.data_mining")
    return {"label": "c2pa.training-mining", "data": {"entries": {e: dict(_NOT_ALLOWED) for e in entries}}}


def sign_c2pa(data: bytes, fmt: str, *, cert_chain: bytes, private_key: bytes, title: str,
              algorithm: str = "es256") -> bytes:
    """``data`` (an encoded image of format ``fmt``) with a signed C2PA manifest embedded."""
    try:
        import c2pa
    except ImportError:
        raise ProvenanceUnavailable("C2PA signing needs the c2pa extra (pip install 'protect-art[c2pa]')") from None
    if fmt not in MIME:
        raise ProvenanceUnavailable(f"{fmt} files cannot carry a C2PA manifest; use PNG, JPEG, WebP, TIFF or GIF")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown C2PA signing algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    manifest = {
        "claim_generator_info": [{"name": "protect", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation",
            }]}},
            training_mining_assertion(),
        ],
    }
    alg = getattr(c2pa.C2paSigningAlg, algorithm.upper())
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, cert_chain, private_key, None))
        builder = c2pa.Builder(json.dumps(manifest))
        out = io.BytesIO()
        builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {str(exc).splitlines()[0]}") from None
    return out.getvalue()
