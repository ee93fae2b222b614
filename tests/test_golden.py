"""Golden hashes: what protect writes for a fixed sample and key, pinned.

THE RULE: when one of these hashes changes, the algorithm changed, so bump
its version string, then update the hash:

* a protection method's hash (``GOLDEN_PROTECT``) -> its entry in
  ``protect.pipeline.ALGORITHMS`` (e.g. ``gen16c-ss2-v2`` -> ``-v3``);
* the invisible mark's hash (``GOLDEN_MARK``) -> ``protect.watermark.ALGORITHM``
  (``qim16w-sync128-v3``) and its key-derivation domain ``watermark._DOMAIN``.

The version is part of the seed and of the skip-if-done fingerprint, so a
bump means an old output is never taken for a new one, and two versions'
noise fields are unrelated.  A hash that changes with no change of
algorithm (a refactor that moved a rounding) is a bug in the refactor, not a
reason to update the table.  The same bytes are promised on every machine
(``protect_bytes``): a hash that differs on another CPU is a determinism bug.

What is hashed is the array (dtype, shape and pixel bytes), not an encoded
file, so the versions of the encoders (Pillow, libpng, zlib) do not matter;
the input is a PNG from ``samples/`` (lossless, so its decoded pixels are
fixed too; their hash is pinned as well, ``GOLDEN_INPUT``).

The values are data, in ``tests/golden_hashes.json``.  How they were
produced: ``PYTHONPATH=src python tests/test_golden.py`` prints the whole
table (``--write`` writes it to that file); it was run on Linux x86-64
(numpy 2, numba 0.6x) on the commit that added this test, and again after
each version bump.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from protect import io as pio
from protect import pipeline as pl
from protect import watermark as wm

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
KEY = "golden-key-16"
PAYLOAD = b"golden16"

#: (sample file, method, strength) -> SHA-256 of protect_image's output.
CASES = [
    ("comic_text.png", "adversarial", 0.4),
    ("comic_text.png", "adversarial", 1.0),
    ("comic_text.png", "texture", 0.4),
    ("comic_text.png", "texture", 1.0),
    ("painting_16bit.png", "adversarial", 0.4),
    ("painting_16bit.png", "texture", 0.4),
    ("sprite_transparent.png", "adversarial", 0.4),
    ("sprite_transparent.png", "texture", 0.4),
]

#: The golden values, as data (tests/golden_hashes.json): the decoded inputs, each case of CASES, the mark.
GOLDEN_FILE = Path(__file__).with_name("golden_hashes.json")
_GOLDEN = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
GOLDEN_INPUT: dict[str, str] = _GOLDEN["input"]
GOLDEN_PROTECT: dict[tuple[str, str, float], str] = {
    (c["sample"], c["method"], float(c["strength"])): c["sha256"] for c in _GOLDEN["protect"]}
#: The invisible mark embedded (payload PAYLOAD, key KEY) on the sample as it is read.
MARK_SAMPLE: str = _GOLDEN["mark"]["sample"]
GOLDEN_MARK: str = _GOLDEN["mark"]["sha256"]


def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes (independent of any file format)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(a.dtype.str.encode())
    h.update(repr(tuple(a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _frame(name: str) -> pio.Frame:
    return pio.read_image(SAMPLES / name).frames[0]


def _protected(name: str, method: str, strength: float) -> np.ndarray:
    fr = _frame(name)
    out, _ = pl.protect_image(fr.pixels, pl.Settings(strength, KEY, method), alpha=fr.alpha)
    return out


def _marked(name: str) -> np.ndarray:
    fr = _frame(name)
    return wm.embed_mark(fr.pixels, PAYLOAD, KEY, alpha=fr.alpha)


def _fail_message(what: str, version: str) -> str:
    return (f"{what} changed: the algorithm's output is not what it was. If the change is meant, bump the "
            f"version ({version}) and update the golden hash (`PYTHONPATH=src python tests/test_golden.py --write`); "
            "if it is not, the change broke something")


def test_cases_cover_every_method_at_two_strengths():
    for method in pl.METHODS:
        assert len({s for _, m, s in CASES if m == method}) >= 2, method


@pytest.mark.parametrize("name", sorted({c[0] for c in CASES}))
def test_golden_input(name):
    fr = _frame(name)
    got = array_digest(fr.pixels) + ("" if fr.alpha is None else " " + array_digest(fr.alpha))
    assert got == GOLDEN_INPUT[name], f"the decoded sample {name} changed (samples/ or protect.io's decoding)"


@pytest.mark.parametrize("name,method,strength", CASES)
def test_golden_protect(name, method, strength):
    got = array_digest(_protected(name, method, strength))
    assert got == GOLDEN_PROTECT[(name, method, strength)], _fail_message(
        f"protect_image({name}, {method}, strength {strength})", pl.ALGORITHMS[method])


def test_golden_mark():
    assert array_digest(_marked(MARK_SAMPLE)) == GOLDEN_MARK, _fail_message(
        f"embed_mark({MARK_SAMPLE})", wm.ALGORITHM)


# ------------------------------------------------------------------ versions reach the seed


def test_every_algorithm_version_gives_its_own_seed():
    pixels = _frame("comic_text.png").pixels
    seeds = {m: pl.derive_seed(KEY, pixels, v) for m, v in pl.ALGORITHMS.items()}
    assert len(set(seeds.values())) == len(seeds), seeds
    assert len(set(pl.ALGORITHMS.values())) == len(pl.ALGORITHMS)  # two methods never share a version
    for method, version in pl.ALGORITHMS.items():
        # changing only the version string changes the seed, whichever part of it changes
        for other in (version + "x", version[:-1] + chr(ord(version[-1]) + 1), version.upper(), ""):
            assert pl.derive_seed(KEY, pixels, other) != seeds[method], (method, other)
    assert pl.derive_seed(KEY, pixels) == seeds[pl.DEFAULT_METHOD]


@pytest.mark.parametrize("method", pl.METHODS)
def test_the_version_in_use_reaches_the_output(method, monkeypatch):
    # protect_image seeds with the method's *current* version: bumping it changes the noise
    img = np.ascontiguousarray(_frame("comic_text.png").pixels[:96, :128])
    before, _ = pl.protect_image(img, pl.Settings(0.4, KEY, method))
    monkeypatch.setitem(pl.ALGORITHMS, method, pl.ALGORITHMS[method] + "-bumped")
    after, _ = pl.protect_image(img, pl.Settings(0.4, KEY, method))
    assert not np.array_equal(before, after)


def test_the_mark_version_and_its_key_domain_move_together():
    # The mark's layout is seeded by watermark._DOMAIN, not by ALGORITHM: a bump of one without the
    # other would leave two versions with one layout.  Both end in the same version.
    assert wm._DOMAIN.decode().rsplit("-", 1)[-1] == wm.ALGORITHM.rsplit("-", 1)[-1]
    seed = wm._key_seed(KEY, b"golden")
    import unittest.mock

    with unittest.mock.patch.object(wm, "_DOMAIN", wm._DOMAIN + b"x"):
        assert wm._key_seed(KEY, b"golden") != seed


def _table() -> dict:  # pragma: no cover - run by hand, see the module docstring
    def inputs(name: str) -> str:
        fr = _frame(name)
        return array_digest(fr.pixels) + ("" if fr.alpha is None else " " + array_digest(fr.alpha))

    return {"comment": _GOLDEN["comment"],
            "input": {name: inputs(name) for name in sorted({c[0] for c in CASES})},
            "protect": [{"sample": n, "method": m, "strength": st, "sha256": array_digest(_protected(n, m, st))}
                        for n, m, st in CASES],
            "mark": {"sample": MARK_SAMPLE, "sha256": array_digest(_marked(MARK_SAMPLE))}}


if __name__ == "__main__":  # pragma: no cover
    table = json.dumps(_table(), indent=2) + "\n"
    if "--write" in sys.argv[1:]:  # after a version bump only (THE RULE above)
        GOLDEN_FILE.write_text(table, encoding="utf-8")
    print(table, end="")
