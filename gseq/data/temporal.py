r"""Temporal signals on graphs: node features that change in time over a fixed graph or a graph per
snapshot, windows of lags, splits by time, and the published datasets of PyTorch Geometric Temporal.

A :class:`TemporalSignal` holds T snapshots: features ``x`` ``[T, N, F]``, targets ``y`` ``[T, N, H]``
(H the forecast horizon), and either one graph (``edge_index`` ``[2, E]``) or one per snapshot (a list of
T). :func:`lag_signal` turns a series ``[T0, N]`` into one by sliding windows: snapshot ``t`` has the
features ``series[t : t + lags]`` (one per lag, oldest first) and the targets ``series[t + lags : t +
lags + horizon]``, as PGT's loaders build them (for ``horizon=1`` the same arrays). On a changing graph,
snapshot ``t`` is read with the graph of its last observed day, ``t + lags - 1`` (PGT's England loader
uses day ``t``, the window's first day).

:func:`temporal_dataset` reads ``chickenpox`` (shipped inside gseq), ``pedalme`` and ``england_covid``
(from ``$GSEQ_DATA/temporal`` or ``root``), or any JSON file in PGT's layouts (:func:`load_temporal_json`).

Edge weights: published weights are sometimes similarities and sometimes distances (road lengths,
travel times). ``edge_weights=`` says which: ``"similarity"`` (the default) divides the weights by their
largest value, so they lie in (0, 1] whatever their scale (the symmetric and random-walk normalisations
ignore a common scale anyway; a GCN's self-loop of weight 1 then weighs as much as the strongest
edge); ``"distance"`` turns distances into similarities with the Gaussian kernel
:math:`\exp(-(d / \sigma)^2)`, :math:`\sigma` the standard deviation of the distances (Li et al. 2018);
``"raw"`` keeps them as published; ``"none"`` drops them (every edge weighs 1).
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checks import choice, in_range, positive_int

__all__ = ["TemporalSignal", "lag_signal", "split_by_time", "temporal_dataset", "load_temporal_json",
           "TEMPORAL_DATASETS", "EDGE_WEIGHTS"]

#: the published datasets by name: (file under $GSEQ_DATA/temporal, default lags, shipped with gseq)
TEMPORAL_DATASETS = {"chickenpox": ("chickenpox.json", 4, True), "pedalme": ("pedalme_london.json", 4, False),
                     "england_covid": ("england_covid.json", 8, False)}
#: what ``edge_weights=`` may say about the published weights
EDGE_WEIGHTS = ("similarity", "distance", "raw", "none")


def _check_edges(edge_index: Any, edge_weight: Any, num_nodes: int, where: str = "") -> tuple[Tensor, Tensor | None]:
    """One graph's edges (and weights) checked; ``where`` (e.g. ``" (snapshot 3)"``) follows the argument's name."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2 \
            or edge_index.is_floating_point():
        raise ValueError(f"edge_index{where}: expected an integer tensor of shape [2, E], got "
                         f"{getattr(edge_index, 'shape', type(edge_index).__name__)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index{where}: node ids must lie in [0, {num_nodes}) for {num_nodes} nodes, found "
                         f"[{int(edge_index.min())}, {int(edge_index.max())}]")
    if edge_weight is not None:
        if not isinstance(edge_weight, Tensor) or edge_weight.shape != (edge_index.size(1),):
            raise ValueError(f"edge_weight{where}: expected {edge_index.size(1)} edge weights (one per edge), got "
                             f"{getattr(edge_weight, 'shape', type(edge_weight).__name__)}")
        if not bool(torch.isfinite(edge_weight).all()):
            raise ValueError(f"edge_weight{where}: edge weights must be finite, found NaN or inf")
    return edge_index.long(), edge_weight


