"""Every numba kernel against its slow NumPy reference (tests/reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from protect import pipeline as pl
from protect.kernels import perturb
from protect.kernels.apply import apply_field_kernel


@pytest.mark.parametrize("shape,y0,x0", [((16, 16), 0, 0), ((37, 51), 3, 5), ((8, 9), 800, 13), ((1, 1), 7, 7)])
def test_dct_noise_matches_reference(shape, y0, x0):
    seed = np.uint64(0xDEADBEEF12345678)
    out = np.empty(shape, np.float32)
    perturb.dct_noise_kernel(seed, pl.ATOMS, y0, x0, np.ones(shape, np.float32), out)
    want = ref.dct_noise(int(seed), pl.ATOMS, y0, x0, *shape)
    np.testing.assert_allclose(out, want, rtol=0, atol=2e-5)


def test_dct_noise_skips_only_dead_blocks():
    shape = (24, 24)
    gain = np.zeros(shape, np.float32)
    gain[9, 17] = 0.5  # one live pixel -> its whole block (1, 2) is synthesised
    out = np.full(shape, 7.0, np.float32)
    perturb.dct_noise_kernel(np.uint64(1), pl.ATOMS, 0, 0, gain, out)
    full = ref.dct_noise(1, pl.ATOMS, 0, 0, *shape)
    np.testing.assert_allclose(out[8:16, 16:24], full[8:16, 16:24], atol=2e-5)
    out[8:16, 16:24] = 0
    assert not out.any()


def test_dct_noise_is_unit_rms_and_mid_band():
    out = np.empty((512, 512), np.float32)
    perturb.dct_noise_kernel(np.uint64(3), pl.ATOMS, 0, 0, np.ones_like(out), out)
    assert abs(float(out.std()) - 1.0) < 0.03
    assert abs(float(out.mean())) < 0.01
    # energy per DCT coefficient: DC and lowest ring empty, mid band full
    blocks = out.reshape(64, 8, 64, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    d = pl.dct_basis().astype(np.float64)
    coef = np.einsum("uy,nyx,vx->nuv", d, blocks, d)
    power = (coef ** 2).mean(0)
    assert power[0, 0] < 1e-8 and power[0, 1] < 1e-8 and power[1, 1] < 1e-8
    assert power[3, 3] > 0.5 and power[0, 4] > 0.5


@pytest.mark.parametrize("channels", [1, 3])
def test_luminance_matches_reference(channels):
    src = np.random.default_rng(1).integers(0, 256, (13, 17, channels), dtype=np.uint8)
    out = np.empty((13, 17), np.float32)
    perturb.luminance_kernel(src, np.float32(0.5), out)
    np.testing.assert_allclose(out, ref.luminance(src, 0.5), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("h,w,row0,n", [(40, 33, 0, 40), (40, 33, 5, 30), (9, 9, 4, 1), (30, 2, 0, 30)])
def test_perceptual_mask_matches_reference(h, w, row0, n):
    rng = np.random.default_rng(h * w)
    lum = (rng.random((h, w)) * 60).astype(np.float32)
    lum[:, : w // 2] = 128.0  # flat half
    args = (3, 3.0, 24.0, 4.0, 0.3, 0.6, 0.5)
    out = np.empty((n, w), np.float32)
    perturb.perceptual_mask_kernel(lum, args[0], *(np.float32(a) for a in args[1:]), row0, out)
    want = ref.perceptual_mask(lum, *args)[row0:row0 + n]
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype,data_range", [(np.uint8, 255), (np.uint16, 65535)])
def test_apply_one_channel_field_matches_reference(dtype, data_range):
    rng = np.random.default_rng(2)
    src = rng.integers(0, data_range + 1, (21, 19, 3)).astype(dtype)
    src[0, :3] = [0, data_range, data_range // 2]
    noise = rng.standard_normal((21, 19)).astype(np.float32) * 3
    gain = rng.random((21, 19)).astype(np.float32)
    out = np.empty_like(src)
    amp = np.float32(4.5 * data_range / 255)
    apply_field_kernel(src, noise[..., None], gain, amp, data_range, False, out)
    np.testing.assert_array_equal(out, ref.apply_noise(src, noise, gain, amp, data_range))


def _kernel_uniforms(seed: int, by: int, bx: int, n: int) -> np.ndarray:
    """The ``n`` uniforms block (by, bx) gets in dct_noise_kernel, drawn with the kernel's own functions."""
    state = np.uint64(perturb.block_hash(np.uint64(seed), by, bx))
    pairs = [perturb.stream_uniform_pair(state, k) for k in range((n + 1) // 2)]
    return np.array([v for pair in pairs for v in pair][:n], np.float32)


def test_hash_uniforms_match_reference_and_are_uniform():
    # protect's uniforms (not only the reference's): the same values, and uniform on [-1, 1)
    vals = np.concatenate([_kernel_uniforms(99, by, by % 7, 37) for by in range(200)])
    want = np.concatenate([ref.block_uniforms(99, by, by % 7, 37) for by in range(200)])
    np.testing.assert_array_equal(vals, want)
    assert vals.dtype == np.float32 and vals.min() >= -1 and vals.max() < 1
    assert abs(vals.mean()) < 0.03 and abs(vals.var() - 1 / 3) < 0.02
    # neighbouring blocks and seeds draw unrelated values
    assert not np.array_equal(_kernel_uniforms(99, 0, 0, 37), _kernel_uniforms(99, 0, 1, 37))
    assert not np.array_equal(_kernel_uniforms(99, 0, 0, 37), _kernel_uniforms(100, 0, 0, 37))
    a, b = _kernel_uniforms(99, 3, 4, 4000), _kernel_uniforms(98, 3, 4, 4000)
    assert abs(float(np.corrcoef(a, b)[0, 1])) < 0.06


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_diff_stats_matches_numpy(dtype):
    from protect.kernels import stats

    rng = np.random.default_rng(4)
    hi = 256 if dtype == np.uint8 else 65536
    a = rng.integers(0, hi, (17, 23, 3)).astype(dtype)
    b = rng.integers(0, hi, (17, 23, 3)).astype(dtype)
    sse, mx = stats.diff_stats_kernel(a, b)
    d = a.astype(np.int64) - b.astype(np.int64)
    assert sse == float((d * d).sum()) and mx == int(np.abs(d).max())
    assert stats.diff_stats_kernel(a, a) == (0.0, 0)
