"""The counter-based hash every random value of protect comes from.

Both methods draw their key's randomness from :func:`splitmix64` of an
explicit seed and a position (block row, column, draw number), so a tile of
an image gets exactly the values it would get inside the whole image, and no
kernel holds random state.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit_inline

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit_inline
def splitmix64(x):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mix."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))
