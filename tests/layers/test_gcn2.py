"""gseq.layers.GCN2 against PyG's GCN2Conv, a dense reference and float64 gradcheck."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.nn import GCN2Conv
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from gseq.layers import GCN2, GCNGraph

from test_gcn import dense_reference, random_graph  # same directory: pytest puts it on sys.path

C = 5  # channels of random_graph's features


def without_overwritten_loops(edge_index, weight):
    """Drop all but the last self-loop of each node. PyG uses the last one too, but gives the overwritten
    ones a gradient (index_put's backward) though they do not change the output; gseq gives them 0, the
    true derivative (test_gradcheck_float64 checks it on graphs that have them)."""
    keep = torch.ones(edge_index.size(1), dtype=torch.bool)
    seen = set()
    for i in reversed(range(edge_index.size(1))):
        s, t = edge_index[:, i].tolist()
        if s == t:
            keep[i] = s not in seen
            seen.add(s)
    return edge_index[:, keep], None if weight is None else weight[keep]


def pair(seed=0, **kwargs):
    """GCN2Conv and GCN2 built with the same arguments after the same seed (the same random weights)."""
    torch.manual_seed(seed)
    pyg = GCN2Conv(C, **kwargs)
    torch.manual_seed(seed)
    ours = GCN2(C, **kwargs)
    return pyg, ours


def outputs_and_grads(conv, x, x_0, adj, weight):
    """The output and the gradients of a fixed loss with respect to x, x_0, the weights and edge_weight."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, x_0)]
    w = None if weight is None else weight.detach().clone().requires_grad_(True)
    out = conv(*leaves, adj, w)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum() + (out ** 2).sum()
    inputs = [*leaves, *conv.parameters()] + ([w] if w is not None else [])
    # allow_unused: a cached layer's second call does not read edge_weight (GCN2Conv's neither)
    return [out, *torch.autograd.grad(loss, inputs, allow_unused=True)]


def assert_all_close(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("normalize, add_self_loops", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("cached", [False, True])
def test_matches_gcn2conv_on_edge_index(shared_weights, normalize, add_self_loops, weighted, cached):
    x, edge_index, weight = random_graph(1, weighted=weighted)
    edge_index, weight = without_overwritten_loops(edge_index, weight)
    x_0 = torch.randn_like(x)
    pyg, ours = pair(alpha=0.3, theta=0.5, layer=2, shared_weights=shared_weights, cached=cached,
                     normalize=normalize, add_self_loops=add_self_loops)
    assert list(ours.state_dict()) == list(pyg.state_dict())
    for a, b in zip(ours.state_dict().values(), pyg.state_dict().values()):  # the same random draws
        assert torch.equal(a, b)
    for _ in range(2):  # cached: the second call reads the cache
        assert_all_close(outputs_and_grads(ours, x, x_0, edge_index, weight),
                         outputs_and_grads(pyg, x, x_0, edge_index, weight))


@pytest.mark.parametrize("layout", ["csr", "coo"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_gcn2conv_on_sparse_adj_t(layout, normalize):
    x, edge_index, weight = random_graph(2)
    x_0 = torch.randn_like(x)
    to_sparse = to_torch_csr_tensor if layout == "csr" else to_torch_coo_tensor
    adj_t = to_sparse(edge_index.flip(0), weight, (x.size(0), x.size(0)))  # entry (i, j): the edge j -> i
    pyg, ours = pair(alpha=0.1, theta=1.5, layer=7, normalize=normalize)
    assert_all_close(outputs_and_grads(ours, x, x_0, adj_t, None), outputs_and_grads(pyg, x, x_0, adj_t, None))


def test_pyg_example_input_gcnnorm_and_to_sparse_tensor():
    """What examples/gcn2_cora.py feeds its layers: T.GCNNorm() then T.ToSparseTensor(), normalize=False."""
    import torch_geometric.transforms as T
    from torch_geometric.data import Data

    x, edge_index, _ = random_graph(3, weighted=False)
    data = T.Compose([T.GCNNorm(), T.ToSparseTensor()])(Data(x=x, edge_index=edge_index))
    pyg, ours = pair(alpha=0.1, theta=0.5, layer=1, normalize=False)
    torch.testing.assert_close(ours(x, x, data.adj_t), pyg(x, x, data.adj_t), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("layer", [1, 7])
def test_pyg_example_input_gives_the_same_bits(shared_weights, layer):
    """On the example's input (a normalised sparse adj_t, normalize=False) the layer replays GCN2Conv's float
    operations in GCN2Conv's order: outputs and gradients equal to the last bit, so a seeded training script
    follows the same trajectory with either layer (not merely one within rounding)."""
    import torch_geometric.transforms as T
    from torch_geometric.data import Data

    x, edge_index, _ = random_graph(4, weighted=False)
    x_0 = torch.randn_like(x)
    data = T.Compose([T.GCNNorm(), T.ToSparseTensor()])(Data(x=x, edge_index=edge_index))
    pyg, ours = pair(alpha=0.1, theta=0.5, layer=layer, shared_weights=shared_weights, normalize=False)
    for a, b in zip(outputs_and_grads(ours, x, x_0, data.adj_t, None),
                    outputs_and_grads(pyg, x, x_0, data.adj_t, None), strict=True):
        assert torch.equal(a, b), (a - b).abs().max()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), alpha=st.floats(0, 1), theta=st.floats(0, 3), layer=st.integers(1, 64),
       shared=st.booleans(), weighted=st.booleans())
def test_property_matches_gcn2conv(seed, alpha, theta, layer, shared, weighted):
    x, edge_index, weight = random_graph(seed, weighted=weighted)
    x_0 = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    pyg, ours = pair(alpha=alpha, theta=theta, layer=layer, shared_weights=shared)
    torch.testing.assert_close(ours(x, x_0, edge_index, weight), pyg(x, x_0, edge_index, weight), atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("w", [0.0, 0.5, 3.0])
def test_fixed_self_loop_weight_against_dense_reference(w):
    x, edge_index, weight = random_graph(4, dtype=torch.float64)
    x_0 = torch.randn_like(x)
    conv = GCN2(C, 0.2, 1.0, 3, self_loop_weight=w).double()
    h = 0.8 * dense_reference(x, edge_index, weight, w) + 0.2 * x_0  # (1 - a) P_w x + a x_0
    beta = math.log(1.0 / 3 + 1)
    expected = h @ ((1 - beta) * torch.eye(C, dtype=x.dtype) + beta * conv.weight1)
    torch.testing.assert_close(conv(x, x_0, edge_index, weight), expected)


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("self_loop_weight", [1.0, 2.5, "learn"])
def test_gradcheck_float64(shared_weights, self_loop_weight):
    x, edge_index, weight = random_graph(5, n=8, e=20, dtype=torch.float64)
    x_0 = torch.randn_like(x)
    conv = GCN2(C, 0.3, 0.7, 2, shared_weights, self_loop_weight=self_loop_weight).double()
    names = [n for n, _ in conv.named_parameters()]

    def f(x, x_0, weight, *values):  # the output as a function of the inputs and of every parameter
        return torch.func.functional_call(conv, dict(zip(names, values)), (x, x_0, edge_index, weight))

    inputs = [t.detach().clone().requires_grad_(True) for t in (x, x_0, weight, *conv.parameters())]
    assert torch.autograd.gradcheck(f, inputs)


def test_learned_self_loop_weight_moves_and_matches_fixed_at_its_value():
    x, edge_index, weight = random_graph(6)
    x_0 = torch.randn_like(x)
    learned = GCN2(C, 0.1, 0.5, 1, self_loop_weight="learn")
    assert float(learned.self_loop_weight().detach()) == pytest.approx(1.0)
    learned(x, x_0, edge_index, weight).square().sum().backward()
    assert learned.raw_self_loop_weight.grad is not None and learned.raw_self_loop_weight.grad != 0
    with torch.no_grad():
        learned.raw_self_loop_weight.add_(0.7)
    fixed = GCN2(C, 0.1, 0.5, 1, self_loop_weight=float(learned.self_loop_weight()))
    fixed.weight1.data.copy_(learned.weight1.data)
    torch.testing.assert_close(learned(x, x_0, edge_index, weight), fixed(x, x_0, edge_index, weight))


def test_cached_graph_is_reused_and_reset_and_shared_graphs():
    x, edge_index, weight = random_graph(7)
    x_0 = torch.randn_like(x)
    conv = GCN2(C, 0.1, 0.5, 1, cached=True)
    first = conv(x, x_0, edge_index, weight)
    # a cached layer ignores a new graph, as GCN2Conv(cached=True) does
    torch.testing.assert_close(conv(x, x_0, edge_index[:, :5]), first)
    conv.reset_parameters()
    assert conv._cached_graph is None
    # one prebuilt graph for several layers, as the edges it was built from
    graph = conv.graph(edge_index, weight, x.size(0))
    assert isinstance(graph, GCNGraph)
    other = GCN2(C, 0.1, 0.5, 2)
    torch.testing.assert_close(other(x, x_0, graph), other(x, x_0, edge_index, weight))


def test_deterministic_and_more_rows_in_x_0():
    x, edge_index, weight = random_graph(8)
    x_0 = torch.randn(x.size(0) + 3, C)  # GCN2Conv uses the first N rows of x_0
    pyg, ours = pair(alpha=0.4, theta=0.5, layer=4)
    a = ours(x, x_0, edge_index, weight)
    assert torch.equal(a, ours(x, x_0, edge_index, weight))
    torch.testing.assert_close(a, pyg(x, x_0, edge_index, weight), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: GCN2(C, 1.5), ValueError, r"alpha: must lie in \[0, 1\]"),
    (lambda: GCN2(C, -0.1), ValueError, "alpha"),
    (lambda: GCN2(C, 0.1, theta=0.5), ValueError, "layer: theta needs layer"),
    (lambda: GCN2(C, 0.1, layer=2), ValueError, "theta: layer needs theta"),
    (lambda: GCN2(C, 0.1, 0.5, 0), ValueError, "layer: must be a positive integer"),
    (lambda: GCN2(C, 0.1, -0.5, 1), ValueError, "theta: must be a finite number >= 0"),
    (lambda: GCN2(0, 0.1), ValueError, "channels"),
    (lambda: GCN2(C, 0.1, aggr="max"), ValueError, "aggr"),
    (lambda: GCN2(C, 0.1, node_dim=1), ValueError, "node_dim"),
    (lambda: GCN2(C, 0.1, normalize="sym"), ValueError, "normalize"),
    (lambda: GCN2(C, 0.1, cached=1), TypeError, "cached"),
    (lambda: GCN2(C, 0.1, self_loop_weight=-1.0), ValueError, "self_loop_weight"),
    (lambda: GCN2(C, 0.1, normalize=False, self_loop_weight=2.0), ValueError, "self_loop_weight"),
    (lambda: GCN2(C, 0.1, add_self_loops=False, self_loop_weight="learn"), ValueError, "self_loop_weight"),
])
def test_bad_arguments_name_the_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("call, exc, match", [
    (lambda conv, x, e: conv(x, torch.randn(x.size(0), C + 1), e), ValueError, r"x_0: expected shape \[N, 5\]"),
    (lambda conv, x, e: conv(x, torch.randn(x.size(0) - 1, C), e), ValueError, "x_0: needs a row per node"),
    (lambda conv, x, e: conv(x[:, :4], x[:, :4], e), ValueError, r"x: expected shape \[N, 5\]"),
    (lambda conv, x, e: conv(x, x.double(), e), ValueError, "x_0: on"),
    (lambda conv, x, e: conv(x, x.to_sparse(), e), TypeError, "x_0: expected a dense tensor"),
    (lambda conv, x, e: conv(x, x, e.t()), ValueError, "edge_index: expected shape"),
    (lambda conv, x, e: conv(x, x, e, torch.ones(3)), ValueError, "edge_weight"),
])
def test_bad_inputs_name_the_argument(call, exc, match):
    x, edge_index, _ = random_graph(0)
    with pytest.raises(exc, match=match):
        call(GCN2(C, 0.1, 0.5, 1), x, edge_index)
