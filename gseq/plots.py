"""Matplotlib figures from metrics histories and CSV files.

Every function takes plain data (a list of dict rows, or the path of a CSV that gseq wrote), draws one
figure, saves it atomically when ``path`` is given, and returns the ``Figure``. Matplotlib is imported
by the first figure, not by ``import gseq.plots``, and gseq never chooses its backend: it keeps the one
you set (``MPLBACKEND``, ``matplotlib.use``), and without a display matplotlib picks Agg on its own.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks import random_seed
from .io import atomic_write_bytes

__all__ = ["read_rows", "save_figure", "plot_history", "plot_forecast"]


def read_rows(source: str | os.PathLike | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows from a CSV path (numbers parsed as float) or from an iterable of dicts (copied)."""
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise FileNotFoundError(f"source: no CSV file at {str(source)!r}; pass the path of a metrics or "
                                    "results CSV")
        with open(source, newline="") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return [dict(row) for row in source]


def _number(text: str) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG (or the suffix's format) atomically."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _finish(fig, path: str | os.PathLike | None, dpi: int = 120):
    """Lay the figure out, save it when ``path`` is given, return it."""
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def plot_history(
    history: str | os.PathLike | Iterable[Mapping[str, Any]],
    *,
    loss_keys: Sequence[str] | None = None,
    metric_keys: Sequence[str] | None = None,
    x: str = "step",
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """Loss curves (left) and accuracy-like metrics (right) against ``x`` from a Trainer history.

    Args:
        history: ``Trainer.history`` or the path of its ``metrics.csv``.
        loss_keys: columns drawn on the loss panel. (default: every column whose name contains "loss")
        metric_keys: columns drawn on the metric panel. (default: every column containing "acc")
        x: the column on the horizontal axis. (default: ``"step"``)
        title: figure title.
        path: where to save the figure (PNG); None only returns it.
    """
    rows = read_rows(history)
    if not rows:
        raise ValueError("history: no rows to plot")
    columns = list(rows[0])
    loss_keys = list(loss_keys) if loss_keys is not None else [c for c in columns if "loss" in c]
    metric_keys = list(metric_keys) if metric_keys is not None else [c for c in columns if "acc" in c]
    fig, axes = _pyplot().subplots(1, 2 if metric_keys else 1, figsize=(10 if metric_keys else 5.5, 3.8), squeeze=False)
    xs = [float(r[x]) for r in rows]
    for ax, keys, label in ((axes[0, 0], loss_keys, "loss"), (axes[0, -1], metric_keys, "accuracy")):
        if ax is axes[0, -1] and not metric_keys:
            break
        for key in keys:
            pts = [(xv, float(r[key])) for xv, r in zip(xs, rows) if r.get(key) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts), label=key)
        ax.set_xlabel(x)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend()
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


# ---------------------------------------------------------------- recurrent networks (palindromes)
_CELL_COLOURS = {"rnn": "tab:blue", "lstm": "tab:orange"}


def _cell_order(cell: str):
    return (list(_CELL_COLOURS).index(cell) if cell in _CELL_COLOURS else len(_CELL_COLOURS), cell)


def _per_cell_figure(rows, empty: str):
    """``(rows, cells, fig, ax)`` for a figure with one colour per recurrent cell: the rows (read from a
    CSV when given a path; none is a ValueError ``"rows: <empty>"``), their cells in plotting order, and
    a new figure."""
    rows = read_rows(rows)
    if not rows:
        raise ValueError(f"rows: {empty}")
    fig, ax = _pyplot().subplots(figsize=(6.4, 4.0))
    return rows, sorted({str(r["cell"]) for r in rows}, key=_cell_order), fig, ax


def plot_palindrome_sweep(
    rows: str | os.PathLike | Iterable[Mapping[str, Any]],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 100,
):
    """Accuracy against palindrome length: every run a dot, the mean over seeds a line and the
    standard deviation a band, one colour per cell.

    Args:
        rows: rows with ``cell``, ``length``, ``accuracy`` (and ``seed``), or the path of a sweep's
            ``results.csv``.
        title: figure title.
        path: where to save the figure (PNG); None only returns it.
        dpi: resolution of the saved figure. (default: ``100``)
    """
    import numpy as np

    rows, cells, fig, ax = _per_cell_figure(rows, "no runs to plot")
    for k, cell in enumerate(cells):
        colour = _CELL_COLOURS.get(cell, f"C{k + 2}")
        runs = [r for r in rows if r["cell"] == cell]
        lengths = sorted({float(r["length"]) for r in runs})
        acc = [np.array([float(r["accuracy"]) for r in runs if float(r["length"]) == n]) for n in lengths]
        mean = np.array([a.mean() for a in acc])
        std = np.array([a.std() for a in acc])
        offset = (k - (len(cells) - 1) / 2) * 0.25  # keep the two cells' dots apart
        xs = [float(r["length"]) + offset for r in runs]
        ax.scatter(xs, [float(r["accuracy"]) for r in runs], s=12, alpha=0.45, color=colour, linewidths=0)
        ax.plot(lengths, mean, color=colour, label=f"{cell.upper()} (mean of {max(len(a) for a in acc)} seeds)")
        ax.fill_between(lengths, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=colour, alpha=0.2)
    ax.axhline(0.1, color="grey", lw=0.8, ls=":", label="chance (0.1)")
    ax.set_xlabel("palindrome length T")
    ax.set_ylabel("accuracy on fresh palindromes")
    ax.set_ylim(0, 1.04)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    return _finish(fig, path, dpi)


def plot_grad_norms(
    rows: str | os.PathLike | Iterable[Mapping[str, Any]],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 100,
):
    """Gradient norm of the hidden state against the time step (log scale), one colour per cell, dashed
    at initialisation and solid after training.

    Args:
        rows: rows with ``cell``, ``stage`` (``"init"`` or ``"trained"``), ``t``, ``grad_norm``, or the
            path of the CSV that ``gseq palindrome grads`` writes.
        title: figure title.
        path: where to save the figure (PNG); None only returns it.
        dpi: resolution of the saved figure. (default: ``100``)
    """
    rows, cells, fig, ax = _per_cell_figure(rows, "no gradient norms to plot")
    styles = {"init": "--", "trained": "-"}
    for k, cell in enumerate(cells):
        for stage in sorted({str(r["stage"]) for r in rows if r["cell"] == cell}, key=lambda s: s != "init"):
            pts = sorted((float(r["t"]), float(r["grad_norm"])) for r in rows
                         if r["cell"] == cell and r["stage"] == stage and float(r["grad_norm"]) > 0)
            if pts:
                ax.plot(*zip(*pts), ls=styles.get(stage, ":"), color=_CELL_COLOURS.get(cell, f"C{k + 2}"),
                        label=f"{cell.upper()}, {stage}")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(r"$\|\partial \mathcal{L} / \partial h_t\|$ (batch mean)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _finish(fig, path, dpi)


__all__ += ["plot_palindrome_sweep", "plot_grad_norms"]


def plot_hop_graph(data, source, ks: Sequence[int] = (0, 1, 2, 3), *, path: str | os.PathLike | None = None,
                   seed: int = 0):
    """The graph drawn once per ``k``: nodes within ``k`` hops of ``source`` coloured by their distance, the
    others grey, with a legend of the colours. Shows how far the features of ``source`` travel through
    ``k`` GCN layers."""
    random_seed("seed", seed)
    import networkx as nx

    from .data.graphs import hop_distances, node_index

    names = list(getattr(data, "node_names", None) or range(data.num_nodes))
    src = node_index(data, source, "source")
    dist = hop_distances(data, src)
    g = nx.DiGraph()
    g.add_nodes_from(range(data.num_nodes))
    g.add_edges_from(data.edge_index.t().tolist())
    pos = nx.spring_layout(g.to_undirected(), seed=seed)
    cmap = _pyplot().get_cmap("viridis")
    finite = dist[dist.isfinite()]
    top = max(1.0, float(finite.max())) if finite.numel() else 1.0
    grey = (0.85, 0.85, 0.85, 1.0)

    def colour(d: float):
        return cmap(0.35 + 0.65 * d / top)

    fig, axes = _pyplot().subplots(1, len(ks), figsize=(2.8 * len(ks), 3.0), squeeze=False)
    for ax, k in zip(axes[0], ks):
        colors = [colour(float(d)) if d <= k else grey for d in dist.tolist()]
        nx.draw_networkx_edges(g.to_undirected(), pos, ax=ax, alpha=0.4)
        nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=420, edgecolors="black")
        nx.draw_networkx_labels(g, pos, labels={i: str(n) for i, n in enumerate(names)}, ax=ax, font_size=9)
        reached = int((dist <= k).sum())
        ax.set_title(f"k = {k}: {reached} node{'s' if reached != 1 else ''} reached")
        ax.set_axis_off()
    fig.suptitle(f"features of {names[src]} after k GCN layers (colour: hops from {names[src]})")
    from matplotlib.lines import Line2D

    def key(color, label):
        return Line2D([], [], ls="", marker="o", markersize=11, markerfacecolor=color, markeredgecolor="black",
                      label=label)

    levels = range(int(finite.max()) + 1 if finite.numel() else 1)
    handles = [key(colour(float(d)), f"{names[src]} itself" if d == 0 else f"{d} hop{'s' if d > 1 else ''} away")
               for d in levels] + [key(grey, "not reached in k hops")]
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=len(handles), frameon=False)
    return _finish(fig, path)


