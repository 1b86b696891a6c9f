"""Short seeded versions of the Gaussian MI staircase (benchmarks/mi_staircase.py).

The full benchmark (d = 20, 2..10 nats, 4,000 steps per level) is in docs/mi_benchmark.md.
Here: d = 5, one level of 2 nats, 400 steps at batch 64 with a small separable critic
(hidden 64) and lr 2e-3; InfoNCE, NWJ and SMILE by default, JSD, DV and MINE marked slow.
Tolerances come from three seeds measured on the development machine: the mean of the last 100
batch estimates was 1.47-1.77 nats for every estimator (batch std 0.17-0.29), a downward bias of
0.2-0.5 nats after this short training; we accept [1.2, 2.3].
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def bench():
    from benchmarks import mi_staircase

    return mi_staircase


def test_rho_gives_the_requested_mi(bench):
    g = torch.Generator().manual_seed(0)
    for dim, mi in ((1, 0.5), (20, 2.0), (20, 10.0)):
        rho = bench.rho_for_mi(mi, dim)
        assert -0.5 * dim * math.log(1 - rho**2) == pytest.approx(mi, rel=1e-12)
        x, y = bench.sample_pairs(20_000, dim, mi, generator=g)
        xc, yc = x - x.mean(0), y - y.mean(0)
        r = (xc * yc).sum(0) / (xc.norm(dim=0) * yc.norm(dim=0))  # per-coordinate correlation
        assert r.mean().item() == pytest.approx(rho, abs=5e-3)
    x, y3 = bench.sample_pairs(10, 3, 2.0, cubic=True, generator=torch.Generator().manual_seed(1))
    _, y = bench.sample_pairs(10, 3, 2.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(y3, y**3)


@pytest.mark.parametrize(
    "estimator",
    [
        "infonce",
        "nwj",
        "smile",
        pytest.param("jsd", marks=pytest.mark.slow),
        pytest.param("dv", marks=pytest.mark.slow),
        pytest.param("mine", marks=pytest.mark.slow),
    ],
)
def test_short_staircase_low_mi(bench, estimator):
    run = bench.train_staircase(
        estimator,
        "separable",
        levels=(2.0,),
        steps_per_level=400,
        batch=64,
        dim=5,
        hidden=64,
        layers=2,
        embed_dim=16,
        lr=2e-3,
        seed=0,
    )
    est = run.estimates
    assert est.shape == (400,)
    assert np.isfinite(est).all()
    (row,) = bench.summarize(run, window=100)
    assert 1.2 <= row["mean"] <= 2.3, row
    assert row["std"] < 0.6, row
    if estimator == "infonce":
        assert est.max() <= math.log(64) + 1e-5


def test_infonce_stays_under_log_batch_at_high_mi(bench):
    run = bench.train_staircase(
        "infonce",
        "separable",
        levels=(2.0, 10.0),
        steps_per_level=150,
        batch=32,
        dim=5,
        hidden=64,
        layers=2,
        embed_dim=16,
        lr=2e-3,
        seed=1,
    )
    assert run.estimates.max() <= math.log(32) + 1e-5
    lo, hi = bench.summarize(run, window=50)
    assert hi["mean"] > lo["mean"]


def test_cli_writes_csv_and_plot(bench, tmp_path):
    code = bench.main(
        [
            "--steps-per-level", "3",
            "--levels", "2", "4",
            "--estimators", "infonce", "smile",
            "--critics", "separable",
            "--cubic", "both",
            "--dim", "3",
            "--hidden", "8",
            "--embed-dim", "4",
            "--ksg-samples", "100",
            "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert code == 0
    lines = (tmp_path / "mi_benchmark.csv").read_text().splitlines()
    # header + KSG (2 cubic x 2 levels) + 2 estimators x 2 cubic x 2 levels
    assert len(lines) == 1 + 4 + 8
    assert (tmp_path / "mi_benchmark.png").stat().st_size > 0
    traj = np.load(tmp_path / "mi_trajectories.npz")
    assert traj["infonce_separable_cubic"].shape == (6,)
