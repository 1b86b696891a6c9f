"""AMDIM NCE: loop reference, closed forms, autocast, mixtures, multiscale, the method."""

from __future__ import annotations

import math

import pytest
import torch

from infomax.estimators.bounds import infonce
from infomax.objectives.amdim import (
    AMDIM,
    amdim_nce,
    mixture_nce,
    multiscale_nce,
    parse_comparison,
    sample_locations,
)


def _loop_nce(r_src, r_trg, tclip, reg_weight):
    """The formula written out: every positive against itself plus its row's negatives."""
    n, d = r_src.shape
    locs = r_trg.shape[2]
    raw = torch.zeros(n, n, locs, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            for m in range(locs):
                raw[i, j, m] = (r_src[i].double() * r_trg[j, :, m].double()).sum() / math.sqrt(d)
    reg = reg_weight * (raw**2).mean()
    s = tclip * torch.tanh(raw / tclip) if tclip else raw
    terms = []
    for i in range(n):
        negs = torch.cat([s[i, j] for j in range(n) if j != i])
        for m in range(locs):
            pos = s[i, i, m]
            terms.append(pos - torch.logsumexp(torch.cat([pos[None], negs]), 0))
    return -torch.stack(terms).mean(), reg


@pytest.mark.parametrize("tclip,reg_weight", [(None, 0.0), (20.0, 0.05), (2.0, 0.1)])
def test_nce_matches_loop_reference(tclip, reg_weight):
    g = torch.Generator().manual_seed(0)
    r_src = 3 * torch.randn(4, 6, generator=g)
    r_trg = 3 * torch.randn(4, 6, 5, generator=g)
    res = amdim_nce(r_src, r_trg, tclip=tclip, reg_weight=reg_weight)
    loss, reg = _loop_nce(r_src, r_trg, tclip, reg_weight)
    assert res.loss.dtype == torch.float32 and res.log_probs.shape == (4, 5)
    assert res.loss.item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    assert res.reg.item() == pytest.approx(reg.item(), rel=1e-5, abs=1e-7)
    # the same as the generic multi-positive InfoNCE on the clipped scores
    s = torch.einsum("nd,mdl->nml", r_src, r_trg) / math.sqrt(6)
    if tclip:
        s = tclip * torch.tanh(s / tclip)
    assert res.loss.item() == pytest.approx(infonce(s).loss.item(), rel=1e-5)


def test_closed_form_matching_features_loss_to_zero():
    n, d, locs = 3, 8, 2
    eye = torch.eye(d)[:n]
    r_src = 1000.0 * eye
    r_trg = eye[:, :, None].expand(n, d, locs).clone()
    no_clip = amdim_nce(r_src, r_trg, tclip=None, reg_weight=0.0)
    assert no_clip.loss.item() < 1e-6
    # with the clip the positives saturate at 20 and the negatives stay at 0
    clipped = amdim_nce(r_src, r_trg, tclip=20.0)
    expected = math.log1p((n - 1) * locs * math.exp(-20.0 * math.tanh(1000 / math.sqrt(d) / 20)))
    assert clipped.loss.item() == pytest.approx(expected, rel=1e-3)


def test_closed_form_equal_scores():
    """All scores equal: each positive against itself and (N - 1) L negatives."""
    n, d, locs = 5, 4, 7
    res = amdim_nce(torch.zeros(n, d), torch.zeros(n, d, locs))
    assert res.loss.item() == pytest.approx(math.log(1 + (n - 1) * locs), rel=1e-6)
    assert res.reg.item() == 0.0
    r = torch.ones(n, d)
    res = amdim_nce(r, torch.ones(n, d, locs), tclip=None, reg_weight=1.0)
    assert res.loss.item() == pytest.approx(math.log(1 + (n - 1) * locs), rel=1e-6)
    assert res.reg.item() == pytest.approx(d, rel=1e-6)  # (d / sqrt(d)) ** 2


def test_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(1)
    r_src = torch.randn(4, 16, generator=g)
    r_trg = torch.randn(4, 16, 9, generator=g)
    ref = amdim_nce(r_src, r_trg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = amdim_nce(r_src.bfloat16(), r_trg.bfloat16())
    assert out.loss.dtype == torch.float32 and out.reg.dtype == torch.float32
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=2e-2)


def test_validation():
    with pytest.raises(ValueError, match="at least 2"):
        amdim_nce(torch.randn(1, 4), torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match="agree"):
        amdim_nce(torch.randn(2, 4), torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="1t5"):
        parse_comparison("1to5")
    with pytest.raises(ValueError):
        parse_comparison("3t5")
    assert parse_comparison("5T7") == (5, 7)


def test_mixture_k1_equals_standard_nce():
    g = torch.Generator().manual_seed(2)
    r_src = torch.randn(4, 8, generator=g)
    r_trg = torch.randn(4, 8, 6, generator=g)
    std = amdim_nce(r_src, r_trg)
    mix = mixture_nce(r_src[:, None], r_trg, tau=0.4, alpha=0.05)
    assert torch.equal(mix.loss, std.loss) and torch.equal(mix.reg, std.reg)


def test_mixture_identical_components():
    """Equal components: uniform responsibilities, objective = NCE + alpha log K."""
    g = torch.Generator().manual_seed(3)
    r_src = torch.randn(4, 8, generator=g)
    r_trg = torch.randn(4, 8, 6, generator=g)
    k, alpha = 3, 0.05
    mix = mixture_nce(r_src[:, None].expand(4, k, 8), r_trg, alpha=alpha)
    std = amdim_nce(r_src, r_trg)
    assert mix.loss.item() == pytest.approx(std.loss.item() - alpha * math.log(k), rel=1e-5)


def test_sample_locations_one_per_image():
    fmap = torch.arange(2 * 3 * 25, dtype=torch.float32).view(2, 3, 5, 5)
    picked = sample_locations(fmap, torch.Generator().manual_seed(0))
    assert picked.shape == (2, 3)
    flat = fmap.flatten(2)
    for i in range(2):
        loc = int((picked[i, 0] - flat[i, 0, 0]).item())
        assert torch.equal(picked[i], flat[i, :, loc])


def _taps(n, d, gen):
    return {
        "r1": torch.randn(n, d, 1, 1, generator=gen),
        "r5": torch.randn(n, d, 5, 5, generator=gen),
        "r7": torch.randn(n, d, 7, 7, generator=gen),
    }


def test_multiscale_both_directions_and_total():
    g = torch.Generator().manual_seed(4)
    t1, t2 = _taps(4, 8, g), _taps(4, 8, g)
    out = multiscale_nce(t1, t2, ("1t5", "1t7"), reg_weight=0.05)
    for b in (5, 7):
        ab = amdim_nce(t1["r1"].flatten(1), t2[f"r{b}"].flatten(2))
        ba = amdim_nce(t2["r1"].flatten(1), t1[f"r{b}"].flatten(2))
        assert out[f"nce_1t{b}"].item() == pytest.approx(0.5 * (ab.loss + ba.loss).item())
    total = out["nce_1t5"] + out["nce_1t7"] + out["reg"]
    assert out["loss"].item() == pytest.approx(total.item())
    out5 = multiscale_nce(t1, t2, ("5t5",), generator=torch.Generator().manual_seed(0))
    assert set(out5) == {"nce_5t5", "reg", "loss"}


def test_method_outputs_and_features():
    torch.manual_seed(0)
    m = AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, n_depth=1)
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = m.training_losses(x)
    assert {"loss", "nce_1t5", "nce_1t7", "nce_5t5", "reg", "features"} <= set(out)
    assert out["features"].shape == (4, 32) and not out["features"].requires_grad
    assert out["loss"].requires_grad and out["loss"].dtype == torch.float32
    assert m.aux_parameters() == []
    m.eval()
    with torch.no_grad():
        feats = m.features(x)
    assert feats["features"].shape == (4, 32) and feats["r7"].shape == (4, 32, 7, 7)


