"""Numba kernels: arrays and scalars in, preallocated arrays out.

Kernels do no validation and hold no global random state; every random
value comes from a counter-based hash of an explicit ``seed`` and the
pixel or block position, so a tile of an image gets exactly the values it
would get inside the whole image.  Validation lives in the Python API
(:mod:`protect.pipeline`).  Each kernel has a slow NumPy reference in
``tests/reference.py`` and is compared with it in the tests.
"""
