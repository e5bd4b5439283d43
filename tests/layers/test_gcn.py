"""gseq.layers.GCN against PyG's GCNConv and against a dense reference."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm

from gseq.layers import GCN, gcn_graph, gcn_norm


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


def test_a_learned_weight_that_weighs_no_node_warns():
    ring = torch.tensor([[0, 1, 2], [1, 2, 0]])
    loops = torch.arange(3).repeat(2, 1)
    x = torch.randn(3, 4)
    layer = GCN(4, 2, self_loop_weight="learn")
    with pytest.warns(UserWarning, match="every node of this graph already has a self-loop"):
        layer(x, torch.cat([ring, loops], 1))  # each node keeps its own loop: w weighs none
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x, torch.cat([ring, loops[:, :2]], 1))  # node 2 gets the loop of weight w
        GCN(4, 2)(x, torch.cat([ring, loops], 1))  # a fixed w: PyG's fill value, no warning


def assert_gradcheck(layer, weight_grad):
    """float64 gradcheck of a layer with a learned loop weight in x, the edge weights and that weight."""
    x, edge_index, weight = random_graph(4, n=7, e=14, loops=2, isolated=1, dtype=torch.float64)
    x.requires_grad_(True)
    weight.requires_grad_(weight_grad)

    # the learned weight enters through its raw parameter: differentiate through a functional call
    def g(x, weight, raw_value):
        return torch.func.functional_call(layer, {"raw_self_loop_weight": raw_value}, (x, edge_index, weight))

    raw_value = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(g, (x, weight, raw_value))


@pytest.mark.parametrize("normalize", [True, "both"])
@pytest.mark.parametrize("weight_grad", [True, False], ids=["edge-weight-grad", "scaled-spmm-path"])
def test_gradcheck_float64(normalize, weight_grad):
    assert_gradcheck(GCN(5, 2, self_loop_weight="learn", normalize=normalize).double(), weight_grad)


def test_scaled_spmm_path_equals_plain_autograd():
    """Edge weights without a gradient take the one-node path (scaled_spmm); with one, plain autograd: same
    numbers."""
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
        (lambda x, ei: (x, ei.float()), TypeError, "edge_index must have an integer dtype \\(int64 or int32\\)"),
        (lambda x, ei: (x, ei.short()), TypeError, "edge_index must have an integer dtype \\(int64 or int32\\)"),
        (lambda x, ei: (x, ei * 100), ValueError, "edge_index must be < num_nodes = 12 \\(x has 12 rows\\)"),
        (lambda x, ei: (x, ei - 5), ValueError, "edge_index must be non-negative"),
        (lambda x, ei: (x.long(), ei), TypeError, "x: expected floating-point node features"),
        (lambda x, ei: (x[:, :3], ei), ValueError, "x: expected 5 features"),
        (lambda x, ei: (x[0], ei), ValueError, "x: expected shape"),
        (lambda x, ei: ((x, x), ei), TypeError, "x: expected one tensor"),
        (lambda x, ei: (x, [[0, 1], [1, 0]]), TypeError, "edge_index must be a torch.Tensor"),
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


# --- every accepted MessagePassing/GCNConv argument against GCNConv -----------------------------------

VARIANTS = {  # GCNConv keyword arguments, and whether the graph has edge weights
    "default": ({}, True),
    "unweighted": ({}, False),
    "improved": ({"improved": True}, True),
    "no-normalize": ({"normalize": False}, True),
    "no-loops": ({"add_self_loops": False}, True),
    "improved-no-loops": ({"improved": True, "add_self_loops": False}, True),
    "improved-no-normalize": ({"improved": True, "normalize": False}, False),
}


def assert_same_as_gcnconv(kwargs, x, edge_index, weight, out_channels=3):
    """Output, and gradients w.r.t. x and the weights, of GCN(**kwargs) and GCNConv(**kwargs)."""
    pyg = GCNConv(x.size(-1), out_channels, **kwargs)
    torch.nn.init.normal_(pyg.bias)
    ours = copy_from(pyg, GCN(x.size(-1), out_channels, **kwargs))
    outs, grads = [], []
    for layer in (pyg, ours):
        xi = x.clone().requires_grad_(True)
        out = layer(xi, edge_index, weight)
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append((xi.grad, layer.lin.weight.grad))
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("out_channels", [3, 8], ids=["lin-first", "aggregate-first"])  # x has 5 features
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("aggr", ["add", "sum", "mean", "max", "min"])
@pytest.mark.parametrize("flow", ["source_to_target", "target_to_source"])
def test_aggr_flow_and_variants_match_gcnconv(flow, aggr, variant, out_channels):
    kwargs, weighted = VARIANTS[variant]
    for seed in range(2):
        x, edge_index, weight = random_graph(seed, weighted=weighted)
        assert_same_as_gcnconv(dict(kwargs, flow=flow, aggr=aggr), x, edge_index, weight, out_channels)


@pytest.mark.parametrize("aggr, in_channels, out_channels, width", [
    ("add", 5, 8, 5), ("mean", 5, 8, 5), ("add", 5, 5, 5), ("add", 5, 3, 3), ("max", 5, 8, 8), ("min", 5, 8, 8)])
def test_sparse_product_runs_over_the_fewer_channels(monkeypatch, aggr, in_channels, out_channels, width):
    """sum/mean aggregate X when it has fewer channels than the output, then apply lin; max/min never do."""
    import gseq.layers.gcn as gcn_module

    widths = []
    real = gcn_module.aggregate

    def recording(graph, h, *args, **kwargs):
        widths.append(h.size(-1))
        return real(graph, h, *args, **kwargs)

    monkeypatch.setattr(gcn_module, "aggregate", recording)
    x, edge_index, weight = random_graph(0)
    GCN(in_channels, out_channels, aggr=aggr)(x[:, :in_channels], edge_index, weight)
    assert widths == [width]


@pytest.mark.parametrize("aggr", ["add", "mean"])
def test_aggregate_first_learned_loop_weight_matches_gcnconv_and_gradchecks(aggr):
    """in_channels < out_channels with a learned loop weight (at 1.0: GCNConv's) and weighted edges: outputs
    and gradients (x, lin, edge weights, the loop weight against its float64 gradcheck)."""
    x, edge_index, weight = random_graph(3)
    pyg = GCNConv(5, 9, aggr=aggr)
    torch.nn.init.normal_(pyg.bias)
    ours = GCN(5, 9, self_loop_weight="learn", aggr=aggr)
    ours.load_state_dict(pyg.state_dict(), strict=False)
    grads = []
    for layer in (pyg, ours):
        xi, wi = x.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        out = layer(xi, edge_index, wi)
        out.pow(2).sum().backward()
        grads.append((out.detach(), xi.grad, wi.grad, layer.lin.weight.grad, layer.bias.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert ours.raw_self_loop_weight.grad.abs() > 0
    for weight_grad in (True, False):
        assert_gradcheck(GCN(5, 9, self_loop_weight="learn", aggr=aggr).double(), weight_grad)


def test_flow_reverses_the_edges():
    x, edge_index, weight = random_graph(3)
    reverse = GCN(5, 3, flow="target_to_source")
    forward = copy_from(reverse, GCN(5, 3))
    torch.testing.assert_close(reverse(x, edge_index, weight), forward(x, edge_index.flip(0), weight))
    assert not torch.allclose(reverse(x, edge_index, weight), forward(x, edge_index, weight))


@pytest.mark.parametrize("aggr", ["mean", "max", "min"])
@pytest.mark.parametrize("weight_grad", [True, False], ids=["edge-weight-grad", "scaled-spmm-path"])
def test_gradcheck_float64_aggregations(aggr, weight_grad):
    layer = GCN(5, 2, self_loop_weight="learn", normalize="both", aggr=aggr, flow="target_to_source").double()
    assert_gradcheck(layer, weight_grad)


@pytest.mark.parametrize(
    "aggr",
    ["mul", "std", "var", "softmax", None, ["sum", "max"], "SoftmaxAggregation()"],
)
def test_other_aggregations_are_refused(aggr):
    with pytest.raises(ValueError, match="aggr: GCN aggregates with 'add'"):
        GCN(5, 3, aggr=aggr)


def test_settings_changed_after_construction_are_honoured_or_refused():
    x, edge_index, weight = random_graph(0)
    layer = GCN(5, 3)
    layer.aggr = "max"  # PyG reads self.aggr when it aggregates: so does GCN
    pyg = GCNConv(5, 3, aggr="max")
    pyg.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x, edge_index, weight), pyg(x, edge_index, weight), atol=1e-5, rtol=1e-5)
    layer.aggr = "mul"
    with pytest.raises(ValueError, match="aggr"):
        layer(x, edge_index, weight)
    layer.aggr = "add"
    layer.flow = "sideways"
    with pytest.raises(ValueError, match="flow"):
        layer(x, edge_index, weight)


def test_flow_target_to_source_refuses_a_sparse_adjacency():
    x, edge_index, weight = random_graph(0)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), weight, (12, 12)).coalesce()
    with pytest.raises(ValueError, match="flow: 'target_to_source' cannot be used with a sparse adjacency"):
        GCN(5, 3, flow="target_to_source")(x, adj_t)
    with pytest.raises(ValueError, match="flow"):  # PyG refuses it too
        GCNConv(5, 3, flow="target_to_source")(x, adj_t)


def test_explainer_masks_and_propagate_hooks_are_refused():
    """GCN never calls propagate(): what PyG applies there is refused rather than ignored."""
    x, edge_index, weight = random_graph(0)
    layer = GCN(5, 3)
    layer.explain = True
    with pytest.raises(ValueError, match="explain"):
        layer(x, edge_index, weight)
    layer.explain = False
    handle = layer.register_propagate_forward_hook(lambda module, inputs, out: out * 0)
    with pytest.raises(ValueError, match="hooks"):
        layer(x, edge_index, weight)
    handle.remove()
    layer(x, edge_index, weight)


@pytest.mark.parametrize("kwargs", [{"improved": True, "add_self_loops": False},
                                    {"improved": True, "normalize": False}])
def test_improved_without_loops_is_accepted_and_has_no_effect(kwargs):
    x, edge_index, weight = random_graph(1)
    assert_same_as_gcnconv(kwargs, x, edge_index, weight)
    plain = dict(kwargs, improved=False)
    a, b = GCN(5, 3, **kwargs), GCN(5, 3, **plain)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x, edge_index, weight), b(x, edge_index, weight))


# --- features with leading batch dimensions ------------------------------------------------------------

@pytest.mark.parametrize("out_channels", [4, 7], ids=["lin-first", "aggregate-first"])
@pytest.mark.parametrize("aggr", ["add", "mean", "max"])
@pytest.mark.parametrize("cached", [False, True])
def test_batched_features_match_gcnconv(aggr, cached, out_channels):
    _, edge_index, weight = random_graph(5)
    x = torch.randn(2, 3, 12, 5)  # [B1, B2, N, F]: one static graph, six feature sets
    pyg = GCNConv(5, out_channels, aggr=aggr)
    ours = copy_from(pyg, GCN(5, out_channels, aggr=aggr, cached=cached))
    out = ours(x, edge_index, weight)
    assert out.shape == (2, 3, 12, out_channels)
    assert out.is_contiguous() and out.view(6, 12, -1).shape == pyg(x, edge_index, weight).view(6, 12, -1).shape
    torch.testing.assert_close(out, pyg(x, edge_index, weight), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x, edge_index, weight)[1, 2], ours(x[1, 2], edge_index, weight))


# GCNConv's message() scales dimension -2 by the edge weights: with nodes elsewhere it runs only unweighted
# and unnormalised (GCN takes weights and normalises there too: each feature set is its own graph signal)
@pytest.mark.parametrize("node_dim, shape, normalize", [(0, (12, 5), True), (1, (3, 12, 5), True),
                                                        (0, (12, 3, 5), False), (-3, (12, 2, 5), False)])
@pytest.mark.parametrize("out_channels", [3, 8], ids=["lin-first", "aggregate-first"])
def test_node_dim_matches_gcnconv(node_dim, shape, normalize, out_channels):
    _, edge_index, weight = random_graph(6, weighted=normalize)
    x = torch.randn(*shape)
    assert_same_as_gcnconv({"node_dim": node_dim, "normalize": normalize}, x, edge_index, weight, out_channels)
    weight = torch.rand(edge_index.size(1)) + 0.1
    layer = GCN(5, out_channels, node_dim=node_dim)
    default = copy_from(layer, GCN(5, out_channels))  # nodes at -2
    expected = default(x.movedim(node_dim, -2), edge_index, weight).movedim(-2, node_dim)
    torch.testing.assert_close(layer(x, edge_index, weight), expected)


def test_node_dim_must_not_be_the_feature_dimension():
    x, edge_index, _ = random_graph(0)
    with pytest.raises(ValueError, match="node_dim"):
        GCN(5, 3, node_dim=-1)(x, edge_index)


def test_batched_features_with_a_sparse_adjacency():
    """GCNConv raises here (torch.sparse.mm takes matrices); GCN gives each feature set's answer."""
    x1, edge_index, weight = random_graph(7)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), weight, (12, 12)).coalesce()
    x = torch.stack([x1, 2 * x1 + 1])
    layer = GCN(5, 3, aggr="mean")
    out = layer(x, adj_t)
    torch.testing.assert_close(out[0], layer(x[0], adj_t))
    torch.testing.assert_close(out[1], layer(x[1], adj_t))


