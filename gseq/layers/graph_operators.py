r"""The graph operators of the recurrent graph cells, built (and validated) once per graph.

A recurrent graph cell multiplies its input and its state by a few fixed matrices of the graph, the
*supports* :math:`S_0 = I, S_1, \dots, S_{k-1}`, and mixes the results with learned weights:
:math:`\sum_s S_s X \Theta_s`. The supports are never formed: an operator holds one or two CSR matrices
(:class:`gseq.ops.CSR`, built here once) and :meth:`basis` returns :math:`[S_0 X, S_1 X, \dots]` through
:func:`gseq.ops.spmm`, one sparse product per support.

- :class:`ChebyshevGraph` (GConvGRU, GConvLSTM; Defferrard et al. 2016 as Seo et al. 2018 use it): the
  Chebyshev polynomials :math:`T_k(\hat L)` of the scaled Laplacian :math:`\hat L = 2L/\lambda_{max} - I`,
  :math:`T_0 = I`, :math:`T_1 = \hat L`, :math:`T_k = 2\hat L T_{k-1} - T_{k-2}`. :math:`L` is PyG's
  ``ChebConv`` Laplacian: self-loops removed, degrees of the sources (``edge_index[0]``), ``"sym"``
  :math:`I - D^{-1/2} A D^{-1/2}`, ``"rw"`` :math:`I - D^{-1} A`, ``None`` :math:`D - A`.
- :class:`DiffusionGraph` (DCRNN, Li et al. 2018): powers of the forward and backward random walks,
  :math:`P_f^k` and :math:`P_b^k` for :math:`k < K`, with :math:`(P_f X)_i = \sum_{j \to i} w_{ji} X_j /
  d^{out}_j` and :math:`(P_b X)_i = \sum_{i \to j} w_{ij} X_j / d^{in}_j` (the transition matrices
  :math:`D_O^{-1} W` and :math:`D_I^{-1} W^\top` of the paper, applied as the authors' code applies them,
  transposed: the mass at a node flows along its out-edges). Self-loops are ordinary edges.

A changing graph (one edge set per snapshot) becomes one operator over the block-diagonal union of the
snapshots (:func:`block_diagonal`): the input-side products of all T snapshots are then one call, as for
a fixed graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import positive_float
from ..ops import CSR, accumulation_dtype, spmm
from .gcn import check_graph_inputs

__all__ = ["ChebyshevGraph", "DiffusionGraph", "chebyshev_graph", "diffusion_graph", "block_diagonal",
           "NORMALIZATIONS", "check_edge_weights", "node_major", "rows_first", "combine"]

#: the Laplacians of :class:`ChebyshevGraph` (PyG's ``ChebConv`` names)
NORMALIZATIONS = ("sym", "rw", None)


def node_major(x: Tensor) -> Tensor:
    """``[*, N, C]`` -> ``[N, prod(*) * C]``: every row of the leading dimensions as columns, so that one
    sparse product serves them all."""
    if x.dim() == 2:
        return x
    return x.movedim(-2, 0).reshape(x.size(-2), -1)


def rows_first(basis: list[Tensor], like: Tensor) -> list[Tensor]:
    """The node-major ``basis`` (tensors ``[N, R * C]``) as ``[R * N, C]`` rows in the order of ``like``
    ``[*, N, C]``: the (narrow) basis is copied once, so that the (wider) products come out contiguous in
    their final layout."""
    if like.dim() == 2:
        return basis
    n, c = like.size(-2), like.size(-1)
    return [b.view(n, -1, c).transpose(0, 1).reshape(-1, c) for b in basis]


def combine(rows: list[Tensor], weight: Tensor, shape: torch.Size, bias: Tensor | None = None) -> Tensor:
    r""":math:`\sum_s B_s \Theta_s^\top + b` for the basis ``rows`` (:func:`rows_first`, ``S`` tensors
    ``[M, C]``) and ``weight`` ``[S, G, C]``, returned as ``[*shape, G]``: one matrix product per support,
    accumulated, the bias added by the first."""
    out = None
    for b, w in zip(rows, weight):
        if out is None:
            out = b @ w.t() if bias is None else torch.addmm(bias, b, w.t())
        else:
            out = torch.addmm(out, b, w.t())
    return out.view(*shape, weight.size(1))


def _weights(edge_index: Tensor, edge_weight: Tensor | None, dtype: torch.dtype) -> Tensor:
    if edge_weight is None:
        return torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device)
    return edge_weight.to(dtype)


def check_edge_weights(edge_weight: Tensor | None, name: str, non_negative: bool = False) -> None:
    """Refuse NaN/inf weights (and negative ones where a random walk needs ``non_negative``)."""
    if edge_weight is None or edge_weight.numel() == 0:
        return
    edge_weight = edge_weight.detach()
    if not bool(torch.isfinite(edge_weight).all()):
        raise ValueError(f"{name}: edge weights must be finite, found NaN or inf")
    if non_negative and float(edge_weight.min()) < 0:
        raise ValueError(f"{name}: diffusion needs non-negative edge weights (a random walk), found "
                         f"{float(edge_weight.min())}; pass similarities >= 0")


class _CopiesWithoutCaches:
    """copy.deepcopy and pickle of an operator: its CSRs' structure caches (transposes, closures) are not state;
    the copy rebuilds them on first use (as :class:`~gseq.layers.GCNGraph` does)."""

    def __getstate__(self) -> dict:
        return {k: _CSRState((v.indptr, v.indices, None if v.values is None else v.values.detach(), v.shape))
                if isinstance(v, CSR) else v for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({k: CSR(*v, check=False) if isinstance(v, _CSRState) else v for k, v in state.items()})


class _CSRState(tuple):
    """A CSR's arrays and shape, as an operator's pickled state holds them."""


@dataclass(eq=False)
class ChebyshevGraph(_CopiesWithoutCaches):
    r"""The scaled Laplacian :math:`\hat L` of a graph and the Chebyshev basis :math:`T_k(\hat L) X`, k < K.

    Attributes:
        off_diagonal: :math:`\hat L` without its diagonal, a CSR whose row ``i`` holds the edges into ``i``.
        diagonal: the diagonal of :math:`\hat L`, ``[N]``, or None where it is zero (``"sym"``/``"rw"``
            with :math:`\lambda_{max} = 2`).
        K: the number of polynomials (the filter size).
    """

    off_diagonal: CSR
    diagonal: Tensor | None
    K: int

    @property
    def num_nodes(self) -> int:
        return self.off_diagonal.num_rows

    def apply(self, x: Tensor) -> Tensor:
        """:math:`\\hat L x` for ``x`` ``[N, M]``."""
        y = spmm(self.off_diagonal, x)
        return y if self.diagonal is None else y + self.diagonal.unsqueeze(1) * x

    def basis(self, x: Tensor) -> list[Tensor]:
        """``[T_0 x, T_1 x, ..., T_{K-1} x]`` for ``x`` ``[N, M]`` (node-major)."""
        out = [x]
        if self.K > 1:
            out.append(self.apply(x))
        for _ in range(2, self.K):
            out.append(2 * self.apply(out[-1]) - out[-2])
        return out


@dataclass(eq=False)
class DiffusionGraph(_CopiesWithoutCaches):
    r"""The forward and backward random walks of a graph and the diffusion basis
    :math:`[X, P_f X, \dots, P_f^{K-1} X, P_b X, \dots, P_b^{K-1} X]` (:math:`2K - 1` supports).

    Attributes:
        forward: :math:`P_f`, row ``i`` holds the edges ``j -> i`` with values :math:`w_{ji} / d^{out}_j`.
        backward: :math:`P_b`, row ``i`` holds the edges ``i -> j`` with values :math:`w_{ij} / d^{in}_j`.
        K: the number of diffusion steps counted with the identity (PGT's and the paper's ``K``).
    """

    forward: CSR
    backward: CSR
    K: int

    @property
    def num_nodes(self) -> int:
        return self.forward.num_rows

    def basis(self, x: Tensor) -> list[Tensor]:
        out, fwd, bwd = [x], [], []
        f = b = x
        for _ in range(1, self.K):
            f, b = spmm(self.forward, f), spmm(self.backward, b)
            fwd.append(f), bwd.append(b)
        return out + fwd + bwd


def chebyshev_graph(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int, K: int, *,
                    normalization: str | None = "sym", lambda_max: float | None = None,
                    dtype: torch.dtype = torch.float32, check: bool = True) -> ChebyshevGraph:
    """Build the :class:`ChebyshevGraph` of ``edge_index`` (validated once here unless ``check=False``).

    Args:
        edge_index: ``[2, E]`` edges, row 0 sources, row 1 targets; self-loops are dropped (as in ``ChebConv``).
        edge_weight: ``[E]`` weights, or None for ones.
        num_nodes: the number of nodes.
        K: the number of Chebyshev polynomials.
        normalization: ``"sym"``, ``"rw"`` or ``None`` (the combinatorial Laplacian). (default: ``"sym"``)
        lambda_max: the largest eigenvalue used to scale :math:`L`; required unless ``"sym"``, where it
            defaults to 2 (as in ``ChebConv``). (default: ``None``)
        dtype: the dtype of the features the operator will multiply. (default: ``torch.float32``)
    """
    if check:
        check_graph_inputs(edge_index, edge_weight, num_nodes)
        check_edge_weights(edge_weight, "edge_weight")
    if lambda_max is None:
        if normalization != "sym":
            raise ValueError(f"lambda_max: needed for normalization={normalization!r} (the largest eigenvalue of "
                             "the Laplacian); pass lambda_max=2.0 for 'rw', or use normalization='sym'")
        lambda_max = 2.0
    lambda_max = float(positive_float("lambda_max", lambda_max))
    acc = accumulation_dtype(dtype)
    keep = edge_index[0] != edge_index[1]
    edge_index = edge_index[:, keep].long()
    w = _weights(edge_index, None if edge_weight is None else edge_weight[keep], acc)
    src, dst = edge_index
    deg = torch.zeros(num_nodes, dtype=acc, device=edge_index.device).index_add_(0, src, w)
    scale = 2.0 / lambda_max
    if normalization == "sym":
        dis = deg.pow(-0.5).masked_fill(deg == 0, 0)
        values = -scale * dis[src] * w * dis[dst]
        diagonal = None if scale == 1.0 else torch.full_like(deg, scale - 1.0)
    elif normalization == "rw":
        values = -scale * w * deg.reciprocal().masked_fill(deg == 0, 0)[src]
        diagonal = None if scale == 1.0 else torch.full_like(deg, scale - 1.0)
    else:
        values = -scale * w
        diagonal = scale * deg - 1.0
    csr = CSR.from_edge_index(edge_index, values.to(dtype), num_nodes, check=False)
    return ChebyshevGraph(csr, None if diagonal is None else diagonal.to(dtype), K)


def diffusion_graph(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int, K: int, *,
                    dtype: torch.dtype = torch.float32, check: bool = True) -> DiffusionGraph:
    """Build the :class:`DiffusionGraph` of ``edge_index`` (validated once here unless ``check=False``).

    Args:
        edge_index: ``[2, E]`` edges, row 0 sources, row 1 targets (self-loops are kept as edges).
        edge_weight: ``[E]`` non-negative weights (similarities), or None for ones.
        num_nodes: the number of nodes.
        K: diffusion steps counted with the identity (``K = 1``: no diffusion).
        dtype: the dtype of the features the operator will multiply. (default: ``torch.float32``)
    """
    if check:
        check_graph_inputs(edge_index, edge_weight, num_nodes)
        check_edge_weights(edge_weight, "edge_weight", non_negative=True)
    acc = accumulation_dtype(dtype)
    edge_index = edge_index.long()
    w = _weights(edge_index, edge_weight, acc)
    src, dst = edge_index
    zeros = torch.zeros(num_nodes, dtype=acc, device=edge_index.device)
    d_out, d_in = zeros.index_add(0, src, w), zeros.index_add(0, dst, w)
    inv_out = d_out.reciprocal().masked_fill(d_out == 0, 0)
    inv_in = d_in.reciprocal().masked_fill(d_in == 0, 0)
    forward = CSR.from_edge_index(edge_index, (w * inv_out[src]).to(dtype), num_nodes, check=False)
    backward = CSR.from_edge_index(edge_index.flip(0), (w * inv_in[dst]).to(dtype), num_nodes, check=False)
    return DiffusionGraph(forward, backward, K)


def block_diagonal(edge_indices: Sequence[Tensor], edge_weights: Sequence[Tensor | None] | None,
                   num_nodes: int) -> tuple[Tensor, Tensor | None]:
    """The union of T graphs on ``num_nodes`` nodes each as one graph on ``T * num_nodes`` nodes (snapshot
    ``t``'s node ``i`` is node ``t * num_nodes + i``): ``(edge_index, edge_weight)``. The edges are
    trusted (each snapshot validated by its caller); weights are None only when every snapshot's is."""
    offsets = [ei.long() + t * num_nodes for t, ei in enumerate(edge_indices)]
    edge_index = torch.cat(offsets, dim=1) if offsets else torch.zeros(2, 0, dtype=torch.long)
    if edge_weights is None or all(w is None for w in edge_weights):
        return edge_index, None
    dtype = next(w.dtype for w in edge_weights if w is not None)
    weights = [torch.ones(ei.size(1), dtype=dtype, device=ei.device) if w is None else w
               for ei, w in zip(edge_indices, edge_weights)]
    return edge_index, torch.cat(weights)
