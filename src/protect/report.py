"""The visual verify report: a contact sheet per image and an HTML summary.

Pure drawing: arrays and :class:`~protect.verify.PairReport` in, an RGB array,
an HTML string or verdict lines out.  ``verify_run.py`` writes the sheets and
``index.html`` through ``io.py``; ``cli.py`` prints the verdict lines.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .declutter import ATTACKS
from .verify import PairReport, median_by_attack

__all__ = ["contact_sheet", "window_of_interest", "render_html", "SHEET_ATTACKS", "sheet_filename", "plain_verdict",
           "attack_table", "attack_table_text", "ATTACK_FIELDS"]

SHEET_ATTACKS = ("adverse_cleaner", "jpeg75")  # the two attacks drawn on every sheet
PANEL = 384  # panel side in pixels (1:1 crops of the image)
LABEL = 26  # height of a label bar
AMPLIFY = 10.0  # the difference panels show 128 + 10 * difference
_BG = (236, 236, 236)


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def window_of_interest(d: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` x ``side`` window with the most
    protection energy (so the 1:1 crop shows the noise, not an empty sky)."""
    h, w = d.shape[:2]
    if h <= side and w <= side:
        return 0, 0
    e = np.sum(d.astype(np.float64) ** 2, axis=2)
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = e.cumsum(0).cumsum(1)
    sh, sw = min(side, h), min(side, w)
    ys = np.arange(0, h - sh + 1, 8)
    xs = np.arange(0, w - sw + 1, 8)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    sums = integral[y + sh, x + sw] - integral[y, x + sw] - integral[y + sh, x] + integral[y, x]
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(ys[iy]), int(xs[ix])


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL, panel.shape[1], 3), _BG, np.uint8)
    cv2.putText(bar, text, (6, LABEL - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (20, 20, 20), 1, cv2.LINE_AA)
    return np.vstack([bar, panel])


def _fit(img: np.ndarray, side: int) -> np.ndarray:
    """Pad (not scale) a crop to ``side`` x ``side`` on the background colour."""
    out = np.full((side, side, 3), _BG, np.uint8)
    h, w = img.shape[:2]
    out[:h, :w] = img[:side, :side]
    return out


def _thumbnail(img: np.ndarray, side: int, *, reduce=cv2.INTER_AREA) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    scale = min(side / h, side / w, 1.0)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    return cv2.resize(img, (tw, th), interpolation=reduce), scale


def _amplified(diff: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(128.0 + AMPLIFY * diff), 0, 255).astype(np.uint8)


def _noise_map(d: np.ndarray, side: int) -> np.ndarray:
    """Where the noise is: |d| max-pooled to a thumbnail (black = none)."""
    mag = np.abs(d).max(axis=2)
    h, w = mag.shape
    k = max(1, math.ceil(max(h, w) / side))
    ph, pw = (-h) % k, (-w) % k
    mag = np.pad(mag, ((0, ph), (0, pw)))
    pooled = mag.reshape(mag.shape[0] // k, k, mag.shape[1] // k, k).max(axis=(1, 3))
    scale = 255.0 / max(float(pooled.max()), 1.0)
    return _rgb(np.clip(pooled * scale, 0, 255).astype(np.uint8)[..., None])


def _text_panel(lines: Sequence[str], side: int) -> np.ndarray:
    out = np.full((side, side, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(out, line, (10, 28 + 24 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def contact_sheet(report: PairReport, original8: np.ndarray, protected8: np.ndarray, *,
                  panel: int = PANEL) -> np.ndarray:
    """Two rows of five panels (RGB uint8).

    Top, 1:1 pixels of the window where the protection is strongest:
    original | protected | difference x10 | after AdverseCleaner | after
    JPEG 75.  Bottom: the whole image with that window outlined | the
    figures | where the noise is (whole image) | what is left of the
    difference after AdverseCleaner, x10 | the same after JPEG 75.
    ``report`` must have been made with ``keep=SHEET_ATTACKS``.
    """
    o, p = _rgb(original8), _rgb(protected8)
    d = p.astype(np.float32) - o.astype(np.float32)
    y0, x0 = window_of_interest(d, panel)
    win = (slice(y0, y0 + panel), slice(x0, x0 + panel))
    cleaned = {a: _rgb(report.images[a]) for a in SHEET_ATTACKS}
    left = {a: cleaned[a].astype(np.float32) - _rgb(report.images[a + ":original"]).astype(np.float32)
            for a in SHEET_ATTACKS}
    by_name = {a.attack: a for a in report.attacks}

    def surv(a: str) -> str:
        s = by_name[a].survival if a in by_name else None
        return "" if s is None else f" (survival {s:.2f})"

    top = [
        _label(_fit(o[win], panel), "original (1:1 crop)"),
        _label(_fit(p[win], panel), "protected"),
        _label(_fit(_amplified(d[win]), panel), "difference x10"),
        _label(_fit(cleaned["adverse_cleaner"][win], panel), "after AdverseCleaner"),
        _label(_fit(cleaned["jpeg75"][win], panel), "after JPEG 75"),
    ]
    thumb, scale = _thumbnail(o, panel)
    thumb = thumb.copy()
    cv2.rectangle(thumb, (int(x0 * scale), int(y0 * scale)),
                  (int(min(x0 + panel, o.shape[1]) * scale) - 1, int(min(y0 + panel, o.shape[0]) * scale) - 1),
                  (230, 30, 30), 2)
    figures = [
        f"{report.width} x {report.height} px",
        f"PSNR {report.psnr:.1f} dB",
        f"SSIM {report.ssim:.4f}",
        f"SSIMULACRA2 {report.ssimulacra2:.1f}",
        f"CIEDE2000 mean {report.ciede2000_mean:.2f}",
        f"CIEDE2000 p99 {report.ciede2000_p99:.2f}",
        f"window at x={x0}, y={y0}",
    ]
    bottom = [
        _label(_fit(thumb, panel), "whole image"),
        _label(_text_panel(figures, panel), "figures"),
        _label(_fit(_noise_map(d, panel), panel), "where the noise is"),
        _label(_fit(_amplified(left["adverse_cleaner"][win]), panel),
               f"left after AdverseCleaner x10{surv('adverse_cleaner')}"),
        _label(_fit(_amplified(left["jpeg75"][win]), panel), f"left after JPEG 75 x10{surv('jpeg75')}"),
    ]
    gap = np.full((panel + LABEL, 4, 3), 255, np.uint8)

    def row(panels):
        parts = []
        for i, pnl in enumerate(panels):
            parts += [gap, pnl] if i else [pnl]
        return np.hstack(parts)

    return np.vstack([row(top), np.full((8, row(top).shape[1], 3), 255, np.uint8), row(bottom)])


def plain_verdict(report: PairReport) -> list[str]:
    """What the figures mean for an artist, one short sentence each: is it visible at 100 %,
    and what is left after a typical repost (when the ``repost`` attack was run)."""
    s2 = report.ssimulacra2
    if s2 >= 90:
        seen = f"hard to see at 100 % (SSIMULACRA2 {s2:.1f}, 90 or more is visually lossless)"
    elif s2 >= 80:
        seen = f"faint at 100 %: visible on a close look, mostly on flat colour (SSIMULACRA2 {s2:.1f})"
    else:
        seen = f"visible at 100 % (SSIMULACRA2 {s2:.1f}; a lower strength makes it fainter)"
    lines = [seen]
    repost = next((a for a in report.attacks if a.attack == "repost"), None)
    if repost is None or repost.survival is None:
        lines.append("repost not measured (run with the repost attack)")
    else:
        share = repost.survival
        amount = "most" if share >= 0.5 else "part" if share >= 0.2 else "little"
        line = f"a typical repost (JPEG 85, at most 4096 px) leaves {amount} of it ({100 * share:.0f} % of its energy)"
        if repost.footprint_ratio is not None:
            line += (f"; it then still moves the encoder's latent {repost.footprint_ratio:.1f}x as far as random "
                     "noise of the same strength")
        lines.append(line)
    return lines


def sheet_filename(name: str) -> str:
    """A flat, safe PNG name for a pair's relative path."""
    safe = "".join(c if (c.isalnum() or c in "-_") else "_" for c in name.replace("/", "__"))
    return (safe or "image") + ".png"


# --------------------------------------------------------------------- HTML


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "&ndash;" if v is None or not math.isfinite(v) else format(v, spec)


def _bar_chart(values: dict[str, float | None], *, title: str, vmax: float, reference: float | None = None) -> str:
    """A horizontal SVG bar chart (no scripts, no external files)."""
    row_h, label_w, bar_w = 22, 170, 360
    rows = list(values.items())
    height = row_h * len(rows) + 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" '
           f'role="img" aria-label="{html.escape(title)}">',
           f'<text x="0" y="14" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for i, (name, v) in enumerate(rows):
        y = 24 + i * row_h
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" font-size="12" text-anchor="end">{html.escape(name)}</text>')
        if v is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 14}" font-size="12" fill="#888">n/a</text>')
            continue
        w = max(0.0, min(v / vmax, 1.0)) * bar_w
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="#4a7bd0"/>')
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="12">{v:.2f}</text>')
    if reference is not None:
        x = label_w + reference / vmax * bar_w
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 6}" stroke="#c33" stroke-dasharray="4 3"/>')
    out.append("</svg>")
    return "\n".join(out)


@dataclass(frozen=True)
class Column:
    """One column of the attack table: an :class:`~protect.verify.AttackResult` field."""

    field: str
    heading: str
    spec: str  # format of a value
    width: int  # characters, in the terminal


#: The attack table, written once for the terminal (``protect verify``) and the HTML report;
#: the footprint columns appear when the latent footprint was measured.
ATTACK_COLUMNS = (Column("correlation", "correlation", ".3f", 11), Column("energy", "energy", ".3f", 7),
                  Column("survival", "survival", ".3f", 8))
FOOTPRINT_COLUMNS = (Column("footprint", "footprint", ".4f", 9), Column("footprint_gaussian", "Gaussian", ".4f", 8),
                     Column("footprint_ratio", "ratio", ".2f", 6))
ATTACK_FIELDS = tuple(c.field for c in ATTACK_COLUMNS + FOOTPRINT_COLUMNS)


def attack_table(rows: Mapping[str, Mapping[str, float | None]], with_footprint: bool | None = None
                 ) -> tuple[tuple[Column, ...], list[tuple[str, list[float | None]]]]:
    """(columns, [(attack, values)]) of ``rows`` (attack -> field -> value); the footprint
    columns when ``with_footprint`` (default: when any row has a footprint ratio)."""
    if with_footprint is None:
        with_footprint = any(r.get("footprint_ratio") is not None for r in rows.values())
    columns = ATTACK_COLUMNS + (FOOTPRINT_COLUMNS if with_footprint else ())
    return columns, [(name, [r.get(c.field) for c in columns]) for name, r in rows.items()]


def attack_table_text(rows: Mapping[str, Mapping[str, float | None]]) -> list[str]:
    """The attack table as terminal lines (``-`` for a value not measured)."""
    columns, body = attack_table(rows)
    lines = [f"  {'attack':<20}" + "".join(f" {c.heading:>{c.width}}" for c in columns)]
    for name, values in body:
        lines.append(f"  {name:<20}" + "".join(
            " " + ("-" if v is None else format(v, f"{c.width}{c.spec}"))
            for c, v in zip(columns, values, strict=True)))
    return lines


def _attack_table_html(rows: dict[str, dict[str, float | None]], with_footprint: bool) -> str:
    columns, body = attack_table(rows, with_footprint)
    head = "<tr><th>attack</th><th>what it does</th>" + "".join(f"<th>{c.heading}</th>" for c in columns) + "</tr>"
    out = []
    for name, values in body:
        cells = [f"<td>{html.escape(name)}</td>", f"<td>{html.escape(ATTACKS[name].summary)}</td>"]
        cells += [f"<td>{_fmt(v, c.spec)}</td>" for c, v in zip(columns, values, strict=True)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + head + "".join(out) + "</table>"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1960px; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; } td:first-child, td:nth-child(2) { text-align: left; }
.sheet-box { overflow-x: auto; }
img.sheet { max-width: none; image-rendering: pixelated; border: 1px solid #ddd; }  /* 1:1: never scaled */
.note { color: #555; font-size: 14px; max-width: 60em; }
"""


def render_html(reports: Sequence[PairReport], sheets: dict[str, str], *, title: str,
                failures: dict[str, list[str]] | None = None, settings: dict | None = None,
                thresholds_given: bool = False, sheet_sizes: dict[str, tuple[int, int]] | None = None) -> str:
    """The ``index.html`` of ``protect verify --report``.

    The verdict column says in words what the figures mean (:func:`plain_verdict`); it says
    "meets your thresholds" only when thresholds were given."""
    sheet_sizes = sheet_sizes or {}
    failures = failures or {}
    with_fp = any(a.footprint_ratio is not None for r in reports for a in r.attacks)
    medians = {f: median_by_attack(reports, f) for f in ATTACK_FIELDS}
    names = list(medians["survival"])
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts.append(
        "<p class='note'>Visibility: PSNR and SSIM (higher = closer), SSIMULACRA2 (100 = identical, "
        "&ge; 90 visually lossless, 70 high quality), CIEDE2000 (about 1 = just noticeable on flat patches). "
        "Survival per attack: the fraction of the protection's energy still present, as the protection, after "
        "the attack (1 = untouched, 0 = removed). Footprint: how far the TAEF2 latent moves, relative to i.i.d. "
        "Gaussian noise at the same PSNR (ratio 1 = no better than random noise). These are measurements of "
        "one surrogate and one set of attacks, not a guarantee that a model cannot learn from the image.</p>")
    if settings:
        parts.append("<p class='note'>" + html.escape(", ".join(f"{k}: {v}" for k, v in settings.items())) + "</p>")
    parts.append("<h2>Visibility</h2><table><tr><th>image</th><th>size</th><th>PSNR dB</th><th>SSIM</th>"
                 "<th>SSIMULACRA2</th><th>CIEDE2000 mean</th><th>CIEDE2000 p99</th><th>verdict</th></tr>")
    for r in reports:
        misses = failures.get(r.name, [])
        verdict = "; ".join(plain_verdict(r) + (misses or (["meets your thresholds"] if thresholds_given else [])))
        parts.append(f"<tr><td><a href='#{html.escape(sheet_filename(r.name))}'>{html.escape(r.name)}</a></td>"
                     f"<td>{r.width}&times;{r.height}</td><td>{_fmt(r.psnr, '.2f')}</td><td>{_fmt(r.ssim, '.4f')}</td>"
                     f"<td>{_fmt(r.ssimulacra2, '.2f')}</td><td>{_fmt(r.ciede2000_mean, '.2f')}</td>"
                     f"<td>{_fmt(r.ciede2000_p99, '.2f')}</td><td>{html.escape(verdict)}</td></tr>")
    parts.append("</table>")
    label = "median over images" if len(reports) > 1 else "this image"
    parts.append(f"<h2>Survival per attack ({label})</h2>")
    parts.append(_bar_chart({n: medians["survival"][n] for n in names}, title="survival (1 = all of it)", vmax=1.0))
    if with_fp:
        vmax = max([v for v in medians["footprint_ratio"].values() if v is not None] + [2.0])
        parts.append(_bar_chart({n: medians["footprint_ratio"][n] for n in names},
                                title="latent footprint / Gaussian noise (red line = 1)", vmax=vmax, reference=1.0))
    else:
        notes = sorted({r.footprint_note for r in reports if r.footprint_note})
        parts.append("<p class='note'>Latent footprint: skipped (" + html.escape("; ".join(notes) or "not requested")
                     + ").</p>")
    parts.append(_attack_table_html({n: {f: medians[f][n] for f in ATTACK_FIELDS} for n in names}, with_fp))
    parts.append("<h2>Images</h2>")
    for r in reports:
        anchor = html.escape(sheet_filename(r.name))
        parts.append(f"<h3 id='{anchor}'>{html.escape(r.name)}</h3>")
        if r.name in sheets:
            w, h = sheet_sizes.get(r.name, (None, None))
            size = f" width='{w}' height='{h}'" if w else ""
            parts.append(f"<div class='sheet-box'><a href='{html.escape(sheets[r.name])}'><img class='sheet'{size} "
                         f"src='{html.escape(sheets[r.name])}' alt='contact sheet of {html.escape(r.name)}'></a></div>")
        rows = {a.attack: {f: getattr(a, f) for f in ATTACK_FIELDS} for a in r.attacks}
        parts.append(_attack_table_html(rows, with_fp))
    parts.append("</body></html>\n")
    return "\n".join(parts)
