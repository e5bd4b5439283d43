r"""Recurrent graph cells: a GRU or an LSTM whose matrix products are graph convolutions, and
:class:`GraphSequence`, which runs one over a whole signal with its state carried.

Each cell keeps the gate layout of :mod:`gseq.layers.recurrent` (torch's gate order, GRU ``r, z, n`` and
LSTM ``i, f, g, o``, gates stacked in the rows of ``weight_ih`` / ``weight_hh``), with a leading dimension
for the supports of its graph operator (:mod:`gseq.layers.graph_operators`):
``weight_ih[s]`` ``[G * H, in_channels]`` multiplies :math:`S_s X`, ``weight_hh[s]`` ``[G * H, H]``
multiplies :math:`S_s H`. One ``bias`` per gate (the equations' bias; PGT's two convolution biases per
gate add up to it).

A step splits into the input side, :meth:`input_projection` (every gate's :math:`\sum_s S_s X
\Theta_s + b`, which depends on no state: :class:`GraphSequence` computes it for all T snapshots in one
call), and the state side, ``_step``, the recurrence. ``forward`` is the two for one snapshot, as PGT's
cells are called.

The cells (PyTorch Geometric Temporal's constructor arguments; the functions are the papers'):

- :class:`GConvGRU`, :class:`GConvLSTM` (Seo et al. 2018): Chebyshev convolutions of order K in every
  gate; the LSTM has PGT's peephole terms :math:`w_c \odot c`.
- :class:`TGCN` (Zhao et al. 2019): a GCN (:class:`gseq.layers.GCN`, with its fixed or learned
  self-loop weight) on the input, then a GRU over ``[GCN(X), H]``.
- :class:`DCRNN` (Li et al. 2018): diffusion convolutions, K - 1 random-walk steps in each direction,
  inside a GRU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import boolean, choice, instance, positive_int
from .gcn import GCN, GCNGraph, check_graph_inputs
from .graph_operators import (NORMALIZATIONS, ChebyshevGraph, DiffusionGraph, block_diagonal, chebyshev_graph,
                              check_edge_weights, combine, diffusion_graph, node_major, rows_first)
from .recurrent import _init_blocks

__all__ = ["GConvGRU", "GConvLSTM", "TGCN", "DCRNN", "GraphSequence", "SequenceGraphs", "GRAPH_CELLS"]


class _GraphCell(nn.Module):
    """What the four cells share: parameters in the gate layout, the graph (built once, or cached),
    input checks, and ``forward`` as :meth:`input_projection` then ``_step``."""

    gates = 3
    state_names: tuple[str, ...] = ("h",)
    graph_on_state = True  # the state is multiplied by the graph too (TGCN: by weights alone)

    def __init__(self, in_channels: int, out_channels: int, num_supports: int, bias: bool, cached: bool,
                 input_channels: int | None = None) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.cached = boolean("cached", cached)
        rows = self.gates * out_channels
        fan_in = in_channels if input_channels is None else input_channels
        self.weight_ih = nn.Parameter(torch.empty(num_supports, rows, fan_in))
        self.weight_hh = nn.Parameter(torch.empty(num_supports if self.graph_on_state else 1, rows, out_channels))
        self.bias = nn.Parameter(torch.empty(rows)) if boolean("bias", bias) else None
        self._cached_graph = None

    def reset_parameters(self) -> None:
        for w in (*self.weight_ih, *self.weight_hh):
            _init_blocks(w, self.gates, "xavier_uniform")
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self._cached_graph = None

    @property
    def hidden_size(self) -> int:
        return self.out_channels

    # ------------------------------------------------------------------ the graph, built once
    def graph(self, edge_index, edge_weight: Tensor | None = None, num_nodes: int | None = None,
              dtype: torch.dtype | None = None):
        """The graph operator this cell multiplies by, validated and built once (kept with ``cached=True``);
        pass it to :meth:`forward` in place of ``edge_index``."""
        if self.cached and self._cached_graph is not None:
            self._check_graph(self._cached_graph, num_nodes)
            return self._cached_graph
        if isinstance(edge_index, Tensor):
            if num_nodes is None:
                num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
            self._validate(edge_index, edge_weight, num_nodes)
            graph = self._build(edge_index, edge_weight, num_nodes, dtype or self.weight_ih.dtype)
        else:
            graph = self._check_graph(edge_index, num_nodes)
        if self.cached:
            self._cached_graph = graph
        return graph

    non_negative_weights = False

    def _validate(self, edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int) -> None:
        """The checks of one graph, once, before it is built."""
        check_graph_inputs(edge_index, edge_weight, num_nodes)
        check_edge_weights(edge_weight, "edge_weight", self.non_negative_weights)

    def _check_graph(self, graph, num_nodes: int | None):
        if not isinstance(graph, self.graph_type):
            raise TypeError(f"edge_index: expected a [2, E] tensor or a {self.graph_type.__name__} from this cell's "
                            f"graph(), got {type(graph).__name__}")
        if num_nodes is not None and graph.num_nodes != num_nodes:
            raise ValueError(f"x: the graph has {graph.num_nodes} nodes but x has {num_nodes}; use cached=False "
                             "for more than one graph, or call reset_parameters()")
        return graph

    # ------------------------------------------------------------------ checks at the boundary
    def check_input(self, x: Tensor, name: str = "x") -> None:
        instance(name, x, Tensor, "a tensor")
        if not x.is_floating_point() or x.dtype != self.weight_ih.dtype:
            raise ValueError(f"{name}: expected dtype {self.weight_ih.dtype} (the parameters'), got {x.dtype}")
        if x.dim() < 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"{name}: expected shape [*, num_nodes, in_channels={self.in_channels}], got "
                             f"{list(x.shape)}")

    def initial_state(self, state, x: Tensor) -> tuple[Tensor, ...] | None:
        """``state`` checked against ``x`` ``[*, N, F]`` (each part ``[*, N, out_channels]``); None stays None,
        the zero state, whose graph products ``_step`` skips (they vanish)."""
        if state is None:
            return None
        shape = (*x.shape[:-1], self.out_channels)
        names = self.state_names
        if len(names) == 1:
            state = (state,)
        elif not isinstance(state, (tuple, list)) or len(state) != len(names):
            raise ValueError(f"state: expected a pair ({', '.join(names)}) of tensors {list(shape)}")
        for s, name in zip(state, names):
            instance(f"state ({name})", s, Tensor, "a tensor")
            if tuple(s.shape) != shape or s.dtype != x.dtype or s.device != x.device:
                raise ValueError(f"state ({name}): expected shape {list(shape)}, dtype {x.dtype} on {x.device} "
                                 f"(x's leading dimensions, nodes, out_channels), got {list(s.shape)}, {s.dtype} "
                                 f"on {s.device}")
        return tuple(state)

    # ------------------------------------------------------------------ one snapshot
    def forward(self, x: Tensor, edge_index, edge_weight: Tensor | None = None, state=None):
        """One snapshot: ``x`` ``[*, N, in_channels]`` -> the next state (``h``, or ``(h, c)`` for the LSTM),
        each ``[*, N, out_channels]``.

        Args:
            x: node features of this snapshot.
            edge_index: ``[2, E]`` edges, or the graph from :meth:`graph`.
            edge_weight: ``[E]`` weights. (default: ones)
            state: the previous state. (default: zeros)
        """
        self.check_input(x)
        graph = self.graph(edge_index, edge_weight, x.size(-2), x.dtype)
        state = self.initial_state(state, x)
        out = self._step(self.input_projection(x, graph), state, graph)
        return out[0] if len(self.state_names) == 1 else out

    def input_projection(self, x: Tensor, graph) -> list[Tensor]:
        r"""The input side of each gate, :math:`\sum_s S_s X \Theta_s + b`: G tensors ``[*, N, H]`` (unchecked)."""
        return self._products(x, graph, self.weight_ih, range(self.gates), self.bias)

    def _state_side(self, h: Tensor, graph, gates) -> list[Tensor]:
        r""":math:`\sum_s S_s H \Theta_s` for each gate in ``gates`` (indices into the gate layout)."""
        return self._products(h, graph, self.weight_hh, gates, None)

    def _products(self, x: Tensor, graph, weight: Tensor, gates, bias: Tensor | None) -> list[Tensor]:
        rows = rows_first(graph.basis(node_major(x)), x)  # the graph products, once for all gates
        H = self.out_channels
        return [combine(rows, weight[:, g * H:(g + 1) * H], x.shape[:-1],
                        None if bias is None else bias[g * H:(g + 1) * H]) for g in gates]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class _GraphGRU(_GraphCell):
    gates = 3

    def _step(self, xp: list[Tensor], state: tuple[Tensor] | None, graph) -> tuple[Tensor]:
        xr, xz, xn = xp
        if state is None:  # h = 0: the state side vanishes, h' = (1 - z) n
            return ((1 - torch.sigmoid(xz)) * torch.tanh(xn),)
        (h,) = state
        hr, hz = self._state_side(h, graph, (0, 1))
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + self._state_side(h * r, graph, (2,))[0])
        return (z * h + (1 - z) * n,)


class _Chebyshev:
    """The Chebyshev graph of GConvGRU and GConvLSTM."""

    graph_type = ChebyshevGraph

    def _init_chebyshev(self, K: int, normalization: str | None, lambda_max: float | None) -> int:
        self.K = positive_int("K", K)
        self.normalization = choice("normalization", normalization, NORMALIZATIONS)
        if lambda_max is None and normalization != "sym":
            raise ValueError(f"lambda_max: needed for normalization={normalization!r}; pass the largest eigenvalue "
                             "of the Laplacian (2.0 bounds it for 'rw')")
        self.lambda_max = lambda_max
        return self.K

    def _build(self, edge_index, edge_weight, num_nodes, dtype) -> ChebyshevGraph:
        return chebyshev_graph(edge_index, edge_weight, num_nodes, self.K, normalization=self.normalization,
                               lambda_max=self.lambda_max, dtype=dtype, check=False)


class GConvGRU(_Chebyshev, _GraphGRU):
    r"""A GRU whose products are Chebyshev graph convolutions (Seo et al. 2018):

    .. math::
        r &= \sigma(\Theta_{xr} \star X + \Theta_{hr} \star H + b_r) \\
        z &= \sigma(\Theta_{xz} \star X + \Theta_{hz} \star H + b_z) \\
        n &= \tanh(\Theta_{xn} \star X + \Theta_{hn} \star (r \odot H) + b_n) \\
        H' &= z \odot H + (1 - z) \odot n

    with :math:`\Theta \star X = \sum_{k<K} T_k(\hat L) X \Theta_k` (PyG's ``ChebConv``). As PGT's
    ``GConvGRU`` given the same weights (its two biases per gate summed into ``bias``; tested in
    ``benchmarks/temporal_pgt.py``).

    Args:
        in_channels: features per node of the input.
        out_channels: features per node of the state.
        K: Chebyshev filter size (K - 1 hops).
        normalization: the Laplacian, ``"sym"``, ``"rw"`` or ``None``. (default: ``"sym"``)
        bias: learn a bias per gate. (default: ``True``)
        lambda_max: the Laplacian's largest eigenvalue; needed unless ``"sym"`` (then 2). (default: ``None``)
        cached: build the graph on the first call and reuse it. (default: ``False``)

    Shapes:
        - **input:** ``x`` ``[*, N, in_channels]``, ``edge_index`` ``[2, E]`` (or :meth:`graph`'s operator),
          ``edge_weight`` ``[E]``, ``state`` ``h`` ``[*, N, out_channels]`` (zeros when None)
        - **output:** the next ``h`` ``[*, N, out_channels]``

    Example::

        cell = GConvGRU(4, 32, K=2)
        h = cell(x, edge_index)          # one snapshot; GraphSequence(cell) runs a whole signal
        h = cell(x_next, edge_index, state=h)
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, normalization: str | None = "sym",
                 bias: bool = True, *, lambda_max: float | None = None, cached: bool = False) -> None:
        k = self._init_chebyshev(K, normalization, lambda_max)
        super().__init__(in_channels, out_channels, k, bias, cached)
        self.reset_parameters()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", K={self.K}, normalization={self.normalization!r}"


class GConvLSTM(_Chebyshev, _GraphCell):
    r"""An LSTM with peepholes whose products are Chebyshev graph convolutions (Seo et al. 2018, as PGT):

    .. math::
        i &= \sigma(\Theta_{xi} \star X + \Theta_{hi} \star H + w_{ci} \odot C + b_i) \\
        f &= \sigma(\Theta_{xf} \star X + \Theta_{hf} \star H + w_{cf} \odot C + b_f) \\
        g &= \tanh(\Theta_{xg} \star X + \Theta_{hg} \star H + b_g) \\
        C' &= f \odot C + i \odot g \\
        o &= \sigma(\Theta_{xo} \star X + \Theta_{ho} \star H + w_{co} \odot C' + b_o) \\
        H' &= o \odot \tanh(C')

    Args:
        in_channels, out_channels, K, normalization, bias, lambda_max, cached: as :class:`GConvGRU`.

    Shapes:
        - **input:** as :class:`GConvGRU`, ``state`` a pair ``(h, c)``, each ``[*, N, out_channels]``
        - **output:** ``(h, c)``

    Parameters beyond the gate layout: the peepholes ``weight_ci``, ``weight_cf``, ``weight_co`` ``[H]``.
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(self, in_channels: int, out_channels: int, K: int, normalization: str | None = "sym",
                 bias: bool = True, *, lambda_max: float | None = None, cached: bool = False) -> None:
        k = self._init_chebyshev(K, normalization, lambda_max)
        super().__init__(in_channels, out_channels, k, bias, cached)
        self.weight_ci = nn.Parameter(torch.empty(out_channels))
        self.weight_cf = nn.Parameter(torch.empty(out_channels))
        self.weight_co = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        bound = math.sqrt(6.0 / (1 + self.out_channels))  # glorot on [1, H], as PGT's peepholes
        for w in (self.weight_ci, self.weight_cf, self.weight_co):
            nn.init.uniform_(w, -bound, bound)

    def _step(self, xp: list[Tensor], state: tuple[Tensor, Tensor] | None, graph) -> tuple[Tensor, Tensor]:
        if state is None:  # h = c = 0: the state side and the forget gate's term vanish
            zi, _, zg, zo = xp
            c = torch.sigmoid(zi) * torch.tanh(zg)
            return torch.sigmoid(zo + self.weight_co * c) * torch.tanh(c), c
        h, c = state
        zi, zf, zg, zo = (a + b for a, b in zip(xp, self._state_side(h, graph, range(4))))
        i = torch.sigmoid(zi + self.weight_ci * c)
        f = torch.sigmoid(zf + self.weight_cf * c)
        c = f * c + i * torch.tanh(zg)
        o = torch.sigmoid(zo + self.weight_co * c)
        return o * torch.tanh(c), c

    def extra_repr(self) -> str:
        return super().extra_repr() + f", K={self.K}, normalization={self.normalization!r}"


class DCRNN(_GraphGRU):
    r"""The diffusion convolutional GRU cell of Li et al. (2018):

    .. math::
        r &= \sigma(\Theta_r \star [X, H] + b_r), \quad z = \sigma(\Theta_z \star [X, H] + b_z) \\
        n &= \tanh(\Theta_n \star [X, r \odot H] + b_n), \quad H' = z \odot H + (1 - z) \odot n

    with the diffusion convolution :math:`\Theta \star X = \sum_{k<K} (P_f^k X \Theta_{k,f} + P_b^k X
    \Theta_{k,b})` over the forward and backward random walks (:class:`~gseq.layers.graph_operators.
    DiffusionGraph`); the two :math:`k = 0` terms are one weight here (``2K - 1`` supports). Weighted edges
    enter the walks (similarities >= 0). Differences from PGT's ``DCRNN``, which equals this cell for K <= 2
    on an unweighted graph whose edge list is sorted and symmetric (as chickenpox's): PGT's messages ignore
    the edge weight (it only enters the degrees), its backward normalisation is read in the forward edges'
    order, and for K > 2 it runs a Chebyshev-like recursion :math:`2 P T_{k-1} - T_{k-2}` instead of powers.

    Args:
        in_channels, out_channels: as :class:`GConvGRU`.
        K: diffusion steps counted with the identity (K = 1: no graph).
        bias: learn a bias per gate. (default: ``True``)
        cached: build the graph on the first call and reuse it. (default: ``False``)
    """

    graph_type = DiffusionGraph
    non_negative_weights = True

    def __init__(self, in_channels: int, out_channels: int, K: int, bias: bool = True, *,
                 cached: bool = False) -> None:
        self_k = positive_int("K", K)
        super().__init__(in_channels, out_channels, 2 * self_k - 1, bias, cached)
        self.K = self_k
        self.reset_parameters()

    def _build(self, edge_index, edge_weight, num_nodes, dtype) -> DiffusionGraph:
        return diffusion_graph(edge_index, edge_weight, num_nodes, self.K, dtype=dtype, check=False)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", K={self.K}"


class TGCN(_GraphGRU):
    r"""The temporal graph convolutional cell of Zhao et al. (2019): a GCN on the input, then a GRU:

    .. math::
        G &= \mathrm{GCN}(X) = \hat D^{-1/2} (A + wI) \hat D^{-1/2} X \Theta_c + b_c \quad
             (\text{one block } G_r, G_z, G_n \text{ per gate}) \\
        r &= \sigma(W_{xr} G_r + W_{hr} H + b_r), \quad z = \sigma(W_{xz} G_z + W_{hz} H + b_z) \\
        n &= \tanh(W_{xn} G_n + W_{hn} (r \odot H) + b_n), \quad H' = z \odot H + (1 - z) \odot n

    PGT's ``TGCN`` (a ``GCNConv`` and a ``Linear`` over ``[GCN(X), H]`` per gate) given the same weights.
    The GCN is :class:`gseq.layers.GCN` (``conv``, one layer for the three gates), so the self-loop weight
    :math:`w` may be learned (``self_loop_weight="learn"``): how much of each node's own signal to keep.
    When ``in_channels < 3 * out_channels`` that GCN aggregates :math:`X` before applying :math:`\Theta_c`,
    so its sparse product runs over ``in_channels`` columns (PGT's three ``GCNConv``: H columns each).

    Args:
        in_channels, out_channels: as :class:`GConvGRU`.
        improved: :math:`w = 2`. (default: ``False``)
        cached: build the graph on the first call and reuse it. (default: ``False``)
        add_self_loops: add the self-loops :math:`wI`. (default: ``True``)
        self_loop_weight: :math:`w`, a float >= 0 or ``"learn"``. (default: ``1.0``)
        bias: learn the gates' biases (the GCN keeps its own). (default: ``True``)

    Parameters: ``conv`` (``GCN(in_channels, 3 * out_channels)``), ``weight_ih`` ``[1, 3H, H]`` (gate ``g``'s
    rows act on block ``g`` of the GCN's output), ``weight_hh`` ``[1, 3H, H]``, ``bias`` ``[3H]``.
    """

    graph_type = GCNGraph
    graph_on_state = False

    def __init__(self, in_channels: int, out_channels: int, improved: bool = False, cached: bool = False,
                 add_self_loops: bool = True, *, self_loop_weight: float | str = 1.0, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias, cached, input_channels=out_channels)
        self.conv = GCN(in_channels, self.gates * out_channels, improved=improved, add_self_loops=add_self_loops,
                        self_loop_weight=self_loop_weight)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "conv"):
            self.conv.reset_parameters()

    def _build(self, edge_index, edge_weight, num_nodes, dtype) -> GCNGraph:
        return self.conv.graph(edge_index, edge_weight, num_nodes, dtype)

    def input_projection(self, x: Tensor, graph: GCNGraph) -> list[Tensor]:
        H = self.out_channels
        g = self.conv(x, graph)  # [*, N, 3H], one GCN for the three gates
        b = self.bias
        return [F.linear(g[..., k * H:(k + 1) * H], self.weight_ih[0, k * H:(k + 1) * H],
                         None if b is None else b[k * H:(k + 1) * H]) for k in range(self.gates)]

    def _state_side(self, h: Tensor, graph, gates) -> list[Tensor]:
        H = self.out_channels
        return [F.linear(h, self.weight_hh[0, k * H:(k + 1) * H]) for k in gates]


#: the recurrent graph cells by the names the forecasting task and `gseq temporal train --model` use
GRAPH_CELLS = {"gconv_gru": GConvGRU, "gconv_lstm": GConvLSTM, "tgcn": TGCN, "dcrnn": DCRNN}


@dataclass(eq=False)
class SequenceGraphs:
    """The graphs of a whole signal, built once (:meth:`GraphSequence.graphs`): ``inputs`` for the input
    side of all snapshots at once (the graph itself, or the block-diagonal union of the snapshots),
    ``steps`` for the state side (one graph, or one per snapshot)."""

    inputs: object
    steps: list
    num_nodes: int
    dynamic: bool


def _in_snapshot(message: str, t: int) -> str:
    """``"edge_index: ..."`` (or ``"edge_index must ..."``) -> ``"edge_index (snapshot t): ..."``."""
    name = next((n for n in ("edge_index", "edge_weight") if message.startswith(n)), None)
    if name is None:
        return f"snapshot {t}: {message}"
    return f"{name} (snapshot {t}): {message[len(name):].removeprefix(':').lstrip()}"


class GraphSequence(nn.Module):
    r"""A recurrent graph cell run over a whole signal, with its state carried.

    The input side of every gate for all T snapshots is one call (:meth:`_GraphCell.input_projection` on
    ``[*, T, N, F]``: one sparse product per support for a fixed graph; over the block-diagonal union of
    the snapshots for a changing one); the loop over time runs only the state side. The graph is built
    and validated once per call, or once for good with :meth:`graphs`. An initial state goes in and the
    final state comes out, so a forecast continues where training stopped. Equal to calling the cell
    snapshot by snapshot (tested).

    Args:
        cell: a :class:`GConvGRU`, :class:`GConvLSTM`, :class:`TGCN` or :class:`DCRNN`.

    Shapes:
        - **input:** ``x`` ``[T, N, F]`` or ``[B, T, N, F]`` (B signals on one graph); ``edge_index``
          ``[2, E]`` (one graph) or a sequence of T ``[2, E_t]`` (a graph per snapshot), or
          :meth:`graphs`'s result; ``edge_weight`` ``[E]`` or a sequence of T; ``state`` as the cell's, each
          ``[N, H]`` or ``[B, N, H]``
        - **output:** ``(outputs, state)``: the states ``h`` of all snapshots ``[*, T, N, H]`` and the final
          state

    Example::

        seq = GraphSequence(GConvGRU(4, 32, K=2))
        hs, h = seq(x, edge_index)                 # x [T, N, 4] -> hs [T, N, 32]
        hs2, h = seq(x_next, edge_index, state=h)  # continues from where the first call stopped
    """

    def __init__(self, cell: _GraphCell) -> None:
        super().__init__()
        self.cell = instance("cell", cell, _GraphCell, "a recurrent graph cell (GConvGRU, GConvLSTM, TGCN, DCRNN)")

    def graphs(self, edge_index, edge_weight=None, num_nodes: int | None = None, num_steps: int | None = None,
               dtype: torch.dtype | None = None) -> SequenceGraphs:
        """The graphs of a signal, validated and built once: pass the result as ``edge_index`` to
        :meth:`forward` (any number of calls, windows of any length for a fixed graph)."""
        cell = self.cell
        if isinstance(edge_index, SequenceGraphs):
            return edge_index
        if isinstance(edge_index, Tensor) or isinstance(edge_index, cell.graph_type):
            g = cell.graph(edge_index, edge_weight, num_nodes, dtype)
            return SequenceGraphs(g, [g], g.num_nodes, False)
        if not isinstance(edge_index, Sequence) or not edge_index:
            raise TypeError("edge_index: expected a [2, E] tensor or a non-empty sequence of them (one per snapshot), "
                            f"got {type(edge_index).__name__}")
        T = len(edge_index)
        if num_steps is not None and num_steps != T:
            raise ValueError(f"edge_index: {T} snapshots of edges for a signal of T = {num_steps} snapshots; give one "
                             "edge_index per snapshot")
        if edge_weight is not None and (not isinstance(edge_weight, Sequence) or len(edge_weight) != T):
            raise ValueError(f"edge_weight: expected a sequence of {T} weight tensors (or None) to match the {T} "
                             "snapshots of edge_index")
        weights = list(edge_weight) if edge_weight is not None else [None] * T
        if num_nodes is None:
            num_nodes = max(int(ei.max()) + 1 if ei.numel() else 0 for ei in edge_index)
        dtype = dtype or cell.weight_ih.dtype
        steps = []
        for t, (ei, w) in enumerate(zip(edge_index, weights)):
            try:
                cell._validate(ei, w, num_nodes)
            except (TypeError, ValueError) as e:
                raise type(e)(_in_snapshot(str(e), t)) from None
            steps.append(cell._build(ei, w, num_nodes, dtype))
        block_ei, block_w = block_diagonal(edge_index, weights, num_nodes)
        return SequenceGraphs(cell._build(block_ei, block_w, T * num_nodes, dtype), steps, num_nodes, True)

    def forward(self, x: Tensor, edge_index, edge_weight=None, state=None):
        cell = self.cell
        instance("x", x, Tensor, "a tensor")
        if x.dim() not in (3, 4) or x.size(-3) < 1:
            raise ValueError(f"x: expected shape [T, N, F] or [B, T, N, F] with T >= 1, got {list(x.shape)}")
        cell.check_input(x)
        T, N = x.size(-3), x.size(-2)
        graphs = self.graphs(edge_index, edge_weight, N, T, x.dtype)
        if graphs.num_nodes != N:
            raise ValueError(f"x: {N} nodes but the graph has {graphs.num_nodes}")
        if graphs.dynamic and len(graphs.steps) != T:
            raise ValueError(f"edge_index: {len(graphs.steps)} snapshots of edges for a signal of T = {T}")
        state = cell.initial_state(state, x.select(-3, 0))
        if graphs.dynamic:  # [*, T, N, F] -> [*, T * N, F]: the snapshots as one block-diagonal graph
            xp = [g.unflatten(-2, (T, N)) for g in cell.input_projection(x.flatten(-3, -2), graphs.inputs)]
        else:
            xp = cell.input_projection(x, graphs.inputs)  # G gates, each [*, T, N, H]
        outputs = []
        # unbind: one backward node per gate for all steps (select: one per step, each zero-filling a whole gate)
        for t, xp_t in enumerate(zip(*(g.unbind(-3) for g in xp))):
            state = cell._step(list(xp_t), state, graphs.steps[t if graphs.dynamic else 0])
            outputs.append(state[0])
        final = state[0] if len(state) == 1 else state
        return torch.stack(outputs, dim=-3), final
