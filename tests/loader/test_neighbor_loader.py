"""NeighborLoader: PyG's batch layout, sampler properties, epochs, reproducibility, uniformity, bad input."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare
from torch_geometric.data import Data

from gseq.loader import NeighborLoader, NeighborSampler
from gseq.models import GCNNet, sparse_features


def random_graph(n=60, e=500, hub_degree=40, seed=0) -> Data:
    """A directed multigraph with duplicate edges, self-loops, isolated nodes and one hub (node 0) whose
    in-degree exceeds every fan-out used here."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(n - 5, (e,), generator=g)  # nodes n-5.. never send
    dst = torch.randint(n - 5, (e,), generator=g)
    hub = torch.stack([torch.randint(n - 5, (hub_degree,), generator=g), torch.zeros(hub_degree, dtype=torch.long)])
    edge_index = torch.cat([torch.stack([src, dst]), hub], dim=1)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1), generator=g)]
    num_edges = edge_index.size(1)
    return Data(x=torch.randn(n, 5, generator=g), y=torch.randint(3, (n,), generator=g), edge_index=edge_index,
                edge_weight=torch.rand(num_edges, generator=g), edge_attr=torch.randn(num_edges, 2, generator=g),
                train_mask=torch.rand(n, generator=g) < 0.5)


def in_edges(data: Data) -> dict[int, list[int]]:
    """target -> edge ids of its incoming edges, in edge-id order."""
    out: dict[int, list[int]] = {v: [] for v in range(data.num_nodes)}
    for eid, v in enumerate(data.edge_index[1].tolist()):
        out[v].append(eid)
    return out


def hops(batch):
    """Per hop: (edge slice of the batch, local ids of that hop's targets)."""
    edge_lo, node_lo = 0, 0
    for h, ne in enumerate(batch.num_sampled_edges):
        nn_prev = batch.num_sampled_nodes[h]
        yield slice(edge_lo, edge_lo + ne), range(node_lo, node_lo + nn_prev)
        edge_lo, node_lo = edge_lo + ne, node_lo + nn_prev


@pytest.mark.parametrize("num_neighbors,replace", [([3, 2], False), ([3, 2], True), ([-1, 4], False),
                                                   ([2, 2, 2], False)])
def test_sampled_subgraph_properties(num_neighbors, replace):
    data = random_graph()
    incoming = in_edges(data)
    loader = NeighborLoader(data, num_neighbors, batch_size=7, replace=replace, shuffle=True,
                            generator=torch.Generator().manual_seed(1))
    for batch in loader:
        n_id, e_id = batch.n_id, batch.e_id
        # every sampled edge exists: local ids map back to the global edge e_id
        assert torch.equal(n_id[batch.edge_index], data.edge_index[:, e_id])
        assert n_id.unique().numel() == n_id.numel() == batch.num_nodes == sum(batch.num_sampled_nodes)
        assert batch.edge_index.size(1) == sum(batch.num_sampled_edges)
        assert len(batch.num_sampled_nodes) == len(num_neighbors) + 1
        # node and edge attributes are sliced by n_id / e_id
        assert torch.equal(batch.x, data.x[n_id]) and torch.equal(batch.y, data.y[n_id])
        assert torch.equal(batch.train_mask, data.train_mask[n_id])
        assert torch.equal(batch.edge_weight, data.edge_weight[e_id])
        assert torch.equal(batch.edge_attr, data.edge_attr[e_id])
        for k, (edges, targets) in zip(num_neighbors, hops(batch)):
            col = batch.edge_index[1, edges]
            # hop h samples incoming edges of exactly the nodes hop h-1 added
            assert set(col.tolist()) <= set(targets)
            for t in targets:
                got = e_id[edges][col == t].tolist()
                full = incoming[int(n_id[t])]
                assert set(got) <= set(full)
                if k == -1:
                    assert sorted(got) == full
                elif replace:
                    assert len(got) == (k if full else 0)
                else:  # without replacement: min(degree, k) distinct edges
                    assert len(got) == len(set(got)) == min(len(full), k)


