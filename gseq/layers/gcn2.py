r"""The GCNII layer of Chen et al. (:class:`GCN2`): initial residual and identity mapping, a drop-in for
PyG's ``GCN2Conv``.

``forward`` reads as the equation: propagate -> mix in the initial representation -> identity-mapped
weight. The propagation :math:`\hat P X` is :class:`~gseq.layers.GCN`'s own aggregation, over the same
:class:`~gseq.layers.GCNGraph` (a loop-free CSR built and validated once, loops and normalisation as
dense row scalings), reached through one call site, :func:`_propagate` (``gseq.layers.gcn_structure.aggregate``). The graph handling (build,
cache, check a prebuilt graph, the self-loop weight) is ``GCN``'s, borrowed method by method, so the
two layers cannot drift apart.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.inits import glorot

from ..checks import boolean, choice, in_range, non_negative_float, positive_int
from .gcn import _PROPAGATE_HOOKS, GCN
from .gcn_structure import FLOWS, GCNGraph, aggregate

__all__ = ["GCN2", "identity_mapping_strength"]

_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_ONE) == 1.0


def identity_mapping_strength(theta: float, layer: int) -> float:
    r""":math:`\beta_\ell = \log(\theta / \ell + 1)`, GCNII's weight on :math:`\Theta` in layer :math:`\ell`."""
    return math.log(theta / layer + 1)


def _propagate(graph: GCNGraph, x: Tensor, w: Tensor | float, normalize: bool | str) -> Tensor:
    r""":math:`\hat P X` through GCN's one aggregation path over ``graph`` (``normalize=False``: :math:`A X`).
    ``[N, C]``"""
    return aggregate(graph, x, w, normalize=normalize, reduce="sum", node_dim=0)


