"""Tests for infomax.estimators.bounds: reference formulas, closed forms, stability."""

from __future__ import annotations

import math

import pytest
import torch

from infomax.estimators import bounds as B

# ---------------------------------------------------------------------------------------------
# Straightforward loop-based reference formulas (float64, plain Python)


def _entries(s: torch.Tensor, mask: torch.Tensor):
    """Yield (anchor, score, is_positive) for every entry."""
    s = s.double()
    mask = mask.expand(s.shape)
    for i in range(s.shape[0]):
        for v, m in zip(s[i].reshape(-1).tolist(), mask[i].reshape(-1).tolist()):
            yield i, v, m


def _lme(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def ref_infonce(s, mask):
    terms, caps = [], []
    rows: dict[int, list] = {}
    for i, v, m in _entries(s, mask):
        rows.setdefault(i, []).append((v, m))
    for row in rows.values():
        negs = [v for v, m in row if not m]
        for v, m in row:
            if m:
                allv = [v, *negs]
                top = max(allv)
                lse = top + math.log(sum(math.exp(u - top) for u in allv))
                terms.append(v - lse)
                caps.append(math.log(1 + len(negs)))
    mean_term = sum(terms) / len(terms)
    return mean_term + sum(caps) / len(caps), -mean_term


def _split(s, mask):
    pos = [v for _, v, m in _entries(s, mask) if m]
    neg = [v for _, v, m in _entries(s, mask) if not m]
    return pos, neg


def _sp(v):
    return math.log1p(math.exp(-abs(v))) + max(v, 0.0)


def ref_dv(s, mask):
    pos, neg = _split(s, mask)
    return sum(pos) / len(pos) - _lme(neg)


def ref_nwj(s, mask):
    pos, neg = _split(s, mask)
    return sum(pos) / len(pos) - sum(math.exp(v - 1) for v in neg) / len(neg)


def ref_jsd(s, mask):
    """rdevon/DIM: E_pos[log2 - softplus(-u)] - E_neg[softplus(-u) + u - log2]."""
    pos, neg = _split(s, mask)
    ep = sum(math.log(2) - _sp(-v) for v in pos) / len(pos)
    en = sum(_sp(-v) + v - math.log(2) for v in neg) / len(neg)
    return ep - en


def ref_smile(s, mask, clip):
    pos, neg = _split(s, mask)
    return sum(pos) / len(pos) - _lme([min(max(v, -clip), clip) for v in neg])


def _eye_mask(s):
    n = s.shape[0]
    return torch.eye(n, dtype=torch.bool).view(n, n, *([1] * (s.dim() - 2)))


def _cases():
    g = torch.Generator().manual_seed(0)
    glob = 2.0 * torch.randn(6, 6, generator=g)
    local = 2.0 * torch.randn(5, 5, 3, generator=g)
    multi = torch.randn(5, 7, generator=g)
    mmask = torch.rand(5, 7, generator=g) < 0.4
    mmask[:, 0] = True  # every row has a positive
    mmask[:, 1] = False  # and a negative; rows have different numbers of negatives
    return [
        ("global", glob, _eye_mask(glob)),
        ("local", local, _eye_mask(local)),
        ("multi", multi, mmask),
    ]


CASES = _cases()


@pytest.mark.parametrize("name,s,mask", CASES, ids=[c[0] for c in CASES])
def test_against_reference_formulas(name, s, mask):
    mi, loss = B.infonce(s, mask)
    rmi, rloss = ref_infonce(s, mask)
    assert mi.item() == pytest.approx(rmi, abs=1e-5)
    assert loss.item() == pytest.approx(rloss, abs=1e-5)

    assert B.dv_bound(s, mask).mi.item() == pytest.approx(ref_dv(s, mask), abs=1e-5)
    assert B.nwj_bound(s, mask).mi.item() == pytest.approx(ref_nwj(s, mask), abs=1e-5)
    jb = B.jsd_bound(s, mask)
    assert -jb.loss.item() == pytest.approx(ref_jsd(s, mask), abs=1e-5)
    assert B.jsd_lower_bound(s, mask).item() == pytest.approx(ref_jsd(s, mask), abs=1e-5)
    assert jb.mi.item() == pytest.approx(ref_dv(s, mask), abs=1e-5)  # the DV value
    for clip in (0.5, 5.0):
        sm = B.smile_bound(s, mask, clip=clip)
        assert sm.mi.item() == pytest.approx(ref_smile(s, mask, clip), abs=1e-5)
    mb = B.mine_bound(s, mask)
    assert mb.mi.item() == pytest.approx(ref_dv(s, mask), abs=1e-5)
    assert mb.loss.item() == pytest.approx(-ref_dv(s, mask), abs=1e-5)


@pytest.mark.parametrize("name", B.BOUND_NAMES)
def test_none_mask_equals_explicit_eye(name):
    g = torch.Generator().manual_seed(1)
    fn = B.get_bound(name)
    for s in (torch.randn(7, 7, generator=g), torch.randn(4, 4, 5, generator=g)):
        a, b = fn(s), fn(s, _eye_mask(s))
        torch.testing.assert_close(a.mi, b.mi)
        torch.testing.assert_close(a.loss, b.loss)


# ---------------------------------------------------------------------------------------------
# Closed forms


@pytest.mark.parametrize("n", [2, 8, 64])
@pytest.mark.parametrize("c", [0.0, 1.0, 5.0, 30.0])
def test_closed_forms_scaled_identity(n, c):
    s = c * torch.eye(n)
    expected = math.log(n) - math.log1p((n - 1) * math.exp(-c))
    assert B.infonce(s).mi.item() == pytest.approx(expected, abs=1e-5)
    # negatives are all 0, positives all c
    assert B.dv_bound(s).mi.item() == pytest.approx(c, abs=1e-5)
    assert B.nwj_bound(s).mi.item() == pytest.approx(c - math.exp(-1), abs=1e-5)
    js = 2 * math.log(2) - math.log1p(math.exp(-c)) - math.log(2)
    assert B.jsd_lower_bound(s).item() == pytest.approx(js, abs=1e-5)
    assert B.jsd_bound(s).mi.item() == pytest.approx(c, abs=1e-5)  # the DV value
    assert B.smile_bound(s, clip=2.0).mi.item() == pytest.approx(c, abs=1e-5)


def test_local_closed_form_cap():
    n, length, c = 4, 3, 50.0
    s = c * _eye_mask(torch.zeros(n, n, length)).float().expand(n, n, length)
    cap = math.log(1 + (n - 1) * length)
    assert B.infonce(s).mi.item() == pytest.approx(cap, abs=1e-5)


def _gaussian_log_ratio(x, y, rho):
    """scores[i, j] = log p(y_j | x_i) - log p(y_j) for y = rho x + sqrt(1 - rho^2) eps."""
    v = 1.0 - rho**2
    diff = y[None, :, :] - rho * x[:, None, :]
    per = -0.5 * math.log(v) - diff**2 / (2 * v) + y[None, :, :] ** 2 / 2
    return per.sum(-1)


@pytest.mark.parametrize("dim,mi_true", [(1, 0.5), (2, 1.0)])
def test_optimal_critic_recovers_true_mi(dim, mi_true):
    g = torch.Generator().manual_seed(123)
    n = 2000
    rho = math.sqrt(1 - math.exp(-2 * mi_true / dim))
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, dim, generator=g, dtype=torch.float64)
    t = _gaussian_log_ratio(x, y, rho)
    # the sample mean of the pointwise MI has std ~ 0.03 here; 0.1 nats is ~3 standard errors
    tol = 0.1
    assert B.dv_bound(t).mi.item() == pytest.approx(mi_true, abs=tol)
    assert B.nwj_bound(t + 1.0).mi.item() == pytest.approx(mi_true, abs=tol)
    assert B.jsd_bound(t).mi.item() == pytest.approx(mi_true, abs=tol)
    assert B.smile_bound(t, clip=5.0).mi.item() == pytest.approx(mi_true, abs=tol)
    assert B.mine_bound(t).mi.item() == pytest.approx(mi_true, abs=tol)
    # InfoNCE with N = 2000 >> e^MI: small downward bias
    nce = B.infonce(t).mi.item()
    assert nce == pytest.approx(mi_true, abs=tol)
    assert nce <= math.log(n)
    # the JS bound is positive and below its ceiling 2 log 2
    assert 0.0 < B.jsd_lower_bound(t).item() < 2 * math.log(2)
    # a critic far from the optimum gives a smaller value (the bounds are lower bounds)
    assert B.dv_bound(0.3 * t).mi.item() < B.dv_bound(t).mi.item()
    assert B.nwj_bound(t - 1.0).mi.item() < B.nwj_bound(t + 1.0).mi.item()