def reference_pyg_full(data: Data, seeds: list[int], num_hops: int):
    """pyg-lib's neighbor_sample for fan-out -1 (every neighbour), written out loop by loop: CSC sorted
    stably by target, frontier = nodes added by the previous hop, new nodes in order of first appearance."""
    incoming = in_edges(data)
    src = data.edge_index[0].tolist()
    nodes, local = list(seeds), {v: i for i, v in enumerate(seeds)}
    rows, cols, edges = [], [], []
    begin, end = 0, len(nodes)
    for _ in range(num_hops):
        for t in range(begin, end):
            for eid in incoming[nodes[t]]:
                u = src[eid]
                if u not in local:
                    local[u] = len(nodes)
                    nodes.append(u)
                rows.append(local[u]), cols.append(t), edges.append(eid)
        begin, end = end, len(nodes)
    return nodes, rows, cols, edges


def test_layout_equals_pyg_sampler_with_all_neighbours():
    data = random_graph()
    seeds = [5, 0, 17, 33]
    batch = NeighborLoader(data, [-1, -1], input_nodes=torch.tensor(seeds), batch_size=4)(torch.arange(4))
    nodes, rows, cols, edges = reference_pyg_full(data, seeds, 2)
    assert batch.n_id.tolist() == nodes
    assert batch.edge_index.tolist() == [rows, cols]
    assert batch.e_id.tolist() == edges
    assert batch.batch_size == 4 and batch.input_id.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("as_mask", [False, True])
