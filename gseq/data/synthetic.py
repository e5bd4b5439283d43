r"""A node-classification graph of any size, built in seconds with no download.

:func:`synthetic_graph` draws a degree-corrected stochastic block model (Karrer & Newman, 2011) with
power-law degree propensities and class-dependent noisy features:

* every node :math:`i` gets a class :math:`y_i` (uniform) and a propensity
  :math:`\theta_i = U_i^{-1/(\alpha - 1)}` (a Pareto tail :math:`P(\theta > t) = t^{1 - \alpha}`,
  ``alpha = power_law``);
* its expected degree is :math:`d_i = \min(K, \lambda \theta_i)` with :math:`\lambda` chosen so that
  :math:`\sum_i d_i = N \bar d`, capped at :math:`K = \min(N - 1, \sqrt{N \bar d})` (Chung and Lu's
  bound, under which no pair of nodes is expected to be joined more than once: without it a heavy tail
  puts most edge ends on a few hubs, and merging their duplicates left a fraction of the edges asked for);
* each undirected edge picks one end :math:`i \propto d`; with probability ``homophily`` the other end is
  drawn :math:`\propto d` from :math:`i`'s class, else from another class chosen uniformly (so
  ``homophily`` is the expected fraction of intra-class edges); self-loops are dropped and duplicates
  merged, and more edges are drawn until exactly :math:`\mathrm{round}(N \bar d / 2)` distinct ones exist
  (a random surplus of the last draw is dropped), so the average degree is :math:`\bar d` up to that
  rounding; every edge is stored in both directions;
* features are :math:`x_i = \mu_{y_i} + \sigma \varepsilon_i` with class means
  :math:`\mu_c \sim \mathcal N(0, I)` and :math:`\varepsilon_i \sim \mathcal N(0, I)`: the features alone
  classify poorly, averaging over homophilous neighbours (a GCN) classifies well.

Every step is a vectorised torch operation (inverse-CDF sampling with ``searchsorted``), so 1M nodes of
average degree 10 take seconds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import fits_memory, in_range, integer, non_negative_float, positive_int, random_seed

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
        avg_degree: the average degree :math:`\bar d` (edges counted once per endpoint), in ``(0, N - 1)``;
            the graph has exactly ``round(N * avg_degree / 2)`` undirected edges. (default: ``10.0``)
        num_classes: :math:`C`, >= 2. (default: ``10``)
        num_features: feature dimension. (default: ``64``)
        homophily: expected fraction of edges whose ends share a class, in ``[0, 1]``. (default: ``0.8``)
        power_law: the tail exponent :math:`\alpha > 2` of the degree propensities (smaller: heavier
            hubs; 2-3 is typical of real graphs; at :math:`\alpha \le 2` the mean propensity is infinite
            and a few hubs would hold nearly every edge, so such values are refused). (default: ``2.5``)
        noise: :math:`\sigma`, the feature noise relative to the class-mean spread. (default: ``5.0``)
        split: fractions of nodes in the training and validation masks; the rest is the test mask.
            (default: ``(0.1, 0.1)``)
        seed: the seed of every draw, an integer in ``[0, 2**32 - 1]``; the same arguments give the same
            graph. (default: ``0``)

    Returns:
        a :class:`~torch_geometric.data.Data` with ``x`` ``[N, num_features]``, ``y`` ``[N]``,
        ``edge_index`` ``[2, E]`` (undirected, sorted by source then target, ``E = 2 round(N d / 2)``),
        ``train_mask``, ``val_mask``, ``test_mask`` and ``name = "synthetic"``.

    Raises:
        ValueError: an argument out of range (named), a size whose arrays cannot fit in memory
            (``num_nodes``), or an ``avg_degree`` that so many distinct edges cannot reach (a graph close
            to complete, or with ``homophily`` near 1 close to complete within its classes).

    Example::

        data = synthetic_graph(1_000_000, avg_degree=10, num_classes=10, num_features=64, seed=0)
    """
    _check(num_nodes, avg_degree, num_classes, num_features, homophily, power_law, noise, split, seed)
    g = torch.Generator().manual_seed(seed)
    n, c = num_nodes, num_classes
    y = torch.randint(c, (n,), generator=g)
    log_theta = torch.rand(n, generator=g, dtype=torch.float64).clamp_min(1e-12).log().neg() / (power_law - 1.0)
    means = torch.randn(c, num_features, generator=g)
    x = means[y] + noise * torch.randn(n, num_features, generator=g)
    perm = torch.randperm(n, generator=g)

    # inverse-CDF sampling over the nodes sorted by class: class k owns cdf[start[k]:start[k + 1]]
    order = torch.argsort(y, stable=True)
    cdf = torch.cumsum(_expected_degrees(log_theta, n, avg_degree)[order], 0)
    counts = torch.bincount(y, minlength=c)
    start = torch.zeros(c + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=start[1:])
    mass_before = torch.cat([cdf.new_zeros(1), cdf])[start]  # [C + 1] cumulative mass at class boundaries

    def draw_pairs(m: int) -> Tensor:  # m edges, as keys a * n + b of undirected pairs a < b (self-loops dropped)
        src = _draw(cdf, order, torch.rand(m, generator=g, dtype=torch.float64) * cdf[-1])
        same = torch.rand(m, generator=g) < homophily
        other = (y[src] + torch.randint(1, c, (m,), generator=g)) % c
        cls = torch.where(same, y[src], other)
        lo, hi = mass_before[cls], mass_before[cls + 1]
        dst = _draw(cdf, order, lo + torch.rand(m, generator=g, dtype=torch.float64) * (hi - lo))
        # (an empty class has no mass: its draws land on the next class's first node; only in tiny graphs)
        keep = src != dst
        return torch.minimum(src, dst)[keep] * n + torch.maximum(src, dst)[keep]

    pairs = _distinct_pairs(draw_pairs, round(n * avg_degree / 2), g)
    a, b = pairs // n, pairs % n
    keys, _ = torch.sort(torch.cat([a * n + b, b * n + a]))
    edge_index = torch.stack([keys // n, keys % n])

    n_train, n_val = int(split[0] * n), int(split[1] * n)
    masks = []
    for lo_i, hi_i in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n)):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[perm[lo_i:hi_i]] = True
        masks.append(mask)
    return Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                name="synthetic")