def _check_finite(t: Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: the signal holds NaN or inf; fill or drop the missing values first")


@dataclass(eq=False)
class TemporalSignal:
    """T snapshots of node features and targets over one graph or a graph per snapshot (validated once,
    when built).

    Attributes:
        x: features ``[T, N, F]``.
        y: targets ``[T, N, H]`` (H steps ahead).
        edge_index: ``[2, E]``, or a list of T ``[2, E_t]`` (a graph per snapshot).
        edge_weight: ``[E]`` (a list of T for a changing graph), or None for ones.
    """

    x: Tensor
    y: Tensor
    edge_index: Tensor | list[Tensor]
    edge_weight: Tensor | list[Tensor | None] | None = None

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, Tensor) or x.dim() != 3 or not x.is_floating_point():
            raise ValueError(f"x: expected floating features [T, N, F], got {getattr(x, 'shape', type(x).__name__)}")
        if not isinstance(y, Tensor) or y.dim() != 3 or not y.is_floating_point():
            raise ValueError(f"y: expected floating targets [T, N, horizon], got {getattr(y, 'shape', type(y).__name__)}")
        if y.shape[:2] != x.shape[:2]:
            raise ValueError(f"y: targets {list(y.shape)} do not match the features {list(x.shape)} in T (snapshots) "
                             "and N (nodes); give one target row per snapshot and node")
        _check_finite(x, "x")
        _check_finite(y, "y")
        n = x.size(1)
        if isinstance(self.edge_index, (list, tuple)):
            if len(self.edge_index) != x.size(0):
                raise ValueError(f"edge_index: {len(self.edge_index)} snapshots of edges for T = {x.size(0)} snapshots")
            weights = self.edge_weight if self.edge_weight is not None else [None] * len(self.edge_index)
            if not isinstance(weights, (list, tuple)) or len(weights) != len(self.edge_index):
                raise ValueError("edge_weight: expected a list with one weight tensor (or None) per snapshot")
            checked = [_check_edges(ei, w, n, f" (snapshot {t})")
                       for t, (ei, w) in enumerate(zip(self.edge_index, weights))]
            self.edge_index = [c[0] for c in checked]
            self.edge_weight = None if self.edge_weight is None else [c[1] for c in checked]
        else:
            self.edge_index, self.edge_weight = _check_edges(self.edge_index, self.edge_weight, n)

    @property
    def num_steps(self) -> int:
        return self.x.size(0)

    @property
    def num_nodes(self) -> int:
        return self.x.size(1)

    @property
    def horizon(self) -> int:
        return self.y.size(2)

    @property
    def dynamic(self) -> bool:
        return isinstance(self.edge_index, list)

    def __len__(self) -> int:
        return self.num_steps

    def window(self, start: int, stop: int) -> "TemporalSignal":
        """Snapshots ``start:stop`` (their graphs too, for a changing graph), not validated again."""
        out = object.__new__(TemporalSignal)
        out.x, out.y = self.x[start:stop], self.y[start:stop]
        if self.dynamic:
            out.edge_index = self.edge_index[start:stop]
            out.edge_weight = None if self.edge_weight is None else self.edge_weight[start:stop]
        else:
            out.edge_index, out.edge_weight = self.edge_index, self.edge_weight
        return out

    def without_self_loops(self) -> "TemporalSignal":
        """The same signal on its graph(s) without self-loops (edges ``i -> i`` and their weights removed),
        so that a GCN's self-loop weight weighs every node (``torch_geometric.utils.remove_self_loops`` on
        each graph)."""
        from torch_geometric.utils import remove_self_loops as drop

        out = self.window(0, self.num_steps)
        if self.dynamic:
            weights = self.edge_weight if self.edge_weight is not None else [None] * self.num_steps
            pairs = [drop(ei, w) for ei, w in zip(self.edge_index, weights)]
            out.edge_index = [p[0] for p in pairs]
            out.edge_weight = None if self.edge_weight is None else [p[1] for p in pairs]
        else:
            out.edge_index, out.edge_weight = drop(self.edge_index, self.edge_weight)
        return out

    def to(self, device: torch.device | str) -> "TemporalSignal":
        out = self.window(0, self.num_steps)
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        out.x, out.y = out.x.to(device), out.y.to(device)
        if self.dynamic:
            out.edge_index = [move(e) for e in out.edge_index]
            out.edge_weight = None if out.edge_weight is None else [move(w) for w in out.edge_weight]
        else:
            out.edge_index, out.edge_weight = move(out.edge_index), move(out.edge_weight)
        return out


