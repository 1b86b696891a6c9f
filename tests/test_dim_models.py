"""Deep InfoMax encoders: taps, shapes, exact layer counts of the paper / reference encoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from infomax.models import create_encoder, list_encoders
from infomax.models.dim import DIMEncoder


def _shapes(taps: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in taps.items()}


def test_registered_names():
    names = list_encoders()
    for name in ("dim32", "dim64", "dim32-tiny", "dim64-tiny"):
        assert name in names


def test_dim32_taps_and_parameter_count():
    torch.manual_seed(0)
    enc = create_encoder("dim32")
    assert isinstance(enc, DIMEncoder)
    assert enc.probe_taps == ("conv", "fc", "y")
    with torch.no_grad():
        taps = enc(torch.randn(2, 3, 32, 32))
    assert _shapes(taps) == {
        "local": (2, 128, 8, 8),
        "conv": (2, 256, 4, 4),
        "fc": (2, 1024),
        "y": (2, 64),
    }
    assert enc.tap_shapes == {k: v[1:] for k, v in _shapes(taps).items()}
    # conv (no bias, BN has 2C parameters): 3*64*16 + 128, 64*128*16 + 256, 128*256*16 + 512;
    # fc 4096*1024 + 1024 (+ BN 2048); y 1024*64 + 64
    expected = (
        3 * 64 * 16
        + 128
        + 64 * 128 * 16
        + 256
        + 128 * 256 * 16
        + 512
        + 4096 * 1024
        + 1024
        + 2048
        + 1024 * 64
        + 64
    )
    assert sum(p.numel() for p in enc.parameters()) == expected
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.padding, c.bias) for c in convs] == [
        ((4, 4), (2, 2), (1, 1), None)
    ] * 3
    # y is a plain linear layer: no ReLU, may be negative
    assert (taps["y"] < 0).any()
    assert (taps["local"] >= 0).all() and (taps["fc"] >= 0).all()


def test_dim64_alexnet_taps_and_parameter_count():
    torch.manual_seed(0)
    enc = create_encoder("dim64")
    with torch.no_grad():
        taps = enc(torch.randn(2, 3, 64, 64))
    assert _shapes(taps) == {
        "local": (2, 384, 15, 15),
        "conv": (2, 192, 7, 7),
        "fc": (2, 4096),
        "y": (2, 64),
    }
    expected = (
        3 * 96 * 9
        + 192
        + 96 * 192 * 9
        + 384
        + 192 * 384 * 9
        + 768
        + 384 * 384 * 9
        + 768
        + 384 * 192 * 9
        + 384
        + 192 * 49 * 4096
        + 4096
        + 8192
        + 4096 * 4096
        + 4096
        + 8192
        + 4096 * 64
        + 64
    )
    assert sum(p.numel() for p in enc.parameters()) == expected
    pools = [m for m in enc.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.kernel_size == 3 and p.stride == 2 for p in pools)
    assert enc.fc_widths == (4096, 4096)


@pytest.mark.parametrize(
    "name,size,expected",
    [
        ("dim32-tiny", 32, {"local": (16, 8, 8), "conv": (32, 4, 4), "fc": (128,), "y": (10,)}),
        ("dim64-tiny", 64, {"local": (24, 15, 15), "conv": (12, 7, 7), "fc": (256,), "y": (10,)}),
    ],
)
def test_tiny_variants(name, size, expected):
    enc = create_encoder(name, code_dim=10)
    taps = enc(torch.randn(4, 3, size, size))
    assert {k: v[1:] for k, v in _shapes(taps).items()} == expected == enc.tap_shapes


def test_other_sizes_and_channels():
    enc = create_encoder("dim32-tiny", in_channels=1, image_size=28)
    taps = enc(torch.randn(2, 1, 28, 28))
    assert taps["local"].shape[-2:] == (7, 7) and taps["conv"].shape[-2:] == (3, 3)


def test_bad_inputs_raise():
    enc = create_encoder("dim32-tiny")
    with pytest.raises(ValueError, match="expected images"):
        enc(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="expected images"):
        enc(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        create_encoder("dim32", image_size=4)
    with pytest.raises(ValueError, match="too small"):
        create_encoder("dim64", image_size=8)
    with pytest.raises(ValueError, match="width"):
        create_encoder("dim32", width=0)
