r"""The structure a :class:`~gseq.layers.GCN` aggregates over, built (and validated) once per graph.

:func:`gcn_graph` turns ``edge_index`` into a :class:`GCNGraph`: a CSR adjacency without self-loops, the
degrees, and the self-loops to keep. The layer then needs no host synchronisation and no validation per
call: with :math:`l` the per-node self-loop weight, :math:`d = A\mathbf{1} + l` and :math:`s = d^{-1/2}`
(``normalization``), :math:`\hat D^{-1/2} (A + \mathrm{diag}(l)) \hat D^{-1/2} X = s \odot (A (s \odot X)
+ l \odot s \odot X)`.

Degrees and normalisation vectors are float32 (float64 for float64 features) whatever the feature
dtype: a node of in-degree 65,520 would have an infinite degree in float16.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..ops import CSR, accumulation_dtype
from ..ops._anchored import make_anchor

__all__ = ["GCNGraph", "gcn_graph", "gcn_norm", "check_graph_inputs"]

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
    anchor: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._attach()

    def _attach(self) -> None:
        # the tensor through which compiled code reaches adjacency() (gseq.ops._anchored): the layer's
        # custom operator takes tensors, not graphs; autograd saving the anchor keeps the graph alive
        self.anchor = make_anchor(self, self.in_degree.device)
        self._derived: dict = {}  # CSRs with cast values and transposes, built on first use

    @property
    def num_nodes(self) -> int:
        return self.in_degree.size(0)

    def loop_weight(self, w: Tensor | float) -> Tensor | None:
        """The per-node self-loop weight :math:`l` for the layer weight ``w`` (None without loops). ``[N]``"""
        if self.has_loop is None:
            return None
        return torch.where(self.has_loop, self.kept_loop, self.kept_loop + w)

    def adjacency(self, dtype: torch.dtype, transpose: bool = False) -> CSR:
        """``csr`` (or its transpose) with values of ``dtype``, built once and kept (values detached)."""
        key = (dtype, transpose)
        csr = self._derived.get(key)
        if csr is None:
            csr = self.csr
            if csr.values is not None and (csr.values.dtype != dtype or csr.values.requires_grad):
                csr = csr.with_values(csr.values.detach().to(dtype))
            csr = self._derived[key] = csr.t() if transpose else csr
        return csr

    # copy.deepcopy and pickle: the CSR's structure caches (torch sparse tensors, closures) are not
    # state; the copy rebuilds them on first use, with an anchor of its own
    def __getstate__(self) -> dict:
        state = {k: v.detach() if isinstance(v, Tensor) else v for k, v in self.__dict__.items()
                 if k not in ("_derived", "anchor")}
        csr = self.csr
        values = None if csr.values is None else csr.values.detach()
        state["csr"] = (csr.indptr, csr.indices, values, csr.shape)
        return state

    def __setstate__(self, state: dict) -> None:
        indptr, indices, values, shape = state.pop("csr")
        self.__dict__.update(state)
        self.csr = CSR(indptr, indices, values, shape, check=False)
        self._attach()


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
        lo, hi = torch.aminmax(edge_index)
        lo, hi = int(lo), int(hi)
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
    r"""``(s_target, s_source, l)``: the layer's output is :math:`s_t \odot (A (s_s \odot X') + l \odot s_s
    \odot X')`, with ``l`` None when no loops are added. Float32/64, no host synchronisation."""
    loop = graph.loop_weight(w)
    deg = graph.in_degree if loop is None else graph.in_degree + loop
    s_t = _inv_sqrt(deg)
    if normalize == "both":
        s_s = _inv_sqrt(graph.out_degree if loop is None else graph.out_degree + loop)
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
