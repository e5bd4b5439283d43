import pytest
import torch
from torch import nn

from gseq.data import palindromes
from gseq.models import SequenceClassifier


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
