r"""Sequence classification with the hand-written cells.

:class:`SequenceClassifier` reads a digit sequence with an :class:`~gseq.layers.RNN` or
:class:`~gseq.layers.LSTM` and classifies from the last hidden state, :math:`p = W_{ph} h_T + b_p`.
Training it on palindromes is a task: :mod:`gseq.tasks.palindrome`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import choice, instance, positive_int
from ..data.palindromes import NUM_DIGITS
from ..layers.recurrent import INITS, LSTM, RNN, _init_blocks

__all__ = ["SequenceClassifier", "CELLS", "INPUTS"]

#: the recurrent cells a :class:`SequenceClassifier` can use
CELLS = ("rnn", "lstm")
#: how digits enter the model: one scalar channel (the course's set-up) or one-hot over 10 channels
INPUTS = ("scalar", "onehot")


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
        self.cell_type = choice("cell", cell, CELLS)
        self.input = choice("input", input, INPUTS)
        choice("init", init, INITS)
        positive_int("hidden_size", hidden_size), positive_int("num_classes", num_classes)
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
        instance("x", x, Tensor, "a tensor of token indices")
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
