r"""Uniform neighbour sampling on a CSR of incoming edges, vectorised over the whole frontier.

:class:`NeighborSampler` holds the graph as the CSR of :math:`A` for PyG's ``source_to_target`` flow
(row :math:`v` lists the sources of the edges :math:`u \to v`, the CSC of ``edge_index``), built once,
and samples a computation subgraph hop by hop from a batch of seed nodes:

* hop 1 samples up to ``k_1`` incoming edges of every seed, hop 2 up to ``k_2`` incoming edges of every
  node that hop 1 added, and so on (a loop over hops; within a hop every operation is one tensor
  operation over all frontier nodes, no Python loop over nodes or edges);
* without replacement, a node of in-degree :math:`d \le k` keeps all its edges and a node with
  :math:`d > k` gets a uniform :math:`k`-subset of them by Floyd's algorithm, run for all such nodes at
  once with a loop over the :math:`k` draws. The work is :math:`O(m k^2)` for :math:`m` frontier nodes,
  independent of the degrees: a hub with 26,000 in-edges costs what a node with 11 does;
* with replacement, every node with :math:`d > 0` gets :math:`k` independent uniform draws
  ``indptr[v] + floor(u * d)``; ``k = -1`` takes every incoming edge.

Nodes are relabelled as PyG's samplers do: the seeds first (local ids ``0..B-1``), then the nodes first
reached in hop 1 in order of first appearance, then those of hop 2, ... A global-to-local table of size
``N`` is allocated once and reset after every batch, so relabelling costs :math:`O(\text{batch})`.
The sizes of a sampled subgraph depend on the draws, so each hop reads two or three sizes back to the
host (the number of sampled edges and of new nodes): the one host synchronisation sampling cannot avoid.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..checks import boolean, instance, non_negative_int
from ..ops import CSR

__all__ = ["NeighborSampler", "SamplerOutput"]


class SamplerOutput(NamedTuple):
    """One sampled computation subgraph, in the fields of PyG's ``SamplerOutput``."""

    #: global ids of the subgraph's nodes, seeds first, ``[n]``
    node: Tensor
    #: local id of the source of every sampled edge, ``[e]``
    row: Tensor
    #: local id of the target of every sampled edge, ``[e]``
    col: Tensor
    #: global id of every sampled edge (its column in ``edge_index``), ``[e]``
    edge: Tensor
    #: nodes added per hop, the seeds first (``len(num_neighbors) + 1`` ints)
    num_sampled_nodes: list[int]
    #: edges sampled per hop (``len(num_neighbors)`` ints)
    num_sampled_edges: list[int]


def check_num_neighbors(num_neighbors: object) -> list[int]:
    """``num_neighbors`` as a list of ints, each ``-1`` (all) or ``>= 1``; a clear ValueError otherwise."""
    if isinstance(num_neighbors, Tensor):
        num_neighbors = num_neighbors.tolist()
    if isinstance(num_neighbors, (str, bytes)) or not isinstance(num_neighbors, Sequence):
        raise ValueError(f"num_neighbors: expected a list with one fan-out per hop (e.g. [10, 10]), got "
                         f"{num_neighbors!r}")
    if len(num_neighbors) == 0:
        raise ValueError("num_neighbors: is empty; give one fan-out per hop (e.g. [10, 10]), -1 for all neighbours")
    out = []
    for k in num_neighbors:
        if isinstance(k, bool) or not isinstance(k, int) or k == 0 or k < -1:
            raise ValueError(f"num_neighbors: every fan-out must be an integer >= 1, or -1 for all neighbours; "
                             f"got {list(num_neighbors)!r}")
        out.append(int(k))
    return out


