r"""Palindromes for a GCN: each palindrome is a directed path graph, the answer is read at its last node.

The graph-side twin of :func:`~gseq.models.train_palindrome`. :func:`~gseq.data.palindrome_graphs` turns
each batch of palindromes into a PyG batch of paths :math:`0 \to 1 \to \dots \to T-1` (one node per
digit, the last node featureless); a :class:`~gseq.models.GCNNet` of ``num_layers`` layers classifies
every node and the logits of each graph's last node are its answer. With ``num_layers < T - 1`` the first
digit lies outside the last node's receptive field and the accuracy cannot beat chance (0.1).

On the directed path with self-loop weight :math:`w`, one layer is
:math:`y_t = \frac{1}{1+w}\,x'_{t-1} + \frac{w}{1+w}\,x'_t` for :math:`t \ge 2` (node 0 keeps
:math:`y_0 = x'_0`), so a digit is weighted by :math:`1/(1+w)` for every hop it travels: with Kipf's
:math:`w = 1` the first digit reaches the last node at about :math:`2^{-(T-1)}` of its weight, mixed with
the other digits; a light self-loop (:math:`w = 0.1`) lets it arrive almost whole. (``w = 0`` is no
way out: node 0 then has degree 0, and the symmetric normalisation gives its messages weight 0.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.palindromes import NUM_DIGITS, palindromes
from ..data.path_graph import palindrome_graphs
from ..train import Trainer
from .gcn_net import GCNNet

__all__ = ["last_node_logits", "palindrome_gcn_accuracy", "train_palindrome_gcn"]


def last_node_logits(model: nn.Module, batch) -> Tensor:
    """``model(batch.x, batch.edge_index)`` at the last node of every graph (``batch.ptr[1:] - 1``):
    logits ``[num_graphs, C]``."""
    return model(batch.x, batch.edge_index)[batch.ptr[1:] - 1]


@torch.no_grad()
def palindrome_gcn_accuracy(model: nn.Module, length: int, num: int = 2048, *, directed: bool = True,
                            generator: torch.Generator | None = None, chunk: int = 1024) -> float:
    """Accuracy of a node-level ``model`` on ``num`` fresh palindromes of ``length`` as path graphs, read at
    the last node (the model is left in its mode)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = done = 0
    try:
        while done < num:
            n = min(chunk, num - done)
            batch = palindrome_graphs(*palindromes(n, length, generator=generator, device=device), directed=directed)
            correct += int((last_node_logits(model, batch).argmax(-1) == batch.y).sum())
            done += n
    finally:
        model.train(was_training)
    return correct / num


def _loss(model: nn.Module, batch) -> dict[str, Tensor]:
    logits = last_node_logits(model, batch)
    return {"loss": F.cross_entropy(logits, batch.y), "train_accuracy": (logits.argmax(-1) == batch.y).float().mean()}


