"""Deep InfoMax objectives: critics against loops, bounds against hand formulas, short training
runs, prior matching (adversarial and Gaussian), gradient isolation of the discriminator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from infomax.objectives.dim import (
    DIM,
    PRESETS,
    ConcatGlobalCritic,
    ConcatLocalCritic,
    DotGlobalCritic,
    DotLocalCritic,
    MIProjection,
    dim_bound,
    dot_scores,
    shifted_indices,
)
from infomax.objectives.prior import (
    AdversarialPrior,
    PriorDiscriminator,
    discriminator_loss,
    gaussian_kl,
    generator_loss,
    gradient_penalty,
    reparameterize,
)

LOG2 = math.log(2.0)


def _images(n: int = 64, seed: int = 0, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _tiny(**kw) -> DIM:
    kw.setdefault("encoder", "dim32-tiny")
    kw.setdefault("code_dim", 16)
    kw.setdefault("mi_units", 32)
    return DIM(**kw)


# ----------------------------------------------------------------------------- score tensors


def test_dot_scores_equal_loop():
    torch.manual_seed(0)
    a, c3, c2 = torch.randn(3, 5), torch.randn(4, 6, 5), torch.randn(4, 5)
    s3, s2 = dot_scores(a, c3), dot_scores(a, c2)
    assert s3.shape == (3, 4, 6) and s2.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert torch.allclose(s2[i, j], a[i] @ c2[j], atol=1e-5)
            for loc in range(6):
                assert torch.allclose(s3[i, j, loc], a[i] @ c3[j, loc], atol=1e-5)
    with pytest.raises(ValueError):
        dot_scores(a, torch.randn(4, 6, 7))


def test_dot_local_critic_equals_pairwise_loop():
    torch.manual_seed(0)
    critic = DotLocalCritic(local_channels=4, code_dim=3, units=8).eval()  # eval: per-sample BN
    local, code = torch.randn(3, 4, 2, 2), torch.randn(3, 3)
    scores, mask = critic(local, code)
    assert scores.shape == (3, 3, 4) and scores.dtype == torch.float32 and mask is None
    for i in range(3):
        g = critic.code_net(code[i : i + 1])[0]
        for j in range(3):
            for loc in range(4):
                f = critic.local_net(local[j, :, loc // 2, loc % 2][None])[0]
                assert torch.allclose(scores[i, j, loc], g @ f, atol=1e-4)


def test_dot_global_critic_shapes_and_loop():
    torch.manual_seed(0)
    critic = DotGlobalCritic(feature_dim=2 * 2 * 2, code_dim=3, units=6, hidden=(5,)).eval()
    conv, code = torch.randn(4, 2, 2, 2), torch.randn(4, 3)
    scores, mask = critic(conv, code)
    assert scores.shape == (4, 4) and mask is None
    for i in range(4):
        for j in range(4):
            expected = critic.code_net(code[i]) @ critic.feature_net(conv[j].flatten()[None])[0]
            assert torch.allclose(scores[i, j], expected, atol=1e-4)


def test_mi_projection_shortcut_near_identity():
    net = MIProjection(4, 10)
    w = net.shortcut.weight
    assert torch.equal(w[:4, :4].diagonal(), torch.ones(4))
    off = w.clone()
    off[torch.arange(4), torch.arange(4)] = 0
    assert off.abs().max() <= 0.01
    assert net(torch.randn(2, 3, 4)).shape == (2, 3, 10)


def test_shifted_indices_never_pick_self():
    torch.manual_seed(0)
    idx = shifted_indices(5, 200)
    assert idx.shape == (5, 200)
    assert not (idx == torch.arange(5)[:, None]).any()
    # each column is a permutation of the batch
    assert torch.equal(idx.sort(0).values, torch.arange(5)[:, None].expand(5, 200))
    assert len(set(idx[0].tolist())) == 4  # every other image is used
    with pytest.raises(ValueError, match="at least 2"):
        shifted_indices(1, 3)


def test_concat_local_critic_equals_tiled_convolution():
    torch.manual_seed(0)
    critic = ConcatLocalCritic(local_channels=4, code_dim=3, hidden=(7, 5))
    local, code = torch.randn(3, 4, 2, 2), torch.randn(3, 3)

    def reference(loc_map: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[tile(y), local] -> 1x1 convs, written as the first-version concat-and-convolve."""
        tiled = torch.cat([loc_map, y[:, :, None, None].expand(-1, -1, 2, 2)], dim=1)
        w1 = torch.cat([critic.local_in.weight, critic.code_in.weight], dim=1)[:, :, None, None]
        h = F.relu(F.conv2d(tiled, w1, critic.local_in.bias))
        h = F.relu(F.conv2d(h, critic.top[1].weight[:, :, None, None], critic.top[1].bias))
        return F.conv2d(h, critic.top[3].weight[:, :, None, None], critic.top[3].bias).flatten(1)

    torch.manual_seed(1)
    scores, mask = critic(local, code)
    torch.manual_seed(1)
    idx = shifted_indices(3, 4)  # the same draw as inside the critic
    assert scores.shape == (3, 2, 4) and mask.shape == (1, 2, 1)
    assert mask.flatten().tolist() == [True, False]
    assert torch.allclose(scores[:, 0], reference(local, code), atol=1e-5)
    shuffled = local.flatten(2)[idx, :, torch.arange(4)].permute(0, 2, 1).reshape(3, 4, 2, 2)
    assert torch.allclose(scores[:, 1], reference(shuffled, code), atol=1e-5)

    g_scores, g_mask = ConcatGlobalCritic(feature_dim=16, code_dim=3)(local, code)
    assert g_scores.shape == (3, 2) and g_mask.shape == (1, 2)


