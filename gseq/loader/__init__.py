"""Mini-batch graph loading: neighbour sampling on gseq's CSR, in PyG's batch layout.

:class:`NeighborLoader` yields sampled subgraphs as :class:`torch_geometric.data.Data` batches (seeds
first), like PyG's ``NeighborLoader`` but with nothing beyond torch: no pyg-lib, no torch-sparse.
:class:`NeighborSampler` is the vectorised sampler underneath.
"""

from .neighbor_loader import NeighborLoader, NeighborLoaderShard
from .sampler import NeighborSampler, SamplerOutput

__all__ = ["NeighborLoader", "NeighborLoaderShard", "NeighborSampler", "SamplerOutput"]
