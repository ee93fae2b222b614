"""One options builder for the command line, the page and the app (protect.options)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from protect import batch
from protect.options import OptionError, build_options, options_from_mapping, with_key
from protect.pipeline import DEFAULT_STRENGTH, STRENGTH_PRESETS

ROOT = Path(__file__).resolve().parents[1]

#: A value other than the default for every setting the app reads from protect.toml.
APP_VALUES = {"strength": 0.7, "method": "texture", "visible_position": "top-left", "format": "webp",
              "jpeg_quality": 80, "author": "Ann", "copyright": "(c) Ann", "mark": "ann", "visible": "Ann",
              "opt_out": False}


def _app():
    sys.path.insert(0, str(ROOT / "cli"))
    try:
        import protect_dragdrop as dd
    finally:
        sys.path.pop(0)
    return dd


def test_the_app_passes_the_method():
    dd = _app()
    assert dd.app_options({**dd.DEFAULTS, "method": "texture"}, "k").settings.method == "texture"
    assert dd.app_options(dict(dd.DEFAULTS), "k").settings.method == "adversarial"


def test_every_setting_of_the_app_reaches_the_options():
    dd = _app()
    assert set(APP_VALUES) == set(dd.DEFAULTS) - {"workers"}  # a new app setting needs a value here
    for name, value in APP_VALUES.items():
        extra = {"visible": "Ann"} if name == "visible_position" else {}  # a position needs a signature
        before = dd.app_options({**dd.DEFAULTS, **extra}, "k")
        after = dd.app_options({**dd.DEFAULTS, **extra, name: value}, "k")
        assert after != before, name


def test_cli_page_and_app_build_the_same_options(tmp_path, monkeypatch):
    dd = _app()
    settings = {**dd.DEFAULTS, **APP_VALUES}
    app = dd.app_options(settings, "k")
    page = options_from_mapping(settings, key="k")
    assert app == page
    # the command line, with the same settings as flags
    seen = {}

    def fake_run_batch(jobs, options, **kw):
        seen["options"] = options
        return batch.BatchReport()

    monkeypatch.setattr("protect.cli.run_batch", fake_run_batch)
    monkeypatch.setattr("protect.cli.warm_jit", lambda **kw: None)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    from protect.cli import app as cli_app

    res = CliRunner().invoke(cli_app, [str(tmp_path / "a.png"), "--key", "k", "-q", "--strength", "0.7",
                                       "--method", "texture", "--visible-position", "top-left", "-f", "webp",
                                       "--jpeg-quality", "80", "--author", "Ann", "--copyright", "(c) Ann",
                                       "--mark", "ann", "--visible", "Ann", "--no-metadata"])
    assert res.exit_code == 0, res.output
    assert seen["options"] == app


def test_strength_preset_and_defaults():
    for name, value in STRENGTH_PRESETS.items():
        assert options_from_mapping({"preset": name}, key="k").settings.strength == value
    assert options_from_mapping({"strength": 0.15, "preset": "strong"}, key="k").settings.strength == 0.15
    opts = options_from_mapping({"mark": "", "visible": "", "method": None}, key="k")  # empty page fields
    assert opts == build_options(key="k") and opts.settings.strength == DEFAULT_STRENGTH
    assert opts == batch.Options(opts.settings)


@pytest.mark.parametrize("settings,name", [
    ({"strength": 2}, "strength"), ({"method": "magic"}, "method"), ({"format": "heic"}, "format"),
    ({"mark": "far too long a mark"}, "mark"), ({"visible": "a\nb"}, "visible"),
])
def test_a_setting_that_cannot_be_used_is_named(settings, name):
    with pytest.raises(OptionError) as exc:
        options_from_mapping(settings, key="k")
    assert exc.value.option == name and isinstance(exc.value, ValueError)


def test_with_key_checks_the_settings_first_and_the_key_after():
    opts = build_options(key="", strength=0.3, mark="ann")
    keyed = with_key(opts, "secret")
    assert keyed.settings.key == "secret" and dataclasses.replace(keyed.settings, key="") == opts.settings
    assert keyed.mark == opts.mark