def lag_signal(series: Tensor, edge_index: Tensor | list[Tensor], edge_weight=None, lags: int = 4,
               horizon: int = 1) -> TemporalSignal:
    """Sliding windows over ``series`` ``[T0, N]``: snapshot ``t`` has the features ``series[t:t+lags]``
    (``[N, lags]``, oldest first) and the targets ``series[t+lags : t+lags+horizon]`` (``[N, horizon]``),
    for ``T = T0 - lags - horizon + 1`` snapshots. A changing graph (a list of ``T0`` edge sets, one per
    row of ``series``) gives snapshot ``t`` the graph of row ``t + lags - 1``, its last observed row."""
    if not isinstance(series, Tensor) or series.dim() != 2 or not series.is_floating_point():
        raise ValueError(f"series: expected a floating tensor [time, nodes], got "
                         f"{getattr(series, 'shape', type(series).__name__)}")
    _check_finite(series, "series")
    lags, horizon = positive_int("lags", lags), positive_int("horizon", horizon)
    t0 = series.size(0)
    if lags + horizon > t0:
        raise ValueError(f"lags: {lags} lags and a horizon of {horizon} need more than the {t0} time steps of the "
                         f"series (lags + horizon <= T); use fewer lags")
    T = t0 - lags - horizon + 1
    x = series.unfold(0, lags, 1)[:T]  # [T, N, lags]
    y = series[lags:].unfold(0, horizon, 1)[:T]  # [T, N, horizon]
    if isinstance(edge_index, (list, tuple)):
        if len(edge_index) != t0:
            raise ValueError(f"edge_index: {len(edge_index)} edge sets for a series of {t0} time steps; give one per step")
        weights = edge_weight if edge_weight is not None else [None] * t0
        if not isinstance(weights, (list, tuple)) or len(weights) != t0:
            raise ValueError(f"edge_weight: expected a list with one weight tensor (or None) per time step ({t0})")
        for t, (ei, w) in enumerate(zip(edge_index, weights)):  # every step's, also those no snapshot reads
            _check_edges(ei, w, series.size(1), f" (time step {t})")
        edge_index = list(edge_index[lags - 1: lags - 1 + T])
        if edge_weight is not None:
            edge_weight = list(edge_weight[lags - 1: lags - 1 + T])
    return TemporalSignal(x.contiguous(), y.contiguous(), edge_index, edge_weight)


def split_by_time(signal: TemporalSignal, train: float = 0.8, val: float = 0.0
                  ) -> tuple[TemporalSignal, TemporalSignal | None, TemporalSignal]:
    """``(train, val, test)`` by time, earlier snapshots first: the first ``int(train * T)`` snapshots
    train (PGT's ``temporal_signal_split``), of which the last ``int(val * n_train)`` (at least one when
    ``val > 0``) validate (``val=0``: None); the rest test.

    Raises:
        ValueError: a part would be empty (naming the ratio to change).
    """
    train = in_range("train", train, 0.0, 1.0, low_open=True, high_open=True)
    val = in_range("val", val, 0.0, 1.0, high_open=True)
    T = signal.num_steps
    n_train = int(train * T)
    n_val = max(1, int(val * n_train)) if val > 0 else 0
    if n_train < 1 or n_train >= T:
        raise ValueError(f"train: a ratio of {train} leaves {n_train} training and {T - n_train} test snapshots of "
                         f"{T}; each part needs at least one")
    if n_train - n_val < 1:
        raise ValueError(f"val: {n_val} of the {n_train} training snapshots would validate, leaving none to fit; "
                         "raise train or use val=0")
    fit = signal.window(0, n_train - n_val)
    return fit, (signal.window(n_train - n_val, n_train) if n_val else None), signal.window(n_train, T)


