"""GCNNet.inference (exact layer-wise evaluation) and train_node_classifier_minibatch."""

import pytest
import torch
from torch_geometric.data import Data

from gseq.data import karate, synthetic_graph
from gseq.models import GCNNet, sparse_features, train_node_classifier_minibatch


def messy_graph(n=40, e=300, seed=0) -> Data:
    """Directed, with duplicate edges, some self-loops and isolated nodes: every case the layer normalises."""
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(n - 3, (2, e), generator=g)
    edge_index = torch.cat([edge_index, torch.tensor([[4, 9], [4, 9]])], dim=1)  # explicit self-loops
    return Data(x=torch.randn(n, 6, generator=g), edge_index=edge_index,
                edge_weight=torch.rand(edge_index.size(1), generator=g) + 0.1)


# GCN(normalize=False) adds no self-loops, so it takes no self_loop_weight
LAYER_SETTINGS = [(True, 1.0), (True, 2.5), (True, "learn"), ("both", 1.0), ("both", "learn"), (False, 1.0)]


@pytest.mark.parametrize("normalize,self_loop_weight", LAYER_SETTINGS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_inference_equals_the_full_batch_forward(normalize, self_loop_weight, weighted, num_layers):
    data = messy_graph()
    if not weighted:
        del data.edge_weight
    model = GCNNet(6, 4, hidden_channels=8, num_layers=num_layers, normalize=normalize,
                   self_loop_weight=self_loop_weight).eval()
    if self_loop_weight == "learn":
        with torch.no_grad():
            for i, conv in enumerate(model.convs):
                conv.raw_self_loop_weight.fill_(0.3 * i - 0.4)  # a different w in every layer
    with torch.no_grad():
        expected = model(data.x, data.edge_index, getattr(data, "edge_weight", None))
    for batch_size in (1, 7, 1000):
        torch.testing.assert_close(model.inference(data, batch_size), expected, rtol=1e-5, atol=1e-5)


def test_inference_on_a_cora_sized_graph_with_sparse_features_and_dropout_mode():
    data = synthetic_graph(2708, 4, 7, 300, seed=0)
    model = GCNNet(300, 7, hidden_channels=16)
    model.eval()
    with torch.no_grad():
        expected = model(data.x, data.edge_index)
    model.train()  # inference never drops out, whatever the mode
    torch.testing.assert_close(model.inference(data, 512), expected, rtol=1e-5, atol=1e-5)
    data.x = sparse_features(data.x)
    torch.testing.assert_close(model.inference(data, 512), expected, rtol=1e-5, atol=1e-5)
    assert model.training


def test_inference_bad_batch_size():
    data = messy_graph()
    with pytest.raises(ValueError, match="batch_size"):
        GCNNet(6, 2).inference(data, 0)


def test_minibatch_training_learns_and_is_reproducible():
    data = synthetic_graph(800, 8, 3, 8, noise=2.0, split=(0.3, 0.2), seed=0)
    kwargs = dict(num_neighbors=[5, 5], batch_size=64, epochs=8, hidden_channels=16, lr=0.05, device="cpu", seed=3)
    a = train_node_classifier_minibatch(data, **kwargs)
    assert a["test_acc"] > 0.75  # logistic regression on the features alone: 0.62
    assert [row["epoch"] for row in a["history"]] == list(range(1, 9))  # one evaluation per epoch
    assert a["history"][-1]["loss"] < a["history"][0]["loss"]
    assert 1 <= a["best_epoch"] <= 8
    b = train_node_classifier_minibatch(data, **kwargs)
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_minibatch_training_bad_settings():
    data = karate()
    with pytest.raises(ValueError, match="num_neighbors"):
        train_node_classifier_minibatch(data, num_neighbors=[5], num_layers=2, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        train_node_classifier_minibatch(data, batch_size=0, device="cpu")
    with pytest.raises(ValueError, match="eval_every"):
        train_node_classifier_minibatch(data, eval_every=0, device="cpu")


def test_minibatch_training_with_sparse_features_keeps_the_callers_data():
    data = synthetic_graph(300, 6, 3, 8, noise=1.0, split=(0.3, 0.2), seed=0)
    data.x = torch.relu(data.x - 1.5)  # mostly zeros: a bag-of-words-like input
    r = train_node_classifier_minibatch(data, num_neighbors=[4, 4], batch_size=32, epochs=2, device="cpu",
                                        sparse_input=True)
    assert data.x.layout == torch.strided
    assert 0.0 <= r["test_acc"] <= 1.0 and len(r["history"]) == 2
