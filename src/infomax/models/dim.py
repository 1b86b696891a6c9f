"""Deep InfoMax encoders with named feature taps (Hjelm et al., ICLR 2019, arXiv 1808.06670).

Registered names (``infomax.models.create_encoder(name, **kwargs)``):

- ``dim32``: the paper's DCGAN-style 32x32 encoder used for Table 1 (rdevon/DIM
  ``cortex_DIM/configs/convnets.py`` ``_basic32x32``): conv(64, k4, s2, p1)+BN+ReLU ->
  conv(128, k4, s2, p1)+BN+ReLU [``local``, 128x8x8] -> conv(256, k4, s2, p1)+BN+ReLU [``conv``,
  256x4x4] -> flatten -> linear(1024)+BN+ReLU [``fc``] -> linear(code_dim) [``y``].
- ``dim64``: the AlexNet-style 64x64 encoder for STL-10 / Tiny ImageNet (same file,
  ``_alex64x64``): conv(96, k3, s1, p1)+BN+ReLU+maxpool(3, 2) [96x31x31] ->
  conv(192, k3, s1, p1)+BN+ReLU+maxpool(3, 2) [192x15x15] -> conv(384, k3, s1, p1)+BN+ReLU
  [``local``, 384x15x15] -> conv(384, k3, s1, p1)+BN+ReLU -> conv(192, k3, s1, p1)+BN+ReLU+
  maxpool(3, 2) [``conv``, 192x7x7] -> flatten -> linear(4096)+BN+ReLU -> linear(4096)+BN+ReLU
  [``fc``, the second] -> linear(code_dim) [``y``].
- ``dim32-tiny`` and ``dim64-tiny``: the same layer structure at 1/8 and 1/16 of the widths, for
  fast CPU tests.

As in the reference (``cortex_DIM/nn_modules/convnet.py``), a convolution followed by batch norm
has no bias; the linear layers keep theirs; ``y`` is a plain linear layer (no BN, no nonlinearity).

>>> enc = create_encoder("dim32")                     # doctest: +SKIP
>>> {k: tuple(v.shape) for k, v in enc(torch.randn(2, 3, 32, 32)).items()}  # doctest: +SKIP
{'local': (2, 128, 8, 8), 'conv': (2, 256, 4, 4), 'fc': (2, 1024), 'y': (2, 64)}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from infomax.models.registry import register_encoder

__all__ = ["ConvSpec", "DIMEncoder", "dim32", "dim32_tiny", "dim64", "dim64_tiny"]


class ConvSpec(NamedTuple):
    """One convolutional block: conv(channels, kernel, stride, padding) + BN + ReLU [+ maxpool]."""

    channels: int
    kernel: int
    stride: int
    padding: int
    pool: tuple[int, int] | None = None  # (kernel, stride) of a max pool after the ReLU


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class DIMEncoder(nn.Module):
    """A convolutional encoder returning the Deep InfoMax taps ``local``, ``conv``, ``fc``, ``y``.

    Reference: Hjelm et al. (2019), Sec. 4 and rdevon/DIM ``cortex_DIM/nn_modules/encoder.py``
    (``local_idx``, ``conv_idx``, ``fc_idx`` pick which layer outputs are exposed).

    Args:
        conv_layers: the convolutional blocks, each conv + BN + ReLU (+ optional max pool).
        fc_layers: widths of the hidden linear layers, each linear + BN + ReLU.
        local_idx: index of the conv block whose output is the ``local`` tap.
        conv_idx: index of the conv block whose output is the ``conv`` tap.
        fc_idx: index of the hidden linear layer whose output is the ``fc`` tap.
        in_channels: channels of the input images.
        image_size: height = width of the input images (fixes the flattened size).
        code_dim: size of the code ``y``.

    Shape:
        input ``(N, in_channels, image_size, image_size)`` float (normalised); output a dict of taps
        whose per-sample shapes are in :attr:`tap_shapes`; :attr:`fc_widths` lists the hidden linear
        widths (the reference's global critic copies them).
    """

    probe_taps: tuple[str, ...] = ("conv", "fc", "y")

    def __init__(
        self,
        conv_layers: Sequence[ConvSpec],
        fc_layers: Sequence[int],
        *,
        local_idx: int,
        conv_idx: int,
        fc_idx: int,
        in_channels: int = 3,
        image_size: int = 32,
        code_dim: int = 64,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if code_dim < 1:
            raise ValueError(f"code_dim must be >= 1, got {code_dim}")
        if not (0 <= local_idx < len(conv_layers) and 0 <= conv_idx < len(conv_layers)):
            raise ValueError("local_idx and conv_idx must index conv_layers")
        if not 0 <= fc_idx < len(fc_layers):
            raise ValueError("fc_idx must index fc_layers")
        self.in_channels = int(in_channels)
        self.image_size = int(image_size)
        self.code_dim = int(code_dim)
        self.local_idx, self.conv_idx, self.fc_idx = local_idx, conv_idx, fc_idx

        convs = []
        shapes: list[tuple[int, int, int]] = []
        c, s = self.in_channels, self.image_size
        for i, spec in enumerate(conv_layers):
            block = [
                nn.Conv2d(c, spec.channels, spec.kernel, spec.stride, spec.padding, bias=False),
                nn.BatchNorm2d(spec.channels),
                nn.ReLU(inplace=True),
            ]
            s = (s + 2 * spec.padding - spec.kernel) // spec.stride + 1
            if spec.pool is not None:
                block.append(nn.MaxPool2d(spec.pool[0], spec.pool[1]))
                s = (s - spec.pool[0]) // spec.pool[1] + 1 if s >= spec.pool[0] else 0
            if s < 1:
                raise ValueError(
                    f"image_size {image_size} is too small for this encoder: the feature map "
                    f"vanishes after conv block {i}; use a larger image_size"
                )
            c = spec.channels
            shapes.append((c, s, s))
            convs.append(nn.Sequential(*block))
        self.convs = nn.ModuleList(convs)

        fcs = []
        d = c * s * s
        for width in fc_layers:
            fcs.append(nn.Sequential(nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU(True)))
            d = width
        self.fcs = nn.ModuleList(fcs)
        self.fc_widths = tuple(int(f) for f in fc_layers)
        self.head = nn.Linear(d, self.code_dim)

        self.tap_shapes: dict[str, tuple[int, ...]] = {
            "local": shapes[local_idx],
            "conv": shapes[conv_idx],
            "fc": (fc_layers[fc_idx],),
            "y": (self.code_dim,),
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape (N, {expected[0]}, {expected[1]}, {expected[2]}), got "
                f"{tuple(x.shape)}; build the encoder with matching in_channels / image_size"
            )
        taps: dict[str, torch.Tensor] = {}
        h = x
        for i, block in enumerate(self.convs):
            h = block(h)
            if i == self.local_idx:
                taps["local"] = h
            if i == self.conv_idx:
                taps["conv"] = h
        h = h.flatten(1)
        for i, block in enumerate(self.fcs):
            h = block(h)
            if i == self.fc_idx:
                taps["fc"] = h
        taps["y"] = self.head(h)
        return taps


_DIM32_CONVS = (ConvSpec(64, 4, 2, 1), ConvSpec(128, 4, 2, 1), ConvSpec(256, 4, 2, 1))
_DIM32_FCS = (1024,)
_ALEX64_CONVS = (
    ConvSpec(96, 3, 1, 1, (3, 2)),
    ConvSpec(192, 3, 1, 1, (3, 2)),
    ConvSpec(384, 3, 1, 1),
    ConvSpec(384, 3, 1, 1),
    ConvSpec(192, 3, 1, 1, (3, 2)),
)
_ALEX64_FCS = (4096, 4096)


def _build(
    convs: Sequence[ConvSpec],
    fcs: Sequence[int],
    idx: tuple[int, int, int],
    width: float,
    in_channels: int,
    image_size: int,
    code_dim: int,
) -> DIMEncoder:
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    convs = [spec._replace(channels=_scaled(spec.channels, width)) for spec in convs]
    fcs = [_scaled(f, width) for f in fcs]
    return DIMEncoder(
        convs,
        fcs,
        local_idx=idx[0],
        conv_idx=idx[1],
        fc_idx=idx[2],
        in_channels=in_channels,
        image_size=image_size,
        code_dim=code_dim,
    )


@register_encoder("dim32")
def dim32(
    in_channels: int = 3, image_size: int = 32, code_dim: int = 64, width: float = 1.0
) -> DIMEncoder:
    """The DIM 32x32 encoder (taps: local 128x8x8, conv 256x4x4, fc 1024, y code_dim).

    ``width`` multiplies every channel / unit count; ``image_size`` other than 32 changes the
    spatial sizes (image_size / 4 for ``local``, image_size / 8 for ``conv``).
    """
    return _build(_DIM32_CONVS, _DIM32_FCS, (1, 2, 0), width, in_channels, image_size, code_dim)


@register_encoder("dim64")
def dim64(
    in_channels: int = 3, image_size: int = 64, code_dim: int = 64, width: float = 1.0
) -> DIMEncoder:
    """The DIM AlexNet-style 64x64 encoder (taps: local 384x15x15, conv 192x7x7, fc 4096, y)."""
    return _build(_ALEX64_CONVS, _ALEX64_FCS, (2, 4, 1), width, in_channels, image_size, code_dim)


@register_encoder("dim32-tiny")
def dim32_tiny(
    in_channels: int = 3, image_size: int = 32, code_dim: int = 64, width: float = 0.125
) -> DIMEncoder:
    """``dim32`` at 1/8 width (8, 16, 32 channels, fc 128) for fast tests."""
    return dim32(in_channels, image_size, code_dim, width)


@register_encoder("dim64-tiny")
def dim64_tiny(
    in_channels: int = 3, image_size: int = 64, code_dim: int = 64, width: float = 0.0625
) -> DIMEncoder:
    """``dim64`` at 1/16 width (6, 12, 24, 24, 12 channels, fc 256) for fast tests."""
    return dim64(in_channels, image_size, code_dim, width)
