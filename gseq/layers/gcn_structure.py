r"""The graph side of :class:`~gseq.layers.GCN`: the graph built once, and the aggregation over it.

:func:`gcn_graph` turns ``edge_index`` into a :class:`GCNGraph`: a CSR adjacency without self-loops (its
transpose built with it, for the backward), the degrees, and the self-loops to keep. The layer then needs
no host synchronisation and no validation per call: with :math:`l` the per-node self-loop weight,
:math:`d = A\mathbf{1} + l` and :math:`s = d^{-1/2}` (:func:`normalization`),

.. math::
    \hat D^{-1/2} (A + \mathrm{diag}(l)) \hat D^{-1/2} H = s \odot (A y) + (l \odot s) \odot y,
    \qquad y = s \odot H

(:math:`\odot` scales rows), which :func:`aggregate` computes with one sparse product,
:func:`gseq.ops.scaled_spmm`: no edges x features tensor is ever made, the normalisation and the loops
are dense row scalings. For a fixed self-loop weight the graph keeps the normalised values
:math:`s_j a_{ij} s_i` on its CSR pattern once, and each call is one product plus the loops' diagonal.
:func:`aggregate` is the whole aggregation of a GCN layer (everything but ``lin`` and the bias), for any
layer built on the same normalised adjacency::

    graph = gcn_graph(edge_index, num_nodes=n)  # once per graph
    out = aggregate(graph, h)                   # D^-1/2 (A + I) D^-1/2 h, [N, F]

Degrees and normalisation vectors are float32 (float64 for float64 features) whatever the feature
dtype: a node of in-degree 65,520 would have an infinite degree in float16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..ops import CSR, accumulation_dtype, scaled_spmm, spmm
from ..ops._checks import check_range, index_dtype

__all__ = ["GCNGraph", "gcn_graph", "aggregate", "normalization", "gcn_norm", "check_graph_inputs"]

#: PyG's message-passing directions: ``"target_to_source"`` aggregates over the reversed edges
FLOWS = ("source_to_target", "target_to_source")


@dataclass(eq=False)
class GCNGraph:
    r"""A graph prepared for :class:`~gseq.layers.GCN`: build it once with :func:`gcn_graph` (or
    :meth:`GCN.graph <gseq.layers.GCN.graph>`) and pass it in place of ``edge_index``.

    The per-node self-loop weight for the layer's ``w`` is ``where(has_loop, kept_loop, kept_loop + w)``
    (:meth:`loop_weight`).

    Attributes:
        csr: the adjacency :math:`A` as a CSR whose row ``i`` lists the sources of the edges into ``i``
            (after ``flow``), self-loops removed when loops are added (``values`` None when unweighted).
        in_degree: :math:`A\mathbf{1}`, the weighted in-degree, loops excluded. ``[N]``, float32 or float64
        out_degree: :math:`A^\top\mathbf{1}`, the weighted out-degree (built for ``normalize="both"``), or None.
        has_loop: nodes whose loop weight comes from the graph alone (a loop it had, PyG's
            ``add_remaining_self_loops``). ``[N]`` bool, or None when no loops are added.
        kept_loop: the weight of the loops taken from the graph, 0 elsewhere. ``[N]``, or None.
        in_count: entries of each row of ``csr`` (for ``aggr="mean"``). ``[N]`` int64
        add_self_loops: whether the graph was built for a layer that adds self-loops.
        flow: the message direction it was built for, ``"source_to_target"`` or ``"target_to_source"``.
    """

    csr: CSR
    in_degree: Tensor
    out_degree: Tensor | None
    has_loop: Tensor | None
    kept_loop: Tensor | None
    in_count: Tensor
    add_self_loops: bool
    flow: str = "source_to_target"
    # csr with its values cast to another float dtype (float64 features on a float32 graph), by dtype;
    # written by csr_as() only
    _cast: dict = field(default_factory=dict, init=False, repr=False)
    # (s_target, s_source, l, l s_target s_source) for a fixed self-loop weight, by (w, normalize, dtype),
    # and the normalised CSR by ("csr", w, normalize, dtype); written by _normalization_as() and
    # _normalized_csr() only, and only for a graph whose degrees need no gradient
    _norm: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def num_nodes(self) -> int:
        return self.in_degree.size(0)

    def loop_weight(self, w: Tensor | float) -> Tensor | None:
        """The per-node self-loop weight :math:`l` for the layer weight ``w`` (None without loops). ``[N]``"""
        if self.has_loop is None:
            return None
        return torch.where(self.has_loop, self.kept_loop, self.kept_loop + w)

    def csr_as(self, dtype: torch.dtype) -> CSR:
        """``csr`` with values of ``dtype`` (kept; recast per call when they require a gradient)."""
        csr = self.csr
        if csr.values is None or csr.values.dtype == dtype:
            return csr
        if csr.values.requires_grad:
            return csr.with_values(csr.values.to(dtype))
        if dtype not in self._cast:
            self._cast[dtype] = csr.with_values(csr.values.to(dtype))
        return self._cast[dtype]

    # copy.deepcopy and pickle: the CSR's structure caches are not state; the copy rebuilds them
    def __getstate__(self) -> dict:
        state = {k: v.detach() if isinstance(v, Tensor) else v for k, v in self.__dict__.items()
                 if k not in ("_cast", "_norm")}
        csr = self.csr
        values = None if csr.values is None else csr.values.detach()
        state["csr"] = (csr.indptr, csr.indices, values, csr.shape)
        return state

    def __setstate__(self, state: dict) -> None:
        indptr, indices, values, shape = state.pop("csr")
        self.__dict__.update(state)
        self.csr = CSR(indptr, indices, values, shape, check=False)
        self._cast, self._norm = {}, {}


def check_graph_inputs(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int) -> None:
    """Validate ``edge_index`` [2, E] (int64 or int32, in ``[0, num_nodes)``) and ``edge_weight`` [E]."""
    index_dtype(edge_index, "edge_index")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index: expected shape [2, E] (row 0 sources, row 1 targets), got "
                         f"{list(edge_index.shape)}; transpose an [E, 2] list with edge_index.t()")
    check_range(edge_index, num_nodes, "edge_index", f"< num_nodes = {num_nodes} (x has {num_nodes} rows)",
                "pass the edges of this graph, or x with all of its nodes", on_host=True)
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
    flow: str = "source_to_target",
    dtype: torch.dtype | None = None,
    existing_loops: str = "keep",
) -> GCNGraph:
    """Build the :class:`GCNGraph` of ``edge_index``: loop-free CSR, degrees and the loops to keep.

    Args:
        edge_index: ``[2, E]`` edges, row 0 sources, row 1 targets.
        edge_weight: ``[E]`` weights, or None for ones. (default: ``None``)
        num_nodes: number of nodes. (default: ``edge_index.max() + 1``)
        add_self_loops: separate the self-loops (the layer adds one per node); False keeps the graph's
            loops as ordinary edges. (default: ``True``)
        out_degree: also compute out-degrees (for ``normalize="both"``). (default: ``False``)
        flow: ``"source_to_target"`` (PyG's default), or ``"target_to_source"``: aggregate over the
            reversed edges, as ``MessagePassing(flow="target_to_source")``. (default: ``"source_to_target"``)
        dtype: dtype of the degrees and the CSR values; half types are raised to float32.
            (default: float64 for float64 weights, else float32)
        existing_loops: ``"keep"``: PyG's ``add_remaining_self_loops``, every node ends with exactly one
            loop, a node that had one keeps that loop's weight (the last one if several; 1 when
            ``edge_weight`` is None), every other node's loop weighs the layer's ``w``; ``"add"``: PyG's
            ``add_self_loops`` on a sparse adjacency, ``w`` is added to the graph's own loops (summed).
            (default: ``"keep"``)
    """
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if isinstance(edge_index, Tensor) and edge_index.numel() else 0
    check_graph_inputs(edge_index, edge_weight, num_nodes)
    if flow not in FLOWS:
        raise ValueError(f"flow: expected one of {FLOWS}, got {flow!r}")
    if existing_loops not in ("keep", "add"):
        raise ValueError(f"existing_loops: expected 'keep' or 'add', got {existing_loops!r}")
    dtype = accumulation_dtype(dtype or (edge_weight.dtype if edge_weight is not None else torch.float32))
    edge_index = edge_index.long()
    if flow == "target_to_source":
        edge_index = edge_index.flip(0)
    if edge_weight is not None:
        edge_weight = edge_weight.to(dtype)
    has_loop = kept_loop = None
    if add_self_loops:
        has_loop, kept_loop = _existing_loops(edge_index, edge_weight, num_nodes, existing_loops, dtype)
        keep = edge_index[0] != edge_index[1]
        edge_index = edge_index[:, keep]
        edge_weight = edge_weight[keep] if edge_weight is not None else None
    csr = CSR.from_edge_index(edge_index, edge_weight, num_nodes, check=False)
    in_deg = _row_sums(csr, dtype)
    out_deg = _row_sums(csr.t(), dtype) if out_degree else None
    return GCNGraph(csr, in_deg, out_deg, has_loop, kept_loop, csr.indptr.diff(), bool(add_self_loops), flow)


def _existing_loops(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int, mode: str,
                    dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(has_loop, kept_loop)`` for the loops already in the graph (see :func:`gcn_graph`)."""
    device = edge_index.device
    is_loop = edge_index[0] == edge_index[1]
    weight = edge_weight if edge_weight is not None else torch.ones(edge_index.size(1), dtype=dtype, device=device)
    if mode == "add":  # every node's loop gets w; the graph's own loops add to it (summed in a fixed order)
        loops = CSR.from_edge_index(edge_index[:, is_loop], weight[is_loop], num_nodes, check=False)
        return torch.zeros(num_nodes, dtype=torch.bool, device=device), _row_sums(loops, dtype)
    # the last loop of a node wins, as in PyG's add_remaining_self_loops; found with a max over edge
    # positions, so the result does not depend on the order of writes (index_put does on CUDA)
    position = torch.arange(edge_index.size(1), device=device)
    last = torch.full((num_nodes,), -1, dtype=torch.long, device=device)
    last = last.scatter_reduce(0, edge_index[1], torch.where(is_loop, position, -1), "amax")
    has_loop = last >= 0
    kept = weight[last.clamp(min=0)] if weight.numel() else weight.new_zeros(num_nodes)
    return has_loop, torch.where(has_loop, kept, 0.0)


