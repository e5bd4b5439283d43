"""gseq.layers.GCN against PyG's GCNConv and against a dense reference."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm

from gseq.layers import GCN, gcn_norm


def random_graph(seed, n=12, e=40, loops=3, isolated=2, weighted=True, dtype=torch.float32):
    """Edges among the first n - isolated nodes, with duplicates, some self-loops, and isolated nodes."""
    g = torch.Generator().manual_seed(seed)
    m = n - isolated
    edge_index = torch.randint(0, m, (2, e), generator=g)
    loop_nodes = torch.randperm(m, generator=g)[:loops]
    edge_index = torch.cat([edge_index, loop_nodes.repeat(2, 1)], dim=1)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1), generator=g)]
    weight = torch.rand(edge_index.size(1), generator=g, dtype=dtype) + 0.1 if weighted else None
    x = torch.randn(n, 5, generator=g, dtype=dtype)
    return x, edge_index, weight


def dense_reference(x, edge_index, weight, w, normalize=True):
    """D^-1/2 (A + L) D^-1/2 X with PyG's self-loop rule, computed densely."""
    n = x.size(0)
    weight = torch.ones(edge_index.size(1), dtype=x.dtype) if weight is None else weight
    A = torch.zeros(n, n, dtype=x.dtype)  # A[target, source]
    loop = torch.full((n,), float(w), dtype=x.dtype)
    for (s, t), v in zip(edge_index.t().tolist(), weight):
        if s == t:
            loop[s] = v  # the last loop of a node wins
        else:
            A[t, s] += v
    A_hat = A + torch.diag(loop)
    d_in = A_hat.sum(1)
    d_out = A_hat.sum(0) if normalize == "both" else d_in
    inv = lambda d: torch.where(d > 0, d.rsqrt(), torch.zeros_like(d))  # noqa: E731
    return inv(d_in)[:, None] * A_hat * inv(d_out)[None, :] @ x


def copy_from(pyg, ours):
    ours.load_state_dict(pyg.state_dict())
    return ours


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("w, improved", [(1.0, False), (2.0, True)])
def test_matches_gcnconv_with_edge_weights(seed, w, improved):
    x, edge_index, weight = random_graph(seed)
    pyg = GCNConv(5, 7, improved=improved)
    torch.nn.init.normal_(pyg.bias)
    ours = copy_from(pyg, GCN(5, 7, self_loop_weight=w))
    torch.testing.assert_close(ours(x, edge_index, weight), pyg(x, edge_index, weight), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_matches_gcnconv_unweighted_w1(seed):
    x, edge_index, _ = random_graph(seed, weighted=False)
    pyg = GCNConv(5, 3)
    ours = copy_from(pyg, GCN(5, 3))
    torch.testing.assert_close(ours(x, edge_index), pyg(x, edge_index), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_improved_without_weights_is_not_silently_ignored(seed):
    """PyG >= 2.3 drops improved=True when edge_weight is None; gseq gives the explicit-unit-weight answer."""
    x, edge_index, _ = random_graph(seed, weighted=False)
    ones = torch.ones(edge_index.size(1))
    pyg = GCNConv(5, 3, improved=True)
    ours = copy_from(pyg, GCN(5, 3, self_loop_weight=2.0))
    expected = pyg(x, edge_index, ones)
    torch.testing.assert_close(ours(x, edge_index), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x, edge_index, ones), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours(x, edge_index), copy_from(pyg, GCN(5, 3))(x, edge_index))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 15),
    e=st.integers(0, 40),
    loops=st.integers(0, 4),
    w=st.one_of(st.just(0.0), st.floats(1e-3, 4.0)),
    weighted=st.booleans(),
    normalize=st.sampled_from([True, "both"]),
)
def test_dense_reference_property(seed, n, e, loops, w, weighted, normalize):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, e), generator=g)
    loop_nodes = torch.randint(0, n, (loops,), generator=g)
    edge_index = torch.cat([edge_index, loop_nodes.repeat(2, 1)], dim=1)
    weight = torch.rand(edge_index.size(1), generator=g, dtype=torch.float64) + 0.05 if weighted else None
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    layer = GCN(4, 4, self_loop_weight=w, normalize=normalize, bias=False).double()
    with torch.no_grad():
        layer.lin.weight.copy_(torch.eye(4))
    torch.testing.assert_close(layer(x, edge_index, weight), dense_reference(x, edge_index, weight, w, normalize))