class NeighborSampler:
    r"""Samples multi-hop computation subgraphs from seed nodes (PyG's ``NeighborSampler``, in torch only).

    Built once per graph: the CSR of incoming edges, the permutation from CSR slots to edge ids, and a
    global-to-local table, all on ``edge_index.device`` (sampling runs there, CPU or CUDA).

    Args:
        edge_index: ``[2, E]`` edges, row 0 sources, row 1 targets; validated here, once.
        num_nodes: number of nodes :math:`N`.
        num_neighbors: the fan-out of every hop, ``-1`` for all incoming edges.
        replace: sample with replacement. (default: ``False``)

    Shapes:
        - **edge_index:** :math:`(2, E)`; **seeds:** :math:`(B,)`; see :class:`SamplerOutput`.

    Example::

        sampler = NeighborSampler(data.edge_index, data.num_nodes, [10, 10])
        out = sampler.sample(torch.tensor([0, 5, 7]), generator=torch.Generator().manual_seed(0))
        sub_edge_index = torch.stack([out.row, out.col])  # over out.node
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, num_neighbors: Sequence[int], *,
                 replace: bool = False) -> None:
        self.num_neighbors = check_num_neighbors(num_neighbors)
        self.replace = boolean("replace", replace)
        edge_index = _check_edge_index(edge_index, num_nodes)
        src, dst = edge_index[0], edge_index[1]
        # CSR of incoming edges: slot order sorted by target (stable: edge ids ascend within a row)
        _, perm = torch.sort(dst, stable=True)
        indptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=dst.device)
        torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=indptr[1:])
        self.csr = CSR(indptr, src.index_select(0, perm), None, (num_nodes, num_nodes), check=False)
        self.perm = perm  # CSR slot -> edge id
        self._local = torch.full((num_nodes,), -1, dtype=torch.long, device=dst.device)

    @property
    def num_nodes(self) -> int:
        return self.csr.num_rows

    @property
    def device(self) -> torch.device:
        return self.csr.device

    def sample(self, seeds: Tensor, generator: torch.Generator | None = None, *, check: bool = True) -> SamplerOutput:
        """Sample the subgraph of ``seeds``: distinct global node ids on :attr:`device`.

        ``generator`` (on :attr:`device`) makes the draws reproducible; None uses torch's global
        generator. ``check=False`` skips the validation of ``seeds`` (one pass and a sort):
        :class:`~gseq.loader.NeighborLoader` checks all its input nodes once instead.
        """
        if check:
            seeds = _check_seeds(seeds, self.num_nodes, self.device)
        local = self._local
        indices = self.csr.indices
        seeds = seeds.to(torch.long)
        total = seeds.numel()
        nodes, rows, cols, edges = [seeds], [], [], []
        num_sampled_nodes, num_sampled_edges = [total], []
        local[seeds] = torch.arange(total, device=self.device)
        frontier, first_local = seeds, 0
        try:
            for k in self.num_neighbors:
                slot, target = self._sample_slots(frontier, k, generator)  # target: position in frontier
                source = indices.index_select(0, slot)
                new = _unique_in_order(source[local.index_select(0, source) < 0])
                local[new] = torch.arange(total, total + new.numel(), device=self.device)
                rows.append(local.index_select(0, source))
                cols.append(target + first_local)
                edges.append(self.perm.index_select(0, slot))
                nodes.append(new)
                num_sampled_nodes.append(new.numel())
                num_sampled_edges.append(slot.numel())
                frontier, first_local, total = new, total, total + new.numel()
        finally:
            node = torch.cat(nodes)
            local[node] = -1  # leave the table clean for the next batch, whatever happened
        return SamplerOutput(node, torch.cat(rows), torch.cat(cols), torch.cat(edges),
                             num_sampled_nodes, num_sampled_edges)

    def _sample_slots(self, frontier: Tensor, k: int, generator) -> tuple[Tensor, Tensor]:
        """CSR slots of the sampled incoming edges of every frontier node, and the frontier position of
        each edge's target (grouped by target, in frontier order)."""
        indptr = self.csr.indptr
        start = indptr.index_select(0, frontier)
        deg = indptr.index_select(0, frontier + 1) - start
        if k < 0:
            count = deg
        elif self.replace:
            count = torch.where(deg > 0, k, 0)
        else:
            count = deg.clamp(max=k)
        offsets = torch.cumsum(count, 0) - count  # first output position of every frontier node
        num = int(count.sum())
        target = torch.repeat_interleave(torch.arange(frontier.numel(), device=self.device), count, output_size=num)
        within = torch.arange(num, device=self.device) - offsets.index_select(0, target)  # 0..count-1
        if k >= 0 and self.replace:
            d = deg.index_select(0, target)
            u = torch.rand(num, generator=generator, device=self.device, dtype=torch.float64)
            within = torch.minimum((u * d).long(), d - 1)
        elif k >= 0:
            big = deg > k
            if bool(big.any()):
                picks = _floyd(deg[big], k, generator)  # [m_big, k] distinct offsets in [0, d)
                at = (offsets[big].unsqueeze(1) + torch.arange(k, device=self.device)).reshape(-1)
                within = within.index_put((at,), picks.reshape(-1))
        return start.index_select(0, target) + within, target


