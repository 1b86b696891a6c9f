"""Image search: indexing a folder (incremental, damaged files, any mode), exact and approximate
search, the ``index`` / ``search`` commands and their JSON and grid."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from infomax.cli.main import main
from infomax.evaluation import grid_size
from infomax.evaluation.neighbors import GAP, MARGIN, SEPARATOR
from infomax.search import (
    ExactSearcher,
    ImageIndex,
    IVFSearcher,
    Searcher,
    build_ivf,
    index_folder,
    recall_at_k,
    search,
)
from infomax.search.grid import thumbnail


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real run folder: one training step of DIM(L) with the tiny encoder on 32 images."""
    from infomax.training import load_config, train

    root = tmp_path_factory.mktemp("search-run")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 2, 32)
    np.savez(root / "tiny.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    cfg = load_config("dim_l_nce_cifar10", [
        f"data.dataset={root / 'tiny.npz'}", "train.max_steps=1", "eval.after_training=false",
        "train.batch_size=16", "train.time_budget_minutes=null", "model.encoder=dim32-tiny",
        "model.mi_units=32", "train.precision=fp32",
    ])  # fmt: skip
    return train(cfg, run_dir=root / "run", progress=False).run_dir


def _picture(i: int, size=(40, 30)) -> Image.Image:
    """A distinct picture: stripes whose angle and colour depend on i."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.sin((xx * np.cos(i) + yy * np.sin(i)) / (1 + i % 5)) * 127 + 128
    rgb = np.stack([a, np.roll(a, i, 1), 255 - a], -1) * np.array([1, (i % 3) / 2, 1])
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.fixture
def photos(tmp_path):
    """A folder of 12 pictures of different sizes in sub-folders, and a hidden file."""
    folder = tmp_path / "photos"
    for i in range(12):
        sub = folder / ("cats" if i % 2 else "dogs") / ("deep" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        _picture(i, (40 + 3 * i, 30 + 5 * (i % 4))).save(sub / f"p{i:02d}.png")
    (folder / ".hidden.png").write_bytes((folder / "dogs" / "p02.png").read_bytes())
    return folder


def test_query_in_the_index_returns_itself_first(tiny_run, photos, tmp_path):
    index = tmp_path / "photos.index"
    report = index_folder(tiny_run, photos, index, device="cpu")
    assert report.total == report.embedded == 12 and not report.skipped  # .hidden.png left out
    ix = ImageIndex.load(index)
    assert ix.meta["tap"] == "y" and ix.meta["image_size"] == 32 and ix.vectors.shape == (12, 64)
    assert len(ix.meta["checkpoint_digest"]) == 40 and "centre-cropped" in ix.meta["resize"]
    for metric in ("cosine", "euclidean"):
        res = search(index, ix.paths, k=3, metric=metric, device="cpu")
        assert [r.paths[0] for r in res] == ix.paths
        first = [r.scores[0] for r in res]
        assert np.allclose(first, 1.0 if metric == "cosine" else 0.0, atol=1e-5)
        # the same query left out of its own neighbours: the next nearest come first
        res2 = search(index, ix.paths, k=2, metric=metric, exclude_self=True, device="cpu")
        assert [r.paths for r in res2] == [r.paths[1:3] for r in res]
    # an image file outside the index is embedded like the indexed ones: a copy finds its twin
    copy = tmp_path / "copy.png"
    shutil.copy(photos / "cats" / "p05.png", copy)
    r = search(index, [copy], k=1, device="cpu")[0]
    assert r.row is None and r.paths == ["cats/p05.png"] and r.scores[0] > 1 - 1e-5


def test_adding_files_reembeds_only_those(tiny_run, photos, tmp_path):
    index = tmp_path / "photos.index"
    index_folder(tiny_run, photos, index, device="cpu")
    before = ImageIndex.load(index)
    _picture(20).save(photos / "new1.png")
    _picture(21).save(photos / "cats" / "new2.jpg", quality=95)
    os.remove(photos / "dogs" / "p02.png")
    rep = index_folder(tiny_run, photos, index, device="cpu")
    after = ImageIndex.load(index)
    assert (rep.embedded, rep.reused, rep.removed, rep.total) == (2, 11, 1, 13)
    assert "dogs/p02.png" not in after.paths and {"new1.png", "cats/new2.jpg"} <= set(after.paths)
    for p in set(before.paths) - {"dogs/p02.png"}:  # the kept codes are the very same numbers
        assert torch.equal(after.vectors[after.row(p)], before.vectors[before.row(p)])
    # a renamed file and a touched one keep their codes; a changed one is embedded again
    os.rename(photos / "new1.png", photos / "renamed.png")
    os.utime(photos / "cats" / "p01.png", ns=(1, 1))
    _picture(30).save(photos / "cats" / "p05.png")
    rep = index_folder(tiny_run, photos, index, device="cpu")
    assert (rep.embedded, rep.removed, rep.total) == (1, 1, 13)
    # --check digest reads every file but embeds nothing new
    assert index_folder(tiny_run, photos, index, check="digest", device="cpu").embedded == 0
    # a changed checkpoint: everything is embedded again
    ckpt = tiny_run / "last.pt"
    state = torch.load(ckpt, weights_only=True)
    torch.save(state, tiny_run / "other.pt")
    with open(tiny_run / "other.pt", "ab") as f:
        f.write(b"\0")  # same weights, different file content
    rep = index_folder(tiny_run, photos, index, checkpoint="other.pt", device="cpu")
    assert rep.embedded == 13 and "checkpoint changed" in rep.reembed_all


def test_damaged_images_are_skipped_with_a_message(tiny_run, photos, tmp_path):
    good = (photos / "dogs" / "p02.png").read_bytes()
    (photos / "truncated.png").write_bytes(good[: len(good) // 2])
    (photos / "noise.jpg").write_bytes(os.urandom(300))
    (photos / "empty.webp").write_bytes(b"")
    messages: list[str] = []
    rep = index_folder(tiny_run, photos, tmp_path / "ix", device="cpu", log=messages.append)
    assert rep.total == 12 and sorted(p for p, _ in rep.skipped) == [
        "empty.webp", "noise.jpg", "truncated.png"
    ]  # fmt: skip
    assert len(messages) == 3 and all(m.startswith("skipped ") for m in messages)
    assert "BytesIO" not in " ".join(messages)
    assert [s["path"] for s in ImageIndex.load(tmp_path / "ix").meta["skipped"]] == sorted(
        p for p, _ in rep.skipped
    )


def test_any_mode_and_size_is_indexed_and_queried_the_same_way(tiny_run, tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    base = _picture(7, (300, 90))  # a long panorama: resized by its smaller edge and cropped
    base.convert("L").save(folder / "grey.png")
    base.convert("RGBA").save(folder / "alpha.png")
    base.convert("P").save(folder / "palette.gif")
    base.convert("CMYK").save(folder / "cmyk.jpg")
    base.save(folder / "tiny.bmp")
    Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257).save(folder / "16.tif")
    rep = index_folder(tiny_run, folder, tmp_path / "ix", device="cpu")
    assert rep.total == 6 and not rep.skipped
    searcher = Searcher(tmp_path / "ix", device="cpu")
    for p in searcher.index.paths:  # a file given as an image query gets its indexed code back
        code = searcher.embed_image((folder / p).read_bytes())
        assert torch.allclose(code, searcher.index.vectors[searcher.index.row(p)], atol=1e-5)


def test_index_refuses_what_it_should_not_replace(tiny_run, photos, tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    with pytest.raises(ValueError, match="not an infomax image index"):
        index_folder(tiny_run, photos, precious, device="cpu")
    assert precious.read_text() == "mine"
    index_folder(tiny_run, photos, tmp_path / "ix", device="cpu")
    other = tmp_path / "other"
    other.mkdir()
    _picture(1).save(other / "a.png")
    with pytest.raises(ValueError, match="another folder"):
        index_folder(tiny_run, other, tmp_path / "ix", device="cpu")
    assert index_folder(tiny_run, other, tmp_path / "ix", rebuild=True, device="cpu").total == 1


def test_exact_search_matches_a_brute_force_reference():
    g = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    q = torch.randn(7, 8, generator=torch.Generator().manual_seed(1))
    cos = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T
    dist = torch.cdist(q, g)
    for metric, ref, largest in (("cosine", cos, True), ("euclidean", dist, False)):
        s, i = ExactSearcher(g, metric, device="cpu").search(q, 5)
        rs, ri = ref.topk(5, largest=largest)
        assert torch.equal(i, ri) and torch.allclose(s, rs, atol=1e-5)
        # excluding the top hit of some queries (-1: none) shifts those rows by one
        ex = torch.tensor([ri[0, 0], -1, ri[2, 0], -1, -1, -1, -1])
        s, i = ExactSearcher(g, metric, device="cpu").search(q, 4, exclude=ex)
        assert torch.equal(i[0], ri[0, 1:5]) and torch.equal(i[1], ri[1, :4])


def test_single_queries_through_the_float16_copy_stay_exact():
    """One query on the CPU scans a float16 copy first, then rescores in float32 every row that
    can still be among the k nearest: the k rows it returns score, in float64, what the k
    nearest rows score, to float32 rounding, among near-duplicates that float16 cannot order
    (without the bound's margin they miss by 2e-5 to 5e-5), also with an excluded row."""
    from infomax.evaluation.knn import half_score_bound, prepare_gallery, search_gallery

    gen = torch.Generator().manual_seed(2)
    centres = torch.randn(50, 64, generator=gen)
    g = centres.repeat_interleave(80, 0) + 1e-3 * torch.randn(4000, 64, generator=gen)
    gal = prepare_gallery(g, "cosine", half_copy=True)
    assert gal.half is not None and gal.half.dtype == torch.float16
    g64 = torch.nn.functional.normalize(g.double(), dim=1)
    for j in range(40):
        q = g[j * 97 : j * 97 + 1] + 0.3 * torch.randn(1, 64, generator=gen)
        truth = (torch.nn.functional.normalize(q.double(), dim=1) @ g64.T)[0]
        s, i = search_gallery(q, gal, 10)
        best = truth.topk(11)
        assert torch.allclose(truth[i[0]], best.values[:10], atol=5e-7, rtol=0)
        assert torch.allclose(s[0].double(), best.values[:10], atol=1e-6, rtol=0)
        s, i = search_gallery(q, gal, 10, exclude=best.indices[:1])
        assert torch.allclose(truth[i[0]], best.values[1:], atol=5e-7, rtol=0)
    # the bound holds on the data: float16 scores within half_score_bound of float64 ones
    q = torch.nn.functional.normalize(torch.randn(1, 64, generator=gen), dim=1)
    approx = (q.half() @ gal.half.T).double()
    assert float((approx - q.double() @ g64.T).abs().max()) <= half_score_bound(64)
    big = torch.randn(50_000, 8, generator=gen)
    assert ExactSearcher(big, "cosine", device="cpu").gallery.half is not None
    assert ExactSearcher(big, "euclidean", device="cpu").gallery.half is None
    assert ExactSearcher(g, "cosine", device="cpu").gallery.half is None  # small: float32 only


def test_recall_at_k_counts_the_true_neighbours_found():
    exact = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = torch.tensor([[4, 3, 9, 9], [8, 7, 6, 5]])  # 2 of 4, then 4 of 4, order ignored
    assert recall_at_k(found, exact) == pytest.approx(0.75)


def test_approximate_search_recall_against_exact():
    pytest.importorskip("faiss")
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(20, 16, generator=gen) * 4
    x = centres[torch.randint(0, 20, (4000,), generator=gen)] + torch.randn(4000, 16, generator=gen)
    q = x[:200] + 0.1 * torch.randn(200, 16, generator=gen)
    exact = ExactSearcher(x, "euclidean", device="cpu").search(q, 10)[1]
    ivf = IVFSearcher(x, "euclidean", nlist=64, nprobe=64)  # every cell: exact
    assert recall_at_k(ivf.search(q, 10)[1], exact) == pytest.approx(1.0)
    ivf.nprobe = 1
    assert recall_at_k(ivf.search(q, 10)[1], exact) < 1.0
    tuned, info = build_ivf(x, "cosine", target_recall=0.9)
    assert info["recall"] >= 0.9 and info["nlist"] == 4000 // 39 and 1 <= info["nprobe"] <= 102
    clone = IVFSearcher.from_bytes(tuned.to_bytes(), "cosine", tuned.nprobe)
    assert torch.equal(clone.search(q, 5)[1], tuned.search(q, 5)[1])


def test_cli_json_and_grid_agree(tiny_run, photos, tmp_path, capsys):
    index = tmp_path / "photos.index"
    assert main(["index", str(tiny_run), str(photos), "-o", str(index), "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(index) and "12 embedded" in err
    grid = tmp_path / "grid.png"
    queries = ["cats/p01.png", str(photos / "dogs" / "p04.png")]
    argv = ["search", str(index), *queries, "-k", "4", "--json", "-o", str(grid), "--thumb", "16"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    rows = res["results"]
    assert [r["neighbors"][0]["path"] for r in rows] == ["cats/p01.png", "dogs/p04.png"]
    img = np.asarray(Image.open(grid).convert("RGB"))
    assert img.shape[1::-1] == grid_size(2, 4, 16, 16)
    for i, r in enumerate(rows):  # each cell of the picture is the file JSON names there
        y = MARGIN + i * (16 + GAP)
        assert np.array_equal(img[y : y + 16, MARGIN : MARGIN + 16], thumbnail(r["query_file"], 16))
        for j, n in enumerate(r["neighbors"]):
            x = MARGIN + 16 + SEPARATOR + j * (16 + GAP)
            assert np.array_equal(img[y : y + 16, x : x + 16], thumbnail(n["file"], 16))
    # an existing picture is kept unless --force; an unknown query is a clear error
    assert main(argv) == 2 and "exists" in capsys.readouterr().err
    assert main(["search", str(index), "nope.png"]) == 2
    assert "neither an image file nor a path in the index" in capsys.readouterr().err


def test_the_approximate_index_is_stored_and_used(tiny_run, photos, tmp_path, capsys):
    pytest.importorskip("faiss")
    index = tmp_path / "photos.index"
    argv = ["index", str(tiny_run), str(photos), "-o", str(index), "--device", "cpu"]
    assert main([*argv, "--approximate"]) == 0
    assert "recall@10 1.000" in capsys.readouterr().err  # one cell: the IVF scans everything
    ix = ImageIndex.load(index)
    assert ix.ivf is not None and ix.meta["ivf"]["nprobe"] == 1
    res = Searcher(ix, device="cpu").search(ix.paths, k=3, approximate=True)
    assert [r.paths[0] for r in res] == ix.paths
    # an update that changes the codes drops the stale approximate index, and says so
    _picture(40).save(photos / "new.png")
    assert main(argv) == 0 and "out of date" in capsys.readouterr().err
    assert ImageIndex.load(index).ivf is None
