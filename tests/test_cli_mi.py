"""``infomax mi``: sample-file loading (io.py) and the command, in process and as a subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from infomax.cli.main import main
from infomax.estimators.io import MIN_SAMPLES, check_pair, load_pair, load_samples

RHO = 0.8
TRUE_MI = -0.5 * math.log(1 - RHO**2)


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1500)
    y = RHO * x + math.sqrt(1 - RHO**2) * rng.standard_normal(1500)
    return x, y


# ------------------------------------------------------------------------------------------ io


def test_load_npy_1d_becomes_column(tmp_path, xy):
    np.save(tmp_path / "x.npy", xy[0])
    arr = load_samples(tmp_path / "x.npy")
    assert arr.shape == (1500, 1) and arr.dtype == np.float64


def test_load_npz_single_and_keyed(tmp_path, xy):
    np.savez(tmp_path / "one.npz", data=np.stack(xy, 1))
    assert load_samples(tmp_path / "one.npz").shape == (1500, 2)
    np.savez(tmp_path / "two.npz", x=xy[0], y=xy[1].astype(np.float32))
    assert load_samples(f"{tmp_path / 'two.npz'}:y").shape == (1500, 1)
    with pytest.raises(ValueError, match="holds 2 arrays"):
        load_samples(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="no array named 'z'"):
        load_samples(f"{tmp_path / 'two.npz'}:z")


def test_load_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n1,2\n3,4.5\n-1e-3,7\n")
    np.testing.assert_allclose(load_samples(tmp_path / "h.csv"), [[1, 2], [3, 4.5], [-1e-3, 7]])
    (tmp_path / "n.csv").write_text("1;2\n3;4\n")
    assert load_samples(tmp_path / "n.csv").shape == (2, 2)
    (tmp_path / "w.txt").write_text("1 2 3\n4 5 6\n")
    assert load_samples(tmp_path / "w.txt").shape == (2, 3)
    (tmp_path / "c.csv").write_text("value\n1\n2\n3\n")
    assert load_samples(tmp_path / "c.csv").shape == (3, 1)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_samples(tmp_path / "missing.npy")
    (tmp_path / "a.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="unknown sample file extension '.json'"):
        load_samples(tmp_path / "a.json")
    (tmp_path / "bad.csv").write_text("1,2\n3,abc\n")
    with pytest.raises(ValueError, match="non-numeric value 'abc' on data line 2"):
        load_samples(tmp_path / "bad.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(ValueError, match="columns"):
        load_samples(tmp_path / "ragged.csv")
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan, 3.0]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_samples(tmp_path / "nan.npy")
    np.save(tmp_path / "inf.npy", np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_samples(tmp_path / "inf.npy")
    np.save(tmp_path / "str.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="real numbers"):
        load_samples(tmp_path / "str.npy")
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="numeric"):
        load_samples(tmp_path / "obj.npy")


def test_pair_errors():
    a = np.zeros((20, 2))
    with pytest.raises(ValueError, match="20 samples .* but Y has 19"):
        check_pair(a, np.zeros(19))
    with pytest.raises(ValueError, match="at least 10"):
        check_pair(a[: MIN_SAMPLES - 1], a[: MIN_SAMPLES - 1])
    x, y = check_pair(np.arange(12), np.arange(12.0))
    assert x.shape == y.shape == (12, 1)


def test_load_pair(tmp_path, xy):
    np.save(tmp_path / "x.npy", xy[0])
    np.savetxt(tmp_path / "y.csv", xy[1][:100], delimiter=",")
    with pytest.raises(ValueError, match="1500 samples"):
        load_pair(tmp_path / "x.npy", tmp_path / "y.csv")


# ------------------------------------------------------------------------------------- command


def test_cli_ksg_text(tmp_path, xy, capsys):
    np.save(tmp_path / "x.npy", xy[0])
    np.save(tmp_path / "y.npy", xy[1])
    assert main(["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]) == 0
    out = capsys.readouterr().out
    assert "nats" in out and "bits" in out and "estimator ksg (continuous" in out
    assert "95% interval" in out
    value = float(out.split("=")[1].split()[0])
    assert value == pytest.approx(TRUE_MI, abs=0.06)


def test_cli_json_subprocess(tmp_path, xy):
    np.savez(tmp_path / "d.npz", x=xy[0], y=xy[1])
    proc = subprocess.run(
        [sys.executable, "-m", "infomax.cli.main", "mi", f"{tmp_path / 'd.npz'}:x",
         f"{tmp_path / 'd.npz'}:y", "--json", "-k", "4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)  # exactly one JSON object, nothing else on stdout
    assert d["estimator"] == "ksg" and d["n"] == 1500 and d["k"] == 4
    assert d["warnings"] == [] and d["reason"].startswith("continuous")
    assert d["interval"][0] < d["mi"] < d["interval"][1]
    assert d["mi"] == pytest.approx(TRUE_MI, abs=0.06)
    assert d["mi_bits"] == pytest.approx(d["mi"] / math.log(2))
    assert 0 < d["stderr"] < 0.1 and d["seconds"] > 0


def test_cli_csv_json(tmp_path, xy, capsys):
    np.savetxt(tmp_path / "x.csv", xy[0], header="x", comments="")
    np.savetxt(tmp_path / "y.csv", np.stack([xy[1], xy[1] ** 3], 1), delimiter=",")
    rc = main(["mi", str(tmp_path / "x.csv"), str(tmp_path / "y.csv"), "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["dim_y"] == 2 and d["mi"] == pytest.approx(TRUE_MI, abs=0.1)


def test_cli_bad_input_exit_2(tmp_path, xy, capsys):
    np.save(tmp_path / "x.npy", xy[0])
    np.save(tmp_path / "y.npy", xy[1][:-1])
    assert main(["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err
    assert "infomax mi: error:" in err and "1500 samples" in err
    assert main(["mi", str(tmp_path / "nope.npy"), str(tmp_path / "y.npy")]) == 2
    assert "nope.npy" in capsys.readouterr().err


def test_cli_bad_input_subprocess(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\nfoo,3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "infomax.cli.main", "mi", str(tmp_path / "x.csv"),
         str(tmp_path / "x.csv"), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "non-numeric value 'foo'" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_help_lists_estimators(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["mi", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("auto", "ksg", "plugin", "ross", "mixed", "infonce", "jsd", "dv", "mine", "nwj",
                 "smile", "--given", "--pairwise", "--permutations", "--discrete"):  # fmt: skip
        assert name in out


def test_cli_given_discrete_permutations(tmp_path, capsys):
    rng = np.random.default_rng(1)
    z = rng.integers(0, 3, 1200)
    x = z + rng.standard_normal(1200)
    y = z + rng.standard_normal(1200)
    for name, a in (("x", x), ("y", y), ("z", z)):
        np.save(tmp_path / f"{name}.npy", a)
    args = ["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--given",
            str(tmp_path / "z.npy"), "--permutations", "19", "--json"]  # fmt: skip
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["conditional"] and d["estimator"] == "mixed" and abs(d["mi"]) < 0.05
    assert d["p_value"] > 0.05 and d["given"].endswith("z.npy")
    assert main(args[:-1]) == 0
    out = capsys.readouterr().out
    assert "I(X;Y|Z)" in out and "permutation test of I = 0 (19 shuffles" in out


def test_cli_warnings_on_stderr_and_in_json(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 6))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", x + rng.standard_normal((500, 6)))
    argv = ["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-e", "ksg"]
    assert main(argv + ["--json"]) == 0
    cap = capsys.readouterr()
    d = json.loads(cap.out)
    assert any("12 dimensions" in w for w in d["warnings"])
    assert "infomax mi: warning: kNN estimate in 12 dimensions" in cap.err
    assert main(argv) == 0
    assert "[see warnings]" in capsys.readouterr().out


def test_cli_pairwise_csv_and_plot(tmp_path, capsys):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(600)
    table = np.c_[a, RHO * a + math.sqrt(1 - RHO**2) * rng.standard_normal(600),
                  rng.standard_normal(600), rng.integers(0, 3, 600)]  # fmt: skip
    np.savetxt(tmp_path / "t.csv", table, delimiter=",", header="a,b,c,d", comments="")
    out_csv, out_png = tmp_path / "mi.csv", tmp_path / "mi.png"
    argv = ["mi", str(tmp_path / "t.csv"), "--pairwise", "-o", str(out_csv), "--plot", str(out_png)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "(ksg)" in text and "(ross)" in text
    lines = out_csv.read_text().splitlines()
    assert lines[0] == ",a,b,c,d" and lines[1].startswith("a,,")
    assert float(lines[1].split(",")[2]) == pytest.approx(TRUE_MI, abs=0.08)
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    before = out_csv.read_text()
    assert main(argv) == 2  # never overwritten without --force
    assert "exists" in capsys.readouterr().err and out_csv.read_text() == before
    assert main(argv + ["--force", "--json"]) == 0
    pairs = json.loads(capsys.readouterr().out)["pairs"]
    assert len(pairs) == 6 and {p["estimator"] for p in pairs} == {"ksg", "ross"}


def test_cli_usage_errors(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros(20))
    assert main(["mi", str(tmp_path / "x.npy")]) == 2
    assert "give Y" in capsys.readouterr().err
    (tmp_path / "empty.npy").write_bytes(b"")
    assert main(["mi", str(tmp_path / "empty.npy"), str(tmp_path / "x.npy")]) == 2
    assert "empty file" in capsys.readouterr().err
    (tmp_path / "cut.npy").write_bytes(b"\x93NUMPY")
    assert main(["mi", str(tmp_path / "cut.npy"), str(tmp_path / "x.npy")]) == 2
    assert "truncated" in capsys.readouterr().err