#: the most edges drawn, as a multiple of those asked for, before an avg_degree is refused as unreachable
#: (a near-complete graph of N = 200 and d = 198.5 needs about 6)
_MAX_DRAWS = 32


def _expected_degrees(log_theta: Tensor, n: int, avg_degree: float) -> Tensor:
    r""":math:`d_i = \min(K, \lambda \theta_i)` with :math:`\sum d = N \bar d`, :math:`\lambda` found by
    bisection in log space (the sum grows with :math:`\lambda`; at the lower end no node is capped, at the
    upper end every node is, and :math:`N K \ge N \bar d` because :math:`\bar d < N - 1`)."""
    cap = min(n - 1.0, math.sqrt(n * avg_degree))
    target = n * avg_degree
    lo = math.log(target) - float(torch.logsumexp(log_theta, 0))
    hi = math.log(cap) - float(log_theta.min())
    for _ in range(100):  # each halves [lo, hi]; 100 reach float64's resolution
        mid = (lo + hi) / 2
        if float((log_theta + mid).exp().clamp_(max=cap).sum()) < target:
            lo = mid
        else:
            hi = mid
    return (log_theta + hi).exp().clamp_(max=cap)


def _distinct_pairs(draw_pairs, target: int, g: torch.Generator) -> Tensor:
    """Exactly ``target`` distinct pair keys: draws until there are enough (each round sized by the last
    round's yield of new pairs), then drops a random surplus."""
    pairs = torch.empty(0, dtype=torch.long)
    m, drawn, budget = target, 0, _MAX_DRAWS * target + 1024
    while pairs.numel() < target:
        if drawn >= budget:
            raise ValueError(f"avg_degree: only {pairs.numel():,} distinct edges of the {target:,} asked for came "
                             f"out of {drawn:,} draws: the graph would be nearly complete (or, with homophily near 1, "
                             "nearly complete within its classes); use a smaller avg_degree")
        m = min(m, budget - drawn)
        before = pairs.numel()
        pairs = torch.unique(torch.cat([pairs, draw_pairs(m)]))
        drawn += m
        new_per_draw = max((pairs.numel() - before) / m, 1e-3)
        m = int((target - pairs.numel()) / new_per_draw * 1.25) + 16
    if pairs.numel() > target:
        pairs, _ = torch.sort(pairs[torch.randperm(pairs.numel(), generator=g)[:target]])
    return pairs


def _draw(cdf: Tensor, order: Tensor, u: Tensor) -> Tensor:
    """The node whose cumulative-propensity interval holds each ``u`` (inverse-CDF sampling)."""
    pos = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.numel() - 1)
    return order[pos]


def _check(num_nodes, avg_degree, num_classes, num_features, homophily, power_law, noise, split, seed) -> None:
    integer("num_nodes", num_nodes, minimum=2)
    in_range("avg_degree", avg_degree, 0, num_nodes - 1, low_open=True, high_open=True)
    integer("num_classes", num_classes, minimum=2)
    if num_classes > num_nodes:
        raise ValueError(f"num_classes: must be at most num_nodes ({num_nodes}), got {num_classes!r}")
    positive_int("num_features", num_features)
    in_range("homophily", homophily, 0, 1)
    if isinstance(power_law, bool) or not isinstance(power_law, (int, float)) or not power_law > 2.0:
        raise ValueError(f"power_law: the tail exponent must be > 2 (2-3 is typical), got {power_law!r}: at 2 or below "
                         "the mean degree propensity is infinite, so a few hubs would hold nearly every edge and "
                         "most nodes would be isolated")
    non_negative_float("noise", noise)
    if (not isinstance(split, (tuple, list)) or len(split) != 2
            or any(isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= 1 for s in split)
            or sum(split) > 1):
        raise ValueError(f"split: expected (train, val) fractions in [0, 1] with a sum <= 1, got {split!r}")
    random_seed("seed", seed)
    # before anything is allocated: per node the class, propensities, sort order, features and masks;
    # per edge the draws of a round and the pairs kept (about a dozen 8-byte values)
    edges = num_nodes * avg_degree / 2
    fits_memory("num_nodes", num_nodes, int(num_nodes * (80 + 4 * num_features) + edges * 96), "cpu",
                f"nodes (with avg_degree {avg_degree:g} and {num_features} features)")