# ----------------------------------------------------------------------------- bounds, DIM layouts


def _hand_jsd_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """rdevon/DIM fenchel_dual_loss with the JSD measure: E_neg - E_pos."""
    e_pos = (LOG2 - F.softplus(-pos)).mean()
    e_neg = (F.softplus(-neg) + neg - LOG2).mean()
    return e_neg - e_pos


def _hand_nce_loss(rows_pos: list[torch.Tensor], rows_neg: list[torch.Tensor]) -> torch.Tensor:
    """Each positive against itself and all negatives of its row, written with explicit loops."""
    terms = []
    for pos, neg in zip(rows_pos, rows_neg):
        for p in pos:
            logits = torch.cat([p[None], neg])
            terms.append(-(p - torch.logsumexp(logits, 0)))
    return torch.stack(terms).mean()


def _hand_dv_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    return -(pos.mean() - (torch.logsumexp(neg.flatten(), 0) - math.log(neg.numel())))


def test_bounds_on_dot_layout_match_hand_computation():
    torch.manual_seed(0)
    n, n_loc = 4, 3
    scores = 2 * torch.randn(n, n, n_loc)
    eye = torch.eye(n, dtype=torch.bool)
    pos = scores[eye]  # (n, L)
    neg = scores[~eye]  # (n*(n-1), L)
    jsd = dim_bound(scores, None, "jsd")
    assert torch.allclose(jsd.loss, _hand_jsd_loss(pos, neg), atol=1e-5)
    dv = dim_bound(scores, None, "dv")
    assert torch.allclose(dv.loss, _hand_dv_loss(pos, neg), atol=1e-5)
    rows_pos = [scores[i, i] for i in range(n)]
    rows_neg = [torch.cat([scores[i, j] for j in range(n) if j != i]) for i in range(n)]
    nce = dim_bound(scores, None, "nce")
    assert torch.allclose(nce.loss, _hand_nce_loss(rows_pos, rows_neg), atol=1e-5)
    # the InfoNCE estimate adds log(1 + negatives per row) (docs/architecture.md)
    assert torch.allclose(nce.mi, math.log(1 + (n - 1) * n_loc) - nce.loss, atol=1e-5)


