"""Matplotlib figures from metrics histories and CSV files.

Every function takes plain data (a list of dict rows, or the path of a CSV that gseq wrote), draws one
figure, saves it atomically when ``path`` is given, and returns the ``Figure``. Matplotlib runs with
the non-interactive Agg backend unless one was chosen before.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

if "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .train.io import atomic_write_bytes  # noqa: E402

__all__ = ["read_rows", "save_figure", "plot_history"]


def read_rows(source: str | os.PathLike | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows from a CSV path (numbers parsed as float) or from an iterable of dicts (copied)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, newline="") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return [dict(row) for row in source]


def _number(text: str) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG (or the suffix's format) atomically."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


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
    fig, axes = plt.subplots(1, 2 if metric_keys else 1, figsize=(10 if metric_keys else 5.5, 3.8), squeeze=False)
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
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
