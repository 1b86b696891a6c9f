"""Tests of infomax.data: datasets, loading (npz, folders, names), BatchLoader, statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infomax.data import (
    DATASETS,
    ArrayDataset,
    BatchLoader,
    compute_stats,
    dataset_stats,
    load_dataset,
    make_synthetic,
)
from infomax.data.sources import _convert


def indexed_dataset(n: int) -> ArrayDataset:
    """Image i is filled with i % 256 and has label i: the label identifies the image."""
    images = (torch.arange(n) % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4)
    return ArrayDataset(images.contiguous(), torch.arange(n), [str(i) for i in range(n)])


# ---------------------------------------------------------------------------------------------
# ArrayDataset


def test_array_dataset_properties_and_subset():
    ds = ArrayDataset(
        torch.zeros(5, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 1, -1, 0]), ["a", "b"]
    )
    assert len(ds) == 5 and ds.num_classes == 2 and ds.channels == 3 and ds.image_size == 8
    assert ds.shape == (3, 8, 8)
    sub = ds.subset([1, 3])
    assert len(sub) == 2 and sub.labels.tolist() == [1, -1] and sub.classes == ["a", "b"]
    assert ds.subset(ds.labeled).labels.tolist() == [0, 1, 1, 0]
    rect = ArrayDataset(torch.zeros(2, 1, 6, 9, dtype=torch.uint8))
    assert rect.image_size == (6, 9) and rect.labels.tolist() == [-1, -1]


@pytest.mark.parametrize(
    "images, labels, classes, match",
    [
        (torch.zeros(2, 3, 4, 4), None, None, "uint8"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), None, None, "N, C, H, W"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0]), ["a"], "shape"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ["a", "b"], "class"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, -2]), ["a"], ">= -1"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0.0, 1.0]), ["a", "b"], "int"),
    ],
)
def test_array_dataset_validation(images, labels, classes, match):
    with pytest.raises(ValueError, match=match):
        ArrayDataset(images, labels, classes)


# ---------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_shapes_determinism_balance():
    a = make_synthetic(300, seed=3)
    b = make_synthetic(300, seed=3)
    c = make_synthetic(300, seed=4)
    assert a.images.shape == (300, 3, 32, 32) and a.images.dtype == torch.uint8
    assert a.labels.dtype == torch.int64 and a.num_classes == 10
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert torch.bincount(a.labels, minlength=10).tolist() == [30] * 10
    # images vary (not constant) and use the range
    assert float(a.images.float().std()) > 30
    small = make_synthetic(40, seed=0, image_size=16, num_classes=4)
    assert small.images.shape == (40, 3, 16, 16) and small.classes == a.classes[:4]


def test_synthetic_classes_differ_in_shape_not_colour():
    ds = make_synthetic(500, seed=1)
    x = ds.images.float() / 255
    # colour is random per image: per-class mean colours are all close to the global mean
    means = torch.stack([x[ds.labels == k].mean(dim=(0, 2, 3)) for k in range(10)])
    assert float((means - x.mean(dim=(0, 2, 3))).abs().max()) < 0.12
    # but the patterns differ: mean absolute horizontal vs vertical gradients per class
    gx = (x[..., 1:] - x[..., :-1]).abs().mean(dim=(1, 2, 3))
    gy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    ratio = [float((gx / gy)[ds.labels == k].mean()) for k in range(2)]
    assert ratio[0] < 0.8 < 1.25 < ratio[1]  # horizontal stripes vs vertical stripes


def test_load_synthetic_splits():
    test = load_dataset("synthetic", split="test")
    assert len(test) == 1000 and test.image_size == 32
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert torch.equal(test.images, make_synthetic(1000, seed=1).images)
    with pytest.raises(ValueError, match="splits"):
        load_dataset("synthetic", split="unlabeled")


# ---------------------------------------------------------------------------------------------
# .npz


def test_load_npz_layout(tmp_path: Path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "toy.npz"
    np.savez(
        path,
        x_train=x_train,
        y_train=np.arange(12) % 3,
        x_test=x_test,
        y_test=np.arange(5) % 3,
        classes=np.array(["a", "b", "c"]),
    )
    train = load_dataset(path)
    test = load_dataset(str(path), split="test")
    assert train.images.shape == (12, 3, 8, 8)
    assert torch.equal(train.images, torch.from_numpy(x_train).permute(0, 3, 1, 2))
    assert train.labels.tolist() == (np.arange(12) % 3).tolist()
    assert train.classes == ["a", "b", "c"]
    assert len(test) == 5
    resized = load_dataset(path, image_size=4)
    assert resized.images.shape == (12, 3, 4, 4)
    with pytest.raises(ValueError, match="no split 'unlabeled'"):
        load_dataset(path, split="unlabeled")


def test_load_npz_grayscale_and_no_classes(tmp_path: Path):
    path = tmp_path / "gray.npz"
    np.savez(path, x_train=np.zeros((4, 6, 6), np.uint8), y_train=np.array([0, 1, 2, 1]))
    ds = load_dataset(path)
    assert ds.images.shape == (4, 1, 6, 6) and ds.classes == ["0", "1", "2"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match="x_train"):
        load_dataset(bad)


def test_save_npz_round_trip(tmp_path: Path):
    ds = make_synthetic(20, seed=0)
    path = ds.save_npz(tmp_path / "cache.npz")
    back = load_dataset(path)
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert back.classes == ds.classes


# ---------------------------------------------------------------------------------------------
# image folders


def _save(path: Path, size=(10, 10), color=(255, 0, 0), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else 128).save(path)


def test_image_folder_with_classes(tmp_path: Path):
    for i in range(3):
        _save(tmp_path / "cat" / f"{i}.png", color=(200, 10, 10))
    for i in range(2):
        _save(tmp_path / "dog" / "sub" / f"{i}.jpg", color=(10, 200, 10))
    _save(tmp_path / "dog" / "g.png", mode="L")  # grayscale -> RGB
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_dataset(tmp_path)
    assert ds.classes == ["cat", "dog"]
    assert sorted(ds.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert ds.images.shape == (6, 3, 10, 10)
    cats = ds.images[ds.labels == 0]
    assert int(cats[:, 0].float().mean()) == 200


def test_image_folder_unlabeled_and_split_subfolder(tmp_path: Path):
    for i in range(4):
        _save(tmp_path / "train" / f"{i}.png")
    _save(tmp_path / "test" / "x.png")
    ds = load_dataset(tmp_path, split="train")
    assert len(ds) == 4 and ds.labels.tolist() == [-1] * 4 and ds.classes == []
    assert len(load_dataset(tmp_path, split="test")) == 1


def test_image_folder_sizes_and_corrupt_file(tmp_path: Path):
    _save(tmp_path / "a.png", size=(10, 10))
    _save(tmp_path / "b.png", size=(16, 12))
    with pytest.raises(ValueError, match="image_size"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, image_size=8)
    assert ds.images.shape == (2, 3, 8, 8)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_dataset(tmp_path, image_size=8)


# ---------------------------------------------------------------------------------------------
# names, offline errors, caches


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_dataset("cifar11")
    msg = str(info.value)
    for name in DATASETS:
        assert name in msg
    assert "path" in msg and ".npz" in msg and "folder" in msg


@pytest.mark.parametrize(
    "name, split",
    [("cifar10", "train"), ("stl10", "unlabeled"), ("mnist", "test"), ("cifar100", "test")],
)
def test_missing_torchvision_dataset_offline(tmp_path: Path, name, split):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, split=split, root=tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path) in msg and "data.download=true" in msg and "http" in msg and ".npz" in msg


def test_bad_split_for_named_dataset(tmp_path: Path):
    with pytest.raises(ValueError, match="splits"):
        load_dataset("cifar10", split="unlabeled", root=tmp_path)


def test_named_dataset_from_npz_in_root_and_cache(tmp_path: Path):
    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(
        tmp_path / "cifar10.npz",
        x_train=x,
        y_train=np.arange(6),
        x_test=x[:2],
        y_test=np.arange(2),
        classes=np.array([f"c{i}" for i in range(10)]),
    )
    ds = load_dataset("cifar10", split="test", root=tmp_path)
    assert len(ds) == 2 and ds.num_classes == 10
    # a conversion cache <root>/<name>-<split>.npz is read back
    make_synthetic(10, seed=0, image_size=96).save_npz(tmp_path / "stl10-train.npz")
    stl = load_dataset("stl10", split="train", root=tmp_path, image_size=64)
    assert stl.images.shape == (10, 3, 64, 64)


def test_convert_torchvision_like_objects():
    class FakeCifar:
        data = np.zeros((3, 32, 32, 3), np.uint8)
        targets = [0, 1, 2]
        classes = ["a", "b", "c"]

    class FakeStl:
        data = np.zeros((2, 3, 96, 96), np.uint8)
        labels = np.array([-1, 4])
        classes = [str(i) for i in range(10)]

    class FakeMnist:
        data = torch.zeros(4, 28, 28, dtype=torch.uint8)
        targets = torch.tensor([1, 2, 3, 4])
        classes = [str(i) for i in range(10)]

    images, labels, classes = _convert("cifar10", FakeCifar())
    assert images.shape == (3, 3, 32, 32) and labels.tolist() == [0, 1, 2]
    images, labels, _ = _convert("stl10", FakeStl())
    assert images.shape == (2, 3, 96, 96) and labels.tolist() == [-1, 4]
    images, labels, _ = _convert("mnist", FakeMnist())
    assert images.shape == (4, 1, 28, 28) and labels.dtype == torch.int64


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_dataset("./does/not/exist.npz")


# ---------------------------------------------------------------------------------------------
# BatchLoader


def _epoch(loader: BatchLoader) -> list[int]:
    return [i for _, labels in loader for i in labels.tolist()]


def test_loader_covers_every_index_once():
    ds = indexed_dataset(103)
    loader = BatchLoader(ds, batch_size=10, shuffle=True, drop_last=False, seed=1)
    assert len(loader) == 11
    seen = _epoch(loader)
    assert sorted(seen) == list(range(103))
    batches = list(BatchLoader(ds, 10, drop_last=True, seed=1))
    assert len(batches) == 10 and all(b[0].shape == (10, 3, 4, 4) for b in batches)
    images, labels = batches[0]
    assert images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert torch.equal(images[:, 0, 0, 0].long(), labels % 256)
    ordered = BatchLoader(ds, 10, shuffle=False, drop_last=False)
    assert _epoch(ordered) == list(range(103))


def test_loader_deterministic_per_seed_and_epoch():
    ds = indexed_dataset(64)
    a, b, c = (BatchLoader(ds, 8, seed=s) for s in (0, 0, 1))
    e0 = _epoch(a)
    assert e0 == _epoch(b) and e0 != _epoch(c)
    e1 = _epoch(a)  # the loader advanced to epoch 1 by itself
    assert e1 != e0 and sorted(e1) == sorted(e0)
    b.set_epoch(1)
    assert _epoch(b) == e1
    b.set_epoch(0)
    assert _epoch(b) == e0


def test_loader_resumes_exactly():
    ds = indexed_dataset(50)
    full = BatchLoader(ds, 7, seed=3)
    reference = [_epoch(full) for _ in range(2)]
    loader = BatchLoader(ds, 7, seed=3)
    got = []
    for k, (_, labels) in enumerate(loader):
        got += labels.tolist()
        if k == 2:
            break
    state = loader.state_dict()
    assert state["epoch"] == 0 and state["position"] == 3
    fresh = BatchLoader(ds, 7, seed=3)
    fresh.load_state_dict(state)
    fresh.set_epoch(0)  # a training loop that calls set_epoch on resume keeps the position
    got += _epoch(fresh)
    assert got == reference[0]
    assert _epoch(fresh) == reference[1]
    # a state saved at the end of an epoch resumes at the start of the next one
    done = BatchLoader(ds, 7, seed=3)
    done.load_state_dict({"epoch": 0, "position": len(done)})
    assert _epoch(done) == reference[1]
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(ds, 5, seed=3).load_state_dict(state)


def test_loader_ranks_split_each_global_batch():
    ds = indexed_dataset(40)
    whole = _epoch(BatchLoader(ds, 6, seed=0))
    loaders = [BatchLoader(ds, 6, seed=0, rank=r, world_size=3) for r in range(3)]
    assert all(len(loader) == len(BatchLoader(ds, 6)) == 6 for loader in loaders)
    parts = [[labels.tolist() for _, labels in loader] for loader in loaders]
    # step k of rank r holds images [2r, 2r + 2) of global batch k, in the 1-rank order
    joined = [i for k in range(6) for r in range(3) for i in parts[r][k]]
    assert joined == whole
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(ds, 6, rank=3, world_size=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        BatchLoader(ds, 6, rank=0, world_size=4)


def test_loader_errors():
    ds = indexed_dataset(5)
    with pytest.raises(ValueError, match="no batch"):
        BatchLoader(ds, 8)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(ds, 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loader_cuda_on_device_and_streamed():
    ds = indexed_dataset(64)
    for on_device in (True, False):
        loader = BatchLoader(ds, 8, device="cuda", seed=0, on_device=on_device)
        images, labels = next(iter(loader))
        assert images.is_cuda and labels.is_cuda
        assert torch.equal(images[:, 0, 0, 0].long().cpu(), labels.cpu() % 256)
        assert _epoch(BatchLoader(ds, 8, device="cuda", seed=0, on_device=on_device)) == _epoch(
            BatchLoader(ds, 8, seed=0)
        )


# ---------------------------------------------------------------------------------------------
# statistics


def test_dataset_stats_known_and_computed():
    mean, std = dataset_stats("cifar10")
    assert mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    assert std == pytest.approx((63.0 / 255, 62.1 / 255, 66.7 / 255))
    for name in ("cifar100", "stl10", "mnist", "imagenet"):
        m, s = dataset_stats(name)
        assert len(m) == len(s) and all(v > 0 for v in s)
    with pytest.raises(ValueError, match="known"):
        dataset_stats("svhn")
    ds = make_synthetic(50, seed=0)
    mean, std = compute_stats(ds)
    x = ds.images.double().numpy() / 255
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), atol=1e-10)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), atol=1e-8)
    assert dataset_stats(ds) == (mean, std)
    chunked = compute_stats(ds, chunk=7)
    np.testing.assert_allclose(chunked[0], mean, atol=1e-12)
