"""Image search speed and scale: query latency and recall@10, exact against approximate, for
10^4, 10^5 and 10^6 codes; and the indexing rate of a folder of images with a run's encoder.

Search (``--sizes``): synthetic codes of ``--dim`` numbers drawn from a mixture of ``--clusters``
Gaussians (real codes are clustered too; isotropic noise in 128 dimensions, the worst case for
any index, is a poor model of them), and ``--queries`` held-out queries from the same mixture.
For each size, in interleaved rounds: exact search (:class:`infomax.search.ExactSearcher`, chunked
matrix products + top-k in torch) one query at a time and in batches of ``--batch``, and the
faiss inverted-file index (:func:`infomax.search.build_ivf`, nprobe tuned to recall@10 >= 0.95 on
indexed codes) likewise; recall@10 of the approximate search is measured on the held-out
queries against exact search. ``--codes FILE`` adds a row for real codes (an index file made by
``infomax index``: its codes, with 1,000 of them held out as queries).

Indexing (``--run`` and ``--folder``): ``infomax.search.index_folder`` end to end into a fresh
index, next to the two halves of its work measured alone on the same files: reading and decoding
(``read_images``, the thread pool the indexer uses) and encoding (``RunEncoder.embed`` on the
decoded images). Indexing is encoder-bound when the end-to-end rate is close to the encoder's.

Usage::

    python benchmarks/search_speed.py --sizes 10000 100000 1000000 --out docs/search_speed.json
    python benchmarks/search_speed.py --sizes 10000 --codes cifar-test.index
    python benchmarks/search_speed.py --sizes --run runs/dim --folder /tmp/photos \\
        --photos 2000 640 480 --data ../shared/data/cifar10.npz --out speed.json

Needs faiss for the approximate rows: ``pip install "infomax[search]"``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runinfo import Clock, write_results  # noqa: E402

from infomax.evaluation.knn import search_gallery  # noqa: E402
from infomax.runtime import cpu_has_fast_bf16  # noqa: E402
from infomax.search import ExactSearcher, build_ivf, recall_at_k  # noqa: E402


def mixture(n: int, dim: int, clusters: int, seed: int) -> torch.Tensor:
    """``n`` codes from a mixture of ``clusters`` Gaussians (centres N(0, 1), spread 0.35)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=torch.Generator().manual_seed(12345))
    out = torch.empty(n, dim)
    step = 1 << 18
    for s in range(0, n, step):
        m = min(step, n - s)
        which = torch.randint(0, clusters, (m,), generator=gen)
        out[s : s + m] = centres[which] + 0.35 * torch.randn(m, dim, generator=gen)
    return out


def per_query_ms(fn, queries: torch.Tensor, batch: int) -> float:
    """Wall milliseconds per query of ``fn`` over ``queries`` in batches of ``batch``."""
    t0 = time.perf_counter()
    for s in range(0, queries.shape[0], batch):
        fn(queries[s : s + batch])
    return 1000 * (time.perf_counter() - t0) / queries.shape[0]