def test_method_stl10_crop_builds_64_encoder():
    torch.manual_seed(0)
    m = AMDIM(
        encoder="amdim64-tiny",
        image_size=96,
        ndf=4,
        n_rkhs=16,
        n_depth=1,
        augment="stl10",
        joint_views=False,
    )
    assert m.encoder.image_size == 64
    x = torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)
    assert m.training_losses(x)["features"].shape == (2, 16)
    m.eval()
    with torch.no_grad():
        assert m.features(x)["r1"].shape == (2, 16, 1, 1)


def test_method_validation():
    with pytest.raises(ValueError, match="comparison"):
        AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, comparisons=("2t5",))
    with pytest.raises(ValueError, match="n_mixtures"):
        AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, n_mixtures=0)
    with pytest.raises(ValueError, match="mean"):
        AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, in_channels=1)
    with pytest.raises(ValueError, match="normalisation"):
        AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, augment={"mean": (0.5,) * 3})


def _train(comparisons, n_mixtures=1, steps=24):
    torch.manual_seed(0)
    m = AMDIM(
        encoder="amdim32-tiny",
        ndf=8,
        n_rkhs=32,
        n_depth=1,
        comparisons=comparisons,
        n_mixtures=n_mixtures,
        augment={"preset": "cifar", "enable_jitter": False},
    )
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    losses = []
    for _ in range(steps):
        loss = m.training_losses(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    "comparisons,k",
    [(("1t5", "1t7", "5t5"), 1), (("1t5",), 1), (("1t7",), 1), (("5t5",), 1), (("1t5",), 3)],
)
def test_training_lowers_loss(comparisons, k):
    losses = _train(comparisons, k)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.1, losses


