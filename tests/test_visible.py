"""The visible watermark: deterministic rendering, placement, alpha, logos, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import textured
from PIL import Image
from typer.testing import CliRunner

from protect import io as pio
from protect.cli import app
from protect import visible as vis
from protect.visible import HERSHEY, VisibleMark, apply_visible, find_font, font_text_layer, text_layer

needs_font = pytest.mark.skipif(find_font() is None, reason="no Noto Sans CJK / Source Han Sans font installed")


def test_text_renders_identically_twice_and_is_legible():
    a, b = text_layer("(c) Ann 2026", 40), text_layer("(c) Ann 2026", 40)
    assert np.array_equal(a, b)
    assert 40 <= a.shape[0] <= 80 and a.shape[1] > 4 * a.shape[0]
    assert a[..., 3].max() == pytest.approx(1.0, abs=0.02)  # solid lettering
    inside = a[..., 3] > 0.5
    assert a[..., 0][inside].max() > 0.9 and a[..., 0][inside].min() < 0.3  # light fill, dark outline


@pytest.mark.parametrize("position,corner", [("bottom-right", (slice(-60, None), slice(-200, None))),
                                             ("top-left", (slice(0, 60), slice(0, 200)))])
def test_placement_and_nothing_else_changes(position, corner):
    img = np.full((300, 400, 3), 128, np.uint8)
    out = apply_visible(img, VisibleMark(text="sig", position=position, scale=0.1))
    changed = np.any(out != img, axis=2)
    assert changed[corner].sum() == changed.sum() > 0
    assert np.array_equal(apply_visible(img, VisibleMark(text="sig", position=position, scale=0.1)), out)


def test_alpha_respected_grey_and_sixteen_bit():
    img = textured(200, 300, seed=2)
    alpha = np.zeros((200, 300), np.uint8)
    alpha[:100] = 255
    out = apply_visible(img, VisibleMark(text="sig", position="tiled", scale=0.08), alpha=alpha)
    assert np.array_equal(out[100:], img[100:]) and not np.array_equal(out[:100], img[:100])
    grey = apply_visible(img[..., :1], VisibleMark(text="sig", position="center"))
    assert grey.shape == (200, 300, 1)
    wide = apply_visible(img.astype(np.uint16) * 257, VisibleMark(text="sig", position="center"))
    assert wide.dtype == np.uint16
    narrow = apply_visible(img, VisibleMark(text="sig", position="center"))
    assert np.abs(wide.astype(float) / 257 - narrow).max() <= 1.0


def test_logo_uses_its_alpha_and_opacity():
    logo = np.zeros((20, 40, 4), np.uint8)
    logo[..., 0] = 255
    logo[5:15, 10:30, 3] = 255  # an opaque red box in a transparent logo
    img = np.full((200, 200, 3), 255, np.uint8)
    out = apply_visible(img, VisibleMark(logo=logo, position="center", opacity=1.0, scale=0.4)).astype(int)
    assert (out[100, 100] == [255, 0, 0]).all() and (out[0, 0] == 255).all()
    half = apply_visible(img, VisibleMark(logo=logo, position="center", opacity=0.5, scale=0.4)).astype(int)
    assert abs(half[100, 100, 1] - 128) <= 1


def test_bad_marks_are_refused():
    for kw in ({}, {"text": "a", "logo": np.zeros((2, 2, 3), np.uint8)}, {"text": "ü", "font": HERSHEY},
               {"text": "a", "position": "up"}, {"text": "a", "opacity": 0}, {"text": "a\nb"},
               {"text": "a", "font": "/no/such/font.otf"}):
        with pytest.raises(ValueError):
            VisibleMark(**kw)


def test_without_a_font_ascii_falls_back_and_japanese_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(vis, "_font_dirs", lambda: [tmp_path])  # a computer without any of the fonts
    vis._search_fonts.cache_clear()
    try:
        assert VisibleMark(text="(c) Ann").font == HERSHEY
        with pytest.raises(ValueError, match="fonts-noto-cjk"):
            VisibleMark(text="© 山田")
        monkeypatch.setenv("PROTECT_FONT", str(tmp_path / "missing.otf"))
        with pytest.raises(ValueError, match="PROTECT_FONT"):
            VisibleMark(text="© 山田")
    finally:
        vis._search_fonts.cache_clear()


@needs_font
def test_copyright_sign_and_japanese_are_drawn_with_real_glyphs():
    font = find_font()
    mark = VisibleMark(text="© 山田花子 2026")
    assert mark.font == font
    layer = font_text_layer("© 山田花子", 40, font)
    assert np.array_equal(layer, font_text_layer("© 山田花子", 40, font))  # deterministic
    assert 36 <= layer.shape[0] <= 80 and layer[..., 3].max() > 0.95
    inside = layer[..., 3] > 0.5
    assert layer[..., 0][inside].max() > 0.9 and layer[..., 0][inside].min() < 0.3  # light fill, dark outline
    # each glyph is its own shape, not the font's "missing glyph" box
    glyphs = [font_text_layer(c, 40, font)[..., 3] for c in ("©", "山", "田", "\U000f0000")]
    tofu = glyphs[-1]
    for g in glyphs[:-1]:
        assert g.shape != tofu.shape or not np.allclose(g, tofu, atol=0.05)


def test_a_signature_too_big_for_the_picture_is_shrunk_with_a_note():
    img = np.full((120, 160, 3), 128, np.uint8)
    notes = []
    out = apply_visible(img, VisibleMark(text="a very long signature indeed", scale=0.3), notes=notes)
    assert len(notes) == 1 and "did not fit" in notes[0]
    changed = np.any(out != img, axis=2)
    margin = 2  # 2 % of 120 rounded, at least 2
    assert not changed[:, :margin].any() and not changed[:, -margin:].any()  # nothing clipped at the edges
    notes = []
    apply_visible(img, VisibleMark(text="ok", scale=0.1), notes=notes)
    assert notes == []


@needs_font
def test_cli_draws_japanese_and_reports_a_shrunk_signature(tmp_path):
    Image.fromarray(textured(120, 160)).save(tmp_path / "a.png")
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--key", "k", "--visible", "© 山田花子 2026 イラスト",
                                   "--visible-scale", "0.2"])
    assert res.exit_code == 0, res.output
    assert "did not fit" in res.output


def test_cli_visible_text_and_logo(tmp_path):
    Image.fromarray(textured(120, 160)).save(tmp_path / "a.png")
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--key", "k", "--visible", "(c) me", "-q"])
    assert res.exit_code == 0, res.output
    out = pio.read_image(tmp_path / "a_protected.png").frames[0].pixels
    assert out.shape == (120, 160, 3)
    Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(tmp_path / "logo.png")
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--key", "k", "--visible-image", str(tmp_path / "logo.png"),
                                   "--overwrite", "-q"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [str(tmp_path / "a.png"), "--visible", "a", "--visible-position", "up"])
    assert res.exit_code == 2
