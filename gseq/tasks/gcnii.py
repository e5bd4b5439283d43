"""Deep node classification: train a :class:`~gseq.models.GCNII` full-batch through the shared
:class:`~gseq.train.Trainer`, with the training recipe of GCNII's repository (``chennnM/GCNII``).
"""

from __future__ import annotations

import time
from typing import Any

import torch.nn.functional as F
from torch_geometric.data import Data

from ..checks import positive_int, random_seed
from ..models.gcn_net import sparse_features
from ..models.gcnii import GCNII
from ..train import Trainer, seed_everything
from .node_classification import _check_data, _scores

__all__ = ["train_gcnii"]


def train_gcnii(
    data: Data,
    *,
    epochs: int = 1500,
    patience: int | None = 100,
    lr: float = 0.01,
    conv_weight_decay: float = 0.01,
    dense_weight_decay: float = 5e-4,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    out_dir: str | None = None,
    overwrite: bool = False,
    callbacks=(),
    sparse_input: bool | None = None,
    **model_settings: Any,
) -> dict[str, Any]:
    """Train a :class:`~gseq.models.GCNII` full-batch with Adam and return its accuracies.

    GCNII's settings for Cora by default (its ``train.py``): the model's defaults (64 layers of 64
    channels, alpha 0.1, lambda (``theta``) 0.5, dropout 0.6), Adam lr 0.01, weight decay 0.01 on the
    convolutions and 5e-4 on the dense layers, up to 1500 epochs, stopped after ``patience`` epochs without
    a lower validation loss; the reported ``test_acc`` is that of the epoch with the lowest validation
    loss, whose weights the model keeps. ``patience=None`` trains all ``epochs``.

    ``model_settings`` are :class:`~gseq.models.GCNII`'s keyword arguments (``num_layers``,
    ``hidden_channels``, ``alpha``, ``theta``, ``dropout``, ``shared_weights``, ``self_loop_weight``);
    the model caches the graph (one graph, transductive). ``sparse_input`` feeds the features as a sparse
    CSR matrix (the first layer becomes a sparse-dense product and input dropout touches only stored
    entries); None chooses it on the CPU when fewer than 10% of the features are non-zero (Cora: 1.3%).
    ``out_dir`` receives the Trainer's ``metrics.csv``, ``config.json`` and ``checkpoint.pt``.

    Returns:
        ``{"test_acc", "val_acc", "train_acc", "best_epoch", "seconds", "self_loop_weights", "history",
        "model", "result"}`` (``result``: what :meth:`Trainer.fit <gseq.train.Trainer.fit>` returned).
    """
    _check_data(data)
    positive_int("epochs", epochs)
    positive_int("patience", patience, none_ok=True)
    random_seed("seed", seed)
    seed_everything(seed)
    model = GCNII(data.num_features, int(data.y.max()) + 1, cached=True, **model_settings)
    trainer = Trainer(
        model, optimizer="adam", lr=lr, param_groups=lambda m: m.param_groups(conv_weight_decay, dense_weight_decay),
        max_steps=epochs, eval_every=1, monitor="val_loss", mode="min", patience=patience, keep_best=True, seed=seed,
        device=device, progress=progress, out_dir=out_dir, overwrite=overwrite, callbacks=callbacks, desc="gcnii",
        config={"task": "node_classification", "model": "gcnii", "dataset": getattr(data, "name", None),
                **model_settings, "epochs": epochs, "patience": patience, "lr": lr,
                "conv_weight_decay": conv_weight_decay, "dense_weight_decay": dense_weight_decay},
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
    return {
        "test_acc": best["test_acc"], "val_acc": best["val_acc"], "train_acc": best["train_acc"],
        "best_epoch": best["step"], "seconds": time.perf_counter() - start,
        "self_loop_weights": model.self_loop_weights(), "history": trainer.history, "model": model,
        "result": result,
    }
