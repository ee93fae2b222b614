"""TAEF2, the tiny autoencoder of the FLUX.2 latent space, as a measuring stick.

Optional: needs the ``surrogate`` extra (torch) and the weights file
``taef2_encoder.pth`` (MIT, madebyollin/taesd), which protect never
downloads.  ``protect`` itself never imports this module; ``protect verify``
and the benchmarks use it to measure how far an image's latent moves.

The network definition here is protect's own, written from the published
architecture of the tiny autoencoders (stacks of residual blocks of three
3x3 convolutions with ReLU, stride-2 convolutions between stages; the FLUX.2
variant adds a 1x1 / GroupNorm / 1x1 branch in the blocks of the deepest
stage).  Weights load with ``strict=True``, so a wrong definition fails
loudly instead of measuring nonsense.

Input: float RGB in [0, 1], shape (N, 3, H, W).  Output: the raw 32-channel
latent at (H/8, W/8).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

try:  # optional dependency
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - exercised when torch is absent
    torch = None  # type: ignore[assignment]
    nn = None  # type: ignore[assignment]

__all__ = ["available", "default_weights", "load_encoder", "load_decoder", "TorchEncoder", "SurrogateUnavailable"]

ENCODER_FILE = "taef2_encoder.pth"
DECODER_FILE = "taef2_decoder.pth"
WEIGHTS_ENV = "PROTECT_SURROGATE_WEIGHTS"
LATENT_CHANNELS = 32


class SurrogateUnavailable(RuntimeError):
    """torch is not installed or the weights are missing (the message says which)."""


def available() -> bool:
    """True when torch can be imported."""
    return torch is not None


def default_weights() -> Path | None:
    """Where the encoder weights are when none are given.

    ``$PROTECT_SURROGATE_WEIGHTS``, else ``../shared/models/taef2_encoder.pth``
    beside the current folder or beside this checkout; None when none exists.
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [Path.cwd().parent / "shared" / "models" / ENCODER_FILE]
    candidates += [p / "shared" / "models" / ENCODER_FILE for p in here.parents[2:4]]
    for c in candidates:
        if c.is_file():
            return c
    return None


if nn is not None:

    def _conv(n_in: int, n_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
        return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)

    class _Block(nn.Module):
        """Residual block: ReLU(conv-relu-conv-relu-conv(x) + x), with an optional
        1x1 / GroupNorm(4) / ReLU / 1x1 branch added to x first (FLUX.2 variant)."""

        def __init__(self, channels: int, *, pooled: bool = False):
            super().__init__()
            self.conv = nn.Sequential(
                _conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU(), _conv(channels, channels)
            )
            self.skip = nn.Identity()
            self.fuse = nn.ReLU()
            self.pool = None
            if pooled:
                wide = 4 * channels
                self.pool = nn.Sequential(
                    nn.Conv2d(channels, wide, 1, bias=False),
                    nn.GroupNorm(4, wide),
                    nn.ReLU(),
                    nn.Conv2d(wide, channels, 1, bias=False),
                )

        def forward(self, x):
            if self.pool is not None:
                x = x + self.pool(x)
            return self.fuse(self.conv(x) + self.skip(x))

    class _Clamp(nn.Module):
        def forward(self, x):
            return torch.tanh(x / 3) * 3

    def _encoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
        c = 64
        layers: list[nn.Module] = [_conv(3, c), _Block(c)]
        for stage in range(3):
            layers.append(_conv(c, c, stride=2, bias=False))
            layers += [_Block(c, pooled=(stage == 2)) for _ in range(3)]
        layers.append(_conv(c, latent_channels))
        return nn.Sequential(*layers)

    def _decoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
        c = 64
        layers: list[nn.Module] = [_Clamp(), _conv(latent_channels, c), nn.ReLU()]
        for stage in range(3):
            layers += [_Block(c, pooled=(stage == 0)) for _ in range(3)]
            layers += [nn.Upsample(scale_factor=2), _conv(c, c, bias=False)]
        layers += [_Block(c), _conv(c, 3)]
        return nn.Sequential(*layers)


def _load(builder_name: str, path: str | os.PathLike | None, default_name: str):
    if torch is None:
        raise SurrogateUnavailable("torch is not installed (pip install 'protect-art[surrogate]')")
    if path is None:
        enc = default_weights()
        path = None if enc is None else enc.with_name(default_name)
    if path is None or not Path(path).is_file():
        raise SurrogateUnavailable(
            f"surrogate weights not found ({path or default_name}); pass --surrogate-weights"
        )
    net = {"encoder": _encoder, "decoder": _decoder}[builder_name]()
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_decoder(path: str | os.PathLike | None = None):
    """The TAEF2 decoder module (for checking the encoder definition by round trip)."""
    return _load("decoder", path, DECODER_FILE)


class TorchEncoder:
    """Callable numpy wrapper: uint8/float RGB image (H, W, 3) -> latent (32, H/8, W/8).

    Images are cropped to a multiple of 8 pixels; ``threads`` caps torch's
    intra-op threads (None leaves torch's default).
    """

    def __init__(self, module, *, threads: int | None = None):
        self.module = module
        if threads is not None:
            torch.set_num_threads(threads)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Encode (H, W, 3) or a batch (N, H, W, 3) of [0, 1] float images."""
        x = np.asarray(images, np.float32)
        single = x.ndim == 3
        if single:
            x = x[None]
        h, w = (x.shape[1] // 8) * 8, (x.shape[2] // 8) * 8
        t = torch.from_numpy(np.ascontiguousarray(x[:, :h, :w].transpose(0, 3, 1, 2)))
        with torch.inference_mode():
            z = self.module(t).numpy()
        return z[0] if single else z


def load_encoder(path: str | os.PathLike | None = None, *, threads: int | None = None) -> TorchEncoder:
    """Load the TAEF2 encoder from ``path`` (default: :func:`default_weights`).

    Raises :class:`SurrogateUnavailable` without torch or weights.
    """
    return TorchEncoder(_load("encoder", path, ENCODER_FILE), threads=threads)
