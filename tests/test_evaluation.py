"""infomax.evaluation: kNN, probes, features and their cache, neighbour grids, embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from infomax.evaluation import (
    FeatureCache,
    MLPProbe,
    evaluate_method,
    extract_features,
    format_table,
    grid_size,
    knn_accuracy,
    knn_predict,
    nearest_neighbors,
    neighbors_grid,
    read_embeddings,
    render_neighbors_grid,
    train_probe,
    write_embeddings,
)
from infomax.evaluation.neighbors import MARGIN, default_scale

# ------------------------------------------------------------------------------- fakes


class FakeEncoder(nn.Module):
    probe_taps = ("conv", "y")

    def __init__(self, channels: int = 3, size: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * (size // 2) ** 2, 5)

    def forward(self, x):
        c = self.bn(self.conv(x))
        return {"conv": c, "y": self.fc(c.flatten(1))}


class FakeMethod(nn.Module):
    """A method with the protocol's ``features`` and ``encoder.probe_taps``; counts calls."""

    def __init__(self, channels: int = 3, size: int = 8):
        super().__init__()
        self.encoder = FakeEncoder(channels, size)
        self.calls = 0
        self.modes: list[bool] = []

    def features(self, x):
        assert x.dtype == torch.uint8
        assert not torch.is_grad_enabled()
        self.calls += 1
        self.modes.append(self.training)
        return self.encoder(x.float() / 255 - 0.5)


class Data:
    """Duck-typed ArrayDataset: class c has images of brightness around 60 * c + 30."""

    def __init__(self, n: int, seed: int, classes: int = 3, size: int = 8, channels: int = 3):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, classes, (n,), generator=g)
        noise = torch.rand(n, channels, size, size, generator=g) * 50
        self.images = (noise + 60 * self.labels[:, None, None, None] + 5).to(torch.uint8)
        self.classes = [str(i) for i in range(classes)]


@pytest.fixture
def method():
    torch.manual_seed(0)
    return FakeMethod()


# ------------------------------------------------------------------------------- kNN


def _brute_weighted(train_x, train_y, test_x, k, t, metric, num_classes, vote="weighted"):
    """A reference loop: per test row, sort all training rows, vote, break ties by nearest."""
    preds = []
    for q in test_x:
        if metric == "cosine":
            s = (train_x @ q) / (np.linalg.norm(train_x, axis=1) * np.linalg.norm(q))
        else:
            s = -np.linalg.norm(train_x - q, axis=1)
        order = np.argsort(-s, kind="stable")[:k]
        votes = np.zeros(num_classes)
        for j in order:
            votes[train_y[j]] += np.exp((s[j] - s[order[0]]) / t) if vote == "weighted" else 1.0
        tied = np.flatnonzero(np.isclose(votes, votes.max(), rtol=1e-9, atol=0))
        preds.append(next(train_y[j] for j in order if train_y[j] in tied))
    return np.array(preds)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_majority_equals_sklearn(metric):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    xtr = rng.standard_normal((300, 6)).astype(np.float32)
    ytr = (xtr[:, 0] + 0.8 * rng.standard_normal(300) > 0).astype(np.int64)
    xte = rng.standard_normal((120, 6)).astype(np.float32)
    for k in (1, 5, 15):  # odd k with two classes: no ties
        ref = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute")
        ref.fit(xtr, ytr)
        pred = knn_predict(
            torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), k=k,
            metric=metric, vote="majority", chunk_size=17,
        )  # fmt: skip
        np.testing.assert_array_equal(pred.numpy(), ref.predict(xte))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("vote", ["weighted", "majority"])
def test_knn_equals_reference_loop(metric, vote):
    rng = np.random.default_rng(1)
    xtr = rng.standard_normal((200, 5))
    ytr = rng.integers(0, 4, 200)
    xte = rng.standard_normal((60, 5))
    for k, t in ((10, 0.1), (4, 0.5), (200, 0.07)):
        ref = _brute_weighted(xtr, ytr, xte, k, t, metric, 4, vote)
        pred = knn_predict(
            torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), k=k,
            temperature=t, metric=metric, vote=vote, chunk_size=7,
        )  # fmt: skip
        np.testing.assert_array_equal(pred.numpy(), ref)


