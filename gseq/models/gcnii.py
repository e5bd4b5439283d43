"""Deep node classification with :class:`gseq.layers.GCN2` (GCNII, Chen et al., ICML 2020).

:class:`GCNII` is a model of its own rather than a :class:`~gseq.models.GCNNet` option: its layers take
two inputs (``x`` and the initial representation ``x_0``), it has dense layers on both ends, and its
weight decay splits convolutions from dense layers; as a ``GCNNet`` option each of ``forward``,
``inference`` and ``param_groups`` would branch on the kind of network. Training it is a task:
:mod:`gseq.tasks.gcnii`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..checks import in_range, positive_int
from ..layers.gcn2 import GCN2
from ..layers.gcn_structure import GCNGraph
from .gcn_net import _dropout as _sparse_dropout

__all__ = ["GCNII"]


class GCNII(nn.Module):
    r"""Linear in, ``num_layers`` :class:`~gseq.layers.GCN2` layers, linear out (GCNII).

    ``dropout -> Linear -> ReLU`` gives :math:`X^{(0)}`; then, for :math:`\ell = 1..L`,
    ``dropout -> GCN2(layer=l) -> ReLU``; then ``dropout -> Linear`` (logits): the model of GCNII's
    repository (``chennnM/GCNII``) and of PyG's ``examples/gcn2_cora.py``, with the same module names
    (``lins``, ``convs``). All layers share one :class:`~gseq.layers.GCNGraph`, built once per call
    (or once, with ``cached=True``). Defaults are GCNII's settings for Cora.

    Args:
        in_channels: input features per node.
        out_channels: number of classes.
        hidden_channels: width of every GCN2 layer. (default: ``64``)
        num_layers: number of GCN2 layers, >= 1. (default: ``64``)
        alpha: the initial residual's strength :math:`\alpha`. (default: ``0.1``)
        theta: :math:`\lambda` of the identity mapping, :math:`\beta_\ell = \log(\lambda/\ell + 1)`.
            (default: ``0.5``)
        dropout: dropout probability before every layer. (default: ``0.6``)
        shared_weights: False for GCNII* (a weight of its own for the initial residual). (default: ``True``)
        self_loop_weight: every layer's :math:`w`, a float >= 0 or ``"learn"`` (one weight per layer).
            (default: ``1.0``)
        normalize: passed to every layer. (default: ``True``)
        cached: cache the graph structure (one graph, transductive). (default: ``False``)

    Shapes:
        - **input:** ``x`` :math:`(N, F_{in})`, ``edge_index`` :math:`(2, E)` (or a sparse ``adj_t`` or a
          :class:`~gseq.layers.GCNGraph`), ``edge_weight`` :math:`(E)` *(optional)*
        - **output:** logits :math:`(N, C)`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        hidden_channels: int = 64,
        num_layers: int = 64,
        alpha: float = 0.1, theta: float = 0.5, shared_weights: bool = True,  # GCN2's own
        dropout: float = 0.6,
        self_loop_weight: float | str = 1.0, normalize: bool | str = True, cached: bool = False,  # as in GCN
    ) -> None:
        super().__init__()
        positive_int("in_channels", in_channels)
        positive_int("out_channels", out_channels)
        positive_int("num_layers", num_layers)
        in_range("dropout", dropout, 0, 1, high_open=True)
        self.lins = nn.ModuleList([nn.Linear(in_channels, hidden_channels), nn.Linear(hidden_channels, out_channels)])
        self.convs = nn.ModuleList(
            GCN2(hidden_channels, alpha, theta, layer + 1, shared_weights, cached=cached, normalize=normalize,
                 self_loop_weight=self_loop_weight)
            for layer in range(num_layers)
        )
        self.dropout = dropout

    def reset_parameters(self) -> None:
        for module in [*self.lins, *self.convs]:
            module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor | GCNGraph, edge_weight: Tensor | None = None) -> Tensor:
        """Logits ``[N, out_channels]``; ``x`` may be a torch sparse CSR/COO matrix (bag-of-words features:
        the first layer is then a sparse-dense product, and dropout touches only the stored entries)."""
        graph = self.convs[0].graph(edge_index, edge_weight, x.size(0), self.lins[0].weight.dtype)  # for all layers
        x = _dropout(x, self.dropout, self.training)
        x = x_0 = _linear(self.lins[0], x).relu()
        for conv in self.convs:
            x = _dropout(x, self.dropout, self.training)
            x = conv(x, x_0, graph).relu()
        x = _dropout(x, self.dropout, self.training)
        return self.lins[1](x)

    @torch.no_grad()
    def inference(self, data: Data, batch_size: int = 4096, *, device: str | torch.device | None = None) -> Tensor:
        r"""Logits of every node, layer by layer over the full graph: exact, with one layer's activations
        (and :math:`X^{(0)}`) in memory.

        As :meth:`GCNNet.inference <gseq.models.GCNNet.inference>`: the graph's structure is built once
        (whatever ``cached`` holds), every layer aggregates over the *whole* graph with the whole graph's
        degrees, the dense layers run ``batch_size`` rows at a time, no autograd graph is kept, and
        dropout is off whatever the module's mode. A GCN2 layer's aggregation makes no edges x features
        tensor, so it runs on all rows at once. Equals :meth:`forward` in eval mode.

        Args:
            data: the graph: ``x``, ``edge_index``, optional ``edge_weight``.
            batch_size: rows per step of the dense layers. (default: ``4096``)
            device: where to compute. (default: the device of the parameters)
        """
        positive_int("batch_size", batch_size)
        if getattr(data, "x", None) is None or getattr(data, "edge_index", None) is None:
            raise ValueError("data: needs node features x and an edge_index")
        device = torch.device(device) if device is not None else next(self.parameters()).device
        x = data.x.to(device)
        edge_weight = getattr(data, "edge_weight", None)
        graph = self.convs[0]._build_graph(data.edge_index.to(device), None if edge_weight is None else
                                           edge_weight.to(device), data.num_nodes, self.lins[0].weight.dtype)
        if x.layout == torch.strided:
            x_0 = torch.cat([self.lins[0](x[lo:lo + batch_size]).relu_() for lo in range(0, x.size(0), batch_size)])
        else:
            x_0 = _linear(self.lins[0], x).relu_()
        x = x_0
        for conv in self.convs:
            x = conv(x, x_0, graph).relu_()
        return torch.cat([self.lins[1](x[lo:lo + batch_size]) for lo in range(0, x.size(0), batch_size)])

    def param_groups(self, conv_weight_decay: float = 0.01, dense_weight_decay: float = 5e-4) -> list[dict[str, Any]]:
        """GCNII's optimizer groups: ``conv_weight_decay`` on the GCN2 weights, ``dense_weight_decay`` on
        the linear layers; learned self-loop weights are never decayed."""
        convs = [p for n, p in self.convs.named_parameters() if not n.endswith("raw_self_loop_weight")]
        loops = [p for n, p in self.convs.named_parameters() if n.endswith("raw_self_loop_weight")]
        groups = [{"params": convs, "weight_decay": conv_weight_decay},
                  {"params": list(self.lins.parameters()), "weight_decay": dense_weight_decay}]
        return groups + ([{"params": loops, "weight_decay": 0.0}] if loops else [])

    def self_loop_weights(self) -> list[float]:
        """The current ``w`` of every layer."""
        return [float(conv.self_loop_weight().detach()) for conv in self.convs]


def _linear(lin: nn.Linear, x: Tensor) -> Tensor:
    """``lin(x)``; for sparse ``x`` a sparse-dense product (no dense copy of ``x``)."""
    if x.layout == torch.strided:
        return lin(x)
    return torch.sparse.mm(x, lin.weight.t()) + lin.bias


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout with ``F.dropout``'s law (zero with probability ``p``, the rest scaled by ``1 / (1 - p)``),
    drawn as one uniform per element: on the CPU about 2.5x faster than ``F.dropout`` forward and backward
    (bernoulli sampling is the slow part), which is a third of a 64-layer epoch on Cora. Sparse ``x``:
    only the stored entries (:func:`gseq.models.gcn_net._dropout`)."""
    if x.layout != torch.strided:
        return _sparse_dropout(x, p, training)
    if not training or p == 0.0:
        return x
    keep = torch.rand(x.shape, dtype=x.dtype, device=x.device).ge_(p).mul_(1.0 / (1.0 - p))  # 0 or 1 / (1 - p)
    return x * keep
