"""C2PA provenance (optional extra ``protect-art[c2pa]``): a signed manifest saying
"not for AI training".

``sign_c2pa`` takes the encoded bytes of an output and returns them with a
C2PA manifest embedded, signed offline with the artist's certificate chain
and private key (``c2pa-python``; nothing is sent anywhere, no timestamp
authority is contacted).  The manifest holds:

* ``c2pa.actions.v2``: ``c2pa.created`` with the IPTC digital source type
  ``digitalCreation`` (made by a person with software);
* ``cawg.training-mining`` (the CAWG Training and Data Mining assertion,
  which replaced C2PA 1.x's ``c2pa.training-mining`` in C2PA 2.x):
  ``cawg.ai_training``, ``cawg.ai_generative_training``, ``cawg.ai_inference``
  and ``cawg.data_mining`` all ``notAllowed``; with ``--opt-out genai`` only
  ``cawg.ai_generative_training`` is ``notAllowed`` (the others are not stated).

A certificate that is not on a C2PA trust list still gives a valid manifest;
readers report the signer as untrusted.  The manifest carries the
certificate chain, so it adds tens of kilobytes to each file.
"""

from __future__ import annotations

import io
import json

from . import __version__

__all__ = [
    "ProvenanceError", "ProvenanceUnavailable", "sign_c2pa", "MIME", "training_mining_assertion", "SIGNING_ALGORITHMS",
]

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "TIFF": "image/tiff", "GIF": "image/gif"}
#: The C2PA signing algorithms --c2pa-alg accepts (not protect's own algorithm versions: pipeline.ALGORITHMS).
SIGNING_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
_NOT_ALLOWED = {"use": "notAllowed"}


class ProvenanceError(RuntimeError):
    """A manifest could not be signed (the message is one line, for the user)."""


class ProvenanceUnavailable(ProvenanceError):
    """c2pa-python is not installed, or the format cannot carry a manifest."""


TRAINING_MINING_LABEL = "cawg.training-mining"
TRAINING_MINING_ENTRIES = ("cawg.ai_training", "cawg.ai_generative_training", "cawg.ai_inference",
                           "cawg.data_mining")


def training_mining_assertion(*, genai_only: bool = False) -> dict:
    entries = ("cawg.ai_generative_training",) if genai_only else TRAINING_MINING_ENTRIES
    return {"label": TRAINING_MINING_LABEL, "data": {"entries": {e: dict(_NOT_ALLOWED) for e in entries}}}


def sign_c2pa(data: bytes, fmt: str, *, cert_chain: bytes, private_key: bytes, title: str,
              algorithm: str = "es256", genai_only: bool = False) -> bytes:
    """``data`` (an encoded image of format ``fmt``) with a signed C2PA manifest embedded."""
    try:
        import c2pa
    except ImportError:
        raise ProvenanceUnavailable("C2PA signing needs the c2pa extra (pip install 'protect-art[c2pa]')") from None
    if fmt not in MIME:
        raise ProvenanceUnavailable(f"{fmt} files cannot carry a C2PA manifest; use PNG, JPEG, WebP, TIFF or GIF")
    if algorithm not in SIGNING_ALGORITHMS:
        raise ValueError(f"unknown C2PA signing algorithm {algorithm!r}; choose from {', '.join(SIGNING_ALGORITHMS)}")
    manifest = {
        "claim_generator_info": [{"name": "protect", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation",
            }]}},
            training_mining_assertion(genai_only=genai_only),
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
