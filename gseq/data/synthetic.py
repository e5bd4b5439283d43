r"""A node-classification graph of any size, built in seconds with no download.

:func:`synthetic_graph` draws a degree-corrected stochastic block model (Karrer & Newman, 2011) with
power-law degree propensities and class-dependent noisy features:

* every node :math:`i` gets a class :math:`y_i` (uniform) and a propensity
  :math:`\theta_i = U_i^{-1/(\alpha - 1)}` (a Pareto tail :math:`P(\theta > t) = t^{1 - \alpha}`,
  ``alpha = power_law``), so its expected degree is proportional to :math:`\theta_i`;
* each of the :math:`N \bar d / 2` undirected edges picks one end :math:`i \propto \theta`; with
  probability ``homophily`` the other end is drawn :math:`\propto \theta` from :math:`i`'s class, else from
  another class chosen uniformly (so ``homophily`` is the expected fraction of intra-class edges);
* self-loops are dropped, duplicates merged, and every edge is stored in both directions;
* features are :math:`x_i = \mu_{y_i} + \sigma \varepsilon_i` with class means
  :math:`\mu_c \sim \mathcal N(0, I)` and :math:`\varepsilon_i \sim \mathcal N(0, I)`: the features alone
  classify poorly, averaging over homophilous neighbours (a GCN) classifies well.

Every step is a vectorised torch operation (inverse-CDF sampling with ``searchsorted``), so 1M nodes of
average degree 10 take seconds.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import in_range, integer, non_negative_float, positive_int

__all__ = ["synthetic_graph"]


def synthetic_graph(
    num_nodes: int,
    avg_degree: float = 10.0,
    num_classes: int = 10,
    num_features: int = 64,
    *,
    homophily: float = 0.8,
    power_law: float = 2.5,
    noise: float = 5.0,
    split: tuple[float, float] = (0.1, 0.1),
    seed: int = 0,
) -> Data:
    r"""A seeded degree-corrected SBM node-classification graph (see the module docstring).

    Args:
        num_nodes: :math:`N`, >= 2.
        avg_degree: expected average degree :math:`\bar d` (edges counted once per endpoint) before
            duplicate edges are merged; the realised average is slightly lower. (default: ``10.0``)
        num_classes: :math:`C`, >= 2. (default: ``10``)
        num_features: feature dimension. (default: ``64``)
        homophily: expected fraction of edges whose ends share a class, in ``[0, 1]``. (default: ``0.8``)
        power_law: the tail exponent :math:`\alpha > 1` of the degree propensities (smaller: heavier
            hubs; 2-3 is typical of real graphs). (default: ``2.5``)
        noise: :math:`\sigma`, the feature noise relative to the class-mean spread. (default: ``5.0``)
        split: fractions of nodes in the training and validation masks; the rest is the test mask.
            (default: ``(0.1, 0.1)``)
        seed: the seed of every draw; the same arguments give the same graph. (default: ``0``)

    Returns:
        a :class:`~torch_geometric.data.Data` with ``x`` ``[N, num_features]``, ``y`` ``[N]``,
        ``edge_index`` ``[2, E]`` (undirected, sorted by source then target), ``train_mask``,
        ``val_mask``, ``test_mask`` and ``name = "synthetic"``.

    Example::

        data = synthetic_graph(1_000_000, avg_degree=10, num_classes=10, num_features=64, seed=0)
    """
    _check(num_nodes, avg_degree, num_classes, num_features, homophily, power_law, noise, split)
    g = torch.Generator().manual_seed(seed)
    n, c = num_nodes, num_classes
    y = torch.randint(c, (n,), generator=g)
    theta = torch.rand(n, generator=g, dtype=torch.float64).clamp_min(1e-12).pow(-1.0 / (power_law - 1.0))

    # inverse-CDF sampling over the nodes sorted by class: class k owns cdf[start[k]:start[k + 1]]
    order = torch.argsort(y, stable=True)
    cdf = torch.cumsum(theta[order], 0)
    counts = torch.bincount(y, minlength=c)
    start = torch.zeros(c + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=start[1:])
    mass_before = torch.cat([cdf.new_zeros(1), cdf])[start]  # [C + 1] cumulative mass at class boundaries

    num_edges = int(round(n * avg_degree / 2))
    src = _draw(cdf, order, torch.rand(num_edges, generator=g, dtype=torch.float64) * cdf[-1])
    same = torch.rand(num_edges, generator=g) < homophily
    other = (y[src] + torch.randint(1, c, (num_edges,), generator=g)) % c
    cls = torch.where(same, y[src], other)
    lo, hi = mass_before[cls], mass_before[cls + 1]
    dst = _draw(cdf, order, lo + torch.rand(num_edges, generator=g, dtype=torch.float64) * (hi - lo))
    # (an empty class has no mass: its draws land on the next class's first node; only in tiny graphs)
    keep = src != dst
    a, b = torch.minimum(src, dst)[keep], torch.maximum(src, dst)[keep]
    pairs = torch.unique(a * n + b)  # distinct undirected edges
    a, b = pairs // n, pairs % n
    keys, _ = torch.sort(torch.cat([a * n + b, b * n + a]))
    edge_index = torch.stack([keys // n, keys % n])

    means = torch.randn(c, num_features, generator=g)
    x = means[y] + noise * torch.randn(n, num_features, generator=g)

    perm = torch.randperm(n, generator=g)
    n_train, n_val = int(split[0] * n), int(split[1] * n)
    masks = []
    for lo_i, hi_i in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n)):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[perm[lo_i:hi_i]] = True
        masks.append(mask)
    return Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                name="synthetic")


def _draw(cdf: Tensor, order: Tensor, u: Tensor) -> Tensor:
    """The node whose cumulative-propensity interval holds each ``u`` (inverse-CDF sampling)."""
    pos = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.numel() - 1)
    return order[pos]


def _check(num_nodes, avg_degree, num_classes, num_features, homophily, power_law, noise, split) -> None:
    integer("num_nodes", num_nodes, minimum=2)
    in_range("avg_degree", avg_degree, 0, num_nodes, low_open=True, high_open=True)
    integer("num_classes", num_classes, minimum=2)
    if num_classes > num_nodes:
        raise ValueError(f"num_classes: must be at most num_nodes ({num_nodes}), got {num_classes!r}")
    positive_int("num_features", num_features)
    in_range("homophily", homophily, 0, 1)
    if not isinstance(power_law, (int, float)) or not power_law > 1.0:
        raise ValueError(f"power_law: the tail exponent must be > 1 (2-3 is typical), got {power_law!r}")
    non_negative_float("noise", noise)
    if (not isinstance(split, (tuple, list)) or len(split) != 2 or any(not 0 <= s <= 1 for s in split)
            or sum(split) > 1):
        raise ValueError(f"split: expected (train, val) fractions in [0, 1] with a sum <= 1, got {split!r}")
