"""``infomax ica``: files in, sources / unmixing / mixing out, JSON summary, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infomax.cli.main import main
from infomax.ica import amari_distance


@pytest.fixture()
def mixture():
    rng = np.random.default_rng(0)
    s = np.c_[rng.laplace(size=3000), rng.uniform(-1, 1, size=3000), rng.laplace(size=3000)]
    a = rng.normal(size=(3, 3))
    return s @ a.T, a


def test_writes_sources_unmixing_mixing_and_json(tmp_path, mixture, capsys):
    x, a = mixture
    np.save(tmp_path / "x.npy", x)
    out, w_path, a_path = tmp_path / "s.npy", tmp_path / "w.npy", tmp_path / "a.npy"
    rc = main(["ica", str(tmp_path / "x.npy"), "-o", str(out), "--unmixing", str(w_path),
               "--mixing", str(a_path), "--json", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["converged"] is True and summary["iterations"] > 0
    assert summary["seconds"] > 0 and summary["sub_gaussian"] == 1
    assert summary["sources"] == str(out) and summary["unmixing"] == str(w_path)
    s, w, mixing = np.load(out), np.load(w_path), np.load(a_path)
    np.testing.assert_allclose(s, (x - x.mean(axis=0)) @ w.T, atol=1e-10)
    np.testing.assert_allclose(s @ mixing.T + x.mean(axis=0), x, atol=1e-8)
    assert amari_distance(w, a) < 0.01


def test_csv_and_npz_key_inputs_and_fewer_components(tmp_path, mixture, capsys):
    x, _ = mixture
    x5 = np.c_[x, x @ np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 1.0]])]  # rank 3 in 5 channels
    np.savetxt(tmp_path / "x.csv", x5, delimiter=",", header="a,b,c,d,e", comments="")
    assert main(["ica", str(tmp_path / "x.csv"), "-o", str(tmp_path / "s.csv"),
                 "--n-components", "3", "--device", "cpu", "-q"]) == 0  # fmt: skip
    assert "3 components from 5 channels" in capsys.readouterr().out
    assert np.loadtxt(tmp_path / "s.csv", delimiter=",").shape == (3000, 3)
    np.savez(tmp_path / "d.npz", x=x, other=np.ones(3))
    assert main(["ica", f"{tmp_path / 'd.npz'}:x", "-o", str(tmp_path / "s2.npy"),
                 "--no-extended", "--device", "cpu", "-q"]) == 0  # fmt: skip
    assert np.load(tmp_path / "s2.npy").shape == (3000, 3)


@pytest.mark.parametrize(
    "make,extra,message",
    [
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), [], "NaN"),
        (lambda x: x[:2], [], "more samples"),
        (lambda x: np.c_[x, x[:, 0] - x[:, 1]], [], "rank 3"),
        (lambda x: x, ["--n-components", "7"], "between 1 and 3"),
        (lambda x: np.c_[x, 2 * x[:, 2]], ["--n-components", "4"], "rank 3"),
    ],
)
def test_bad_data_is_a_clear_error(tmp_path, mixture, capsys, make, extra, message):
    np.save(tmp_path / "x.npy", make(mixture[0]))
    rc = main(["ica", str(tmp_path / "x.npy"), "-o", str(tmp_path / "s.npy"), "--device", "cpu",
               *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and message.split(" .*")[0] in err and "Traceback" not in err
    assert not (tmp_path / "s.npy").exists()


def test_never_replaces_a_file_without_force(tmp_path, mixture, capsys):
    np.save(tmp_path / "x.npy", mixture[0])
    (tmp_path / "s.npy").write_text("mine")
    args = ["ica", str(tmp_path / "x.npy"), "-o", str(tmp_path / "s.npy"), "--device", "cpu"]
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "s.npy").read_text() == "mine"
    assert main([*args, "--force", "-q"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3000, 3)
    assert main(["ica", str(tmp_path / "missing.npy"), "-o", str(tmp_path / "t.npy")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["ica", str(tmp_path / "x.npy"), "-o", str(tmp_path / "t.txt")]) == 2
    assert ".npy or .csv" in capsys.readouterr().err
