"""Tests of infomax.transforms: identities, torchvision equivalence, per-image randomness."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TVF

from infomax.transforms import (
    AmdimViews,
    DimAugment,
    Normalize,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    center_crop,
    color_jitter,
    eval_transform,
    hsv_to_rgb,
    random_crop,
    random_grayscale,
    random_hflip,
    random_resized_crop,
    random_translate,
    resize,
    resized_crop,
    rgb_to_grayscale,
    rgb_to_hsv,
    to_float,
    translate,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 images with structure (upsampled noise + a colour ramp), all channels varied."""
    g = gen(seed)
    low = torch.rand((n, 3, 6, 6), generator=g)
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    ramp = torch.linspace(0, 0.3, size).view(1, 1, 1, size)
    x = (0.7 * x + ramp + 0.05 * torch.rand((n, 3, size, size), generator=g)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def imgs() -> torch.Tensor:
    return smooth_images(48)


# ---------------------------------------------------------------------------------------------
# identities


def test_neutral_parameters_are_identity(imgs):
    xf = to_float(imgs)
    assert torch.equal(random_hflip(imgs, 0.0, gen()), imgs)
    assert torch.equal(random_translate(imgs, 0, p=1.0, gen=gen()), imgs)
    assert torch.equal(random_translate(imgs, 4, p=0.0, gen=gen()), imgs)
    assert torch.equal(random_grayscale(imgs, 0.0, gen()), imgs)
    assert torch.equal(color_jitter(imgs, 0, 0, 0, 0, p=1.0, gen=gen()), xf)
    assert torch.equal(color_jitter(imgs, 0.4, 0.4, 0.4, 0.2, p=0.0, gen=gen()), xf)
    for order in ("random", "fixed"):
        out = color_jitter(imgs, (1, 1), (1, 1), (1, 1), (0, 0), gen=gen(), order=order)
        assert torch.equal(out, xf)
    for interp in ("bilinear", "bicubic"):
        out = random_resized_crop(imgs, 32, (1.0, 1.0), (1.0, 1.0), interp, gen())
        torch.testing.assert_close(out, xf, atol=1e-5, rtol=0)
    assert torch.equal(random_crop(imgs, 32, padding=0, gen=gen()), imgs)
    assert torch.equal(center_crop(imgs, 32), imgs)


def test_amdim_views_all_disabled_is_normalisation(imgs):
    aug = AmdimViews.preset(
        "cifar", enable_flip=False, enable_crop=False, enable_jitter=False, enable_gray=False
    )
    v1, v2 = aug.views(imgs, gen())
    ref = T.Normalize(aug.normalize.mean.flatten().tolist(), aug.normalize.std.flatten().tolist())
    torch.testing.assert_close(v1, ref(to_float(imgs)), atol=1e-5, rtol=1e-5)
    assert torch.equal(v1, v2)
    # neutral settings instead of switches
    aug2 = AmdimViews(32, flip_p=0.0, translate_px=0, jitter=(0, 0, 0, 0), gray_p=0.0, jitter_p=1.0)
    w1, w2 = aug2.views(imgs, gen())
    torch.testing.assert_close(w1, v1)
    torch.testing.assert_close(w2, v1)


def test_hsv_round_trip():
    x = torch.rand(4, 3, 16, 16, generator=gen(1))
    x[0, :, :4] = 0.5  # greys (hue undefined)
    x[1, :, :4] = 0.0
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# grayscale, colour: agreement with torchvision


def test_grayscale_matches_torchvision(imgs):
    xf = to_float(imgs)
    ref = TVF.rgb_to_grayscale(xf, num_output_channels=3)
    out = random_grayscale(xf, 1.0, gen())
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    torch.testing.assert_close(rgb_to_grayscale(xf), TVF.rgb_to_grayscale(xf), atol=1e-6, rtol=0)
    # uint8 stays uint8; torchvision truncates where we round: within one level
    out8 = random_grayscale(imgs, 1.0, gen())
    assert out8.dtype == torch.uint8
    diff = (out8.int() - TVF.rgb_to_grayscale(imgs, 3).int()).abs()
    assert int(diff.max()) <= 1


@pytest.mark.parametrize("factor", [0.6, 1.0, 1.37])
def test_brightness_contrast_saturation_match_torchvision(imgs, factor):
    xf = to_float(imgs[:16])
    for ours, theirs, name in (
        (adjust_brightness, TVF.adjust_brightness, "brightness"),
        (adjust_contrast, TVF.adjust_contrast, "contrast"),
        (adjust_saturation, TVF.adjust_saturation, "saturation"),
    ):
        ref = theirs(xf, factor)
        torch.testing.assert_close(ours(xf, factor), ref, atol=1e-5, rtol=0)
        # color_jitter with a range of one value gives the same
        kw = {name: (factor, factor)}
        torch.testing.assert_close(color_jitter(xf, gen=gen(), **kw), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("hue", [-0.2, 0.05, 0.31])
def test_hue_matches_torchvision(imgs, hue):
    xf = to_float(imgs[:16])
    ref = TVF.adjust_hue(xf, hue)
    torch.testing.assert_close(adjust_hue(xf, hue), ref, atol=2e-5, rtol=0)
    torch.testing.assert_close(color_jitter(xf, hue=(hue, hue), gen=gen()), ref, atol=2e-5, rtol=0)


def test_per_image_factors_match_torchvision_per_image(imgs):
    xf = to_float(imgs[:8])
    factors = torch.linspace(0.5, 1.5, 8)
    hues = torch.linspace(-0.4, 0.4, 8)
    out_b = adjust_brightness(xf, factors)
    out_c = adjust_contrast(xf, factors)
    out_s = adjust_saturation(xf, factors)
    out_h = adjust_hue(xf, hues)
    for i in range(8):
        f, h = float(factors[i]), float(hues[i])
        torch.testing.assert_close(out_b[i], TVF.adjust_brightness(xf[i], f), atol=1e-5, rtol=0)
        torch.testing.assert_close(out_c[i], TVF.adjust_contrast(xf[i], f), atol=1e-5, rtol=0)
        torch.testing.assert_close(out_s[i], TVF.adjust_saturation(xf[i], f), atol=1e-5, rtol=0)
        torch.testing.assert_close(out_h[i], TVF.adjust_hue(xf[i], h), atol=2e-5, rtol=0)


def test_fixed_order_matches_torchvision_composition(imgs):
    xf = to_float(imgs[:4])
    out = color_jitter(xf, (1.3, 1.3), (0.7, 0.7), (1.2, 1.2), (0.1, 0.1), gen=gen(), order="fixed")
    ref = TVF.adjust_hue(
        TVF.adjust_saturation(TVF.adjust_contrast(TVF.adjust_brightness(xf, 1.3), 0.7), 1.2), 0.1
    )
    torch.testing.assert_close(out, ref, atol=3e-5, rtol=0)


def test_random_order_applies_each_step_once():
    # one image repeated: with factors fixed, every output is one of the 24 orders' results
    x = to_float(smooth_images(1)).expand(64, -1, -1, -1).contiguous()
    out = color_jitter(x, (1.4, 1.4), (0.6, 0.6), (0.3, 0.3), (0.2, 0.2), gen=gen(), order="random")
    import itertools

    ops = {
        "b": lambda t: TVF.adjust_brightness(t, 1.4),
        "c": lambda t: TVF.adjust_contrast(t, 0.6),
        "s": lambda t: TVF.adjust_saturation(t, 0.3),
        "h": lambda t: TVF.adjust_hue(t, 0.2),
    }
    refs = []
    for perm in itertools.permutations("bcsh"):
        t = x[:1]
        for k in perm:
            t = ops[k](t)
        refs.append(t)
    refs = torch.cat(refs)  # (24, 3, H, W)
    dist = (out[:, None] - refs[None]).abs().flatten(2).amax(-1)  # (64, 24)
    assert float(dist.min(dim=1).values.max()) < 1e-4
    # and several different orders were used
    assert len(set(dist.argmin(dim=1).tolist())) >= 8


# ---------------------------------------------------------------------------------------------
# geometry


def test_translate_equals_reflect_pad_and_crop(imgs):
    dx = torch.randint(-4, 5, (imgs.shape[0],), generator=gen(3))
    dy = torch.randint(-4, 5, (imgs.shape[0],), generator=gen(4))
    out = translate(imgs, dx, dy, "reflect")
    padded = F.pad(imgs.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
    for i in range(imgs.shape[0]):
        top, left = 4 - int(dy[i]), 4 - int(dx[i])
        assert torch.equal(out[i], padded[i, :, top : top + 32, left : left + 32])
    out0 = translate(imgs, dx, dy, "constant")
    padded0 = F.pad(imgs, (4, 4, 4, 4))
    i = 5
    top, left = 4 - int(dy[i]), 4 - int(dx[i])
    assert torch.equal(out0[i], padded0[i, :, top : top + 32, left : left + 32])


def test_random_crop_matches_pad_then_crop(imgs):
    out = random_crop(imgs, 32, padding=4, mode="constant", gen=gen())
    padded = F.pad(imgs, (4, 4, 4, 4))
    for i in range(8):
        windows = padded[i].unfold(1, 32, 1).unfold(2, 32, 1)  # (C, 9, 9, 32, 32)
        match = (windows == out[i][:, None, None]).flatten(3).all(-1).all(0)
        assert bool(match.any())


def test_full_image_crop_equals_resize():
    x = smooth_images(6, size=20)
    for interp in ("bilinear", "bicubic"):
        for size in (28, 14):
            crop = random_resized_crop(x, size, (1.0, 1.0), (1.0, 1.0), interp, gen())
            ref = resize(x, size, interp, antialias=False)
            torch.testing.assert_close(crop, ref, atol=2e-5, rtol=0)
            assert crop.shape == (6, 3, size, size)


def test_resized_crop_box_matches_torchvision():
    x = to_float(smooth_images(2, size=24))
    boxes = torch.tensor([[3, 5, 10, 12], [0, 0, 24, 24]])
    for interp, mode in (
        ("bilinear", T.InterpolationMode.BILINEAR),
        ("bicubic", T.InterpolationMode.BICUBIC),
    ):
        out = resized_crop(x, boxes, 16, interp)
        for i, (t, l, h, w) in enumerate(boxes.tolist()):
            ref = TVF.resized_crop(x[i], t, l, h, w, [16, 16], mode, antialias=False)
            # torchvision repeats the crop's edge pixels where we read the image's pixels
            # just outside the crop: only the outer 2 output pixels may differ
            inner = (slice(None), slice(2, -2), slice(2, -2))
            torch.testing.assert_close(out[i][inner], ref.clamp(0, 1)[inner], atol=2e-5, rtol=0)
            if (h, w) == (24, 24):
                torch.testing.assert_close(out[i], ref.clamp(0, 1), atol=2e-5, rtol=0)


def test_random_resized_crop_shapes_and_sizes():
    x = smooth_images(64, size=96)
    out = random_resized_crop(x, 64, (0.3, 1.0), (0.7, 1.4), "bicubic", gen())
    assert out.shape == (64, 3, 64, 64) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    out = random_resized_crop(x, (40, 50), gen=gen())
    assert out.shape == (64, 3, 40, 50)


def test_center_crop_and_resize_match_torchvision():
    x = smooth_images(3, size=96)
    torch.testing.assert_close(center_crop(x, 64), TVF.center_crop(x, [64, 64]))
    torch.testing.assert_close(center_crop(x, 63), TVF.center_crop(x, [63, 63]))
    ref = TVF.resize(to_float(x), [70], T.InterpolationMode.BICUBIC, antialias=True)
    torch.testing.assert_close(resize(x, 70, "bicubic"), ref.clamp(0, 1), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# per-image randomness, shared flip, reproducibility


def test_flip_is_shared_by_both_views():
    x = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    x[..., :10] = 255  # bright left edge: a flip moves it to the right
    x[:, 0, :5, :] = 128  # and asymmetric top-bottom
    aug = AmdimViews.preset("cifar", enable_crop=False, enable_jitter=False, enable_gray=False)
    v1, v2 = aug.views(x, gen())
    assert torch.equal(v1, v2)
    flipped = v1[:, 1, 16, -1] > v1[:, 1, 16, 0]
    assert 10 < int(flipped.sum()) < 54
    # with augmentations on, the flip is still shared: the bright side is where it was
    aug = AmdimViews.preset("cifar", translate_px=2, enable_jitter=False, enable_gray=False)
    v1, v2 = aug.views(x, gen(1))
    side1 = v1[:, 1, 16, -4:].mean(-1) > v1[:, 1, 16, :4].mean(-1)
    side2 = v2[:, 1, 16, -4:].mean(-1) > v2[:, 1, 16, :4].mean(-1)
    assert torch.equal(side1, side2)


def test_parameters_differ_across_batch():
    x = smooth_images(1, size=48).expand(64, -1, -1, -1).contiguous()

    def distinct(t: torch.Tensor) -> int:
        return len({tuple(row) for row in t.flatten(1)[:, ::7].mul(1000).round().tolist()})

    assert distinct(random_resized_crop(x, 32, gen=gen())) > 50
    assert distinct(color_jitter(x, 0.4, 0.4, 0.4, 0.2, gen=gen())) > 50
    assert distinct(random_translate(x, 4, gen=gen())) > 30  # 81 possible shifts
    v1, v2 = AmdimViews.preset("cifar", image_size=48).views(x, gen())
    assert distinct(v1) > 40 and distinct(v2) > 40
    assert not torch.equal(v1, v2)


def test_reproducible_with_seeded_generator(imgs):
    x = imgs[:16]
    for name in ("cifar", "stl10"):
        aug = AmdimViews.preset(name, image_size=32)
        a1, a2 = aug.views(x, gen(7))
        b1, b2 = aug.views(x, gen(7))
        c1, _ = aug.views(x, gen(8))
        assert torch.equal(a1, b1) and torch.equal(a2, b2)
        assert not torch.equal(a1, c1)
    torch.manual_seed(3)
    g1 = color_jitter(imgs, 0.4, 0.4, 0.4, 0.2)
    torch.manual_seed(3)
    g2 = color_jitter(imgs, 0.4, 0.4, 0.4, 0.2)
    assert torch.equal(g1, g2)


def test_grayscale_fraction():
    x = smooth_images(2000, size=8)
    out = random_grayscale(x, 0.25, gen())
    gray = (out[:, 0] == out[:, 1]).all(-1).all(-1) & (out[:, 1] == out[:, 2]).all(-1).all(-1)
    assert abs(float(gray.float().mean()) - 0.25) < 0.03


# ---------------------------------------------------------------------------------------------
# statistics against torchvision's per-image pipelines


def _summary(v: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel mean and std over the batch, mean per-image std, grey fraction."""
    gray = ((v[:, 0] - v[:, 1]).abs().amax((-1, -2)) < 1e-6) & (
        (v[:, 1] - v[:, 2]).abs().amax((-1, -2)) < 1e-6
    )
    return {
        "mean": v.mean(dim=(0, 2, 3)),
        "std": v.std(dim=(0, 2, 3)),
        "img_std": v.flatten(1).std(dim=1).mean().view(1),
        "img_mean_spread": v.flatten(1).mean(dim=1).std().view(1),
        "gray": gray.float().mean().view(1),
    }


def test_cifar_pipeline_statistics_match_torchvision():
    x = smooth_images(150, size=32, seed=11)
    reps = 2
    aug = AmdimViews.preset("cifar", enable_flip=False, mean=(0, 0, 0), std=(1, 1, 1))
    torch.manual_seed(0)
    ref_tf = T.Compose(
        [
            T.RandomApply([T.RandomCrop(32, padding=4, padding_mode="reflect")], p=0.8),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.2)], p=0.8),
            T.RandomGrayscale(0.25),
        ]
    )
    xf = to_float(x)
    ours = torch.cat([aug.augment(x, gen(r)) for r in range(reps)])
    ref = torch.stack([ref_tf(xf[i]) for _ in range(reps) for i in range(x.shape[0])])
    a, b = _summary(ours), _summary(ref)
    torch.testing.assert_close(a["mean"], b["mean"], atol=0.025, rtol=0)
    torch.testing.assert_close(a["std"], b["std"], atol=0.02, rtol=0)
    torch.testing.assert_close(a["img_std"], b["img_std"], atol=0.015, rtol=0)
    torch.testing.assert_close(a["img_mean_spread"], b["img_mean_spread"], atol=0.02, rtol=0)
    torch.testing.assert_close(a["gray"], b["gray"], atol=0.07, rtol=0)


def test_stl_pipeline_statistics_match_torchvision():
    # the STL-10 settings at a smaller size (48 -> 32) to keep the torchvision loop short
    x = smooth_images(150, size=48, seed=12)
    aug = AmdimViews.preset(
        "stl10", image_size=32, enable_flip=False, mean=(0, 0, 0), std=(1, 1, 1)
    )
    torch.manual_seed(0)
    ref_tf = T.Compose(
        [
            T.RandomResizedCrop(32, (0.3, 1.0), (0.7, 1.4), T.InterpolationMode.BICUBIC),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.2)], p=0.8),
            T.RandomGrayscale(0.25),
        ]
    )
    xf = to_float(x)
    ours = torch.cat([aug.augment(x, gen(r)) for r in range(2)])
    ref = torch.stack([ref_tf(xf[i]).clamp(0, 1) for _ in range(2) for i in range(x.shape[0])])
    a, b = _summary(ours), _summary(ref)
    torch.testing.assert_close(a["mean"], b["mean"], atol=0.025, rtol=0)
    torch.testing.assert_close(a["std"], b["std"], atol=0.02, rtol=0)
    torch.testing.assert_close(a["img_std"], b["img_std"], atol=0.015, rtol=0)
    torch.testing.assert_close(a["gray"], b["gray"], atol=0.08, rtol=0)


# ---------------------------------------------------------------------------------------------
# normalisation, eval transforms, DIM


def test_normalize_uint8_and_float_and_device_move(imgs):
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    norm = Normalize(mean, std)
    ref = T.Normalize(mean, std)(to_float(imgs))
    torch.testing.assert_close(norm(imgs), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm(to_float(imgs)), ref, atol=1e-5, rtol=1e-5)
    assert {n for n, _ in norm.named_buffers()} >= {"mean", "std"}
    assert norm.to(torch.float64).mean.dtype == torch.float64  # buffers follow .to
    assert Normalize(mean, std, dtype=torch.float64)(imgs).dtype == torch.float64
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(mean, (0.1, 0.0, 0.2))
    with pytest.raises(ValueError, match="channel"):
        norm(imgs[:, :1])
    assert Normalize((0.5,), (0.5,))(imgs).shape == imgs.shape  # one value for all channels


def test_eval_transforms():
    x = smooth_images(4, size=96)
    ev = eval_transform("stl10", mean=(0, 0, 0), std=(1, 1, 1))
    ref = TVF.center_crop(
        TVF.resize(to_float(x), [70], T.InterpolationMode.BICUBIC, antialias=True), [64, 64]
    ).clamp(0, 1)
    torch.testing.assert_close(ev(x), ref, atol=1e-5, rtol=0)
    aug = AmdimViews.preset("stl10", mean=(0, 0, 0), std=(1, 1, 1))
    torch.testing.assert_close(aug.eval_transform(x), ref, atol=1e-5, rtol=0)
    c = smooth_images(4)
    torch.testing.assert_close(
        AmdimViews.preset("cifar").eval_transform(c), AmdimViews.preset("cifar").normalize(c)
    )


def test_dim_augment():
    x = smooth_images(16, size=96)
    stl = DimAugment.preset("stl10", mean=(0, 0, 0), std=(1, 1, 1))
    out = stl(x, gen())
    assert out.shape == (16, 3, 64, 64)
    torch.testing.assert_close(stl.eval_transform(x), to_float(x[..., 16:80, 16:80]))
    c = smooth_images(8)
    plain = DimAugment.preset("cifar")
    torch.testing.assert_close(plain(c, gen()), plain.eval_transform(c))
    torch.testing.assert_close(plain(c), to_float(c) * 2 - 1, atol=1e-6, rtol=0)
    light = DimAugment.preset("cifar_light")
    assert light(c, gen()).shape == c.shape


def test_bad_arguments_raise_value_error(imgs):
    with pytest.raises(ValueError, match="probability"):
        random_hflip(imgs, 1.5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_hflip(imgs[0])
    with pytest.raises(ValueError, match="unknown preset"):
        AmdimViews.preset("cifar11")
    with pytest.raises(ValueError, match="hue"):
        color_jitter(imgs, hue=0.7)
    with pytest.raises(ValueError, match="crop must be"):
        AmdimViews(crop="random")


def test_one_channel_batches():
    x = smooth_images(8)[:, :1]
    out = color_jitter(x, 0.4, 0.4, 0.4, 0.2, gen=gen())
    assert out.shape == x.shape
    assert torch.equal(random_grayscale(x, 1.0, gen()), x)
    aug = AmdimViews(32, mean=(0.5,), std=(0.25,))
    v1, v2 = aug.views(x, gen())
    assert v1.shape == x.shape


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_cpu_generator(imgs):
    aug = AmdimViews.preset("cifar")
    c1, c2 = aug.views(imgs, gen(5))
    g1, g2 = aug.to("cuda").views(imgs.cuda(), gen(5))
    assert g1.device.type == "cuda"
    torch.testing.assert_close(g1.cpu(), c1, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g2.cpu(), c2, atol=1e-4, rtol=1e-4)
    s = AmdimViews.preset("stl10").to("cuda")
    v1, _ = s.views(smooth_images(8, 96).cuda(), torch.Generator("cuda").manual_seed(0))
    assert v1.shape == (8, 3, 64, 64)
