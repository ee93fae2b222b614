"""One way from an artist's settings to :class:`protect.batch.Options`.

The command line (``protect run``), the page (``protect ui``) and the
drag-and-drop app take the same settings under the same names (those of
``config.toml``, see :mod:`protect.config`, and of the CLI flags):
:func:`build_options` turns them into the ``Options`` a worker gets, so a
setting added here reaches all three.  Each front end does only its own
part: the CLI reads files (a logo, C2PA credentials) and resolves the key,
the page and the app hand over their JSON / TOML values as a mapping
(:func:`options_from_mapping`).

A setting that cannot be used raises :class:`OptionError` naming it.  Importing
this module is light (the page imports it at start); the batch, the pipeline and
the watermark are imported when options are built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io as pio

if TYPE_CHECKING:
    from .batch import Options

__all__ = ["OptionError", "build_options", "options_from_mapping", "with_key"]


class OptionError(ValueError):
    """A setting protect cannot use; ``option`` is its name (as in config.toml)."""

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


def build_options(
    *,
    key: str,
    strength: float | None = None,
    preset: str | None = None,
    method: str | None = None,
    format: str | None = None,
    jpeg_quality: int | None = None,
    max_pixels: int | None = pio.DEFAULT_MAX_PIXELS,
    verify: bool = False,
    mark: str | None = None,
    mark_hex: str | None = None,
    opt_out: bool = True,
    opt_out_kind: str = "aiml",
    author: str | None = None,
    copyright: str | None = None,
    strip_location: bool = False,
    visible: str | None = None,
    visible_logo: np.ndarray | None = None,
    visible_position: str | None = None,
    visible_opacity: float | None = None,
    visible_scale: float | None = None,
    c2pa: tuple[bytes, bytes] | None = None,
    c2pa_alg: str | None = None,
) -> Options:
    """The :class:`~protect.batch.Options` of these settings.

    ``strength`` wins over ``preset`` (a name of :data:`~protect.pipeline.STRENGTH_PRESETS`);
    with neither, the default strength.  ``None`` (or an empty string) for ``method``,
    ``visible_position``, ``visible_opacity`` and ``visible_scale`` means their default;
    an empty ``mark`` or ``visible`` is refused (:func:`options_from_mapping` drops them).
    ``visible`` (a text) and ``visible_logo`` (an RGB(A) array) are the visible signature;
    give one at most.  ``c2pa``: (certificate chain PEM, private key PEM).  ``jpeg_quality``
    and ``c2pa_alg``: None for the defaults of :class:`~protect.batch.Options`.
    """
    from .batch import Options
    from .metadata import OPT_OUT_VALUES, MetadataSettings
    from .pipeline import DEFAULT_METHOD, DEFAULT_STRENGTH, STRENGTH_PRESETS, Settings
    from .visible import VisibleMark
    from .watermark import payload_from_hex, payload_from_text

    if opt_out_kind not in OPT_OUT_VALUES:
        raise OptionError(f"choose one of {', '.join(OPT_OUT_VALUES)}", "opt_out_kind")
    if mark is not None and mark_hex is not None:
        raise OptionError("give mark or mark_hex, not both", "mark")
    try:
        payload = (payload_from_text(str(mark)) if mark is not None
                   else payload_from_hex(str(mark_hex)) if mark_hex is not None else None)
    except ValueError as exc:
        raise OptionError(str(exc), "mark") from None
    visible_mark = None
    if visible is not None and visible_logo is not None:
        raise OptionError("give a visible text or a visible image, not both", "visible")
    if visible is not None or visible_logo is not None:
        try:
            placing: dict[str, Any] = {}  # what is not given keeps VisibleMark's default
            if visible_position:
                placing["position"] = visible_position
            if visible_opacity:
                placing["opacity"] = float(visible_opacity)
            if visible_scale:
                placing["scale"] = float(visible_scale)
            visible_mark = VisibleMark(text=str(visible) if visible is not None else None, logo=visible_logo,
                                       **placing)
        except (TypeError, ValueError) as exc:
            raise OptionError(str(exc), "visible") from None
    try:
        chosen = float(strength) if strength is not None else STRENGTH_PRESETS.get(preset or "", DEFAULT_STRENGTH)
        settings = Settings(strength=chosen, key=key, method=method or DEFAULT_METHOD)
    except (TypeError, ValueError) as exc:
        raise OptionError(str(exc), "strength" if "strength" in str(exc) else "method") from None
    try:
        fmt = pio.normalise_format(format) if format else None
    except ValueError as exc:
        raise OptionError(str(exc), "format") from None
    try:
        metadata = MetadataSettings(opt_out=bool(opt_out), author=author or None, copyright=copyright or None,
                                    opt_out_kind=opt_out_kind, strip_location=bool(strip_location))
    except ValueError as exc:
        raise OptionError(str(exc), "opt_out_kind") from None
    encoding: dict[str, Any] = {}  # what is not given keeps Options' default
    if jpeg_quality is not None:
        encoding["jpeg_quality"] = int(jpeg_quality)
    if c2pa_alg is not None:
        encoding["c2pa_alg"] = c2pa_alg.lower()
    return Options(settings=settings, format=fmt, max_pixels=max_pixels, verify=bool(verify), mark=payload,
                   metadata=metadata, visible=visible_mark, c2pa=c2pa, **encoding)


#: The settings :func:`options_from_mapping` takes from a page's JSON or an app's TOML.
MAPPING_SETTINGS = ("strength", "preset", "method", "format", "jpeg_quality", "mark", "opt_out", "author",
                    "copyright", "visible", "visible_position", "visible_opacity", "visible_scale")


def options_from_mapping(values: Mapping[str, Any], *, key: str) -> Options:
    """:func:`build_options` of the known settings in ``values`` (others are ignored);
    ``None`` and an empty string count as not given (an empty field of the page)."""
    given = {k: values[k] for k in MAPPING_SETTINGS if values.get(k) is not None and values.get(k) != ""}
    try:
        return build_options(key=key, **given)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, OptionError):
            raise
        raise OptionError(str(exc), "settings") from None


def with_key(options: Options, key: str) -> Options:
    """``options`` with another key (checked settings first, the key after, as the CLI does)."""
    return dataclasses.replace(options, settings=dataclasses.replace(options.settings, key=key))
