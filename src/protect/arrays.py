"""What an image array is, for every module above the kernels.

* :func:`data_range_of` - the largest code value of an integer image dtype
  (255 or 65535: the ``data_range`` of scikit-image's metrics);
* :func:`check_image` / :func:`check_plane` - the one validation of an
  array given to protect's Python API;
* :class:`ImageArrayError` - what that validation raises (a ``ValueError``,
  for a wrong type, dtype or shape alike).

Kernels validate nothing: the functions that call them validate here first.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ImageArrayError", "check_image", "check_plane", "crop_center", "data_range_of"]


class ImageArrayError(ValueError):
    """An array given to protect is not an image it can work on (type, dtype or shape)."""


def data_range_of(dtype: np.dtype | type) -> float:
    """The largest code value of an integer image dtype: 255.0 (uint8) or 65535.0 (uint16)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    raise ImageArrayError(f"no natural data range for dtype {dtype}; images are uint8 or uint16")


def crop_center(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centred window of ``x`` (a view), ``height`` x ``width`` or smaller where ``x`` is;
    odd margins leave the extra row / column at the bottom / right."""
    h, w = x.shape[:2]
    ch, cw = min(h, height), min(w, width)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return x[y0:y0 + ch, x0:x0 + cw]


def check_image(pixels: object, name: str = "pixels", *, dtypes: tuple = (np.uint8, np.uint16),
                min_side: int = 1, hint: str = "") -> np.ndarray:
    """``pixels`` itself when it is an (H, W, 1) or (H, W, 3) array of one of ``dtypes``
    with both sides at least ``min_side``; else :class:`ImageArrayError` naming it
    (``hint``, when given, is added to a wrong dtype's message)."""
    if not isinstance(pixels, np.ndarray):
        raise ImageArrayError(f"{name} must be a numpy array, got {type(pixels).__name__}")
    if pixels.dtype not in dtypes:
        kinds = " or ".join(np.dtype(d).name for d in dtypes)
        raise ImageArrayError(f"{name} must be {kinds}, got {pixels.dtype}" + (f" ({hint})" if hint else ""))
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ImageArrayError(f"{name} must have shape (H, W, 1) or (H, W, 3), got {pixels.shape}")
    if pixels.shape[0] < min_side or pixels.shape[1] < min_side:
        raise ImageArrayError(f"{name} is too small: shape {pixels.shape}"
                              + (f" (at least {min_side}x{min_side} pixels)" if min_side > 1 else ""))
    return pixels


def check_plane(plane: object, shape: tuple[int, int], name: str) -> np.ndarray | None:
    """An optional (H, W) plane (alpha, a region mask) as an array of ``shape``, or None."""
    if plane is None:
        return None
    plane = np.asarray(plane)
    if plane.shape != shape:
        raise ImageArrayError(f"{name} has shape {plane.shape}, the image is {shape}")
    return plane
