"""Rec. ITU-R BT.601 luma weights of (R, G, B): the one place they are written.

Plain Python floats, no numba here, so that modules which must stay light
(``io``) can use them; the kernels read them as compile-time constants and
the Python side takes them from :mod:`protect.perceptual`.
"""

LUMA_R = 0.299
LUMA_G = 0.587
LUMA_B = 0.114
REC601 = (LUMA_R, LUMA_G, LUMA_B)