@pytest.mark.parametrize("joint", [True, False])
def test_view_losses_is_training_losses_without_augmentation(joint):
    torch.manual_seed(0)
    m = AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, n_depth=1, joint_views=joint)
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(1)
    out = m.training_losses(x)
    torch.manual_seed(1)
    v1, v2 = m.transform.views(x)
    again = m.view_losses(v1, v2)
    for k in ("loss", "nce_1t5", "nce_1t7", "nce_5t5", "reg"):
        assert again[k].item() == pytest.approx(out[k].item(), rel=1e-6), k
    assert torch.equal(again["features"], out["features"])
    with pytest.raises(ValueError, match="same shape"):
        m.view_losses(v1, v2[:3])


def test_ablation_overrides_switch_one_thing_each():
    # the overrides of benchmarks/amdim_ablation.py and docs/amdim.md, through the config parser
    from infomax.training.config import load_config

    tiny = ["model.encoder=amdim32-tiny", "model.ndf=8", "model.n_rkhs=32", "model.n_depth=1"]

    def build(*overrides):
        cfg = load_config("amdim_cifar10_cpu", [*tiny, *overrides])
        return AMDIM(**cfg.model, in_channels=3, image_size=32)

    base = build()
    assert base.comparisons == ("1t5", "1t7", "5t5") and base.tclip == 20.0
    assert base.reg_weight == 0.05
    t = base.transform
    assert t.enable_jitter and t.enable_gray and t.enable_crop and t.crop == "translate"
    for switch in ("jitter", "gray", "crop"):
        m = build(f"model.augment={{preset: cifar, enable_{switch}: false}}")
        flags = {s: getattr(m.transform, f"enable_{s}") for s in ("jitter", "gray", "crop", "flip")}
        assert flags == {s: s != switch for s in flags}, switch
        assert m.transform.jitter == t.jitter and m.transform.gray_p == t.gray_p
    assert build("model.comparisons=[1t5]").comparisons == ("1t5",)
    assert build("model.tclip=null").tclip is None
    assert build("model.reg_weight=0").reg_weight == 0.0
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = build("model.tclip=null", "model.reg_weight=0").training_losses(x)
    assert out["reg"].item() == 0.0 and torch.isfinite(out["loss"])
