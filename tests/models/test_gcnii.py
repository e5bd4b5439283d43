"""gseq.models.GCNII against the model of PyG's examples/gcn2_cora.py, its inference and param groups,
and the GCNII training task."""

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GCN2Conv

from gseq.data import karate
from gseq.models import GCNII, sparse_features
from gseq.models.gcnii import _dropout
from gseq.tasks.gcnii import train_gcnii


class PyGNet(torch.nn.Module):
    """The model of PyG's examples/gcn2_cora.py (GCN2Conv on edge_index, normalize=True)."""

    def __init__(self, f_in, classes, hidden, layers, alpha, theta):
        super().__init__()
        self.lins = torch.nn.ModuleList([torch.nn.Linear(f_in, hidden), torch.nn.Linear(hidden, classes)])
        self.convs = torch.nn.ModuleList(GCN2Conv(hidden, alpha, theta, i + 1) for i in range(layers))

    def forward(self, x, edge_index):
        x = x_0 = self.lins[0](x).relu()
        for conv in self.convs:
            x = conv(x, x_0, edge_index).relu()
        return self.lins[1](x)


@pytest.fixture(scope="module")
def graph():
    data = karate()
    data.x = torch.rand(data.num_nodes, 10, generator=torch.Generator().manual_seed(0))
    return data


@pytest.mark.parametrize("sparse", [False, True])
def test_matches_the_pyg_example_model_through_its_state_dict(graph, sparse):
    pyg = PyGNet(10, 4, 8, 6, 0.2, 0.5).eval()
    ours = GCNII(10, 4, hidden_channels=8, num_layers=6, alpha=0.2, theta=0.5).eval()
    ours.load_state_dict(pyg.state_dict())
    x = sparse_features(graph.x) if sparse else graph.x
    torch.testing.assert_close(ours(x, graph.edge_index), pyg(graph.x, graph.edge_index), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("self_loop_weight", [1.0, "learn"])
def test_inference_equals_forward_in_eval_mode(graph, self_loop_weight):
    model = GCNII(10, 4, hidden_channels=8, num_layers=5, self_loop_weight=self_loop_weight, cached=True)
    model(graph.x, graph.edge_index).sum().backward()  # training mode, dropout on: fills the cache
    expected = model.eval()(graph.x, graph.edge_index)
    model.train()
    torch.testing.assert_close(model.inference(graph, batch_size=7), expected)
    assert model.training  # inference leaves the mode as it was
    sparse = graph.clone()
    sparse.x = sparse_features(graph.x)
    torch.testing.assert_close(model.inference(sparse, batch_size=7), expected, atol=1e-6, rtol=1e-5)


def test_param_groups_gcnii_weight_decay():
    model = GCNII(10, 4, hidden_channels=8, num_layers=3, shared_weights=False, self_loop_weight="learn")
    groups = model.param_groups(0.01, 5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert all(decay[id(c.weight1)] == decay[id(c.weight2)] == 0.01 for c in model.convs)
    assert all(decay[id(p)] == 5e-4 for p in model.lins.parameters())
    assert all(decay[id(c.raw_self_loop_weight)] == 0.0 for c in model.convs)


def test_dropout_has_the_law_of_f_dropout():
    x = torch.ones(200_000, requires_grad=True)
    y = _dropout(x, 0.6, True)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 0.6) < 0.005  # 0.6 +- 4.6 standard deviations
    assert torch.allclose(y[y != 0], torch.tensor(2.5))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask / (1 - p)) / dx = mask / (1 - p)
    assert _dropout(x, 0.6, False) is x


def test_bad_arguments_name_the_argument(graph):
    with pytest.raises(ValueError, match="num_layers"):
        GCNII(10, 4, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        GCNII(10, 4, dropout=1.0)
    with pytest.raises(ValueError, match="alpha"):
        GCNII(10, 4, alpha=2.0)
    with pytest.raises(ValueError, match=r"x: expected shape \[N, 8\]"):
        GCNII(11, 4, hidden_channels=8, num_layers=2).convs[0](graph.x, graph.x, graph.edge_index)


def test_train_gcnii_stops_on_validation_loss(graph):
    data = graph.clone()
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(data.num_nodes, generator=g)
    for i, name in enumerate(("train_mask", "val_mask", "test_mask")):
        mask = torch.zeros(data.num_nodes, dtype=torch.bool)
        mask[order[i::3]] = True
        data[name] = mask
    r = train_gcnii(data, num_layers=4, hidden_channels=8, epochs=300, patience=5, seed=0, device="cpu")
    assert len(r["history"]) < 300  # stopped by patience
    losses = [row["val_loss"] for row in r["history"]]
    assert r["best_epoch"] == 1 + losses.index(min(losses))  # the epoch of the lowest validation loss
    assert r["test_acc"] == r["history"][r["best_epoch"] - 1]["test_acc"]
    assert len(r["self_loop_weights"]) == 4
    logits = r["model"].eval()(data.x, data.edge_index)
    assert F.cross_entropy(logits[data.val_mask], data.y[data.val_mask]).item() == pytest.approx(min(losses), rel=1e-4)
