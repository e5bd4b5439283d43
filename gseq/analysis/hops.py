"""What each extra GCN layer buys: measured hop distances on the example graph, and depth on Cora.

* :func:`hop_table`: for every ordered pair (source, target) of a small graph, the shortest-path length
  and the smallest ``k`` for which a ``k``-layer GCN's output at the target depends on the source,
  measured through :func:`~gseq.analysis.influence` (never assumed). They agree on every pair.
* :func:`depth_study`: trains plain GCNs and GCNII models (:class:`~gseq.models.GCNII`: initial
  residual and identity mapping) of several depths and self-loop weights on a node-classification graph
  over seeds (resumable CSV, parallel processes) and records test accuracy, receptive-field size and how
  the influence on a node splits between the node itself and its k-hop ring.
* :func:`summarize_depth_study` and :func:`describe_depth_study` turn those rows into a table and into
  plain-words findings.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch_geometric.data import Data

from ..checks import choice, integer, non_negative_float, positive_int, random_seed
from ..data.graphs import example_graph, hop_distances
from .grid import run_grid
from .receptive_field import influence, influence_by_hop, receptive_field

__all__ = ["hop_table", "influence_profile", "probe_nodes", "depth_study", "summarize_depth_study",
           "describe_depth_study", "DEPTH_FIELDS", "MODELS"]

#: the models of the depth study: Kipf & Welling's GCN (:class:`~gseq.models.GCNNet`) and GCNII
MODELS = ("gcn", "gcnii")
DEPTH_FIELDS = ["model", "depth", "self_loop_weight", "seed", "test_acc", "val_acc", "best_epoch", "rf_fraction",
                "self_influence", "ring_influence", "learned_w", "seconds"]
_TYPES = {"model": str, "depth": int, "self_loop_weight": str, "seed": int, "best_epoch": int,
          **{k: float for k in DEPTH_FIELDS[4:] if k != "best_epoch"}}


def _names(data: Data) -> list[str]:
    return list(getattr(data, "node_names", None) or [str(i) for i in range(data.num_nodes)])


def hop_table(data: Data | None = None, *, max_k: int | None = None, hidden: int = 8, seed: int = 0) -> list[dict]:
    """Shortest-path hops and the measured smallest GCN depth, for every ordered pair of nodes.

    For ``k = 0, 1, ..., max_k`` a ``k``-layer :class:`~gseq.models.GCNNet` (random weights, tanh, no
    dropout; ``k = 0`` is the identity) is built, and the influence of every source on every target's
    output is computed by autograd. ``first_k`` is the smallest ``k`` with non-zero influence.

    Args:
        data: the graph. (default: :func:`~gseq.data.example_graph`)
        max_k: deepest model tried. (default: the largest finite hop distance)
        hidden: width of the hidden layers. (default: ``8``)
        seed: seed of the random weights. (default: ``0``)

    Returns:
        One dict per ordered pair: ``source``, ``target`` (names), ``hops`` (``math.inf`` when
        unreachable), ``first_k`` (None when no depth up to ``max_k`` reaches) and ``agree``.
    """
    random_seed("seed", seed)
    positive_int("hidden", hidden)
    integer("max_k", max_k, minimum=0, none_ok=True)
    from ..models.gcn_net import GCNNet

    data = data if data is not None else example_graph()
    n, names = data.num_nodes, _names(data)
    dist = torch.stack([hop_distances(data, s) for s in range(n)])  # dist[s, t]: hops from s to t
    finite = dist[torch.isfinite(dist)]
    max_k = int(finite.max()) if max_k is None else max_k
    first = [[0 if s == t else None for t in range(n)] for s in range(n)]
    torch.manual_seed(seed)
    for k in range(1, max_k + 1):
        model = GCNNet(data.num_features, hidden, hidden_channels=hidden, num_layers=k, dropout=0.0, act="tanh")
        for t in range(n):
            inf = influence(model, data, t, normalize=False)
            for s in range(n):
                if first[s][t] is None and inf[s] > 0:
                    first[s][t] = k
    rows = []
    for s in range(n):
        for t in range(n):
            d = float(dist[s, t])
            hops = int(d) if math.isfinite(d) else math.inf
            k = first[s][t]
            agree = (k is None and (hops == math.inf or hops > max_k)) or k == hops
            rows.append({"source": names[s], "target": names[t], "hops": hops, "first_k": k, "agree": agree})
    return rows


def probe_nodes(data: Data, count: int) -> list[int]:
    """The same ``count`` nodes of ``data`` in every run (a fixed permutation): where influence is measured."""
    g = torch.Generator().manual_seed(1234)
    return torch.randperm(data.num_nodes, generator=g)[:count].tolist()


def influence_profile(model, data: Data, nodes: Sequence[int], max_hops: int) -> list[float]:
    """The mean over ``nodes`` of :func:`~gseq.analysis.influence_by_hop`: entry ``d`` is the share of a
    node's influence that comes from exactly ``d`` hops away (``d = 0``: the node itself)."""
    data = data.to(next(model.parameters()).device)
    by_hop = torch.stack([influence_by_hop(model, data, node, max_hops=max_hops) for node in nodes])
    return by_hop.double().mean(0).tolist()


