r"""Forecasting models for temporal signals on graphs: a recurrent graph cell with a linear read-out
(:class:`GraphForecaster`), and the linear autoregressive baseline fitted in closed form
(:class:`LinearAR`).

``GraphForecaster`` is PGT's tutorial model, ``RecurrentGCN``: cell -> ReLU -> Linear, here over a whole
signal at once (:class:`gseq.layers.GraphSequence`) with the state in and out. Its ``no_graph``
counterpart is the same model on a graph without edges (:meth:`GraphForecaster.graphs` with
``use_graph=False``): every node then runs the same cell on its own series, the per-node baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..checks import boolean, choice, in_range, positive_int
from ..layers import GRAPH_CELLS, GraphSequence

__all__ = ["GraphForecaster", "LinearAR"]


def check_cell_options(cell: str, K: int, self_loop_weight: float | str, edge_index=None,
                       num_nodes: int | None = None) -> None:
    """Refuse an option that ``cell`` would not use: ``K`` with TGCN (its GCN takes one hop),
    ``self_loop_weight`` with the other cells, and, given the graph (``edge_index``, or one per snapshot),
    a TGCN self-loop weight where every node already has a self-loop: that loop keeps its own weight (as
    PyG's ``add_remaining_self_loops``), so ``w`` would weigh no node and, learned, get no gradient.

    Raises:
        ValueError: naming ``K`` or ``self_loop_weight`` and the fix.
    """
    if cell == "tgcn":
        if K != 2:
            raise ValueError(f"K: tgcn's GCN takes one hop and has no filter size; leave K at its default 2 "
                             f"(got {K}) or use gconv_gru, gconv_lstm or dcrnn")
    elif self_loop_weight != 1.0:
        raise ValueError(f"self_loop_weight: only tgcn has a GCN self-loop weight, {cell} would ignore "
                         f"{self_loop_weight!r}; leave it at 1.0 or use tgcn")
    if cell != "tgcn" or self_loop_weight == 1.0 or edge_index is None:
        return
    graphs = edge_index if isinstance(edge_index, (list, tuple)) else [edge_index]
    for ei in graphs:
        n = num_nodes if num_nodes is not None else (int(ei.max()) + 1 if ei.numel() else 0)
        if n == 0 or torch.unique(ei[0][ei[0] == ei[1]]).numel() < n:
            return  # some node gets the loop of weight w
    raise ValueError(f"self_loop_weight: every node of the graph{' of every snapshot' if len(graphs) > 1 else ''} "
                     f"already has a self-loop, which keeps its own weight (as PyG's add_remaining_self_loops), "
                     f"so a self-loop weight of {self_loop_weight!r} would weigh no node; leave it at 1.0, or "
                     "remove the graph's self-loops first (the forecasting task's drop_self_loops, --drop-self-loops; "
                     "TemporalSignal.without_self_loops(), or torch_geometric.utils.remove_self_loops)")


class GraphForecaster(nn.Module):
    r"""A recurrent graph cell over the snapshots, then ReLU and a linear map to the horizon, plus (with
    ``ar_skip``) a linear autoregressive term on the node's own lags:
    :math:`\hat y_{t,i} = W \,\mathrm{relu}(h_{t,i}) + b + A^\top x_{t,i}`.

    The skip is the AR baseline inside the model (LSTNet's "highway"): the recurrent graph part only has to
    learn what a shared linear model of the lags misses, and starts from there.

    Args:
        cell: ``"gconv_gru"``, ``"gconv_lstm"``, ``"tgcn"`` or ``"dcrnn"``.
        in_channels: features per node (the lags).
        hidden: channels of the state.
        horizon: steps predicted per snapshot. (default: ``1``)
        K: filter size of GConvGRU/GConvLSTM/DCRNN. (default: ``2``)
        self_loop_weight: TGCN's GCN self-loop weight, a float or ``"learn"``. (default: ``1.0``)
        ar_skip: add the linear term :math:`A^\top x_{t,i}` (``skip``, no bias). ``False`` is PGT's
            ``RecurrentGCN``. (default: ``True``)
        dropout: dropout on :math:`\mathrm{relu}(h_{t,i})` before the read-out, in training. (default: ``0``)

    Shapes:
        - **input:** ``x`` ``[*, T, N, in_channels]``, the graphs (see :class:`~gseq.layers.GraphSequence`),
          optional ``state``
        - **output:** ``(prediction [*, T, N, horizon], state)``
    """

    def __init__(self, cell: str, in_channels: int, hidden: int, horizon: int = 1, *, K: int = 2,
                 self_loop_weight: float | str = 1.0, ar_skip: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.cell_name = choice("cell", cell, GRAPH_CELLS)
        check_cell_options(cell, K, self_loop_weight)
        self.self_loop_weight = self_loop_weight
        cls = GRAPH_CELLS[cell]
        if cell == "tgcn":
            module = cls(in_channels, hidden, self_loop_weight=self_loop_weight)
        else:
            module = cls(in_channels, hidden, K)
        self.sequence = GraphSequence(module)
        self.dropout = nn.Dropout(in_range("dropout", dropout, 0.0, 1.0, high_open=True))
        self.head = nn.Linear(hidden, positive_int("horizon", horizon))
        self.skip = nn.Linear(in_channels, horizon, bias=False) if boolean("ar_skip", ar_skip) else None

    def graphs(self, edge_index, edge_weight=None, num_nodes: int | None = None, num_steps: int | None = None,
               *, use_graph: bool = True):
        """The graphs of a signal, built once (:meth:`GraphSequence.graphs`); ``use_graph=False`` builds a
        graph without edges (each node alone). A TGCN self-loop weight other than 1 on a graph with a loop
        on every node is refused (:func:`check_cell_options`)."""
        if not use_graph:
            device = edge_index.device if isinstance(edge_index, Tensor) else edge_index[0].device
            edge_index, edge_weight = torch.zeros(2, 0, dtype=torch.long, device=device), None
        graphs = self.sequence.graphs(edge_index, edge_weight, num_nodes, num_steps)  # validated here
        if isinstance(edge_index, Tensor) or (isinstance(edge_index, (list, tuple)) and
                                              all(isinstance(ei, Tensor) for ei in edge_index)):
            check_cell_options(self.cell_name, 2, self.self_loop_weight, edge_index, graphs.num_nodes)
        return graphs

    @torch.no_grad()
    def start_from(self, ar: "LinearAR") -> "GraphForecaster":
        """Make this model the linear AR model ``ar`` (fitted by :meth:`LinearAR.fit`): the skip takes its
        weights, the read-out its bias and zero weights, so that the forecasts equal ``ar``'s until training
        moves them and the recurrent graph part learns a correction to the AR model. Returns ``self``."""
        if self.skip is None:
            raise ValueError("ar: starting from the AR model needs the AR skip (ar_skip=True)")
        if tuple(ar.weight.shape) != (self.skip.in_features, self.skip.out_features):
            raise ValueError(f"ar: expected an AR model of {self.skip.in_features} lags and horizon "
                             f"{self.skip.out_features}, got weights of shape {list(ar.weight.shape)}")
        self.skip.weight.copy_(ar.weight.t())
        self.head.weight.zero_()
        self.head.bias.copy_(ar.bias)
        return self

    def forward(self, x: Tensor, graphs, state=None) -> tuple[Tensor, object]:
        hs, state = self.sequence(x, graphs, state=state)
        out = self.head(self.dropout(torch.relu(hs)))
        return (out if self.skip is None else out + self.skip(x)), state


class LinearAR(nn.Module):
    r"""The linear autoregressive baseline: :math:`\hat y_{t,i} = x_{t,i} w + b`, one weight matrix
    shared by all nodes, fitted by least squares (:meth:`fit`, a closed form; no training loop).

    Args:
        lags: features per node (the lags).
        horizon: steps predicted. (default: ``1``)
    """

    def __init__(self, lags: int, horizon: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(positive_int("lags", lags), positive_int("horizon", horizon)))
        self.bias = nn.Parameter(torch.zeros(horizon))

    @classmethod
    def fit(cls, x: Tensor, y: Tensor) -> "LinearAR":
        """Least squares over every (snapshot, node) of ``x`` ``[T, N, lags]`` and ``y`` ``[T, N, horizon]``."""
        if x.dim() != 3 or y.dim() != 3 or x.shape[:2] != y.shape[:2]:
            raise ValueError(f"x, y: expected [T, N, lags] and [T, N, horizon] with the same T and N, got "
                             f"{list(x.shape)} and {list(y.shape)}")
        model = cls(x.size(-1), y.size(-1))
        a = torch.cat([x.reshape(-1, x.size(-1)), x.new_ones(x.size(0) * x.size(1), 1)], 1).double()
        sol = torch.linalg.lstsq(a, y.reshape(-1, y.size(-1)).double(), driver="gelsd").solution
        with torch.no_grad():
            model.weight.copy_(sol[:-1]), model.bias.copy_(sol[-1])
        return model.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight + self.bias