def _floyd(deg: Tensor, k: int, generator) -> Tensor:
    """A uniform ``k``-subset of ``range(d)`` for every ``d`` in ``deg`` (all ``> k``), by Floyd's algorithm.

    For ``j = d - k, ..., d - 1``: draw ``t`` uniform in ``[0, j]``; keep ``t`` if it is new, else keep ``j``.
    Every ``k``-subset comes out with probability ``1 / C(d, k)``. Vectorised over the nodes, a loop over
    the ``k`` draws: ``[m, k]`` work per draw.
    """
    m = deg.numel()
    u = torch.rand(m, k, generator=generator, device=deg.device, dtype=torch.float64)
    picks = torch.empty(m, k, dtype=torch.long, device=deg.device)
    for i in range(k):
        j = deg - k + i
        t = torch.minimum((u[:, i] * (j + 1)).long(), j)
        if i > 0:
            t = torch.where((picks[:, :i] == t.unsqueeze(1)).any(1), j, t)
        picks[:, i] = t
    return picks


def _unique_in_order(x: Tensor) -> Tensor:
    """The distinct values of ``x`` in order of first appearance."""
    if x.numel() == 0:
        return x
    uniq, inverse = torch.unique(x, return_inverse=True)
    first = torch.full((uniq.numel(),), x.numel(), dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, torch.arange(x.numel(), device=x.device), reduce="amin")
    return uniq.index_select(0, torch.argsort(first))


def _check_seeds(seeds: object, num_nodes: int, device: torch.device) -> Tensor:
    if not isinstance(seeds, Tensor) or seeds.dim() != 1 or seeds.dtype.is_floating_point or seeds.dtype.is_complex \
            or seeds.dtype == torch.bool:
        raise ValueError("seeds: expected a 1-D integer tensor of node ids")
    if seeds.device != device:
        raise ValueError(f"seeds: on {seeds.device} but the graph is on {device}; move them with .to(device)")
    _check_distinct_nodes("seeds", seeds, num_nodes)
    return seeds


def _check_distinct_nodes(name: str, nodes: Tensor, num_nodes: int) -> None:
    """Every id in ``nodes`` lies in ``[0, num_nodes)`` and none repeats (seeds of a batch are distinct)."""
    if nodes.numel() > 0:
        lo, hi = int(nodes.min()), int(nodes.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"{name}: node ids must lie in [0, {num_nodes}), found values in [{lo}, {hi}]")
        if torch.unique(nodes).numel() != nodes.numel():
            raise ValueError(f"{name}: repeats a node; every seed must be distinct (use {name}.unique())")


def _check_edge_index(edge_index: object, num_nodes: int) -> Tensor:
    instance("edge_index", edge_index, Tensor, "a LongTensor of shape [2, E]")
    if edge_index.dtype.is_floating_point or edge_index.dtype.is_complex or edge_index.dtype == torch.bool:
        raise TypeError(f"edge_index: expected an integer tensor, got dtype {edge_index.dtype}; use .long()")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index: expected shape [2, E] (row 0 sources, row 1 targets), got "
                         f"{list(edge_index.shape)}")
    non_negative_int("num_nodes", num_nodes)
    edge_index = edge_index.long()
    if edge_index.numel() > 0:
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"edge_index: node ids must lie in [0, {num_nodes}) for {num_nodes} nodes, found "
                             f"values in [{lo}, {hi}]")
    return edge_index
