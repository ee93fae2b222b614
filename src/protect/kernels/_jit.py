"""The one place where numba compilation options are decided.

Every kernel in :mod:`protect.kernels` is compiled with :data:`SERIAL`:

* ``njit`` - nopython mode, no silent fallback to the Python interpreter;
* ``nogil`` - kernels release the GIL, so a host application may thread them;
* ``cache=True`` - compiled machine code is stored on disk, so the second
  run of ``protect`` (and every worker process) starts without compiling.
  Caching is only safe for serial kernels, and all kernels here are serial:
  parallelism comes from worker processes, one image each;
* ``fastmath=False`` - results must be bit-identical for the same
  (image, key, strength) on every machine, so no reassociation or FMA
  contraction is allowed.
"""

from __future__ import annotations

import numba

SERIAL = dict(nogil=True, cache=True, fastmath=False)
INLINE = dict(nogil=True, cache=True, fastmath=False, inline="always")


def njit_serial(func):
    """Compile ``func`` with the project's serial-kernel policy."""
    return numba.njit(**SERIAL)(func)


def njit_inline(func):
    """Compile a tiny helper that numba inlines into the calling kernel."""
    return numba.njit(**INLINE)(func)
