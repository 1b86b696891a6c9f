"""Data-parallel training: the same maths with 1 or N processes (gloo on 127.0.0.1, CPU).

Gradients: every method's loss and parameter gradients on a global batch, split over 2
processes (candidates gathered with autograd, batch norm synchronised, gradients averaged), equal
those of one process on the whole batch. Training: ``infomax train --nproc 2`` logs the same
losses and ends with the same weights as one process. Longer end-to-end checks (two torchrun
"nodes", a worker killed with SIGKILL and restarted) are marked slow.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from infomax import distributed
from infomax.distributed import SINGLE, BatchGroup, CPUSyncBatchNorm, World
from infomax.objectives.base import StepContext
from infomax.rng import BatchRandom

# ----------------------------------------------------------------------------- pieces


def test_batch_random_slices_are_the_global_draw():
    full = BatchRandom(3, 7, 8).uniform((2 * 8, 3), torch.device("cpu"))
    parts = [BatchRandom(3, 7, 8, 4 * r, 4 * r + 4).uniform((2 * 4, 3), torch.device("cpu"))
             for r in range(2)]  # fmt: skip
    # two stacked blocks (AMDIM's views): block b of rank r = rows [8b + 4r, 8b + 4r + 4)
    for r in range(2):
        for b in range(2):
            assert torch.equal(parts[r][4 * b : 4 * b + 4], full[8 * b + 4 * r : 8 * b + 4 * r + 4])
    a = BatchRandom(3, 7, 8, 0, 4)
    b = BatchRandom(3, 7, 8, 4, 8)
    shared = [g.shared_randint(0, 100, (5,), torch.device("cpu")) for g in (a, b)]
    assert torch.equal(*shared)
    other_step = BatchRandom(3, 8, 8).uniform((8, 3), torch.device("cpu"))
    assert not torch.equal(other_step, full[:8])
    with pytest.raises(ValueError, match="multiple of the local batch"):
        a.uniform((6,), torch.device("cpu"))


def test_positive_mask_marks_each_anchor_own_candidate():
    assert SINGLE.positive_mask(4, torch.device("cpu")) is None
    mask = BatchGroup(1, 3).positive_mask(2, torch.device("cpu"), trailing=1)
    assert mask.shape == (2, 6, 1)
    assert mask[:, :, 0].nonzero().tolist() == [[0, 2], [1, 3]]


def test_cpu_sync_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(5)
    sync = distributed.convert_sync_batchnorm(torch.nn.Sequential(bn), torch.device("cpu"))[0]
    assert isinstance(sync, CPUSyncBatchNorm) and sync.weight is bn.weight
    x = torch.randn(6, 5, 3, 3)
    assert torch.equal(sync(x), torch.nn.BatchNorm2d(5)(x))


def test_world_from_env_and_agree_without_processes(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert World.from_env() == World(1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        World.from_env()
    assert distributed.agree(True, False) == (True, False)


# ----------------------------------------------------------------------------- gradients


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _methods() -> dict[str, torch.nn.Module]:
    from infomax.objectives.amdim import AMDIM
    from infomax.objectives.dim import DIM

    out = {}
    torch.manual_seed(0)
    out["dim_l_nce"] = DIM(encoder="dim32-tiny", estimator="infonce", mi_units=32, alpha=0.0,
                           beta=1.0, gamma=0.0, prior="none")  # fmt: skip
    torch.manual_seed(0)
    out["dim_gl_jsd_adversarial"] = DIM(
        encoder="dim32-tiny", estimator="jsd", mi_units=32, alpha=0.5, beta=1.0, gamma=0.1,
        prior="adversarial",
    )
    torch.manual_seed(0)
    out["dim_l_dv_concat"] = DIM(encoder="dim32-tiny", estimator="dv", critic="concat",
                                 alpha=0.0, beta=1.0, gamma=0.0, prior="none")  # fmt: skip
    torch.manual_seed(0)
    out["amdim_mixtures"] = AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, n_depth=1,
                                  n_mixtures=2, use_bn=True)  # fmt: skip
    return out


def _images(n: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def _losses_and_grads(method, images, group: BatchGroup, n_global: int, start: int):
    """Loss, aux loss and the gradient of each (into its own parameters) for one batch."""
    ctx = StepContext(0, BatchRandom(0, 0, n_global, start, start + images.shape[0]), group)
    out = method.training_losses(images, ctx)
    aux_ids = {id(p) for p in method.aux_parameters()}
    main = [p for p in method.parameters() if id(p) not in aux_ids]
    grads = torch.autograd.grad(out.loss, main, retain_graph=True, allow_unused=True)
    names = [n for n, p in method.named_parameters() if id(p) not in aux_ids]
    result = {f"grad/{n}": g for n, g in zip(names, grads) if g is not None}
    result["loss"] = out.loss.detach()
    if out.aux_loss is not None:
        aux = method.aux_parameters()
        names = [n for n, p in method.named_parameters() if id(p) in aux_ids]
        for n, g in zip(names, torch.autograd.grad(out.aux_loss, aux)):
            result[f"aux/{n}"] = g
        result["aux_loss"] = out.aux_loss.detach()
    return result


def _grad_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"), World(rank, world))
    try:
        x = _images()
        n = x.shape[0] // world
        for name, method in _methods().items():
            method = distributed.convert_sync_batchnorm(method, torch.device("cpu"))
            res = _losses_and_grads(method, x[rank * n : (rank + 1) * n], BatchGroup.current(),
                                    x.shape[0], rank * n)  # fmt: skip
            for v in res.values():  # what the trainer does: average over processes
                distributed.all_mean(v)
            if rank == 0:
                np.savez(Path(out_dir) / f"{name}.npz", **{k: v.numpy() for k, v in res.items()})
    finally:
        distributed.shutdown()


def _spawn(fn, world: int, *args) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=fn, args=(r, world, *args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]


def test_losses_and_gradients_match_one_process(tmp_path):
    """2 gloo processes, 4 images each, against 1 process with the 8: DIM(L) InfoNCE, DIM(G+L)
    JSD with the adversarial prior (and its discriminator's gradients), DIM(L) DV with the concat
    critic (shuffled negatives from the global batch), AMDIM with mixtures and batch norm."""
    _spawn(_grad_worker, 2, _free_port(), str(tmp_path))
    x = _images()
    for name, method in _methods().items():
        ref = _losses_and_grads(method, x, SINGLE, x.shape[0], 0)
        got = dict(np.load(tmp_path / f"{name}.npz"))
        assert set(got) == set(ref), name
        scale = max(float(v.norm()) for k, v in ref.items() if "/" in k)
        for key, want in ref.items():
            diff = float((torch.from_numpy(got[key]) - want).norm())
            # relative, with a floor for gradients that are zero but for rounding (a bias
            # followed by batch norm)
            assert diff <= 1e-4 * float(want.norm()) + 1e-6 * scale, (name, key, diff)


# ----------------------------------------------------------------------------- training


def _cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infomax", "train", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip


TINY_DIM = [
    "--config", "dim_l_nce_cifar10_cpu", "train.time_budget_minutes=null",  # a DIM(L) recipe
    "model.encoder=dim32-tiny", "model.mi_units=32", "model.estimator=infonce",
    "model.alpha=0.5", "model.beta=1.0", "model.gamma=0.1", "model.prior=adversarial",
    "data.dataset=synthetic", "data.train_subset=512", "train.batch_size=16", "train.lr=1e-4",
    "train.precision=fp32", "train.log_every=1", "train.device=cpu", "--no-eval", "-q",
]  # fmt: skip


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "last.pt", weights_only=True)
    return {k: v.float() for k, v in ckpt["model"].items() if v.is_floating_point()}


def _loss_free_parameters(run: Path) -> set[str]:
    """Parameters whose gradient is zero but for rounding (a bias right before batch norm; a
    shift of every candidate embedding, which the softmax over candidates cancels): Adam turns
    their rounding noise into steps of about the learning rate, so they drift apart between any
    two runs that round differently (1 or 2 processes, or 1 or 2 threads); the loss, and the
    function the network computes, do not depend on them."""
    from infomax.training import load_run

    method, _ = load_run(run)
    method.train()
    out = method.training_losses(_images(16))
    aux = {id(p) for p in method.aux_parameters()}
    named = [(n, p) for n, p in method.named_parameters() if id(p) not in aux]
    grads = torch.autograd.grad(out.loss, [p for _, p in named], allow_unused=True)
    norms = {n: 0.0 if g is None else float(g.norm()) for (n, _), g in zip(named, grads)}
    scale = max(norms.values())
    return {n for n, v in norms.items() if v <= 1e-6 * scale}


def _assert_same_training(a: Path, b: Path, tol: float = 1e-4) -> None:
    """The same logged losses at every step, and the same trained parameters (relative norm of
    the difference), but those the loss does not depend on; bit-for-bit with ``tol=0``."""
    ra, rb = _rows(a), _rows(b)
    assert len(ra) == len(rb) > 0
    for x, y in zip(ra, rb):
        for col in ("loss", "aux_loss"):
            assert float(y[col]) == pytest.approx(float(x[col]), rel=tol, abs=0), (x["step"], col)
    free = _loss_free_parameters(a)
    assert len(free) <= 8, free  # a handful of biases, not the network
    wa, wb = _weights(a), _weights(b)
    ckpt = torch.load(a / "last.pt", weights_only=True)
    params = [k for k in wa if k not in free and "running_" not in k and "num_batches" not in k]
    assert len(params) > 20
    num = sum(float((wa[k] - wb[k]).square().sum()) for k in params)
    den = sum(float(wa[k].square().sum()) for k in params)
    assert (num / den) ** 0.5 <= tol, (num / den) ** 0.5
    assert ckpt["step"] == torch.load(b / "last.pt", weights_only=True)["step"]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory) -> Path:
    """20 steps of DIM(G+L) with the adversarial prior in one process: the reference."""
    run = tmp_path_factory.mktemp("distributed") / "one"
    res = _cli(*TINY_DIM, "train.max_steps=20", "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-2000:]
    return run


def test_nproc_2_trains_like_one_process(tmp_path, one_process_run):
    """The same logged losses and final weights with ``--nproc 2`` as with one process (float32,
    the same global batch of 16 = 2 x 8)."""
    two = tmp_path / "two"
    res = _cli(*TINY_DIM, "train.max_steps=20", "--run-dir", str(two), "--nproc", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    _assert_same_training(one_process_run, two)
    ckpt = torch.load(two / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2


@pytest.mark.slow
def test_resume_with_another_number_of_processes(tmp_path, one_process_run):
    """8 steps with 2 processes, then ``--resume`` with 1 up to 20: what 1 process gives."""
    split = tmp_path / "split"
    res = _cli(*TINY_DIM, "train.max_steps=8", "--run-dir", str(split), "--nproc", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    res = _cli("--resume", str(split), "train.max_steps=20", "--no-eval", "-q")
    assert res.returncode == 0, res.stderr[-2000:]
    _assert_same_training(one_process_run, split)


def test_several_processes_need_a_run_dir(tmp_path, monkeypatch):
    from infomax.training import load_config, train

    monkeypatch.setenv("WORLD_SIZE", "2")  # checked before any collective could wait
    cfg = load_config(None, [f"run_dir={tmp_path}", "train.device=cpu"])
    with pytest.raises(ValueError, match="--run-dir"):
        train(cfg, progress=False, echo=False)


@pytest.mark.slow
def test_two_torchrun_nodes_on_localhost(tmp_path):
    """torchrun --nnodes 2 (one process each, c10d rendezvous on 127.0.0.1) trains like one
    process."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert _cli(*TINY_DIM, "train.max_steps=10", "--run-dir", str(one)).returncode == 0
    endpoint = f"127.0.0.1:{_free_port()}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
           "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "test",
           "-m", "infomax", "train", *TINY_DIM, "train.max_steps=10",
           "--run-dir", str(two)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300)[0] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), outs[0][-2000:] + outs[1][-2000:]
    _assert_same_training(one, two)


@pytest.mark.slow
def test_a_killed_worker_restarts_and_ends_bitwise_equal(tmp_path):
    """Under torchrun --max-restarts 1, SIGKILL one of 2 workers once a checkpoint exists: the
    group restarts, resumes from last.pt and ends with bitwise the weights of an uninterrupted
    2-process run."""
    args = [*TINY_DIM, "train.max_steps=60", "train.checkpoint_every=5"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    res = _cli(*args, "--run-dir", str(clean), "--nproc", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "infomax", "train", *args, "--run-dir", str(killed), "--nproc",
         "2", "--max-restarts", "1"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (killed / "last.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-f", "-P", str(launcher.pid), "infomax"],
                             capture_output=True, text=True).stdout.split()  # fmt: skip
    assert workers, "no worker found"
    os.kill(int(workers[-1]), signal.SIGKILL)
    try:
        out = launcher.communicate(timeout=300)[0]
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)  # leave no workers behind
        raise
    assert launcher.returncode == 0, out[-3000:]
    wa, wb = _weights(clean), _weights(killed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # bitwise, buffers included
    assert [r["loss"] for r in _rows(clean)] == [r["loss"] for r in _rows(killed)]
    assert "resumed" in (killed / "config.yaml").read_text()