# ---------------------------------------------------------------- files
def _weights(w: Tensor | None, how: str) -> Tensor | None:
    if w is None or how == "raw":
        return w
    if how == "none":
        return None
    if how == "distance":
        sigma = w.std() if w.numel() > 1 and float(w.std()) > 0 else w.abs().max().clamp(min=1e-12)
        return torch.exp(-(w / sigma) ** 2)
    if float(w.min()) < 0:
        raise ValueError("edge_weights: 'similarity' needs weights >= 0, found negative ones; pass "
                         "edge_weights='raw' to keep them as they are")
    top = w.max()
    return w / top if float(top) > 0 else w


def _tensor(data: dict, key: str, path: Path, dtype=torch.float32) -> Tensor:
    try:
        return torch.tensor(data[key], dtype=dtype)
    except KeyError:
        raise ValueError(f"{path}: missing key {key!r}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: key {key!r} is not a rectangular array of numbers ({e})") from None


def _edge_list(raw: Any, key: str, path: Path) -> Tensor:
    try:
        t = torch.tensor(raw, dtype=torch.long)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: key {key!r} is not a list of [source, target] pairs ({e})") from None
    if t.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long)
    if t.dim() != 2 or t.size(1) != 2:
        raise ValueError(f"{path}: key {key!r} must be a list of [source, target] pairs, got shape {list(t.shape)}")
    return t.t().contiguous()


def _read_json(path: Path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with the keys 'edges' and 'X' (or 'FX'), got "
                         f"{type(data).__name__}")
    return data