def test_knn_chunking_ties_and_unlabeled():
    rng = np.random.default_rng(2)
    xtr = torch.from_numpy(rng.standard_normal((150, 8)).astype(np.float32))
    ytr = torch.from_numpy(rng.integers(0, 3, 150))
    xte = torch.from_numpy(rng.standard_normal((40, 8)).astype(np.float32))
    yte = torch.from_numpy(rng.integers(0, 3, 40))
    accs = {c: knn_accuracy(xtr, ytr, xte, yte, k=20, chunk_size=c) for c in (1, 3, 1000, None)}
    assert len(set(accs.values())) == 1
    # a tie between classes goes to the class of the nearest neighbour, not the lowest label
    gallery = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([1, 1, 0, 0])
    q = torch.tensor([[1.0, 0.05]])
    assert int(knn_predict(gallery, labels, q, k=4, vote="majority")[0]) == 1
    # unlabeled training rows (-1) take no part; unlabeled test rows are not scored
    ytr2 = ytr.clone()
    ytr2[:50] = -1
    a = knn_accuracy(xtr, ytr2, xte, yte, k=20)
    b = knn_accuracy(xtr[50:], ytr[50:], xte, yte, k=20)
    assert a == b
    yte2 = yte.clone()
    yte2[:10] = -1
    assert knn_accuracy(xtr, ytr, xte, yte2, k=20) == knn_accuracy(
        xtr, ytr, xte[10:], yte[10:], k=20
    )
    # well-separated clusters: perfect
    centers = torch.randn(3, 8) * 10
    assert knn_accuracy(centers[ytr] + torch.randn(150, 8) * 0.1, ytr,
                        centers[yte] + torch.randn(40, 8) * 0.1, yte, k=5) == 1.0  # fmt: skip
    with pytest.raises(ValueError, match="metric"):
        knn_accuracy(xtr, ytr, xte, yte, metric="manhattan")
    with pytest.raises(ValueError, match="unlabeled"):
        knn_accuracy(xtr, torch.full_like(ytr, -1), xte, yte)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbors_brute_force(metric):
    rng = np.random.default_rng(3)
    g = rng.standard_normal((90, 7))
    q = rng.standard_normal((25, 7))
    idx, dist = nearest_neighbors(torch.from_numpy(q), torch.from_numpy(g), k=6, metric=metric,
                                  chunk_size=4)  # fmt: skip
    if metric == "cosine":
        d = 1 - (q @ g.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(g, axis=1))
    else:
        d = np.linalg.norm(q[:, None] - g[None], axis=2)
    ref = np.argsort(d, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(idx.numpy(), ref)
    np.testing.assert_allclose(dist.numpy(), np.take_along_axis(d, ref, 1), atol=1e-4)
    assert bool((dist[:, 1:] >= dist[:, :-1]).all())
    # queries taken from the gallery: exclude=self leaves each one out
    sel = torch.tensor([0, 5, 17])
    idx2, _ = nearest_neighbors(torch.from_numpy(g)[sel], torch.from_numpy(g), k=3,
                                metric=metric, exclude=sel)  # fmt: skip
    assert not bool((idx2 == sel[:, None]).any())
    idx3, d3 = nearest_neighbors(torch.from_numpy(g)[sel], torch.from_numpy(g), k=1, metric=metric)
    np.testing.assert_array_equal(idx3[:, 0].numpy(), sel.numpy())
    assert float(d3.abs().max()) < 1e-3


# ------------------------------------------------------------------------------- probes


def test_linear_probe_separable_and_random_labels(monkeypatch):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(20, 4, generator=g)
    x = torch.randn(1200, 20, generator=g) * 3 + 1
    y = (x @ w).argmax(1)
    res = train_probe(x[:800], y[:800], x[800:], y[800:], kind="linear", epochs=150,
                      batch_size=0, lr=0.05)  # fmt: skip
    assert res.test_acc >= 0.95 and res.train_acc >= 0.97
    assert (res.num_train, res.num_test, res.num_features, res.num_classes) == (800, 400, 20, 4)
    assert res.batch_size == 800 and res.milestones == (90, 128)
    y_rand = torch.randint(0, 4, (1200,), generator=g)
    res = train_probe(x[:800], y_rand[:800], x[800:], y_rand[800:], kind="linear", epochs=10)
    assert 0.1 < res.test_acc < 0.4  # chance is 0.25
    assert res.epochs == 10
    # default epochs (30) rise to reach MIN_STEPS steps (here 2 full batches of 256 per epoch)
    from infomax.evaluation import probes

    monkeypatch.setattr(probes, "MIN_STEPS", 100)
    res = train_probe(x[:600], y[:600], x[800:], y[800:], kind="linear")
    assert res.epochs == 50 and res.milestones == (30, 43)
    pred = res.predict(x[800:])
    assert pred.shape == (400,)
    d = res.to_dict()
    assert d["kind"] == "linear" and "probe" not in d


def test_mlp_probe_architecture_and_training():
    m = MLPProbe(64, 10)
    layers = list(m.net)
    assert [type(layer) for layer in layers] == [
        nn.Linear, nn.BatchNorm1d, nn.Dropout, nn.ReLU, nn.Linear
    ]  # fmt: skip
    assert (layers[0].in_features, layers[0].out_features) == (64, 200)
    assert layers[1].num_features == 200 and layers[2].p == 0.1
    assert (layers[4].in_features, layers[4].out_features) == (200, 10)
    # XOR-like labels: a linear probe cannot, the MLP can
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 2, generator=g)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    lin = train_probe(x[:700], y[:700], x[700:], y[700:], kind="linear", epochs=20)
    mlp = train_probe(x[:700], y[:700], x[700:], y[700:], kind="mlp200", epochs=40, lr=3e-3)
    assert lin.test_acc < 0.7 and mlp.test_acc > 0.9
    assert isinstance(mlp.probe, MLPProbe)
    # seeded: the same result twice; -1 labels are dropped
    with pytest.warns(FutureWarning, match="'mlp' is now called 'mlp200'"):  # the old name
        again = train_probe(x[:700], y[:700], x[700:], y[700:], kind="mlp", epochs=40, lr=3e-3)
    assert again.kind == "mlp200"
    assert again.test_acc == mlp.test_acc and again.train_loss == mlp.train_loss
    y2 = y.clone()
    y2[:100] = -1
    res = train_probe(x[:700], y2[:700], x[700:], y[700:], kind="mlp200", epochs=1)
    assert res.num_train == 600
    with pytest.raises(ValueError, match="unknown probe 'svm'.*linear, mlp200"):
        train_probe(x, y, x, y, kind="svm")
    with pytest.raises(ValueError, match="columns"):
        train_probe(x, y, x[:, :1], y)


