r"""The graph convolution of Kipf & Welling (:class:`GCN`), a drop-in for PyG's ``GCNConv``.

``forward`` reads as ``GCNConv``'s: graph -> ``lin`` -> aggregate -> bias (aggregate -> ``lin`` where that
is the cheaper order and the aggregation is linear). The graph (a loop-free CSR,
the degrees, the self-loops to keep) is built and validated once, and the aggregation over it is one
function, :func:`gseq.layers.gcn_structure.aggregate`, whose one sparse product is :func:`gseq.ops.spmm`
(a custom operator that ``torch.compile`` traces). From :meth:`GCN.forward` to the kernel::

    GCN.forward -> gcn_structure.aggregate -> ops.spmm -> ops._autograd.spmm_sum (custom op gseq::spmm_sum)
                -> ops._torch.spmm_sum (MKL's CSR product) | ops._triton.spmm_sum (Triton kernels)
"""

from __future__ import annotations

import math
import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import zeros

from .gcn_structure import FLOWS, GCNGraph, aggregate, check_graph_inputs, gcn_graph, gcn_norm, graph_from_adj_t

__all__ = ["GCN", "GCNGraph", "gcn_graph", "gcn_norm", "check_graph_inputs"]

_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_ONE) == 1.0
# the aggregations of MessagePassing that GCN computes, by the name PyG stores in `self.aggr`
_REDUCES = {"add": "sum", "sum": "sum", "mean": "mean", "max": "max", "min": "min", "SumAggregation()": "sum",
            "MeanAggregation()": "mean", "MaxAggregation()": "max", "MinAggregation()": "min"}
# the aggregations linear in the features: aggregating X then applying lin equals lin then aggregating
_LINEAR_REDUCES = ("sum", "mean")
# MessagePassing hooks that only PyG's propagate() would run
_PROPAGATE_HOOKS = ("_propagate_forward_pre_hooks", "_propagate_forward_hooks", "_message_forward_pre_hooks",
                    "_message_forward_hooks", "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
                    "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks")


def _check_aggr(aggr: object) -> str:
    reduce = _REDUCES.get(aggr) if isinstance(aggr, str) else None
    if reduce is None:
        raise ValueError(f"aggr: GCN aggregates with 'add' (= 'sum'), 'mean', 'max' or 'min', got {aggr!r}; "
                         "use torch_geometric.nn.GCNConv for other aggregations")
    return reduce


def _check_self_loop_weight(self_loop_weight: object, improved: bool, add_self_loops: bool) -> float | str:
    """``w`` as the layer keeps it: a float >= 0 (2.0 for ``improved``), or ``"learn"``."""
    if improved and add_self_loops:  # without loops improved has no effect, as in GCNConv
        if self_loop_weight != 1.0:
            raise ValueError("improved: give either improved=True or self_loop_weight, not both")
        return 2.0
    if self_loop_weight == "learn":
        if not add_self_loops:
            raise ValueError("self_loop_weight='learn' needs self-loops: use normalize=True or 'both'")
        return "learn"
    if isinstance(self_loop_weight, (str, bool)) or not isinstance(self_loop_weight, (int, float)):
        raise TypeError(f"self_loop_weight: expected a float >= 0 or 'learn', got {self_loop_weight!r}")
    if not (self_loop_weight >= 0 and math.isfinite(self_loop_weight)):
        raise ValueError(f"self_loop_weight: must be a finite float >= 0 (or 'learn'), got {self_loop_weight!r}")
    if not add_self_loops and self_loop_weight != 1.0:
        raise ValueError("self_loop_weight: has no effect without self-loops; use normalize=True and "
                         "add_self_loops=True, or leave it at 1.0")
    return float(self_loop_weight)


