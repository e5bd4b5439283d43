r"""Recurrent cells written from their equations, with explicit parameters, and sequence wrappers.

No ``nn.RNN``, ``nn.LSTM``, ``nn.RNNCell``, ``nn.LSTMCell`` or ``nn.Linear`` is used: every weight is an
``nn.Parameter`` of its own. Names, shapes and the gate order are torch's (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``; gates ``i, f, g, o``), so weights copy across from ``torch.nn.RNNCell`` /
``torch.nn.LSTMCell`` with ``load_state_dict`` and give the same outputs and gradients.

Torch keeps two bias vectors where the equations have one: the bias of the equations is
``b = bias_ih + bias_hh``. ``bias="single"`` keeps only ``bias_ih`` (then ``bias_hh`` is ``None``), which
is the parameter count of the equations, :func:`lstm_num_parameters`.

:class:`RNN` and :class:`LSTM` run a cell over a batch-first sequence. By default they take a fast path
(:mod:`gseq.layers._recurrent_fused`: one matrix product for the input projections of all steps, one
``addmm`` per step for the recurrent part, gate math in a few kernels, a hand-written backward through
time); ``fused=False`` steps through :meth:`RNNCell.forward` / :meth:`LSTMCell.forward`, the readable
reference. The two agree to rounding (tested). Both run under ``torch.autocast``: the fast path then
computes the whole sequence in the autocast dtype (as cuDNN does), and inputs or states already in that
dtype are accepted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..checks import choice, finite_float, instance, positive_int
from ._recurrent_fused import lstm_sequence, rnn_sequence

__all__ = ["RNNCell", "LSTMCell", "RNN", "LSTM", "lstm_num_parameters", "INITS"]

#: weight initialisations by name; each gate block of a weight matrix is initialised on its own
INITS = ("xavier_uniform", "kaiming_normal", "orthogonal")
_BIAS_MODES = ("double", "single")


def lstm_num_parameters(d: int, n: int) -> int:
    r"""Parameters of an LSTM cell with input size ``d`` and hidden size ``n`` as the equations count them:

    .. math::
        4dn + 4n^2 + 4n

    four gates, each with an input matrix (:math:`n \times d`), a recurrent matrix (:math:`n \times n`)
    and one bias (:math:`n`). ``LSTMCell(d, n, bias="single")`` has exactly this many parameters; the
    torch-compatible default ``bias="double"`` has ``4n`` more (the redundant second bias ``bias_hh``).
    """
    positive_int("d", d), positive_int("n", n)
    return 4 * d * n + 4 * n * n + 4 * n


def _init_blocks(weight: Tensor, blocks: int, init: str) -> None:
    """Initialise each of the ``blocks`` row blocks (one per gate) of ``weight`` on its own, as a
    separate ``W_gx``, ``W_ix``, ... matrix would be."""
    with torch.no_grad():
        for block in weight.chunk(blocks, dim=0):
            tmp = torch.empty_like(block)
            if init == "xavier_uniform":
                nn.init.xavier_uniform_(tmp)
            elif init == "kaiming_normal":
                nn.init.kaiming_normal_(tmp)
            else:
                nn.init.orthogonal_(tmp)
            block.copy_(tmp)


def _dtype_ok(cell: nn.Module, t: Tensor) -> bool:
    """``t`` has the parameters' dtype, or the autocast dtype inside an autocast region."""
    if t.dtype == cell.weight_ih.dtype:
        return True
    kind = t.device.type
    return kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind) and t.dtype == torch.get_autocast_dtype(kind)


def _check_step_input(cell: nn.Module, x: Tensor, name: str = "x") -> None:
    instance(name, x, Tensor, "a tensor")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}; "
                         "encode integer tokens first (e.g. x.float() or one-hot)")
    if not _dtype_ok(cell, x):
        raise ValueError(f"{name}: dtype {x.dtype} differs from the parameters' {cell.weight_ih.dtype}; "
                         f"convert with .to({cell.weight_ih.dtype}) (or run under torch.autocast)")
    if x.dim() != 2 or x.shape[1] != cell.input_size:
        raise ValueError(f"{name}: expected shape [batch, input_size={cell.input_size}], got {list(x.shape)}")


def _check_state(cell: nn.Module, s: Tensor, batch: int, name: str) -> None:
    instance(name, s, Tensor, "a tensor")
    if s.shape != (batch, cell.hidden_size):
        raise ValueError(f"{name}: expected shape [batch={batch}, hidden_size={cell.hidden_size}], "
                         f"got {list(s.shape)}")
    if not _dtype_ok(cell, s):
        raise ValueError(f"{name}: dtype {s.dtype} differs from the parameters' {cell.weight_ih.dtype}")