def test_every_input_node_is_a_seed_once_per_epoch(shuffle, drop_last, as_mask):
    data = random_graph()
    mask = data.train_mask
    index = mask.nonzero().view(-1)
    loader = NeighborLoader(data, [2], input_nodes=mask if as_mask else index, batch_size=4, shuffle=shuffle,
                            drop_last=drop_last, generator=torch.Generator().manual_seed(0))
    n = index.numel()
    assert n % 4 != 0  # so that drop_last matters
    for _ in range(2):  # two epochs
        batches = list(loader)
        assert len(batches) == len(loader) == (n // 4 if drop_last else math.ceil(n / 4))
        seeds = torch.cat([b.n_id[:b.batch_size] for b in batches])
        assert all(b.batch_size == 4 for b in batches[:-1])
        assert seeds.unique().numel() == seeds.numel() == (n // 4 * 4 if drop_last else n)
        assert set(seeds.tolist()) <= set(index.tolist())
        if not shuffle:
            assert torch.equal(seeds, index[:seeds.numel()])
        for b in batches:  # PyG's input_id: global ids for a mask, positions in input_nodes for an index
            expected = b.n_id[:b.batch_size] if as_mask else torch.searchsorted(index, b.n_id[:b.batch_size])
            assert torch.equal(b.input_id, expected)


def test_reproducible_from_a_generator():
    data = random_graph()

    def epoch(seed):
        loader = NeighborLoader(data, [3, 2], batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [(b.n_id, b.edge_index, b.e_id) for b in loader]

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c))


def star_forest(num_stars: int, degree: int) -> Data:
    """``num_stars`` disjoint stars: target ``s`` has in-edges from its own ``degree`` leaves, in order."""
    targets = torch.arange(num_stars)
    leaves = num_stars + torch.arange(num_stars * degree)
    edge_index = torch.stack([leaves, targets.repeat_interleave(degree)])
    return Data(x=torch.zeros(num_stars * (degree + 1), 1), edge_index=edge_index)


@pytest.mark.parametrize("replace", [False, True])
def test_uniform_over_a_nodes_neighbours(replace):
    """Chi-square: each of a node's d in-edges is picked equally often (fixed seed; alpha 1e-3)."""
    stars, d, k, rounds = 200, 12, 4, 10
    data = star_forest(stars, d)
    loader = NeighborLoader(data, [k], input_nodes=torch.arange(stars), batch_size=stars, replace=replace,
                            generator=torch.Generator().manual_seed(0))
    counts = torch.zeros(d)
    for _ in range(rounds):
        batch = next(iter(loader))
        slot = batch.e_id % d  # position of the edge among its target's in-edges
        counts += torch.bincount(slot, minlength=d)
    assert counts.sum() == stars * k * rounds
    assert chisquare(counts.numpy()).pvalue > 1e-3


def test_without_replacement_every_subset_is_equally_likely():
    """Floyd's algorithm gives every k-subset probability 1 / C(d, k), not only uniform marginals."""
    stars, d, k = 2000, 6, 3
    data = star_forest(stars, d)
    loader = NeighborLoader(data, [k], input_nodes=torch.arange(stars), batch_size=stars,
                            generator=torch.Generator().manual_seed(0))
    batch = next(iter(loader))
    subsets = {s: i for i, s in enumerate(itertools.combinations(range(d), k))}
    picks = (batch.e_id % d).view(stars, k).sort(dim=1).values.tolist()
    counts = torch.bincount(torch.tensor([subsets[tuple(p)] for p in picks]), minlength=len(subsets))
    assert chisquare(counts.numpy()).pvalue > 1e-3


def test_sparse_csr_features_are_sliced():
    data = random_graph()
    dense = data.x
    data.x = sparse_features(dense)
    batch = NeighborLoader(data, [3, 2], batch_size=10)(torch.arange(10))
    assert batch.x.layout == torch.sparse_csr
    assert torch.equal(batch.x.to_dense(), dense[batch.n_id])


def test_pyg_training_pattern_runs():
    data = random_graph()
    model = GCNNet(5, 3, hidden_channels=8)
    loader = NeighborLoader(data, [4, 4], input_nodes=data.train_mask, batch_size=8, shuffle=True)
    for batch in loader:
        out = model(batch.x, batch.edge_index)[:batch.batch_size]
        loss = F.cross_entropy(out, batch.y[:batch.batch_size])
        loss.backward()
        assert out.shape == (batch.batch_size, 3) and torch.isfinite(loss)


def test_sampler_state_is_clean_between_batches():
    data = random_graph()
    sampler = NeighborSampler(data.edge_index, data.num_nodes, [3, 3])
    sampler.sample(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError):
        sampler.sample(torch.tensor([0, 99]))  # fails before touching the table
    assert bool((sampler._local == -1).all())
    assert bool((sampler._local == -1).all())


BAD = [
    (dict(num_neighbors=[]), "num_neighbors"),
    (dict(num_neighbors=[10, 0]), "num_neighbors"),
    (dict(num_neighbors=[10, -2]), "num_neighbors"),
    (dict(num_neighbors=[2.5]), "num_neighbors"),
    (dict(num_neighbors=10), "num_neighbors"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-3), "batch_size"),
    (dict(input_nodes=torch.tensor([0, 60])), "input_nodes"),
    (dict(input_nodes=torch.tensor([-1, 3])), "input_nodes"),
    (dict(input_nodes=torch.tensor([3, 3])), "input_nodes"),
    (dict(input_nodes=torch.ones(59, dtype=torch.bool)), "input_nodes"),
    (dict(input_nodes=torch.zeros(60, dtype=torch.bool)), "input_nodes"),
    (dict(input_nodes=torch.tensor([0.0, 1.0])), "input_nodes"),
    (dict(data="no x"), "data"),
]


@pytest.mark.parametrize("change,name", BAD)
def test_bad_inputs_name_the_argument(change, name):
    data = random_graph()
    kwargs = dict(num_neighbors=[2, 2], batch_size=4)
    kwargs.update(change)
    if kwargs.get("data") == "no x":
        kwargs["data"] = Data(edge_index=data.edge_index, num_nodes=data.num_nodes)
    else:
        kwargs["data"] = data
    with pytest.raises(ValueError, match=name):
        NeighborLoader(**kwargs)