# --- self-loops: several on one node, deterministically ----------------------------------------------

@pytest.mark.parametrize("weighted", [True, False])
def test_several_loops_on_one_node_last_one_wins_as_in_gcnconv(weighted):
    edge_index = torch.tensor([[0, 1, 2, 2, 0, 3, 2, 1, 2, 4],
                               [1, 2, 2, 3, 0, 2, 2, 0, 2, 4]])  # node 2: three loops; 0 and 4 one each
    weight = torch.tensor([0.5, 1.5, 0.7, 2.0, 3.0, 0.25, 1.25, 0.75, 4.0, 0.1]) if weighted else None
    x = torch.randn(6, 5)
    # (improved=True without weights: PyG ignores improved, see test_improved_without_weights_...)
    for kwargs in ({}, {"improved": True} if weighted else {}, {"aggr": "mean"}, {"aggr": "max"}):
        assert_same_as_gcnconv(kwargs, x, edge_index, weight)
    graph = gcn_graph(edge_index, weight, 6)
    assert graph.has_loop.tolist() == [True, False, True, False, True, False]
    expected = [3.0, 0.0, 4.0, 0.0, 0.1, 0.0] if weighted else [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    torch.testing.assert_close(graph.kept_loop, torch.tensor(expected))
    # the same loops in another order: the last by position still wins, whatever the write order
    perm = torch.tensor([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    flipped = gcn_graph(edge_index[:, perm], None if weight is None else weight[perm], 6)
    first = [3.0, 0.0, 0.7, 0.0, 0.1, 0.0] if weighted else expected
    torch.testing.assert_close(flipped.kept_loop, torch.tensor(first))


# --- half precision: degrees and sums in float32 ------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_hub_keeps_its_neighbours(dtype):
    """A hub of in-degree 70,000 has degree inf in float16 (GCNConv's output there is 0): GCN keeps
    degrees, normalisation and sums in float32, so the hub matches the float32 answer."""
    leaves = torch.arange(1, 70_001)
    edge_index = torch.stack([leaves, torch.zeros_like(leaves)])  # every leaf -> the hub, node 0
    x = torch.rand(70_001, 2) + 0.5  # positive: the unscaled sum into the hub (~70,000) overflows too
    layer = GCN(2, 2, bias=False)
    with torch.no_grad():
        layer.lin.weight.abs_()
        reference = layer(x, edge_index)
        low = layer.to(dtype)(x.to(dtype), edge_index)
    assert low.dtype == dtype and torch.isfinite(low).all()
    assert reference[0].min() > 100  # the hub's aggregate is large, far from 0
    tol = 1e-2 if dtype == torch.float16 else 2e-2
    torch.testing.assert_close(low.float(), reference, rtol=tol, atol=tol)
    graph = layer.graph(edge_index, num_nodes=70_001, dtype=dtype)
    assert graph.in_degree.dtype == torch.float32 and graph.in_degree[0] == 70_000


def test_prebuilt_graph_is_shared_and_checked_against_the_layer():
    x, edge_index, weight = random_graph(8)
    graph = gcn_graph(edge_index, weight, x.size(0))
    first, second = GCN(5, 3), GCN(5, 3, self_loop_weight="learn")
    torch.testing.assert_close(first(x, graph), first(x, edge_index, weight))
    torch.testing.assert_close(second(x, graph), second(x, edge_index, weight))
    with pytest.raises(ValueError, match="edge_index: this GCNGraph was built with"):
        GCN(5, 3, normalize="both")(x, graph)
    with pytest.raises(ValueError, match="edge_index: this GCNGraph was built with"):
        GCN(5, 3, add_self_loops=False)(x, graph)
    with pytest.raises(ValueError, match="edge_index: this GCNGraph was built with"):
        GCN(5, 3, flow="target_to_source")(x, graph)
    with pytest.raises(ValueError, match="x: the graph has 12 nodes but x has 4 rows"):
        first(x[:4], graph)


# --- cached=False: the last graph is reused only for the same, unmodified tensors -------------------------

def test_uncached_layer_reuses_the_graph_only_for_the_same_unmodified_edges():
    x, edge_index, weight = random_graph(7)
    layer = GCN(5, 3)
    fresh = GCN(5, 3)  # the same weights, built afresh every call: the reference
    fresh.load_state_dict(layer.state_dict())
    first = layer(x, edge_index, weight)
    graph = layer._last_graph[2]
    torch.testing.assert_close(layer(x, edge_index, weight), first)
    assert layer._last_graph[2] is graph  # the same tensors: reused
    edge_index = edge_index.clone()
    layer(x, edge_index, weight)
    assert layer._last_graph[2] is not graph  # another tensor object (a loader's batch): rebuilt
    graph = layer._last_graph[2]
    edge_index[0, 0] = (edge_index[0, 0] + 1) % 10  # written in place: its version counter moved
    changed = layer(x, edge_index, weight)
    assert layer._last_graph[2] is not graph
    torch.testing.assert_close(changed, fresh(x, edge_index.clone(), weight))
    weight.mul_(2.0)  # the weights written in place
    torch.testing.assert_close(layer(x, edge_index, weight), fresh(x, edge_index.clone(), weight.clone()))
    trained = weight.detach().clone().requires_grad_()
    layer(x, edge_index, trained).sum().backward()
    layer(x, edge_index, trained).sum().backward()  # weights with a gradient: a new graph every call
    assert layer._last_graph is None and trained.grad is not None


def test_training_steps_and_evaluations_in_turn_share_one_graph(monkeypatch):
    """An epoch of a training step then an evaluation under no_grad (PyG's examples) builds the graph once,
    not twice per epoch, and the reused graph gives the gradients of one built afresh."""
    x, edge_index, weight = random_graph(9)
    layer, fresh = GCN(5, 3, self_loop_weight="learn"), GCN(5, 3, self_loop_weight="learn")
    fresh.load_state_dict(layer.state_dict())
    builds = []
    new_graph = GCN._new_graph
    monkeypatch.setattr(GCN, "_new_graph", lambda self, *a: builds.append(1) or new_graph(self, *a))
    with torch.no_grad():
        layer(x, edge_index, weight)  # built under no_grad first: no transposed pattern yet
    for _ in range(3):
        layer(x, edge_index, weight).square().sum().backward()
        with torch.no_grad():
            layer(x, edge_index, weight)
    assert len(builds) == 1
    for _ in range(3):
        fresh(x, edge_index.clone(), weight.clone()).square().sum().backward()
    for (name, p), q in zip(layer.named_parameters(), fresh.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_fixed_normalisation_is_computed_once_per_graph():
    """A fixed w: the graph keeps its normalisation (64 layers of a deep model, or an evaluation, do not
    redo it); a learned w or edge weights that need a gradient are normalised afresh on every call."""
    from gseq.layers.gcn_structure import _normalization_as, normalization

    x, edge_index, weight = random_graph(10)
    graph = gcn_graph(edge_index, weight, 12)
    first = _normalization_as(graph, 2.0, True, torch.float32)
    assert _normalization_as(graph, 2.0, True, torch.float32) is first  # kept
    for got, want in zip(first, normalization(graph, 2.0, True)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert _normalization_as(graph, 1.0, True, torch.float32)[0] is not first[0]  # another w: its own
    learned = torch.tensor(2.0, requires_grad=True)
    assert _normalization_as(graph, learned, True, torch.float32)[0].requires_grad  # never kept
    trained = weight.detach().clone().requires_grad_()
    graded = gcn_graph(edge_index, trained, 12)
    s_t = _normalization_as(graded, 2.0, True, torch.float32)[0]
    assert s_t.requires_grad and not graded._norm  # a graph whose weights learn: never kept


@pytest.mark.parametrize("normalize", [True, "both"])
@pytest.mark.parametrize("weighted", [True, False])
def test_fixed_normalisation_folds_into_the_csr_values(normalize, weighted):
    """A fixed w: the normalisation goes into the values of one CSR (kept), so the sum is one product plus
    the loops' diagonal, equal to the dense D_t^-1/2 (A + wI) D_s^-1/2 H with gradients (float64); a learned
    w and mean aggregation scale around the unnormalised product."""
    from gseq.layers.gcn_structure import _normalization_as, _normalized_csr, aggregate

    x, edge_index, weight = random_graph(11, weighted=weighted)
    x = x.double().requires_grad_()
    graph = gcn_graph(edge_index, None if weight is None else weight.double(), 12, out_degree=True,
                      dtype=torch.float64)
    csr = graph.csr_as(torch.float64)
    folded = _normalized_csr(graph, 1.5, normalize, torch.float64)
    assert folded is _normalized_csr(graph, 1.5, normalize, torch.float64)  # kept
    assert folded.structure is csr.structure  # the same pattern: only the values are new
    s_t, s_s, loop, _ = _normalization_as(graph, 1.5, normalize, torch.float64)
    adjacency = torch.zeros(12, 12, dtype=torch.float64).index_put_(
        (csr.row(), csr.indices), torch.ones(csr.nnz, dtype=torch.float64) if csr.values is None else csr.values,
        accumulate=True) + torch.diag(loop)
    dense = s_t[:, None] * adjacency * s_s[None, :]
    out = aggregate(graph, x, 1.5, normalize=normalize)
    torch.testing.assert_close(out, dense @ x)
    assert torch.autograd.gradcheck(lambda h: aggregate(graph, h, 1.5, normalize=normalize), (x,))
    learned = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    assert _normalized_csr(graph, learned, normalize, torch.float64) is None
    torch.testing.assert_close(aggregate(graph, x, learned, normalize=normalize), out)


def test_reuse_is_not_copied():
    import copy

    x, edge_index, weight = random_graph(8)
    layer = GCN(5, 3)
    layer(x, edge_index, weight)
    assert copy.deepcopy(layer)._last_graph is None and layer._last_graph is not None