# ------------------------------------------------------------------------------- features


def test_extract_features_shapes_modes_and_errors(method):
    ds = Data(37, 0)
    method.train()
    feats = extract_features(method, ds, batch_size=10)
    assert list(feats) == ["conv", "y"]
    assert feats["conv"].shape == (37, 4 * 4 * 4) and feats["y"].shape == (37, 5)
    assert feats["conv"].dtype == torch.float32 and feats["conv"].device.type == "cpu"
    assert method.calls == 4 and set(method.modes) == {False}
    assert method.training  # the previous mode is restored
    # flattening matches the method's own output, batch boundaries do not matter
    method.eval()
    with torch.no_grad():
        ref = method.features(ds.images)
    torch.testing.assert_close(feats["conv"], ref["conv"].flatten(1))
    torch.testing.assert_close(extract_features(method, ds.images, taps="y", batch_size=64)["y"],
                               ref["y"])  # fmt: skip
    with pytest.raises(ValueError, match="no feature tap 'fc'.*conv, y"):
        extract_features(method, ds, taps=["fc"])
    with pytest.raises(ValueError, match="uint8 tensor"):
        extract_features(method, object())
    with pytest.raises(ValueError, match="precision 'fp8'"):
        extract_features(method, ds, precision="fp8")


def test_feature_cache_reuse_and_invalidation(method, tmp_path):
    ds = Data(20, 1)
    ckpt = tmp_path / "last.pt"
    torch.save(method.state_dict(), ckpt)
    cache = FeatureCache(tmp_path / "cache")
    a = extract_features(method, ds, cache=cache, checkpoint=ckpt)
    assert method.calls == 1 and cache.misses == 2 and cache.hits == 0
    b = extract_features(method, ds, cache=cache, checkpoint=ckpt)
    assert method.calls == 1 and cache.hits == 2  # no forward pass the second time
    torch.testing.assert_close(a, b)
    # a subset of the taps, and a fresh cache object on the same folder, reuse the files
    cache2 = FeatureCache(tmp_path / "cache")
    extract_features(method, ds, taps=["y"], cache=cache2, checkpoint=ckpt)
    assert method.calls == 1 and cache2.hits == 1
    # other images: computed
    extract_features(method, Data(20, 2), cache=cache, checkpoint=ckpt)
    assert method.calls == 2
    # the checkpoint changes (new weights saved): computed again, old entries pruned
    with torch.no_grad():
        method.encoder.fc.weight.add_(1.0)
    torch.save(method.state_dict(), ckpt)
    c = extract_features(method, ds, cache=cache, checkpoint=ckpt)
    assert method.calls == 3
    assert not torch.allclose(c["y"], a["y"])
    entries = [e for e in cache.entries() if e["data_hash"] == cache.data_fingerprint(ds.images)]
    assert len(entries) == 2  # only the current checkpoint's conv and y
    # touching the file without changing its content keeps the entries
    import os

    os.utime(ckpt, ns=(1, 1))
    extract_features(method, ds, cache=cache, checkpoint=ckpt)
    assert method.calls == 3
    # no checkpoint: the key follows the weights
    extract_features(method, ds, cache=cache)
    extract_features(method, ds, cache=cache)
    assert method.calls == 4
    with torch.no_grad():
        method.encoder.fc.bias.add_(1.0)
    extract_features(method, ds, cache=cache)
    assert method.calls == 5
    # a precision is part of the key
    extract_features(method, ds, cache=cache, taps=["y"], precision="bf16")
    assert method.calls == 6
    cache.clear()
    assert not list((tmp_path / "cache").glob("*.pt"))