def plot_depth_study(summary: Iterable[Mapping[str, Any]], *, title: str | None = None,
                     path: str | os.PathLike | None = None):
    """What depth buys, one line per (model, self-loop setting): test accuracy (mean and std band) with the
    mean receptive-field size as a fraction of the graph on a second axis (left), and the influence a node
    keeps on its own output (right). Rows without a ``model`` are the plain GCN's."""
    rows = read_rows(summary)
    fig, (ax, ax_self) = _pyplot().subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    series = sorted({(str(r.get("model") or "gcn"), str(r["self_loop_weight"])) for r in rows},
                    key=lambda mw: (mw[0], mw[1] == "learn", mw[1]))
    for model, w in series:
        rs = sorted((r for r in rows if (str(r.get("model") or "gcn"), str(r["self_loop_weight"])) == (model, w)),
                    key=lambda r: float(r["depth"]))
        d = [float(r["depth"]) for r in rs]
        m = [100 * float(r["test_acc_mean"]) for r in rs]
        s = [100 * float(r["test_acc_std"]) for r in rs]
        style = {"linestyle": "-" if model == "gcnii" else ":", "marker": "o"}
        line, = ax.plot(d, m, label=f"{model}, w = {w}", **style)
        ax.fill_between(d, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)], color=line.get_color(),
                        alpha=0.2)
        ax_self.plot(d, [100 * float(r["self_influence"]) for r in rs], color=line.get_color(),
                     label=f"{model}, w = {w}", **style)
    depths = sorted({float(r["depth"]) for r in rows})
    for a in (ax, ax_self):
        a.set_xscale("log", base=2)
        a.set_xlabel("graph layers (depth)")
        a.set_xticks(depths)
        a.set_xticklabels([f"{int(k)}" for k in depths])
        a.grid(alpha=0.3)
    ax.set_ylabel("test accuracy (%)")
    rf = {float(r["depth"]): 100 * float(r["rf_fraction"]) for r in rows}
    ax2 = ax.twinx()
    ax2.plot(sorted(rf), [rf[k] for k in sorted(rf)], color="grey", linestyle="--", marker="s", label="receptive field")
    ax2.set_ylabel("receptive field (% of nodes)", color="grey")
    ax2.set_ylim(0, 105)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower left", fontsize="small")
    ax.set_title(title or "depth: accuracy and receptive field")
    ax_self.set_ylabel("influence of a node on itself (%)")
    ax_self.set_title("self-influence")
    return _finish(fig, path)


