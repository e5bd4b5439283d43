r"""Mini-batches of sampled subgraphs, laid out as PyG's ``NeighborLoader`` lays them out.

:class:`NeighborLoader` splits the input nodes into batches of seeds, samples every batch's multi-hop
computation subgraph with :class:`~gseq.loader.NeighborSampler` (torch only: no pyg-lib or
torch-sparse) and returns it as a :class:`torch_geometric.data.Data` whose first ``batch_size`` nodes
are the seeds, so that code written for PyG's loader runs unchanged::

    for batch in loader:
        out = model(batch.x, batch.edge_index)[:batch.batch_size]
        loss = F.cross_entropy(out, batch.y[:batch.batch_size])
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import boolean, instance, non_negative_int, positive_int, random_seed
from .sampler import NeighborSampler, SamplerOutput, _check_distinct_nodes, check_num_neighbors

__all__ = ["NeighborLoader", "NeighborLoaderShard"]


class NeighborLoader:
    r"""Iterates over mini-batches of seed nodes with their sampled ``len(num_neighbors)``-hop neighbourhoods.

    Each batch is a :class:`~torch_geometric.data.Data` with PyG's layout:

    * ``n_id``: global ids of the batch's nodes: the seeds first, then the nodes first reached in hop 1,
      then in hop 2, ...; every node-level attribute of ``data`` (``x``, ``y``, masks, ...) is sliced by it;
    * ``edge_index``: the sampled edges in local ids, ``edge_index[0]`` the source (the neighbour) and
      ``edge_index[1]`` the target, as PyG's ``source_to_target`` flow reads them: hop :math:`h` samples
      incoming edges of the nodes added by hop :math:`h - 1`; ``e_id`` holds their global edge ids, and
      every edge-level attribute (``edge_weight``, ``edge_attr``, ...) is sliced by it;
    * ``batch_size`` (the number of seeds), ``input_id`` (as PyG: the seeds' positions in
      ``input_nodes``, or their global ids when ``input_nodes`` is a mask), ``num_sampled_nodes`` and
      ``num_sampled_edges`` (per hop).

    The structure (the CSR of incoming edges) is built once, in the constructor, on the device of
    ``data.edge_index``; sampling runs there. Differences from PyG: no worker processes (sampling is a
    few vectorised tensor operations in the calling process), homogeneous graphs only, and
    ``input_nodes`` must not repeat a node.

    Args:
        data: the graph; needs ``x`` (dense or a torch sparse CSR/COO matrix) and ``edge_index``.
        num_neighbors: the fan-out of every hop, e.g. ``[10, 10]``; ``-1`` takes every neighbour.
        input_nodes: the seed nodes: a boolean mask ``[N]``, an index tensor, or None for all nodes.
            (default: ``None``)
        batch_size: seeds per batch. (default: ``1``, as PyG's)
        shuffle: draw a new order of the input nodes every epoch. (default: ``False``)
        replace: sample neighbours with replacement. (default: ``False``)
        generator: a :class:`torch.Generator` on ``data``'s device for the order and the samples; None
            uses torch's global generator. (default: ``None``)
        drop_last: drop the last batch when it has fewer than ``batch_size`` seeds. (default: ``False``)

    Example::

        loader = NeighborLoader(data, [10, 10], input_nodes=data.train_mask, batch_size=1024, shuffle=True)
        for batch in loader:
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
    """

    def __init__(
        self,
        data: Data,
        num_neighbors: Sequence[int],
        input_nodes: Tensor | Sequence[int] | None = None,
        *,
        batch_size: int = 1,
        shuffle: bool = False,
        replace: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        **kwargs,
    ) -> None:
        if kwargs:
            raise TypeError(f"NeighborLoader: unsupported argument(s) {sorted(kwargs)}; gseq samples in the calling "
                            "process (no num_workers) on homogeneous graphs; drop them")
        instance("data", data, Data, "a torch_geometric.data.Data")
        if getattr(data, "x", None) is None:
            raise ValueError("data: the graph has no node features x; set data.x (e.g. torch.eye(N) or "
                             "torch.ones(N, 1)) before building a NeighborLoader")
        if getattr(data, "edge_index", None) is None:
            raise ValueError("data: the graph has no edge_index; NeighborLoader samples over data.edge_index")
        num_neighbors = check_num_neighbors(num_neighbors)
        positive_int("batch_size", batch_size)
        boolean("shuffle", shuffle), boolean("replace", replace), boolean("drop_last", drop_last)
        num_nodes = data.num_nodes
        device = data.edge_index.device
        instance("generator", generator, torch.Generator, "a torch.Generator", none_ok=True)
        if generator is not None and torch.device(generator.device).type != device.type:
            raise ValueError(f"generator: is on {generator.device} but the graph is on {device}; pass "
                             f"torch.Generator(device={str(device)!r})")
        self.data = data
        self.num_neighbors = num_neighbors
        self.input_nodes, self._input_id = _check_input_nodes(input_nodes, num_nodes, device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.replace = replace
        self.generator = generator
        self.drop_last = drop_last
        self.sampler = NeighborSampler(data.edge_index, num_nodes, num_neighbors, replace=replace)

    def __len__(self) -> int:
        n = self.input_nodes.numel()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Data]:
        n, device = self.input_nodes.numel(), self.input_nodes.device
        order = torch.randperm(n, generator=self.generator, device=device) if self.shuffle \
            else torch.arange(n, device=device)
        for i in range(len(self)):
            yield self(order[i * self.batch_size:(i + 1) * self.batch_size])

    def shard(self, rank: int, world_size: int, *, epoch: int = 0, seed: int = 0) -> "NeighborLoaderShard":
        """Rank ``rank``'s batches of epoch ``epoch`` in a run of ``world_size`` processes.

        The input nodes are split as ``torch.utils.data.DistributedSampler`` splits a dataset (one order
        from ``seed + epoch``, shuffled when ``shuffle`` is True, padded to a multiple of ``world_size``;
        every ``world_size``-th node from ``rank``), so every rank takes as many batches and every node
        is a seed once per epoch across the ranks. The neighbours of batch ``i`` are drawn from a
        generator seeded with ``(seed, epoch, rank, i)``: the ranks draw independently, and a resumed
        run draws what the first run drew. :class:`~gseq.train.Trainer` calls this under ``torchrun``.
        """
        random_seed("seed", seed)
        from torch.utils.data import DistributedSampler

        for name, value in (("rank", rank), ("world_size", world_size), ("epoch", epoch), ("seed", seed)):
            non_negative_int(name, value)
        if world_size < 1 or rank >= world_size:
            raise ValueError(f"rank: must lie in [0, world_size={world_size}), got {rank}")
        split = DistributedSampler(range(self.input_nodes.numel()), num_replicas=world_size, rank=rank,
                                   shuffle=self.shuffle, seed=seed)
        split.set_epoch(epoch)
        return NeighborLoaderShard(self, torch.tensor(list(split), dtype=torch.long, device=self.input_nodes.device),
                                   (seed, epoch, rank))

    def __call__(self, index: Tensor | Sequence[int], generator: torch.Generator | None = None) -> Data:
        """The batch whose seeds are ``input_nodes[index]`` (PyG's ``loader(index)``); neighbours drawn from
        ``generator`` (default: the loader's)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.input_nodes.device)
        seeds = self.input_nodes.index_select(0, index)
        generator = generator if generator is not None else self.generator
        out = self.sampler.sample(seeds, generator, check=False)  # input_nodes were checked once
        batch = self._filter(out)
        batch.input_id = index if self._input_id is None else self._input_id.index_select(0, index)
        batch.batch_size = seeds.numel()
        return batch

    def _filter(self, out: SamplerOutput) -> Data:
        """The sampled subgraph as a ``Data``: node attributes sliced by ``out.node``, edge attributes by
        ``out.edge`` (PyG's ``filter_data``)."""
        data, batch = self.data, Data()
        for key, value in data:
            if key == "edge_index":
                batch.edge_index = torch.stack([out.row, out.col]).to(value.device)
            elif key == "num_nodes":
                batch.num_nodes = out.node.numel()
            elif isinstance(value, Tensor) and data.is_node_attr(key):
                batch[key] = _select(value, out.node, data.__cat_dim__(key, value))
            elif isinstance(value, Tensor) and data.is_edge_attr(key):
                batch[key] = _select(value, out.edge, data.__cat_dim__(key, value))
            else:
                batch[key] = value
        batch.n_id = out.node
        batch.e_id = out.edge
        batch.num_sampled_nodes = out.num_sampled_nodes
        batch.num_sampled_edges = out.num_sampled_edges
        return batch

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_neighbors={self.num_neighbors}, batch_size={self.batch_size}, "
                f"input_nodes={self.input_nodes.numel()}, shuffle={self.shuffle}, replace={self.replace})")


class NeighborLoaderShard:
    """One rank's batches of one epoch (from :meth:`NeighborLoader.shard`): ``len()`` batches of the
    seeds at ``positions`` of the loader's input nodes."""

    def __init__(self, loader: NeighborLoader, positions: Tensor, key: tuple[int, int, int]) -> None:
        self.loader, self.positions, self.key = loader, positions, key

    def __len__(self) -> int:
        n, size = self.positions.numel(), self.loader.batch_size
        return n // size if self.loader.drop_last else math.ceil(n / size)

    def __iter__(self) -> Iterator[Data]:
        size, device = self.loader.batch_size, self.positions.device
        seed, epoch, rank = self.key
        for i in range(len(self)):
            generator = torch.Generator(device=device)
            generator.manual_seed((((seed * 1_000_003 + epoch) * 1_000_003 + rank) * 1_000_003 + i) % (2**63 - 1))
            yield self.loader(self.positions[i * size:(i + 1) * size], generator)


def _check_input_nodes(input_nodes: object, num_nodes: int, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """``(node ids, input_id or None)`` from a mask, an index or None; PyG's ``input_id`` for a mask is the
    node ids."""
    if input_nodes is None:
        return torch.arange(num_nodes, device=device), None
    if not isinstance(input_nodes, Tensor):
        try:
            input_nodes = torch.as_tensor(input_nodes)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"input_nodes: expected a boolean mask, an index tensor or None, got "
                             f"{type(input_nodes).__name__}") from None
    if input_nodes.dim() != 1:
        raise ValueError(f"input_nodes: expected a 1-D mask or index tensor, got shape {list(input_nodes.shape)}")
    input_nodes = input_nodes.to(device)
    if input_nodes.dtype == torch.bool:
        if input_nodes.numel() != num_nodes:
            raise ValueError(f"input_nodes: a boolean mask needs one entry per node ({num_nodes}), got "
                             f"{input_nodes.numel()}")
        nodes = input_nodes.nonzero().view(-1)
        mask = True
    elif input_nodes.dtype.is_floating_point or input_nodes.dtype.is_complex:
        raise ValueError(f"input_nodes: expected a boolean mask or an integer index, got dtype {input_nodes.dtype}")
    else:
        nodes, mask = input_nodes.long(), False
        _check_distinct_nodes("input_nodes", nodes, num_nodes)
    if nodes.numel() == 0:
        raise ValueError("input_nodes: selects no node; pass a mask with at least one True, or a non-empty index")
    return nodes, (nodes if mask else None)


def _select(value: Tensor, index: Tensor, dim: int) -> Tensor:
    """``value.index_select(dim, index)``, also for a torch sparse CSR matrix (rows, ``dim == 0``)."""
    index = index.to(value.device)
    if value.layout == torch.sparse_csr and dim == 0:
        return _csr_rows(value, index)
    return value.index_select(dim, index)


def _csr_rows(x: Tensor, rows: Tensor) -> Tensor:
    """Rows ``rows`` of a sparse CSR matrix, as a sparse CSR matrix (torch has no CSR ``index_select``)."""
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    start = crow.index_select(0, rows)
    count = crow.index_select(0, rows + 1) - start
    new_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(count, 0, out=new_crow[1:])
    nnz = int(new_crow[-1])
    owner = torch.repeat_interleave(torch.arange(rows.numel(), device=crow.device), count, output_size=nnz)
    slot = torch.arange(nnz, device=crow.device) - new_crow[:-1].index_select(0, owner) + start.index_select(0, owner)
    return torch.sparse_csr_tensor(new_crow, col.index_select(0, slot), val.index_select(0, slot),
                                   (rows.numel(), x.size(1)), check_invariants=False)
