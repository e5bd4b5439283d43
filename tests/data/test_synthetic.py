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
    assert 6.5 < ei.size(1) / n <= 8.0  # average degree: the requested one, minus merged duplicates
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
    (dict(noise=-1.0), "noise"),
    (dict(split=(0.6, 0.6)), "split"),
])
def test_bad_inputs_name_the_argument(kwargs, name):
    args = dict(num_nodes=100, avg_degree=4, num_classes=3, num_features=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        synthetic_graph(**args)
