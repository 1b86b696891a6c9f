"""AMDIM encoders with 1x1, 5x5 and 7x7 taps (Bachman, Hjelm, Buchwalter, NeurIPS 2019).

The residual encoder of the reference code (Philip-Bachman/amdim-public ``model.py`` ``Encoder``),
with no zero padding anywhere, so feature distributions stay stationary over locations (paper
Sec. 3.4). Registered names (``infomax.models.create_encoder(name, **kwargs)``):

- ``amdim32`` (CIFAR): conv3x3(ndf)+ReLU [30x30] -> res1x1(ndf) -> block(2ndf, k4, s2) [14x14] ->
  block(4ndf, k2, s2) [7x7] -> BN? -> block(4ndf, k3) [5x5] -> block(4ndf, k3) [3x3] ->
  res3x3(n_rkhs) [1x1] -> BN.
- ``amdim64`` (STL-10): conv3x3(ndf)+ReLU [62] -> block(2ndf, k4, s2) [30] -> block(4ndf, k4, s2)
  [14] -> block(8ndf, k2, s2) [7] -> BN? -> block(8ndf, k3) [5] -> block(8ndf, k3) [3] ->
  res3x3(n_rkhs) [1] -> BN.
- ``amdim128`` (ImageNet): conv5x5(ndf, s2, reflect pad 2)+ReLU [64] -> conv3x3(ndf)+ReLU [62] ->
  then as ``amdim64``.
- ``amdim32-tiny``, ``amdim64-tiny``, ``amdim128-tiny``: ``ndf=8, n_rkhs=32, n_depth=1`` by
  default, for fast CPU tests.

A *block* (``ConvResBlock``) is one strided ``k x k`` residual unit followed by ``n_depth - 1``
1x1 units. The residual unit (``ConvResNxN``) is ``conv1x1(ReLU(BN?(conv_kxk(x)))) +
avg_pool_kxk(x)`` (channels zero-padded when widening, no ReLU after the sum) with the second
conv zero-initialised, so every unit starts as its shortcut. ``BN?`` is present when
``use_bn=True`` (reference default: off); the final BN of ``r1`` is always there.

Taps: ``r1`` (N, n_rkhs, 1, 1) is the final output; ``r5`` and ``r7`` take the last 5x5 and 7x7
activations through a "fake RKHS" head (:class:`FakeRKHSHead`) to ``n_rkhs`` channels;
``features`` (N, n_rkhs) is the flattened ``r1`` used by probes.

>>> enc = create_encoder("amdim32-tiny")                                      # doctest: +SKIP
>>> {k: tuple(v.shape) for k, v in enc(torch.randn(2, 3, 32, 32)).items()}    # doctest: +SKIP
{'r1': (2, 32, 1, 1), 'r5': (2, 32, 5, 5), 'r7': (2, 32, 7, 7), 'features': (2, 32)}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from infomax.models.registry import register_encoder

__all__ = [
    "AMDIMEncoder",
    "ConvResBlock",
    "ConvResNxN",
    "FakeRKHSHead",
    "StemConv",
    "amdim32",
    "amdim32_tiny",
    "amdim64",
    "amdim64_tiny",
    "amdim128",
    "amdim128_tiny",
]

IMAGE_SIZES = (32, 64, 128)


def _maybe_bn(channels: int, use_bn: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if use_bn else nn.Identity()


class StemConv(nn.Module):
    """``ReLU(BN?(conv(pad(x))))``, the reference ``Conv3x3`` (bias when there is no BN).

    ``padding`` is applied with ``pad_mode`` (``reflect`` for the 128x128 stem) before an unpadded
    convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        use_bn: bool = False,
        pad_mode: str = "constant",
    ) -> None:
        super().__init__()
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        self.padding, self.pad_mode = int(padding), pad_mode
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, 0, bias=not use_bn)
        self.bn = _maybe_bn(out_channels, use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding > 0:
            x = F.pad(x, (self.padding,) * 4, mode=self.pad_mode)
        return F.relu(self.bn(self.conv(x)))


class ConvResNxN(nn.Module):
    """Residual unit ``conv1x1(ReLU(BN?(conv_kxk(x)))) + shortcut(x)``, no padding.

    The shortcut is ``avg_pool2d(x, kernel, stride)`` with zero channels appended when
    ``out_channels > in_channels``; when narrowing (``out_channels < in_channels``, e.g. an
    ``n_rkhs`` below ``4 * ndf``) it is a learned ``kernel x kernel`` strided convolution with
    bias on ``x``, the reference's ``conv3``. Both branch convolutions are bias-free; the second
    is zero-initialised (fixup-style), so at initialisation the unit equals its shortcut. No ReLU
    after the sum.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, (H - kernel) // stride + 1, ...).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, use_bn: bool = False
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel, self.stride = int(kernel), int(stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel, stride, 0, bias=False)
        self.bn1 = _maybe_bn(out_channels, use_bn)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 1, 1, 0, bias=False)
        # reference ConvResNxN.conv3: used only when narrowing
        self.narrow = (
            nn.Conv2d(in_channels, out_channels, kernel, stride, 0, bias=True)
            if out_channels < in_channels
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv1.reset_parameters()  # kaiming_uniform(a=sqrt(5)), the reference's choice
        nn.init.zeros_(self.conv2.weight)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.narrow is not None:
            return self.narrow(x)
        h = x
        if self.kernel > 1 or self.stride > 1:
            h = F.avg_pool2d(h, self.kernel, self.stride)
        if self.out_channels > self.in_channels:
            h = F.pad(h, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn1(self.conv1(x)))) + self.shortcut(x)


class ConvResBlock(nn.Sequential):
    """One strided ``kernel x kernel`` :class:`ConvResNxN` then ``depth - 1`` 1x1 units."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        depth: int,
        use_bn: bool = False,
    ) -> None:
        if depth < 1:
            raise ValueError(f"n_depth must be >= 1, got {depth}")
        units = [ConvResNxN(in_channels, out_channels, kernel, stride, use_bn)]
        units += [ConvResNxN(out_channels, out_channels, 1, 1, use_bn) for _ in range(depth - 1)]
        super().__init__(*units)


