"""Node classification with a stack of :class:`gseq.layers.GCN` layers (Kipf & Welling's setup).

:class:`GCNNet` is the model, with :meth:`GCNNet.inference` for exact layer-wise evaluation of big graphs
and :meth:`GCNNet.param_groups` for Kipf's weight decay; :func:`sparse_features` prepares bag-of-words
features as a sparse matrix. Training it is a task: :mod:`gseq.tasks.node_classification`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from ..checks import choice, in_range, positive_int
from ..layers.gcn import GCN, GCNGraph, gcn_graph
from ..layers.gcn_structure import normalization
from ..ops import CSR, scaled_spmm, spmm

__all__ = ["GCNNet", "sparse_features"]

_ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "identity": lambda x: x}
_ACTIVATIONS_INPLACE = {"relu": torch.relu_, "tanh": torch.tanh_, "identity": lambda x: x}  # in place, for inference


class GCNNet(nn.Module):
    r"""A stack of ``num_layers`` :class:`~gseq.layers.GCN` layers with ReLU and dropout between them.

    ``dropout -> GCN -> ReLU -> dropout -> GCN -> ... -> GCN`` (logits), as in Kipf & Welling (2017) and
    PyG's ``examples/gcn.py``. The first layer's weight decay is applied through :meth:`param_groups`.

    Args:
        in_channels: input features per node.
        out_channels: number of classes.
        hidden_channels: width of every hidden layer. (default: ``16``)
        num_layers: number of GCN layers, >= 1. (default: ``2``)
        dropout: dropout probability on the input and hidden features. (default: ``0.5``)
        self_loop_weight: passed to every layer: a float >= 0 or ``"learn"`` (one weight per layer).
            (default: ``1.0``)
        normalize: passed to every layer. (default: ``True``)
        cached: cache the graph structure in every layer (one graph, transductive). (default: ``False``)
        act: the nonlinearity between layers, ``"relu"``, ``"tanh"`` or ``"identity"``. (default: ``"relu"``)

    Shapes:
        - **input:** ``x`` :math:`(N, F_{in})`, ``edge_index`` :math:`(2, E)`, ``edge_weight`` :math:`(E)` *(optional)*
        - **output:** logits :math:`(N, C)`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        hidden_channels: int = 16,
        num_layers: int = 2,
        dropout: float = 0.5,
        self_loop_weight: float | str = 1.0,
        normalize: bool | str = True,
        cached: bool = False,
        act: str = "relu",
    ) -> None:
        super().__init__()
        choice("act", act, sorted(_ACTIVATIONS))
        positive_int("num_layers", num_layers)
        in_range("dropout", dropout, 0, 1, high_open=True)
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(
            GCN(a, b, self_loop_weight=self_loop_weight, normalize=normalize, cached=cached)
            for a, b in zip(dims[:-1], dims[1:])
        )
        self.dropout = dropout
        self.act = act

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """Logits ``[N, out_channels]``; ``x`` may be a torch sparse CSR/COO matrix (sparse features)."""
        for i, conv in enumerate(self.convs):
            x = _dropout(x, self.dropout, self.training)
            x = conv(x, edge_index, edge_weight)
            if i < len(self.convs) - 1:
                x = _ACTIVATIONS[self.act](x)
        return x

    @torch.no_grad()
    def inference(self, data: Data, batch_size: int = 4096, *, device: str | torch.device | None = None) -> Tensor:
        r"""Logits of every node by layer-wise inference: exact, with one layer's activations in memory.

        Layer by layer, as PyG's layer-wise inference: :math:`H = X W` for all nodes, then the output rows
        of ``batch_size`` target nodes at a time from their *full* in-neighbourhood, with the layer's own
        formula :math:`Y_B = s_B \odot (A_{B,:} (s \odot H)) + (l s^2)_B \odot H_B + b`, where the
        scalings :math:`s` come from the degrees of the *whole* graph (a GCN scales an edge by the degrees
        of both its ends, so a subgraph of the batch and its neighbours would not do). The result equals
        :meth:`forward` in eval mode up to rounding. Memory: the graph's loop-free CSR (built once per
        call), one layer's input and output, one batch's temporaries; no autograd graph. Dropout is off,
        whatever the module's mode.

        Args:
            data: the graph: ``x`` (dense or torch sparse), ``edge_index``, optional ``edge_weight``.
            batch_size: target nodes per aggregation step. (default: ``4096``)
            device: where to compute. (default: the device of the parameters)

        Returns:
            logits ``[N, out_channels]`` on ``device``.
        """
        positive_int("batch_size", batch_size)
        if getattr(data, "x", None) is None or getattr(data, "edge_index", None) is None:
            raise ValueError("data: needs node features x and an edge_index")
        device = torch.device(device) if device is not None else next(self.parameters()).device
        x = data.x.to(device)
        edge_index = data.edge_index.to(device)
        edge_weight = getattr(data, "edge_weight", None)
        edge_weight = edge_weight.to(device) if edge_weight is not None else None
        n = data.num_nodes
        graphs: dict[tuple, GCNGraph] = {}  # the structure, once per distinct layer setting
        for i, conv in enumerate(self.convs):
            dtype = conv.lin.weight.dtype
            key = (conv.add_self_loops, conv.normalize == "both", conv.flow, dtype)
            if key not in graphs:  # before any activation exists: building it needs temporaries of size E
                graphs[key] = gcn_graph(edge_index, edge_weight, n, add_self_loops=conv.add_self_loops,
                                        out_degree=conv.normalize == "both", flow=conv.flow, dtype=dtype)
            h = _linear(conv, x, batch_size)  # X W, [N, F_out]
            x = _aggregate(conv, graphs[key], h, batch_size)
            del h
            if conv.bias is not None:
                x += conv.bias
            if i < len(self.convs) - 1:
                x = _ACTIVATIONS_INPLACE[self.act](x)
        return x

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups with ``weight_decay`` on the first layer's weights and bias only (Kipf's setup);
        learned self-loop weights are never decayed."""
        first = [p for n, p in self.convs[0].named_parameters() if not n.startswith("raw_self_loop")]
        ids = {id(p) for p in first}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": first, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]

    def self_loop_weights(self) -> list[float]:
        """The current ``w`` of every layer."""
        return [float(conv.self_loop_weight().detach()) for conv in self.convs]


def _linear(conv: GCN, x: Tensor, batch_size: int) -> Tensor:
    """``conv.lin(x)`` for all rows, ``batch_size`` rows at a time (sparse ``x``: one sparse-dense product)."""
    if x.layout != torch.strided:
        return torch.sparse.mm(x, conv.lin.weight.t())
    out = x.new_empty(x.size(0), conv.lin.weight.size(0))
    for lo in range(0, x.size(0), batch_size):
        out[lo:lo + batch_size] = conv.lin(x[lo:lo + batch_size])
    return out


def _aggregate(conv: GCN, graph: GCNGraph, h: Tensor, batch_size: int) -> Tensor:
    """``conv``'s aggregation of ``h = X W`` over the full graph, ``batch_size`` output rows at a time, with
    the layer's normalisation (:func:`gseq.layers.gcn_structure.normalization`) and product
    (:func:`gseq.ops.scaled_spmm`): ``s_t[B] * (A_B y) + (l * s_t)[B] * y[B]`` for ``y = s_s * h``
    (scaled in place on ``h``), ``A_B h`` for ``normalize=False``."""
    n = h.size(0)
    out = torch.empty_like(h)
    csr = graph.csr_as(h.dtype)
    if conv.normalize is False:
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            out[lo:hi] = spmm(_row_slice(csr, lo, hi), h)
        return out
    s_t, s_s, loop = (None if t is None else t.to(h.dtype)
                      for t in normalization(graph, conv.self_loop_weight().to(h.device), conv.normalize))
    y = h.mul_(s_s.unsqueeze(-1))  # the sources' side, for both the edges and the loop
    loop_coef = None if loop is None else (loop * s_t).unsqueeze(-1)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        rows = scaled_spmm(_row_slice(csr, lo, hi), y, row_scale=s_t[lo:hi])  # s_t * A_{B,:} (s_s * h)
        out[lo:hi] = rows if loop_coef is None else rows.addcmul_(y[lo:hi], loop_coef[lo:hi])
    return out


def _row_slice(csr: CSR, lo: int, hi: int) -> CSR:
    """Rows ``lo:hi`` of ``csr`` (all columns), sharing its index and value arrays."""
    start, end = int(csr.indptr[lo]), int(csr.indptr[hi])
    values = csr.values[start:end] if csr.values is not None else None
    return CSR(csr.indptr[lo:hi + 1] - start, csr.indices[start:end], values, (hi - lo, csr.num_cols), check=False)


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout that keeps sparse features sparse (only stored entries can be dropped: the same law as
    dense dropout, where zeros stay zero anyway)."""
    if x.layout == torch.strided:
        return F.dropout(x, p=p, training=training)
    if not training or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        values = F.dropout(x.values(), p=p, training=True)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape,
                                       check_invariants=False)
    x = x.coalesce()
    return torch.sparse_coo_tensor(x.indices(), F.dropout(x.values(), p=p, training=True), x.shape,
                                   is_coalesced=True, check_invariants=False)


def sparse_features(x: Tensor) -> Tensor:
    """``x`` as a torch sparse CSR matrix (for bag-of-words features such as Cora's, 1.3% non-zero)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*Sparse CSR tensor support is in beta.*")
        return x.to_sparse_csr()
