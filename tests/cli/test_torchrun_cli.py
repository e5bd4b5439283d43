"""`torchrun --nproc-per-node 2 -m gseq ...`: the training commands run once per rank and print one result."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                           "--master-port", str(port), "-m", "gseq", *args],
                          capture_output=True, text=True, env=env, timeout=180)


def test_palindrome_train_under_torchrun_prints_one_result_and_rank_0_writes(tmp_path):
    out = tmp_path / "run"
    done = torchrun("palindrome", "train", "--length", "5", "--max-steps", "20", "--eval-every", "10",
                    "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 1 and results[0]["steps"] == 20  # rank 0 alone prints
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.csv"]
    config = json.loads((out / "config.json").read_text())
    assert config["trainer"]["world_size"] == 2


def test_commands_that_do_not_train_refuse_torchrun(tmp_path):
    done = torchrun("hops", "example")
    assert done.returncode != 0
    assert "`gseq hops example` does not run distributed" in done.stderr
