"""Metrics and logs of a run: ``metrics.csv``, ``metrics.png``, ``train.log`` and the progress bar.

Nothing waits on the device inside a step: each step's logged scalars go into a row of a device
buffer, copied to the host every ``train.log_every`` steps (one synchronisation, one all-reduce
with several processes: the logged values are means over processes and the probe counts sums, so
the log does not depend on the number of processes). Only the main process writes files and
shows the bar.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from infomax.distributed import all_sum
from infomax.runtime import atomic_write

__all__ = [
    "LOG_FILE",
    "METRICS_FILE",
    "PLOT_FILE",
    "MetricsLog",
    "NonFiniteLossError",
    "Progress",
    "TrainLog",
    "plot_metrics",
    "read_metrics",
]

METRICS_FILE = "metrics.csv"
PLOT_FILE = "metrics.png"
LOG_FILE = "train.log"


class NonFiniteLossError(RuntimeError):
    """An optimised loss term became NaN or infinite."""


def read_metrics(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a ``metrics.csv`` (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def plot_metrics(csv_path: str | os.PathLike, png_path: str | os.PathLike) -> Path | None:
    """Curves of every logged column against the step (matplotlib Agg, no pyplot state)."""
    header, rows = read_metrics(csv_path)
    if not rows:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = [c for c in header if c not in {"step", "epoch", "images_per_sec", "elapsed_s"}]
    steps = [int(r["step"]) for r in rows]
    ncols = min(3, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 2.8 * nrows))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.92, wspace=0.3, hspace=0.6)
    FigureCanvasAgg(fig)
    for i, c in enumerate(cols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        points = [(s, float(r[c])) for s, r in zip(steps, rows) if r.get(c) not in ("", None)]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, lw=1.2)
        ax.set_title(c, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if c == "lr" and ys and min(ys) > 0 and max(ys) / min(ys) > 20:
            ax.set_yscale("log")
    return atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=100))


class TrainLog:
    """Print (through the progress bar when one is shown) and append to ``train.log``; silent
    on every process but the main one."""

    def __init__(self, path: Path | None, echo: bool = True, main: bool = True) -> None:
        self.path, self.echo, self.main = path, echo, main
        self.bar: Any = None

    def __call__(self, msg: str) -> None:
        if not self.main:
            return
        if self.echo:
            if self.bar is not None:
                self.bar.write(msg)
            else:
                print(msg, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")


class Progress:
    """The progress bar (main process only). Its total follows the run's stopping rule: the
    step limit, or with a time budget the steps the measured rate fits into what is left of it
    (so a 1.5-minute run never announces 40 minutes)."""

    def __init__(
        self, enabled: bool, total_steps: int, step: int, budget_s: float | None, desc: str
    ) -> None:
        self.total_steps, self.budget_s = total_steps, budget_s
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            total = None if budget_s else total_steps
            self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True,
                            desc=desc, file=sys.stderr)  # fmt: skip

    def update(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def refresh(self, step: int, elapsed_s: float, steps_done: int, post: dict[str, str]) -> None:
        """After a metrics row: the new total (time budgets) and the figures beside the bar."""
        if self.bar is None:
            return
        if self.budget_s and steps_done > 0 and elapsed_s > 0:
            rate = steps_done / elapsed_s
            fits = step + rate * max(self.budget_s - elapsed_s, 0.0)
            self.bar.total = max(step, min(self.total_steps, int(round(fits))))
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLog:
    """The device buffer of logged scalars and the ``metrics.csv`` it is flushed to.

    Args:
        run_dir: the run folder (``None`` or a non-main process: nothing is written).
        log_every: rows of the buffer (steps between flushes).
        probe_columns: the online probes' accuracy columns.
        batch_size: images per step (global), for the images/s column.
        device: where the buffer lives.
    """

    def __init__(
        self,
        run_dir: Path | None,
        log_every: int,
        probe_columns: list[str],
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.run_dir, self.log_every, self.device = run_dir, int(log_every), device
        self.probe_columns, self.batch_size = list(probe_columns), int(batch_size)
        self.names: list[str] | None = None  # logged scalars, fixed by the first step
        self.checked: list[bool] = []  # per name: a non-finite value stops the run
        self.header: list[str] | None = None
        self._buf: Tensor | None = None
        self._probe = torch.zeros(self.log_every, 1 + len(probe_columns), device=device)
        self._rows = 0
        self._first_step = 0
        self._window_start = time.monotonic()

    @property
    def pending(self) -> int:
        return self._rows

    def set_names(self, names: list[str], checked: set[str], saved: list[str] | None) -> None:
        """Fix the logged names at the first step (``saved``: a resumed run's, which must
        agree)."""
        if saved is not None and list(saved) != list(names):
            raise ValueError(
                f"the method logs {names}, but the run being resumed logged {list(saved)}"
            )
        self.names, self.checked = list(names), [n in checked for n in names]
        self._buf = torch.zeros(self.log_every, len(names), device=self.device)

    def record(self, values: Tensor, probe_stats: Tensor, step: int) -> None:
        """One step's logged values (in :attr:`names` order) and probe counts, on the device."""
        if self._rows == 0:
            self._first_step = step - 1
        self._buf[self._rows] = values
        self._probe[self._rows] = probe_stats
        self._rows += 1

    def flush(
        self, step: int, steps_per_epoch: int, lr: float, elapsed_s: float, world: int
    ) -> dict[str, Any]:
        """Copy the buffer to the host (one synchronisation; one all-reduce over processes),
        raise :class:`NonFiniteLossError` naming the first step and the terms that are not
        finite, else write a metrics row and return it (``{}`` when nothing was buffered)."""
        if self._rows == 0 or self._buf is None:
            return {}
        k, n = self._rows, len(self.names)
        both = torch.cat([self._buf[:k], self._probe[:k]], dim=1)
        both = all_sum(both).double().cpu()
        vals, probe = both[:, :n] / world, both[:, n:]
        self._rows = 0
        self._check_finite(vals, steps_per_epoch)
        now = time.monotonic()
        row: dict[str, Any] = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": lr}
        row.update({name: float(vals[:, j].mean()) for j, name in enumerate(self.names)})
        count = float(probe[:, 0].sum())
        for j, col in enumerate(self.probe_columns):
            row[col] = float(probe[:, 1 + j].sum()) / count if count else ""
        steps = step - self._first_step
        row["images_per_sec"] = round(
            steps * self.batch_size / max(now - self._window_start, 1e-9), 1
        )
        row["elapsed_s"] = round(elapsed_s, 2)
        self._window_start = now
        self.write_rows([row])
        return row

    def _check_finite(self, vals: Tensor, steps_per_epoch: int) -> None:
        bad = ~torch.isfinite(vals)
        checked = torch.tensor(self.checked, dtype=torch.bool)
        if not bool((bad & checked).any()):
            return
        i = int((bad & checked).any(dim=1).nonzero()[0])
        step = self._first_step + i + 1
        terms = ", ".join(
            f"{name}={float(vals[i, j])}" for j, name in enumerate(self.names) if bool(bad[i, j])
        )
        raise NonFiniteLossError(
            f"non-finite loss at step {step} (epoch {step / steps_per_epoch:.2f}): {terms}"
        )

    def write_rows(self, rows: list[dict[str, Any]], mode: str = "a") -> None:
        if self.run_dir is None or (not rows and mode == "a"):
            return
        if self.header is None:
            self.header = list(rows[0])
        path = self.run_dir / METRICS_FILE
        new = mode == "w" or not path.is_file() or path.stat().st_size == 0
        with open(path, mode, newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.header, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(rows)

    def truncate_after(self, step: int) -> None:
        """Drop the rows logged after ``step`` (a resumed run is about to log them again)."""
        if self.run_dir is None:
            return
        header, rows = read_metrics(self.run_dir / METRICS_FILE)
        if header:
            self.header = header
            self.write_rows([r for r in rows if int(r["step"]) <= step], mode="w")