class GCN2(MessagePassing):
    r"""Graph convolution with initial residual and identity mapping (GCNII; Chen et al., ICML 2020).

    .. math::
        \mathbf{X}' = \bigl((1 - \alpha) \hat{\mathbf{P}} \mathbf{X} + \alpha \mathbf{X}^{(0)}\bigr)
        \bigl((1 - \beta) \mathbf{I} + \beta \mathbf{\Theta}\bigr),
        \qquad \hat{\mathbf{P}} = \hat{\mathbf{D}}^{-1/2} (\mathbf{A} + w\mathbf{I}) \hat{\mathbf{D}}^{-1/2},
        \quad \beta = \log(\theta / \ell + 1)

    The initial residual mixes a fraction :math:`\alpha` of the first representation
    :math:`\mathbf{X}^{(0)}` into every layer, so a node's own features keep a share of its output however
    deep the stack; the identity mapping keeps layer :math:`\ell`'s weight close to the identity
    (:math:`\beta \to 0` as :math:`\ell` grows). Without ``theta`` and ``layer``, :math:`\beta = 1`.
    With ``shared_weights=False`` ("GCNII*") the two terms get weights of their own,
    :math:`(1-\alpha)\hat P X ((1-\beta) I + \beta \Theta_1) + \alpha X^{(0)} ((1-\beta) I + \beta \Theta_2)`.

    A drop-in for :class:`torch_geometric.nn.GCN2Conv`: the same arguments, in the same order, and the
    same parameter names (``weight1``, ``weight2``), so a ``state_dict`` loads; the same outputs and
    gradients on ``edge_index`` with or without ``edge_weight``, on torch sparse adjacencies (``adj_t``,
    e.g. from ``T.GCNNorm()`` and ``T.ToSparseTensor()`` with ``normalize=False``), cached or not.
    The same random initialisation too (glorot on ``weight1``, then ``weight2``), so a seeded script
    draws the same weights. Differences, each deliberate:

    - ``self_loop_weight``: the loop weight :math:`w` of :class:`~gseq.layers.GCN`, fixed or learned
      (``"learn"``: one positive weight, ``softplus`` of a raw parameter ``raw_self_loop_weight``,
      starting at 1.0); the default 1.0 is ``GCN2Conv``'s :math:`\hat A = A + I`.
    - the aggregation is ``GCN``'s (a loop-free CSR and :mod:`gseq.ops` kernels, deterministic, no edges
      x features tensor) and the graph is built and validated once (reused while the same, unmodified
      ``edge_index`` / ``adj_t`` and weights come back, in training and evaluation alike), or once for good
      with ``cached=True``, or passed in as a :class:`~gseq.layers.GCNGraph` (``conv.graph(edge_index)``),
      which all layers of a deep model can share.
    - bad arguments are refused with an error naming them: ``alpha`` outside [0, 1], ``theta`` without
      ``layer`` (or the reverse), ``layer < 1``, ``theta < 0``, an ``x_0`` whose channels differ from
      ``channels``; so are aggregations other than ``"add"``, a ``node_dim`` other than the rows of
      ``[N, C]`` features, PyG's explainer masks and ``propagate`` hooks (``forward`` never calls
      ``propagate``).
    - ``add_self_loops`` and ``cached`` are stored as what the layer does: both False with
      ``normalize=False``, where ``GCN2Conv`` ignores them too (it reads the weights it is given on every
      call).
    - ``normalize="both"`` is accepted, as in ``GCN``.
    - a node with several self-loops in ``edge_index`` uses the last one's weight, as ``GCN2Conv``; only
      that one gets a gradient (``GCN2Conv`` gives the overwritten ones the same gradient, though they do
      not change the output).

    Example::

        conv = GCN2(64, alpha=0.1, theta=0.5, layer=3)  # as GCN2Conv(64, 0.1, 0.5, 3)
        out = conv(x, x_0, edge_index)                  # x, x_0: [N, 64] -> [N, 64]

    Args:
        channels: size of each input and output sample.
        alpha: :math:`\alpha`, the strength of the initial residual, in [0, 1].
        theta: :math:`\theta` (GCNII's :math:`\lambda`) of the identity mapping strength
            :math:`\beta = \log(\theta / \ell + 1)`, >= 0; give it with ``layer``.
            (default: ``None``, :math:`\beta = 1`)
        layer: :math:`\ell`, the layer's position (1 for the first), >= 1; give it with ``theta``.
            (default: ``None``)
        shared_weights: one weight for both terms (GCNII); False gives the initial residual a weight
            ``weight2`` of its own (GCNII*). (default: ``True``)
        cached: build the graph structure on the first call and reuse it (one graph, transductive).
            With ``"learn"`` the learned weight still updates. (default: ``False``)
        add_self_loops: add the self-loops of :math:`w\mathbf{I}` (only with ``normalize``). (default: ``True``)
        normalize: ``True`` normalises by the in-degrees with loops as ``GCN2Conv``; ``"both"`` as ``GCN``;
            ``False`` aggregates :math:`A X` with the graph's own weights (a pre-normalised adjacency).
            (default: ``True``)
        self_loop_weight: :math:`w`, a float >= 0, or ``"learn"`` (keyword only). (default: ``1.0``)
        **kwargs: passed to :class:`~torch_geometric.nn.conv.MessagePassing`: ``aggr`` (``"add"`` only),
            ``flow``, ``node_dim`` (``-2`` or ``0``).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)`, initial node features
          :math:`(\ge|\mathcal{V}|, C)` (the first :math:`|\mathcal{V}|` rows are used, as in
          ``GCN2Conv``), edge indices :math:`(2, |\mathcal{E}|)`, a torch sparse adjacency
          :math:`(|\mathcal{V}|, |\mathcal{V}|)` or a :class:`~gseq.layers.GCNGraph`, edge weights
          :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, C)`
    """

    # the graph handling of GCN, shared as it is: building, caching and checking a GCNGraph, and the
    # normalisation for the current self-loop weight (they read cached, add_self_loops, flow, normalize
    # and the self-loop attributes that __init__ sets as GCN's does)
    graph = GCN.graph
    _graph_for = GCN._graph_for
    _build_graph = GCN._build_graph
    _reuse_key = GCN._reuse_key
    _new_graph = GCN._new_graph
    _check_graph = GCN._check_graph
    self_loop_weight = GCN.self_loop_weight
    _w = GCN._w
    __getstate__ = GCN.__getstate__

    def __init__(
        self,
        channels: int,
        alpha: float,
        theta: float | None = None,
        layer: int | None = None,
        shared_weights: bool = True,
        cached: bool = False,
        add_self_loops: bool = True,
        normalize: bool | str = True,
        *,
        self_loop_weight: float | str = 1.0,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        choice("aggr", kwargs["aggr"], ("add", "sum"))
        super().__init__(**kwargs)
        positive_int("channels", channels)
        in_range("alpha", alpha, 0, 1)
        if (theta is None) != (layer is None):
            given, missing = ("theta", "layer") if layer is None else ("layer", "theta")
            raise ValueError(f"{missing}: {given} needs {missing} (beta = log(theta / layer + 1)); give both, or "
                             "neither for beta = 1")
        if theta is not None:
            non_negative_float("theta", theta)
            positive_int("layer", layer, hint=" (the first layer is 1)")
        choice("normalize", normalize, (True, False, "both"))
        for name, value in (("shared_weights", shared_weights), ("cached", cached),
                            ("add_self_loops", add_self_loops)):
            boolean(name, value)
        if self.node_dim not in (-2, 0):
            raise ValueError(f"node_dim: GCN2 takes features [N, channels] with the nodes at -2 (or 0), got "
                             f"{self.node_dim!r}")
        choice("flow", self.flow, FLOWS)
        # GCN2Conv adds no loops and caches nothing without normalize: keep what the layer does
        add_self_loops = add_self_loops and normalize is not False
        cached = cached and normalize is not False
        learn = self_loop_weight == "learn"
        if learn and not add_self_loops:
            raise ValueError("self_loop_weight: 'learn' needs self-loops (normalize=True and add_self_loops=True)")
        if not learn:
            non_negative_float("self_loop_weight", self_loop_weight, hint=" or 'learn'")
            if not add_self_loops and self_loop_weight != 1.0:
                raise ValueError("self_loop_weight: has no effect without self-loops; use normalize=True and "
                                 "add_self_loops=True, or leave it at 1.0")

        self.channels = channels
        self.alpha = alpha
        self.theta, self.layer = theta, layer
        self.beta = 1.0 if theta is None else identity_mapping_strength(theta, layer)
        self.cached = cached
        self.normalize = normalize
        self.add_self_loops = add_self_loops
        self.learn_self_loop = learn
        self.fixed_self_loop_weight = None if learn else float(self_loop_weight)
        self._cached_graph: GCNGraph | None = None
        self._last_graph: tuple | None = None  # cached=False: the last call's graph, reused as GCN does

        self.weight1 = Parameter(torch.empty(channels, channels))
        if shared_weights:
            self.register_parameter("weight2", None)
        else:
            self.weight2 = Parameter(torch.empty(channels, channels))
        if learn:
            self.raw_self_loop_weight = Parameter(torch.empty(()))
        else:
            self.register_parameter("raw_self_loop_weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        glorot(self.weight1)  # weight1, then weight2: GCN2Conv's order of random draws
        glorot(self.weight2)
        if self.raw_self_loop_weight is not None:
            with torch.no_grad():
                self.raw_self_loop_weight.fill_(_SOFTPLUS_INV_ONE)
        self._cached_graph = None
        self._last_graph = None

    def forward(self, x: Tensor, x_0: Tensor, edge_index: Tensor | GCNGraph,
                edge_weight: Tensor | None = None) -> Tensor:
        """Apply the layer.

        Args:
            x: node features ``[N, channels]``.
            x_0: the initial representation ``[N, channels]`` (more rows are allowed; the first ``N`` are used).
            edge_index: ``[2, E]`` edges, a torch sparse adjacency ``adj_t`` ``[N, N]`` (entry ``(i, j)`` is
                the edge ``j -> i``), or a :class:`~gseq.layers.GCNGraph` from :meth:`graph`.
            edge_weight: ``[E]`` edge weights. (default: all ones)
        """
        self._check_call(x, x_0)
        graph = self._graph_for(x, edge_index, edge_weight, 0)  # built and validated once
        px = _propagate(graph, x, self._w(), self.normalize)  # P x, [N, C]
        # PyG's floating-point operations in PyG's order, so a seeded script gives the same bits with either layer
        px, x_0 = px * (1 - self.alpha), self.alpha * x_0[:x.size(0)]
        if self.weight2 is None:  # ((1 - a) P x + a x_0) ((1 - b) I + b W)
            out = px + x_0
            return torch.addmm(out, out, self.weight1, beta=1.0 - self.beta, alpha=self.beta)
        # GCNII*: each term through a weight of its own
        return (torch.addmm(px, px, self.weight1, beta=1.0 - self.beta, alpha=self.beta)
                + torch.addmm(x_0, x_0, self.weight2, beta=1.0 - self.beta, alpha=self.beta))

    def _check_call(self, x: Tensor, x_0: Tensor) -> None:
        """Validate ``x``, ``x_0`` and the MessagePassing settings (shapes only: no host sync)."""
        for name, t in (("x", x), ("x_0", x_0)):
            if not isinstance(t, Tensor) or t.layout != torch.strided:
                raise TypeError(f"{name}: expected a dense tensor of node features [N, channels], got "
                                f"{type(t).__name__ if not isinstance(t, Tensor) else t.layout}")
            if t.dim() != 2 or t.size(1) != self.channels:
                raise ValueError(f"{name}: expected shape [N, {self.channels}] ({self.channels} = channels), got "
                                 f"{list(t.shape)}")
        if x_0.size(0) < x.size(0):
            raise ValueError(f"x_0: needs a row per node of x ({x.size(0)}), got {x_0.size(0)}")
        if x_0.device != x.device or x_0.dtype != x.dtype:
            raise ValueError(f"x_0: on {x_0.device} as {x_0.dtype} but x is on {x.device} as {x.dtype}; use one "
                             "device and dtype")
        if self._explain or any(getattr(self, name) for name in _PROPAGATE_HOOKS):
            raise ValueError("explain: GCN2 never calls propagate(), so PyG explainer edge masks and propagate/"
                             "message hooks would be ignored; use torch_geometric.nn.GCN2Conv for them")

    def __repr__(self) -> str:
        w = "learn" if self.learn_self_loop else self.fixed_self_loop_weight
        return f"{self.__class__.__name__}({self.channels}, alpha={self.alpha}, beta={self.beta}, self_loop_weight={w})"