def train_palindrome_gcn(length: int = 10, num_layers: int = 9, *, hidden_channels: int = 32,
                         self_loop_weight: float | str = 1.0, act: str = "relu", directed: bool = True,
                         batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-2, max_steps: int = 1000,
                         clip_grad_norm: float | None = 10.0, eval_every: int = 10, eval_size: int = 512,
                         test_size: int = 2048, target: float = 1.0, seed: int = 0,
                         device: str | torch.device | None = "auto", out_dir: str | Path | None = None,
                         progress: bool = False) -> dict[str, Any]:
    """Train a :class:`~gseq.models.GCNNet` on palindromes of ``length`` as directed path graphs.

    Each step draws ``batch_size`` fresh palindromes from the trainer's generator (seeded by ``seed``) and
    batches them with :func:`~gseq.data.palindrome_graphs`; the loss is the cross-entropy of the last
    node's logits. Every ``eval_every`` steps the accuracy on ``eval_size`` fresh palindromes (a generator
    of its own) is checked against ``target``; at the end it is measured on ``test_size`` palindromes from
    a third generator, as :func:`~gseq.models.fit_palindrome` does for the recurrent models.

    Args:
        length: palindrome length ``T`` (>= 2); the graph has ``T`` nodes. (default: ``10``)
        num_layers: GCN layers; ``T - 1`` is the least that lets the last node see the first digit.
            (default: ``9``)
        hidden_channels: width of the hidden layers. (default: ``32``)
        self_loop_weight: ``w`` of every layer, a float >= 0 or ``"learn"``. (default: ``1.0``, Kipf's)
        act: nonlinearity between layers, as for :class:`~gseq.models.GCNNet`. (default: ``"relu"``)
        directed: edges :math:`t \\to t+1` only; ``False`` adds the reverse edges. (default: ``True``)
        batch_size, optimizer, lr, max_steps, clip_grad_norm, eval_every, target, device, out_dir, progress:
            passed to :class:`~gseq.train.Trainer`. (defaults: ``128``, ``"adam"``, ``1e-2``, ``1000``,
            ``10.0``, ``10``, ``1.0``, ``"auto"``, None, False)
        eval_size, test_size: palindromes per evaluation and in the final test. (default: ``512``, ``2048``)
        seed: seeds the weights, the training stream and the evaluation streams. (default: ``0``)

    Returns:
        a dict with ``accuracy`` (the final test accuracy), ``steps``, ``seconds`` (training, evaluations
        included), ``stop_reason``, ``eval_accuracy``, ``length``, ``num_layers``, ``self_loop_weights``
        (every layer's final ``w``, learned or not), ``seed`` and ``wall_seconds`` (construction included).
    """
    start = time.perf_counter()
    for name, value, minimum in (("length", length, 2), ("num_layers", num_layers, 1),
                                 ("hidden_channels", hidden_channels, 1), ("batch_size", batch_size, 1),
                                 ("eval_size", eval_size, 1), ("test_size", test_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    if not isinstance(directed, bool):
        raise TypeError(f"directed: expected True or False, got {directed!r}")
    torch.manual_seed(seed)
    model = GCNNet(NUM_DIGITS, NUM_DIGITS, hidden_channels=hidden_channels, num_layers=num_layers, dropout=0.0,
                   self_loop_weight=self_loop_weight, act=act)
    eval_gen = torch.Generator().manual_seed(seed + 1_000_003)
    test_gen = torch.Generator().manual_seed(seed + 2_000_029)

    def data(generator: torch.Generator):
        return palindrome_graphs(*palindromes(batch_size, length, generator=generator), directed=directed)

    def evaluate(m: nn.Module) -> dict[str, Tensor]:
        dev = next(m.parameters()).device
        batch = palindrome_graphs(*palindromes(eval_size, length, generator=eval_gen, device=dev), directed=directed)
        return {"accuracy": (last_node_logits(m, batch).argmax(-1) == batch.y).float().mean()}

    config = {"task": "palindrome_gcn", "length": length, "num_layers": num_layers, "hidden_channels": hidden_channels,
              "self_loop_weight": self_loop_weight, "act": act, "directed": directed, "batch_size": batch_size}
    trainer = Trainer(model, optimizer=optimizer, lr=lr, clip_grad_norm=clip_grad_norm, max_steps=max_steps,
                      eval_every=eval_every, monitor="accuracy", target=target, seed=seed, device=device,
                      progress=progress, out_dir=out_dir, config=config,
                      desc=f"gcn k={num_layers} T={length}")
    result = trainer.fit(_loss, data, evaluate)
    accuracy = palindrome_gcn_accuracy(model, length, test_size, directed=directed, generator=test_gen)
    return {"accuracy": accuracy, "steps": result["step"], "seconds": result["seconds"],
            "stop_reason": result["stop_reason"], "eval_accuracy": result["last_eval"].get("accuracy"),
            "length": length, "num_layers": num_layers, "self_loop_weights": model.self_loop_weights(),
            "seed": seed, "wall_seconds": time.perf_counter() - start}