# ---------------------------------------------------------------------------------------------
# InfoNCE cap, stability, precision


def test_infonce_never_exceeds_log_batch():
    g = torch.Generator().manual_seed(7)
    for trial in range(60):
        n = int(torch.randint(2, 40, (1,), generator=g))
        scale = [1.0, 10.0, 1e2, 1e4][trial % 4]
        s = scale * torch.randn(n, n, generator=g)
        if trial % 3 == 0:
            s = s + 1e4 * torch.eye(n)  # extreme positives
        if trial % 5 == 0:
            s = torch.where(torch.rand(n, n, generator=g) < 0.5, 1e4, -1e4)
        mi = B.infonce(s).mi
        assert torch.isfinite(mi)
        assert mi.item() <= math.log(n) + 1e-5
        length = 3
        sl = scale * torch.randn(n, n, length, generator=g)
        mil = B.infonce(sl).mi
        assert torch.isfinite(mil)
        assert mil.item() <= math.log(1 + (n - 1) * length) + 1e-5


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e30])
def test_huge_scores_no_nan(scale):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(16, 16, generator=g)
    base[0, 1] = 1.0  # a negative at the top of the range
    for name in B.BOUND_NAMES:
        s = (scale * base).requires_grad_(True)
        out = B.get_bound(name)(s)
        out.loss.backward()
        assert not torch.isnan(out.mi), name
        assert not torch.isnan(out.loss), name
        assert torch.isfinite(out.loss) or name == "nwj", name
        if name in ("infonce", "dv", "smile", "mine", "jsd"):
            assert torch.isfinite(out.mi), name
        if name != "nwj":
            assert torch.isfinite(s.grad).all(), name
        else:
            assert torch.isfinite(s.grad[torch.eye(16, dtype=torch.bool)]).all()
        # NWJ needs exp(log E_neg[e^T]): -inf (not NaN) once that overflows float32, as
        # documented; the JS bound reports the DV value, finite for finite scores.