def search_row(name: str, codes: torch.Tensor, queries: torch.Tensor, args) -> dict[str, Any]:
    """Latencies (median of rounds) and recall@10 for one collection."""
    n = codes.shape[0]
    t0 = time.perf_counter()
    exact = ExactSearcher(codes, args.metric, device=args.device)
    exact_setup = time.perf_counter() - t0
    truth = exact.search(queries, args.k)[1]
    row: dict[str, Any] = {"collection": name, "n": n, "dim": codes.shape[1],
                           "exact_setup_s": round(exact_setup, 2)}  # fmt: skip
    ivf = None
    try:
        ivf, info = build_ivf(codes, args.metric, k=args.k, target_recall=args.target_recall,
                              device=args.device)  # fmt: skip
        found = ivf.search(queries, args.k)[1]
        row.update(ivf=info, recall_at_k=recall_at_k(found, truth))
    except ImportError as exc:
        print(f"no approximate rows: {exc}", file=sys.stderr)
    single = queries[: args.single]
    # single queries take the float16-first path on the CPU: it must find what the batch found
    one_by_one = torch.cat([exact.search(single[j : j + 1], args.k)[1] for j in range(len(single))])
    row["exact_1_agrees"] = float(recall_at_k(one_by_one, truth[: len(single)]))
    # the float32-only single query, for the ratio (the same gallery without its float16 copy)
    f32 = exact.gallery._replace(half=None)
    times: dict[str, list[float]] = {"exact_1": [], "exact_1_f32": [], "exact_b": [],
                                     "ivf_1": [], "ivf_b": []}  # fmt: skip
    for _ in range(args.rounds):  # interleaved, so load changes hit every variant alike
        times["exact_1"].append(per_query_ms(lambda q: exact.search(q, args.k), single, 1))
        times["exact_1_f32"].append(per_query_ms(
            lambda q: search_gallery(q.to(exact.device), f32, args.k), single, 1))  # fmt: skip
        if ivf is not None:
            times["ivf_1"].append(per_query_ms(lambda q: ivf.search(q, args.k), single, 1))
        times["exact_b"].append(per_query_ms(lambda q: exact.search(q, args.k), queries,
                                             args.batch))  # fmt: skip
        if ivf is not None:
            times["ivf_b"].append(per_query_ms(lambda q: ivf.search(q, args.k), queries,
                                               args.batch))  # fmt: skip
    for key, v in times.items():
        if v:
            row[f"{key}_ms"] = statistics.median(v)
    print(f"{name}: {row}", flush=True)
    return row