# ------------------------------------------------------------------------------- evaluate


def test_evaluate_method_and_table(method, tmp_path):
    train, test = Data(240, 3), Data(90, 4)
    lines = []
    res = evaluate_method(method, train, test, knn_k=15, probe_epochs=15, cache_dir=tmp_path,
                          probes=("linear", "mlp200"), log=lines.append)  # fmt: skip
    assert set(res["taps"]) == {"conv", "y"}
    for tap in ("conv", "y"):
        r = res["taps"][tap]
        assert set(r) == {"dim", "linear", "mlp200", "knn"}
        for kind in ("linear", "mlp200", "knn"):
            assert 0.0 <= r[kind]["test_acc"] <= 1.0
    assert res["taps"]["conv"]["knn"]["test_acc"] > 0.9  # the brightness classes are easy
    assert res["num_train"] == 240 and res["num_classes"] == 3
    import json

    json.dumps(res)  # serialisable
    table = format_table({"trained": res})
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("|")}
    assert rows["tap"].split("|")[3:6] == [" linear ", " mlp200 ", " kNN k=15 "]
    assert f"{100 * res['taps']['conv']['knn']['test_acc']:.1f}" in rows["conv"]
    both = format_table({"trained": res, "random": res})
    assert "linear trained" in both and "kNN k=15 random" in both
    assert res["settings"]["knn_metric"] == "cosine" and res["settings"]["probe_lr"] is None
    assert any("kNN" in line for line in lines)
    res2 = evaluate_method(
        method, train, test, taps=["y"], probes=(), knn_k=None, cache_dir=tmp_path
    )
    assert res2["taps"]["y"] == {"dim": 5}
    with pytest.raises(ValueError, match="unknown probe"):
        evaluate_method(method, train, test, probes=["svm"])


