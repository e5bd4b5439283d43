"""The Trainer on torch.distributed: 2 gloo processes started as torchrun starts them (one per rank,
with WORLD_SIZE, RANK, LOCAL_RANK and a rendezvous address in the environment)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("dist_scenarios.py")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario: str, out: Path, world: int = 2, timeout: float = 120) -> list[dict]:
    """Run ``scenario`` in ``world`` processes (or one plain process for ``world=1``); their results."""
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")])
    base["OMP_NUM_THREADS"] = "1"
    procs = []
    for rank in range(world):
        env = dict(base)
        if world > 1:
            env.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, str(SCRIPT), scenario, str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + timeout
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"{scenario}: the ranks did not finish within {timeout} s")
    results = []
    for rank, (p, log) in enumerate(zip(procs, logs)):
        path = out / f"{scenario}_{world}_{rank}.json"
        results.append({**json.loads(path.read_text()), "log": log} if path.exists() else
                       {"returncode": p.returncode, "log": log})
    return results


def test_two_processes_equal_one_process_on_the_global_batches(tmp_path):
    one = run_ranks("exactness", tmp_path, world=1)[0]
    r0, r1 = run_ranks("exactness", tmp_path, world=2)
    # data parallelism is exact: per-rank batches of B through DDP == one process on batches of 2B
    assert torch.allclose(torch.tensor(r0["weights"]), torch.tensor(one["weights"]), atol=1e-6)
    assert r0["weights"] == r1["weights"]
    # metrics: a Mean adds sums and counts over ranks (1/3, not the mean of means 1/2); a plain number is rank 0's
    for r in (r0, r1):
        assert r["eval"]["exact"] == pytest.approx(1 / 3)
        assert r["eval"]["plain"] == 0.0
        # the training loss of a history row is averaged over both ranks' steps
        assert r["history"][-1]["loss"] == pytest.approx(r0["history"][-1]["loss"])
    # rank 0 alone writes; its checkpoint holds the bare module's parameter names
    assert r0["writers"] == ["save_checkpoint", "write_csv", "write_json"]
    assert r1["writers"] == []
    assert r0["ckpt_keys"] and not any(k.startswith("module.") for k in r0["ckpt_keys"])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "config.json", "metrics.csv"]


def test_a_resumed_distributed_run_continues_exactly_and_needs_the_same_world_size(tmp_path):
    r0, r1 = run_ranks("resume", tmp_path, world=2)
    for r in (r0, r1):
        assert r["step"] == 6
        assert r["resumed"] == r["straight"]  # bitwise: RNG states of every rank were restored
    # each rank drew its own data: the ranks' data streams differ, the DDP weights agree
    assert r0["resumed"] == r1["resumed"]
    ckpt = torch.load(tmp_path / "resume" / "checkpoint.pt", weights_only=True)
    assert len(ckpt["rng_ranks"]) == 2 and not torch.equal(ckpt["rng_ranks"][0]["generator"],
                                                           ckpt["rng_ranks"][1]["generator"])
    single = run_ranks("world_size_change", tmp_path, world=1)[0]
    assert single["error"] is not None and "world_size 2 there, 1 now" in single["error"]


def test_ctrl_c_on_one_rank_at_any_step_then_resume_is_the_uninterrupted_run(tmp_path):
    for r in run_ranks("interrupted", tmp_path, world=2):
        for data in ("sampler", "list"):
            runs = r[data]
            assert [s["interrupted"] for s in runs["stops"]] == [4, 5]  # every rank stopped at the same step
            assert runs["resumed"] == runs["straight"]  # rows (the interrupted steps' included), best, weights
            assert [row["step"] for row in runs["straight"]["rows"]][:3] == [2, 4, 6]


def test_a_killed_rank_stops_the_others_with_its_name_and_keeps_the_checkpoint(tmp_path):
    start = time.monotonic()
    r0, r1 = run_ranks("killed", tmp_path, world=2, timeout=90)
    assert r1.get("returncode") == 3  # it died
    assert r0["error"] is not None
    assert "lost contact with rank 1" in r0["error"], r0["error"]
    assert time.monotonic() - start < 60  # within the 20 s timeout plus start-up, not hanging
    ckpt = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] >= 2


def test_when_rank_0_dies_the_others_say_so_in_one_line(tmp_path):
    r0, r1 = run_ranks("killed_main", tmp_path, world=2, timeout=90)
    assert r0.get("returncode") == 3
    assert "lost contact with rank 0 (it hosts the process group's store)" in r1["error"], r1["error"]
    assert "frame #" not in r1["log"] and "Exception raised from" not in r1["log"], r1["log"][-2000:]


def test_forecasting_shards_windows_by_rank_as_the_plain_torch_reference_and_resumes_exactly(tmp_path):
    from dist_scenarios import FORECAST_RUNS

    g = torch.Generator().manual_seed(5)  # 40 weeks of 5 nodes on a ring: 36 snapshots of 4 lags
    series = (torch.sin(torch.arange(40.0)[:, None] / 3 + torch.arange(5.0)) + 0.3 * torch.randn(40, 5, generator=g))
    (tmp_path / "signal.json").write_text(json.dumps({"edges": [[i, (i + 1) % 5] for i in range(5)],
                                                      "X": series.tolist()}))
    reference = run_ranks("forecasting", tmp_path, world=1)[0]
    r0, r1 = run_ranks("forecasting", tmp_path, world=2, timeout=180)
    assert "resumed" in r0 and "resumed" in r1, (r0.get("log") or r1.get("log") or "")[-3000:]  # every run finished
    for name in FORECAST_RUNS:
        run, epochs = r0[name], reference[name]["2"]
        assert run["weights"] == r1[name]["weights"]  # the ranks agree
        # every epoch's validation MSE and the kept (best) weights are the reference's: each step the mean of
        # the two blocks' window losses, rank 1's block starting from the state built over rank 0's snapshots
        assert [float(row["val_mse"]) for row in run["rows"]] == pytest.approx([e["val_mse"] for e in epochs],
                                                                             rel=1e-5, abs=1e-7)
        best = min(range(len(epochs)), key=lambda e: epochs[e]["val_mse"])
        assert torch.allclose(torch.tensor(run["weights"]), torch.tensor(epochs[best]["weights"]), atol=1e-6)
        assert run["test_mse"] == pytest.approx(epochs[best]["test_mse"], rel=1e-5)
        # and differ from one block's run (the sharding is seen)
        assert not torch.allclose(torch.tensor(epochs[-1]["weights"]),
                                  torch.tensor(reference[name]["1"][-1]["weights"]), atol=1e-4)
    # Ctrl-C on rank 1 inside the second epoch, then resume: each rank continues from its own carried state
    assert r0["cut"] == r1["cut"] == {"interrupted": 5}
    assert r0["resumed"] == r0["window3"] and r1["resumed"]["weights"] == r1["window3"]["weights"]
