"""GCNNet.inference (exact layer-wise evaluation); training on sampled subgraphs is tested in
tests/tasks/test_node_classification.py."""

import pytest
import torch
from torch_geometric.data import Data

from gseq.data import synthetic_graph
from gseq.models import GCNNet, sparse_features


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
