"""Tests for infomax.info: closed forms, identities, and agreement with scipy / scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from infomax.info import (
    Capacity,
    channel_capacity,
    conditional_entropy,
    entropy,
    entropy_from_counts,
    entropy_from_samples,
    joint_entropy,
    js_divergence,
    kl_divergence,
    mutual_information,
    mutual_information_channel,
    mutual_information_from_counts,
    mutual_information_from_samples,
)

TIGHT = 1e-12


def h2(p: float) -> float:
    """Binary entropy in bits, written out."""
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def random_joint(rng: np.random.Generator, m: int, n: int, zeros: bool = False) -> np.ndarray:
    p = rng.random((m, n)) ** 3
    if zeros:
        p[rng.random((m, n)) < 0.3] = 0.0
        p[0, 0] += 0.1  # keep the table non-empty
    return p / p.sum()


def bsc(p: float) -> np.ndarray:
    return np.array([[1 - p, p], [p, 1 - p]])


# ------------------------------------------------------------------------------------------
# Entropy: worked examples
# ------------------------------------------------------------------------------------------


def test_fair_coin_is_one_bit():
    assert entropy([0.5, 0.5], base=2) == pytest.approx(1.0, abs=TIGHT)
    assert entropy([0.5, 0.5], base="bits") == pytest.approx(1.0, abs=TIGHT)
    assert entropy([0.5, 0.5]) == pytest.approx(math.log(2), abs=TIGHT)  # default nats
    assert entropy([0.5, 0.5], base="nats") == pytest.approx(math.log(2), abs=TIGHT)
    assert entropy([0.5, 0.5], base=10) == pytest.approx(math.log10(2), abs=TIGHT)


def test_biased_coin_below_one_bit():
    expected = -0.9 * math.log2(0.9) - 0.1 * math.log2(0.1)
    h = entropy([0.9, 0.1], base=2)
    assert h == pytest.approx(expected, abs=TIGHT)
    assert h == pytest.approx(0.4689955935892812, abs=TIGHT)
    assert h < 1.0


def test_fair_die_is_log2_6():
    assert entropy(np.full(6, 1 / 6), base=2) == pytest.approx(math.log2(6), abs=TIGHT)
    assert entropy(np.full(6, 1 / 6), base=6) == pytest.approx(1.0, abs=TIGHT)
    assert entropy([1 / 6] * 6, base=3.5) == pytest.approx(math.log(6) / math.log(3.5), abs=TIGHT)


def test_zero_log_zero_and_deterministic():
    assert entropy([1.0, 0.0, 0.0], base=2) == 0.0
    assert entropy([0.5, 0.0, 0.5], base=2) == pytest.approx(1.0, abs=TIGHT)


@pytest.mark.parametrize("base", [2, math.e, 10, 3.7, 0.5])
def test_entropy_and_kl_match_scipy(base):
    rng = np.random.default_rng(0)
    for n in (2, 5, 40):
        p = rng.random(n)
        q = rng.random(n)
        p[0] = 0.0  # exercise 0 log 0
        p, q = p / p.sum(), q / q.sum()
        assert entropy(p, base=base) == pytest.approx(scipy_entropy(p, base=base), abs=TIGHT)
        assert kl_divergence(p, q, base=base) == pytest.approx(
            scipy_entropy(p, q, base=base), abs=TIGHT
        )


def test_entropy_bounds_random():
    rng = np.random.default_rng(1)
    for n in (2, 7, 100):
        p = rng.dirichlet(np.full(n, 0.3))
        assert 0.0 <= entropy(p) <= math.log(n) + TIGHT


# ------------------------------------------------------------------------------------------
# Joint, conditional entropy and mutual information
# ------------------------------------------------------------------------------------------


def test_identities_on_random_joint_tables():
    rng = np.random.default_rng(2)
    for m, n, zeros in [(2, 2, False), (3, 5, False), (6, 4, True), (10, 10, True)]:
        pxy = random_joint(rng, m, n, zeros)
        px, py = pxy.sum(axis=1), pxy.sum(axis=0)
        hx, hy, hxy = entropy(px), entropy(py), joint_entropy(pxy)
        mi = mutual_information(pxy)
        assert mi == pytest.approx(hx + hy - hxy, abs=1e-12)
        assert mi == pytest.approx(kl_divergence(pxy, np.outer(px, py)), abs=1e-12)
        assert mi == pytest.approx(mutual_information(pxy.T), abs=1e-12)  # symmetry
        assert conditional_entropy(pxy) == pytest.approx(hxy - hy, abs=1e-12)  # H(X|Y)
        assert conditional_entropy(pxy.T) == pytest.approx(hxy - hx, abs=1e-12)  # H(Y|X)
        assert mi == pytest.approx(hx - conditional_entropy(pxy), abs=1e-12)
        assert 0.0 <= mi <= min(hx, hy) + 1e-12
        assert joint_entropy(pxy) == pytest.approx(entropy(pxy), abs=TIGHT)
        # bits are nats / log 2
        assert mutual_information(pxy, base=2) == pytest.approx(mi / math.log(2), abs=1e-12)


def test_ideal_channel_gives_entropy_of_input():
    rng = np.random.default_rng(3)
    px = rng.dirichlet(np.ones(5))
    ident = np.eye(5)
    assert mutual_information_channel(px, ident, base=2) == pytest.approx(
        entropy(px, base=2), abs=TIGHT
    )
    assert mutual_information(np.diag(px)) == pytest.approx(entropy(px), abs=TIGHT)
    assert conditional_entropy(np.diag(px)) == pytest.approx(0.0, abs=TIGHT)


def test_fully_disturbed_channel_gives_zero():
    rng = np.random.default_rng(4)
    px = rng.dirichlet(np.ones(4))
    row = rng.dirichlet(np.ones(6))
    w = np.tile(row, (4, 1))
    assert mutual_information_channel(px, w) == pytest.approx(0.0, abs=TIGHT)
    assert mutual_information(np.outer(px, row)) == pytest.approx(0.0, abs=TIGHT)
    assert conditional_entropy(np.outer(px, row)) == pytest.approx(entropy(px), abs=1e-12)


def test_channel_mi_equals_joint_table_mi():
    rng = np.random.default_rng(5)
    px = rng.dirichlet(np.ones(4))
    w = rng.dirichlet(np.ones(3), size=4)
    w[1] = [0.0, 1.0, 0.0]
    expected = mutual_information(px[:, None] * w)
    assert mutual_information_channel(px, w, base=10) == pytest.approx(
        expected / math.log(10), abs=TIGHT
    )
    # a BSC with uniform input: 1 - H(p) bits
    assert mutual_information_channel([0.5, 0.5], bsc(0.2), base=2) == pytest.approx(
        1 - h2(0.2), abs=TIGHT
    )


def test_additivity_for_independent_pairs():
    rng = np.random.default_rng(6)
    p1 = random_joint(rng, 3, 4)
    p2 = random_joint(rng, 2, 5, zeros=True)
    # rows (x1, x2), columns (y1, y2): p(x1,x2,y1,y2) = p1(x1,y1) p2(x2,y2)
    p12 = np.kron(p1, p2)
    assert p12.shape == (6, 20)
    assert mutual_information(p12) == pytest.approx(
        mutual_information(p1) + mutual_information(p2), abs=1e-12
    )
    assert joint_entropy(p12) == pytest.approx(joint_entropy(p1) + joint_entropy(p2), abs=1e-12)
    # entropy is additive for independent variables too
    a, b = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(4))
    assert entropy(np.outer(a, b)) == pytest.approx(entropy(a) + entropy(b), abs=1e-12)


def test_joint_entropy_of_three_variables():
    rng = np.random.default_rng(7)
    a, b, c = (rng.dirichlet(np.ones(k)) for k in (2, 3, 4))
    pabc = np.einsum("i,j,k->ijk", a, b, c)
    assert joint_entropy(pabc) == pytest.approx(entropy(a) + entropy(b) + entropy(c), abs=1e-12)


# ------------------------------------------------------------------------------------------
# KL and JS divergences
# ------------------------------------------------------------------------------------------


def test_kl_infinite_when_q_zero_where_p_positive():
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    # the other direction is finite: p = 0 terms contribute 0
    assert kl_divergence([1.0, 0.0], [0.5, 0.5], base=2) == pytest.approx(1.0, abs=TIGHT)
    assert kl_divergence([0.2, 0.8], [0.2, 0.8]) == 0.0


def test_kl_closed_form_and_asymmetry():
    p, q = [0.9, 0.1], [0.5, 0.5]
    expected = 0.9 * math.log2(0.9 / 0.5) + 0.1 * math.log2(0.1 / 0.5)
    assert kl_divergence(p, q, base=2) == pytest.approx(expected, abs=TIGHT)
    assert kl_divergence(p, q) != pytest.approx(kl_divergence(q, p), abs=1e-3)


def test_js_symmetric_bounded_zero_iff_equal():
    rng = np.random.default_rng(8)
    for n in (2, 6, 30):
        p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
        js = js_divergence(p, q)
        assert js == pytest.approx(js_divergence(q, p), abs=TIGHT)
        assert 0.0 < js <= math.log(2)
        assert js_divergence(p, p) == 0.0
        # scipy's jensenshannon is the square root (the JS distance)
        assert js == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-12)
        js_bits = jensenshannon(p, q, base=2) ** 2
        assert js_divergence(p, q, base=2) == pytest.approx(js_bits, abs=1e-12)
    # disjoint supports reach the bound: log 2 nats = 1 bit
    assert js_divergence([1, 0, 0], [0, 0.5, 0.5], base=2) == pytest.approx(1.0, abs=TIGHT)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(math.log(2), abs=TIGHT)


def test_js_equals_mixture_entropy_formula():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.3, 0.6])
    m = 0.5 * (p + q)
    expected = entropy(m) - 0.5 * entropy(p) - 0.5 * entropy(q)  # Lin (1991), eq. 4.1
    assert js_divergence(p, q) == pytest.approx(expected, abs=TIGHT)


# ------------------------------------------------------------------------------------------
# Channel capacity (Blahut-Arimoto)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.25, 0.4, 0.5, 0.9])
def test_bsc_capacity_is_one_minus_h(p):
    cap = channel_capacity(bsc(p), base=2)
    assert isinstance(cap, Capacity)
    assert cap.converged
    assert cap.capacity == pytest.approx(1 - h2(p), abs=1e-9)
    np.testing.assert_allclose(cap.input_distribution, [0.5, 0.5], atol=1e-9)


@pytest.mark.parametrize("eps", [0.0, 0.2, 0.5, 0.95])
def test_binary_erasure_channel_capacity(eps):
    w = np.array([[1 - eps, eps, 0.0], [0.0, eps, 1 - eps]])  # outputs 0, erasure, 1
    cap = channel_capacity(w, base=2)
    assert cap.capacity == pytest.approx(1 - eps, abs=1e-9)
    np.testing.assert_allclose(cap.input_distribution, [0.5, 0.5], atol=1e-9)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_z_channel_capacity_and_input(p):
    # input 0 always arrives; input 1 flips to 0 with probability p
    w = np.array([[1.0, 0.0], [p, 1 - p]])
    s = p ** (p / (1 - p))
    c_closed = math.log2(1 + (1 - p) * s)
    q1_closed = s / (1 + (1 - p) * s)  # optimal P(X = 1)
    cap = channel_capacity(w, base=2, tol=1e-13, max_iter=100_000)
    assert cap.converged
    assert cap.capacity == pytest.approx(c_closed, abs=1e-12)
    assert cap.input_distribution[1] == pytest.approx(q1_closed, abs=1e-5)
    assert cap.gap <= 1e-13
    # the returned input achieves the returned capacity
    assert mutual_information_channel(cap.input_distribution, w, base=2) == pytest.approx(
        cap.capacity, abs=1e-12
    )


def test_capacity_zero_entries_and_useless_input():
    # output column 2 is never produced; input 2 is a useless (noisy) symbol
    w = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    cap = channel_capacity(w, base=2, tol=1e-12, max_iter=100_000)
    assert cap.capacity == pytest.approx(1.0, abs=1e-10)
    assert cap.input_distribution[2] == pytest.approx(0.0, abs=1e-3)
    # a noiseless 4-ary channel: log2 4
    assert channel_capacity(np.eye(4), base=2).capacity == pytest.approx(2.0, abs=1e-12)
    # one input only: nothing to choose, capacity 0
    assert channel_capacity([[0.3, 0.7]]).capacity == pytest.approx(0.0, abs=TIGHT)


def test_capacity_is_maximum_over_inputs_random_channel():
    rng = np.random.default_rng(9)
    w = rng.dirichlet(np.full(5, 0.5), size=4)
    cap = channel_capacity(w, tol=1e-12)
    assert cap.converged
    for _ in range(50):
        px = rng.dirichlet(np.ones(4))
        assert mutual_information_channel(px, w) <= cap.capacity + 1e-12
    assert mutual_information_channel(cap.input_distribution, w) == pytest.approx(
        cap.capacity, abs=1e-11
    )
    # units: nats vs bits
    assert channel_capacity(w, base=2, tol=1e-12).capacity == pytest.approx(
        cap.capacity / math.log(2), abs=1e-11
    )


def test_capacity_not_converged_flag():
    w = np.array([[1.0, 0.0], [0.5, 0.5]])
    cap = channel_capacity(w, tol=1e-15, max_iter=2)
    assert cap.iterations == 2 and not cap.converged and cap.gap > 0


# ------------------------------------------------------------------------------------------
# Plug-in estimates from samples and counts
# ------------------------------------------------------------------------------------------


def test_entropy_from_samples_and_counts():
    assert entropy_from_samples([0, 1, 0, 1], base=2) == pytest.approx(1.0, abs=TIGHT)
    assert entropy_from_samples(["a", "b", "c", "d"], base=2) == pytest.approx(2.0, abs=TIGHT)
    assert entropy_from_counts([5, 0, 5], base=2) == pytest.approx(1.0, abs=TIGHT)
    rng = np.random.default_rng(10)
    x = rng.integers(0, 7, size=500)
    counts = np.bincount(x)
    assert entropy_from_samples(x) == pytest.approx(scipy_entropy(counts), abs=TIGHT)
    assert entropy_from_counts(counts, base=2) == pytest.approx(
        scipy_entropy(counts, base=2), abs=TIGHT
    )
    # rows of a 2-D array are symbols: (x1, x2) pairs
    pairs = np.stack([x % 2, x // 2], axis=1)
    assert entropy_from_samples(pairs) == pytest.approx(entropy_from_samples(x), abs=TIGHT)


def test_miller_madow_formula():
    counts = np.array([3, 0, 5, 2])
    n, k = 10, 3
    plug = entropy_from_counts(counts)
    assert entropy_from_counts(counts, miller_madow=True) == pytest.approx(
        plug + (k - 1) / (2 * n), abs=TIGHT
    )
    assert entropy_from_counts(counts, base=2, miller_madow=True) == pytest.approx(
        (plug + (k - 1) / (2 * n)) / math.log(2), abs=TIGHT
    )
    x = [0, 0, 1, 2, 2, 2]
    y = [0, 1, 1, 1, 0, 0]
    # H_MM(X) + H_MM(Y) - H_MM(X, Y), each with its own K
    kx, ky, kxy, n = 3, 2, 5, 6
    expected = mutual_information_from_samples(x, y) + ((kx - 1) + (ky - 1) - (kxy - 1)) / (2 * n)
    assert mutual_information_from_samples(x, y, miller_madow=True) == pytest.approx(
        expected, abs=TIGHT
    )
    xy = [f"{a}{b}" for a, b in zip(x, y)]
    hmm = entropy_from_samples
    assert mutual_information_from_samples(x, y, miller_madow=True) == pytest.approx(
        hmm(x, miller_madow=True) + hmm(y, miller_madow=True) - hmm(xy, miller_madow=True),
        abs=TIGHT,
    )


def test_miller_madow_reduces_bias():
    rng = np.random.default_rng(11)
    k, n, repeats = 8, 40, 400
    p = rng.dirichlet(np.ones(k))
    h_true = entropy(p)
    samples = rng.choice(k, size=(repeats, n), p=p)
    plug = np.mean([entropy_from_samples(s) for s in samples])
    mm = np.mean([entropy_from_samples(s, miller_madow=True) for s in samples])
    assert plug < h_true  # the plug-in estimate is biased low
    assert abs(mm - h_true) < 0.5 * abs(plug - h_true)
    # the same holds for MI of independent variables (true MI = 0)
    xs = rng.integers(0, 4, size=(repeats, n))
    ys = rng.integers(0, 4, size=(repeats, n))
    mi_plug = np.mean([mutual_information_from_samples(a, b) for a, b in zip(xs, ys)])
    mi_mm = np.mean(
        [mutual_information_from_samples(a, b, miller_madow=True) for a, b in zip(xs, ys)]
    )
    assert abs(mi_mm) < 0.5 * abs(mi_plug)


def test_mi_from_samples_matches_sklearn():
    rng = np.random.default_rng(12)
    for n, kx, ky in [(50, 3, 4), (1000, 10, 6), (300, 40, 40)]:
        x = rng.integers(0, kx, size=n)
        y = (x + rng.integers(0, ky, size=n)) % ky  # dependent
        ref = mutual_info_score(x, y)
        assert mutual_information_from_samples(x, y) == pytest.approx(ref, abs=1e-12)
        assert mutual_information_from_samples(x, y, base=2) == pytest.approx(
            ref / math.log(2), abs=1e-12
        )
        table = contingency_matrix(x, y)
        assert mutual_information_from_counts(table) == pytest.approx(ref, abs=1e-12)
        # plug-in MI from counts equals the exact MI of the normalised table
        assert mutual_information(table / table.sum()) == pytest.approx(ref, abs=1e-12)
    assert mutual_information_from_samples([1, 2, 3], [7, 7, 7]) == 0.0
    labels = ["cat", "dog", "cat", "bird"]
    assert mutual_information_from_samples(labels, labels) == pytest.approx(
        entropy_from_samples(labels), abs=TIGHT
    )


def test_binned_samples_match_histogram():
    rng = np.random.default_rng(13)
    x = rng.normal(size=2000)
    y = x + rng.normal(size=2000)
    counts, _, _ = np.histogram2d(x, y, bins=8)
    assert mutual_information_from_samples(x, y, bins=8) == pytest.approx(
        mutual_information_from_counts(counts), abs=1e-12
    )
    hx, _ = np.histogram(x, bins=8)
    assert entropy_from_samples(x, bins=8) == pytest.approx(entropy_from_counts(hx), abs=TIGHT)


# ------------------------------------------------------------------------------------------
# NumPy, torch and lists agree
# ------------------------------------------------------------------------------------------


def test_numpy_torch_list_agree():
    rng = np.random.default_rng(14)
    pxy = random_joint(rng, 3, 4, zeros=True)
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    w = rng.dirichlet(np.ones(3), size=2)
    float32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    for conv, tol in [(torch.tensor, TIGHT), (float32, 1e-6), (np.ndarray.tolist, TIGHT)]:
        assert entropy(conv(p)) == pytest.approx(entropy(p), abs=tol)
        assert mutual_information(conv(pxy)) == pytest.approx(mutual_information(pxy), abs=tol)
        assert conditional_entropy(conv(pxy)) == pytest.approx(conditional_entropy(pxy), abs=tol)
        assert kl_divergence(conv(p), conv(q)) == pytest.approx(kl_divergence(p, q), abs=tol)
        assert js_divergence(conv(p), conv(q)) == pytest.approx(js_divergence(p, q), abs=tol)
        assert channel_capacity(conv(w)).capacity == pytest.approx(
            channel_capacity(w).capacity, abs=tol
        )
    assert isinstance(entropy(torch.tensor([0.5, 0.5])), float)
    assert entropy(torch.tensor([0.5, 0.5], dtype=torch.bfloat16), base=2) == 1.0
    if torch.cuda.is_available():
        assert entropy(torch.tensor([0.5, 0.5], device="cuda"), base=2) == pytest.approx(1.0)
    x = rng.integers(0, 5, size=200)
    y = rng.integers(0, 3, size=200)
    ref = mutual_information_from_samples(x, y)
    assert mutual_information_from_samples(torch.from_numpy(x), torch.from_numpy(y)) == ref
    assert mutual_information_from_samples(x.tolist(), y.tolist()) == ref
    assert entropy_from_samples(torch.from_numpy(x)) == entropy_from_samples(x)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: entropy([0.5, -0.1, 0.6]), "negative entry"),
        (lambda: entropy([0.5, 0.6]), "sums to 1.1"),
        (lambda: entropy([0.5, float("nan")]), "NaN or infinite"),
        (lambda: entropy([0.5, float("inf")]), "NaN or infinite"),
        (lambda: entropy([]), "empty"),
        (lambda: entropy(0.5), "scalar"),
        (lambda: entropy(["a", "b"]), "real numeric"),
        (lambda: entropy([0.5, 0.5], base=1), "base"),
        (lambda: entropy([0.5, 0.5], base=0), "base"),
        (lambda: entropy([0.5, 0.5], base=-2), "base"),
        (lambda: entropy([0.5, 0.5], base=math.inf), "base"),
        (lambda: entropy([0.5, 0.5], base="hartley"), "unknown base"),
        (lambda: entropy([0.5, 0.5], atol=-1), "atol"),
        (lambda: joint_entropy([0.5, 0.5]), ">= 2-D"),
        (lambda: mutual_information([[0.2, 0.2], [0.2, 0.2]]), "sums to 0.8"),
        (lambda: mutual_information([0.5, 0.5]), "2-D table"),
        (lambda: conditional_entropy(np.full((2, 2, 2), 1 / 8)), "2-D table"),
        (lambda: kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5]), "same shape"),
        (lambda: kl_divergence([0.5, 0.5], [0.5, 0.6]), "q sums to"),
        (lambda: js_divergence([1.0], [0.5, 0.5]), "same shape"),
        (lambda: mutual_information_channel([0.5, 0.5], np.eye(3)), "one row"),
        (lambda: mutual_information_channel([0.5, 0.5], [[0.5, 0.6], [0.5, 0.5]]), "row 0"),
        (lambda: channel_capacity([[0.9, 0.1], [0.3, 0.3]]), "row 1 sums to 0.6"),
        (lambda: channel_capacity([0.5, 0.5]), "2-D matrix"),
        (lambda: channel_capacity([[1.2, -0.2], [0.5, 0.5]]), "negative entry"),
        (lambda: channel_capacity([[np.nan, 1.0]]), "NaN"),
        (lambda: channel_capacity(np.eye(2), tol=0), "tol"),
        (lambda: channel_capacity(np.eye(2), max_iter=0), "max_iter"),
        (lambda: entropy_from_counts([0, 0]), "all zero"),
        (lambda: entropy_from_counts([3, -1]), "negative entry"),
        (lambda: entropy_from_samples([]), "empty"),
        (lambda: entropy_from_samples([1.0, np.nan]), "NaN"),
        (lambda: entropy_from_samples([1.0, 2.0], bins=0), "bins"),
        (lambda: mutual_information_from_samples([1, 2, 3], [1, 2]), "3 samples but y has 2"),
        (lambda: mutual_information_from_counts([1, 2, 3]), "2-D table"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_atol_controls_normalisation_check():
    p = [0.5, 0.5 + 1e-4]
    with pytest.raises(ValueError, match="larger atol"):
        entropy(p)
    assert entropy(p, base=2, atol=1e-3) == pytest.approx(entropy([0.5, 0.5], base=2), abs=1e-6)
    # float32 round-off is within the default tolerance
    p32 = torch.softmax(torch.randn(1000, generator=torch.Generator().manual_seed(0)), 0)
    assert entropy(p32) == pytest.approx(entropy(p32.double() / p32.double().sum()), abs=1e-9)
