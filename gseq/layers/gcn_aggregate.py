r"""The aggregation step of :class:`~gseq.layers.GCN`: normalised messages reduced into each node.

With :math:`h = XW`, the graph's loop-free adjacency :math:`A` and the normalisation
:math:`(s_t, s_s, l)` of :func:`~gseq.layers.gcn_structure.normalization`, the layer's output before the
bias is (:math:`\odot` scales rows)

.. math::
    Y = s_t \odot \bigl(A\,(s_s \odot h)\bigr) + (l \odot s_t \odot s_s) \odot h

for ``aggr="add"``. ``"mean"`` divides each row by its number of messages (edges and the loop);
``"max"``/``"min"`` take the extreme of :math:`s_s \odot h` over the edges and the loop, then scale by
:math:`s_t` (a non-negative row scaling commutes with the extreme); ``normalize=False`` is :math:`A h`.
No edges x features tensor is ever made: the normalisation and the loops are dense row scalings.

Which product runs:

- sum and mean on edge weights that need no gradient: :func:`~gseq.ops._anchored.scaled_spmm` (one
  autograd node) or :func:`~gseq.ops._anchored.anchored_spmm`, a custom operator that ``torch.compile``
  traces without a graph break or a host synchronisation;
- edge weights that require a gradient, and max/min: :func:`gseq.ops.spmm` by plain autograd on the
  graph's CSR, run eagerly (:func:`_spmm_eager`, a graph break under ``torch.compile``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops import accumulation_dtype, spmm
from ..ops._anchored import anchored_spmm, scaled_spmm
from .gcn_structure import GCNGraph

__all__ = ["aggregate"]


def aggregate(graph: GCNGraph, h: Tensor, norm: tuple[Tensor, Tensor, Tensor | None] | None, reduce: str,
              node_dim: int) -> Tensor:
    """The ``reduce`` (``"sum"``, ``"mean"``, ``"max"``, ``"min"``) of the normalised messages into each node.

    Args:
        graph: the graph to aggregate over.
        h: the transformed features :math:`XW`, ``[*, N, F]`` with the nodes at ``node_dim``.
        norm: ``(s_t, s_s, l)`` from :func:`~gseq.layers.gcn_structure.normalization`, or None for
            ``normalize=False``.
        reduce: the aggregation.
        node_dim: the dimension of the nodes in ``h``, non-negative.
    """
    moved = h.movedim(node_dim, 0)  # [N, *, F]
    flat = moved.reshape(moved.size(0), -1).to(accumulation_dtype(h.dtype))  # [N, prod(*) * F], float32/64
    # the products that run eagerly (_spmm_eager) are called from here, not from a helper: under
    # torch.compile a graph break counts once per frame on the stack
    if norm is None:
        out = _product(graph, flat, reduce)
    else:
        s_t, s_s, loop = norm
        s_t, s_s = s_t.to(flat.dtype), s_s.to(flat.dtype)
        loop = None if loop is None else loop.to(flat.dtype)
        if reduce in ("max", "min"):  # s_t >= 0 scales a row, so it commutes with the extreme
            y = flat * s_s.unsqueeze(-1)
            out = _with_loop(graph, _spmm_eager(graph, y, reduce), y, loop, reduce) * s_t.unsqueeze(-1)
        else:
            c = torch.zeros_like(s_t) if loop is None else loop * s_t * s_s
            if reduce == "mean":  # messages into a node: its edges and its loop
                count = (graph.in_count + int(loop is not None)).clamp(min=1).to(flat.dtype)
                s_t, c = s_t / count, c / count
            if _values_need_grad(graph):
                agg = _spmm_eager(graph, flat * s_s.unsqueeze(-1), "sum")  # A (s_s * h), by plain autograd
                out = agg * s_t.unsqueeze(-1) + flat * c.unsqueeze(-1)
            else:
                out = scaled_spmm(graph.anchor, flat, s_t, None if s_s is s_t else s_s, c)
    return out.to(h.dtype).reshape(moved.shape).movedim(0, node_dim)


def _with_loop(graph: GCNGraph, out: Tensor, y: Tensor, loop: Tensor | None, reduce: str) -> Tensor:
    """The extreme over the edges (``out``) combined with the loop's message ``loop * y``."""
    if loop is None:
        return out
    own = y * loop.unsqueeze(-1)
    extreme = torch.maximum(out, own) if reduce == "max" else torch.minimum(out, own)
    return torch.where((graph.in_count > 0).unsqueeze(-1), extreme, own)  # no edges: the loop alone


def _product(graph: GCNGraph, x: Tensor, reduce: str) -> Tensor:
    """``A x`` reduced over each row by ``reduce`` (``"mean"``: the sum over the row's entries)."""
    if reduce in ("max", "min") or _values_need_grad(graph):
        out = _spmm_eager(graph, x, "sum" if reduce == "mean" else reduce)
    else:
        out = anchored_spmm(x, graph.anchor)
    if reduce == "mean":
        out = out / graph.in_count.clamp(min=1).to(x.dtype).unsqueeze(-1)
    return out


def _values_need_grad(graph: GCNGraph) -> bool:
    values = graph.csr.values
    return values is not None and values.requires_grad and torch.is_grad_enabled()


@torch.compiler.disable
def _spmm_eager(graph: GCNGraph, x: Tensor, reduce: str) -> Tensor:
    """``A x`` by plain autograd through :func:`gseq.ops.spmm`: differentiable in the edge weights, and
    the max/min products (a graph break under ``torch.compile``)."""
    csr = graph.csr
    if csr.values is not None and csr.values.dtype != x.dtype:
        csr = csr.with_values(csr.values.to(x.dtype))
    return spmm(csr, x, reduce)