def _initial_state(cell: nn.Module, state, x: Tensor, names: tuple[str, ...]) -> tuple[Tensor, ...]:
    """The state a step or a sequence starts from, checked against ``cell`` and the batch of ``x``: one
    tensor (``names`` ``("h",)``) or a pair (``("h", "c")``), returned as a tuple; zeros when None."""
    if state is None:
        return (x.new_zeros(x.shape[0], cell.hidden_size),) * len(names)
    if len(names) == 1:
        state = (state,)
    elif not isinstance(state, (tuple, list)) or len(state) != len(names):
        raise ValueError(f"state: expected a pair ({', '.join(names)})")
    for s, name in zip(state, names):
        _check_state(cell, s, x.shape[0], name)
    return tuple(state)


class _Cell(nn.Module):
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, init: str = "xavier_uniform",
                 bias: str = "double", device=None, dtype=None) -> None:
        super().__init__()
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.init = choice("init", init, INITS)
        self.bias_mode = choice("bias", bias, _BIAS_MODES)
        kw = {"device": device, "dtype": dtype}
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(rows, **kw))
        if bias == "double":
            self.bias_hh = nn.Parameter(torch.empty(rows, **kw))
        else:
            self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        _init_blocks(self.weight_ih, self.gates, self.init)
        _init_blocks(self.weight_hh, self.gates, self.init)
        nn.init.zeros_(self.bias_ih)
        if self.bias_hh is not None:
            nn.init.zeros_(self.bias_hh)

    def bias(self) -> Tensor:
        """The bias of the equations: ``bias_ih + bias_hh`` (or ``bias_ih`` alone with ``bias="single"``)."""
        return self.bias_ih if self.bias_hh is None else self.bias_ih + self.bias_hh

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, init={self.init!r}, bias={self.bias_mode!r}"


class RNNCell(_Cell):
    r"""One step of a vanilla (Elman) RNN:

    .. math::
        h_t = \tanh(W_{hx} x_t + W_{hh} h_{t-1} + b_h), \qquad b_h = b_{ih} + b_{hh}

    Args:
        input_size: channels of :math:`x_t`.
        hidden_size: channels of :math:`h_t`.
        init: ``"xavier_uniform"`` (default), ``"kaiming_normal"`` or ``"orthogonal"`` for both weight
            matrices; biases start at zero.
        bias: ``"double"`` (default; torch's ``bias_ih`` and ``bias_hh``) or ``"single"`` (``bias_ih`` only).

    Shapes:
        - **input:** :math:`x_t` ``[B, input_size]``, optional :math:`h_{t-1}` ``[B, hidden_size]`` (zeros
          when omitted)
        - **output:** :math:`h_t` ``[B, hidden_size]``
        - **parameters:** ``weight_ih`` ``[H, I]``, ``weight_hh`` ``[H, H]``, ``bias_ih``, ``bias_hh`` ``[H]``
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, init: str = "xavier_uniform",
                 bias: str = "double", device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, init=init, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        _check_step_input(self, x)
        (h,) = _initial_state(self, h, x, ("h",))
        return self._step(x, h)

    def _step(self, x: Tensor, h: Tensor) -> Tensor:
        """:math:`h_t` from ``x`` ``[B, input_size]`` and ``h`` ``[B, hidden_size]``, unchecked: the step
        :meth:`forward` takes after its checks, and :class:`RNN`'s loop takes after checking once."""
        return torch.tanh(x @ self.weight_ih.t() + h @ self.weight_hh.t() + self.bias())


class LSTMCell(_Cell):
    r"""One step of a long short-term memory cell (gate order ``i, f, g, o`` as in torch):

    .. math::
        g_t &= \tanh(W_{gx} x_t + W_{gh} h_{t-1} + b_g) \\
        i_t &= \sigma(W_{ix} x_t + W_{ih} h_{t-1} + b_i) \\
        f_t &= \sigma(W_{fx} x_t + W_{fh} h_{t-1} + b_f) \\
        o_t &= \sigma(W_{ox} x_t + W_{oh} h_{t-1} + b_o) \\
        c_t &= g_t \odot i_t + c_{t-1} \odot f_t \\
        h_t &= \tanh(c_t) \odot o_t

    ``weight_ih`` stacks :math:`[W_{ix}; W_{fx}; W_{gx}; W_{ox}]`, ``weight_hh`` the recurrent matrices in
    the same order, and :math:`b = b_{ih} + b_{hh}`.

    Args:
        input_size: channels of :math:`x_t`.
        hidden_size: channels of :math:`h_t` and :math:`c_t`.
        init: ``"xavier_uniform"`` (default), ``"kaiming_normal"`` or ``"orthogonal"``, applied to each
            gate's matrix on its own; biases start at zero.
        forget_bias: initial value of the forget-gate bias :math:`b_f` (put in ``bias_ih``); ``1.0`` keeps
            the cell state flowing at the start of training. (default: ``0.0``)
        bias: ``"double"`` (default; torch's ``bias_ih`` and ``bias_hh``) or ``"single"`` (``bias_ih``
            only: exactly :func:`lstm_num_parameters` parameters).

    Shapes:
        - **input:** :math:`x_t` ``[B, input_size]``, optional state ``(h, c)``, each ``[B, hidden_size]``
          (zeros when omitted)
        - **output:** ``(h_t, c_t)``, each ``[B, hidden_size]``
        - **parameters:** ``weight_ih`` ``[4H, I]``, ``weight_hh`` ``[4H, H]``, ``bias_ih``, ``bias_hh`` ``[4H]``
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, *, init: str = "xavier_uniform",
                 forget_bias: float = 0.0, bias: str = "double", device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, init=init, bias=bias, device=device, dtype=dtype)
        self.forget_bias = float(finite_float("forget_bias", forget_bias))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            self.bias_ih[self.hidden_size : 2 * self.hidden_size].fill_(self.forget_bias)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        _check_step_input(self, x)
        h, c = _initial_state(self, state, x, ("h", "c"))
        return self._step(x, h, c)

    def _step(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """:math:`(h_t, c_t)` from ``x`` ``[B, input_size]`` and ``h``, ``c`` ``[B, hidden_size]``, unchecked:
        the step :meth:`forward` takes after its checks, and :class:`LSTM`'s loop takes after checking once."""
        z = x @ self.weight_ih.t() + h @ self.weight_hh.t() + self.bias()
        zi, zf, zg, zo = z.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        c = g * i + c * f
        h = torch.tanh(c) * o
        return h, c

    def extra_repr(self) -> str:
        return super().extra_repr() + f", forget_bias={self.forget_bias}"


