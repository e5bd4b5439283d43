"""A training run stopped from outside: Ctrl-C saves and exits 130 with one line; a kill -9 loses nothing
already saved; the next run removes the temporary files a killed save leaves behind and resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gseq.cli import main

REPO = Path(__file__).resolve().parents[2]
TEXT = "The king is asleep. The queen is awake and the cat is asleep too.\n" * 12
TINY = ["--seq-length", "8", "--batch-size", "4", "--hidden-size", "8", "--num-layers", "1", "--eval-every", "1",
        "--checkpoint-every", "1", "--sample-every", "0", "--no-progress", "--device", "cpu", "--threads", "1"]


def _train_then_signal(tmp_path, sig):
    book = tmp_path / "book.txt"
    book.write_text(TEXT)
    out = tmp_path / "run"
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "gseq", "text", "train", "--file", str(book), "--steps", "1000000",
                             "--out", str(out), *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").is_file():  # training has started once the first checkpoint exists
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run did not start within 120 s"
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return book, out, proc.returncode, stderr


def _resume(book, out, steps):
    return main(["text", "train", "--file", str(book), "--steps", str(steps), "--out", str(out), "--resume", *TINY])


def test_ctrl_c_saves_a_checkpoint_and_exits_130_with_one_line(tmp_path, capsys):
    book, out, code, stderr = _train_then_signal(tmp_path, signal.SIGINT)
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert last == (f"gseq text train: interrupted: stopped after step {step}; checkpoint saved to {out / 'checkpoint.pt'} "
                    "(continue with --resume)")
    assert _resume(book, out, step + 2) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == step + 2


def test_kill_9_loses_nothing_saved_and_stale_temp_files_go(tmp_path):
    book, out, code, stderr = _train_then_signal(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]  # the last checkpoint reads back whole
    # what a kill during a save leaves behind (the kill above may or may not have hit one), and files not ours
    # one rule for every file gseq writes: samples.csv and loss.png temps go too
    stale = [out / ".checkpoint.pt.k1ll3d_x.tmp", out / ".metrics.csv.abcd1234.tmp", out / ".samples.csv.abcd1234.tmp",
             out / ".loss.png.abcd1234.tmp"]
    kept = [out / ".checkpoint.pt.notours.tmp", out / "notes.tmp", out / ".notes.txt.abcd1234.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
    assert _resume(book, out, step + 1) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint.pt.") and p not in kept]
