"""``infomax train``: presets, overrides, resume and evaluation through the command line."""

from __future__ import annotations

import time

import pytest
import torch

# registers the fake method "tiny" (a Method-protocol stand-in)
from test_training import TinyMethod  # noqa: F401

from infomax.cli.main import main
from infomax.data import ArrayDataset
from infomax.training.config import get_method_factory, list_presets, read_yaml, resolve_preset
from infomax.training.runs import load_checkpoint


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory):
    """Small labelled datasets as .npz files (fast to load), 8x8 and 64x64."""
    root = tmp_path_factory.mktemp("data")
    g = torch.Generator().manual_seed(0)
    paths = {}
    for size in (8, 32, 64):
        images = torch.randint(0, 256, (96, 3, size, size), dtype=torch.uint8, generator=g)
        ds = ArrayDataset(images, torch.arange(96) % 4, ["a", "b", "c", "d"])
        paths[size] = str(ds.save_npz(root / f"tiny{size}.npz"))
    return paths


def tiny_args(tmp_path, npz_data, *extra: str) -> list[str]:
    return [
        "train", "--quiet", "method=tiny", f"data.dataset={npz_data[8]}", f"run_dir={tmp_path}",
        "train.batch_size=16", "train.log_every=2", "train.precision=fp32", "--device", "cpu",
        *extra,
    ]  # fmt: skip


def test_list_presets_and_print_config(capsys):
    assert main(["train", "--list-presets"]) == 0
    out = capsys.readouterr().out
    for name in ("quickstart", "dim_l_jsd_cifar10", "dim_l_nce_stl10", "amdim_imagenet"):
        assert name in out
    assert main(["train", "--config", "dim_l_nce_cifar10", "--print-config", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "estimator: infonce" in out and "seed: 3" in out and "batch_size: 64" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train.batchsize=3"], ["unknown config key 'train.batchsize'", "batch_size"]),
        (["model.colour=red"], ["model.colour", "valid keys of 'model'"]),
        (["train.epochs=many"], ["train.epochs", "expected int"]),
        (["--config", "nope"], ["no config file 'nope'", "quickstart"]),
        (["stray"], ["unexpected argument 'stray'"]),
        (["--resume", "/nonexistent/run"], ["not a run folder"]),
    ],
)
def test_bad_input_is_a_clean_error(argv, words, capsys):
    assert main(["train", "--print-config", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infomax train: error:")
    for w in words:
        assert w in err, (w, err)


def test_train_resume_and_evaluate(tmp_path, npz_data, capsys):
    args = tiny_args(tmp_path, npz_data, "--name", "cli", "--max-steps", "3", "--no-eval")
    assert main(args) == 0
    run = tmp_path / "cli"
    assert load_checkpoint(run / "last.pt")["step"] == 3
    # the same command again makes a new folder instead of touching the first run
    assert main(args) == 0
    assert (tmp_path / "cli-2" / "last.pt").is_file()
    assert load_checkpoint(run / "last.pt")["step"] == 3
    # --run-dir pointing at an existing run is refused, with the fix in the message
    assert main([*tiny_args(tmp_path, npz_data, "--run-dir", str(run))]) == 2
    assert "--resume" in capsys.readouterr().err
    # resume with a changed learning rate is refused and says what differs
    assert main(["train", "--resume", str(run), "train.lr=0.5"]) == 2
    assert "train.lr" in capsys.readouterr().err
    # resume to 6 steps, then evaluate trained vs random and draw the neighbours
    code = main([
        "train", "--resume", str(run), "--quiet", "--max-steps", "6", "eval.after_training=true",
        "eval.compare_random=true", "eval.neighbors=true", "eval.knn_k=5",
        "eval.probes=[linear]", "eval.probe_epochs=2", "eval.taps=null",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "linear trained" in out and "linear random" in out and "kNN k=5 trained" in out
    assert load_checkpoint(run / "last.pt")["step"] == 6
    for name in ("eval/results.json", "eval/results.md", "eval/neighbors.png", "metrics.png"):
        assert (run / name).is_file(), name
    # `infomax eval --show` reads what the evaluation after training wrote, with the same table
    assert main(["eval", str(run), "--show"]) == 0
    assert "linear trained" in capsys.readouterr().out


def _preset_smoke_overrides(name: str, npz_data) -> list[str]:
    raw = read_yaml(resolve_preset(name))
    method = raw.get("method", "dim")
    get_method_factory(method)  # a built-in method: a missing module fails the test
    model = raw.get("model") or {}
    encoder = str(model.get("encoder", ""))
    big = encoder.endswith("64") or encoder.endswith("128")
    size = 64 if big else 32
    tiny = f"{encoder}-tiny"
    from infomax.models import list_encoders

    assert tiny in list_encoders(), f"every preset's encoder has a tiny variant; no {tiny}"
    out = [f"model.encoder={tiny}", f"data.dataset={npz_data[size]}", "data.image_size=null",
           "data.train_split=train", "eval.train_split=null", "eval.after_training=false",
           "train.batch_size=8", "--max-steps", "2", "train.precision=fp32"]  # fmt: skip
    if method == "dim":
        out.append("model.mi_units=16")
    if method == "amdim":
        out += ["model.ndf=8", "model.n_rkhs=16", "model.n_depth=1"]
    return out


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_trains_two_steps_with_a_tiny_encoder(name, tmp_path, npz_data):
    overrides = _preset_smoke_overrides(name, npz_data)
    argv = ["train", "--quiet", "--config", name, "--device", "cpu", f"run_dir={tmp_path}"]
    assert main(argv + overrides) == 0
    ckpt = load_checkpoint(tmp_path / name / "last.pt")
    assert ckpt["step"] == 2 and ckpt["config"]["method"] == read_yaml(resolve_preset(name)).get(
        "method", "dim"
    )
    # every online probe of the preset (AMDIM's: linear and MLP) logs its accuracy
    header = (tmp_path / name / "metrics.csv").read_text().splitlines()[0].split(",")
    from infomax.training.online_probes import probe_column

    for kind in ckpt["config"]["train"]["online_probes"]:
        assert probe_column(kind) in header, kind


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, capsys):
    """`infomax train` with no arguments: trains a fixed number of steps, evaluates trained vs
    random, draws neighbours; every figure of the printed table shows the trained encoder at
    least 3 points ahead of its random initialisation, with a linear probe and kNN on the tap a
    user would take (docs/dim.md has the numbers for seeds 0, 1, 2; the wall time, about 3
    minutes on 2 idle CPU cores, is reported there, not asserted)."""
    from infomax.training.report import read_results

    t0 = time.monotonic()
    assert main(["train", "--quiet", f"run_dir={tmp_path}"]) == 0
    seconds = time.monotonic() - t0
    run = tmp_path / "quickstart"
    models = read_results(run)["models"]
    trained, random = models["trained"]["taps"], models["random"]["taps"]
    kinds = ("linear", "mlp200", "knn")
    figures = [(tap, k) for tap, r in trained.items() for k in kinds if k in r]
    assert {k for _, k in figures} >= {"linear", "knn"}
    for tap, k in figures:
        gain = trained[tap][k]["test_acc"] - random[tap][k]["test_acc"]
        assert gain >= 0.03, (tap, k, gain)
    assert (run / "eval" / "neighbors.png").is_file()
    print(f"quick start: {seconds:.0f} s")
