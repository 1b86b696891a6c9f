"""What every benchmark records about the run that produced its numbers, and how it writes
them: a small helper shared by the scripts in ``benchmarks/`` (they import it as a sibling
module; it is not part of the ``infomax`` package).

A benchmark starts a :class:`Clock` first thing, puts :meth:`Clock.environment` into its
``settings`` at the end (torch version, threads, TF32 switches, Python, load average at the start
and the end, wall time) and hands its results and their Markdown rendering to
:func:`write_results`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch


class Clock:
    """Wall time and machine load since the benchmark started."""

    def __init__(self) -> None:
        self.load_start = os.getloadavg()[0]
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def environment(self) -> dict[str, Any]:
        """Software and machine state next to the numbers (a shared machine is noisy: the load
        average says how busy it was)."""
        return {
            "torch": str(torch.__version__),
            "threads": torch.get_num_threads(),
            "cuda_matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "python": platform.python_version(),
            "load_average_start": self.load_start,
            "load_average_end": os.getloadavg()[0],
            "wall_seconds": round(self.seconds, 1),
        }


def write_results(out: str | Path | None, results: dict[str, Any], text: str) -> None:
    """Print ``text`` (the Markdown table) and, when ``out`` is given, keep both: a ``.json``
    path gets the results there (the Markdown beside it, same name with ``.md``); any other path
    is a folder that gets ``results.json`` and ``results.md``. An existing result file is never
    overwritten: the new one gets a numbered name, and the name used is printed."""
    print()
    print(text)
    if out is None:
        return
    out = Path(out)
    if out.suffix == ".json":
        json_path, md_path = out, out.with_suffix(".md")
    else:
        json_path, md_path = out / "results.json", out / "results.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = _free_pair(json_path, md_path)
    md_path.write_text(text, encoding="utf-8")
    json_path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    wall = results.get("settings", {}).get("wall_seconds")
    took = f"wall time {wall / 60:.1f} min; " if wall is not None else ""
    print(f"{took}results in {json_path} and {md_path}")


def _free_pair(json_path: Path, md_path: Path) -> tuple[Path, Path]:
    """``json_path`` and ``md_path``, or the first ``-1``, ``-2``, ... suffixed pair of which
    neither file exists yet."""
    n = 0
    a, b = json_path, md_path
    while a.exists() or b.exists():
        n += 1
        a = json_path.with_name(f"{json_path.stem}-{n}{json_path.suffix}")
        b = md_path.with_name(f"{md_path.stem}-{n}{md_path.suffix}")
    return a, b
