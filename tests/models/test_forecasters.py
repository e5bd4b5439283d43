"""The forecasting models: the AR baseline against the normal equations, the forecaster's no-graph mode."""

import pytest
import torch

from gseq.data import lag_signal
from gseq.layers import GRAPH_CELLS
from gseq.models import GraphForecaster, LinearAR


def test_linear_ar_is_the_least_squares_solution_of_the_normal_equations():
    torch.manual_seed(0)
    series = torch.randn(60, 5, dtype=torch.float64).cumsum(0) * 0.1
    s = lag_signal(series, torch.zeros(2, 0, dtype=torch.long), lags=3, horizon=2)
    model = LinearAR.fit(s.x, s.y)
    a = torch.cat([s.x.reshape(-1, 3), torch.ones(s.x.size(0) * 5, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.solve(a.t() @ a, a.t() @ s.y.reshape(-1, 2))  # (A^T A)^-1 A^T y
    torch.testing.assert_close(model.weight, sol[:-1])
    torch.testing.assert_close(model.bias, sol[-1])


def test_linear_ar_recovers_a_noiseless_ar_process():
    torch.manual_seed(1)
    w = torch.tensor([0.2, -0.3, 0.9], dtype=torch.float64)
    series = torch.randn(3, 4, dtype=torch.float64)
    for _ in range(40):
        series = torch.cat([series, (series[-3:] * w.view(3, 1)).sum(0, keepdim=True) + 0.05])
    s = lag_signal(series, torch.zeros(2, 0, dtype=torch.long), lags=3)
    model = LinearAR.fit(s.x, s.y)
    torch.testing.assert_close(model.weight[:, 0], w)
    torch.testing.assert_close(model.bias, torch.tensor([0.05], dtype=torch.float64))


def test_forecaster_without_the_graph_runs_each_node_alone():
    torch.manual_seed(2)
    model = GraphForecaster("gconv_gru", 4, 8, horizon=2).double()
    ei = torch.tensor([[0, 1, 2, 1], [1, 0, 1, 2]])
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    alone, _ = model(x, model.graphs(ei, num_nodes=3, use_graph=False))
    for i in range(3):  # node i on a graph of its own gives the same forecast
        single, _ = model(x[:, i:i + 1], model.graphs(torch.zeros(2, 0, dtype=torch.long), num_nodes=1))
        torch.testing.assert_close(alone[:, i:i + 1], single)
    with_graph, _ = model(x, model.graphs(ei, num_nodes=3))
    assert with_graph.shape == (6, 3, 2) and not torch.allclose(with_graph, alone)


@pytest.mark.parametrize("cell", sorted(GRAPH_CELLS))
def test_a_forecaster_started_from_the_ar_model_forecasts_as_it_until_trained(cell):
    torch.manual_seed(3)
    series = torch.randn(30, 4, dtype=torch.float64).cumsum(0) * 0.2
    ei = torch.tensor([[0, 1, 2, 3, 1], [1, 2, 3, 0, 3]])
    s = lag_signal(series, ei, lags=3, horizon=2)
    ar = LinearAR.fit(s.x[:20], s.y[:20])
    model = GraphForecaster(cell, 3, 5, horizon=2).double().start_from(ar)
    graphs = model.graphs(s.edge_index, num_nodes=4)
    pred, _ = model(s.x, graphs)
    torch.testing.assert_close(pred, ar(s.x), rtol=0, atol=1e-12)
    loss = torch.mean((pred[:20] - s.y[:20]) ** 2)
    loss.backward()
    assert model.head.weight.grad.abs().sum() > 0  # the read-out moves first; the cell follows once it is nonzero
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    moved, _ = model(s.x, graphs)
    assert not torch.allclose(moved, ar(s.x))


def test_starting_from_the_ar_model_needs_the_skip_and_its_shape():
    ar = LinearAR(3, 2)
    with pytest.raises(ValueError, match="ar_skip"):
        GraphForecaster("gconv_gru", 3, 4, horizon=2, ar_skip=False).start_from(ar)
    with pytest.raises(ValueError, match="ar: expected an AR model of 4 lags"):
        GraphForecaster("gconv_gru", 4, 4, horizon=2).start_from(ar)


def test_dropout_acts_on_the_state_in_training_only():
    torch.manual_seed(4)
    x, ei = torch.randn(5, 3, 4, dtype=torch.float64), torch.tensor([[0, 1], [1, 2]])
    plain = GraphForecaster("tgcn", 4, 6, dropout=0.0).double()
    dropped = GraphForecaster("tgcn", 4, 6, dropout=0.5).double()
    dropped.load_state_dict(plain.state_dict())
    graphs = plain.graphs(ei, num_nodes=3)
    dropped.eval()
    torch.testing.assert_close(dropped(x, graphs)[0], plain(x, graphs)[0], rtol=0, atol=0)
    dropped.train()
    assert not torch.allclose(dropped(x, graphs)[0], plain(x, graphs)[0])
    with pytest.raises(ValueError, match="dropout"):
        GraphForecaster("tgcn", 4, 6, dropout=1.0)