def test_bounds_on_shuffled_layout_match_hand_computation():
    torch.manual_seed(0)
    n, n_loc = 5, 4
    scores = 3 * torch.randn(n, 2, n_loc)
    mask = torch.tensor([True, False]).view(1, 2, 1)
    pos, neg = scores[:, 0], scores[:, 1]
    assert torch.allclose(dim_bound(scores, mask, "jsd").loss, _hand_jsd_loss(pos, neg), atol=1e-5)
    assert torch.allclose(dim_bound(scores, mask, "dv").loss, _hand_dv_loss(pos, neg), atol=1e-5)
    nce = dim_bound(scores, mask, "infonce")
    expected = _hand_nce_loss(list(pos), list(neg))
    assert torch.allclose(nce.loss, expected, atol=1e-5)
    with pytest.raises(ValueError, match="unknown DIM estimator"):
        dim_bound(scores, mask, "mine-ish")


def test_jsd_perfect_critic_reaches_log2_bound():
    """JSD estimate of a critic that separates positives perfectly: the loss tends to -2 log 2."""
    scores = torch.full((4, 4, 2), -30.0)
    scores[torch.arange(4), torch.arange(4)] = 30.0
    assert abs(dim_bound(scores, None, "jsd").loss.item() + 2 * LOG2) < 1e-6


def test_jsd_reports_the_finite_dv_value_of_its_critic():
    """Dot-critic scores reach hundreds: NWJ(T + 1) would overflow to -inf; the logged DIM value is
    the DV value of the same critic (finite), and the loss stays the JSD bound's."""
    from infomax.estimators.bounds import jsd_bound

    torch.manual_seed(0)
    n, n_loc = 4, 3
    scores = 150.0 + 60.0 * torch.randn(n, n, n_loc)
    eye = torch.eye(n, dtype=torch.bool)
    pos, neg = scores[eye], scores[~eye]
    nwj_t1 = 1 + pos.mean() - neg.exp().mean()
    assert nwj_t1.item() == -math.inf  # why the figure is DV
    jsd = dim_bound(scores, None, "jsd")
    assert torch.equal(jsd.mi, jsd_bound(scores).mi)
    assert torch.isfinite(jsd.mi)
    assert torch.allclose(jsd.mi, -_hand_dv_loss(pos, neg), atol=1e-4)
    assert torch.allclose(jsd.loss, _hand_jsd_loss(pos, neg), atol=1e-4)
    # moderate scores: DV >= NWJ(T + 1), both lower bounds of the same critic
    small = torch.randn(n, n, n_loc)
    s_pos, s_neg = small[eye], small[~eye]
    assert dim_bound(small, None, "jsd").mi >= 1 + s_pos.mean() - s_neg.exp().mean()
    # the reported value carries no gradient into the scores; the loss does
    s = scores.clone().requires_grad_(True)
    out = dim_bound(s, None, "jsd")
    assert not out.mi.requires_grad and out.loss.requires_grad


def test_dim_jsd_trains_through_the_trainer_without_a_nonfinite_stop(tmp_path):
    """DIM(L)-JSD with the paper's 2048-unit dot critic through infomax.training: every logged
    value finite, so the run is not stopped as divergent (it was, at the first metrics row)."""
    from infomax.data import ArrayDataset
    from infomax.training import trainer  # built in: a renamed module fails, never skips
    from infomax.training.config import load_config

    images = _images(48, seed=1)
    data = ArrayDataset(images, torch.arange(48) % 4, ["a", "b", "c", "d"])
    base = {
        "method": "dim",
        "model": {"preset": "dim-l-jsd", "encoder": "dim32-tiny", "code_dim": 16},
        "train": {"batch_size": 16, "max_steps": 4, "log_every": 1, "lr": 1e-3,
                  "device": "cpu", "checkpoint_minutes": 0, "online_probe": False},
    }  # fmt: skip
    result = trainer.train(
        load_config(None, base=base), run_dir=tmp_path / "run", progress=False, echo=False,
        train_set=data,
    )  # fmt: skip
    assert result.stopped == "max_steps", result.message
    from infomax.training.metrics import METRICS_FILE, read_metrics

    _, rows = read_metrics(tmp_path / "run" / METRICS_FILE)
    assert len(rows) == 4
    assert all(math.isfinite(float(r["mi_local"])) for r in rows)
    assert all(math.isfinite(float(r["loss_local"])) for r in rows)


