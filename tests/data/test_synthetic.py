"""synthetic_graph: a seeded degree-corrected SBM with homophily, power-law degrees and class features."""

import pytest
import torch
from torch_geometric.utils import is_undirected

from gseq.data import synthetic_graph


def test_structure_masks_and_determinism():
    data = synthetic_graph(3000, 8, 5, 16, seed=1)
    n = data.num_nodes
    assert data.x.shape == (n, 16) and data.y.shape == (n,) and int(data.y.max()) == 4
    ei = data.edge_index
    assert ei.dtype == torch.long and int(ei.min()) >= 0 and int(ei.max()) < n
    assert not bool((ei[0] == ei[1]).any())  # no self-loops
    assert is_undirected(ei, num_nodes=n)
    keys = ei[0] * n + ei[1]
    assert torch.equal(keys, keys.unique())  # sorted, no duplicates
    assert ei.size(1) == 2 * round(n * 8 / 2)  # exactly the average degree asked for
    masks = torch.stack([data.train_mask, data.val_mask, data.test_mask])
    assert torch.equal(masks.sum(0), torch.ones(n, dtype=torch.long))  # a partition
    assert int(data.train_mask.sum()) == 300 and int(data.val_mask.sum()) == 300
    again = synthetic_graph(3000, 8, 5, 16, seed=1)
    assert torch.equal(again.edge_index, ei) and torch.equal(again.x, data.x)
    other = synthetic_graph(3000, 8, 5, 16, seed=2).edge_index
    assert other.shape != ei.shape or not torch.equal(other, ei)


@pytest.mark.parametrize("homophily", [0.2, 0.9])
def test_homophily_is_the_fraction_of_intra_class_edges(homophily):
    data = synthetic_graph(4000, 10, 4, 4, homophily=homophily, seed=0)
    same = (data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).float().mean()
    assert abs(float(same) - homophily) < 0.03


def test_power_law_gives_hubs():
    heavy = synthetic_graph(20000, 10, 4, 4, power_law=2.1, seed=0)
    light = synthetic_graph(20000, 10, 4, 4, power_law=6.0, seed=0)
    max_deg = [int(torch.bincount(d.edge_index[1]).max()) for d in (heavy, light)]
    assert max_deg[0] > 20 * 10 and max_deg[0] > 5 * max_deg[1]


def test_features_carry_the_class():
    data = synthetic_graph(2000, 10, 3, 8, noise=0.5, seed=0)
    means = torch.stack([data.x[data.y == c].mean(0) for c in range(3)])
    nearest = torch.cdist(data.x, means).argmin(1)
    assert float((nearest == data.y).float().mean()) > 0.9


@pytest.mark.parametrize("kwargs,name", [
    (dict(num_nodes=1), "num_nodes"),
    (dict(num_nodes=10.5), "num_nodes"),
    (dict(avg_degree=0), "avg_degree"),
    (dict(num_classes=1), "num_classes"),
    (dict(num_features=0), "num_features"),
    (dict(homophily=1.5), "homophily"),
    (dict(power_law=1.0), "power_law"),
    (dict(power_law=1.5), "power_law"),
    (dict(power_law=True), "power_law"),
    (dict(avg_degree=99.5), "avg_degree"),
    (dict(split=(0.1, "0.1")), "split"),
    (dict(seed=1.5), "seed"),
    (dict(seed="0"), "seed"),
    (dict(seed=2**70), "seed"),
    (dict(seed=-1), "seed"),
    (dict(num_nodes=10**12), "num_nodes"),
    (dict(noise=-1.0), "noise"),
    (dict(split=(0.6, 0.6)), "split"),
])
def test_bad_inputs_name_the_argument(kwargs, name):
    args = dict(num_nodes=100, avg_degree=4, num_classes=3, num_features=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        synthetic_graph(**args)


@pytest.mark.parametrize("num_nodes,avg_degree,power_law", [
    (20_000, 10, 2.05),  # a heavy tail: before the cap, hubs' duplicate edges lost a third of the edges
    (20_000, 10, 2.5),
    (2_000, 4, 6.0),
    (200, 150, 2.5),  # dense: duplicates merged left 41 instead of 150
    (200, 198.5, 2.5),  # nearly complete
    (10, 1, 2.5),
])
def test_the_average_degree_is_the_one_asked_for(num_nodes, avg_degree, power_law):
    data = synthetic_graph(num_nodes, avg_degree, 2, 2, power_law=power_law, seed=3)
    ei = data.edge_index
    assert ei.size(1) == 2 * round(num_nodes * avg_degree / 2)
    assert is_undirected(ei, num_nodes=num_nodes) and not bool((ei[0] == ei[1]).any())
    keys = ei[0] * num_nodes + ei[1]
    assert torch.equal(keys, keys.unique())


def test_unreachable_average_degrees_are_refused_naming_the_reason():
    # homophily 1 keeps every edge inside its class: 10 classes of ~20 nodes hold ~1,900 pairs, not 15,000
    with pytest.raises(ValueError, match=r"avg_degree: only .* distinct edges of the 15,000 .*homophily near 1"):
        synthetic_graph(200, 150, 10, 2, homophily=1.0)