def test_unsupported_pyg_arguments_and_generator_device_are_refused():
    data = random_graph()
    with pytest.raises(TypeError, match="num_workers"):
        NeighborLoader(data, [2], batch_size=2, num_workers=4)
    with pytest.raises(ValueError, match="edge_index"):
        NeighborSampler(torch.tensor([[0, 1], [1, 9]]), 5, [2])
    sampler = NeighborSampler(data.edge_index, data.num_nodes, [2])
    for seeds in (torch.tensor([0, 60]), torch.tensor([3, 3]), torch.tensor([0.5]), [1, 2]):
        with pytest.raises(ValueError, match="seeds"):
            sampler.sample(seeds)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_sampling_stays_on_the_graphs_device(device):
    data = random_graph().to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    loader = NeighborLoader(data, [3, 2], batch_size=8, shuffle=True, generator=gen)
    assert loader.sampler.csr.device.type == device
    for batch in loader:
        assert batch.edge_index.device.type == batch.n_id.device.type == batch.x.device.type == device
        assert torch.equal(batch.n_id[batch.edge_index], data.edge_index[:, batch.e_id])
    if device == "cuda":  # a CPU generator cannot drive CUDA sampling
        with pytest.raises(ValueError, match="generator"):
            NeighborLoader(data, [2], generator=torch.Generator())


@pytest.mark.parametrize("world,n,shuffle", [(2, 40, True), (3, 40, False), (4, 10, True)])
def test_shards_split_the_seeds_across_ranks_as_distributed_sampler(world, n, shuffle):
    data = random_graph(n=n, e=200)
    loader = NeighborLoader(data, [3, 2], batch_size=4, shuffle=shuffle)
    for epoch in (0, 1):
        shards = [loader.shard(r, world, epoch=epoch, seed=5) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # every rank takes as many steps
        seeds = [int(v) for s in shards for batch in s for v in batch.n_id[:batch.batch_size]]
        assert set(seeds) == set(range(n))  # every input node is a seed in this epoch
        assert len(seeds) == math.ceil(n / world) * world  # padded as DistributedSampler pads
        if n % world == 0:
            assert sorted(seeds) == list(range(n))  # exactly once
        for s in shards:  # reproducible: the same subgraphs again (resume draws what the first run drew)
            for a, b in zip(s, loader.shard(s.key[2], world, epoch=epoch, seed=5)):
                assert torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)
    first = [int(v) for batch in loader.shard(0, world, epoch=0, seed=5) for v in batch.n_id[:batch.batch_size]]
    second = [int(v) for batch in loader.shard(0, world, epoch=1, seed=5) for v in batch.n_id[:batch.batch_size]]
    assert (first != second) == shuffle  # reshuffled per epoch only when shuffling


@pytest.mark.parametrize("kwargs,name", [({"rank": 2, "world_size": 2}, "rank"), ({"rank": -1, "world_size": 2}, "rank"),
                                         ({"rank": 0, "world_size": 2, "epoch": -1}, "epoch")])
def test_bad_shard_arguments_name_the_argument(kwargs, name):
    loader = NeighborLoader(random_graph(), [2], batch_size=4)
    with pytest.raises(ValueError, match=name):
        loader.shard(**kwargs)


def test_empty_graphs_load():
    """0 nodes: no batches (and no shard batches); 0 edges: each batch is its seeds alone, with their rows."""
    empty = Data(x=torch.randn(0, 4), edge_index=torch.empty(2, 0, dtype=torch.long))
    assert len(NeighborLoader(empty, [2, 2], batch_size=4)) == 0
    assert list(NeighborLoader(empty, [2], batch_size=4)) == []
    assert list(NeighborLoader(empty, [2]).shard(0, 2)) == []
    out = NeighborSampler(empty.edge_index, 0, [2]).sample(torch.empty(0, dtype=torch.long))
    assert out.node.numel() == 0 and out.row.numel() == 0

    x = torch.randn(5, 4)
    loose = Data(x=x, edge_index=torch.empty(2, 0, dtype=torch.long))
    batches = list(NeighborLoader(loose, [3, 3], batch_size=2))
    assert [b.n_id.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    for b in batches:
        assert b.edge_index.shape == (2, 0) and torch.equal(b.x, x[b.n_id]) and b.batch_size == b.num_nodes