# ------------------------------------------------------------------------------- neighbours


def test_neighbors_grid_png(method, tmp_path):
    from PIL import Image

    ds = Data(50, 5)
    path = tmp_path / "sub" / "nn.png"
    grid = neighbors_grid(method, ds, path, n_queries=5, k=7, seed=1)
    assert grid.path == path and path.is_file()
    scale = default_scale(8, 8)
    assert scale == 8
    img = Image.open(path)
    assert img.size == grid_size(5, 7, 8, 8, scale) == (2 * MARGIN + 8 * 64 + 6 * 4 + 12,
                                                        2 * MARGIN + 5 * 64 + 4 * 4)  # fmt: skip
    assert grid.neighbor_indices.shape == (5, 7) and grid.tap == "y"
    assert not bool((grid.neighbor_indices == grid.query_indices[:, None]).any())
    # the query's frame is orange, the top-left corner of the first neighbour is its pixel
    px = np.asarray(img)
    assert tuple(px[MARGIN - 1, MARGIN - 1]) == (255, 160, 0)
    q0 = ds.images[grid.query_indices[0]]
    assert tuple(px[MARGIN, MARGIN]) == tuple(q0[:, 0, 0].tolist())
    # explicit scale, euclidean, a separate gallery, grayscale images
    gray = Data(30, 6, channels=1)
    m1 = FakeMethod(channels=1)
    img2 = render_neighbors_grid(gray.images[:2], gray.images, torch.tensor([[1, 2], [3, 4]]),
                                 scale=1)  # fmt: skip
    assert img2.size == grid_size(2, 2, 8, 8, 1) and img2.mode == "RGB"
    g2 = neighbors_grid(m1, gray, tmp_path / "g.png", n_queries=3, k=4, metric="euclidean",
                        gallery=Data(20, 7, channels=1), scale=2, tap="conv")  # fmt: skip
    assert Image.open(g2.path).size == grid_size(3, 4, 8, 8, 2)


# ------------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("ext", [".npz", ".pt", ".csv", ".npy"])
def test_write_embeddings_round_trip(tmp_path, ext):
    g = torch.Generator().manual_seed(0)
    feats = {"conv": torch.randn(11, 2, 3, generator=g), "y": torch.randn(11, 4, generator=g)}
    labels = torch.tensor([0, 1, 2, -1, 0, 1, 2, 0, 1, 2, 0])
    if ext == ".npy":
        feats = {"y": feats["y"]}
    path = write_embeddings(feats, labels, tmp_path / f"emb{ext}")
    back, back_labels = read_embeddings(path)
    assert list(back) == (list(feats) if ext != ".npy" else ["features"])
    for f, b in zip(feats.values(), back.values()):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b, f.flatten(1), rtol=0, atol=0)
    if ext == ".npy":
        assert back_labels is None
    else:
        assert torch.equal(back_labels.long(), labels)
    with pytest.raises(FileExistsError):
        write_embeddings(feats, labels, path, overwrite=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_write_embeddings_errors(tmp_path):
    feats = {"a": torch.zeros(3, 2), "b": torch.zeros(3, 1)}
    with pytest.raises(ValueError, match="one array"):
        write_embeddings(feats, None, tmp_path / "x.npy")
    with pytest.raises(ValueError, match="extensions"):
        write_embeddings(feats, None, tmp_path / "x.txt")
    with pytest.raises(ValueError, match="labels for 3 rows"):
        write_embeddings(feats, torch.zeros(2), tmp_path / "x.npz")
    with pytest.raises(ValueError, match="rows"):
        write_embeddings({"a": torch.zeros(3, 2), "b": torch.zeros(4, 1)}, None, tmp_path / "x.pt")
