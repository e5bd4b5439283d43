"""The palindrome task: a SequenceClassifier (fit_palindrome, train_palindrome) and a GCNNet on path graphs
(train_palindrome_gcn)."""

import csv

import pytest
import torch

from gseq.data import palindrome_graphs, palindromes
from gseq.models import GCNNet, SequenceClassifier
from gseq.tasks import (fit_palindrome, last_node_logits, palindrome_gcn_accuracy, train_palindrome,
                        train_palindrome_gcn)


# ---------------------------------------------------------------------- recurrent
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_course_setup_learns_length_5(cell):
    """Defaults of the course (scalar digits, RMSprop 1e-3, batch 128, hidden 128, clip 10) solve T=5."""
    result = train_palindrome(cell, 5, device="cpu", max_steps=1500, seed=0)
    assert result["stop_reason"] == "target" and result["eval_accuracy"] == 1.0
    assert result["accuracy"] >= 0.99  # on 2048 further fresh palindromes
    assert result["steps"] < 1500 and result["seconds"] > 0


def test_evaluation_does_not_change_the_training_stream(device):
    def run(eval_every):
        torch.manual_seed(0)
        model = SequenceClassifier("rnn", 16, input="onehot")
        fit_palindrome(model, 9, max_steps=6, eval_every=eval_every, device=device, seed=3)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(1), run(6))


def test_resumed_training_equals_uninterrupted(tmp_path, device):
    common = dict(cell="rnn", length=12, input="onehot", hidden_size=16, device=device, eval_every=5, seed=1)
    straight = train_palindrome(max_steps=40, out_dir=tmp_path / "a", **common)
    train_palindrome(max_steps=20, out_dir=tmp_path / "b", **common)
    resumed = train_palindrome(max_steps=40, out_dir=tmp_path / "b", resume=True, **common)
    assert resumed["steps"] == straight["steps"] == 40
    assert resumed["accuracy"] == straight["accuracy"]
    rows = [list(csv.DictReader(open(tmp_path / d / "metrics.csv"))) for d in "ab"]
    assert [r["accuracy"] for r in rows[0]] == [r["accuracy"] for r in rows[1]]
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]]


@pytest.mark.parametrize("kwargs, match", [
    ({"length": 1}, "length"),
    ({"batch_size": 0}, "batch_size"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"cell": "gru"}, "cell"),
])
def test_train_palindrome_bad_arguments(kwargs, match):
    args = {"cell": "rnn", "length": 5, "device": "cpu", "max_steps": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        train_palindrome(**args)


# ---------------------------------------------------------------------- GCN on path graphs
def test_last_node_logits_reads_each_graphs_last_node():
    batch = palindrome_graphs(*palindromes(5, 4))
    model = GCNNet(10, 10, num_layers=2, dropout=0.0)
    out = last_node_logits(model, batch)
    assert out.shape == (5, 10)
    torch.testing.assert_close(out, model(batch.x, batch.edge_index)[[3, 7, 11, 15, 19]])


def test_gcn_accuracy_leaves_the_mode_alone():
    model = GCNNet(10, 10, num_layers=1, dropout=0.5)
    model.train()
    acc = palindrome_gcn_accuracy(model, 4, 100, generator=torch.Generator().manual_seed(0), chunk=32)
    assert 0.0 <= acc <= 1.0 and model.training


def test_depth_T_minus_1_learns_and_shallower_cannot():
    length = 4
    deep = train_palindrome_gcn(length, length - 1, hidden_channels=16, self_loop_weight=0.1, max_steps=150,
                                eval_size=256, test_size=512, device="cpu")
    assert deep["accuracy"] > 0.95 and deep["stop_reason"] == "target", deep
    shallow = train_palindrome_gcn(length, length - 2, hidden_channels=16, self_loop_weight=0.1, max_steps=30,
                                   test_size=2048, device="cpu")
    # the first digit is out of reach: chance is 0.1 (2048 test samples: std 0.0066)
    assert shallow["accuracy"] < 0.14 and shallow["steps"] == 30, shallow
    assert shallow["self_loop_weights"] == pytest.approx([0.1, 0.1])
    assert {"seconds", "eval_accuracy", "length", "num_layers", "seed", "wall_seconds"} <= set(shallow)


def test_gcn_training_is_reproducible_from_the_seed():
    runs = [train_palindrome_gcn(4, 3, hidden_channels=8, max_steps=5, eval_every=5, test_size=64, seed=3,
                                 device="cpu") for _ in range(2)]
    assert runs[0]["accuracy"] == runs[1]["accuracy"] and runs[0]["eval_accuracy"] == runs[1]["eval_accuracy"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"length": 1}, ValueError, "length"),
    ({"num_layers": 0}, ValueError, "num_layers"),
    ({"num_layers": 2.0}, ValueError, "num_layers"),
    ({"hidden_channels": 0}, ValueError, "hidden_channels"),
    ({"hidden_channels": 2.5}, ValueError, "hidden_channels"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"directed": "no"}, TypeError, "directed"),
    ({"act": "gelu"}, ValueError, "act"),
    ({"self_loop_weight": -1.0}, ValueError, "self_loop_weight"),
])
def test_train_palindrome_gcn_bad_arguments_name_themselves(kwargs, error, match):
    with pytest.raises(error, match=match):
        train_palindrome_gcn(**{"length": 4, "num_layers": 3, "max_steps": 1, "device": "cpu", **kwargs})
