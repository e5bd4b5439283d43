"""Node classification with a stack of :class:`gseq.layers.GCN` layers (Kipf & Welling's setup).

:class:`GCNNet` is the model; :func:`train_node_classifier` trains it full-batch on one graph through the
shared :class:`~gseq.train.Trainer` and reports the test accuracy of the epoch with the best validation
accuracy.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from ..layers.gcn import GCN
from ..train import Trainer, seed_everything

__all__ = ["GCNNet", "train_node_classifier", "sparse_features"]

_ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "identity": lambda x: x}


class GCNNet(nn.Module):
    r"""A stack of ``num_layers`` :class:`~gseq.layers.GCN` layers with ReLU and dropout between them.

    ``dropout -> GCN -> ReLU -> dropout -> GCN -> ... -> GCN`` (logits), as in Kipf & Welling (2017) and
    PyG's ``examples/gcn.py``. The first layer's weight decay is applied through :meth:`param_groups`.

    Args:
        in_channels: input features per node.
        out_channels: number of classes.
        hidden_channels: width of every hidden layer. (default: ``16``)
        num_layers: number of GCN layers, >= 1. (default: ``2``)
        dropout: dropout probability on the input and hidden features. (default: ``0.5``)
        self_loop_weight: passed to every layer: a float >= 0 or ``"learn"`` (one weight per layer).
            (default: ``1.0``)
        normalize: passed to every layer. (default: ``True``)
        cached: cache the graph structure in every layer (one graph, transductive). (default: ``False``)
        act: the nonlinearity between layers, ``"relu"``, ``"tanh"`` or ``"identity"``. (default: ``"relu"``)

    Shapes:
        - **input:** ``x`` :math:`(N, F_{in})`, ``edge_index`` :math:`(2, E)`, ``edge_weight`` :math:`(E)` *(optional)*
        - **output:** logits :math:`(N, C)`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        hidden_channels: int = 16,
        num_layers: int = 2,
        dropout: float = 0.5,
        self_loop_weight: float | str = 1.0,
        normalize: bool | str = True,
        cached: bool = False,
        act: str = "relu",
    ) -> None:
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"act: expected one of {sorted(_ACTIVATIONS)}, got {act!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers: must be an integer >= 1, got {num_layers!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: must lie in [0, 1), got {dropout!r}")
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(
            GCN(a, b, self_loop_weight=self_loop_weight, normalize=normalize, cached=cached)
            for a, b in zip(dims[:-1], dims[1:])
        )
        self.dropout = dropout
        self.act = act

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """Logits ``[N, out_channels]``; ``x`` may be a torch sparse CSR/COO matrix (sparse features)."""
        for i, conv in enumerate(self.convs):
            x = _dropout(x, self.dropout, self.training)
            x = conv(x, edge_index, edge_weight)
            if i < len(self.convs) - 1:
                x = _ACTIVATIONS[self.act](x)
        return x

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups with ``weight_decay`` on the first layer's weights and bias only (Kipf's setup);
        learned self-loop weights are never decayed."""
        first = [p for n, p in self.convs[0].named_parameters() if not n.startswith("raw_self_loop")]
        ids = {id(p) for p in first}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": first, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]

    def self_loop_weights(self) -> list[float]:
        """The current ``w`` of every layer."""
        return [float(conv.self_loop_weight().detach()) for conv in self.convs]


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout that keeps sparse features sparse (only stored entries can be dropped: the same law as
    dense dropout, where zeros stay zero anyway)."""
    if x.layout == torch.strided:
        return F.dropout(x, p=p, training=training)
    if not training or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        values = F.dropout(x.values(), p=p, training=True)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape,
                                       check_invariants=False)
    x = x.coalesce()
    return torch.sparse_coo_tensor(x.indices(), F.dropout(x.values(), p=p, training=True), x.shape,
                                   is_coalesced=True, check_invariants=False)


def sparse_features(x: Tensor) -> Tensor:
    """``x`` as a torch sparse CSR matrix (for bag-of-words features such as Cora's, 1.3% non-zero)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*Sparse CSR tensor support is in beta.*")
        return x.to_sparse_csr()


def _accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> float:
    return float((logits[mask].argmax(-1) == y[mask]).float().mean()) if bool(mask.any()) else float("nan")


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
    """Train a :class:`GCNNet` full-batch with Adam and return its accuracies.

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
    for mask in ("train_mask", "val_mask", "test_mask"):
        if getattr(data, mask, None) is None:
            raise ValueError(f"data: needs a boolean {mask}; use gseq.data.planetoid() or add the masks")
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
        out = model(features, graph.edge_index, getattr(graph, "edge_weight", None))
        return {
            "val_loss": F.cross_entropy(out[graph.val_mask], graph.y[graph.val_mask]),
            "train_acc": _accuracy(out, graph.y, graph.train_mask),
            "val_acc": _accuracy(out, graph.y, graph.val_mask),
            "test_acc": _accuracy(out, graph.y, graph.test_mask),
        }

    start = time.perf_counter()
    result = trainer.fit(loss_fn, lambda g: graph, evaluate)
    best = next(row for row in trainer.history if row["step"] == result["best_step"])
    return {
        "test_acc": best["test_acc"], "val_acc": best["val_acc"], "train_acc": best["train_acc"],
        "best_epoch": result["best_step"], "seconds": time.perf_counter() - start,
        "self_loop_weights": model.self_loop_weights(), "history": trainer.history, "model": model,
    }