class FakeRKHSHead(nn.Module):
    """The reference ``FakeRKHSConvNet``: ``BN(conv1x1(ReLU(BN?(conv1x1(x)))) + shortcut(x))``.

    ``shortcut`` is a 1x1 conv with bias, initialised near the identity (weights uniform in
    [-0.01, 0.01], diagonal 1) when ``out_channels >= in_channels``; the second conv of the
    residual branch is zero-initialised. The output BN is always present.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, use_bn: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn1 = _maybe_bn(out_channels, use_bn)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.bn_out = nn.BatchNorm2d(out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv1.reset_parameters()
        nn.init.zeros_(self.conv2.weight)
        self.shortcut.reset_parameters()
        if self.out_channels >= self.in_channels:
            with torch.no_grad():
                self.shortcut.weight.uniform_(-0.01, 0.01)
                idx = torch.arange(self.in_channels)
                self.shortcut.weight[idx, idx, 0, 0] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.bn1(self.conv1(x))))
        return self.bn_out(h + self.shortcut(x))


class AMDIMEncoder(nn.Module):
    """The AMDIM encoder for 32x32, 64x64 or 128x128 inputs with taps ``r1``, ``r5``, ``r7``.

    Reference: Bachman et al. (2019), Sec. 3.4 and Philip-Bachman/amdim-public ``model.py``
    (``Encoder``, ``ConvResNxN``, ``ConvResBlock``, ``FakeRKHSConvNet``). ``r5`` / ``r7`` come
    from the *last* layer output of spatial size 5 / 7 (for ``r7``: after the optional BN).

    Args:
        in_channels: channels of the input images.
        image_size: 32, 64 or 128 (picks the layer stack).
        ndf: base width (reference 128; the large CIFAR model 256).
        n_rkhs: width of the embeddings ``r1``, ``r5``, ``r7`` (reference 1024).
        n_depth: residual units per block (reference 3).
        use_bn: batch norm inside the residual units and after the 7x7 stage (reference off).

    Shape:
        input ``(N, in_channels, image_size, image_size)`` float (normalised); output a dict
        ``r1`` (N, n_rkhs, 1, 1), ``r5`` (N, n_rkhs, 5, 5), ``r7`` (N, n_rkhs, 7, 7), ``features``
        (N, n_rkhs); :attr:`tap_shapes` gives the per-sample shapes.
    """

    probe_taps: tuple[str, ...] = ("features",)

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        ndf: int = 128,
        n_rkhs: int = 1024,
        n_depth: int = 3,
        use_bn: bool = False,
    ) -> None:
        super().__init__()
        if image_size not in IMAGE_SIZES:
            raise ValueError(
                f"AMDIM encoders take image_size 32, 64 or 128 (amdim32/64/128), got {image_size}"
            )
        for name, value in (("in_channels", in_channels), ("ndf", ndf), ("n_rkhs", n_rkhs)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if n_depth < 1:
            raise ValueError(f"n_depth must be >= 1, got {n_depth}")
        self.in_channels, self.image_size = int(in_channels), int(image_size)
        self.ndf, self.n_rkhs, self.n_depth, self.use_bn = ndf, n_rkhs, n_depth, bool(use_bn)
        d, b = n_depth, use_bn
        if image_size == 32:
            top = 4 * ndf
            layers: list[nn.Module] = [
                StemConv(in_channels, ndf, 3),  # 30
                ConvResNxN(ndf, ndf, 1, 1, b),
                ConvResBlock(ndf, 2 * ndf, 4, 2, d, b),  # 14
                ConvResBlock(2 * ndf, top, 2, 2, d, b),  # 7
            ]
        else:
            top = 8 * ndf
            layers = []
            if image_size == 128:
                layers.append(StemConv(in_channels, ndf, 5, 2, 2, pad_mode="reflect"))  # 64
                layers.append(StemConv(ndf, ndf, 3))  # 62
            else:
                layers.append(StemConv(in_channels, ndf, 3))  # 62
            layers += [
                ConvResBlock(ndf, 2 * ndf, 4, 2, d, b),  # 30
                ConvResBlock(2 * ndf, 4 * ndf, 4, 2, d, b),  # 14
                ConvResBlock(4 * ndf, top, 2, 2, d, b),  # 7
            ]
        layers.append(_maybe_bn(top, b))
        self.to7 = nn.Sequential(*layers)
        self.to5 = ConvResBlock(top, top, 3, 1, d, b)  # 5
        self.to1 = nn.Sequential(
            ConvResBlock(top, top, 3, 1, d, b),  # 3
            ConvResNxN(top, n_rkhs, 3, 1, b),  # 1
            nn.BatchNorm2d(n_rkhs),
        )
        self.head5 = FakeRKHSHead(top, n_rkhs, b)
        self.head7 = FakeRKHSHead(top, n_rkhs, b)
        self.tap_shapes = {
            "r1": (n_rkhs, 1, 1),
            "r5": (n_rkhs, 5, 5),
            "r7": (n_rkhs, 7, 7),
            "features": (n_rkhs,),
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-1] != self.image_size:
            raise ValueError(
                f"expected images (N, {self.in_channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(x.shape)}"
            )
        h7 = self.to7(x)
        h5 = self.to5(h7)
        r1 = self.to1(h5)
        return {
            "r1": r1,
            "r5": self.head5(h5),
            "r7": self.head7(h7),
            "features": r1.flatten(1),
        }

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, ndf={self.ndf}, n_rkhs={self.n_rkhs}, "
            f"n_depth={self.n_depth}, use_bn={self.use_bn}"
        )


def _check_size(image_size: int, expected: int, name: str) -> None:
    if image_size != expected:
        raise ValueError(f"{name} takes {expected}x{expected} images, got image_size={image_size}")


def _sized_encoder(
    name: str, size: int, doc: str, ndf: int = 128, n_rkhs: int = 1024, n_depth: int = 3
):
    """The factory of the encoder ``name``: ``size`` x ``size`` input, the given defaults."""

    def factory(
        in_channels: int = 3,
        image_size: int = size,
        ndf: int = ndf,
        n_rkhs: int = n_rkhs,
        n_depth: int = n_depth,
        use_bn: bool = False,
    ) -> AMDIMEncoder:
        _check_size(image_size, size, name)
        return AMDIMEncoder(in_channels, size, ndf, n_rkhs, n_depth, use_bn)

    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    factory.__doc__ = doc
    return register_encoder(name)(factory)


# the reference's encoders (defaults ndf 128, n_rkhs 1024, depth 3) and tiny variants for tests
amdim32 = _sized_encoder("amdim32", 32, "The AMDIM CIFAR encoder (32x32 input).")
amdim64 = _sized_encoder("amdim64", 64, "The AMDIM STL-10 encoder (64x64 input).")
amdim128 = _sized_encoder(
    "amdim128", 128, "The AMDIM ImageNet encoder (128x128 input, 5x5 stride-2 reflect-padded stem)."
)
_TINY = dict(ndf=8, n_rkhs=32, n_depth=1)
amdim32_tiny = _sized_encoder("amdim32-tiny", 32, "``amdim32``, ndf 8, n_rkhs 32 (tests).", **_TINY)
amdim64_tiny = _sized_encoder("amdim64-tiny", 64, "``amdim64``, ndf 8, n_rkhs 32 (tests).", **_TINY)
amdim128_tiny = _sized_encoder(
    "amdim128-tiny", 128, "``amdim128``, ndf 8, n_rkhs 32 (tests).", **_TINY
)
