"""The receptive field on a sequence seen as a graph: a k-layer GCN's last node hears node 0 of a
T-node path only from k = T - 1 layers on (the 6-node graph test, on the palindrome graph)."""

import pytest
import torch
from torch_geometric.data import Data

from gseq.analysis import hop_table, influence
from gseq.data import palindrome_graphs, palindromes, path_graph
from gseq.layers import gcn_norm
from gseq.models import GCNNet


def first_digit_influence(data: Data, k: int, w: float, source: int = 0, target: int | None = None) -> float:
    torch.manual_seed(k)
    model = GCNNet(10, 10, hidden_channels=8, num_layers=k, dropout=0.0, self_loop_weight=w, act="tanh")
    target = data.num_nodes - 1 if target is None else target
    return float(influence(model, data, target, normalize=False)[source])


@pytest.mark.parametrize("directed", [True, False])
@pytest.mark.parametrize("w", [1.0, 0.1])
@pytest.mark.parametrize("length", [2, 3, 6])
def test_last_node_hears_the_first_digit_from_depth_T_minus_1(length, w, directed):
    x, y = palindromes(1, length, generator=torch.Generator().manual_seed(length))
    data = palindrome_graphs(x, y, directed=directed).get_example(0)
    assert data.num_nodes == length
    for k in range(1, length - 1):
        assert first_digit_influence(data, k, w) == 0.0, k
    assert first_digit_influence(data, length - 1, w) > 0.0
    assert first_digit_influence(data, length + 1, w) > 0.0  # deeper still sees it


@pytest.mark.parametrize("w", [1.0, 0.1])
def test_nothing_flows_back_on_the_directed_path(w):
    length = 5
    data = palindrome_graphs(*palindromes(1, length)).get_example(0)
    # make the last node's features non-zero so that a dependence on them could show
    data.x[length - 1, 0] = 1.0
    for k in range(1, length + 2):
        assert first_digit_influence(data, k, w, source=length - 1, target=0) == 0.0
    undirected = Data(x=data.x, edge_index=path_graph(length, directed=False))
    assert first_digit_influence(undirected, length - 2, w, source=length - 1, target=0) == 0.0
    assert first_digit_influence(undirected, length - 1, w, source=length - 1, target=0) > 0.0


def propagation_matrix(edge_index, n, w):
    """Dense normalised adjacency P of one GCN layer (out = P X W), from gseq's gcn_norm."""
    ei, ew = gcn_norm(edge_index, None, n, self_loop_weight=w)
    p = torch.zeros(n, n, dtype=torch.float64)
    p.index_put_((ei[1], ei[0]), ew.double(), accumulate=True)
    return p


@pytest.mark.parametrize("w", [1.0, 0.1, 0.0])
def test_first_digit_share_at_depth_T_minus_1(w):
    """With a linear GCN (no activation) the influence distribution on the last node is row T-1 of P^k
    over its sum: the first digit keeps a tiny share with w = 1 (its weight halves per hop), a large one
    with w = 0.1 (a layer is nearly a shift), and none with w = 0 (node 0 then has degree 0 and the
    symmetric normalisation silences it at every depth)."""
    length = 8
    data = palindrome_graphs(*palindromes(1, length)).get_example(0)
    p = propagation_matrix(data.edge_index, length, w)
    shares = {}
    for k in (length - 1, length + 2):
        torch.manual_seed(0)
        model = GCNNet(10, 10, hidden_channels=16, num_layers=k, dropout=0.0, self_loop_weight=w, act="identity")
        got = influence(model, data, length - 1).double()
        row = torch.linalg.matrix_power(p, k)[length - 1].abs()
        expected = row / row.sum() if row.sum() > 0 else row  # influence() gives zeros when nothing reaches
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
        shares[k] = float(got[0])
    if w == 1.0:
        assert 0 < shares[length - 1] < 0.02  # 2**-(T-2) / sqrt(2) of the mass, about 1%
    elif w == 0.1:
        assert shares[length - 1] > 0.5
    else:
        assert shares[length - 1] == 0.0 and shares[length + 2] == 0.0


def test_hop_table_on_a_path_graph():
    data = Data(x=torch.eye(5), edge_index=path_graph(5), num_nodes=5)
    rows = hop_table(data, max_k=5)
    assert all(r["agree"] for r in rows)
    first_last = next(r for r in rows if (r["source"], r["target"]) == ("0", "4"))
    assert first_last["hops"] == 4 and first_last["first_k"] == 4