# ----------------------------------------------------------------------------- the method


def _train(method: DIM, images: torch.Tensor, steps: int, lr: float = 1e-3, batch: int = 8):
    """Two optimisers as in infomax.training: main params and the discriminator's."""
    aux = method.aux_parameters()
    aux_ids = {id(p) for p in aux}
    main = [p for p in method.parameters() if id(p) not in aux_ids]
    opt = torch.optim.Adam(main, lr)
    opt_aux = torch.optim.Adam(aux, lr) if aux else None
    history = []
    for step in range(steps):
        start = (step * batch) % len(images)
        out = method.training_losses(images[start : start + batch])
        opt.zero_grad()
        torch.autograd.backward(out["loss"], inputs=main, retain_graph="aux_loss" in out)
        opt.step()
        if opt_aux is not None:
            opt_aux.zero_grad()
            torch.autograd.backward(out["aux_loss"], inputs=aux)
            opt_aux.step()
        history.append({k: v.detach().clone() for k, v in out.items() if v.dim() == 0})
    return history


def _objective(h: dict[str, torch.Tensor]) -> float:
    """The encoder's MI loss (the adversarial prior term alone need not go down)."""
    return float(h.get("loss_global", 0.0)) + float(h.get("loss_local", 0.0))


@pytest.mark.parametrize(
    "preset,extra",
    [
        ("dim-g-jsd", {}),
        ("dim-l-jsd", {}),
        ("dim-l-infonce", {}),
        ("dim-l-dv", {}),
        ("dim-l-gaussian", {}),
        ("dim-l-jsd", {"critic": "concat"}),
    ],
)
def test_short_training_decreases_loss(preset, extra):
    torch.manual_seed(0)
    method = _tiny(preset=preset, **extra)
    history = _train(method, _images(), steps=20)
    first = sum(_objective(h) for h in history[:4]) / 4
    last = sum(_objective(h) for h in history[-4:]) / 4
    assert last < first, (preset, extra, first, last)
    losses = [float(h["loss"]) for h in history]
    assert all(math.isfinite(v) for v in losses)
    if PRESETS[preset]["prior"] != "adversarial":
        assert sum(losses[-4:]) < sum(losses[:4])


def _w1_to_uniform(u: torch.Tensor) -> float:
    """Mean over dimensions of the 1-D Wasserstein-1 distance of the samples to U[0, 1]."""
    n = u.shape[0]
    quantiles = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    return (u.sort(0).values - quantiles[:, None]).abs().mean().item()


def test_adversarial_prior_moves_code_toward_uniform():
    torch.manual_seed(0)
    method = _tiny(alpha=0.0, beta=0.0, gamma=1.0, prior="adversarial")
    images = _images()

    def distance() -> float:
        method.eval()
        with torch.no_grad():
            u = torch.sigmoid(method.features(images)["y"])
        method.train()
        return _w1_to_uniform(u)

    before = distance()
    disc_before = [p.detach().clone() for p in method.aux_parameters()]
    history = _train(method, images, steps=30, lr=2e-3, batch=16)
    after = distance()
    assert after < 0.75 * before, (before, after)
    moved = [not torch.equal(a, b) for a, b in zip(disc_before, method.aux_parameters())]
    assert all(moved)  # the discriminator is really trained
    assert all(math.isfinite(float(h["aux_loss"])) for h in history)


def test_aux_loss_and_loss_do_not_leak():
    torch.manual_seed(0)
    method = _tiny(preset="dim-g-jsd")
    out = method.training_losses(_images(8))
    aux = method.aux_parameters()
    assert len(aux) == 6  # three linear layers of the discriminator
    aux_ids = {id(p) for p in aux}
    main = [p for p in method.parameters() if id(p) not in aux_ids]
    grads = torch.autograd.grad(out["aux_loss"], main, allow_unused=True, retain_graph=True)
    assert all(g is None or torch.all(g == 0) for g in grads)
    aux_grads = torch.autograd.grad(out["aux_loss"], aux, retain_graph=True)
    assert all(g.abs().sum() > 0 for g in aux_grads)
    torch.autograd.backward(out["loss"], inputs=main)
    assert all(p.grad is None for p in aux)
    assert all(p.grad is not None for p in method.encoder.parameters())


