"""benchmarks/gpu_check.py: the GPU check's smoke run on the CPU (every part at tiny sizes), so the
script that a session with a GPU runs once cannot rot; its time guard; its refusal to run the GPU
sizes on a machine without CUDA unless asked."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import gpu_check


def _read(folder):
    (path,) = folder.glob("gpu_check*.json")
    assert not list(folder.glob("gpu_check-partial-*")), "the partial file is removed at the end"
    return json.loads(path.read_text()), path.with_suffix(".md").read_text()


def test_smoke_run_covers_every_part(tmp_path):
    assert gpu_check.main(["--smoke", "--out", str(tmp_path)]) == 0
    res, md = _read(tmp_path)
    parts = res["parts"]
    for name in ("dim_speed", "amdim_speed", "memory", "amdim_training"):
        assert isinstance(parts[name], dict), f"{name}: {parts[name]}"
    assert res["settings"]["skipped"] == {}

    dim = parts["dim_speed"]["variants"]
    assert set(dim) == {"reference", "infomax-2048"}
    # the same weights and batch give the same DIM(L)-NCE loss (up to the reference's masked terms)
    assert dim["infomax-2048"]["first_step_rel_diff"] < 1e-5
    amdim = parts["amdim_speed"]["variants"]
    assert set(amdim) == {"reference", "infomax", "infomax-bf16-cl-compile", "infomax-sep"}
    assert amdim["infomax-sep"]["check_only"]
    assert amdim["infomax-sep"]["first_step_rel_diff"] < 1e-5  # one encoder call per view
    # joint views pool batch-norm statistics over both views: close, not equal, at batch 4
    assert 0 < amdim["infomax"]["first_step_rel_diff"] < 0.05
    for variants, steps in ((dim, 1 + 1 + 2), (amdim, 1 + 1 + 2)):
        for name, r in variants.items():
            if r.get("check_only"):
                continue
            assert len(r["images_per_sec_rounds"]) == 2 and r["images_per_sec"] > 0
            assert len(r["train_losses"]) == steps  # first step, warm-up, 2 rounds x 1 step
            assert all(math.isfinite(x) for x in r["train_losses"])
            assert r["memory"] == {"peak_mib": None, "step_mib": None}  # CUDA only
            assert r["host_sync"] is None
            assert name == "reference" or isinstance(r["meets_target"], bool)
    assert amdim["reference"]["ratio_to_reference"] == 1.0
    assert parts["amdim_speed"]["ceiling"]["step_gflop"]["reference"] > 0

    mem = parts["memory"]
    assert set(mem["dim"]) == {"reference", "infomax-2048"}
    assert set(mem["amdim"]) == {"reference", "infomax"}  # compiled variants are not rebuilt
    assert mem["amdim"]["infomax"]["4"] == {"peak_mib": None}

    tr = parts["amdim_training"]
    assert tr["steps"] == 3 and tr["stopped"] == "max_steps"
    assert tr["num_train"] == 64 and tr["num_test"] == 64
    for model in ("trained", "random"):
        acc = tr["eval"][model]["taps"]["features"]["linear"]["test_acc"]
        assert 0.0 <= acc <= 1.0
    for title in ("### DIM(L) training speed", "### AMDIM training speed",
                  "### Peak memory against batch size", "linear random"):  # fmt: skip
        assert title in md
    assert res["machine"]["device"] == "cpu" and res["machine"]["date_utc"]


def test_a_failing_variant_or_measurement_is_recorded_not_fatal(tmp_path, monkeypatch):
    # the GPU run happens once: a compiler missing there, or a measurement that breaks, must
    # cost one row or one number, not the part
    def no_compiler(variant, backend):
        def fail(*args, **kwargs):
            raise RuntimeError("no C compiler found")

        variant.model.encoder.forward = fail

    monkeypatch.setattr(gpu_check, "compile_encoder", no_compiler)
    monkeypatch.setattr(gpu_check.amdim_speed, "step_gflop", lambda *args: 1 / 0)
    assert gpu_check.main(["--smoke", "--parts", "amdim_speed", "--out", str(tmp_path)]) == 0
    res, md = _read(tmp_path)
    part = res["parts"]["amdim_speed"]
    assert part["dropped"] == {"infomax-bf16-cl-compile": "RuntimeError: no C compiler found"}
    assert set(part["variants"]) == {"reference", "infomax", "infomax-sep"}
    assert part["ceiling"]["error"].startswith("ZeroDivisionError")
    assert "infomax-bf16-cl-compile was dropped: RuntimeError: no C compiler found" in md
    assert res["parts"]["dim_speed"] == "not asked for (--parts)"


def test_time_guard_skips_parts_and_says_so(tmp_path):
    assert gpu_check.main(["--smoke", "--budget-seconds", "0", "--out", str(tmp_path)]) == 0
    res, md = _read(tmp_path)
    for name in ("dim_speed", "amdim_speed", "memory", "amdim_training"):
        assert res["parts"][name].startswith("skipped: the 0 s budget is used up")
        assert res["settings"]["skipped"][name] == res["parts"][name]
    assert md.count("skipped: the 0 s budget is used up") == 4


def test_guard_needs_the_parts_minimum(tmp_path):
    clock = gpu_check.Clock()
    guard = gpu_check.Guard(clock, 60.0, dict.fromkeys(gpu_check.MIN_SECONDS, 100.0))
    assert guard.start("amdim_speed", smoke=False) is None  # needs 75 s
    assert "needs at least 75 s" in guard.skipped["amdim_speed"]
    deadline = guard.start("memory", smoke=False)
    assert deadline is not None and deadline <= 60.0  # not after the budget's end


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_sizes_without_cuda_are_refused(capsys):
    with pytest.raises(SystemExit):
        gpu_check.main([])
    assert "no CUDA device here" in capsys.readouterr().err
