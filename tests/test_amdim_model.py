"""AMDIM encoders: tap sizes, exact reference layer structure, zero-initialised residual units."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from infomax.models import create_encoder, list_encoders
from infomax.models.amdim import AMDIMEncoder, ConvResBlock, ConvResNxN, FakeRKHSHead, StemConv


def _shapes(taps: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in taps.items()}


def test_registered_names():
    names = list_encoders()
    for name in ("amdim32", "amdim64", "amdim128", "amdim32-tiny", "amdim64-tiny"):
        assert name in names


@pytest.mark.parametrize(
    "name,size", [("amdim32-tiny", 32), ("amdim64-tiny", 64), ("amdim128-tiny", 128)]
)
def test_tiny_tap_sizes(name, size):
    torch.manual_seed(0)
    enc = create_encoder(name)
    assert enc.probe_taps == ("features",)
    taps = enc(torch.randn(2, 3, size, size))
    assert _shapes(taps) == {
        "r1": (2, 32, 1, 1),
        "r5": (2, 32, 5, 5),
        "r7": (2, 32, 7, 7),
        "features": (2, 32),
    }
    assert torch.equal(taps["features"], taps["r1"].flatten(1))
    assert {k: tuple(v) for k, v in enc.tap_shapes.items()} == {
        k: s[1:] for k, s in _shapes(taps).items()
    }


def test_small_preset_forward_and_structure():
    """The reference default (ndf 128, n_rkhs 1024, depth 3): shapes and layer counts."""
    torch.manual_seed(0)
    enc = create_encoder("amdim32")
    with torch.no_grad():
        taps = enc(torch.randn(2, 3, 32, 32))
    assert _shapes(taps)["r1"] == (2, 1024, 1, 1)
    assert _shapes(taps)["r5"] == (2, 1024, 5, 5)
    assert _shapes(taps)["r7"] == (2, 1024, 7, 7)
    blocks = [m for m in enc.modules() if isinstance(m, ConvResBlock)]
    assert len(blocks) == 4 and all(len(b) == 3 for b in blocks)
    units = [m for m in enc.modules() if isinstance(m, ConvResNxN)]
    assert len(units) == 1 + 4 * 3 + 1
    # no zero padding anywhere: every conv has padding 0
    assert all(m.padding == (0, 0) for m in enc.modules() if isinstance(m, torch.nn.Conv2d))
    # no BN inside the units by default; BN after r1 and in both heads
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules()) == 3
    widths = [b[0].conv1.out_channels for b in blocks]
    assert widths == [256, 512, 512, 512]


def test_use_bn_adds_batch_norms():
    enc = create_encoder("amdim32-tiny", use_bn=True)
    n_units = sum(isinstance(m, ConvResNxN) for m in enc.modules())
    # one per unit, one after the 7x7 stage, one per head (inner), one per head (out), final
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules()) == n_units + 1 + 4 + 1


def test_image_size_validated():
    with pytest.raises(ValueError, match="32x32"):
        create_encoder("amdim32", image_size=64)
    with pytest.raises(ValueError, match="32, 64 or 128"):
        AMDIMEncoder(image_size=48)
    with pytest.raises(ValueError):
        create_encoder("amdim32-tiny")(torch.randn(1, 3, 64, 64))


def test_residual_unit_is_its_shortcut_at_init():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 9)
    unit = ConvResNxN(4, 6, 3, 2)
    expected = F.pad(F.avg_pool2d(x, 3, 2), (0, 0, 0, 0, 0, 2))
    assert torch.allclose(unit(x), expected, atol=1e-6)
    same = ConvResNxN(4, 4, 1, 1)
    assert torch.allclose(same(x), x)
    assert torch.count_nonzero(unit.conv2.weight) == 0
    # after training the branch matters
    with torch.no_grad():
        unit.conv2.weight.normal_()
    assert not torch.allclose(unit(x), expected)


def test_fake_rkhs_head_starts_near_identity():
    torch.manual_seed(0)
    head = FakeRKHSHead(4, 6)
    w = head.shortcut.weight[:, :, 0, 0]
    assert torch.equal(torch.diagonal(w), torch.ones(4))
    off = w - torch.eye(6, 4)
    assert off.abs().max() <= 0.01
    x = torch.randn(3, 4, 5, 5)
    assert torch.allclose(head(x), head.bn_out(head.shortcut(x)), atol=1e-6)


def test_128_stem_reflect_pad():
    enc = create_encoder("amdim128-tiny")
    stem = enc.to7[0]
    assert isinstance(stem, StemConv)
    assert stem.conv.kernel_size == (5, 5) and stem.conv.stride == (2, 2)
    assert stem.padding == 2 and stem.pad_mode == "reflect"


def test_backward_reaches_all_parameters():
    torch.manual_seed(0)
    enc = create_encoder("amdim32-tiny")
    taps = enc(torch.randn(4, 3, 32, 32))
    (taps["r1"].square().mean() + taps["r5"].mean() + taps["r7"].mean()).backward()
    # zero-initialised second convs receive gradients, so training moves them
    assert all(p.grad is not None for p in enc.parameters())


def test_narrowing_unit_shortcut_is_the_reference_strided_conv():
    # amdim-public ConvResNxN: n_out < n_in -> h3 = conv3(x), a k x k strided conv with bias
    # (not pooled), e.g. the last unit when n_rkhs < 4 * ndf
    torch.manual_seed(0)
    unit = ConvResNxN(8, 4, 3, 1)
    assert unit.narrow.kernel_size == (3, 3) and unit.narrow.bias is not None
    x = torch.randn(2, 8, 3, 3)
    expected = F.conv2d(x, unit.narrow.weight, unit.narrow.bias)
    assert torch.allclose(unit(x), expected, atol=1e-6)  # the branch starts at zero
    enc = create_encoder("amdim32", ndf=8, n_rkhs=16, n_depth=1)  # 4 * ndf = 32 > n_rkhs
    assert enc(torch.randn(2, 3, 32, 32))["r1"].shape == (2, 16, 1, 1)
