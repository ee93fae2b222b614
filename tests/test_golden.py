"""Golden hashes: what protect writes for a fixed sample and key, pinned.

THE RULE: when one of these hashes changes, the algorithm changed, so bump
its version string, then update the hash:

* a protection method's hash (``GOLDEN_PROTECT``) -> its entry in
  ``protect.pipeline.ALGORITHMS`` (e.g. ``gen16c-ss2-v2`` -> ``-v3``);
* the invisible mark's hash (``GOLDEN_MARK``) -> ``protect.watermark.ALGORITHM``
  (``qim32-sync128-v2``) and its key-derivation domain ``watermark._DOMAIN``.

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

How the values were produced: ``PYTHONPATH=src python tests/test_golden.py``
prints the whole table; it was run on Linux x86-64 (numpy 2, numba 0.6x) on
the commit that added this file, and again after each version bump.
"""

from __future__ import annotations

import hashlib
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

GOLDEN_INPUT = {
    "comic_text.png":
        "76b9adf5b10089a662c23c2b56b28c51499a7c8f5f9c01cc7eca08718b8eea90",
    "painting_16bit.png":
        "8adcfaf5f50e7e52ee64a1f80ecd65700678e6833e4f43138b11bf6e4b7fe91b",
    "sprite_transparent.png":
        "7b9f4307f2e25a91ecbf93db4a11f643129d56f27bfdf85ac84cacade2f6b831"
        " b600e93a415c519dcc6d6b95ddd20949293bc843f0463033d4bab4f6f36fc97f",
}

GOLDEN_PROTECT = {
    ("comic_text.png", "adversarial", 0.4):
        "61f37ab88bf17b692986bcd59a0dc4d9d8b770054351a9ed99c47a781679130e",
    ("comic_text.png", "adversarial", 1.0):
        "9f2905edea2b72fb660e52eeed4fe7bb7d162573b588a12e1f79be61f6878528",
    ("comic_text.png", "texture", 0.4):
        "b4809fafb1202dd4838a4d045677b8f1339df31ecd4eb9d4abdf4096a44a0dfe",
    ("comic_text.png", "texture", 1.0):
        "61ba034a4614d95989aed3f62fbde43bf423bac62e4a9128dd671e1152eb76ab",
    ("painting_16bit.png", "adversarial", 0.4):
        "04f64c7024a71f97040aa87a29e04aed153ad45fd5b1cc39e5acc3865296e665",
    ("painting_16bit.png", "texture", 0.4):
        "1a4d535ae5a4852d0ab0d294fa79657841b0d4b24c0119f45047eaf9846d210d",
    ("sprite_transparent.png", "adversarial", 0.4):
        "e1778b04fbcb976ac2377903c879f32708713ca3cb8b219c3cefc697fa99e82b",
    ("sprite_transparent.png", "texture", 0.4):
        "b716a31fceb20e0bc7976c4a2bfda6515fe855edbc417d9e066035af76d63228",
}

#: The invisible mark embedded (payload PAYLOAD, key KEY) on the sample as it is read.
MARK_SAMPLE = "comic_text.png"
GOLDEN_MARK = "1812ee63b38f58178826d1f73337b01261d766a36c88db65399c85d1ad6e316f"


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
            f"version ({version}) and update the golden hash (run `PYTHONPATH=src python tests/test_golden.py`); "
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


def _table() -> str:  # pragma: no cover - run by hand, see the module docstring
    lines = ["GOLDEN_INPUT = {"]
    for name in sorted({c[0] for c in CASES}):
        fr = _frame(name)
        got = array_digest(fr.pixels) + ("" if fr.alpha is None else " " + array_digest(fr.alpha))
        lines.append(f'    "{name}":\n        "' + got.replace(" ", '"\n        " ') + '",')
    lines += ["}", "", "GOLDEN_PROTECT = {"]
    for name, method, strength in CASES:
        lines.append(f'    ("{name}", "{method}", {strength}):\n'
                     f'        "{array_digest(_protected(name, method, strength))}",')
    lines += ["}", "", f'GOLDEN_MARK = "{array_digest(_marked(MARK_SAMPLE))}"']
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(_table())
