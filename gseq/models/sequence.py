r"""Sequence classification with the hand-written cells, and palindrome training through the Trainer.

:class:`SequenceClassifier` reads a digit sequence with an :class:`~gseq.layers.RNN` or
:class:`~gseq.layers.LSTM` and classifies from the last hidden state, :math:`p = W_{ph} h_T + b_p`.
:func:`train_palindrome` trains it on fresh palindromes each step (the course's set-up by default:
RMSprop, lr 1e-3, batch 128, hidden 128, gradient norm clipped to 10, scalar inputs) until the accuracy
on fresh palindromes reaches 1.0 or ``max_steps`` is spent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.palindromes import NUM_DIGITS, palindromes
from ..layers.recurrent import INITS, LSTM, RNN, _init_blocks
from ..train import Trainer

__all__ = ["SequenceClassifier", "train_palindrome", "fit_palindrome", "palindrome_accuracy", "CELLS", "INPUTS"]

#: the recurrent cells a :class:`SequenceClassifier` can use
CELLS = ("rnn", "lstm")
#: how digits enter the model: one scalar channel (the course's set-up) or one-hot over 10 channels
INPUTS = ("scalar", "onehot")


def _choice(name: str, value: Any, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {list(choices)}")
    return value


class SequenceClassifier(nn.Module):
    r"""A recurrent network that classifies a token sequence from its last hidden state:

    .. math::
        h_t = \mathrm{cell}(x_t, h_{t-1}), \qquad p = W_{ph} h_T + b_p

    trained with cross-entropy on :math:`p` only (the loss of the last step).

    Args:
        cell: ``"rnn"`` or ``"lstm"``. (default: ``"lstm"``)
        hidden_size: channels of the hidden state. (default: ``128``)
        num_classes: number of classes; also the number of distinct input tokens. (default: ``10``)
        input: how a token enters the cell: ``"scalar"`` (its value as a float in one channel, the
            original course's set-up; default) or ``"onehot"`` (``num_classes`` channels).
        init: ``"xavier_uniform"`` (default), ``"kaiming_normal"`` or ``"orthogonal"`` for the cell's
            matrices (each gate's on its own) and for :math:`W_{ph}`; biases start at zero.
        forget_bias: initial forget-gate bias of the LSTM (``cell="lstm"`` only). (default: ``0.0``)
        fused: use the cells' fast path (see :class:`~gseq.layers.LSTM`). (default: ``True``)

    Shapes:
        - **input:** token indices ``[B, T]`` (integer dtype, values in ``0..num_classes-1``)
        - **output:** logits ``[B, num_classes]``
    """

    def __init__(self, cell: str = "lstm", hidden_size: int = 128, num_classes: int = NUM_DIGITS, *,
                 input: str = "scalar", init: str = "xavier_uniform", forget_bias: float = 0.0,
                 fused: bool = True) -> None:
        super().__init__()
        self.cell_type = _choice("cell", cell, CELLS)
        self.input = _choice("input", input, INPUTS)
        _choice("init", init, INITS)
        for name, value in (("hidden_size", hidden_size), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if cell == "rnn" and forget_bias != 0:
            raise ValueError("forget_bias: only the LSTM has a forget gate; leave it at 0 for cell='rnn'")
        self.hidden_size, self.num_classes, self.init = hidden_size, num_classes, init
        in_size = 1 if input == "scalar" else num_classes
        if cell == "lstm":
            self.rnn = LSTM(in_size, hidden_size, init=init, forget_bias=forget_bias, fused=fused)
        else:
            self.rnn = RNN(in_size, hidden_size, init=init, fused=fused)
        self.weight_ph = nn.Parameter(torch.empty(num_classes, hidden_size))
        self.bias_p = nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.rnn.reset_parameters()
        _init_blocks(self.weight_ph, 1, self.init)
        nn.init.zeros_(self.bias_p)

    def encode(self, x: Tensor) -> Tensor:
        """Token indices ``[B, T]`` -> cell inputs ``[B, T, 1]`` (scalar) or ``[B, T, num_classes]`` (one-hot)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a tensor of token indices, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise ValueError(f"x: expected integer token indices (torch.long), got dtype {x.dtype}")
        if x.dim() != 2 or x.shape[1] < 1:
            raise ValueError(f"x: expected shape [batch, time >= 1], got {list(x.shape)}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_classes):
            raise ValueError(f"x: token indices must lie in 0..{self.num_classes - 1}, "
                             f"got values in {int(x.min())}..{int(x.max())}")
        dtype = self.weight_ph.dtype
        if self.input == "scalar":
            return x.to(dtype).unsqueeze(-1)
        return F.one_hot(x, self.num_classes).to(dtype)

    def readout(self, h: Tensor) -> Tensor:
        """:math:`p = W_{ph} h + b_p` for a hidden state ``[B, H]``."""
        return torch.addmm(self.bias_p, h, self.weight_ph.t())

    def forward(self, x: Tensor) -> Tensor:
        out, state = self.rnn(self.encode(x))
        h_last = state[0] if self.cell_type == "lstm" else state
        return self.readout(h_last)


@torch.no_grad()
def palindrome_accuracy(model: SequenceClassifier, length: int, num: int = 2048, *,
                        generator: torch.Generator | None = None, chunk: int = 1024) -> float:
    """Accuracy of ``model`` on ``num`` fresh palindromes of ``length`` (the model is left in its mode)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = done = 0
    try:
        while done < num:
            n = min(chunk, num - done)
            x, y = palindromes(n, length, generator=generator, device=device)
            correct += int((model(x).argmax(-1) == y).sum())
            done += n
    finally:
        model.train(was_training)
    return correct / num


def _loss(model: nn.Module, batch) -> dict[str, Tensor]:
    x, y = batch
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "train_accuracy": (logits.argmax(-1) == y).float().mean()}


def fit_palindrome(model: SequenceClassifier, length: int, *, batch_size: int = 128, optimizer: str = "rmsprop",
                   lr: float = 1e-3, max_steps: int = 5000, clip_grad_norm: float | None = 10.0,
                   eval_every: int = 10, eval_size: int = 512, test_size: int = 2048, target: float = 1.0,
                   seed: int = 0, device: str | torch.device | None = "auto", out_dir: str | Path | None = None,
                   resume: bool = False, overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Train ``model`` in place on palindromes of ``length`` through :class:`gseq.train.Trainer`.

    Each step draws ``batch_size`` fresh palindromes from the trainer's generator (seeded by ``seed``);
    every ``eval_every`` steps the accuracy on ``eval_size`` fresh palindromes, drawn from a generator of
    its own (so evaluating never changes the training stream), is checked against ``target``. At the end
    the accuracy is measured once more on ``test_size`` palindromes from a third generator. (Stopping at
    accuracy 1.0 on 512 samples leaves little room: a model with accuracy 0.99 passes that check with
    probability 0.99^512 < 1%.)

    With ``out_dir``, the run folder gets the Trainer's files; ``resume=True`` continues a checkpoint there
    (same settings only), ``overwrite=True`` replaces it; otherwise a checkpoint there is refused.

    Returns:
        a dict with ``accuracy`` (the final test accuracy), ``steps``, ``seconds`` (training,
        evaluations included), ``stop_reason``, ``eval_accuracy`` (the last evaluation), ``length`` and
        ``seed``.
    """
    for name, value, minimum in (("length", length, 2), ("batch_size", batch_size, 1),
                                 ("eval_size", eval_size, 1), ("test_size", test_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    eval_gen = torch.Generator().manual_seed(seed + 1_000_003)
    test_gen = torch.Generator().manual_seed(seed + 2_000_029)

    def data(generator: torch.Generator):
        return palindromes(batch_size, length, generator=generator)

    def evaluate(m: nn.Module) -> dict[str, float]:
        dev = next(m.parameters()).device
        x, y = palindromes(eval_size, length, generator=eval_gen, device=dev)
        return {"accuracy": (m(x).argmax(-1) == y).float().mean()}

    config = {"task": "palindrome", "cell": model.cell_type, "length": length, "input": model.input,
              "hidden_size": model.hidden_size, "init": model.init, "batch_size": batch_size,
              "forget_bias": getattr(model.rnn.cell, "forget_bias", 0.0)}
    trainer = Trainer(model, optimizer=optimizer, lr=lr, clip_grad_norm=clip_grad_norm, max_steps=max_steps,
                      eval_every=eval_every, monitor="accuracy", target=target, seed=seed, device=device,
                      progress=progress, out_dir=out_dir, overwrite=overwrite, config=config,
                      desc=f"{model.cell_type} T={length}")
    if resume and trainer.checkpoint_path is not None and trainer.checkpoint_path.is_file():
        # the evaluation stream continues where it stopped: skip the draws already made
        trainer.load_checkpoint()
        for _ in range(len(trainer.history)):
            palindromes(eval_size, length, generator=eval_gen)
    result = trainer.fit(_loss, data, evaluate, resume=resume)
    accuracy = palindrome_accuracy(model, length, test_size, generator=test_gen)
    return {"accuracy": accuracy, "steps": result["step"], "seconds": result["seconds"],
            "stop_reason": result["stop_reason"], "eval_accuracy": result["last_eval"].get("accuracy"),
            "length": length, "seed": seed}


def train_palindrome(cell: str = "lstm", length: int = 20, *, input: str = "scalar", hidden_size: int = 128,
                     init: str = "xavier_uniform", forget_bias: float = 0.0, fused: bool = True,
                     seed: int = 0, **fit_kwargs: Any) -> dict[str, Any]:
    """Build a :class:`SequenceClassifier` (weights seeded by ``seed``) and train it on palindromes.

    Args:
        cell, input, hidden_size, init, fused: as for :class:`SequenceClassifier`.
        length: palindrome length ``T`` (the model reads ``T - 1`` digits). (default: ``20``)
        forget_bias: initial forget-gate bias; used by the LSTM, ignored for ``cell="rnn"``.
        seed: seeds the weights, the training stream and the evaluation streams. (default: ``0``)
        **fit_kwargs: passed to :func:`fit_palindrome`: ``batch_size=128``, ``optimizer="rmsprop"``,
            ``lr=1e-3``, ``max_steps=5000``, ``clip_grad_norm=10``, ``eval_every=10``, ``eval_size=512``,
            ``test_size=2048``, ``target=1.0``, ``device="auto"``, ``out_dir=None``, ``resume=False``,
            ``overwrite=False``, ``progress=False``.

    Returns:
        the dict of :func:`fit_palindrome` plus ``"cell"``, ``"wall_seconds"`` (construction included).
    """
    start = time.perf_counter()
    _choice("cell", cell, CELLS)
    torch.manual_seed(seed)
    model = SequenceClassifier(cell, hidden_size, input=input, init=init,
                               forget_bias=forget_bias if cell == "lstm" else 0.0, fused=fused)
    result = fit_palindrome(model, length, seed=seed, **fit_kwargs)
    return {"cell": cell, **result, "wall_seconds": time.perf_counter() - start}
