"""C2PA manifest (optional extra): signed offline, read back with c2pa-python.

Skipped without c2pa-python or cryptography (used here only to make a
throw-away certificate chain).
"""

from __future__ import annotations

import datetime
import json

import pytest
from conftest import textured
from PIL import Image
from typer.testing import CliRunner

c2pa = pytest.importorskip("c2pa")
pytest.importorskip("cryptography")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from protect.cli import app  # noqa: E402


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "t")])


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    """A test CA and an ES256 signing certificate with the key usages C2PA requires."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(_name("Ann Artist")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("c2pa")
    pem = serialization.Encoding.PEM
    (d / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "chain.pem", d / "key.pem"


@pytest.mark.parametrize("ext,mime", [(".png", "image/png"), (".jpg", "image/jpeg")])
def test_manifest_says_not_allowed_and_validates(tmp_path, credentials, ext, mime):
    Image.fromarray(textured()).save(tmp_path / f"a{ext}")
    res = CliRunner().invoke(app, [str(tmp_path / f"a{ext}"), "--key", "k", "--c2pa", str(credentials[0]),
                                   str(credentials[1]), "-q"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / f"a_protected{ext}", "rb") as f:
        report = json.loads(c2pa.Reader(mime, f).json())
    manifest = report["manifests"][report["active_manifest"]]
    tm = next(a for a in manifest["assertions"] if a["label"] == "cawg.training-mining")
    assert {v["use"] for v in tm["data"]["entries"].values()} == {"notAllowed"}
    assert set(tm["data"]["entries"]) == {"cawg.ai_training", "cawg.ai_generative_training", "cawg.ai_inference",
                                          "cawg.data_mining"}
    assert report["validation_state"] == "Valid"  # a self-made CA is only "untrusted", not invalid
    codes = {s["code"] for s in report.get("validation_status", [])}
    assert codes <= {"signingCredential.untrusted"}


def test_bad_key_is_a_per_file_error(tmp_path, credentials):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    (tmp_path / "bad.pem").write_text("not a key")
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--key", "k", "--c2pa", str(credentials[0]),
                                   str(tmp_path / "bad.pem")])
    assert res.exit_code == 1 and not (tmp_path / "a_protected.png").exists()
    line = next(x for x in res.output.splitlines() if x.startswith("error:"))
    assert "a.png: C2PA signing failed" in line


def test_opt_out_genai_states_generative_training_only(tmp_path, credentials):
    Image.fromarray(textured()).save(tmp_path / "a.png")
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--key", "k", "--opt-out", "genai", "--c2pa",
                                   str(credentials[0]), str(credentials[1]), "-q"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "a_protected.png", "rb") as f:
        report = json.loads(c2pa.Reader("image/png", f).json())
    manifest = report["manifests"][report["active_manifest"]]
    tm = next(a for a in manifest["assertions"] if a["label"] == "cawg.training-mining")
    assert tm["data"]["entries"] == {"cawg.ai_generative_training": {"use": "notAllowed"}}