def _row_sums(csr: CSR, dtype: torch.dtype) -> Tensor:
    """Weighted row sums of a CSR, deterministic (rows in order) and differentiable in the values."""
    if csr.values is None:
        return csr.indptr.diff().to(dtype)
    if csr.nnz == 0:
        return csr.values.new_zeros(csr.shape[0], dtype=dtype)
    return torch.segment_reduce(csr.values.to(dtype), "sum", offsets=csr.indptr)


def _inv_sqrt(deg: Tensor) -> Tensor:
    """``deg ** -0.5`` with 0 where ``deg == 0``, and a finite gradient there."""
    positive = deg > 0
    return torch.where(positive, torch.where(positive, deg, torch.ones_like(deg)).rsqrt(), torch.zeros_like(deg))


def normalization(graph: GCNGraph, w: Tensor | float, normalize: bool | str) -> tuple[Tensor, Tensor, Tensor | None]:
    r"""``(s_target, s_source, l)``: the layer's output is :math:`s_t \odot (A (s_s \odot X')) + l \odot s_t
    \odot s_s \odot X'`, with ``l`` None when no loops are added. Float32/64, no host synchronisation."""
    loop = graph.loop_weight(w)
    deg = graph.in_degree if loop is None else graph.in_degree + loop
    s_t = _inv_sqrt(deg)
    if normalize == "both":
        s_s = _inv_sqrt(graph.out_degree if loop is None else graph.out_degree + loop)
    else:  # PyG: both ends scaled by the in-degree of the node
        s_s = s_t
    return s_t, s_s, loop


