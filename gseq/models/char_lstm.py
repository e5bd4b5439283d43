"""A character-level LSTM language model (embedding -> ``torch.nn.LSTM`` -> ``nn.Linear``) and its loss.

Training it on a text, evaluating it and loading it from a checkpoint is a task: :mod:`gseq.tasks.char_lm`;
sampling text from it is :func:`~gseq.models.generate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import choice, in_range, positive_int

__all__ = ["CharLSTM", "char_lm_loss"]

State = tuple[Tensor, Tensor]
_EMBEDDINGS = ("onehot", "learned")


class CharLSTM(nn.Module):
    r"""Character language model: :math:`p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(W h_t + b)` with
    :math:`h_t` the top layer of a stacked LSTM over the embedded characters :math:`e(x_1), \dots, e(x_t)`.

    The embedding :math:`e` is a one-hot vector (``"onehot"``, the course's and the report's choice; done as
    a lookup into a fixed identity matrix, which equals ``F.one_hot(x).float()`` without building it) or
    a learned ``nn.Embedding`` (``"learned"``).

    Args:
        vocab_size: number of characters :math:`V`.
        hidden_size: LSTM state size :math:`H`. (default: ``128``)
        num_layers: stacked LSTM layers. (default: ``2``)
        dropout: dropout between LSTM layers (ignored for one layer). (default: ``0.0``)
        embedding: ``"onehot"`` or ``"learned"``. (default: ``"onehot"``)
        embedding_dim: size of a learned embedding. (default: ``hidden_size``; unused for ``"onehot"``)

    Shapes:
        - **input:** ids :math:`[B, T]` (``torch.long``), optional state ``(h, c)``, each
          :math:`[L, B, H]` (zeros when None)
        - **output:** logits :math:`[B, T, V]`, new state ``(h, c)``
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        embedding: str = "onehot",
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            positive_int(name, value)
        in_range("dropout", dropout, 0, 1, high_open=True)
        choice("embedding", embedding, _EMBEDDINGS)
        positive_int("embedding_dim", embedding_dim, none_ok=True)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.embedding = embedding
        if embedding == "onehot":
            self.embedding_dim = None
            self.register_buffer("onehot", torch.eye(vocab_size), persistent=False)
            self.embed = None
            input_size = vocab_size
        else:
            self.embedding_dim = embedding_dim or hidden_size
            self.embed = nn.Embedding(vocab_size, self.embedding_dim)
            input_size = self.embedding_dim
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=self.dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, vocab_size)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments as plain data (stored in checkpoints)."""
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "dropout": self.dropout, "embedding": self.embedding, "embedding_dim": self.embedding_dim}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CharLSTM:
        """Rebuild a model from :attr:`config` (e.g. read from a checkpoint)."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config: expected a dict of CharLSTM arguments, got {type(config).__name__}")
        allowed = {"vocab_size", "hidden_size", "num_layers", "dropout", "embedding", "embedding_dim"}
        unknown = sorted(set(config) - allowed)
        if unknown or "vocab_size" not in config:
            raise ValueError(f"config: not a CharLSTM config (unknown keys {unknown}, keys {sorted(config)}); "
                             f"expected keys among {sorted(allowed)} including 'vocab_size'")
        return cls(**dict(config))

    def reset_parameters(self) -> None:
        if self.embed is not None:
            self.embed.reset_parameters()
        self.lstm.reset_parameters()
        self.head.reset_parameters()

    def _inputs(self, ids: Tensor) -> Tensor:
        if self.embed is None:
            return F.embedding(ids, self.onehot)
        return self.embed(ids)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if not isinstance(x, Tensor) or x.dtype not in (torch.long, torch.int32) or x.dim() != 2:
            raise TypeError("x: expected character ids as a [batch, time] integer tensor, got "
                            f"{type(x).__name__} {getattr(x, 'dtype', '')} of shape {tuple(getattr(x, 'shape', ()))}")
        if x.numel() and x.device.type == "cpu":
            lo, hi = torch.aminmax(x)
            if lo < 0 or hi >= self.vocab_size:
                raise ValueError(f"x: ids must lie in [0, {self.vocab_size - 1}], got values in [{int(lo)}, {int(hi)}]")
        out, state = self.lstm(self._inputs(x), state)
        return self.head(out), state

    @property
    def readout_bias(self) -> Tensor:
        """The read-out bias :math:`b` of the logits :math:`W h + b` (``head.bias``), which :meth:`step`'s
        ``bias`` replaces: the optional member of :class:`~gseq.models.CharModel` for noise in the bias."""
        return self.head.bias

    def step(self, ids: Tensor, state: State | None = None, bias: Tensor | None = None) -> tuple[Tensor, State]:
        """One time step without input checks: the ``step`` of :class:`~gseq.models.CharModel`, with the
        optional ``bias`` (:func:`~gseq.models.generate` calls it once per character).

        Args:
            ids: the current characters.
            state: the LSTM state, None for zeros.
            bias: replaces the read-out bias :math:`b` (:attr:`readout_bias`) in the same matrix product,
                e.g. ``b`` plus sampling noise, so that the noisy logits cost no extra operation.
                (default: None, ``b``)

        Shapes:
            ids :math:`[B]`, bias :math:`[B, V]` or :math:`[V]` -> logits :math:`[B, V]`, new state.
        """
        out, state = self.lstm(self._inputs(ids.unsqueeze(1)), state)
        if bias is None:
            return self.head(out.squeeze(1)), state
        return torch.addmm(bias, out.squeeze(1), self.head.weight.t()), state

    def extra_repr(self) -> str:
        return f"embedding={self.embedding!r}"


def char_lm_loss(model: nn.Module, windows: Tensor) -> dict[str, Tensor]:
    r"""Mean cross-entropy over all :math:`B \times T` positions of a batch of windows, and the accuracy
    of the argmax prediction (``loss_fn`` for :class:`gseq.train.Trainer`).

    Shapes:
        windows: :math:`[B, T + 1]`; inputs ``windows[:, :-1]``, targets ``windows[:, 1:]``.
    """
    if not isinstance(windows, Tensor) or windows.dim() != 2 or windows.size(1) < 2 or windows.is_floating_point():
        raise TypeError("windows: expected character ids as a [batch, T + 1] integer tensor with T >= 1, got "
                        f"{type(windows).__name__} {getattr(windows, 'dtype', '')} of shape "
                        f"{tuple(getattr(windows, 'shape', ()))}")
    x, y = windows[:, :-1], windows[:, 1:]
    logits, _ = model(x)
    flat = logits.reshape(-1, logits.size(-1))
    loss = F.cross_entropy(flat, y.reshape(-1))
    acc = (flat.detach().argmax(-1) == y.reshape(-1)).float().mean()
    return {"loss": loss, "acc": acc}
