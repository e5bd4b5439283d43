r"""Receptive fields of message passing: who can reach a node in k hops, and who actually influences it.

:func:`receptive_field` is structural: the nodes within ``k`` hops of each node, following edges the way
messages travel (source to target). :func:`influence` is measured: the Jacobian-based influence
distribution of Xu et al. (2018, "Representation Learning on Graphs with Jumping Knowledge Networks"),

.. math::
    I(x, y) = \sum_{i, j} \left| \frac{\partial h_x^{(k)}[i]}{\partial x_y[j]} \right|, \qquad
    I_x(y) = \frac{I(x, y)}{\sum_z I(x, z)},

computed with autograd for one output node ``x``. A k-layer GCN's ``I_x(y)`` is non-zero only for ``y``
within ``k`` hops of ``x``; how the mass spreads over those hops shows over-smoothing.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..checks import integer, non_negative_int
from ..data.graphs import hop_distances, node_index

__all__ = ["receptive_field", "influence", "influence_by_hop"]


def _adjacency(data: Data) -> sp.csr_matrix:
    """``M[t, s] = 1`` for every edge ``s -> t``, plus the identity (a node reaches itself in 0 hops)."""
    n = data.num_nodes
    ei = data.edge_index.detach().cpu().numpy()
    m = sp.csr_matrix((np.ones(ei.shape[1], dtype=bool), (ei[1], ei[0])), shape=(n, n))
    return (m + sp.identity(n, dtype=bool, format="csr")).astype(bool).tocsr()


def receptive_field(data: Data, k: int, *, return_counts: bool = False) -> list[Tensor] | Tensor:
    """The nodes whose features can reach each node through ``k`` message-passing layers.

    Args:
        data: a graph with ``edge_index`` (row 0 sources, row 1 targets) and ``num_nodes``.
        k: number of hops (layers), >= 0.
        return_counts: return only the size of each receptive field.

    Returns:
        A list of ``N`` sorted LongTensors (the nodes within ``k`` hops of node ``i``, ``i`` itself
        included), or a LongTensor ``[N]`` of their sizes with ``return_counts=True``.
    """
    non_negative_int("k", k)
    step = _adjacency(data)
    reach = sp.identity(data.num_nodes, dtype=bool, format="csr")
    for _ in range(k):
        nxt = (step @ reach).astype(bool).tocsr()
        if nxt.nnz == reach.nnz:  # no node gained anything: the fields are complete
            reach = nxt
            break
        reach = nxt
    if return_counts:
        return torch.from_numpy(np.diff(reach.indptr).astype(np.int64))
    reach.sort_indices()
    return [torch.from_numpy(reach.indices[reach.indptr[i]:reach.indptr[i + 1]].astype(np.int64))
            for i in range(data.num_nodes)]


def influence(model: nn.Module, data: Data, node: int | str, *, normalize: bool = True) -> Tensor:
    """Influence of every input node on the output of ``node`` (Xu et al., 2018), by autograd.

    The model is called as ``model(data.x, data.edge_index)`` in eval mode (no dropout) and the absolute
    Jacobian of the output row of ``node`` with respect to every input feature is summed per input node.

    Args:
        model: a node-level model taking ``(x, edge_index)``, e.g. :class:`~gseq.models.GCNNet`.
        data: the graph, with float features ``x``.
        node: the output node, by index or by name (``data.node_names``).
        normalize: divide by the total so the result sums to 1 (the influence distribution); a node with
            zero total influence gives all zeros. (default: ``True``)

    Returns:
        A float tensor ``[N]``: ``I_x(y)`` for every input node ``y``.
    """
    x_index = node_index(data, node)
    was_training = model.training
    model.eval()
    try:
        x = data.x.detach().clone().requires_grad_(True)
        out = model(x, data.edge_index)[x_index]  # [C]
        total = torch.zeros(x.size(0), dtype=x.dtype, device=x.device)
        for c in range(out.numel()):
            (grad,) = torch.autograd.grad(out[c], x, retain_graph=c + 1 < out.numel())
            total += grad.abs().sum(dim=1)
    finally:
        model.train(was_training)
    if normalize:
        s = total.sum()
        total = total / s if s > 0 else total
    return total.detach()


def influence_by_hop(model: nn.Module, data: Data, node: int | str, max_hops: int | None = None) -> Tensor:
    """Influence mass on ``node`` gathered by hop distance: entry ``d`` sums ``I_x(y)`` over the nodes ``y``
    exactly ``d`` hops away (``d = 0`` is the node itself). Length ``max_hops + 1`` (default: the largest
    finite distance); unreachable nodes carry no influence and are left out."""
    integer("max_hops", max_hops, minimum=0, none_ok=True)
    x_index = node_index(data, node)
    inf = influence(model, data, x_index)
    # distances *to* x: breadth-first search on the reversed edges
    reversed_graph = Data(edge_index=data.edge_index.flip(0), num_nodes=data.num_nodes)
    dist = hop_distances(reversed_graph, x_index)
    finite = torch.isfinite(dist)
    top = int(dist[finite].max()) if max_hops is None else max_hops
    out = torch.zeros(top + 1, dtype=inf.dtype)
    keep = finite & (dist <= top)
    out.index_add_(0, dist[keep].long(), inf.cpu()[keep])
    return out
