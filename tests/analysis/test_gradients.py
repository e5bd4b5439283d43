import pytest
import torch
import torch.nn.functional as F

from gseq.analysis import hidden_grad_norms
from gseq.data import palindromes
from gseq.models import SequenceClassifier


def test_rnn_without_recurrent_weights_has_zero_gradient_before_last_step():
    torch.manual_seed(0)
    model = SequenceClassifier("rnn", 16, input="onehot")
    with torch.no_grad():
        model.rnn.cell.weight_hh.zero_()
    x, y = palindromes(32, 9, generator=torch.Generator().manual_seed(1))
    norms = hidden_grad_norms(model, x, y)
    assert norms.shape == (8,)
    assert torch.equal(norms[:-1], torch.zeros(7))  # exactly zero: no path from h_t (t < T) to the loss
    assert norms[-1] > 0


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_last_step_gradient_matches_closed_form(cell):
    """dl_b/dh_T = W_ph^T (softmax(p_b) - e_{y_b}), so n_T is known in closed form."""
    torch.manual_seed(1)
    model = SequenceClassifier(cell, 12, input="onehot")
    x, y = palindromes(20, 6, generator=torch.Generator().manual_seed(2))
    norms = hidden_grad_norms(model, x, y)
    with torch.no_grad():
        p = torch.softmax(model(x), dim=-1) - F.one_hot(y, 10)
        expected = (p @ model.weight_ph).norm(dim=1).mean()
    torch.testing.assert_close(norms[-1], expected)


def test_norms_match_autograd_per_sample_and_leave_parameter_grads_alone():
    """n_t equals the batch mean of per-sample gradient norms computed one sample at a time."""
    torch.manual_seed(2)
    model = SequenceClassifier("lstm", 8, input="scalar", forget_bias=1.0)
    x, y = palindromes(5, 7, generator=torch.Generator().manual_seed(3))
    norms = hidden_grad_norms(model, x, y)
    assert all(p.grad is None for p in model.parameters())
    per_sample = torch.stack([hidden_grad_norms(model, x[b : b + 1], y[b : b + 1]) for b in range(5)])
    torch.testing.assert_close(norms, per_sample.mean(0))
    assert torch.all(norms > 0)


def test_bad_arguments():
    model = SequenceClassifier("rnn", 4)
    x, y = palindromes(3, 5)
    with pytest.raises(TypeError, match="model"):
        hidden_grad_norms(torch.nn.Linear(2, 2), x, y)
    with pytest.raises(ValueError, match="y"):
        hidden_grad_norms(model, x, y[:2])
    with pytest.raises(ValueError, match="y"):
        hidden_grad_norms(model, x, y.float())
    with pytest.raises(ValueError, match="x"):
        hidden_grad_norms(model, x.float(), y)
