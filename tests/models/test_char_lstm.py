"""The CharLSTM model and its loss; training, evaluation and loading are tested in tests/tasks/test_char_lm.py."""

import pytest
import torch
import torch.nn.functional as F

from gseq.models import CharLSTM, char_lm_loss


def test_forward_shapes_and_state_carry(device):
    model = CharLSTM(11, hidden_size=8, num_layers=2).to(device)
    x = torch.randint(11, (3, 10), device=device)
    logits, (h, c) = model(x)
    assert logits.shape == (3, 10, 11) and h.shape == c.shape == (2, 3, 8)
    first, state = model(x[:, :4])
    second, _ = model(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), logits)
    step_logits, _ = model.step(x[:, 4], state)
    torch.testing.assert_close(step_logits, second[:, 0])


def test_step_bias_replaces_the_read_out_bias():
    torch.manual_seed(1)
    model = CharLSTM(10, hidden_size=12, num_layers=2).double()
    ids = torch.tensor([1, 4])
    logits, state = model.step(ids)
    noise = torch.randn(2, 10, dtype=torch.float64)
    biased, state2 = model.step(ids, None, model.head.bias + noise)
    torch.testing.assert_close(biased, logits + noise)
    assert all(torch.equal(a, b) for a, b in zip(state, state2))


def test_onehot_embedding_equals_the_obvious_one_hot_lstm():
    torch.manual_seed(0)
    model = CharLSTM(7, hidden_size=5, num_layers=2).double()
    x = torch.randint(7, (2, 6))
    out, _ = model.lstm(F.one_hot(x, 7).double())
    torch.testing.assert_close(model(x)[0], model.head(out))
    assert "onehot" not in model.state_dict()  # the identity is not a parameter and not saved


def test_learned_embedding_and_gradcheck():
    torch.manual_seed(0)
    model = CharLSTM(5, hidden_size=3, num_layers=1, embedding="learned", embedding_dim=4).double()
    assert model.embed.weight.shape == (5, 4) and model.config["embedding_dim"] == 4
    x = torch.randint(5, (2, 3))
    h0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, c: model(x, (h, c))[0], (h0, c0))


def test_config_round_trip_and_bad_arguments():
    model = CharLSTM(9, hidden_size=6, num_layers=3, dropout=0.1)
    again = CharLSTM.from_config(model.config)
    assert again.config == model.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    for kwargs, match in ((dict(vocab_size=0), "vocab_size"), (dict(vocab_size=5, hidden_size=0), "hidden_size"),
                          (dict(vocab_size=5, dropout=1.0), "dropout"),
                          (dict(vocab_size=5, embedding="x"), "embedding")):
        with pytest.raises(ValueError, match=match):
            CharLSTM(**kwargs)
    with pytest.raises(ValueError, match="config"):
        CharLSTM.from_config({"vocab_size": 5, "layers": 2})
    with pytest.raises(TypeError, match=r"\[batch, time\]"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 8\]"):
        model(torch.full((1, 3), 9))


def test_loss_is_the_mean_cross_entropy_over_all_steps(device):
    torch.manual_seed(0)
    model = CharLSTM(6, hidden_size=4, num_layers=1).to(device)
    w = torch.randint(6, (3, 8), device=device)
    out = char_lm_loss(model, w)
    logits, _ = model(w[:, :-1])
    ref = sum(F.cross_entropy(logits[:, t], w[:, t + 1]) for t in range(7)) / 7
    torch.testing.assert_close(out["loss"], ref)
    assert 0 <= float(out["acc"]) <= 1