def _normalization_as(graph: GCNGraph, w: Tensor | float, normalize: bool | str,
                      dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """:func:`normalization` as ``dtype``, and the loops' diagonal ``l * s_t * s_s`` (None without loops),
    computed once per graph for a fixed (float) ``w`` when the graph's degrees need no gradient, so a deep
    stack or an evaluation does not redo it every call."""
    key = _fixed_key(graph, w, normalize, dtype)
    if key is not None and key in graph._norm:
        return graph._norm[key]
    s_t, s_s, loop = (None if t is None else t.to(dtype) for t in normalization(graph, w, normalize))
    out = s_t, s_s, loop, None if loop is None else loop * s_t * s_s
    if key is not None:
        graph._norm[key] = out
    return out


def _fixed_key(graph: GCNGraph, w: Tensor | float, normalize: bool | str, dtype: torch.dtype) -> tuple | None:
    """The cache key of a normalisation that can be kept: a float ``w``, degrees (edge weights) that need
    no gradient, and not while ``torch.compile`` traces; else None."""
    fixed = isinstance(w, (int, float)) and not torch.compiler.is_compiling() and not any(
        t is not None and t.requires_grad for t in (graph.in_degree, graph.out_degree, graph.kept_loop))
    return (float(w), normalize, dtype) if fixed else None


def _normalized_csr(graph: GCNGraph, w: Tensor | float, normalize: bool | str, dtype: torch.dtype) -> CSR | None:
    r"""``graph.csr_as(dtype)`` with the normalised values :math:`s^{src}_j a_{ij} s^{tgt}_i` (PyG's
    ``gcn_norm`` order of products), kept with the graph's normalisation, so that a layer runs one sparse
    product plus the loops' diagonal instead of scaling the features before and after it; None where the
    normalisation is not kept (a learned ``w``, edge weights that need a gradient, under ``torch.compile``)."""
    key = _fixed_key(graph, w, normalize, dtype)
    if key is None:
        return None
    key = ("csr", *key)
    if key not in graph._norm:
        s_t, s_s, _, _ = _normalization_as(graph, w, normalize, dtype)
        csr = graph.csr_as(dtype)
        source = s_s.index_select(0, csr.indices)
        values = (source if csr.values is None else source * csr.values) * s_t.index_select(0, csr.row())
        graph._norm[key] = csr.with_values(values)
    return graph._norm[key]


def aggregate(graph: GCNGraph, h: Tensor, w: Tensor | float = 1.0, *, normalize: bool | str = True,
              reduce: str = "sum", node_dim: int = -2) -> Tensor:
    r"""The aggregation of a GCN layer over ``graph``: :math:`\hat D^{-1/2} (A + \mathrm{diag}(l)) \hat
    D^{-1/2} H` for ``reduce="sum"``, everything of :class:`~gseq.layers.GCN` but ``lin`` and the bias.

    ``"mean"`` divides each row by its number of messages (edges and the loop); ``"max"``/``"min"``
    take the extreme of :math:`s_s \odot h` over the edges and the loop, then scale by :math:`s_t` (a
    non-negative row scaling commutes with the extreme); ``normalize=False`` is :math:`A h` reduced by
    ``reduce``. One sparse product, :func:`gseq.ops.scaled_spmm` (:func:`gseq.ops.spmm` for max/min and
    ``normalize=False``), which ``torch.compile`` traces without a graph break when the edge weights
    need no gradient. Differentiable in
    ``h`` and ``w`` (and in the edge weights the graph was built with).

    Args:
        graph: the graph, from :func:`gcn_graph` (its ``add_self_loops``, ``flow`` and out-degrees decide
            the loops, the direction and what ``"both"`` can use).
        h: features ``[*, N, F]``, the nodes at ``node_dim`` (a layer passes :math:`XW`).
        w: the self-loop weight, a float or a 0-d tensor; ignored when the graph adds no loops.
            (default: ``1.0``)
        normalize: ``True``, ``"both"`` or ``False``, as :class:`~gseq.layers.GCN`'s. (default: ``True``)
        reduce: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. (default: ``"sum"``)
        node_dim: the dimension of the nodes in ``h``. (default: ``-2``)

    Shapes:
        - **h:** :math:`(*, N, F)`; **output:** :math:`(*, N, F)`, contiguous, ``h``'s dtype.
    """
    moved = h.movedim(node_dim, 0)  # [N, *, F]
    acc = accumulation_dtype(h.dtype)
    flat = moved.reshape(moved.size(0), math.prod(moved.shape[1:])).to(acc)  # [N, prod(*) * F], float32/64
    csr = graph.csr_as(acc)
    if normalize is False:
        out = spmm(csr, flat, reduce)
    else:
        s_t, s_s, loop, diag = _normalization_as(graph, w, normalize, acc)
        if reduce in ("max", "min"):  # s_t >= 0 scales a row, so it commutes with the extreme
            y = flat * s_s.unsqueeze(-1)
            out = _with_loop(graph, spmm(csr, y, reduce), y, loop, reduce) * s_t.unsqueeze(-1)
        elif reduce == "sum" and (normalized := _normalized_csr(graph, w, normalize, acc)) is not None:
            out = scaled_spmm(normalized, flat, diag=diag)  # (S_t A S_s) h + l * s_t * s_s * h
        else:  # s_t * (A (s_s * h)) + l * s_t * s_s * h
            if reduce == "mean":  # messages into a node: its edges and its loop
                count = (graph.in_count + int(loop is not None)).clamp(min=1).to(acc)
                s_t, diag = s_t / count, (None if diag is None else diag / count)
            out = scaled_spmm(csr, flat, row_scale=s_t, col_scale=s_s, diag=diag)
    return out.to(h.dtype).reshape(moved.shape).movedim(0, node_dim).contiguous()


def _with_loop(graph: GCNGraph, out: Tensor, y: Tensor, loop: Tensor | None, reduce: str) -> Tensor:
    """The extreme over the edges (``out``) combined with the loop's message ``loop * y``."""
    if loop is None:
        return out
    own = y * loop.unsqueeze(-1)
    extreme = torch.maximum(out, own) if reduce == "max" else torch.minimum(out, own)
    return torch.where((graph.in_count > 0).unsqueeze(-1), extreme, own)  # no edges: the loop alone


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
    s_t, s_s, loop = normalization(graph, self_loop_weight, normalize)
    csr, device = graph.csr, edge_index.device
    rows = torch.repeat_interleave(torch.arange(num_nodes, device=device), csr.indptr.diff())
    cols = csr.indices
    values = csr.values if csr.values is not None else torch.ones(csr.nnz, dtype=s_t.dtype, device=device)
    loops = torch.arange(num_nodes, device=device)
    out_index = torch.cat([torch.stack([cols, rows]), torch.stack([loops, loops])], dim=1)
    out_weight = torch.cat([s_t[rows] * values * s_s[cols], loop * s_t * s_s])
    return out_index, out_weight


def graph_from_adj_t(adj_t: Tensor, edge_weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """PyG's ``adj_t`` (a torch sparse ``[N, N]``; entry ``(i, j)`` = edge ``j -> i``) as ``edge_index`` and weights."""
    if edge_weight is not None:
        raise ValueError("edge_weight: must be None when the adjacency is given as a sparse tensor (its values "
                         "are the weights)")
    if adj_t.dim() != 2 or adj_t.size(0) != adj_t.size(1):
        raise ValueError(f"edge_index: a sparse adjacency must be square [N, N], got {list(adj_t.shape)}")
    coo = adj_t.to_sparse_coo().coalesce()
    target, source = coo.indices()
    return torch.stack([source, target]), coo.values()
