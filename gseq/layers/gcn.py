r"""The graph convolution of Kipf & Welling with a fixed or learned self-loop weight.

The layer computes :math:`\hat D^{-1/2} (A + wI) \hat D^{-1/2} X W + b` without ever forming
:math:`A + wI` or an edges x features tensor. With :math:`X' = XW`, the per-node loop weight
:math:`l` (``w``, or the weight of a self-loop the graph already had), :math:`d = A\mathbf{1} + l` and
:math:`s = d^{-1/2}`:

.. math::
    Y = s \odot \bigl(A\,(s \odot X')\bigr) + (l \odot s^2) \odot X' + b

(:math:`\odot` scales rows). The sparse product runs on a loop-free CSR adjacency through
:func:`gseq.ops.spmm`; normalisation and the self-loop are dense row scalings, so a learned ``w`` gets
its gradient through dense tensors alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import zeros

from ..ops import CSR, spmm

__all__ = ["GCN", "GCNGraph", "gcn_graph", "gcn_norm", "check_graph_inputs"]

_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_ONE) == 1.0


@dataclass
class GCNGraph:
    """The structure a :class:`GCN` layer aggregates over, built once per graph (and cached).

    Attributes:
        csr: the adjacency :math:`A` as a CSR whose row ``i`` lists the sources of edges into ``i``, with
            self-loops removed when the layer adds its own (``values`` None for an unweighted graph).
        in_degree: :math:`A\\mathbf{1}`, the weighted in-degree of every node, loops excluded. ``[N]``
        out_degree: :math:`A^\\top\\mathbf{1}`, the weighted out-degree (only for ``normalize="both"``). ``[N]``
        has_loop: nodes that had a self-loop in the input graph. ``[N]`` bool, or None when no loops are
            added.
        kept_loop: the weight of that pre-existing loop (1 where edges are unweighted), 0 elsewhere. ``[N]``
    """

    csr: CSR
    in_degree: Tensor
    out_degree: Tensor | None
    has_loop: Tensor | None
    kept_loop: Tensor | None

    @property
    def num_nodes(self) -> int:
        return self.csr.shape[0]


def check_graph_inputs(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int) -> None:
    """Validate ``edge_index`` [2, E] (integer, in ``[0, num_nodes)``) and ``edge_weight`` [E]."""
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"edge_index: expected a LongTensor of shape [2, E], got {type(edge_index).__name__}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"edge_index: expected an integer tensor (torch.long), got dtype {edge_index.dtype}; "
                        "convert it with edge_index.long()")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index: expected shape [2, E] (row 0 sources, row 1 targets), got "
                         f"{list(edge_index.shape)}; transpose an [E, 2] list with edge_index.t()")
    if edge_index.numel() > 0:
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"edge_index: node indices must lie in [0, {num_nodes}) for {num_nodes} nodes "
                             f"(x has {num_nodes} rows), found values in [{lo}, {hi}]")
    if edge_weight is not None:
        if not isinstance(edge_weight, Tensor) or not edge_weight.is_floating_point():
            raise TypeError("edge_weight: expected a floating-point tensor of shape [E] or None")
        if edge_weight.dim() != 1 or edge_weight.numel() != edge_index.size(1):
            raise ValueError(f"edge_weight: expected shape [{edge_index.size(1)}] (one weight per edge), got "
                             f"{list(edge_weight.shape)}")
        if edge_weight.device != edge_index.device:
            raise ValueError(f"edge_weight: on {edge_weight.device} but edge_index is on {edge_index.device}; "
                             "move both to one device")


def gcn_graph(
    edge_index: Tensor,
    edge_weight: Tensor | None = None,
    num_nodes: int | None = None,
    *,
    add_self_loops: bool = True,
    out_degree: bool = False,
    dtype: torch.dtype | None = None,
) -> GCNGraph:
    """Build the :class:`GCNGraph` of ``edge_index``: loop-free CSR, degrees and the loops to keep.

    Self-loops follow PyG's ``add_remaining_self_loops``: every node ends with exactly one loop; a node that
    already had one keeps that loop's weight (1 when ``edge_weight`` is None, so that omitting unit weights
    changes nothing), every other node's loop weighs the layer's ``w``.
    """
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    check_graph_inputs(edge_index, edge_weight, num_nodes)
    edge_index = edge_index.long()
    dtype = dtype or (edge_weight.dtype if edge_weight is not None else torch.get_default_dtype())
    if edge_weight is not None:
        edge_weight = edge_weight.to(dtype)
    has_loop = kept_loop = None
    if add_self_loops:
        is_loop = edge_index[0] == edge_index[1]
        if bool(is_loop.any()):
            loop_nodes = edge_index[0, is_loop]
            has_loop = torch.zeros(num_nodes, dtype=torch.bool, device=edge_index.device)
            has_loop[loop_nodes] = True
            kept_loop = torch.zeros(num_nodes, dtype=dtype, device=edge_index.device)
            # the last loop of a node wins, as in PyG's add_remaining_self_loops
            kept_loop = kept_loop.index_put((loop_nodes,), edge_weight[is_loop].to(dtype)) if edge_weight is not None \
                else kept_loop.index_fill(0, loop_nodes, 1.0)
            keep = ~is_loop
            edge_index = edge_index[:, keep]
            edge_weight = edge_weight[keep] if edge_weight is not None else None
        else:
            has_loop = torch.zeros(num_nodes, dtype=torch.bool, device=edge_index.device)
            kept_loop = torch.zeros(num_nodes, dtype=dtype, device=edge_index.device)
    csr = CSR.from_edge_index(edge_index, edge_weight, num_nodes)
    in_deg = _row_sums(csr, dtype)
    out_deg = _row_sums(csr.t(), dtype) if out_degree else None
    return GCNGraph(csr, in_deg, out_deg, has_loop, kept_loop)


def _row_sums(csr: CSR, dtype: torch.dtype) -> Tensor:
    """Weighted row sums of a CSR, deterministic (rows in order) and differentiable in the values."""
    if csr.values is None:
        return csr.indptr.diff().to(dtype)
    if csr.nnz == 0:
        return csr.values.new_zeros(csr.shape[0]).to(dtype)
    return torch.segment_reduce(csr.values.to(dtype), "sum", offsets=csr.indptr)


def _inv_sqrt(deg: Tensor) -> Tensor:
    """``deg ** -0.5`` with 0 where ``deg == 0``, and a finite gradient there."""
    positive = deg > 0
    return torch.where(positive, torch.where(positive, deg, torch.ones_like(deg)).rsqrt(), torch.zeros_like(deg))


def _loop_vector(graph: GCNGraph, w: Tensor | float, dtype, device) -> Tensor:
    """Per-node self-loop weight ``l``: the kept loop where there was one, ``w`` elsewhere."""
    n = graph.num_nodes
    w = torch.as_tensor(w, dtype=dtype, device=device)
    if graph.has_loop is None:
        return torch.zeros(n, dtype=dtype, device=device)
    return torch.where(graph.has_loop, graph.kept_loop.to(dtype), w.expand(n))


def _scalings(graph: GCNGraph, w, normalize, dtype, device) -> tuple[Tensor, Tensor, Tensor]:
    """``(s_target, s_source, l)`` such that the output is ``s_t*(A@(s_s*X')) + l*s_t*s_s*X'``."""
    loop = _loop_vector(graph, w, dtype, device)
    s_t = _inv_sqrt(graph.in_degree.to(dtype) + loop)
    if normalize == "both":
        s_s = _inv_sqrt(graph.out_degree.to(dtype) + loop)
    else:  # PyG: both ends scaled by the in-degree of the node
        s_s = s_t
    return s_t, s_s, loop


def gcn_norm(
    edge_index: Tensor,
    edge_weight: Tensor | None = None,
    num_nodes: int | None = None,
    self_loop_weight: float | Tensor = 1.0,
    normalize: bool | str = True,
) -> tuple[Tensor, Tensor]:
    r"""The normalised edge list of :math:`\hat D^{-1/2}(A + wI)\hat D^{-1/2}`, as PyG's ``gcn_norm`` returns it.

    A reference and an explanation, not the layer's fast path: returns ``(edge_index, edge_weight)`` with
    the loop-free edges first and one self-loop per node (``arange(N)``) last. Unlike PyG's
    ``gcn_norm(improved=True)`` it applies ``self_loop_weight`` when ``edge_weight`` is None too.

    Args:
        edge_index: ``[2, E]`` edges, row 0 sources, row 1 targets.
        edge_weight: ``[E]`` weights, or None for ones.
        num_nodes: number of nodes. (default: ``edge_index.max() + 1``)
        self_loop_weight: ``w``. (default: ``1.0``)
        normalize: ``True`` (both ends by the target's in-degree, as PyG) or ``"both"`` (source by its
            out-degree, target by its in-degree).
    """
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    graph = gcn_graph(edge_index, edge_weight, num_nodes, out_degree=normalize == "both")
    dtype = graph.in_degree.dtype
    s_t, s_s, loop = _scalings(graph, self_loop_weight, normalize, dtype, edge_index.device)
    csr = graph.csr
    rows = torch.repeat_interleave(torch.arange(num_nodes, device=edge_index.device), csr.indptr.diff())
    cols = csr.indices
    values = csr.values if csr.values is not None else torch.ones(csr.nnz, dtype=dtype, device=edge_index.device)
    loops = torch.arange(num_nodes, device=edge_index.device)
    out_index = torch.cat([torch.stack([cols, rows]), torch.stack([loops, loops])], dim=1)
    out_weight = torch.cat([s_t[rows] * values.to(dtype) * s_s[cols], loop * s_t * s_s])
    return out_index, out_weight


class _NormalizedAggregate(torch.autograd.Function):
    """``s_t * (A @ (s_s * h)) + c * h`` as one autograd node, for a CSR whose values need no gradient.

    The same numbers as the composition of dense scalings around :func:`gseq.ops.spmm`, with fewer
    passes over the ``[N, F]`` tensors: the forward scales in place, and the backward computes
    ``s_s * (A^T (s_t * G)) + c * G`` through the transpose cached on the CSR, plus the row sums that
    give the gradients of ``s_t``, ``s_s`` and ``c`` (and so of a learned self-loop weight) only when
    they are needed.
    """

    @staticmethod
    def forward(ctx, h: Tensor, s_t: Tensor, s_s: Tensor, c: Tensor, csr: CSR, aggregate) -> Tensor:
        agg = aggregate(csr, h * s_s.unsqueeze(-1))  # A @ (s_s * h), [N, F]
        need_h, need_st, need_ss, need_c = ctx.needs_input_grad[:4]
        out = agg * s_t.unsqueeze(-1) if need_st else agg.mul_(s_t.unsqueeze(-1))
        out.addcmul_(h, c.unsqueeze(-1))
        ctx.csr = csr
        ctx.save_for_backward(h if (need_ss or need_c) else None, s_t, s_s, c, agg if need_st else None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        h, s_t, s_s, c, agg = ctx.saved_tensors
        need_h, need_st, need_ss, need_c = ctx.needs_input_grad[:4]
        grad_h = grad_st = grad_ss = grad_c = None
        if need_h or need_ss:
            back = spmm(ctx.csr.t(), grad * s_t.unsqueeze(-1))  # A^T (s_t * G)
            if need_ss:
                grad_ss = (back * h).sum(dim=1)
            if need_h:
                grad_h = back.mul_(s_s.unsqueeze(-1)).addcmul_(grad, c.unsqueeze(-1))
        if need_st:
            grad_st = (grad * agg).sum(dim=1)
        if need_c:
            grad_c = (grad * h).sum(dim=1)
        return grad_h, grad_st, grad_ss, grad_c, None, None


class GCN(MessagePassing):
    r"""Graph convolution (Kipf & Welling, ICLR 2017) with a fixed or learned self-loop weight.

    .. math::
        \mathbf{X}' = \hat{\mathbf{D}}^{-1/2} (\mathbf{A} + w\mathbf{I}) \hat{\mathbf{D}}^{-1/2}
        \mathbf{X} \mathbf{\Theta} + \mathbf{b},
        \qquad \hat{D}_{ii} = w + \textstyle\sum_j A_{ij}

    A drop-in for :class:`torch_geometric.nn.GCNConv`: with ``w = 1`` it computes ``GCNConv(...)``, with
    ``w = 2`` ``GCNConv(..., improved=True)`` (given explicit edge weights: PyG >= 2.3 ignores
    ``improved`` when ``edge_weight`` is None; this layer does not, so leaving out unit weights changes
    nothing here). Parameter names (``lin.weight``, ``bias``) match ``GCNConv``, so its ``state_dict``
    loads. Self-loops follow PyG's ``add_remaining_self_loops``: each node ends with exactly one; a loop the
    graph already had keeps its weight, every other node's loop weighs ``w``.

    Aggregation runs :func:`gseq.ops.spmm` on a loop-free CSR adjacency (built once per graph, and kept
    with ``cached=True``); normalisation and loops are dense row scalings (see the module docstring), so
    no edges x features tensor is ever made. :meth:`message` is kept for PyG tooling that asks for it.

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
            (default: ``False``)
        bias: learn an additive bias. (default: ``True``)
        improved: ``GCNConv``'s spelling of ``self_loop_weight=2.0``. (default: ``False``)
        add_self_loops: add the self-loops; False uses :math:`\hat D^{-1/2} A \hat D^{-1/2}` with the
            graph's own loops as ordinary edges. (default: ``normalize`` is not False)
        **kwargs: passed to :class:`~torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices :math:`(2, |\mathcal{E}|)`,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`
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
        super().__init__(**kwargs)
        if normalize not in (True, False, "both"):
            raise ValueError(f"normalize: expected True, False or 'both', got {normalize!r}")
        if add_self_loops is None:
            add_self_loops = normalize is not False
        if add_self_loops and normalize is False:
            raise ValueError("add_self_loops: self-loops are only added with normalize=True or 'both' (as in "
                             "GCNConv); pass normalize=True, or add_self_loops=False")
        if improved:
            if self_loop_weight != 1.0:
                raise ValueError("improved: give either improved=True or self_loop_weight, not both")
            self_loop_weight = 2.0
        learn = self_loop_weight == "learn"
        if not learn:
            if isinstance(self_loop_weight, str) or isinstance(self_loop_weight, bool) or \
                    not isinstance(self_loop_weight, (int, float)):
                raise TypeError(f"self_loop_weight: expected a float >= 0 or 'learn', got {self_loop_weight!r}")
            if not (self_loop_weight >= 0 and math.isfinite(self_loop_weight)):
                raise ValueError(f"self_loop_weight: must be a finite float >= 0 (or 'learn'), got {self_loop_weight!r}")
            if not add_self_loops and self_loop_weight != 1.0:
                raise ValueError("self_loop_weight: has no effect without self-loops; use normalize=True and "
                                 "add_self_loops=True, or leave it at 1.0")
        elif not add_self_loops:
            raise ValueError("self_loop_weight='learn' needs self-loops: use normalize=True or 'both'")

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.normalize = normalize
        self.cached = cached
        self.add_self_loops = add_self_loops
        self.learn_self_loop = learn
        self.fixed_self_loop_weight = None if learn else float(self_loop_weight)
        self._cached_graph: GCNGraph | None = None

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

    def self_loop_weight(self) -> Tensor:
        """The current ``w`` as a 0-d tensor (differentiable when learned)."""
        if self.raw_self_loop_weight is not None:
            return F.softplus(self.raw_self_loop_weight)
        return torch.tensor(self.fixed_self_loop_weight if self.add_self_loops else 0.0)

    def graph(self, edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int, dtype) -> GCNGraph:
        """The :class:`GCNGraph` for these edges (from the cache when ``cached=True``)."""
        if self.cached and self._cached_graph is not None:
            if self._cached_graph.num_nodes != num_nodes:
                raise ValueError(f"x: the cached graph has {self._cached_graph.num_nodes} nodes but x has {num_nodes} "
                                 "rows; use cached=False for more than one graph, or call reset_parameters()")
            return self._cached_graph
        graph = gcn_graph(edge_index, edge_weight, num_nodes, add_self_loops=self.add_self_loops,
                          out_degree=self.normalize == "both", dtype=dtype)
        if self.cached:
            self._cached_graph = graph
        return graph

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """Apply the layer.

        Args:
            x: node features ``[N, in_channels]``, dense or a torch sparse (COO/CSR) matrix.
            edge_index: ``[2, E]`` edges (row 0 sources, row 1 targets), or a torch sparse adjacency
                ``adj_t`` of shape ``[N, N]`` whose entry ``(i, j)`` is the edge ``j -> i`` (PyG's layout).
            edge_weight: ``[E]`` edge weights. (default: all ones)
        """
        if isinstance(x, (tuple, list)) or not isinstance(x, Tensor):
            raise TypeError("x: expected one tensor of node features [N, in_channels]; GCN does not do bipartite "
                            "message passing")
        if x.dim() != 2:
            raise ValueError(f"x: expected shape [N, in_channels], got {list(x.shape)}")
        if self.in_channels > 0 and x.size(1) != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} features per node (in_channels), got {x.size(1)}")
        if isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
            edge_index, edge_weight = _from_adj_t(edge_index, edge_weight)
        if not (self.cached and self._cached_graph is not None) and isinstance(edge_index, Tensor) \
                and edge_index.device != x.device:
            raise ValueError(f"edge_index: on {edge_index.device} but x is on {x.device}; move both to one device")
        if x.layout == torch.strided:
            h = self.lin(x)
        else:  # sparse features (e.g. bag-of-words): a sparse-dense product, no dense copy of x
            if self.in_channels <= 0:
                raise ValueError("x: sparse features need in_channels > 0 (no lazy initialisation)")
            h = torch.sparse.mm(x, self.lin.weight.t())
        graph = self.graph(edge_index, edge_weight, x.size(0), h.dtype)
        if self.normalize is False:
            out = self.message_and_aggregate(graph.csr, h)
        else:
            w = self.self_loop_weight().to(h.device, h.dtype)
            s_t, s_s, loop = _scalings(graph, w, self.normalize, h.dtype, h.device)
            coef = loop * s_t * s_s
            values = graph.csr.values
            if values is not None and values.requires_grad and torch.is_grad_enabled():
                # edge weights that need a gradient: plain autograd through spmm (its SDDMM backward)
                out = self.message_and_aggregate(graph.csr, h * s_s.unsqueeze(-1))
                out = out * s_t.unsqueeze(-1) + h * coef.unsqueeze(-1)
            else:
                out = _NormalizedAggregate.apply(h, s_t, s_s, coef, graph.csr, self.message_and_aggregate)
        if self.bias is not None:
            out = out + self.bias
        return out

    def message(self, x_j: Tensor, edge_weight: Tensor | None) -> Tensor:
        """The per-edge message ``w_ji * x_j`` (kept for PyG tooling; ``forward`` never builds it)."""
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: CSR, x: Tensor) -> Tensor:
        """``adj_t @ x`` through :func:`gseq.ops.spmm` (sum aggregation, deterministic)."""
        return spmm(adj_t, x, reduce="sum")

    def __repr__(self) -> str:
        w = "learn" if self.learn_self_loop else self.fixed_self_loop_weight
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, self_loop_weight={w}, "
                f"normalize={self.normalize})")


def _from_adj_t(adj_t: Tensor, edge_weight: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """PyG's ``adj_t`` (entry ``(i, j)`` = edge ``j -> i``) as ``edge_index`` and weights."""
    if edge_weight is not None:
        raise ValueError("edge_weight: must be None when the adjacency is given as a sparse tensor (its values "
                         "are the weights)")
    if adj_t.dim() != 2 or adj_t.size(0) != adj_t.size(1):
        raise ValueError(f"edge_index: a sparse adjacency must be square [N, N], got {list(adj_t.shape)}")
    coo = adj_t.to_sparse_coo().coalesce()
    target, source = coo.indices()
    return torch.stack([source, target]), coo.values()
