r"""The palindrome task: read the digits of a palindrome of length :math:`T` but the last, answer the last.

The answer equals the first digit, so a model must carry it across :math:`T - 1` steps. Two model families
read the same stream of fresh palindromes (:func:`~gseq.data.palindromes`), through the shared
:class:`~gseq.train.Trainer`, with the same stopping rule and test:

* **Recurrent**: :func:`train_palindrome` builds a :class:`~gseq.models.SequenceClassifier` and
  :func:`fit_palindrome` trains it on fresh palindromes each step (the course's set-up by default:
  RMSprop, lr 1e-3, batch 128, hidden 128, gradient norm clipped to 10, scalar inputs) until the accuracy
  on fresh palindromes reaches 1.0 or ``max_steps`` is spent.
* **Graph**: :func:`train_palindrome_gcn`, the graph-side twin. :func:`~gseq.data.palindrome_graphs`
  turns each batch of palindromes into a PyG batch of paths :math:`0 \to 1 \to \dots \to T-1` (one node
  per digit, the last node featureless); a :class:`~gseq.models.GCNNet` of ``num_layers`` layers
  classifies every node and the logits of each graph's last node are its answer
  (:func:`last_node_logits`). With ``num_layers < T - 1`` the first digit lies outside the last node's
  receptive field and the accuracy cannot beat chance (0.1).

  On the directed path with self-loop weight :math:`w`, one layer is
  :math:`y_t = \frac{1}{1+w}\,x'_{t-1} + \frac{w}{1+w}\,x'_t` for :math:`t \ge 2` (node 0 keeps
  :math:`y_0 = x'_0`), so a digit is weighted by :math:`1/(1+w)` for every hop it travels: with Kipf's
  :math:`w = 1` the first digit reaches the last node at about :math:`2^{-(T-1)}` of its weight, mixed
  with the other digits; a light self-loop (:math:`w = 0.1`) lets it arrive almost whole. (``w = 0`` is
  no way out: node 0 then has degree 0, and the symmetric normalisation gives its messages weight 0.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import boolean, integer
from ..config import PalindromeConfig
from ..data.palindromes import NUM_DIGITS, palindromes
from ..data.path_graph import palindrome_graphs
from ..models.gcn_net import GCNNet
from ..models.sequence import SequenceClassifier
from ..train import Trainer, apply_threads

__all__ = ["train_palindrome", "fit_palindrome", "palindrome_accuracy", "train_palindrome_gcn",
           "palindrome_gcn_accuracy", "last_node_logits"]


def _accuracy(model: nn.Module, num: int, chunk: int, count_correct) -> float:
    """The share of right answers over ``num`` fresh samples, ``chunk`` at a time, in eval mode (the model's
    mode is restored after): ``count_correct(n, device)`` draws ``n`` samples and counts the right answers."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = done = 0
    try:
        while done < num:
            n = min(chunk, num - done)
            correct += count_correct(n, device)
            done += n
    finally:
        model.train(was_training)
    return correct / num


# ---------------------------------------------------------------------- recurrent: SequenceClassifier
@torch.no_grad()
def palindrome_accuracy(model: SequenceClassifier, length: int, num: int = 2048, *,
                        generator: torch.Generator | None = None, chunk: int = 1024) -> float:
    """Accuracy of ``model`` on ``num`` fresh palindromes of ``length`` (the model is left in its mode)."""
    def count_correct(n: int, device: torch.device) -> int:
        x, y = palindromes(n, length, generator=generator, device=device)
        return int((model(x).argmax(-1) == y).sum())

    return _accuracy(model, num, chunk, count_correct)


def _sequence_loss(model: nn.Module, batch) -> dict[str, Tensor]:
    x, y = batch
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "train_accuracy": (logits.argmax(-1) == y).float().mean()}


def fit_palindrome(model: SequenceClassifier, length: int, **settings: Any) -> dict[str, Any]:
    """Train ``model`` in place on palindromes of ``length`` through :class:`gseq.train.Trainer`.

    The settings are the training fields of :class:`~gseq.config.PalindromeConfig` (``batch_size=128``,
    ``optimizer="rmsprop"``, ``lr=1e-3``, ``max_steps=5000``, ``clip_grad_norm=10.0``, ``eval_every=10``,
    ``eval_size=512``, ``test_size=2048``, ``target=1.0``, ``seed=0``, ``device="auto"``, ``out_dir=None``,
    ``resume=False``, ``overwrite=False``, ``progress=False``); the model's own settings are read from it.
    Each step draws ``batch_size`` fresh palindromes from the trainer's generator (seeded by ``seed``);
    every ``eval_every`` steps the accuracy on ``eval_size`` fresh palindromes, drawn from a generator of
    its own (so evaluating never changes the training stream), is checked against ``target``. At the end
    the accuracy is measured once more on ``test_size`` palindromes from a third generator. (Stopping at
    accuracy 1.0 on 512 samples leaves little room: a model with accuracy 0.99 passes that check with
    probability 0.99^512 < 1%.) ``out_dir`` follows :class:`~gseq.train.RunFolder`'s policy.

    Returns:
        a dict with ``accuracy`` (the final test accuracy), ``steps``, ``seconds`` (training,
        evaluations included), ``stop_reason``, ``eval_accuracy`` (the last evaluation), ``length``,
        ``seed`` and ``resumed_from`` (the step a resumed run started from, else None).
    """
    config = settings.pop("config", None)
    model_settings = {"cell": model.cell_type, "length": length, "input": model.input,
                      "hidden_size": model.hidden_size, "init": model.init,
                      "forget_bias": float(getattr(model.rnn.cell, "forget_bias", 0.0))}
    cfg = (config.with_changes(**model_settings, **settings) if config is not None
           else PalindromeConfig(**model_settings, **settings))
    return _fit(model, cfg)


