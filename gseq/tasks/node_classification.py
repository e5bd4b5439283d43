"""Node classification: train a :class:`~gseq.models.GCNNet` on one graph through the shared
:class:`~gseq.train.Trainer`, full-batch (:func:`train_node_classifier`) or on sampled subgraphs
(:func:`train_node_classifier_minibatch`, :class:`~gseq.loader.NeighborLoader`, exact evaluation by
:meth:`~gseq.models.GCNNet.inference`); both report the test accuracy of the epoch with the best
validation accuracy.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from ..checks import instance, positive_int, random_seed
from ..loader import NeighborLoader
from ..models.gcn_net import GCNNet, sparse_features
from ..train import Trainer, launched_env, seed_everything, training_device

__all__ = ["train_node_classifier", "train_node_classifier_minibatch"]


def _accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> float:
    return float((logits[mask].argmax(-1) == y[mask]).float().mean()) if bool(mask.any()) else float("nan")


def _check_data(data: Data, epochs: int) -> None:
    """Refuse a graph that would train silently wrong or fail inside torch: float features (finite: a NaN
    would surface as a NaN loss blamed on the learning rate), class labels >= 0, masks of every node."""
    positive_int("epochs", epochs)
    instance("data", data, Data, "a torch_geometric.data.Data")
    x, y = getattr(data, "x", None), getattr(data, "y", None)
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point() or x.size(0) == 0:
        raise ValueError(f"data.x: expected node features as a floating [num_nodes >= 1, num_features] tensor, got "
                         f"{_describe(x)}; convert integer features with x.float()")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("data.x: holds NaN or infinite values; clean or impute the features first")
    n = x.size(0)
    if not isinstance(y, Tensor) or y.shape != (n,) or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"data.y: expected integer class labels of shape [{n}] (one per row of x), got {_describe(y)}")
    if bool((y < 0).any()):
        raise ValueError(f"data.y: class labels must be >= 0, got a minimum of {int(y.min())}")
    for mask in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, mask, None)
        if m is None:
            raise ValueError(f"data: needs a boolean {mask}; use gseq.data.planetoid() or add the masks")
        if not isinstance(m, Tensor) or m.dtype != torch.bool or m.shape != (n,):
            raise ValueError(f"data.{mask}: expected a boolean mask of shape [{n}], got {_describe(m)}")
    if not bool(data.train_mask.any()):
        raise ValueError("data.train_mask: selects no node; mark at least one node for training")


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    return "None" if value is None else type(value).__name__


def _scores(out: Tensor, graph: Data) -> dict[str, Any]:
    """What an evaluation reports from the logits ``out`` of every node: validation loss, the accuracies."""
    return {
        "val_loss": F.cross_entropy(out[graph.val_mask], graph.y[graph.val_mask]),
        "train_acc": _accuracy(out, graph.y, graph.train_mask),
        "val_acc": _accuracy(out, graph.y, graph.val_mask),
        "test_acc": _accuracy(out, graph.y, graph.test_mask),
    }


def _result(trainer, model, best: dict[str, Any], best_epoch: int, start: float) -> dict[str, Any]:
    """What a training function returns: the accuracies of the ``best`` evaluation row, and the run."""
    return {
        "test_acc": best["test_acc"], "val_acc": best["val_acc"], "train_acc": best["train_acc"],
        "best_epoch": best_epoch, "seconds": time.perf_counter() - start,
        "self_loop_weights": model.self_loop_weights(), "history": trainer.history, "model": model,
    }


def train_node_classifier(
    data: Data,
    *,
    num_layers: int = 2,
    hidden_channels: int = 16,
    dropout: float = 0.5,
    self_loop_weight: float | str = 1.0,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    out_dir: str | None = None,
    overwrite: bool = False,
    callbacks=(),
    sparse_input: bool | None = None,
) -> dict[str, Any]:
    """Train a :class:`~gseq.models.GCNNet` full-batch with Adam and return its accuracies.

    Kipf & Welling's settings by default: 2 layers, 16 hidden, dropout 0.5, Adam lr 0.01, weight decay
    5e-4 on the first layer, 200 epochs. The reported ``test_acc`` is that of the epoch with the best
    validation accuracy (the first such epoch), as PyG's ``examples/gcn.py`` reports it.

    ``sparse_input`` feeds the features as a sparse CSR matrix (the first layer becomes a sparse-dense
    product and input dropout touches only stored entries, as in Kipf's code); None chooses it on the
    CPU when fewer than 10% of the features are non-zero (Cora: 1.3%).

    ``out_dir`` receives the Trainer's ``metrics.csv``, ``config.json`` and ``checkpoint.pt``; a checkpoint
    already there is only replaced with ``overwrite=True``.

    Returns:
        ``{"test_acc", "val_acc", "train_acc", "best_epoch", "seconds", "self_loop_weights", "history"}``.
    """
    random_seed("seed", seed)
    _check_data(data, epochs)
    seed_everything(seed)
    model = GCNNet(data.num_features, int(data.y.max()) + 1, hidden_channels=hidden_channels, num_layers=num_layers,
                   dropout=dropout, self_loop_weight=self_loop_weight, cached=True)
    trainer = Trainer(
        model, optimizer="adam", lr=lr, param_groups=lambda m: m.param_groups(weight_decay), max_steps=epochs,
        eval_every=1, monitor="val_acc", mode="max", keep_best=True, seed=seed, device=device, progress=progress,
        out_dir=out_dir, overwrite=overwrite, callbacks=callbacks, desc="gcn",
        config={"task": "node_classification", "dataset": getattr(data, "name", None), "num_layers": num_layers,
                "hidden_channels": hidden_channels, "dropout": dropout, "self_loop_weight": self_loop_weight,
                "epochs": epochs, "weight_decay_first_layer": weight_decay},
    )

    graph = data.to(trainer.device)
    if sparse_input is None:
        sparse_input = trainer.device.type == "cpu" and float((graph.x != 0).float().mean()) < 0.1
    features = sparse_features(graph.x) if sparse_input else graph.x

    def loss_fn(model, g):
        out = model(features, g.edge_index, getattr(g, "edge_weight", None))
        return F.cross_entropy(out[g.train_mask], g.y[g.train_mask])

    def evaluate(model):
        return _scores(model(features, graph.edge_index, getattr(graph, "edge_weight", None)), graph)

    start = time.perf_counter()
    result = trainer.fit(loss_fn, lambda g: graph, evaluate)
    best = next(row for row in trainer.history if row["step"] == result["best_step"])
    return _result(trainer, model, best, result["best_step"], start)


def train_node_classifier_minibatch(
    data: Data,
    *,
    num_neighbors: tuple[int, ...] | list[int] = (10, 10),
    batch_size: int = 1024,
    replace: bool = False,
    eval_batch_size: int = 4096,
    eval_every: int = 1,
    num_layers: int = 2,
    hidden_channels: int = 16,
    dropout: float = 0.5,
    self_loop_weight: float | str = 1.0,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    out_dir: str | None = None,
    overwrite: bool = False,
    callbacks=(),
    sparse_input: bool | None = None,
) -> dict[str, Any]:
    """Train a :class:`~gseq.models.GCNNet` on sampled subgraphs and evaluate it exactly by layer-wise
    inference.

    Each epoch walks the training nodes in shuffled batches of ``batch_size`` seeds; every batch is the
    seeds' sampled ``num_layers``-hop neighbourhood (:class:`~gseq.loader.NeighborLoader`, one fan-out
    per layer), and the loss is the cross-entropy of the seeds' logits, PyG's pattern
    ``model(batch.x, batch.edge_index)[:batch.batch_size]``. As with PyG's ``GCNConv`` on sampled
    subgraphs, each layer normalises by the degrees *within the sampled subgraph*; evaluation
    (every ``eval_every`` epochs) runs :meth:`~gseq.models.GCNNet.inference` on the full graph, with the
    full graph's degrees. The other settings (``sparse_input`` included: the loader then slices rows of the
    sparse CSR features), and the reported ``test_acc`` (at the epoch of best validation accuracy),
    are those of :func:`train_node_classifier`. The sampling generator lives on the training device and
    is seeded with ``seed``.

    Returns:
        ``{"test_acc", "val_acc", "train_acc", "best_epoch", "seconds", "self_loop_weights", "history",
        "model"}``; ``best_epoch`` counts epochs.
    """
    random_seed("seed", seed)
    _check_data(data, epochs)
    num_neighbors = list(num_neighbors)
    if len(num_neighbors) != num_layers:
        raise ValueError(f"num_neighbors: give one fan-out per layer ({num_layers} layers), got {num_neighbors}")
    positive_int("eval_every", eval_every, hint=" (epochs)")
    seed_everything(seed)
    dev = training_device(device)  # under torchrun: this rank's device
    graph = data.to(dev)
    if sparse_input is None:
        sparse_input = dev.type == "cpu" and float((graph.x != 0).float().mean()) < 0.1
    if sparse_input:
        graph = copy.copy(graph)  # a new store sharing the tensors: the caller's Data keeps its x
        graph.x = sparse_features(graph.x)
    generator = torch.Generator(device=dev).manual_seed(seed)
    loader = NeighborLoader(graph, num_neighbors, input_nodes=graph.train_mask, batch_size=batch_size,
                            shuffle=True, replace=replace, generator=generator)
    env = launched_env()  # under torchrun each rank walks its share of the seeds: an epoch is fewer steps
    steps_per_epoch = len(loader.shard(env.rank, env.world_size)) if env is not None else len(loader)
    # cached=False: every batch is another graph
    model = GCNNet(data.num_features, int(data.y.max()) + 1, hidden_channels=hidden_channels, num_layers=num_layers,
                   dropout=dropout, self_loop_weight=self_loop_weight, cached=False)
    trainer = Trainer(
        model, optimizer="adam", lr=lr, param_groups=lambda m: m.param_groups(weight_decay), max_epochs=epochs,
        eval_every=eval_every * steps_per_epoch, monitor="val_acc", mode="max", keep_best=True, seed=seed, device=dev,
        progress=progress, out_dir=out_dir, overwrite=overwrite, callbacks=callbacks, desc="gcn",
        config={"task": "node_classification", "dataset": getattr(data, "name", None), "num_layers": num_layers,
                "hidden_channels": hidden_channels, "dropout": dropout, "self_loop_weight": self_loop_weight,
                "epochs": epochs, "weight_decay_first_layer": weight_decay, "batch_size": batch_size,
                "num_neighbors": num_neighbors, "replace": replace},
    )

    def loss_fn(model, batch):
        out = model(batch.x, batch.edge_index, getattr(batch, "edge_weight", None))[:batch.batch_size]
        return F.cross_entropy(out, batch.y[:batch.batch_size])

    def evaluate(model):
        return _scores(model.inference(graph, eval_batch_size), graph)

    start = time.perf_counter()
    result = trainer.fit(loss_fn, loader, evaluate)
    best = next(row for row in trainer.history if row["step"] == result["best_step"])
    return _result(trainer, model, best, best["epoch"], start)