def _depth_run(model_name: str, depth: int, w: str, seed: int, spec: dict[str, Any]) -> dict[str, Any]:
    """One (model, depth, self-loop setting, seed) run of :func:`depth_study` (module level: picklable)."""
    from ..data.planetoid import planetoid
    from ..tasks.gcnii import train_gcnii
    from ..tasks.node_classification import train_node_classifier

    data = spec["data"] if spec.get("data") is not None else planetoid(spec["dataset"], root=spec.get("root"))
    weight: float | str = w if w == "learn" else float(w)
    if model_name == "gcnii":  # GCNII's recipe: up to gcnii_epochs, stopped by the validation loss
        r = train_gcnii(data, num_layers=depth, self_loop_weight=weight, epochs=spec["gcnii_epochs"], seed=seed,
                        device=spec.get("device", "cpu"))
    else:
        r = train_node_classifier(data, num_layers=depth, self_loop_weight=weight, epochs=spec["epochs"], seed=seed,
                                  device=spec.get("device", "cpu"))
    model = r["model"]
    profile = influence_profile(model, data, probe_nodes(data, spec["influence_nodes"]), depth)
    rf = receptive_field(data, depth, return_counts=True).double().mean().item() / data.num_nodes
    return {"model": model_name, "depth": depth, "self_loop_weight": w, "seed": seed, "test_acc": r["test_acc"],
            "val_acc": r["val_acc"],
            "best_epoch": r["best_epoch"], "rf_fraction": rf, "self_influence": profile[0],
            "ring_influence": profile[depth],
            "learned_w": statistics.fmean(r["self_loop_weights"]) if w == "learn" else float(w),
            "seconds": round(r["seconds"], 2)}


def depth_study(
    path: str,
    *,
    dataset: str = "Cora",
    root: str | None = None,
    data: Data | None = None,
    models: Sequence[str] = MODELS,
    depths: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    self_loop_weights: Sequence[float | str] = (1.0, 2.0, "learn"),
    seeds: int = 10,
    epochs: int = 200,
    gcnii_epochs: int = 1500,
    influence_nodes: int = 20,
    jobs: int = 1,
    log=None,
) -> list[dict[str, Any]]:
    """Train GCNs and GCNIIs for every (model, depth, self-loop weight, seed) and record what depth buys;
    resumable.

    Each ``"gcn"`` run trains :func:`~gseq.tasks.train_node_classifier` (Kipf's settings,
    ``num_layers=depth``), each ``"gcnii"`` run :func:`~gseq.tasks.gcnii.train_gcnii` (GCNII's settings,
    ``depth`` GCN2 layers between its two linear layers, so its receptive field is ``depth`` hops too), and
    records test accuracy, the mean receptive-field size as a fraction of the graph, and, over
    ``influence_nodes`` fixed probe nodes, the mean influence of a node on itself and of its exact
    ``depth``-hop ring (Xu et al., 2018). Rows go to the CSV at ``path`` (see :data:`DEPTH_FIELDS`).

    Args:
        path: results CSV; finished runs in it are skipped.
        dataset, root: the Planetoid graph to load (ignored when ``data`` is given).
        data: a graph with masks to use instead (must be picklable for ``jobs > 1``).
        models: ``"gcn"`` and/or ``"gcnii"`` (:data:`MODELS`). (default: both)
        depths: numbers of graph layers. (default: 1, 2, 4, 8, 16, 32, 64)
        self_loop_weights: fixed weights and/or ``"learn"``. (default: 1, 2, learn)
        seeds: seeds ``0..seeds-1``. (default: ``10``)
        epochs: training epochs of a GCN run. (default: ``200``)
        gcnii_epochs: the most training epochs of a GCNII run (it stops after 100 epochs without a lower
            validation loss). (default: ``1500``)
        influence_nodes: probe nodes for the influence columns. (default: ``20``)
        jobs: parallel processes. (default: ``1``)
        log: ``log(row, finished, total)`` after every run.
    """
    for name, value in (("seeds", seeds), ("epochs", epochs), ("influence_nodes", influence_nodes)):
        positive_int(name, value)
    for i, m in enumerate(models):
        choice(f"models[{i}]", m, MODELS)
    for i, d in enumerate(depths):
        positive_int(f"depths[{i}]", d)
    weights = []
    for i, w in enumerate(self_loop_weights):
        if w != "learn":
            non_negative_float(f"self_loop_weights[{i}]", w, hint=" or 'learn'")
        weights.append("learn" if w == "learn" else f"{float(w):g}")
    positive_int("gcnii_epochs", gcnii_epochs)
    spec = {"dataset": dataset, "root": root, "data": data, "epochs": epochs, "gcnii_epochs": gcnii_epochs,
            "influence_nodes": influence_nodes}
    tasks = [(m, d, w, s) for m in models for d in depths for w in weights for s in range(seeds)]

    return run_grid(path, tasks, functools.partial(_depth_run, spec=spec),
                    key=lambda r: (str(r["model"]), int(r["depth"]), str(r["self_loop_weight"]), int(r["seed"])),
                    fields=DEPTH_FIELDS, types=_TYPES, jobs=jobs, log=log,
                    settings={"dataset": dataset if data is None else "custom", "epochs": epochs,
                              "gcnii_epochs": gcnii_epochs, "influence_nodes": influence_nodes})


