"""Node classification: train a :class:`~gseq.models.GCNNet` on one graph through the shared
:class:`~gseq.train.Trainer` (:func:`train_node_classifier`), full-batch or on sampled subgraphs
(``batch_size``: :class:`~gseq.loader.NeighborLoader`, exact evaluation by
:meth:`~gseq.models.GCNNet.inference`), reporting the test accuracy of the epoch with the best validation
accuracy. The settings are :class:`~gseq.config.NodeClassificationConfig`'s fields.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from ..checks import instance
from ..config import NodeClassificationConfig
from ..loader import NeighborLoader
from ..models.gcn_net import GCNNet, sparse_features
from ..train import Trainer, apply_threads, launched_env, seed_everything, training_device

__all__ = ["train_node_classifier", "train_node_classifier_minibatch"]


def _accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> float:
    return float((logits[mask].argmax(-1) == y[mask]).float().mean()) if bool(mask.any()) else float("nan")


def _check_data(data: Data) -> None:
    """Refuse a graph that would train silently wrong or fail inside torch: float features (finite: a NaN
    would surface as a NaN loss blamed on the learning rate), class labels >= 0, masks of every node."""
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


def train_node_classifier(data: Data, *, callbacks=(), **settings: Any) -> dict[str, Any]:
    """Train a :class:`~gseq.models.GCNNet` on ``data`` with Adam and return its accuracies.

    The settings are the fields of :class:`~gseq.config.NodeClassificationConfig` (keywords, or a whole
    config as ``config=``): Kipf & Welling's by default (2 layers, 16 hidden, dropout 0.5, Adam lr 0.01,
    weight decay 5e-4 on the first layer, 200 epochs). The reported ``test_acc`` is that of the epoch with
    the best validation accuracy (the first such epoch), as PyG's ``examples/gcn.py`` reports it.

    * **Full-batch** (``batch_size=None``, the default): one step per epoch on the whole graph.
    * **Mini-batch** (``batch_size=B``): each epoch walks the training nodes in shuffled batches of ``B``
      seeds; every batch is the seeds' sampled ``num_layers``-hop neighbourhood
      (:class:`~gseq.loader.NeighborLoader`, one fan-out per layer, ``num_neighbors``; 10 each by default)
      and the loss is the cross-entropy of the seeds' logits, PyG's pattern
      ``model(batch.x, batch.edge_index)[:batch.batch_size]``. Each layer normalises by the degrees within
      the sampled subgraph, as PyG's ``GCNConv`` does there; evaluation (every ``eval_every`` epochs) runs
      :meth:`~gseq.models.GCNNet.inference` on the full graph, with its degrees. The sampling generator
      lives on the training device, is seeded with ``seed``, and its state is in the checkpoint.

    ``sparse_input`` feeds the features as a sparse CSR matrix (the first layer becomes a sparse-dense
    product and input dropout touches only stored entries, as in Kipf's code); None chooses it on the CPU
    when fewer than 10% of the features are non-zero (Cora: 1.3%). ``out_dir`` receives the Trainer's
    ``metrics.csv``, ``config.json`` and ``checkpoint.pt``, under :class:`~gseq.train.RunFolder`'s policy.

    Returns:
        ``{"test_acc", "val_acc", "train_acc", "best_epoch", "seconds", "self_loop_weights", "history",
        "model", "config"}``; ``best_epoch`` counts epochs.
    """
    config = settings.pop("config", None)
    cfg = config.with_changes(**settings) if config is not None else NodeClassificationConfig(**settings)
    if cfg.model != "gcn":
        raise ValueError(f"model: train_node_classifier trains a GCNNet; train {cfg.model!r} with "
                         "gseq.tasks.train_gcnii")
    if cfg.dataset is None:
        cfg = cfg.with_changes(dataset=getattr(data, "name", None))
    _check_data(data)
    apply_threads(cfg.threads)
    seed = cfg.seed if cfg.seed is not None else 0
    seed_everything(seed)
    dev = training_device(cfg.device)  # under torchrun: this rank's device
    graph = data.to(dev)
    sparse_input = cfg.sparse_input
    if sparse_input is None:
        sparse_input = dev.type == "cpu" and float((graph.x != 0).float().mean()) < 0.1
    features = sparse_features(graph.x) if sparse_input else graph.x
    minibatch = cfg.batch_size is not None
    model = GCNNet(data.num_features, int(data.y.max()) + 1, hidden_channels=cfg.hidden_channels,
                   num_layers=cfg.num_layers, dropout=cfg.dropout, self_loop_weight=cfg.self_loop_weight,
                   cached=not minibatch)  # every sampled batch is another graph
    if minibatch:
        if sparse_input:
            graph = copy.copy(graph)  # a new store sharing the tensors: the caller's Data keeps its x
            graph.x = features
        loader = NeighborLoader(graph, cfg.fan_outs, input_nodes=graph.train_mask, batch_size=cfg.batch_size,
                                shuffle=True, replace=cfg.replace,
                                generator=torch.Generator(device=dev).manual_seed(seed))
        env = launched_env()  # under torchrun each rank walks its share of the seeds: an epoch is fewer steps
        steps_per_epoch = len(loader.shard(env.rank, env.world_size)) if env is not None else len(loader)
        schedule = {"max_epochs": cfg.epochs, "eval_every": cfg.eval_every * steps_per_epoch}
    else:
        schedule = {"max_steps": cfg.epochs, "eval_every": 1}

    def loss_fn(model, g):
        if minibatch:
            out = model(g.x, g.edge_index, getattr(g, "edge_weight", None))[:g.batch_size]
            return F.cross_entropy(out, g.y[:g.batch_size])
        out = model(features, g.edge_index, getattr(g, "edge_weight", None))
        return F.cross_entropy(out[g.train_mask], g.y[g.train_mask])

    def evaluate(model):
        if minibatch:
            return _scores(model.inference(graph, cfg.eval_batch_size), graph)
        return _scores(model(features, graph.edge_index, getattr(graph, "edge_weight", None)), graph)

    trainer = Trainer(model, optimizer="adam", lr=cfg.lr, param_groups=lambda m: m.param_groups(cfg.weight_decay),
                      monitor="val_acc", mode="max", keep_best=True, seed=seed, device=dev, progress=cfg.progress,
                      out_dir=cfg.out_dir, overwrite=cfg.overwrite, callbacks=callbacks, desc="gcn", config=cfg,
                      **schedule)
    start = time.perf_counter()
    result = trainer.fit(loss_fn, loader if minibatch else (lambda g: graph), evaluate, resume=cfg.resume)
    best = next(row for row in trainer.history if row["step"] == result["best_step"])
    return {
        "test_acc": best["test_acc"], "val_acc": best["val_acc"], "train_acc": best["train_acc"],
        "best_epoch": best["epoch"] if minibatch else best["step"], "seconds": time.perf_counter() - start,
        "self_loop_weights": model.self_loop_weights(), "history": trainer.history, "model": model, "config": cfg,
        "result": result,
    }


def train_node_classifier_minibatch(data: Data, *, batch_size: int = 1024, num_neighbors=(10, 10), **settings: Any):
    """:func:`train_node_classifier` on sampled subgraphs, with ``batch_size=1024`` and ``num_neighbors=(10, 10)``
    by default (kept for code written before the two were one function)."""
    return train_node_classifier(data, batch_size=batch_size, num_neighbors=tuple(num_neighbors), **settings)
