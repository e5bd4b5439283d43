"""gseq.layers.GCN under torch.compile, and its hot path free of host synchronisations.

Once the graph is built (``cached=True`` after one call, or a GCNGraph passed in), ``forward`` must trace
into one graph (``fullgraph=True``, 0 breaks) and compute what eager computes, gradients included; and it
must make no host synchronisation, which the CPU shows as ``.item()``/``int()``/``bool()`` calls and as
aten ops that need the host (``_local_scalar_dense``, ``nonzero``, a boolean index, ``torch.tensor`` data).
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gseq.layers import GCN, gcn_graph
from gseq.models import GCNNet


def small_graph(seed=0, n=12, e=40, batch=()):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, e), generator=g)
    edge_index = torch.cat([edge_index, torch.tensor([[3, 3, 5], [3, 3, 5]])], dim=1)  # some self-loops
    weight = torch.rand(edge_index.size(1), generator=g) + 0.1
    x = torch.randn(*batch, n, 5, generator=g)
    return x, edge_index, weight


LAYERS = {  # name: (GCN keyword arguments, leading batch dimensions of x, out_channels; x has 5 features)
    "default": ({}, (), 3),
    "learned-w": ({"self_loop_weight": "learn"}, (), 3),
    "both": ({"normalize": "both", "self_loop_weight": 2.0}, (), 3),
    "mean-reversed": ({"aggr": "mean", "flow": "target_to_source"}, (), 3),
    "no-normalize": ({"normalize": False}, (), 3),
    "batched": ({"self_loop_weight": "learn"}, (2,), 3),
    "aggregate-first": ({"self_loop_weight": "learn"}, (2,), 8),  # in < out: A X, then lin
    "aggregate-first-mean": ({"aggr": "mean"}, (), 8),
}


def explain(fn, *args):
    torch._dynamo.reset()
    return torch._dynamo.explain(fn)(*args)


@pytest.mark.parametrize("name", LAYERS)
def test_cached_layer_traces_without_graph_breaks(name):
    kwargs, batch, out_channels = LAYERS[name]
    x, edge_index, weight = small_graph(batch=batch)
    layer = GCN(5, out_channels, cached=True, **kwargs)
    layer(x, edge_index, weight)  # builds the cache
    report = explain(layer, x, edge_index, weight)
    assert report.graph_break_count == 0, [b.reason for b in report.break_reasons]
    assert report.graph_count == 1


def test_prebuilt_graph_traces_without_graph_breaks():
    x, edge_index, weight = small_graph()
    layer = GCN(5, 3, self_loop_weight="learn")
    graph = layer.graph(edge_index, weight, num_nodes=x.size(0))
    report = explain(layer, x, graph)
    assert report.graph_break_count == 0, [b.reason for b in report.break_reasons]


def test_gcnnet_breaks_only_where_it_builds_graphs():
    x, edge_index, _ = small_graph()
    cached = GCNNet(5, 3, hidden_channels=8, cached=True).eval()
    cached(x, edge_index)
    assert explain(cached, x, edge_index).graph_break_count == 0
    uncached = GCNNet(5, 3, hidden_channels=8).eval()
    report = explain(uncached, x, edge_index)
    assert 0 < report.graph_break_count <= 6  # 23 (10 cached) before graphs were built outside the traced code
    assert all("_build_graph" in b.reason for b in report.break_reasons), [b.reason for b in report.break_reasons]


@pytest.mark.parametrize("name", LAYERS)
def test_compiled_fullgraph_equals_eager_with_gradients(name):
    kwargs, batch, out_channels = LAYERS[name]
    x, edge_index, weight = small_graph(seed=1, batch=batch)
    layer = GCN(5, out_channels, cached=True, **kwargs)
    torch.nn.init.normal_(layer.bias)
    layer(x, edge_index, weight)
    results = []
    for fn in (layer, torch.compile(layer, fullgraph=True, backend="aot_eager")):
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = fn(xi, edge_index, weight)
        out.pow(2).sum().backward()
        results.append([out.detach(), xi.grad] + [p.grad for p in layer.parameters()])
    torch._dynamo.reset()
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=1e-5)


def test_compiled_with_inductor_equals_eager():
    x, edge_index, weight = small_graph(seed=2)
    layer = GCN(5, 3, cached=True)
    torch.nn.init.normal_(layer.bias)
    with torch.no_grad():
        expected = layer(x, edge_index, weight)
        got = torch.compile(layer, fullgraph=True)(x, edge_index, weight)
    torch._dynamo.reset()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("aggr", ["max", "min"])
def test_max_min_compile_into_one_graph_on_the_cpu_and_equal_eager(aggr):
    x, edge_index, weight = small_graph(seed=3)
    layer = GCN(5, 3, cached=True, aggr=aggr)
    expected = layer(x, edge_index, weight)
    report = explain(layer, x, edge_index, weight)  # dynamo traces the torch backend's max/min autograd
    assert report.graph_break_count == 0, [b.reason for b in report.break_reasons]
    torch.testing.assert_close(torch.compile(layer, fullgraph=True, backend="aot_eager")(x, edge_index, weight),
                               expected)
    torch._dynamo.reset()


# --- host synchronisations ------------------------------------------------------------------------------

class HostSyncs(TorchDispatchMode):
    """Records aten ops that need the host: a scalar read, nonzero, a boolean index, data from Python.

    (It sees the ops around gseq's custom operator, not inside it; the Python-level counters of
    ``count_host_syncs`` see inside.)"""

    OPS = ("aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten.lift_fresh", "aten.unique",
           "aten._unique")

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        boolean_index = name.startswith("aten.index") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ()) or ())
        if name.startswith(self.OPS) or boolean_index:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def count_host_syncs(monkeypatch):
    """Counts Python calls that read a tensor on the host while the returned list's context is active."""
    seen = []

    def counting(name, original):
        def wrapper(self, *args, **kwargs):
            seen.append(name)
            return original(self, *args, **kwargs)
        return wrapper

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "nonzero", counting("torch.nonzero", torch.nonzero))
    return seen


@pytest.mark.parametrize("name", LAYERS)
def test_cached_forward_and_backward_make_no_host_sync(name, count_host_syncs):
    kwargs, batch, out_channels = LAYERS[name]
    x, edge_index, weight = small_graph(batch=batch)
    layer = GCN(5, out_channels, cached=True, **kwargs)
    layer(x.requires_grad_(True), edge_index, weight).sum().backward()  # builds the cache and the transpose
    count_host_syncs.clear()
    with HostSyncs() as mode:
        layer(x, edge_index, weight).pow(2).sum().backward()
    assert count_host_syncs == [] and mode.seen == []


def test_prebuilt_graph_forward_and_backward_make_no_host_sync(count_host_syncs):
    x, edge_index, weight = small_graph()
    graph = gcn_graph(edge_index, weight, x.size(0))
    layer = GCN(5, 3, self_loop_weight="learn")
    layer(x, graph).sum().backward()
    count_host_syncs.clear()
    with HostSyncs() as mode:
        layer(x, graph).pow(2).sum().backward()
    assert count_host_syncs == [] and mode.seen == []


def test_the_sync_detectors_see_syncs(count_host_syncs):
    """The detectors above are not blind: a graph build is full of syncs."""
    x, edge_index, weight = small_graph()
    with HostSyncs() as mode:
        GCN(5, 3)(x, edge_index, weight)
    assert count_host_syncs and "aten._local_scalar_dense.default" in mode.seen
    assert any(s.startswith("aten.index") for s in mode.seen)