def test_normalize_both_on_directed_graph_differs_from_pyg_default_and_agrees_on_symmetric():
    edge_index = torch.tensor([[0, 0, 0, 1, 2], [1, 2, 3, 2, 3]])
    x = torch.randn(4, 3, dtype=torch.float64)
    both = GCN(3, 3, normalize="both", bias=False).double()
    default = copy_from(both, GCN(3, 3, bias=False).double())
    assert not torch.allclose(both(x, edge_index), default(x, edge_index))
    sym = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    torch.testing.assert_close(both(x, sym), default(x, sym))


def test_normalize_false_matches_gcnconv():
    x, edge_index, weight = random_graph(3)
    pyg = GCNConv(5, 4, normalize=False)
    ours = copy_from(pyg, GCN(5, 4, normalize=False))
    torch.testing.assert_close(ours(x, edge_index, weight), pyg(x, edge_index, weight), atol=1e-5, rtol=1e-5)


def test_gcn_norm_matches_pyg_dense():
    x, edge_index, weight = random_graph(5)
    n = x.size(0)
    for w, improved in [(1.0, False), (2.0, True)]:
        ei, ew = gcn_norm(edge_index, weight, n, self_loop_weight=w)
        pei, pew = pyg_gcn_norm(edge_index, weight, n, improved=improved)
        dense = torch.zeros(n, n).index_put_((ei[1], ei[0]), ew, accumulate=True)
        pdense = torch.zeros(n, n).index_put_((pei[1], pei[0]), pew, accumulate=True)
        torch.testing.assert_close(dense, pdense)


@pytest.mark.parametrize("layout", ["coo", "csr", "csc_t"])
@pytest.mark.parametrize("aggr", ["add", "mean", "max"])
def test_sparse_adjacency_input_matches_gcnconv(layout, aggr):
    """A sparse adj_t: PyG adds w to its diagonal (add_self_loops, not add_remaining_self_loops)."""
    x, edge_index, weight = random_graph(2)  # has self-loops
    n = x.size(0)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), weight, (n, n)).coalesce()
    if layout == "csr":
        adj_t = adj_t.to_sparse_csr()
    elif layout == "csc_t":  # PyG's own tests pass to_torch_csc_tensor(edge_index).t(), a CSR
        adj_t = torch.sparse_coo_tensor(edge_index, weight, (n, n)).coalesce().to_sparse_csc().t()
    pyg = GCNConv(5, 3, aggr=aggr)
    ours = copy_from(pyg, GCN(5, 3, aggr=aggr))
    torch.testing.assert_close(ours(x, adj_t), pyg(x, adj_t), atol=1e-5, rtol=1e-5)


def test_sparse_adjacency_without_loops_matches_edge_index():
    x, edge_index, weight = random_graph(2, loops=0)
    edge_index, weight = edge_index[:, edge_index[0] != edge_index[1]], weight[edge_index[0] != edge_index[1]]
    n = x.size(0)
    # a sparse tensor holds each (target, source) once: compare with the coalesced edge list
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), weight, (n, n), check_invariants=True).coalesce()
    edge_index, weight = adj_t.indices().flip(0), adj_t.values()
    layer = GCN(5, 3)
    torch.testing.assert_close(layer(x, adj_t), layer(x, edge_index, weight))
    torch.testing.assert_close(layer(x, adj_t.to_sparse_csr()), layer(x, edge_index, weight))


def test_learned_weight_starts_at_one_and_gets_a_gradient():
    x, edge_index, weight = random_graph(1)
    pyg = GCNConv(5, 3)
    ours = GCN(5, 3, self_loop_weight="learn")
    ours.load_state_dict(pyg.state_dict(), strict=False)
    assert float(ours.self_loop_weight().detach()) == pytest.approx(1.0)
    torch.testing.assert_close(ours(x, edge_index, weight), pyg(x, edge_index, weight), atol=1e-5, rtol=1e-5)
    ours(x, edge_index, weight).pow(2).sum().backward()
    assert ours.raw_self_loop_weight.grad is not None and ours.raw_self_loop_weight.grad.abs() > 0