def plot_influence_profile(profiles: Mapping[str, Sequence[float]], *, title: str | None = None,
                           path: str | os.PathLike | None = None):
    """The influence on a node's output by hop distance of the source (entry ``d``: the mass ``d`` hops
    away, ``d = 0`` the node itself), one line per model, on a log scale."""
    fig, ax = _pyplot().subplots(figsize=(6.4, 4.0))
    for label, mass in profiles.items():
        ax.plot(range(len(mass)), [100 * float(m) for m in mass], marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("hops from the node")
    ax.set_ylabel("influence on the node's output (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "influence by hop distance")
    return _finish(fig, path)


__all__ += ["plot_hop_graph", "plot_depth_study", "plot_influence_profile"]


def plot_next_char(
    probs: Mapping[str, Sequence[float]],
    chars: Sequence[str],
    *,
    top: int = 12,
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """Grouped bars of next-character distributions, e.g. ``softmax(z / T)`` at several temperatures.

    Args:
        probs: ``{label: probabilities over the vocabulary}``; the first entry orders the characters.
        chars: the vocabulary's characters, in id order (a space is drawn as ``"␣"``).
        top: how many of the most likely characters (by the first entry) to show. (default: ``12``)
        title: figure title.
        path: where to save the figure (PNG); None only returns it.
    """
    if not probs:
        raise ValueError("probs: give at least one distribution")
    labels = list(probs)
    first = [float(p) for p in probs[labels[0]]]
    if any(len(probs[k]) != len(chars) for k in labels):
        raise ValueError("probs: every distribution needs one probability per character of chars")
    order = sorted(range(len(chars)), key=lambda i: -first[i])[:top]
    fig, ax = _pyplot().subplots(figsize=(7.5, 3.4))
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        ax.bar([i + (j - (len(labels) - 1) / 2) * width for i in range(len(order))],
               [float(probs[label][k]) for k in order], width=width, label=label)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(["␣" if chars[k] == " " else chars[k] for k in order])
    ax.set_ylabel("probability")
    ax.set_xlabel("next character")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, path)


__all__ += ["plot_next_char"]


def plot_forecast(truth, predictions: Mapping[str, Any], nodes: Sequence[Any], *, title: str | None = None,
                  path: str | os.PathLike | None = None):
    """Forecasts against the truth for a few nodes: one panel per node, the snapshots along x.

    Args:
        truth: ``[T, k]`` values (a tensor or nested lists) for the ``k`` nodes in ``nodes``.
        predictions: name -> ``[T, k]`` forecasts.
        nodes: the nodes' labels.
    """
    plt = _pyplot()
    k = len(nodes)
    fig, axes = plt.subplots(k, 1, figsize=(8, 1.8 * k + 0.6), sharex=True, squeeze=False)
    for i, node in enumerate(nodes):
        ax = axes[i][0]
        ax.plot([float(row[i]) for row in truth], color="black", lw=1.5, label="truth")
        for name, pred in predictions.items():
            ax.plot([float(row[i]) for row in pred], lw=1, label=name)
        ax.set_ylabel(f"node {node}")
    axes[0][0].legend(fontsize=7, ncol=len(predictions) + 1, loc="upper right")
    axes[-1][0].set_xlabel("test snapshot")
    if title:
        axes[0][0].set_title(title)
    return _finish(fig, path)