def test_gaussian_kl_closed_form_and_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3, 4), torch.ones(3, 4))
    exact = torch.distributions.kl_divergence(q, p).sum(-1).mean()
    assert torch.allclose(gaussian_kl(mu, logvar), exact, atol=1e-5)
    z = torch.stack([reparameterize(mu, logvar) for _ in range(4000)])  # (S, 3, 4)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    assert abs(mc.item() - exact.item()) < 0.05 * exact.item() + 0.02
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).item() == 0.0


def test_gan_losses_and_gradient_penalty():
    d_real, d_fake = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    expected = (
        -torch.log(torch.sigmoid(d_real)).mean() - torch.log(1 - torch.sigmoid(d_fake)).mean()
    )
    assert torch.allclose(discriminator_loss(d_real, d_fake), expected, atol=1e-6)
    assert torch.allclose(generator_loss(d_fake), -torch.log(torch.sigmoid(d_fake)).mean())
    # linear discriminator: the gradient is the weight vector everywhere
    disc = torch.nn.Linear(3, 1)
    gp = gradient_penalty(disc, torch.randn(5, 3))
    assert torch.allclose(gp, disc.weight.pow(2).sum(), atol=1e-6)
    gp.backward()
    assert torch.allclose(disc.weight.grad, 2 * disc.weight.detach(), atol=1e-6)
    assert [m.out_features for m in PriorDiscriminator(64) if hasattr(m, "out_features")] == [
        1000,
        200,
        1,
    ]
    prior = AdversarialPrior(8)
    out = prior(torch.randn(4, 8, requires_grad=True))
    assert set(out) >= {"generator_loss", "discriminator_loss", "gradient_penalty"}


def test_presets_and_validation():
    assert PRESETS["dim-g"] == dict(
        alpha=1.0, beta=0.0, gamma=1.0, estimator="jsd", prior="adversarial"
    )
    assert PRESETS["dim-l-infonce"]["gamma"] == 0.1 and PRESETS["dim-l-infonce"]["beta"] == 1.0
    m = DIM.from_preset("dim-l-dv", encoder="dim32-tiny", mi_units=8, gamma=0.5)
    assert (m.alpha, m.beta, m.gamma, m.estimator) == (0.0, 1.0, 0.5, "dv")
    assert m.global_critic is None and m.local_critic is not None
    g = _tiny(preset="dim-g-infonce")
    assert g.local_critic is None and g.global_critic is not None
    with pytest.raises(ValueError, match="unknown DIM preset"):
        _tiny(preset="dim-x")
    with pytest.raises(ValueError, match="unknown DIM critic"):
        _tiny(critic="bilinear")
    with pytest.raises(ValueError, match="unknown DIM estimator"):
        _tiny(estimator="mine-ish")
    with pytest.raises(ValueError, match="nothing to train"):
        _tiny(alpha=0.0, beta=0.0, prior="none")
    with pytest.raises(ValueError, match="one value per channel"):
        _tiny(in_channels=1)
    with pytest.raises(ValueError, match="expected images"):
        _tiny().training_losses(_images(4)[:, :1])


def test_features_outputs_and_precision():
    torch.manual_seed(0)
    method = _tiny(prior="gaussian", gamma=0.01)
    images = _images(8)
    out = method.training_losses(images)
    assert out["features"].shape == (8, 32 * 4 * 4) and not out["features"].requires_grad
    assert set(out) == {"loss", "features", "mi_local", "loss_local", "prior"}
    assert method.aux_parameters() == []
    method.eval()
    with torch.no_grad():
        a, b = method.features(images), method.features(images)
    assert set(a) == {"local", "conv", "fc", "y"} and torch.equal(a["y"], b["y"])
    method.train()
    # under bf16 autocast the bounds and the returned scalars stay float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _tiny(preset="dim-g-infonce").training_losses(images)
    assert all(out[k].dtype == torch.float32 for k in ("loss", "aux_loss", "mi_global"))