@pytest.mark.parametrize("normalize", [True, "both"])
@pytest.mark.parametrize("weight_grad", [True, False], ids=["edge-weight-grad", "fused-path"])
def test_gradcheck_float64(normalize, weight_grad):
    x, edge_index, weight = random_graph(4, n=7, e=14, loops=2, isolated=1, dtype=torch.float64)
    layer = GCN(5, 2, self_loop_weight="learn", normalize=normalize).double()
    x.requires_grad_(True)
    weight.requires_grad_(weight_grad)

    # the learned weight enters through its raw parameter: differentiate through a functional call
    def g(x, weight, raw_value):
        return torch.func.functional_call(layer, {"raw_self_loop_weight": raw_value}, (x, edge_index, weight))

    raw_value = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(g, (x, weight, raw_value))


def test_fused_path_equals_the_composition():
    """Edge weights without a gradient take the one-node path; with one, plain autograd: same numbers."""
    x, edge_index, weight = random_graph(6, dtype=torch.float64)
    layer = GCN(5, 3, self_loop_weight="learn").double()
    grads = []
    for needs in (False, True):
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = layer(xi, edge_index, weight.clone().requires_grad_(needs))
        out.pow(2).sum().backward()
        grads.append((out.detach(), xi.grad, layer.raw_self_loop_weight.grad.clone(), layer.lin.weight.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_cached_reuses_structure_and_still_learns_the_loop_weight():
    x, edge_index, weight = random_graph(0)
    layer = GCN(5, 3, cached=True, self_loop_weight="learn")
    first = layer(x, edge_index, weight)
    # PyG's cached semantics: the first graph is kept, later edge_index is ignored
    torch.testing.assert_close(layer(x, edge_index[:, :5]), first)
    layer(x, edge_index).sum().backward()
    assert layer.raw_self_loop_weight.grad is not None
    with pytest.raises(ValueError, match="cached graph"):
        layer(x[:4], edge_index)


def test_forward_never_builds_edge_messages(monkeypatch):
    x, edge_index, weight = random_graph(0)
    layer = GCN(5, 3)
    monkeypatch.setattr(layer, "message", lambda *a, **k: pytest.fail("message() was called"))
    monkeypatch.setattr(layer, "propagate", lambda *a, **k: pytest.fail("propagate() was called"))
    layer(x, edge_index, weight)


def test_isolated_node_without_self_loop_weight_gets_zero_aggregation():
    x = torch.randn(3, 2)
    layer = GCN(2, 2, self_loop_weight=0.0, bias=False)
    out = layer(x, torch.tensor([[0], [1]]))
    assert torch.equal(out[2], torch.zeros(2)) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda x, ei: (x, ei.t()), ValueError, "edge_index: expected shape \\[2, E\\]"),
        (lambda x, ei: (x, ei.float()), TypeError, "edge_index: expected an integer"),
        (lambda x, ei: (x, ei * 100), ValueError, "edge_index: node indices must lie in"),
        (lambda x, ei: (x, ei - 5), ValueError, "edge_index: node indices must lie in"),
        (lambda x, ei: (x[:, :3], ei), ValueError, "x: expected 5 features"),
        (lambda x, ei: (x[0], ei), ValueError, "x: expected shape"),
        (lambda x, ei: ((x, x), ei), TypeError, "x: expected one tensor"),
        (lambda x, ei: (x, [[0, 1], [1, 0]]), TypeError, "edge_index: expected a LongTensor"),
    ],
)
def test_bad_inputs_name_the_argument(make, exc, match):
    x, edge_index, _ = random_graph(0)
    layer = GCN(5, 3)
    with pytest.raises(exc, match=match):
        layer(*make(x, edge_index))


def test_bad_edge_weight_and_settings():
    x, edge_index, weight = random_graph(0)
    layer = GCN(5, 3)
    with pytest.raises(ValueError, match="edge_weight: expected shape"):
        layer(x, edge_index, weight[:-1])
    with pytest.raises(TypeError, match="edge_weight"):
        layer(x, edge_index, torch.ones(edge_index.size(1), dtype=torch.long))
    with pytest.raises(ValueError, match="self_loop_weight: must be a finite float >= 0"):
        GCN(5, 3, self_loop_weight=-1.0)
    with pytest.raises(TypeError, match="self_loop_weight"):
        GCN(5, 3, self_loop_weight="learned")
    with pytest.raises(ValueError, match="normalize"):
        GCN(5, 3, normalize="sym")
    with pytest.raises(ValueError, match="self_loop_weight"):
        GCN(5, 3, normalize=False, self_loop_weight=2.0)