def summarize_depth_study(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds for every (model, depth, self-loop setting)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((str(r["model"]), int(r["depth"]), str(r["self_loop_weight"])), []).append(r)
    out = []
    for (model, depth, w), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        accs = [float(r["test_acc"]) for r in rs]
        out.append({
            "model": model, "depth": depth, "self_loop_weight": w, "runs": len(rs),
            "test_acc_mean": statistics.fmean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "rf_fraction": statistics.fmean(float(r["rf_fraction"]) for r in rs),
            "self_influence": statistics.fmean(float(r["self_influence"]) for r in rs),
            "ring_influence": statistics.fmean(float(r["ring_influence"]) for r in rs),
            "learned_w": statistics.fmean(float(r["learned_w"]) for r in rs),
        })
    return out


def describe_depth_study(summary: Sequence[dict[str, Any]]) -> list[str]:
    """Plain-words findings from :func:`summarize_depth_study` rows: per model, then the models compared."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in summary:
        by_model.setdefault(r["model"], []).append(r)
    lines = [f"{model}: {line}" for model, rows in by_model.items() for line in _describe_model(rows)]
    if "gcn" in by_model and "gcnii" in by_model:
        lines += _compare_models(by_model["gcn"], by_model["gcnii"])
    return lines


def _compare_models(gcn: Sequence[dict[str, Any]], gcnii: Sequence[dict[str, Any]]) -> list[str]:
    """GCNII against the plain GCN at every depth and self-loop setting both were run with."""
    plain = {(r["depth"], r["self_loop_weight"]): r for r in gcn}
    lines = []
    for r in sorted(gcnii, key=lambda r: (r["self_loop_weight"], r["depth"])):
        p = plain.get((r["depth"], r["self_loop_weight"]))
        if p is not None and r["depth"] >= 8:
            lines.append(f"depth {r['depth']}, w={r['self_loop_weight']}: gcnii {100 * r['test_acc_mean']:.1f}% vs gcn "
                         f"{100 * p['test_acc_mean']:.1f}%; a node keeps {100 * r['self_influence']:.1f}% of the "
                         f"influence on itself in gcnii, {100 * p['self_influence']:.1f}% in gcn")
    return lines


def _describe_model(summary: Sequence[dict[str, Any]]) -> list[str]:
    """The findings for one model's rows."""
    by_w: dict[str, dict[int, dict]] = {}
    for r in summary:
        by_w.setdefault(r["self_loop_weight"], {})[r["depth"]] = r
    lines = []
    for w, rows in by_w.items():
        best = max(rows.values(), key=lambda r: r["test_acc_mean"])
        deepest = rows[max(rows)]
        lines.append(
            f"self_loop_weight {w}: best depth {best['depth']} ({100 * best['test_acc_mean']:.1f}% +- "
            f"{100 * best['test_acc_std']:.1f}); at depth {deepest['depth']} {100 * deepest['test_acc_mean']:.1f}% "
            f"({100 * (deepest['test_acc_mean'] - best['test_acc_mean']):+.1f} points), where a node keeps "
            f"{100 * deepest['self_influence']:.1f}% of the influence on itself"
            + (f"; learned w averages {deepest['learned_w']:.2f} at that depth, {rows[min(rows)]['learned_w']:.2f} "
               f"at depth {min(rows)}" if w == "learn" else ""))
    if "1" in by_w and "learn" in by_w:
        common = sorted(set(by_w["1"]) & set(by_w["learn"]))
        if common:
            d = 2 if 2 in common else common[0]
            a, b = by_w["learn"][d]["test_acc_mean"], by_w["1"][d]["test_acc_mean"]
            lines.append(f"learned vs fixed w=1 at depth {d}: {100 * a:.1f}% vs {100 * b:.1f}% "
                         f"({'at least as high' if a >= b else 'lower'}; {by_w['learn'][d]['runs']} seeds)")
    fixed = sorted((w for w in by_w if w != "learn"), key=float)
    if len(fixed) >= 2:
        deep = [d for d in by_w[fixed[0]] if d >= 8 and all(d in by_w[w] for w in fixed)]
        for d in deep:
            drops = {w: max(r["test_acc_mean"] for r in by_w[w].values()) - by_w[w][d]["test_acc_mean"] for w in fixed}
            order = " vs ".join(f"w={w}: -{100 * drops[w]:.1f}" for w in fixed)
            verdict = "less" if drops[fixed[-1]] < drops[fixed[0]] else "not less"
            lines.append(f"depth {d}, accuracy lost from each setting's best ({order} points): a larger self-loop "
                         f"weight loses {verdict}")
    return lines