@pytest.mark.parametrize("name", B.BOUND_NAMES)
def test_gradients_finite(name):
    g = torch.Generator().manual_seed(5)
    for shape, mask in (((6, 6), None), ((4, 4, 3), None), ((5, 7), CASES[2][2])):
        s = torch.randn(*shape, generator=g).requires_grad_(True)
        out = B.get_bound(name)(s, mask)
        assert isinstance(out, B.Bound)
        assert out.mi.dtype == torch.float32 and out.mi.shape == ()
        assert out.loss.shape == ()
        out.loss.backward()
        assert torch.isfinite(s.grad).all()
        assert s.grad.abs().sum() > 0


@pytest.mark.parametrize("name", B.BOUND_NAMES)
def test_bf16_autocast_float32_output(name):
    g = torch.Generator().manual_seed(11)
    a = torch.randn(16, 8, generator=g)
    b = a + 0.5 * torch.randn(16, 8, generator=g)
    fn = B.get_bound(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s16 = a @ b.T
        assert s16.dtype == torch.bfloat16
        out = fn(s16)
    ref = fn((a @ b.T).float())
    assert out.mi.dtype == torch.float32 and out.loss.dtype == torch.float32
    # bf16 has ~3 significant digits; scores here are O(10)
    torch.testing.assert_close(out.mi, ref.mi, atol=0.15, rtol=0.02)
    torch.testing.assert_close(out.loss, ref.loss, atol=0.15, rtol=0.02)
    # and exact agreement with the float32 computation on the same (rounded) scores
    exact = fn(s16.float())
    torch.testing.assert_close(out.mi, exact.mi)


def test_float64_scores_are_computed_in_float32():
    out = B.infonce(torch.randn(5, 5, dtype=torch.float64))
    assert out.mi.dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# InfoNCE details


def test_infonce_row_without_negatives():
    s = torch.randn(3, 4, requires_grad=True)
    mask = torch.tensor(
        [[True, False, False, False], [True, True, True, True], [False, True, True, False]]
    )
    out = B.infonce(s, mask)
    rmi, rloss = ref_infonce(s.detach(), mask)
    assert out.mi.item() == pytest.approx(rmi, abs=1e-5)
    out.loss.backward()
    assert torch.isfinite(s.grad).all()
    assert torch.all(s.grad[1] == 0)  # positives alone in their row carry no signal


def test_infonce_loss_is_cross_entropy_for_global():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(9, 9, generator=g)
    ce = torch.nn.functional.cross_entropy(s, torch.arange(9))
    out = B.infonce(s)
    torch.testing.assert_close(out.loss, ce)
    torch.testing.assert_close(out.mi, math.log(9) - ce)


def test_masked_logmeanexp():
    x = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out = B.masked_logmeanexp(x, mask, dim=1)
    assert out[0].item() == pytest.approx(math.log((1 + math.e**2) / 2), abs=1e-6)
    assert out[1].item() == -math.inf
    out[0].backward()
    assert torch.isfinite(x.grad).all() and torch.all(x.grad[1] == 0)
    full = B.masked_logmeanexp(x.detach(), mask)
    assert full.shape == () and full.item() == pytest.approx(out[0].item(), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# MINE, SMILE, JSD specifics


def test_mine_ema_update_and_gradient():
    g = torch.Generator().manual_seed(4)
    n, decay = 6, 0.9
    s1 = torch.randn(n, n, generator=g)
    s2 = (2 * torch.randn(n, n, generator=g)).requires_grad_(True)
    neg = ~torch.eye(n, dtype=torch.bool)
    ema1 = B.mine_moving_average(s1, decay=decay)
    m1 = torch.exp(s1[neg]).mean()
    assert ema1.item() == pytest.approx(math.log(m1), abs=1e-5)
    ema2 = B.mine_moving_average(s2, log_ema=ema1, decay=decay)
    m2 = torch.exp(s2.detach()[neg]).mean()
    a2 = decay * m1 + (1 - decay) * m2
    assert ema2.item() == pytest.approx(math.log(a2), abs=1e-5)
    assert not ema2.requires_grad
    out = B.mine_bound(s2, log_ema=ema2)
    assert isinstance(out, B.Bound)
    out.loss.backward()
    # d loss / d s_pos = -1 / n ; d loss / d s_neg = exp(s) / (n_neg * a)
    expected = torch.exp(s2.detach()) / (neg.sum() * a2)
    expected[~neg] = -1.0 / n
    torch.testing.assert_close(s2.grad, expected, rtol=1e-4, atol=1e-6)
    # no moving average (None, NaN or decay 0) gives the DV gradient
    s4 = s2.detach().clone().requires_grad_(True)
    B.dv_bound(s4).loss.backward()
    for ema in (None, torch.tensor(float("nan")), B.mine_moving_average(s2, None, ema1, 0.0)):
        s3 = s2.detach().clone().requires_grad_(True)
        B.mine_bound(s3, log_ema=ema).loss.backward()
        torch.testing.assert_close(s3.grad, s4.grad)


def test_mine_module_buffer():
    mine = B.MINE(decay=0.5)
    assert torch.isnan(mine.log_ema)
    s = torch.randn(5, 5)
    mine(s)
    first = mine.log_ema.clone()
    assert torch.isfinite(first)
    mine(s + 1.0)
    assert mine.log_ema.item() == pytest.approx(
        math.log(0.5 * math.exp(first.item()) + 0.5 * math.exp(first.item() + 1.0)), abs=1e-5
    )
    mine.eval()
    before = mine.log_ema.clone()
    mine(s + 3.0)
    torch.testing.assert_close(mine.log_ema, before)
    assert "log_ema" in mine.state_dict()


def test_smile_gradient_is_js_gradient_and_no_clip_is_dv():
    g = torch.Generator().manual_seed(9)
    s = 4 * torch.randn(8, 8, generator=g)
    a = s.clone().requires_grad_(True)
    B.smile_bound(a, clip=1.0).loss.backward()
    b = s.clone().requires_grad_(True)
    B.jsd_bound(b).loss.backward()
    torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(B.smile_bound(s, clip=None).mi, B.dv_bound(s).mi)
    # clipping at a huge tau changes nothing
    torch.testing.assert_close(B.smile_bound(s, clip=1e3).mi, B.dv_bound(s).mi)


def test_jsd_loss_matches_fgan_form():
    g = torch.Generator().manual_seed(10)
    s = torch.randn(7, 7, generator=g)
    eye = torch.eye(7, dtype=torch.bool)
    fgan = (
        -torch.nn.functional.softplus(-s[eye]).mean() - torch.nn.functional.softplus(s[~eye]).mean()
    )
    torch.testing.assert_close(-B.jsd_bound(s).loss, fgan + 2 * math.log(2))


# ---------------------------------------------------------------------------------------------
# Validation


def test_validation_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        B.infonce(torch.randn(5))
    with pytest.raises(ValueError, match="not broadcastable"):
        B.dv_bound(torch.randn(4, 4), torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no positive"):
        B.nwj_bound(torch.randn(4, 4), torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no negative"):
        B.jsd_bound(torch.randn(4, 4), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no negative"):
        B.infonce(torch.randn(1, 1))
    with pytest.raises(ValueError, match="bool"):
        B.infonce(torch.randn(4, 4), torch.eye(4))
    with pytest.raises(ValueError, match="floating"):
        B.infonce(torch.ones(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="decay"):
        B.mine_moving_average(torch.randn(4, 4), decay=1.0)
    with pytest.raises(ValueError, match="decay"):
        B.MINE(decay=-0.1)
    with pytest.raises(ValueError, match="clip"):
        B.smile_bound(torch.randn(4, 4), clip=0.0)
    with pytest.raises(ValueError, match="infonce, jsd, dv, mine, nwj, smile"):
        B.get_bound("nce")


def test_get_bound_names():
    assert B.BOUND_NAMES == ("infonce", "jsd", "dv", "mine", "nwj", "smile")
    assert B.get_bound("infonce") is B.infonce
    assert B.get_bound("jsd") is B.jsd_bound
    assert B.get_bound("mine") is B.mine_bound


@pytest.mark.parametrize("name", B.BOUND_NAMES)
def test_non_square_scores_with_explicit_mask(name):
    """A local slice of anchors against candidates gathered from several processes: (N, M) with
    N != M and an explicit mask equals the same rows of the full square problem in every term
    (checked against the loop references on the rectangular tensor itself)."""
    g = torch.Generator().manual_seed(21)
    n_local, m, rank = 3, 8, 1  # this process holds anchors 3..5 of 8 candidates
    s = torch.randn(n_local, m, 2, generator=g)
    mask = torch.zeros(n_local, m, 1, dtype=torch.bool)
    mask[torch.arange(n_local), rank * n_local + torch.arange(n_local)] = True
    out = B.get_bound(name)(s.clone().requires_grad_(True), mask)
    ref = {
        "infonce": ref_infonce(s, mask)[0],
        "dv": ref_dv(s, mask),
        "mine": ref_dv(s, mask),
        "jsd": ref_dv(s, mask),
        "nwj": ref_nwj(s, mask),
        "smile": ref_smile(s, mask, 5.0),
    }[name]
    assert out.mi.item() == pytest.approx(ref, abs=1e-5)
    out.loss.backward()
    # without a mask the default is the rectangular eye(N, M), not the slice's own positives
    default = B.get_bound(name)(s)
    assert default.mi.item() != pytest.approx(out.mi.item(), abs=1e-6)


def test_mine_module_is_a_bound():
    mine = B.MINE(decay=0.9)
    s = torch.randn(6, 6)
    out = mine(s)
    assert isinstance(out, B.Bound)
    torch.testing.assert_close(out.mi, B.dv_bound(s).mi)