def load_temporal_json(path: str | os.PathLike, lags: int = 4, horizon: int = 1, *,
                       edge_weights: str = "similarity", standardize: bool = False) -> TemporalSignal:
    """A :class:`TemporalSignal` from a JSON file (``.json`` or ``.json.gz``) in one of PGT's layouts.

    - static graph: ``edges`` (``[[source, target], ...]``), optional ``weights`` (one per edge), and the
      series as ``X`` or ``FX`` (time x nodes);
    - a graph per time step: ``edge_mapping`` with ``edge_index`` and ``edge_weight`` keyed by the step
      (``"0"``, ``"1"``, ...), and the series as ``y`` (time x nodes).

    Args:
        path: the file.
        lags, horizon: as :func:`lag_signal`. (default: ``4``, ``1``)
        edge_weights: ``"similarity"``, ``"distance"``, ``"raw"`` or ``"none"`` (module docstring).
            (default: ``"similarity"``)
        standardize: z-score each node's series over the whole file (as PGT's England loader does; it
            uses the test period's statistics too). (default: ``False``)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no file {path}")
    choice("edge_weights", edge_weights, EDGE_WEIGHTS)
    data = _read_json(path)
    if "edge_mapping" in data:
        key = "y"
        series = _tensor(data, key, path)
        mapping = data["edge_mapping"]
        if not isinstance(mapping, dict) or "edge_index" not in mapping:
            raise ValueError(f"{path}: key 'edge_mapping' must hold 'edge_index' (and 'edge_weight') keyed by time step")
        edges, weights = [], []
        for t in range(series.size(0) if series.dim() == 2 else 0):
            if str(t) not in mapping["edge_index"]:
                raise ValueError(f"{path}: key 'edge_mapping/edge_index' has no edges for time step {t}")
            edges.append(_edge_list(mapping["edge_index"][str(t)], f"edge_mapping/edge_index/{t}", path))
            w = mapping.get("edge_weight", {}).get(str(t))
            weights.append(None if w is None else _weights(torch.tensor(w, dtype=torch.float32), edge_weights))
        edge_index: Any = edges
        edge_weight: Any = None if all(w is None for w in weights) else weights
    else:
        key = "X" if "X" in data else "FX" if "FX" in data else None
        if key is None:
            raise ValueError(f"{path}: missing key 'X' (or 'FX'): the series, time x nodes")
        series = _tensor(data, key, path)
        if "edges" not in data:
            raise ValueError(f"{path}: missing key 'edges': the [source, target] pairs of the graph")
        edge_index = _edge_list(data["edges"], "edges", path)
        edge_weight = _weights(_tensor(data, "weights", path), edge_weights) if "weights" in data else None
        if edge_weight is not None and edge_weight.shape != (edge_index.size(1),):
            raise ValueError(f"{path}: key 'weights' has {edge_weight.numel()} entries for {edge_index.size(1)} edges")
    if series.dim() != 2:
        raise ValueError(f"{path}: the series must be time x nodes (two-dimensional), got shape {list(series.shape)}")
    _check_finite(series, f"{path}: key {key!r}")
    if standardize:
        series = (series - series.mean(0)) / (series.std(0, unbiased=False) + 1e-10)
    try:
        return lag_signal(series, edge_index, edge_weight, lags, horizon)
    except ValueError as e:  # the caller's lags or horizon come first; what the file holds, after its path
        raise ValueError(f"{e} ({path})" if str(e).startswith(("lags: ", "horizon: ")) else f"{path}: {e}") from None


def _bundled(file: str) -> Path:
    return Path(str(resources.files(__package__).joinpath("_bundled", "temporal", file + ".gz")))


def temporal_dataset(name: str, lags: int | None = None, horizon: int = 1, *, root: str | os.PathLike | None = None,
                     edge_weights: str = "similarity") -> TemporalSignal:
    """A published temporal dataset as a :class:`TemporalSignal` (PGT's arrays for ``horizon=1``).

    - ``"chickenpox"``: weekly chickenpox cases in the 20 counties of Hungary, 2005-2015 (521 weeks,
      z-scored per county), county adjacency (Rozemberczki et al. 2021, CC BY 4.0). Ships with gseq.
    - ``"pedalme"``: weekly PedalMe bicycle deliveries in 15 areas of London (35 weeks), weighted graph.
    - ``"england_covid"``: daily COVID-19 cases in 129 regions of England (61 days), a weighted graph of
      movements per day (Panagopoulos et al. 2021); z-scored per region as PGT does.

    Looked for in ``root``, then ``$GSEQ_DATA/temporal``, then (chickenpox) the copy in the package.

    Args:
        name: one of :data:`TEMPORAL_DATASETS`.
        lags: lags per snapshot. (default: PGT's, 4, 4 and 8)
        horizon: steps ahead to predict. (default: ``1``)
        root: a folder holding the file. (default: ``None``)
        edge_weights: see :func:`load_temporal_json`. (default: ``"similarity"``)
    """
    file, default_lags, shipped = TEMPORAL_DATASETS[choice("name", name, TEMPORAL_DATASETS)]
    candidates = [Path(root)] if root is not None else []
    if os.environ.get("GSEQ_DATA"):
        candidates.append(Path(os.environ["GSEQ_DATA"]) / "temporal")
    found = next((c / file for c in candidates if (c / file).is_file()), None)
    if found is None and shipped:
        found = _bundled(file)
    if found is None:
        where = ", ".join(str(c) for c in candidates) or "nowhere (no root, GSEQ_DATA unset)"
        raise FileNotFoundError(f"name: {file} for {name!r} not found (looked in {where}); set GSEQ_DATA=/path/to/data "
                                f"holding temporal/{file}, or pass root=DIR (or the file itself as a path)")
    return load_temporal_json(found, default_lags if lags is None else lags, horizon,
                              edge_weights=edge_weights, standardize=name == "england_covid")
