"""Check the page of ``infomax serve`` in a real headless browser and take a screenshot.

Starts the server (:func:`infomax.search.make_server`, 127.0.0.1, a free port) over ``--index``,
or over a demo index made here (one training step of the quick-start model with the tiny encoder,
then the built-in synthetic test images written as PNG files), and drives the page with
playwright-core in the system's Chromium (``benchmarks/search_page.mjs``): it clicks an indexed
image and checks that it comes back as its own nearest neighbour, uploads an image through the
file input, waits for the neighbours and their thumbnails, and saves a screenshot. Exits non-zero
when a check fails. Not part of the test suite (it needs Node.js and Chromium).

Set-up (Debian / Ubuntu)::

    apt-get install chromium nodejs npm
    npm install --prefix ~/.cache/infomax-npm playwright-core@1

Usage::

    python benchmarks/search_page.py --out docs/img/search_page.png
    python benchmarks/search_page.py --index photos.index --upload cat.jpg --out page.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent


def demo_index(work: Path) -> tuple[Path, Path]:
    """A tiny run, 200 synthetic test images as PNGs, their index; returns (index, an image)."""
    from PIL import Image

    from infomax.data import load_dataset
    from infomax.search import index_folder
    from infomax.training import load_config, train

    cfg = load_config("dim_l_nce_cifar10", [
        "data.dataset=synthetic", "train.max_steps=1", "eval.after_training=false",
        "train.time_budget_minutes=null", "model.encoder=dim32-tiny", "model.mi_units=32",
        "train.precision=fp32", "data.train_subset=64",
    ])  # fmt: skip
    run = train(cfg, run_dir=work / "run", progress=False).run_dir
    ds = load_dataset("synthetic", split="test")
    folder = work / "images"
    for i in range(200):
        sub = folder / ds.classes[int(ds.labels[i])]
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(sub / f"{i:03d}.png")
    upload = work / "upload.png"
    Image.fromarray(ds.images[500].permute(1, 2, 0).numpy()).resize((96, 96)).save(upload)
    index = work / "demo.index"
    index_folder(run, folder, index, device="cpu")
    return index, upload


def find_node_modules(explicit: str | None) -> Path:
    for cand in filter(None, [explicit, os.environ.get("INFOMAX_NPM_PREFIX"),
                              str(Path.home() / ".cache" / "infomax-npm")]):  # fmt: skip
        if (Path(cand) / "node_modules" / "playwright-core").is_dir():
            return Path(cand) / "node_modules"
    raise SystemExit(
        "playwright-core not found: npm install --prefix ~/.cache/infomax-npm playwright-core@1 "
        "(or pass --npm-prefix)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", help="an index file (default: a demo index made here)")
    ap.add_argument("--upload", help="an image file to upload (default: one made here)")
    ap.add_argument("--out", default="search_page.png", help="the screenshot")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--npm-prefix", help="where playwright-core is installed")
    args = ap.parse_args(argv)
    node_modules = find_node_modules(args.npm_prefix)
    from infomax.search import Searcher, make_server

    with tempfile.TemporaryDirectory() as tmp:
        index, upload = Path(args.index or ""), Path(args.upload or "")
        if not args.index:
            index, made = demo_index(Path(tmp))
            upload = upload if args.upload else made
        server = make_server(Searcher(index, device="cpu"), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        # node resolves packages from the script's folder upwards: run a copy next to them
        script = node_modules.parent / "search_page.mjs"
        shutil.copy(HERE / "search_page.mjs", script)
        out = Path(args.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["node", str(script), url, str(upload.resolve()), str(out), args.chromium],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        server.shutdown()
    if proc.returncode != 0 and not proc.stdout.strip():
        print(proc.stderr, file=sys.stderr)
        return 1
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))
    ok = proc.returncode == 0
    print(f"{'OK' if ok else 'FAILED'}: screenshot {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
