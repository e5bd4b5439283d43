r"""Forecasting node signals on a graph through the shared :class:`~gseq.train.Trainer`.

The signal (:func:`gseq.data.temporal_dataset` or a file) is split by time: the first ``train`` of the
snapshots for training, of which the last ``val`` validate (early stopping, keep-best), the rest for
testing. Training is truncated backpropagation through time: one optimizer step per window of
``window`` consecutive snapshots, in time order, the recurrent state carried from one window into the
next (detached), reset at the start of each epoch. Evaluation runs the model over the whole signal from
the first snapshot, so the validation and test forecasts start from the state built over the earlier
snapshots, as a deployed forecaster would.

Under ``torchrun`` the windows are sharded by rank in contiguous blocks (:class:`Windows`), and each step
averages the gradients of the ranks' windows. A rank whose block starts after the first snapshot begins
each epoch from the state that the current weights build over the earlier snapshots (run without
gradient), the state the evaluation reaches there; rank 0 begins from zeros. A checkpoint holds every
rank's carried state (:class:`CarriedState`), so a resumed run continues bitwise.

Two baselines on the same split, in the same printout: the linear autoregressive model on the lags
(:class:`gseq.models.LinearAR`, one weight vector for all nodes, least squares on all training
snapshots) and the same model without the graph (the cell on a graph without edges: each node alone,
trained with the same settings).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import TemporalConfig
from ..data import TemporalSignal, load_temporal_json, split_by_time, temporal_dataset
from ..io import write_json
from ..models import GraphForecaster, LinearAR
from ..models.temporal import check_cell_options
from ..train import Trainer, launched_env, move_to
from ..train.runtime import apply_threads

__all__ = ["train_forecaster", "forecast_metrics", "Windows", "CarriedState", "load_signal"]


def load_signal(cfg: TemporalConfig) -> TemporalSignal:
    """The configured signal: ``cfg.file`` when given, else the dataset ``cfg.dataset`` (without its
    self-loops with ``cfg.drop_self_loops``)."""
    if cfg.file is not None:
        signal = load_temporal_json(cfg.file, cfg.lags or 4, cfg.horizon, edge_weights=cfg.edge_weights)
    else:
        signal = temporal_dataset(cfg.dataset, cfg.lags, cfg.horizon, root=cfg.root, edge_weights=cfg.edge_weights)
    return signal.without_self_loops() if cfg.drop_self_loops else signal


class Windows:
    """The training windows ``(start, stop)`` of ``num_steps`` snapshots, in time order; sharded by rank in
    contiguous blocks of equal length (the last ``len % world_size`` windows are left out)."""

    def __init__(self, num_steps: int, window: int) -> None:
        self.spans = [(lo, min(lo + window, num_steps)) for lo in range(0, num_steps, window)]

    def __iter__(self):
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def shard(self, rank: int, world_size: int, *, epoch: int = 0, seed: int | None = None) -> list[tuple[int, int]]:
        per = len(self.spans) // world_size
        if per == 0:
            raise ValueError(f"window: {len(self.spans)} training windows cannot be shared by {world_size} processes; "
                             "use a smaller --window or fewer processes")
        return self.spans[rank * per:(rank + 1) * per]


class CarriedState:
    """The recurrent state carried from one training window into the next (a callback, so that the Trainer
    saves it in every checkpoint, each rank's own, and a resumed run continues with it)."""

    per_rank = True

    def __init__(self) -> None:
        self.stop: int | None = None  # the snapshot the state was carried to
        self.state: Any = None

    def state_dict(self) -> dict[str, Any]:
        return {"stop": self.stop, "state": move_to(self.state, torch.device("cpu"))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stop, self.state = state["stop"], state["state"]


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _zero_state(model: GraphForecaster, x: Tensor):
    """The zero state of ``model``'s cell for the snapshots ``x`` ``[T, N, F]``, as tensors."""
    cell = model.sequence.cell
    h = x.new_zeros(x.size(-2), cell.out_channels)
    return h if len(cell.state_names) == 1 else tuple(torch.zeros_like(h) for _ in cell.state_names)


def forecast_metrics(pred: Tensor, target: Tensor, prefix: str) -> dict[str, float]:
    """MSE and MAE over ``[T, N, H]`` (all horizons), and per horizon step when ``H > 1``."""
    err = pred - target
    out = {f"{prefix}_mse": float(err.pow(2).mean()), f"{prefix}_mae": float(err.abs().mean())}
    if err.size(-1) > 1:
        for h in range(err.size(-1)):
            out[f"{prefix}_mse_h{h + 1}"] = float(err[..., h].pow(2).mean())
            out[f"{prefix}_mae_h{h + 1}"] = float(err[..., h].abs().mean())
    return out


def _model(cfg: TemporalConfig, signal: TemporalSignal) -> GraphForecaster:
    return GraphForecaster(cfg.model, signal.x.size(-1), cfg.hidden, signal.horizon, K=cfg.K,
                           self_loop_weight=cfg.self_loop_weight,
                           ar_skip=cfg.ar_skip, dropout=cfg.dropout)


def _fit(cfg: TemporalConfig, signal: TemporalSignal, n_fit: int, n_train: int, *, use_graph: bool,
         out_dir: Path | None) -> tuple[GraphForecaster, dict[str, Any], Tensor]:
    """Train one forecaster; returns ``(model, result, predictions over the whole signal)``."""
    torch.manual_seed(cfg.seed)
    model = _model(cfg, signal)
    if cfg.ar_init:  # the AR model of the snapshots it trains on (not the validation ones), corrected by training
        model.start_from(LinearAR.fit(signal.x[:n_fit], signal.y[:n_fit]))
    carry = CarriedState()
    windows = Windows(n_fit, cfg.window)
    env = launched_env()  # under torchrun each rank walks its block of the windows: an epoch is fewer steps
    steps_per_epoch = len(windows.shard(env.rank, env.world_size)) if env is not None else len(windows)
    trainer = Trainer(model, optimizer="adam", lr=cfg.lr, weight_decay=cfg.weight_decay, max_epochs=cfg.epochs,
                      eval_every=steps_per_epoch, eval_at_start=True, monitor="val_mse", mode="min",
                      patience=cfg.patience,
                      keep_best=True, seed=cfg.seed, device=cfg.device, callbacks=[carry],
                      progress=cfg.progress and out_dir is not None, out_dir=out_dir, overwrite=cfg.overwrite,
                      config=cfg, desc=f"temporal {cfg.model}" + ("" if use_graph else " (no graph)"))
    sig = signal.to(trainer.device)
    graphs = model.graphs(sig.edge_index, sig.edge_weight, sig.num_nodes, None if not sig.dynamic else sig.num_steps,
                          use_graph=use_graph)

    spans: dict[tuple[int, int], Any] = {}  # a changing graph: each window's graphs, built (and checked) once

    def run(net, lo: int, hi: int, state):
        if graphs.dynamic and (lo, hi) != (0, sig.num_steps):  # the window's own block-diagonal input graph
            if (lo, hi) not in spans:
                spans[lo, hi] = model.graphs(sig.edge_index[lo:hi], None if sig.edge_weight is None else
                                             sig.edge_weight[lo:hi], sig.num_nodes, hi - lo, use_graph=use_graph)
            return net(sig.x[lo:hi], spans[lo, hi], state)
        return net(sig.x[lo:hi], graphs, state)

    # DDP reduces every parameter's gradient at every step, so every rank's window must use every parameter:
    # rank 0 starts from zeros as tensors (None skips the state side, leaving weight_hh unused in a 1-snapshot window)
    first = _zero_state(model, sig.x) if trainer.world_size > 1 else None

    def loss_fn(net, span):
        lo, hi = span
        if lo == 0:
            state = first
        elif carry.stop == lo:
            state = move_to(carry.state, trainer.device)
        else:  # this rank's block starts here: the state the current weights build over the earlier snapshots
            with torch.no_grad():
                _, state = run(model, 0, lo, None)
        pred, state = run(net, lo, hi, state)
        carry.stop, carry.state = hi, _detach(state)
        return torch.mean((pred - sig.y[lo:hi]) ** 2)

    def predict(net) -> Tensor:
        return run(net, 0, sig.num_steps, None)[0]

    def evaluate(net):
        pred = predict(net)
        return forecast_metrics(pred[n_fit:n_train], sig.y[n_fit:n_train], "val")

    result = trainer.fit(loss_fn, windows, evaluate, resume=cfg.resume and out_dir is not None)
    with torch.no_grad():
        model.eval()
        pred = predict(model).cpu()
    return model, result, pred


def train_forecaster(dataset: str | TemporalConfig = TemporalConfig.dataset, **settings: Any) -> dict[str, Any]:
    """Train a recurrent graph forecaster (and its baselines) on a temporal signal.

    Args:
        dataset: a dataset name, or a whole :class:`~gseq.config.TemporalConfig`.
            (default: ``"chickenpox"``, shipped with gseq)
        **settings: the fields of :class:`~gseq.config.TemporalConfig` (``model="dcrnn"``,
            ``train=0.8``, ``val=0.1``, ``window=4``, ``epochs=200``, ``patience=20``, ``out_dir=None``, ...).

    Returns:
        ``{"model", "config", "result", "metrics", "baselines", "predictions", "signal", "split"}``:
        ``metrics`` the model's ``test_mse`` / ``test_mae`` (per horizon when > 1) and its best
        ``val_mse``, ``baselines`` ``{"ar": ..., "no_graph": ...}`` with the same keys, ``predictions``
        ``[T, N, horizon]`` over the whole signal.

    Raises:
        ValueError: a setting is out of range, the file is malformed, or the split leaves a part empty
            (each named before training starts).
    """
    cfg = dataset.with_changes(**settings) if isinstance(dataset, TemporalConfig) else \
        TemporalConfig(dataset=dataset, **settings)
    apply_threads(cfg.threads)
    try:  # the data layer and the model name their arguments (lags, train, ...): say them as the caller did
        signal = load_signal(cfg)
        fit, val, test = split_by_time(signal, cfg.train, cfg.val)
        check_cell_options(cfg.model, cfg.K, cfg.self_loop_weight, signal.edge_index, signal.num_nodes)
    except ValueError as err:
        raise ValueError(_spelled(str(err), cfg)) from None
    if val is None:
        raise ValueError(f"{cfg.name('val')}: no validation snapshots; early stopping needs at least one")
    n_fit, n_train = fit.num_steps, fit.num_steps + val.num_steps
    cfg.derived.update(snapshots=signal.num_steps, nodes=signal.num_nodes, features=signal.x.size(-1))
    out = Path(cfg.out_dir) if cfg.out_dir is not None else None

    model, result, pred = _fit(cfg, signal, n_fit, n_train, use_graph=True, out_dir=out)
    y = signal.y
    metrics = {**forecast_metrics(pred[n_train:], y[n_train:], "test"), "best_val_mse": result["best_metric"],
               "epochs": result["epoch"], "stop_reason": result["stop_reason"]}
    baselines: dict[str, Any] = {}
    preds = {cfg.model: pred}
    if cfg.baselines:
        ar = LinearAR.fit(signal.x[:n_train], y[:n_train])
        with torch.no_grad():
            ar_pred = ar(signal.x)
        baselines["ar"] = forecast_metrics(ar_pred[n_train:], y[n_train:], "test")
        _, res_ng, pred_ng = _fit(cfg.with_changes(resume=False, overwrite=False), signal, n_fit, n_train,
                                     use_graph=False, out_dir=None)
        baselines["no_graph"] = {**forecast_metrics(pred_ng[n_train:], y[n_train:], "test"),
                                 "best_val_mse": res_ng["best_metric"], "epochs": res_ng["epoch"]}
        preds.update(ar=ar_pred, no_graph=pred_ng)
    split = {"train": n_fit, "val": n_train - n_fit, "test": signal.num_steps - n_train}
    if out is not None:
        write_json(out / "results.json", {"config": cfg.to_dict(), "split": split, **metrics, "baselines": baselines})
        _forecast_figure(out / "forecast.png", signal, preds, n_train, cfg)
    return {"model": model, "config": cfg, "result": result, "metrics": metrics, "baselines": baselines,
            "predictions": pred, "signal": signal, "split": split}


def _spelled(message: str, cfg: TemporalConfig) -> str:
    for name in ("lags", "train", "val", "horizon", "K", "self_loop_weight"):
        message = message.replace(f"{name}: ", f"{cfg.name(name)}: ", 1) if f"{name}: " in message else message
    return message


def _forecast_figure(path: os.PathLike, signal: TemporalSignal, preds: dict[str, Tensor], n_train: int,
                     cfg: TemporalConfig) -> None:
    from ..plots import plot_forecast

    nodes = list(range(min(4, signal.num_nodes)))
    name = cfg.file or cfg.dataset
    plot_forecast(signal.y[n_train:, nodes, 0], {k: v[n_train:, nodes, 0] for k, v in preds.items()}, nodes,
                  title=f"{Path(name).name}: one step ahead on the test snapshots", path=path)
