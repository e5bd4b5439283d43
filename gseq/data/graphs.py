"""Small graphs embedded in code: the 6-node example graph A..F, Zachary's karate club, and hop distances.

The example graph is the one of the GCN question in the original report: undirected edges A-B, A-E,
A-F, B-C, B-D, C-D, D-F, E-F, stored in both directions. Its nodes carry one-hot features and two
classes (the triangles A-E-F and B-C-D) so that a GCN can be trained on it end to end.
"""

from __future__ import annotations

import math
from collections import deque

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["example_graph", "karate", "hops", "hop_distances", "node_index"]

EXAMPLE_NODES = ("A", "B", "C", "D", "E", "F")
EXAMPLE_EDGES = (("A", "B"), ("A", "E"), ("A", "F"), ("B", "C"), ("B", "D"), ("C", "D"), ("D", "F"), ("E", "F"))


def example_graph() -> Data:
    """The 6-node example graph: nodes A..F, 8 undirected edges (16 directed), one-hot features.

    Returns a :class:`~torch_geometric.data.Data` with ``x`` (the 6x6 identity), ``edge_index`` [2, 16]
    (each edge in both directions, sorted), ``node_names`` (``["A", ..., "F"]``), ``y`` (class 0 for the
    triangle A-E-F, 1 for B-C-D) and ``train_mask`` (A, C), ``val_mask`` (E, B), ``test_mask`` (F, D).
    """
    pos = {name: i for i, name in enumerate(EXAMPLE_NODES)}
    pairs = [(pos[a], pos[b]) for a, b in EXAMPLE_EDGES]
    pairs = sorted(pairs + [(b, a) for a, b in pairs])
    edge_index = torch.tensor(pairs, dtype=torch.long).t().contiguous()
    n = len(EXAMPLE_NODES)
    y = torch.tensor([0, 1, 1, 1, 0, 0])

    def mask(names):
        m = torch.zeros(n, dtype=torch.bool)
        m[[pos[s] for s in names]] = True
        return m

    return Data(x=torch.eye(n), edge_index=edge_index, y=y, node_names=list(EXAMPLE_NODES),
                train_mask=mask("AC"), val_mask=mask("EB"), test_mask=mask("FD"))


def karate() -> Data:
    """Zachary's karate club as PyG's ``KarateClub`` holds it (34 nodes, 156 directed edges, 4 classes,
    one training node per class), with the 30 other nodes split into disjoint ``val_mask`` and
    ``test_mask``: within each class, in node order, alternately to validation and to test (16 / 14)."""
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    rest = (~data.train_mask).nonzero().view(-1)
    data.val_mask = torch.zeros_like(data.train_mask)
    data.test_mask = torch.zeros_like(data.train_mask)
    for c in data.y.unique().tolist():
        nodes = rest[data.y[rest] == c]
        data.val_mask[nodes[0::2]] = True
        data.test_mask[nodes[1::2]] = True
    return data


def node_index(data: Data, node: int | str, name: str = "node") -> int:
    """Position of ``node`` given by index or by name (``data.node_names``); errors name the argument
    ``name``."""
    n = data.num_nodes
    if isinstance(node, str):
        names = list(getattr(data, "node_names", None) or [])
        if node not in names:
            raise ValueError(f"{name}: {node!r} is not a node name; names are {names}" if names else
                             f"{name}: {node!r} given by name, but the graph has no node_names; pass an index")
        return names.index(node)
    if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < n:
        raise ValueError(f"{name}: expected a name or an index in [0, {n}), got {node!r}")
    return node


def hop_distances(data: Data, source: int | str) -> Tensor:
    """Shortest-path length (in edges, following edge direction) from ``source`` to every node.

    Returns a float tensor ``[N]``: 0 at the source, ``inf`` where a node cannot be reached. Breadth-first
    search over ``data.edge_index`` (row 0 to row 1, the way messages travel): the features of ``source``
    first reach a node ``d`` hops away after ``d`` message-passing layers.
    """
    src = node_index(data, source, "source")
    n = data.num_nodes
    edge_index = data.edge_index.cpu()
    order = torch.argsort(edge_index[0], stable=True)
    targets = edge_index[1, order].tolist()
    starts = torch.searchsorted(edge_index[0, order], torch.arange(n + 1)).tolist()
    dist = [math.inf] * n
    dist[src] = 0
    queue = deque([src])
    while queue:
        u = queue.popleft()
        for v in targets[starts[u]:starts[u + 1]]:
            if dist[v] == math.inf:
                dist[v] = dist[u] + 1
                queue.append(v)
    return torch.tensor(dist, dtype=torch.float)


def hops(data: Data, source: int | str, target: int | str) -> int | float:
    """Number of hops on a shortest path from ``source`` to ``target`` (names or indices); ``math.inf``
    when there is none. ``hops(example_graph(), "C", "E") == 3``."""
    d = float(hop_distances(data, source)[node_index(data, target, "target")])
    return int(d) if math.isfinite(d) else math.inf