def _fit(model: SequenceClassifier, cfg: PalindromeConfig) -> dict[str, Any]:
    apply_threads(cfg.threads)
    eval_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    test_gen = torch.Generator().manual_seed(cfg.seed + 2_000_029)

    def data(generator: torch.Generator):
        return palindromes(cfg.batch_size, cfg.length, generator=generator)

    def evaluate(m: nn.Module) -> dict[str, float]:
        dev = next(m.parameters()).device
        x, y = palindromes(cfg.eval_size, cfg.length, generator=eval_gen, device=dev)
        return {"accuracy": (m(x).argmax(-1) == y).float().mean()}

    trainer = Trainer(model, optimizer=cfg.optimizer, lr=cfg.lr, clip_grad_norm=cfg.clip_grad_norm,
                      max_steps=cfg.max_steps, eval_every=cfg.eval_every, monitor="accuracy", target=cfg.target,
                      seed=cfg.seed, device=cfg.device, progress=cfg.progress, out_dir=cfg.out_dir,
                      overwrite=cfg.overwrite, config=cfg, desc=f"{model.cell_type} T={cfg.length}")
    if cfg.resume and trainer.checkpoint_path.is_file():
        # the evaluation stream continues where it stopped: skip the draws already made
        trainer.load_checkpoint()
        for _ in range(len(trainer.history)):
            palindromes(cfg.eval_size, cfg.length, generator=eval_gen)
    result = trainer.fit(_sequence_loss, data, evaluate, resume=cfg.resume)
    accuracy = palindrome_accuracy(model, cfg.length, cfg.test_size, generator=test_gen)
    return {"accuracy": accuracy, "steps": result["step"], "seconds": result["seconds"],
            "stop_reason": result["stop_reason"], "eval_accuracy": result["last_eval"].get("accuracy"),
            "length": cfg.length, "seed": cfg.seed, "resumed_from": result["resumed_from"]}


def train_palindrome(cell: str = "lstm", length: int = 20, **settings: Any) -> dict[str, Any]:
    """Build a :class:`~gseq.models.SequenceClassifier` (weights seeded by ``seed``) and train it on palindromes.

    Args:
        cell: ``"rnn"`` or ``"lstm"``. (default: ``"lstm"``)
        length: palindrome length ``T`` (the model reads ``T - 1`` digits). (default: ``20``)
        **settings: the fields of :class:`~gseq.config.PalindromeConfig` (``input="scalar"``,
            ``hidden_size=128``, ``init="xavier_uniform"``, ``forget_bias=0.0`` (LSTM only), ``fused=True``,
            ``seed=0`` and the training settings of :func:`fit_palindrome`), or ``config=`` a whole one.

    Returns:
        the dict of :func:`fit_palindrome` plus ``"cell"``, ``"wall_seconds"`` (construction included).
    """
    start = time.perf_counter()
    config = settings.pop("config", None)
    cfg = config.with_changes(**settings) if config is not None else PalindromeConfig(cell=cell, length=length,
                                                                                      **settings)
    if cfg.cell == "rnn":
        cfg = cfg.with_changes(forget_bias=0.0)  # the RNN has no forget gate: what ran, as config.json says
    torch.manual_seed(cfg.seed)
    model = SequenceClassifier(cfg.cell, cfg.hidden_size, input=cfg.input, init=cfg.init,
                               forget_bias=cfg.forget_bias, fused=cfg.fused)
    result = _fit(model, cfg)
    return {"cell": cfg.cell, **result, "wall_seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------- graph: GCNNet on path graphs
def last_node_logits(model: nn.Module, batch) -> Tensor:
    """``model(batch.x, batch.edge_index)`` at the last node of every graph (``batch.ptr[1:] - 1``):
    logits ``[num_graphs, C]``."""
    return model(batch.x, batch.edge_index)[batch.ptr[1:] - 1]


@torch.no_grad()
def palindrome_gcn_accuracy(model: nn.Module, length: int, num: int = 2048, *, directed: bool = True,
                            generator: torch.Generator | None = None, chunk: int = 1024) -> float:
    """Accuracy of a node-level ``model`` on ``num`` fresh palindromes of ``length`` as path graphs, read at
    the last node (the model is left in its mode)."""
    def count_correct(n: int, device: torch.device) -> int:
        batch = palindrome_graphs(*palindromes(n, length, generator=generator, device=device), directed=directed)
        return int((last_node_logits(model, batch).argmax(-1) == batch.y).sum())

    return _accuracy(model, num, chunk, count_correct)


def _graph_loss(model: nn.Module, batch) -> dict[str, Tensor]:
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
    a third generator, as :func:`fit_palindrome` does for the recurrent models.

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
        integer(name, value, minimum=minimum)
    boolean("directed", directed)
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
    result = trainer.fit(_graph_loss, data, evaluate)
    accuracy = palindrome_gcn_accuracy(model, length, test_size, directed=directed, generator=test_gen)
    return {"accuracy": accuracy, "steps": result["step"], "seconds": result["seconds"],
            "stop_reason": result["stop_reason"], "eval_accuracy": result["last_eval"].get("accuracy"),
            "length": length, "num_layers": num_layers, "self_loop_weights": model.self_loop_weights(),
            "seed": seed, "wall_seconds": time.perf_counter() - start}
