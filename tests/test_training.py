"""The training loop on a tiny fake method: run folder, exact resume, NaN stop, time budget."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infomax.data import ArrayDataset
from infomax.training import load_run
from infomax.training.config import load_config, register_method
from infomax.training.runs import create_run_dir, load_checkpoint
from infomax.training.trainer import resume_config, train


class TinyMethod(nn.Module):
    """A Method-protocol stand-in: noisy two-view InfoNCE, an adversary with its own loss, and
    random numbers drawn from the global RNG (so exact resume needs the RNG state)."""

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 8,
        width: int = 8,
        nan_at: int = 0,
        inf_estimate: bool = False,
    ):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, 16),
        )
        self.encoder.probe_taps = ("y",)
        self.critic = nn.Linear(16, 16)
        self.disc = nn.Linear(16, 1)
        self.nan_at = nan_at
        self.inf_estimate = inf_estimate
        self.calls = 0

    def aux_parameters(self) -> list[nn.Parameter]:
        return list(self.disc.parameters())

    def training_losses(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        x = images.float() / 255.0
        y1 = self.encoder(x + 0.1 * torch.randn_like(x))
        y2 = self.encoder(x + 0.1 * torch.randn_like(x))
        scores = y1 @ self.critic(y2).t()
        nce = F.cross_entropy(scores, torch.arange(len(x), device=x.device))
        if self.nan_at and self.calls >= self.nan_at:
            nce = nce * float("nan")
        gen = F.softplus(-self.disc(y1)).mean()
        aux = (
            F.softplus(-self.disc(torch.rand_like(y1))).mean()
            + F.softplus(self.disc(y1.detach())).mean()
        )
        out = {"loss": nce + 0.1 * gen, "aux_loss": aux, "nce": nce, "features": y1.detach()}
        if self.inf_estimate:  # a logged estimate that is -inf while the loss is finite
            out["mi_estimate"] = torch.tensor(float("-inf"))
        return out

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": self.encoder(images.float() / 255.0)}


register_method("tiny", TinyMethod)


@pytest.fixture(scope="module")
def dataset() -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(64) % 4
    return ArrayDataset(images, labels, ["a", "b", "c", "d"])


def tiny_config(tmp_path, *overrides: str):
    return load_config(
        None,
        [
            "method=tiny",
            f"run_dir={tmp_path}",
            "name=run",
            "train.batch_size=16",  # 4 steps per epoch
            "train.epochs=5",
            "train.lr=1e-2",
            "train.log_every=1",
            "train.device=cpu",
            "train.precision=fp32",
            *overrides,
        ],
    )


def read_rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_run_writes_the_run_folder(tmp_path, dataset):
    cfg = tiny_config(tmp_path, "train.max_steps=6", "train.log_every=4")
    res = train(cfg, train_set=dataset, progress=False, echo=False)
    run = res.run_dir
    assert run == tmp_path / "run"
    assert res.stopped == "max_steps" and res.step == 6
    for name in ("config.yaml", "metrics.csv", "metrics.png", "last.pt", "train.log"):
        assert (run / name).is_file(), name
    rows = read_rows(run)
    assert [int(r["step"]) for r in rows] == [4, 6]  # every log_every steps, and at the end
    for col in ("epoch", "lr", "loss", "aux_loss", "nce", "probe_acc", "images_per_sec"):
        assert col in rows[0], col
    assert 0.0 <= float(rows[-1]["probe_acc"]) <= 1.0
    text = (run / "config.yaml").read_text()
    assert "infomax_version" in text and "git_commit" in text and "method: tiny" in text
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 6 and ckpt["loader"]["position"] == 2 and ckpt["loader"]["epoch"] == 1
    # load_run gives back the trained weights, in eval mode
    method, cfg2 = load_run(run)
    assert not method.training and cfg2.method == "tiny"
    for k, v in res.method.state_dict().items():
        assert torch.equal(method.state_dict()[k], v), k


def full_and_resumed(tmp_path, dataset, steps, stop, *overrides, edit=None):
    """Two runs of the same config: ``steps`` uninterrupted, and ``stop`` steps then resumed to
    ``steps`` (``edit(checkpoint_path)`` may rewrite the checkpoint in between)."""
    full = train(
        tiny_config(tmp_path, "name=full", f"train.max_steps={steps}", *overrides),
        train_set=dataset, progress=False, echo=False,
    )  # fmt: skip
    part = train(
        tiny_config(tmp_path, "name=part", f"train.max_steps={stop}", *overrides),
        train_set=dataset, progress=False, echo=False,
    )  # fmt: skip
    if edit is not None:
        edit(part.run_dir / "last.pt")
    cfg = resume_config(part.run_dir, None, [f"train.max_steps={steps}"])
    resumed = train(cfg, resume=part.run_dir, train_set=dataset, progress=False, echo=False)
    assert resumed.step == steps
    return full, part, resumed


def test_resume_continues_exactly(tmp_path, dataset):
    # uninterrupted: 10 steps (2.5 epochs); interrupted: 6 steps (mid-epoch), then resumed to 10
    full, part, resumed = full_and_resumed(tmp_path, dataset, 10, 6)
    a, b = read_rows(full.run_dir), read_rows(part.run_dir)
    assert [r["step"] for r in b] == [str(s) for s in range(1, 11)]
    for ra, rb in zip(a, b):
        for col in ("loss", "aux_loss", "nce", "lr", "probe_acc"):
            assert float(ra[col]) == pytest.approx(float(rb[col]), abs=1e-6, rel=0), (ra, rb)
    sa, sb = full.method.state_dict(), resumed.method.state_dict()
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6, rtol=0), k
    assert "resumed" in (part.run_dir / "config.yaml").read_text()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, dataset):
    cfg = tiny_config(tmp_path, "model.nan_at=6", "train.checkpoint_every=4", "train.max_steps=20")
    res = train(cfg, train_set=dataset, progress=False, echo=False)
    assert res.stopped == "nonfinite"
    assert "step 6" in res.message and "nce=nan" in res.message and "loss=nan" in res.message
    assert "last.pt (step 4)" in res.message
    ckpt = load_checkpoint(res.run_dir / "last.pt")
    assert ckpt["step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert "non-finite loss at step 6" in (res.run_dir / "train.log").read_text()


def test_infinite_logged_estimate_does_not_stop_training(tmp_path, dataset):
    cfg = tiny_config(tmp_path, "model.inf_estimate=true", "train.max_steps=6")
    res = train(cfg, train_set=dataset, progress=False, echo=False)
    assert res.stopped == "max_steps" and res.step == 6
    with open(res.run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(r["mi_estimate"]) == -math.inf for r in rows)
    assert all(math.isfinite(float(r["loss"])) for r in rows)


def test_time_budget_stops_cleanly(tmp_path, dataset):
    cfg = tiny_config(tmp_path, "train.time_budget_minutes=0.0001", "train.epochs=1000")
    res = train(cfg, train_set=dataset, progress=False, echo=False)
    assert res.stopped == "time_budget" and 1 <= res.step < 4000
    assert load_checkpoint(res.run_dir / "last.pt")["step"] == res.step


def test_existing_run_folder_is_never_overwritten(tmp_path, dataset):
    cfg = tiny_config(tmp_path, "train.max_steps=1")
    first = train(cfg, train_set=dataset, progress=False, echo=False).run_dir
    second = train(cfg, train_set=dataset, progress=False, echo=False).run_dir
    assert first.name == "run" and second.name == "run-2"
    with pytest.raises(ValueError, match="already exists and is not empty.*--resume"):
        create_run_dir(cfg, run_dir=first)
    (tmp_path / "empty").mkdir()
    assert create_run_dir(cfg, run_dir=tmp_path / "empty") == tmp_path / "empty"


def test_resume_with_an_incompatible_config_says_what_differs(tmp_path, dataset):
    run = train(
        tiny_config(tmp_path, "train.max_steps=2"), train_set=dataset, progress=False, echo=False
    ).run_dir
    with pytest.raises(ValueError) as info:
        resume_config(run, None, ["train.lr=0.5", "model.width=4", "train.epochs=9"])
    msg = str(info.value)
    assert "train.lr: 0.01 (run) -> 0.5 (now)" in msg and "model.width" in msg
    assert "epochs" not in msg.split("only these")[0]  # epochs may change on resume
    ok = resume_config(run, None, ["train.epochs=9", "train.log_every=3"])
    assert ok.train.epochs == 9


def test_lr_schedule_and_grad_clip_are_applied(tmp_path, dataset):
    cfg = tiny_config(
        tmp_path, "train.max_steps=8", "train.warmup_steps=4", "train.lr_milestones=[1]",
        "train.lr_gamma=0.5", "train.grad_clip=1.0",
    )  # fmt: skip
    res = train(cfg, train_set=dataset, progress=False, echo=False)
    lrs = [float(r["lr"]) for r in read_rows(res.run_dir)]
    # lr of steps 1..8: warm-up 1/4 .. 4/4, then epoch 1 (steps 5..8) at half the rate
    expected = [1e-2 * min(1, s / 4) * (0.5 if s > 4 else 1) for s in range(1, 9)]
    assert lrs == pytest.approx(expected)
    assert all(math.isfinite(float(r["loss"])) for r in read_rows(res.run_dir))


# ---------------------------------------------------------------------------------- online probes


def test_online_probe_loss_against_its_formula():
    from infomax.training.online_probes import online_probe_loss

    g = torch.Generator().manual_seed(0)
    z = 30 * torch.randn(12, 5, generator=g)  # large logits: the clip matters
    y = torch.randint(0, 5, (12,), generator=g)
    y[[2, 7]] = -1  # unlabelled rows
    # plain cross-entropy over the labelled rows
    keep = y >= 0
    torch.testing.assert_close(online_probe_loss(z, y), F.cross_entropy(z[keep], y[keep]))
    # the reference's: CE(10 tanh(z / 10)) + 1e-3 mean(z^2), by hand
    zc = 10 * torch.tanh(z / 10)
    logp = zc - zc.exp().sum(1, keepdim=True).log()
    ce = -sum(float(logp[i, y[i]]) for i in range(12) if y[i] >= 0) / int(keep.sum())
    expected = ce + 1e-3 * float((z**2).mean())
    assert float(online_probe_loss(z, y, clip=10.0, logit_reg=1e-3)) == pytest.approx(expected)
    # a batch without labels: no NaN, only the logit penalty is left
    none = torch.full((12,), -1)
    assert float(online_probe_loss(z, none)) == 0.0
    assert float(online_probe_loss(z, none, 10.0, 1e-3)) == pytest.approx(
        1e-3 * float((z**2).mean())
    )
    # float32 from bf16 logits
    assert online_probe_loss(z.bfloat16(), y).dtype == torch.float32


def test_every_configurable_probe_kind_has_a_probe():
    from infomax.training.config import ONLINE_PROBE_KINDS
    from infomax.training.online_probes import ONLINE_PROBES

    assert set(ONLINE_PROBES) == set(ONLINE_PROBE_KINDS)


def test_online_mlp_probe_is_the_reference_classifier():
    from infomax.training.online_probes import OnlineMLPProbe

    probe = OnlineMLPProbe(32, 10)
    kinds = [type(m).__name__ for m in probe.net]
    assert kinds == ["Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert probe.net[0].p == probe.net[4].p == 0.2
    assert probe.net[1].out_features == 1024 and probe.net[1].bias is None
    assert torch.count_nonzero(probe(torch.randn(8, 32))) == 0  # starts at chance


def test_linear_and_mlp_online_probes_learn_and_resume_exactly(tmp_path, dataset):
    probes = [
        "train.online_probes=[linear, amdim_mlp]",
        "train.probe_clip=10",
        "train.probe_logit_reg=1e-3",
    ]
    full, part, resumed = full_and_resumed(tmp_path, dataset, 10, 6, *probes)
    a, b = read_rows(full.run_dir), read_rows(part.run_dir)
    assert resumed.step == 10 and len(a) == len(b) == 10
    for ra, rb in zip(a, b):
        for col in ("probe_acc", "probe_mlp_acc"):
            assert 0.0 <= float(ra[col]) <= 1.0
            assert float(ra[col]) == pytest.approx(float(rb[col]), abs=1e-6, rel=0), col
    ckpt = load_checkpoint(resumed.run_dir / "last.pt")
    assert {k.split(".")[0] for k in ckpt["probe"]} == {"linear", "amdim_mlp"}
    assert ckpt["probe_in_features"] == 16


def test_the_old_online_probe_name_still_loads_with_a_note(tmp_path):
    with pytest.warns(FutureWarning, match="mlp is now called amdim_mlp"):
        cfg = tiny_config(tmp_path, "train.online_probes=[linear, mlp]")
    assert cfg.train.online_probes == ["linear", "amdim_mlp"]


def test_resume_a_linear_probe_checkpoint_of_the_old_layout(tmp_path, dataset):
    def old_layout(path):
        ckpt = torch.load(path, weights_only=True)
        ckpt["probe"] = {k.removeprefix("linear."): v for k, v in ckpt["probe"].items()}
        del ckpt["probe_in_features"]  # as saved before the online probes had names
        torch.save(ckpt, path)

    full, part, _ = full_and_resumed(tmp_path, dataset, 6, 4, edit=old_layout)
    a, b = read_rows(full.run_dir), read_rows(part.run_dir)
    assert [float(r["probe_acc"]) for r in a] == pytest.approx([float(r["probe_acc"]) for r in b])


def test_resume_a_checkpoint_written_before_data_parallel_training(tmp_path, dataset):
    """The layout of checkpoints before several processes: one RNG state (not a list per
    process), no derived model arguments, no world size, the loader's own world size and an
    ``mlp`` online probe; such a run continues exactly."""

    def old_layout(path):
        ckpt = torch.load(path, weights_only=True)
        ckpt["rng"] = ckpt["rng"][0]
        del ckpt["build"]["model"], ckpt["world_size"]
        ckpt["loader"]["world_size"] = 1
        ckpt["probe"] = {k.replace("amdim_mlp.", "mlp.", 1): v for k, v in ckpt["probe"].items()}
        torch.save(ckpt, path)

    full, part, resumed = full_and_resumed(
        tmp_path, dataset, 8, 4, "train.online_probes=[linear, amdim_mlp]", edit=old_layout
    )
    a, b = read_rows(full.run_dir), read_rows(part.run_dir)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    sa, sb = full.method.state_dict(), resumed.method.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.online_probes=[linear, svm]", "unknown kind"),
        ("train.online_probes=[amdim_mlp, amdim_mlp]", "each probe once"),
        ("train.online_probes=[]", "each probe once"),
        ("train.probe_clip=0", "probe_clip must be positive"),
        ("train.probe_logit_reg=-1", "probe_logit_reg must be >= 0"),
    ],
)
def test_online_probe_settings_are_checked(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, override)


def test_training_leaves_the_config_unchanged_and_records_what_it_derived(tmp_path):
    import copy

    import yaml

    from infomax.training.config import config_to_dict
    from infomax.training.runs import load_run

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = ArrayDataset(images, torch.arange(16) % 2, ["a", "b"])
    cfg = load_config(None, [f"run_dir={tmp_path}", "name=dim", "data.dataset=mine.npz",
                             "model.encoder=dim32-tiny", "model.mi_units=16", "train.batch_size=8",
                             "train.max_steps=1", "train.device=cpu"])  # fmt: skip
    before = copy.deepcopy(config_to_dict(cfg))
    res = train(cfg, train_set=data, progress=False, echo=False)
    assert config_to_dict(cfg) == before and "mean" not in cfg.model
    derived = load_checkpoint(res.run_dir / "last.pt")["build"]["model"]
    mean = images.float().div(255).mean(dim=(0, 2, 3))
    assert torch.allclose(torch.tensor(derived["mean"]), mean, atol=1e-5)  # measured
    saved = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert "mean" not in saved["model"]
    assert saved["meta"]["derived"]["model.mean"] == derived["mean"]
    method, _ = load_run(res.run_dir)  # rebuilt with the derived normalisation
    assert torch.allclose(method.transform.normalize.mean.flatten(), mean, atol=1e-5)


def test_the_progress_total_follows_the_time_budget():
    from infomax.training.metrics import Progress

    bar = Progress(True, total_steps=100_000, step=0, budget_s=90.0, desc="t")
    assert bar.bar.total is None  # no estimate before the first measured window
    bar.update(10)
    bar.refresh(step=10, elapsed_s=10.0, steps_done=10, post={})
    assert bar.bar.total == 90  # 1 step/s fits 80 more steps in the 80 s left
    bar.close()
    plain = Progress(True, total_steps=500, step=20, budget_s=None, desc="t")
    assert plain.bar.total == 500
    plain.close()


def test_gradient_accumulation_keeps_the_epoch_and_splits_the_batch(tmp_path, dataset):
    """16 images per step as 2 micro-batches of 8: the same steps per epoch, twice the calls."""
    cfg = tiny_config(tmp_path, "train.max_steps=3", "train.accumulate_steps=2")
    calls = {}
    res = train(cfg, train_set=dataset, progress=False, echo=False,
                callback=lambda t: calls.setdefault("spe", t.steps_per_epoch))  # fmt: skip
    assert calls["spe"] == 4 and res.step == 3 and res.method.calls == 6
    rows = read_rows(res.run_dir)
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    with pytest.raises(ValueError, match="multiple of it"):
        tiny_config(tmp_path, "train.accumulate_steps=3")
