import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from gseq.data import hop_distances, palindrome_graphs, palindromes, path_graph


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40))
def test_path_graph_structure(n):
    directed = path_graph(n)
    assert directed.dtype == torch.long and directed.shape == (2, n - 1)
    assert directed[0].tolist() == list(range(n - 1)) and directed[1].tolist() == list(range(1, n))
    undirected = path_graph(n, directed=False)
    assert undirected.shape == (2, 2 * (n - 1))
    assert torch.equal(undirected, to_undirected(directed, num_nodes=n))  # same edges, same (sorted) order
    # hops along the direction of the edges: t from node 0; nothing flows back on the directed path
    d = Data(edge_index=directed, num_nodes=n)
    assert hop_distances(d, 0).tolist() == list(range(n))
    assert hop_distances(d, n - 1).tolist() == [math.inf] * (n - 1) + [0]
    assert hop_distances(Data(edge_index=undirected, num_nodes=n), n - 1).tolist() == list(range(n - 1, -1, -1))


def test_path_graph_device_and_example():
    assert path_graph(4, device="cpu").tolist() == [[0, 1, 2], [1, 2, 3]]
    assert path_graph(1).shape == (2, 0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_nodes": 0}, ValueError, "num_nodes"),
    ({"num_nodes": -3}, ValueError, "num_nodes"),
    ({"num_nodes": 3.0}, TypeError, "num_nodes"),
    ({"num_nodes": True}, TypeError, "num_nodes"),
    ({"num_nodes": "4"}, TypeError, "num_nodes"),
    ({"num_nodes": torch.tensor(4)}, TypeError, "num_nodes"),
    ({"num_nodes": 4, "directed": "yes"}, TypeError, "directed"),
])
def test_path_graph_bad_inputs_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        path_graph(**kwargs)


def reference_batch(x, y, directed):
    """One Data per palindrome, batched by PyG."""
    n = x.size(1) + 1
    graphs = []
    for b in range(x.size(0)):
        feats = torch.cat((F.one_hot(x[b], 10).float(), torch.zeros(1, 10)))
        extra = {"y": y[b:b + 1]} if y is not None else {}
        graphs.append(Data(x=feats, edge_index=path_graph(n, directed=directed), **extra))
    return Batch.from_data_list(graphs)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 12), length=st.integers(2, 16), directed=st.booleans(), with_y=st.booleans(),
       seed=st.integers(0, 2**31))
def test_palindrome_graphs_equal_batch_from_data_list(batch, length, directed, with_y, seed):
    x, y = palindromes(batch, length, generator=torch.Generator().manual_seed(seed))
    y = y if with_y else None
    got = palindrome_graphs(x, y, directed=directed)
    ref = reference_batch(x, y, directed)
    assert type(got) is type(ref)
    assert sorted(got.keys()) == sorted(ref.keys())
    for key in ref.keys():
        assert got[key].dtype == ref[key].dtype, key
        assert torch.equal(got[key], ref[key]), key
    assert got.num_graphs == ref.num_graphs == batch
    assert got.num_nodes == batch * length
    for key in ("_slice_dict", "_inc_dict"):
        a, b = getattr(got, key), getattr(ref, key)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), key
    # what the bookkeeping is for: taking the batch apart again
    for g, r in zip(got.to_data_list(), ref.to_data_list()):
        assert g.keys() == r.keys() and all(torch.equal(g[k], r[k]) for k in r.keys())
    picked = Batch.from_data_list(got.index_select([batch - 1, 0]))
    assert torch.equal(picked.x, torch.cat((ref.get_example(batch - 1).x, ref.get_example(0).x)))


def test_palindrome_graphs_layout():
    x = torch.tensor([[3, 1, 4], [1, 5, 9]])
    g = palindrome_graphs(x, torch.tensor([3, 1]))
    assert g.x.shape == (8, 10) and g.x.dtype == torch.get_default_dtype()
    assert g.x[[0, 1, 2, 4, 5, 6]].argmax(1).tolist() == [3, 1, 4, 1, 5, 9]
    assert g.x.sum(1).tolist() == [1, 1, 1, 0, 1, 1, 1, 0]  # the node to predict is blank
    assert g.edge_index.tolist() == [[0, 1, 2, 4, 5, 6], [1, 2, 3, 5, 6, 7]]
    assert g.ptr.tolist() == [0, 4, 8] and g.batch.tolist() == [0] * 4 + [1] * 4
    assert (g.ptr[1:] - 1).tolist() == [3, 7]  # where a model's answer is read
    assert g.y.tolist() == [3, 1]


@pytest.mark.parametrize("args, error, match", [
    ((torch.tensor([[1.0, 2.0]]),), TypeError, "x: expected integer"),
    (([[1, 2]],), TypeError, "x: expected a LongTensor"),
    ((torch.tensor([1, 2]),), ValueError, r"x: expected shape \[batch, T - 1\]"),
    ((torch.zeros(0, 3, dtype=torch.long),), ValueError, "x: expected at least one"),
    ((torch.zeros(2, 0, dtype=torch.long),), ValueError, "x: expected at least one"),
    ((torch.tensor([[1, 10]]),), ValueError, r"x: digits must lie in 0..9"),
    ((torch.tensor([[1, -1]]),), ValueError, r"x: digits must lie in 0..9"),
    ((torch.tensor([[1, 2]]), torch.tensor([1.0])), TypeError, "y: expected integer"),
    ((torch.tensor([[1, 2]]), torch.tensor([1, 2])), ValueError, "y: expected one target per palindrome"),
    ((torch.tensor([[1, 2]]), torch.tensor([[1]])), ValueError, r"y: expected shape \[batch\]"),
    ((torch.tensor([[1, 2]]), torch.tensor([11])), ValueError, "y: digits must lie in 0..9"),
])
def test_palindrome_graphs_bad_inputs_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        palindrome_graphs(*args)


def test_palindrome_graphs_bad_directed():
    with pytest.raises(TypeError, match="directed"):
        palindrome_graphs(torch.tensor([[1, 2]]), directed=1)
