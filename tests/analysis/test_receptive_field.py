import math

import networkx as nx
import pytest
import torch
from torch_geometric.data import Data

from gseq.analysis import hop_table, influence, influence_by_hop, receptive_field
from gseq.data import example_graph
from gseq.models import GCNNet


def random_digraph(seed, n=30, e=60):
    g = torch.Generator().manual_seed(seed)
    return Data(edge_index=torch.randint(0, n, (2, e), generator=g), num_nodes=n)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
def test_receptive_field_matches_networkx(seed, k):
    data = random_digraph(seed)
    g = nx.DiGraph()
    g.add_nodes_from(range(data.num_nodes))
    g.add_edges_from(data.edge_index.t().tolist())
    fields = receptive_field(data, k)
    counts = receptive_field(data, k, return_counts=True)
    for t in range(data.num_nodes):
        # sources whose messages reach t within k hops = nodes within k hops of t on the reversed graph
        within = nx.single_source_shortest_path_length(g.reverse(), t, cutoff=k)
        assert fields[t].tolist() == sorted(within)
        assert int(counts[t]) == len(within)


def test_receptive_field_bad_k():
    with pytest.raises(ValueError, match="k"):
        receptive_field(example_graph(), -1)


def test_hop_table_agrees_for_all_36_pairs():
    rows = hop_table(example_graph())
    assert len(rows) == 36
    bad = [r for r in rows if not r["agree"]]
    assert not bad, bad
    ce = next(r for r in rows if (r["source"], r["target"]) == ("C", "E"))
    assert ce["hops"] == 3 and ce["first_k"] == 3


def test_hop_table_on_a_graph_with_unreachable_nodes():
    data = Data(x=torch.eye(4), edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=4)
    rows = {(r["source"], r["target"]): r for r in hop_table(data)}
    assert rows[("0", "2")]["first_k"] == 2 and rows[("0", "2")]["hops"] == 2
    assert rows[("2", "0")]["first_k"] is None and rows[("2", "0")]["hops"] == math.inf
    assert all(r["agree"] for r in rows.values())


def test_influence_is_a_distribution_confined_to_k_hops():
    data = example_graph()
    torch.manual_seed(0)
    model = GCNNet(6, 4, hidden_channels=8, num_layers=2, dropout=0.5)
    model.train()
    inf = influence(model, data, "C")
    assert model.training  # restored
    torch.testing.assert_close(inf.sum(), torch.tensor(1.0))
    assert float(inf[data.node_names.index("E")]) == 0.0  # 3 hops away
    by_hop = influence_by_hop(model, data, "C")
    assert by_hop.shape == (4,) and float(by_hop[3]) == 0.0
    torch.testing.assert_close(by_hop.sum(), torch.tensor(1.0))
