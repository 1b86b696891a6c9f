"""benchmarks/runinfo.py: the run metadata every benchmark records, and result files that never
overwrite an earlier run's."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "runinfo.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_runinfo", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_environment_records_the_machine_state():
    runinfo = _load()
    env = runinfo.Clock().environment()
    assert {"torch", "threads", "python", "load_average_start", "load_average_end"} <= set(env)
    assert env["threads"] >= 1 and env["wall_seconds"] >= 0


def test_results_in_a_folder_are_kept_from_run_to_run(tmp_path, capsys):
    runinfo = _load()
    out = tmp_path / "abl"
    runinfo.write_results(out, {"settings": {"wall_seconds": 60.0}, "rows": [1]}, "| a |\n")
    runinfo.write_results(out, {"settings": {"wall_seconds": 6.0}, "rows": [2]}, "| b |\n")
    assert json.loads((out / "results.json").read_text())["rows"] == [1]
    assert (out / "results.md").read_text() == "| a |\n"
    assert json.loads((out / "results-1.json").read_text())["rows"] == [2]
    assert (out / "results-1.md").read_text() == "| b |\n"
    printed = capsys.readouterr().out
    assert "| b |" in printed and "results-1.json" in printed and "wall time 1.0 min" in printed


def test_a_json_path_gets_its_markdown_beside_it(tmp_path):
    runinfo = _load()
    path = tmp_path / "speed.json"
    runinfo.write_results(path, {"variants": {}}, "table\n")
    assert json.loads(path.read_text()) == {"variants": {}}
    assert (tmp_path / "speed.md").read_text() == "table\n"
    (tmp_path / "speed-1.md").write_text("someone's notes")  # a taken name is skipped as a pair
    runinfo.write_results(path, {"variants": {"x": 1}}, "again\n")
    assert (tmp_path / "speed-1.md").read_text() == "someone's notes"
    assert json.loads((tmp_path / "speed-2.json").read_text()) == {"variants": {"x": 1}}
    assert (tmp_path / "speed-2.md").read_text() == "again\n"


def test_no_out_only_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _load().write_results(None, {}, "only printed\n")
    assert "only printed" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
