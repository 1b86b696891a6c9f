"""Bad inputs a user can give end in a clear error that names the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infomax.cli.main import main
from infomax.data import check_splits, load_dataset


def test_mixed_size_folder_names_the_setting_of_each_command(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "a" / "0.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a" / "1.png")
    with pytest.raises(ValueError, match="differ in size") as info:
        load_dataset(tmp_path)
    msg = str(info.value)
    assert "data.image_size=20 for infomax train" in msg and "--image-size 20" in msg
    assert load_dataset(tmp_path, image_size=20).images.shape == (2, 3, 20, 20)


def test_npz_images_in_nhwc_layout_are_read_as_images(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (5, 32, 30, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=nhwc, labels=np.arange(5))
    ds = load_dataset(tmp_path / "x.npz")
    assert ds.images.shape == (5, 3, 32, 30)
    assert torch.equal(ds.images[2], torch.from_numpy(nhwc[2]).permute(2, 0, 1))
    nchw = nhwc.transpose(0, 3, 1, 2).copy()  # the layout ArrayDataset.save_npz writes
    np.savez(tmp_path / "y.npz", images=nchw, labels=np.arange(5))
    assert torch.equal(load_dataset(tmp_path / "y.npz").images, ds.images)
    np.savez(tmp_path / "z.npz", images=nhwc[..., :2], labels=np.arange(5))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        load_dataset(tmp_path / "z.npz")


def test_missing_named_dataset_names_the_train_setting(tmp_path):
    from infomax.data.sources import _missing_message  # what load_dataset raises (torchvision)

    msg = _missing_message("cifar10", "train", tmp_path, "the files are absent")
    assert "data.download=true (infomax train" in msg and "--download" not in msg


def test_check_splits_before_training(tmp_path):
    x = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "train_only.npz", x_train=x, y_train=np.arange(4))
    check_splits(tmp_path / "train_only.npz", ["train"])
    with pytest.raises(ValueError, match="no split 'test' .its splits: train.; fix it"):
        check_splits(tmp_path / "train_only.npz", ["train", "test"], fix="fix it")
    check_splits("synthetic", ["train", "test"])
    with pytest.raises(ValueError, match="splits: train, test"):
        check_splits("cifar10", ["unlabeled"])
    (tmp_path / "folder" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="no split 'test'"):
        check_splits(tmp_path / "folder", ["test"])
    check_splits(tmp_path / "folder" / "train", ["test"])  # no split folders: every split


def test_train_refuses_an_npz_without_the_test_split_before_training(tmp_path, capsys):
    from infomax.training.config import load_config
    from infomax.training.report import check_eval_data

    x = np.zeros((8, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(8) % 2)
    cfg = load_config("quickstart", [f"data.dataset={tmp_path / 'd.npz'}"])
    with pytest.raises(ValueError, match="no split 'test'.*eval.after_training=false"):
        check_eval_data(cfg)
    check_eval_data(load_config("quickstart", [f"data.dataset={tmp_path / 'd.npz'}",
                                               "eval.after_training=false"]))  # fmt: skip


def test_eval_setting_with_an_old_probe_name_loads_with_a_note():
    from infomax.training.config import load_config

    with pytest.warns(FutureWarning, match="'mlp' is now called 'mlp200'"):
        cfg = load_config("quickstart", ["eval.probes=[linear, mlp]"])
    assert cfg.eval.probes == ["linear", "mlp200"]
    with pytest.raises(ValueError, match="unknown probe 'svm'"):
        load_config("quickstart", ["eval.probes=[svm]"])


def test_resume_from_a_truncated_checkpoint_names_the_file(tmp_path, capsys):
    from infomax.training.runs import LAST_CHECKPOINT, load_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": 1}, run / "epoch_0001.pt")
    (run / LAST_CHECKPOINT).write_bytes((run / "epoch_0001.pt").read_bytes()[:50])
    with pytest.raises(ValueError, match="last.pt' is damaged.*epoch_0001.pt.*resume from it"):
        load_checkpoint(run / LAST_CHECKPOINT)
    (run / "config.yaml").write_text("method: dim\n")
    assert main(["train", "--resume", str(run), "--device", "cpu", "-q"]) == 2
    assert "is damaged" in capsys.readouterr().err
