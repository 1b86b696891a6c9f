"""benchmarks/harness.py: the run metadata every benchmark records, result files that never
overwrite an earlier run's, the speed harness and the throughput of a run."""

from __future__ import annotations

import json

import torch

from benchmarks import harness


def test_environment_records_the_machine_state():
    env = harness.Clock().environment()
    assert {"torch", "threads", "python", "load_average_start", "load_average_end"} <= set(env)
    assert env["threads"] >= 1 and env["wall_seconds"] >= 0


def test_results_in_a_folder_are_kept_from_run_to_run(tmp_path, capsys):
    out = tmp_path / "abl"
    harness.write_results(out, {"settings": {"wall_seconds": 60.0}, "rows": [1]}, "| a |\n")
    harness.write_results(out, {"settings": {"wall_seconds": 6.0}, "rows": [2]}, "| b |\n")
    assert json.loads((out / "results.json").read_text())["rows"] == [1]
    assert (out / "results.md").read_text() == "| a |\n"
    assert json.loads((out / "results-1.json").read_text())["rows"] == [2]
    assert (out / "results-1.md").read_text() == "| b |\n"
    printed = capsys.readouterr().out
    assert "| b |" in printed and "results-1.json" in printed and "wall time 1.0 min" in printed


def test_a_json_path_gets_its_markdown_beside_it(tmp_path):
    path = tmp_path / "speed.json"
    harness.write_results(path, {"variants": {}}, "table\n")
    assert json.loads(path.read_text()) == {"variants": {}}
    assert (tmp_path / "speed.md").read_text() == "table\n"
    (tmp_path / "speed-1.md").write_text("someone's notes")  # a taken name is skipped as a pair
    harness.write_results(path, {"variants": {"x": 1}}, "again\n")
    assert (tmp_path / "speed-1.md").read_text() == "someone's notes"
    assert json.loads((tmp_path / "speed-2.json").read_text()) == {"variants": {"x": 1}}
    assert (tmp_path / "speed-2.md").read_text() == "again\n"


def test_no_out_only_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    harness.write_results(None, {}, "only printed\n")
    assert "only printed" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


class _Counter:
    """A variant whose loss is the number of steps it has made."""

    def __init__(self, name: str) -> None:
        self.name, self.n, self.speeds, self.losses = name, 0, [], []

    def step(self, batch: torch.Tensor) -> torch.Tensor:
        self.n += 1
        return torch.tensor(float(self.n))


def test_timed_rounds_give_every_variant_the_same_steps_and_ratios(tmp_path):
    variants = [_Counter("a"), _Counter("b")]
    batches = [torch.zeros(4)] * 7
    harness.timed_rounds(variants, batches, rounds=3, steps=2, warmup=1, images_per_batch=4,
                         device=torch.device("cpu"), log=None)  # fmt: skip
    for v in variants:
        assert v.losses == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] and len(v.speeds) == 3
    summary = harness.speed_summary(variants)
    assert summary["a"]["ratio_rounds"] == [1.0, 1.0, 1.0]
    assert summary["b"]["images_per_sec"] > 0


def test_throughput_of_a_metrics_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss,images_per_sec\n10,2.0,5\n20,1.5,100\n30,1.0,300\n")
    assert harness.throughput(path) == {"images_per_sec": 200.0, "steps": 30, "loss": 1.0}
    assert harness.throughput(tmp_path / "none.csv")["steps"] == 0
