"""The skip-if-done fingerprint covers every option that changes the output bytes.

As black's cache test does for its mode: for each option, a changed value
must change the fingerprint, so an output written with other settings is
never taken as up to date.  The fingerprint is derived from the fields of
``batch.Options`` (minus ``FINGERPRINT_EXCLUDED``, each with its reason):
a field added to ``Options`` without a changed value here fails
``test_every_field_is_covered_or_excluded``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from protect import Settings, batch
from protect.metadata import MetadataSettings
from protect.visible import HERSHEY, VisibleMark

BASE = batch.Options(Settings(0.4, "k"))

#: For each fingerprinted field of Options (and of the settings nested in it): options that
#: differ from BASE in that field only.
CHANGED = {
    "settings": [replace(BASE, settings=Settings(0.5, "k")),
                 replace(BASE, settings=Settings(0.4, "another key")),
                 replace(BASE, settings=Settings(0.4, "k", "texture"))],
    "format": [replace(BASE, format="webp")],
    "jpeg_quality": [replace(BASE, jpeg_quality=80)],
    "mark": [replace(BASE, mark=b"12345678"), replace(BASE, mark=b"87654321")],
    "metadata": [replace(BASE, metadata=MetadataSettings(opt_out=False)),
                 replace(BASE, metadata=MetadataSettings(author="Ann")),
                 replace(BASE, metadata=MetadataSettings(copyright="(c) Ann")),
                 replace(BASE, metadata=MetadataSettings(opt_out_kind="genai")),
                 replace(BASE, metadata=MetadataSettings(strip_location=True))],
    "visible": [replace(BASE, visible=VisibleMark(text="Ann", font=HERSHEY)),
                replace(BASE, visible=VisibleMark(logo=np.zeros((4, 4, 3), np.uint8)))],
    "c2pa": [replace(BASE, c2pa=(b"chain", b"private key"))],
    "c2pa_alg": [replace(BASE, c2pa_alg="ps256")],
}

#: Nested settings: every field of these dataclasses, changed alone.
NESTED_CHANGES = {
    Settings: {"strength": 0.5, "key": "another key", "method": "texture"},
    MetadataSettings: {"opt_out": False, "author": "Ann", "copyright": "(c) Ann", "opt_out_kind": "genai",
                       "strip_location": True},
    VisibleMark: {"text": "Bob", "position": "top-left", "opacity": 0.9, "scale": 0.1, "font": "other.ttf"},
}


def test_every_field_is_covered_or_excluded():
    names = {f.name for f in dataclasses.fields(batch.Options)}
    assert set(batch.FINGERPRINT_EXCLUDED) <= names, "the exclusion list names a field Options does not have"
    assert set(CHANGED) == names - set(batch.FINGERPRINT_EXCLUDED), (
        "a fingerprinted Options field has no changed value in CHANGED (or an excluded one has)")
    for name, why in batch.FINGERPRINT_EXCLUDED.items():
        assert isinstance(why, str) and len(why) > 10, f"say why {name} is left out"


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_changing_each_included_field_changes_the_fingerprint(name):
    base = BASE.fingerprint(None, b"s")
    prints = [o.fingerprint(None, b"s") for o in CHANGED[name]]
    assert base not in prints, name
    assert len(set(prints)) == len(prints), name  # the variants differ from each other too
    for o in CHANGED[name]:
        assert [f.name for f in dataclasses.fields(o) if getattr(o, f.name) != getattr(BASE, f.name)] == [name]


@pytest.mark.parametrize("cls", list(NESTED_CHANGES), ids=lambda c: c.__name__)
def test_every_nested_field_changes_the_fingerprint(cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("some.ttf", "other.ttf"):  # VisibleMark checks that its font file exists
        (tmp_path / name).write_bytes(b"")
    base_obj = {Settings: BASE.settings, MetadataSettings: MetadataSettings(),
                VisibleMark: VisibleMark(text="Ann", font="some.ttf")}[cls]
    where = {Settings: "settings", MetadataSettings: "metadata", VisibleMark: "visible"}[cls]
    assert set(NESTED_CHANGES[cls]) == {f.name for f in dataclasses.fields(cls)} - ({"logo"} if cls is VisibleMark
                                                                                      else set())
    base = replace(BASE, **{where: base_obj}).fingerprint(None)
    for field, value in NESTED_CHANGES[cls].items():
        changed = replace(BASE, **{where: replace(base_obj, **{field: value})})
        assert changed.fingerprint(None) != base, (cls.__name__, field)


def test_excluded_fields_do_not_change_the_fingerprint():
    base = BASE.fingerprint(None)
    assert replace(BASE, max_pixels=1000).fingerprint(None) == base
    assert replace(BASE, verify=True).fingerprint(None) == base


def test_fingerprint_depends_on_secret_version_and_mask(tmp_path, monkeypatch):
    assert BASE.fingerprint(None, b"a") != BASE.fingerprint(None, b"b")
    mask = tmp_path / "m.png"
    mask.write_bytes(b"x")
    assert BASE.fingerprint(mask) != BASE.fingerprint(None)
    before = BASE.fingerprint(None)
    monkeypatch.setattr(batch, "__version__", "0.0.0-other")
    assert BASE.fingerprint(None) != before


def test_fingerprint_never_holds_the_key():
    import json

    key = "a-very-recognisable-key"
    opts = batch.Options(Settings(0.4, key))
    payload = json.dumps(batch._fingerprint_value(opts.settings))
    assert key not in payload and batch._key_id(key) in payload