class GCN(MessagePassing):
    r"""Graph convolution (Kipf & Welling, ICLR 2017) with a fixed or learned self-loop weight.

    .. math::
        \mathbf{X}' = \hat{\mathbf{D}}^{-1/2} (\mathbf{A} + w\mathbf{I}) \hat{\mathbf{D}}^{-1/2}
        \mathbf{X} \mathbf{\Theta} + \mathbf{b},
        \qquad \hat{D}_{ii} = w + \textstyle\sum_j A_{ij}

    A drop-in for :class:`torch_geometric.nn.GCNConv`: given the same weights (parameter names
    ``lin.weight``, ``bias`` match, so a ``state_dict`` loads) and the keyword arguments ``improved``,
    ``cached``, ``add_self_loops``, ``normalize``, ``bias``, ``aggr`` (``"add"``/``"sum"``, ``"mean"``,
    ``"max"``, ``"min"``), ``flow`` and ``node_dim``, it computes what ``GCNConv`` computes, on
    ``edge_index`` with or without ``edge_weight``, on torch sparse adjacencies (PyG's ``adj_t``) and on
    features with leading batch dimensions ``[*, N, F]``. Differences, each deliberate:

    - ``improved=True`` with ``edge_weight=None``: PyG >= 2.3 ignores ``improved`` there (its unit
      weights are made after the loops were filled); this layer treats a missing ``edge_weight`` as unit
      weights, so the loop weighs 2 with and without them.
    - float16/bfloat16 features: degrees, normalisation and the sparse sums are float32 (``GCNConv``
      computes the degree in the feature dtype, which overflows at 65,504).
    - other aggregations, PyG's ``Explainer`` edge masks and ``propagate``/``message`` hooks are refused
      with an error (this layer never calls ``propagate``); ``decomposed_layers`` changes nothing.
    - the arguments after ``out_channels`` are keyword-only.
    - ``"add"``/``"sum"``/``"mean"`` with ``in_channels < out_channels`` aggregate first, then apply
      ``lin``: :math:`\hat A (X \Theta) = (\hat A X) \Theta`, so the sparse product runs over the fewer
      channels (``GCNConv`` always applies ``lin`` first). Same outputs and gradients up to float rounding;
      ``"max"``/``"min"`` (not linear) always apply ``lin`` first.
    - where ``GCNConv`` raises, this layer computes: a CSC adjacency, a sparse adjacency with batched
      features, edge weights with nodes at a ``node_dim`` other than -2.
    - a node whose weighted degree (with its loop) is negative gets :math:`s = 0` (``GCNConv``: NaN); at
      ties, ``"max"``/``"min"`` may share the gradient among the tied messages differently.

    Self-loops follow PyG: on ``edge_index``, ``add_remaining_self_loops`` (each node ends with exactly
    one loop; a loop the graph had keeps its weight, the last one if several; every other loop weighs
    ``w``); on a sparse adjacency, ``w`` is added to its diagonal. So on ``edge_index`` with a loop on
    every node ``w`` weighs no node; a learned ``w`` then warns when the graph is built (it would get no
    gradient). ``flow="target_to_source"`` aggregates over the reversed edges.

    Aggregation runs :func:`gseq.ops.spmm`'s kernels on a loop-free CSR adjacency built once per graph
    (:class:`GCNGraph`, kept with ``cached=True``); normalisation and loops are dense row scalings, so no
    edges x features tensor is ever made. Example::

        conv = GCN(16, 32)                      # as GCNConv(16, 32); GCN(16, 32, self_loop_weight="learn")
        out = conv(x, edge_index, edge_weight)  # [N, 32]

    **torch.compile**: build the graph once, then compile; the forward makes no host synchronisation
    and compiles with ``fullgraph=True`` (edge weights that require a gradient break the graph at their
    sparse product, which runs eagerly; ``"max"``/``"min"`` are traced on the CPU, not checked on CUDA)::

        conv = GCN(16, 16, cached=True)
        conv(x, edge_index)                         # builds and caches the graph (validated once)
        fast = torch.compile(conv, fullgraph=True)
        out = fast(x, edge_index)                   # or: g = conv.graph(edge_index); fast(x, g)

    Without a cached, reused or prebuilt graph each call builds one, which breaks the compiled graph there.

    Args:
        in_channels: size of each input sample, or -1 to infer it on the first call.
        out_channels: size of each output sample.
        self_loop_weight: ``w``, a float >= 0, or ``"learn"`` for one learnable positive weight
            (``softplus`` of a raw parameter, starting at 1.0) whose gradient flows through the
            normalisation. (default: ``1.0``)
        normalize: ``True`` scales both ends of an edge ``j -> i`` by node degrees computed on the target
            side (in-degree), as ``GCNConv`` does; ``"both"`` scales the source by its out-degree and the
            target by its in-degree (DGL's ``norm="both"`` for directed graphs); ``False`` aggregates
            :math:`A X \Theta` with no normalisation and no added loops, as ``GCNConv(normalize=False)``.
            (default: ``True``)
        cached: build the graph structure (CSR, degrees) on the first call and reuse it afterwards
            (transductive learning on one graph). With ``"learn"`` the learned weight still updates.
            With ``False`` the layer still keeps the last call's graph, and reuses it when the same
            ``edge_index`` and ``edge_weight`` tensor objects come back not written in place (a loop
            over one graph; weights that require a gradient are never reused); other edges build a
            new graph, as ``GCNConv`` does. (default: ``False``)
        bias: learn an additive bias. (default: ``True``)
        improved: ``GCNConv``'s spelling of ``self_loop_weight=2.0``; no effect without self-loops.
            (default: ``False``)
        add_self_loops: add the self-loops; False uses :math:`\hat D^{-1/2} A \hat D^{-1/2}` with the
            graph's own loops as ordinary edges. (default: ``normalize`` is not False)
        **kwargs: passed to :class:`~torch_geometric.nn.conv.MessagePassing`: ``aggr`` (default:
            ``"add"``), ``flow``, ``node_dim`` (default: ``-2``), ``decomposed_layers``.

    Shapes:
        - **input:** node features :math:`(*, |\mathcal{V}|, F_{in})` (or a torch sparse
          :math:`(|\mathcal{V}|, F_{in})`), edge indices :math:`(2, |\mathcal{E}|)`, a sparse adjacency
          :math:`(|\mathcal{V}|, |\mathcal{V}|)` or a :class:`GCNGraph`, edge weights
          :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(*, |\mathcal{V}|, F_{out})`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        self_loop_weight: float | str = 1.0,
        normalize: bool | str = True,
        cached: bool = False,
        bias: bool = True,
        improved: bool = False,
        add_self_loops: bool | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        _check_aggr(kwargs["aggr"])
        super().__init__(**kwargs)
        if normalize not in (True, False, "both"):
            raise ValueError(f"normalize: expected True, False or 'both', got {normalize!r}")
        if add_self_loops is None:
            add_self_loops = normalize is not False
        if add_self_loops and normalize is False:
            raise ValueError("add_self_loops: self-loops are only added with normalize=True or 'both' (as in "
                             "GCNConv); pass normalize=True, or add_self_loops=False")
        self_loop_weight = _check_self_loop_weight(self_loop_weight, improved, add_self_loops)
        learn = self_loop_weight == "learn"

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.normalize = normalize
        self.cached = cached
        self.improved = improved
        self.add_self_loops = add_self_loops
        self.learn_self_loop = learn
        self.fixed_self_loop_weight = None if learn else self_loop_weight
        self._cached_graph: GCNGraph | None = None
        # cached=False: (key, weak references to edge_index/edge_weight, graph) of the last call, reused when
        # the same unmodified tensors come back (_build_graph); never copied or pickled
        self._last_graph: tuple | None = None

        self.lin = Linear(in_channels, out_channels, bias=False, weight_initializer="glorot")
        if learn:
            self.raw_self_loop_weight = Parameter(torch.empty(()))
        else:
            self.register_parameter("raw_self_loop_weight", None)
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin.reset_parameters()
        if self.raw_self_loop_weight is not None:
            with torch.no_grad():
                self.raw_self_loop_weight.fill_(_SOFTPLUS_INV_ONE)
        zeros(self.bias)
        self._cached_graph = None
        self._last_graph = None

    def __getstate__(self) -> dict:  # copy.deepcopy and pickle: a weak reference is not state
        return {**self.__dict__, "_last_graph": None}

    def self_loop_weight(self) -> Tensor:
        """The current ``w`` as a 0-d tensor (differentiable when learned)."""
        w = self._w()
        return w if isinstance(w, Tensor) else torch.tensor(w)

    def _w(self) -> Tensor | float:
        """``w``: softplus of the raw parameter when learned, else the fixed float (0.0 without loops)."""
        if self.raw_self_loop_weight is not None:
            return F.softplus(self.raw_self_loop_weight)
        return self.fixed_self_loop_weight if self.add_self_loops else 0.0

    def forward(self, x: Tensor, edge_index: Tensor | GCNGraph, edge_weight: Tensor | None = None) -> Tensor:
        """Apply the layer.

        Args:
            x: node features ``[*, N, in_channels]`` (nodes along ``node_dim``), dense, or a torch sparse
                (COO/CSR) matrix ``[N, in_channels]``.
            edge_index: ``[2, E]`` edges (row 0 sources, row 1 targets), a torch sparse adjacency
                ``adj_t`` of shape ``[N, N]`` whose entry ``(i, j)`` is the edge ``j -> i`` (PyG's layout),
                or a :class:`GCNGraph` from :meth:`graph`.
            edge_weight: ``[E]`` edge weights. (default: all ones)
        """
        reduce, node_dim = self._check_call(x)
        graph = self._graph_for(x, edge_index, edge_weight, node_dim)  # built and validated once
        w, how = self._w(), dict(normalize=self.normalize, reduce=reduce, node_dim=node_dim)
        if x.layout != torch.strided:  # sparse features (e.g. bag-of-words): a sparse-dense product, no dense copy
            out = aggregate(graph, torch.sparse.mm(x, self.lin.weight.t()), w, **how)
        elif reduce in _LINEAR_REDUCES and x.size(-1) < self.out_channels:  # A (X W) = (A X) W, over fewer channels
            out = self.lin(aggregate(graph, x, w, **how))
        else:
            out = aggregate(graph, self.lin(x), w, **how)
        if self.bias is not None:
            out = out + self.bias
        return out

    def _check_call(self, x: Tensor) -> tuple[str, int]:
        """Validate ``x`` and the MessagePassing settings; returns ``(reduce, node_dim)`` (no host sync)."""
        if isinstance(x, (tuple, list)) or not isinstance(x, Tensor):
            raise TypeError("x: expected one tensor of node features [N, in_channels]; GCN does not do bipartite "
                            "message passing")
        if x.dim() < 2:
            raise ValueError(f"x: expected shape [N, in_channels] (or [*, N, in_channels]), got {list(x.shape)}")
        if not x.is_floating_point():  # torch's Linear would fail with "expected m1 and m2 to have the same dtype"
            raise TypeError(f"x: expected floating-point node features, got dtype {x.dtype}; convert them with "
                            "x.float()")
        if self.in_channels > 0 and x.size(-1) != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} features per node (in_channels), got {x.size(-1)}")
        if x.layout != torch.strided and (x.dim() != 2 or self.in_channels <= 0):
            raise ValueError("x: sparse features must be a matrix [N, in_channels] and need in_channels > 0 (no "
                             "lazy initialisation)")
        node_dim = self.node_dim
        if not isinstance(node_dim, int) or not -x.dim() <= node_dim < x.dim() or node_dim % x.dim() == x.dim() - 1:
            raise ValueError(f"node_dim: must index a dimension of x other than the last (features), got "
                             f"{node_dim!r} for x of shape {list(x.shape)}")
        if self.flow not in FLOWS:
            raise ValueError(f"flow: expected one of {FLOWS}, got {self.flow!r}")
        if self._explain or any(getattr(self, name) for name in _PROPAGATE_HOOKS):
            raise ValueError("explain: GCN never calls propagate(), so PyG explainer edge masks and propagate/"
                             "message hooks would be ignored; use torch_geometric.nn.GCNConv for them")
        return _check_aggr(self.aggr), node_dim % x.dim()

    def _graph_for(self, x: Tensor, edge_index: Tensor | GCNGraph, edge_weight: Tensor | None,
                   node_dim: int) -> GCNGraph:
        """:meth:`graph` for this call, on ``x``'s device."""
        if isinstance(edge_index, Tensor) and not (self.cached and self._cached_graph is not None) \
                and edge_index.device != x.device:
            raise ValueError(f"edge_index: on {edge_index.device} but x is on {x.device}; move both to one device")
        graph = self.graph(edge_index, edge_weight, x.size(node_dim), x.dtype)
        if graph.in_degree.device != x.device:
            raise ValueError(f"x: on {x.device} but the graph is on {graph.in_degree.device}; move x, or call "
                             "reset_parameters() to rebuild the cached graph on the new device")
        return graph

    def graph(self, edge_index: Tensor | GCNGraph, edge_weight: Tensor | None = None, num_nodes: int | None = None,
              dtype: torch.dtype | None = None) -> GCNGraph:
        """The :class:`GCNGraph` this layer aggregates over (from the cache when ``cached=True``).

        Build it once and pass it to :meth:`forward` in place of ``edge_index`` (it may be shared by
        layers with the same ``normalize``, ``add_self_loops`` and ``flow``): the edges are validated
        here, not on every call.

        Args:
            edge_index: ``[2, E]`` edges, a torch sparse ``adj_t`` (see :meth:`forward`), or a graph.
            edge_weight: ``[E]`` edge weights. (default: all ones)
            num_nodes: the number of nodes. (default: ``edge_index.max() + 1``)
            dtype: the feature dtype: degrees and weights are float64 for float64, else float32.
                (default: the dtype of ``edge_weight``, else float32)
        """
        cache = self._cached_graph
        if self.cached and cache is not None:
            if num_nodes is not None and cache.num_nodes != num_nodes:
                raise ValueError(f"x: the cached graph has {cache.num_nodes} nodes but x has {num_nodes} rows; "
                                 "use cached=False for more than one graph, or call reset_parameters()")
            return cache
        if isinstance(edge_index, GCNGraph):
            graph = self._check_graph(edge_index, num_nodes)
        else:
            graph = self._build_graph(edge_index, edge_weight, num_nodes, dtype)
        if self.cached:
            self._cached_graph = graph
        return graph

    @torch.compiler.disable
    def _build_graph(self, edge_index, edge_weight, num_nodes, dtype) -> GCNGraph:
        key = self._reuse_key(edge_index, edge_weight, num_nodes, dtype)
        if self._last_graph is not None and key is not None and self._last_graph[0] == key \
                and all(ref() is t for ref, t in zip(self._last_graph[1], (edge_index, edge_weight)) if t is not None):
            graph = self._last_graph[2]  # perhaps built under no_grad (an evaluation between training steps)
        else:
            graph = self._new_graph(edge_index, edge_weight, num_nodes, dtype)
            self._last_graph = None if key is None else (key, [weakref.ref(t) for t in (edge_index, edge_weight)
                                                                if t is not None], graph)
        if torch.is_grad_enabled():
            graph.csr.structure.transpose()  # the backward's pattern, built here once and kept: never while tracing
        return graph

    def _reuse_key(self, edge_index, edge_weight, num_nodes, dtype) -> tuple | None:
        """What must be equal for the last call's graph to be this call's: the same ``edge_index`` and
        ``edge_weight`` tensor objects (held by weak reference), not written in place since (their version
        counters), and the same settings; None where nothing may be reused (weights that need a gradient:
        the graph holds their autograd history of the last call). Grad mode is not part of it: a graph
        holds no autograd history otherwise, so training steps and evaluations in turn share one graph."""
        if not (isinstance(edge_index, Tensor) and isinstance(edge_weight, (Tensor, type(None)))):
            return None  # refused by gcn_graph
        if edge_weight is not None and edge_weight.requires_grad and torch.is_grad_enabled():
            return None
        versions = tuple(None if t is None else (id(t), t._version) for t in (edge_index, edge_weight))
        return versions + (num_nodes, dtype, self.flow, self.add_self_loops, self.normalize == "both")

    def _new_graph(self, edge_index, edge_weight, num_nodes, dtype) -> GCNGraph:
        existing_loops = "keep"
        if isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
            if self.flow == "target_to_source":
                raise ValueError("flow: 'target_to_source' cannot be used with a sparse adjacency (as in GCNConv); "
                                 "pass the transposed adjacency adj_t.t() with the default flow instead")
            edge_index, edge_weight = graph_from_adj_t(edge_index, edge_weight)
            existing_loops = "add"  # PyG adds w to the diagonal of a sparse adjacency
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if isinstance(edge_index, Tensor) and edge_index.numel() else 0
        graph = gcn_graph(edge_index, edge_weight, num_nodes, add_self_loops=self.add_self_loops,
                          out_degree=self.normalize == "both", flow=self.flow, dtype=dtype,
                          existing_loops=existing_loops)
        if self.learn_self_loop and graph.has_loop is not None and num_nodes and bool(graph.has_loop.all()):
            warnings.warn("self_loop_weight='learn': every node of this graph already has a self-loop, which keeps "
                          "its own weight (PyG's add_remaining_self_loops), so the learned weight weighs no node and "
                          "gets no gradient; remove the graph's self-loops (torch_geometric.utils.remove_self_loops) "
                          "to learn it", stacklevel=3)
        return graph

    def _check_graph(self, graph: GCNGraph, num_nodes: int | None) -> GCNGraph:
        if num_nodes is not None and graph.num_nodes != num_nodes:
            raise ValueError(f"x: the graph has {graph.num_nodes} nodes but x has {num_nodes} rows")
        if graph.add_self_loops != self.add_self_loops or graph.flow != self.flow or \
                (self.normalize == "both" and graph.out_degree is None):
            raise ValueError(f"edge_index: this GCNGraph was built with add_self_loops={graph.add_self_loops}, "
                             f"flow={graph.flow!r}, out_degree={graph.out_degree is not None}, but the layer has "
                             f"add_self_loops={self.add_self_loops}, flow={self.flow!r}, normalize="
                             f"{self.normalize!r}; build it with this layer's graph() method")
        return graph

    def __repr__(self) -> str:
        w = "learn" if self.learn_self_loop else self.fixed_self_loop_weight
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, self_loop_weight={w}, "
                f"normalize={self.normalize})")
