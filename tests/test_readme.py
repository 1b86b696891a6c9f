"""The README's Python tour runs as written and prints what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)  # the tour writes runs/tour
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert float(lines[0]) == pytest.approx(0.531, abs=1e-3)  # 1 - H2(0.1) bits
    assert float(lines[1]) == pytest.approx(0.511, abs=0.05)  # KSG on 2000 Gaussian pairs
    assert (tmp_path / "runs" / "tour" / "last.pt").is_file()
    assert namespace["features"]["y"].shape == (8, 64)