def make_photos(data: str, n: int, size: tuple[int, int], folder: Path, seed: int) -> Path:
    """``n`` JPEG "photos" of ``size`` (width, height): test images of ``data`` enlarged
    (bicubic) with a little noise, so the files decode like camera pictures of that size."""
    import numpy as np
    from PIL import Image

    from infomax.data import load_dataset

    ds = load_dataset(data, split="test")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.fromarray(ds.images[i % len(ds.images)].permute(1, 2, 0).numpy())
        a = np.asarray(im.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
        a = np.clip(a + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"photo_{i:05d}.jpg", quality=90)
    return folder


def index_rates(args) -> dict[str, Any]:
    """Images/s of reading+decoding, of encoding, and of index_folder end to end."""
    from infomax.search import RunEncoder, index_folder
    from infomax.search.files import list_images, read_images

    enc = RunEncoder.open(args.run, device=args.device, batch_size=args.encode_batch)
    stamps = list_images(args.folder)
    paths = [s.path for s in stamps]
    total_bytes = sum(s.size for s in stamps)
    t0 = time.perf_counter()
    images = []
    for chunk in read_images(args.folder, paths, enc.image_size, enc.mode):
        images += [r.image for r in chunk if r.image is not None]
    decode_s = time.perf_counter() - t0
    batch = torch.from_numpy(__import__("numpy").stack(images)).permute(0, 3, 1, 2).contiguous()
    t0 = time.perf_counter()
    enc.embed(batch)
    encode_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        report = index_folder(enc, args.folder, Path(tmp) / "speed.index")
    n = len(images)
    return {
        "folder": str(args.folder), "files": len(paths), "bytes": total_bytes,
        "tap": enc.tap, "image_size": enc.image_size, "precision": enc.precision,
        "device": str(enc.device), "batch_size": enc.batch_size,
        "decode_images_per_s": n / decode_s, "encode_images_per_s": n / encode_s,
        "index_images_per_s": report.images_per_sec, "index_seconds": report.seconds,
        "skipped": len(report.skipped),
    }  # fmt: skip


def markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    lines = [
        "## Search speed",
        "",
        f"- CPU: {s['cpu']} (native bf16: {s['native_bf16']}), torch {s['torch']} "
        f"({s['threads']} threads), device {s['device']}; load average "
        f"{s['load_average_start']:.1f} at the start, {s['load_average_end']:.1f} at the end",
        f"- metric {s['metric']}, k={s['k']}; synthetic codes: mixture of {s['clusters']} "
        f"Gaussians in {s['dim']} dimensions; {s['queries']} held-out queries, batches of "
        f"{s['batch']}; single-query latency over {s['single']} queries; median of "
        f"{s['rounds']} interleaved rounds",
        "",
    ]
    if res["search"]:
        lines += [
            "| collection | N | dim | exact 1 query (ms) | float32 only (ms) | 1 query = batched "
            "| exact batched "
            "(ms/query) | IVF nlist / nprobe | IVF build (s) | IVF 1 query (ms) | IVF batched "
            "(ms/query) | recall@10 |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for r in res["search"]:
            ivf = r.get("ivf") or {}
            def cell(key: str, r: dict[str, Any] = r) -> str:
                return f"{r[key]:.3f}" if key in r else "-"

            lines.append(
                f"| {r['collection']} | {r['n']:,} | {r['dim']} | {cell('exact_1_ms')} | "
                f"{cell('exact_1_f32_ms')} | {cell('exact_1_agrees')} | {cell('exact_b_ms')} | "
                f"{ivf.get('nlist', '-')} / {ivf.get('nprobe', '-')} | "
                f"{ivf.get('build_seconds', '-')} | {cell('ivf_1_ms')} | {cell('ivf_b_ms')} | "
                f"{r.get('recall_at_k', float('nan')):.4f} |"
            )
    ix = res.get("indexing")
    if ix:
        lines += [
            "",
            f"Indexing {ix['files']} files ({ix['bytes'] / 1e6:.1f} MB) of {ix['folder']}, tap "
            f"{ix['tap']}, {ix['image_size']}x{ix['image_size']}, {ix['precision']}, batch "
            f"{ix['batch_size']}:",
            "",
            "| read + decode only | encode only | index_folder end to end |",
            "|---:|---:|---:|",
            f"| {ix['decode_images_per_s']:.0f} img/s | {ix['encode_images_per_s']:.0f} img/s | "
            f"{ix['index_images_per_s']:.0f} img/s |",
        ]
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=50, help="queries timed one at a time")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--codes", help="an index file whose real codes get a row too")
    ap.add_argument("--run", help="a run folder, for the indexing rate")
    ap.add_argument("--folder", help="a folder of images, for the indexing rate")
    ap.add_argument(
        "--photos", type=int, nargs=3, metavar=("N", "WIDTH", "HEIGHT"),
        help="make --folder: N JPEGs of WIDTH x HEIGHT from the test images of --data",
    )  # fmt: skip
    ap.add_argument("--data", help="dataset for --photos")
    ap.add_argument("--encode-batch", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="results .json (the .md beside it) or folder")
    args = ap.parse_args(argv)
    clock = Clock()
    rows = []
    for n in args.sizes:
        data = mixture(n + args.queries, args.dim, args.clusters, args.seed)
        rows.append(search_row("synthetic mixture", data[: n], data[n:], args))
        del data
    if args.codes:
        from infomax.search import ImageIndex

        v = ImageIndex.load(args.codes).vectors
        perm = torch.randperm(v.shape[0], generator=torch.Generator().manual_seed(args.seed))
        q = min(args.queries, v.shape[0] // 10)
        rows.append(search_row(f"codes of {Path(args.codes).name}", v[perm[q:]], v[perm[:q]],
                               args))  # fmt: skip
    if args.photos:
        n, w, h = args.photos
        make_photos(args.data, n, (w, h), Path(args.folder), args.seed)
    indexing = index_rates(args) if args.run and args.folder else None
    res = {
        "settings": {
            "command": " ".join(["benchmarks/search_speed.py", *(argv or sys.argv[1:])]),
            "cpu": cpu_name(), "native_bf16": cpu_has_fast_bf16(),
            "date": time.strftime("%Y-%m-%d"), "device": args.device,
            **{k: getattr(args, k) for k in ("dim", "clusters", "queries", "single", "batch",
                                             "rounds", "k", "metric", "target_recall")},
            **clock.environment(),
        },
        "search": rows,
        "indexing": indexing,
    }  # fmt: skip
    write_results(args.out, res, markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
