import csv

import pytest
import torch
from torch import nn

from gseq.data import palindromes
from gseq.models import SequenceClassifier, fit_palindrome, train_palindrome



@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("input", ["scalar", "onehot"])
def test_forward_shapes_and_explicit_parameters(cell, input, device):
    model = SequenceClassifier(cell, 16, input=input).to(device)
    x, _ = palindromes(3, 6, device=device)
    assert model(x).shape == (3, 10)
    assert model.encode(x).shape == (3, 5, 1 if input == "scalar" else 10)
    banned = (nn.Linear, nn.RNNBase, nn.RNNCellBase)
    assert not any(isinstance(m, banned) for m in model.modules())
    names = {n for n, _ in model.named_parameters()}
    assert {"weight_ph", "bias_p", "rnn.cell.weight_ih", "rnn.cell.weight_hh"} <= names


def test_scalar_input_is_the_digit_and_onehot_has_ten_channels():
    x = torch.tensor([[3, 0, 9]])
    scalar = SequenceClassifier("rnn", 4, input="scalar").encode(x)
    assert torch.equal(scalar, torch.tensor([[[3.0], [0.0], [9.0]]]))
    onehot = SequenceClassifier("rnn", 4, input="onehot").encode(x)
    assert torch.equal(onehot.argmax(-1), x) and torch.equal(onehot.sum(-1), torch.ones(1, 3))


def test_readout_uses_the_last_hidden_state(device):
    torch.manual_seed(0)
    model = SequenceClassifier("lstm", 8, input="onehot").to(device)
    x, _ = palindromes(4, 7, device=device)
    out, _ = model.rnn(model.encode(x))
    expected = out[:, -1] @ model.weight_ph.t() + model.bias_p
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"cell": "gru"}, "cell"),
    ({"input": "embedding"}, "input"),
    ({"init": "uniform"}, "init"),
    ({"cell": "rnn", "forget_bias": 1.0}, "forget_bias"),
    ({"hidden_size": 0}, "hidden_size"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceClassifier(**kwargs)


@pytest.mark.parametrize("x, match", [
    (torch.zeros(2, 4), "integer"),
    (torch.zeros(2, 4, 1, dtype=torch.long), "shape"),
    (torch.full((2, 4), 10), "0..9"),
    (torch.full((2, 4), -1), "0..9"),
])
def test_bad_input(x, match):
    with pytest.raises(ValueError, match=f"x: .*{match}"):
        SequenceClassifier("lstm", 4)(x)


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
