"""``infomax eval``, ``infomax neighbors`` and ``infomax embed`` on a small fake run folder, and
end to end after two training steps of the real trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from infomax.cli.main import main
from infomax.evaluation import read_embeddings
from infomax.training import config as config_module
from infomax.training.config import load_config, save_config
from infomax.training.runs import CHECKPOINT_FORMAT, CONFIG_FILE, LAST_CHECKPOINT


class TinyMethod(nn.Module):
    """The method protocol's evaluation side: ``features`` and ``encoder.probe_taps``."""

    def __init__(self, in_channels: int = 3, image_size: int = 8):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.probe_taps = ("conv", "y")
        self.conv = nn.Conv2d(in_channels, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * (image_size // 2) ** 2, 6)

    def features(self, x):
        c = self.conv(x.float() / 255 - 0.5)
        return {"conv": c, "y": self.fc(c.flatten(1))}


def _images(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, 8, 8, 3)) + 70 * labels[:, None, None, None]
    return x.astype(np.uint8), labels.astype(np.int64)


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A run folder of TinyMethod on a small .npz dataset (3 classes of brightness)."""
    monkeypatch.setitem(config_module._METHODS, "tinyeval", TinyMethod)
    rng = np.random.default_rng(0)
    xtr, ytr = _images(150, rng)
    xte, yte = _images(60, rng)
    data = tmp_path / "tiny.npz"
    np.savez(
        data, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, classes=np.array(["a", "b", "c"])
    )
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(base={"method": "tinyeval", "data": {"dataset": str(data)}})
    save_config(cfg, run / CONFIG_FILE)
    torch.manual_seed(0)
    method = TinyMethod()
    ckpt = {"format": CHECKPOINT_FORMAT, "build": {"in_channels": 3, "image_size": 8},
            "model": method.state_dict()}  # fmt: skip
    torch.save(ckpt, run / LAST_CHECKPOINT)
    return run


def test_eval_writes_results_and_reuses_the_cache(fake_run, capsys):
    argv = ["eval", str(fake_run), "--epochs", "3", "--knn-k", "10", "--device", "cpu",
            "--probes", "linear", "mlp200"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "conv" in out and "kNN k=10" in out and "mlp200" in out
    res = json.loads((fake_run / "eval" / "results.json").read_text())
    assert res["format"] == 2 and res["checkpoint"].endswith(LAST_CHECKPOINT) and res["timestamp"]
    trained = res["models"]["trained"]
    assert set(trained["taps"]) == {"conv", "y"}
    assert set(trained["taps"]["y"]) == {"dim", "linear", "mlp200", "knn"}
    assert trained["num_train"] == 150 and trained["num_test"] == 60
    assert trained["taps"]["conv"]["knn"]["test_acc"] > 0.9
    assert trained["settings"]["probe_epochs"] == 3 and res["settings"]["knn_k"] == 10
    assert (fake_run / "eval" / "results.md").read_text().strip() == out.strip()
    assert list((fake_run / "eval" / "cache").glob("*.pt"))
    # second time: features from the cache, the earlier results kept under another name
    assert main(argv[:-3] + ["--json", "--taps", "y", "--probes", "linear"]) == 0
    out, err = capsys.readouterr()
    res2 = json.loads(out)["models"]["trained"]
    assert set(res2["taps"]) == {"y"} and set(res2["taps"]["y"]) == {"dim", "linear", "knn"}
    assert err == ""
    kept = list((fake_run / "eval").glob("results-*.json"))
    assert len(kept) == 1
    assert json.loads(kept[0].read_text())["settings"]["probes"] == ["linear", "mlp200"]
    # the run's own settings are the defaults: one linear probe, kNN k=200 (capped by the data)
    assert main(["eval", str(fake_run), "--probes", "--knn-k", "5", "--quiet"]) == 0
    assert "from the cache" not in capsys.readouterr().err  # quiet


def test_eval_old_probe_name_and_compare_random(fake_run, capsys):
    # the run's seed differs from the one the fixture's weights were drawn with (0), so its
    # random initialisation cannot coincide with the "trained" weights
    data = str(fake_run.parent / "tiny.npz")
    cfg = load_config(base={"method": "tinyeval", "data": {"dataset": data}, "train": {"seed": 1}})
    save_config(cfg, fake_run / CONFIG_FILE)
    with pytest.warns(FutureWarning, match="mlp200"):
        assert main(["eval", str(fake_run), "--probes", "mlp", "--epochs", "2", "--knn-k", "5",
                     "--compare-random", "-q"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "mlp200 trained" in out and "mlp200 random" in out and "kNN k=5 random" in out
    models = json.loads((fake_run / "eval" / "results.json").read_text())["models"]
    assert set(models) == {"trained", "random"}
    # the random model is the run's initialisation (seed of the run), not the trained weights
    assert models["random"]["taps"]["y"]["knn"] != models["trained"]["taps"]["y"]["knn"] or (
        models["random"]["taps"]["y"]["mlp200"] != models["trained"]["taps"]["y"]["mlp200"]
    )


def test_runs_evaluated_by_earlier_versions_still_open(fake_run, capsys):
    """RUN/eval.json (after training, before the single evaluation) and RUN/eval/results.json of
    version 1 are read and shown with today's table; the old probe name mlp becomes mlp200."""
    one = {"taps": {"y": {"dim": 6, "linear": {"test_acc": 0.5, "train_acc": 0.6},
                          "mlp": {"test_acc": 0.55, "train_acc": 0.7},
                          "knn": {"test_acc": 0.4, "k": 20}}},
           "num_train": 150, "num_test": 60, "num_classes": 3, "settings": {}}  # fmt: skip
    (fake_run / "eval.json").write_text(json.dumps({"trained": one, "random": one}))
    assert main(["eval", str(fake_run), "--show"]) == 0
    out = capsys.readouterr().out
    assert "mlp200 trained" in out and "kNN k=20 random" in out and "55.0" in out
    (fake_run / "eval").mkdir()
    (fake_run / "eval" / "results.json").write_text(json.dumps({"infomax_eval": 1, **one}))
    assert main(["eval", str(fake_run), "--show"]) == 0
    out = capsys.readouterr().out
    assert "| mlp200 " in out and "random" not in out.split("\n")[0]


def test_eval_errors(fake_run, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert "no run folder" in capsys.readouterr().err
    assert main(["eval", str(fake_run), "--taps", "fc", "--device", "cpu"]) == 2
    assert "no feature tap 'fc'" in capsys.readouterr().err
    assert main(["eval", str(fake_run), "--checkpoint", "epoch_0007.pt"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["eval", str(fake_run), "--probes", "svm"]) == 2
    assert "unknown probe 'svm'" in capsys.readouterr().err
    assert main(["eval", str(fake_run), "--show"]) == 2
    assert "infomax eval" in capsys.readouterr().err


def test_a_truncated_checkpoint_is_named_with_the_older_one_to_use(fake_run, capsys):
    last = fake_run / LAST_CHECKPOINT
    (fake_run / "epoch_0002.pt").write_bytes(last.read_bytes())
    last.write_bytes(last.read_bytes()[:300])
    for argv in (["eval", str(fake_run)], ["neighbors", str(fake_run)],
                 ["embed", str(fake_run), "synthetic"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "last.pt' is damaged" in err and "--checkpoint epoch_0002" in err, err
    assert main(["eval", str(fake_run), "--checkpoint", "2", "--knn-k", "5", "-q"]) == 0
    (fake_run / "epoch_0002.pt").unlink()
    assert main(["eval", str(fake_run)]) == 2
    assert "no other checkpoint" in capsys.readouterr().err


def test_neighbors_writes_png(fake_run, tmp_path, capsys):
    from PIL import Image

    from infomax.evaluation import grid_size

    assert main(["neighbors", str(fake_run), "--k", "5", "--queries", "3", "-q"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(fake_run / "eval" / "neighbors.png")
    assert Image.open(path).size == grid_size(3, 5, 8, 8, 8)
    # again: the earlier picture is kept under another name
    assert main(["neighbors", str(fake_run), "--metric", "euclidean", "--tap", "conv", "-q"]) == 0
    capsys.readouterr()
    assert len(list((fake_run / "eval").glob("neighbors-*.png"))) == 1
    out = tmp_path / "nn.png"
    argv = ["neighbors", str(fake_run), "--out", str(out), "--gallery", "train", "--scale", "1"]
    assert main(argv) == 0
    assert Image.open(out).size == grid_size(8, 8, 8, 8, 1)
    capsys.readouterr()
    assert main(argv) == 2  # exists
    assert "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0


@pytest.mark.parametrize("ext", [".npz", ".csv", ".pt"])
def test_embed_formats_and_overwrite(fake_run, tmp_path, capsys, ext):
    data = str(tmp_path / "tiny.npz")
    out = tmp_path / f"emb{ext}"
    assert main(["embed", str(fake_run), data, "--out", str(out), "--split", "train", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    feats, labels = read_embeddings(out)
    assert feats["conv"].shape == (150, 64) and feats["y"].shape == (150, 6)
    assert labels.shape == (150,)
    before = out.read_bytes()
    assert main(["embed", str(fake_run), data, "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["embed", str(fake_run), data, "--out", str(out), "--force", "-q"]) == 0


def test_embed_npy_folder_and_resize(fake_run, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    (folder / "dogs").mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        for cls in ("cats", "dogs"):
            arr = rng.integers(0, 255, (20, 24, 3)).astype(np.uint8)
            Image.fromarray(arr).save(folder / cls / f"{i}.png")
    out = tmp_path / "photos.npy"
    # .npy needs one tap
    assert main(["embed", str(fake_run), str(folder), "--out", str(out)]) == 2
    assert "one" in capsys.readouterr().err
    argv = ["embed", str(fake_run), str(folder), "--out", str(out), "--taps", "y", "-q"]
    assert main(argv) == 0  # resized to the trained 8x8
    assert np.load(out).shape == (6, 6)
    # default output file in the run folder
    assert main(["embed", str(fake_run), str(folder), "-q"]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path.endswith("embeddings-photos-test.npz")
    assert read_embeddings(path)[1].tolist() == [0, 0, 0, 1, 1, 1]
    # a size other than the trained one is refused with a hint
    assert main(["embed", str(fake_run), str(folder), "--image-size", "12", "--force", "-q"]) == 2
    assert "--image-size 8" in capsys.readouterr().err


@pytest.mark.parametrize(
    "method, model, tap",
    [
        ("dim", {"estimator": "infonce"}, "y"),
        ("amdim", {"encoder": "amdim32", "ndf": 8, "n_rkhs": 16, "n_depth": 1}, "features"),
    ],
)
def test_end_to_end_after_two_training_steps(tmp_path, capsys, method, model, tap):
    """Train two steps with the real trainer on tiny synthetic data, then eval/neighbors/embed."""
    from infomax.training.trainer import train

    cfg = load_config(
        base={
            "method": method,
            "model": model,
            "data": {"dataset": "synthetic", "train_subset": 64, "test_subset": 32},
            "train": {
                "max_steps": 2,
                "batch_size": 16,
                "device": "cpu",
                "precision": "fp32",
                "log_every": 1,
            },
        },
    )
    run = tmp_path / "run"
    train(cfg, run_dir=run, progress=False, echo=False)
    capsys.readouterr()
    assert main(["eval", str(run), "--epochs", "2", "--knn-k", "5", "-q", "--device", "cpu"]) == 0
    res = json.loads((run / "eval" / "results.json").read_text())["models"]["trained"]
    assert tap in res["taps"] and res["num_test"] == 32
    assert 0.0 <= res["taps"][tap]["linear"]["test_acc"] <= 1.0
    assert main(["neighbors", str(run), "-q", "--device", "cpu"]) == 0
    assert (run / "eval" / "neighbors.png").is_file()
    out = tmp_path / "emb.npz"
    argv = ["embed", str(run), "synthetic", "--out", str(out), "--taps", tap, "--device", "cpu"]
    assert main(argv + ["-q"]) == 0
    feats, labels = read_embeddings(out)
    assert feats[tap].shape[0] == labels.shape[0] == 1000