class _Sequence(nn.Module):
    def __init__(self, cell: _Cell, fused: bool) -> None:
        super().__init__()
        self.cell = cell
        self.fused = bool(fused)

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def _check(self, x: Tensor) -> None:
        instance("x", x, Tensor, "a tensor")
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise ValueError(f"x: expected shape [batch, time >= 1, input_size={self.input_size}] (batch first), "
                             f"got {list(x.shape)}")
        _check_step_input(self.cell, x[:, 0])

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()


class RNN(_Sequence):
    r"""A :class:`RNNCell` run over a batch-first sequence, :math:`h_t = \tanh(W_{hx} x_t + W_{hh} h_{t-1} + b_h)`
    for :math:`t = 1..T`.

    Args:
        input_size, hidden_size, init, bias: as for :class:`RNNCell`.
        fused: take the fast path (same equations, one autograd node per sequence; first derivatives
            only). ``False`` steps through :class:`RNNCell`. (default: ``True``)

    Shapes:
        - **input:** ``x`` ``[B, T, input_size]``, optional ``h0`` ``[B, hidden_size]`` (zeros)
        - **output:** ``(output, h_T)``: all hidden states ``[B, T, hidden_size]`` and the last ``[B, hidden_size]``
    """

    def __init__(self, input_size: int, hidden_size: int, *, init: str = "xavier_uniform", bias: str = "double",
                 fused: bool = True, device=None, dtype=None) -> None:
        super().__init__(RNNCell(input_size, hidden_size, init=init, bias=bias, device=device, dtype=dtype), fused)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x)
        (h0,) = _initial_state(self.cell, h0, x, ("h0",))
        if self.fused:
            cell = self.cell
            hs = rnn_sequence(x.transpose(0, 1), h0, cell.weight_ih, cell.weight_hh, cell.bias())
            out = hs.permute(2, 0, 1)  # [T, H, B] -> [B, T, H]
            return out, out[:, -1]
        h, outputs = h0, []
        for t in range(x.shape[1]):  # checked above, once: each step is the equation alone
            h = self.cell._step(x[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


class LSTM(_Sequence):
    r"""A :class:`LSTMCell` run over a batch-first sequence.

    Args:
        input_size, hidden_size, init, forget_bias, bias: as for :class:`LSTMCell`.
        fused: take the fast path (same equations, one autograd node per sequence; first derivatives
            only). ``False`` steps through :class:`LSTMCell`. (default: ``True``)

    Shapes:
        - **input:** ``x`` ``[B, T, input_size]``, optional ``state = (h0, c0)``, each ``[B, hidden_size]`` (zeros)
        - **output:** ``(output, (h_T, c_T))``: all hidden states ``[B, T, hidden_size]`` and the final state
    """

    def __init__(self, input_size: int, hidden_size: int, *, init: str = "xavier_uniform", forget_bias: float = 0.0,
                 bias: str = "double", fused: bool = True, device=None, dtype=None) -> None:
        cell = LSTMCell(input_size, hidden_size, init=init, forget_bias=forget_bias, bias=bias, device=device,
                        dtype=dtype)
        super().__init__(cell, fused)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        self._check(x)
        h0, c0 = _initial_state(self.cell, state, x, ("h0", "c0"))
        if self.fused:
            cell = self.cell
            hs, c = lstm_sequence(x.transpose(0, 1), h0, c0, cell.weight_ih, cell.weight_hh, cell.bias())
            out = hs.permute(2, 0, 1)  # [T, H, B] -> [B, T, H]
            return out, (out[:, -1], c)
        h, c, outputs = h0, c0, []
        for t in range(x.shape[1]):  # checked above, once: each step is the equation alone
            h, c = self.cell._step(x[:, t], h, c)
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)
