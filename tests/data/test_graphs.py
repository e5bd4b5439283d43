import math

import networkx as nx
import pytest
import torch

from gseq.data import example_graph, hop_distances, hops, karate
from gseq.layers import GCN

EXPECTED_A_PLUS_I = torch.tensor([
    [1, 1, 0, 0, 1, 1],
    [1, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0, 1],
    [1, 0, 0, 0, 1, 1],
    [1, 0, 0, 1, 1, 1],
], dtype=torch.float)


def test_example_graph_adjacency_plus_identity_is_the_reports_matrix():
    data = example_graph()
    assert data.node_names == ["A", "B", "C", "D", "E", "F"]
    assert data.edge_index.shape == (2, 16)
    adj = torch.zeros(6, 6)
    adj[data.edge_index[0], data.edge_index[1]] = 1
    assert torch.equal(adj + torch.eye(6), EXPECTED_A_PLUS_I)
    assert torch.equal(data.x, torch.eye(6))
    assert not (data.train_mask & data.test_mask).any()


def test_hops_by_name_and_index_agree_with_networkx():
    data = example_graph()
    assert hops(data, "C", "E") == 3
    assert hops(data, 2, 4) == 3
    assert hops(data, "A", "A") == 0
    g = nx.Graph([tuple(e) for e in data.edge_index.t().tolist()])
    for s in range(6):
        lengths = nx.single_source_shortest_path_length(g, s)
        assert hop_distances(data, s).tolist() == [lengths[t] for t in range(6)]


def test_hops_unreachable_and_bad_nodes():
    data = example_graph()
    data.edge_index = data.edge_index[:, :0]
    assert hops(data, "A", "B") == math.inf
    with pytest.raises(ValueError, match="^source: 'Z' is not a node name"):
        hops(example_graph(), "Z", "A")
    with pytest.raises(ValueError, match=r"^source: expected a name or an index in \[0, 6\), got 6"):
        hops(example_graph(), 6, 0)
    with pytest.raises(ValueError, match="^target: "):
        hops(example_graph(), 0, -1)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_message_passing_reaches_e_from_c_after_three_layers(k):
    """With k stacked GCN layers, E's output depends on C's input iff k >= hops(C, E) = 3."""
    data = example_graph()
    torch.manual_seed(k)
    layers = torch.nn.ModuleList(GCN(6, 6) for _ in range(k))

    def run(x):
        for layer in layers:
            x = torch.tanh(layer(x, data.edge_index))
        return x

    x = data.x.clone()
    base = run(x)
    x[2] += torch.randn(6)  # change C's features
    changed = run(x)
    e = data.node_names.index("E")
    assert (not torch.allclose(base[e], changed[e], atol=0, rtol=0)) == (k >= 3)


def test_karate_is_embedded_with_disjoint_splits():
    data = karate()
    assert data.num_nodes == 34 and int(data.train_mask.sum()) == 4
    masks = [data.train_mask, data.val_mask, data.test_mask]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not bool((masks[i] & masks[j]).any()), (i, j)  # no node is both validated and tested
    assert bool((masks[0] | masks[1] | masks[2]).all())
    assert int(data.val_mask.sum()) + int(data.test_mask.sum()) == 30
    for c in range(4):  # every class is validated and tested
        assert bool(data.val_mask[data.y == c].any()) and bool(data.test_mask[data.y == c].any())
