"""For every training command: Ctrl-C at an evaluating step and at a step between evaluations, then
``--resume``, writes the metrics.csv, prints the result and saves the weights of the run that was never
interrupted."""

import csv
import os
import signal

import pytest
import torch

from gseq.cli import main
from gseq.io import load_checkpoint
from gseq.train import Trainer

TEXT = "The king is asleep. The queen is awake and the cat is asleep too.\n" * 12
TEXT_ARGS = ["text", "train", "--steps", "12", "--seq-length", "8", "--batch-size", "4", "--hidden-size", "8",
             "--num-layers", "1", "--eval-every", "3", "--checkpoint-every", "4", "--sample-every", "0", "--no-progress",
             "--device", "cpu", "--threads", "1", "--dropout", "0.1"]
# each command, and its steps that evaluate and that lie between two evaluations
COMMANDS = {
    "text": (TEXT_ARGS, {"evaluating": 6, "between": 7}),
    "palindrome": (["palindrome", "train", "--cell", "lstm", "--length", "5", "--hidden-size", "8", "--max-steps",
                    "40", "--eval-every", "10", "--device", "cpu", "--threads", "1"], {"evaluating": 20, "between": 21}),
    "gcn": (["gcn", "--dataset", "karate", "--epochs", "12", "--device", "cpu", "--threads", "1"],
            {"evaluating": 5}),  # full-batch: every step evaluates
    # karate has 4 training nodes: with --batch-size 1 an epoch is 4 steps, evaluated at its end
    "gcn-minibatch": (["gcn", "--dataset", "karate", "--epochs", "4", "--batch-size", "1", "--num-neighbors", "3", "2",
                       "--device", "cpu", "--threads", "1"], {"evaluating": 8, "between": 6}),
    # chickenpox with --train 0.2: 93 training snapshots in windows of 25, 4 steps an epoch, evaluated at its end;
    # step 6 lies inside the second epoch, where the next window starts from the state carried out of step 6
    "temporal": (["temporal", "train", "--train", "0.2", "--val", "0.1", "--window", "25", "--epochs", "2",
                  "--hidden", "4", "--no-progress", "--device", "cpu", "--threads", "1"], {"evaluating": 4, "between": 6}),
    "temporal-lstm": (["temporal", "train", "--model", "gconv_lstm", "--train", "0.2", "--val", "0.1", "--window", "25",
                       "--epochs", "2", "--hidden", "4", "--no-progress", "--device", "cpu", "--threads", "1"],
                      {"between": 7}),  # a state (h, c)
}


def _interrupt_at(monkeypatch, step):
    class CtrlC:
        def on_step_end(self, trainer, at, logs):
            if at == step:
                os.kill(os.getpid(), signal.SIGINT)

    init = Trainer.__init__

    def patched(self, *args, callbacks=(), **kwargs):
        init(self, *args, callbacks=[*callbacks, CtrlC()], **kwargs)

    monkeypatch.setattr(Trainer, "__init__", patched)


def _metrics(folder):
    path = next(folder.rglob("metrics.csv"))
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def _weights(folder):
    return load_checkpoint(next(folder.rglob("checkpoint.pt")), map_location="cpu")["model"]


def _result(printed):  # the summary lines, without timings
    import re

    timing = r"\d+\.\d s\b|\d+(\.\d+)?s\b|, \d+ s,| \(resumed at [^)]*\)"
    return [re.sub(timing, "", line) for line in printed.splitlines() if line and not line.startswith("wrote")]


@pytest.mark.parametrize("command, kind", [(c, k) for c, (_, steps) in COMMANDS.items() for k in steps])
def test_ctrl_c_then_resume_gives_the_uninterrupted_run(command, kind, tmp_path, monkeypatch, capsys):
    argv, steps = COMMANDS[command]
    step = steps[kind]
    if command == "text":
        (tmp_path / "book.txt").write_text(TEXT)
        argv = [*argv, "--file", str(tmp_path / "book.txt")]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    full = capsys.readouterr().out
    with monkeypatch.context() as m:
        _interrupt_at(m, step)
        assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    assert "continue with --resume" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    resumed = capsys.readouterr().out
    assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "full")
    assert _result(resumed) == _result(full)
    full_weights, weights = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert list(weights) == list(full_weights)
    for name, value in weights.items():
        assert torch.equal(value, full_weights[name]), name
