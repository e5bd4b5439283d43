"""The fast path of :class:`gseq.layers.RNN` and :class:`gseq.layers.LSTM`: a whole sequence in one
autograd node.

The reference path in :mod:`gseq.layers.recurrent` runs the cell equations step by step and lets
autograd record every small operation (about 15 nodes per LSTM step). Here the same equations run
without recording, and the backward pass through time is written out by hand:

* the input projections of all time steps are one batched matrix product;
* states are kept feature-major (``[H, B]`` per step, buffers ``[T, H, B]``), so every gate block of the
  step's pre-activation ``[4H, B]`` is one contiguous piece of memory: element-wise kernels on
  contiguous memory are several times faster than on strided column slices on the CPU;
* each step adds the recurrent part in place with one ``addmm_``; the LSTM weights are used with
  their gate blocks reordered to ``(o, i, f, g)``, so one ``sigmoid_`` covers ``o, i, f`` and one
  ``tanh_`` covers ``g``; states are written into preallocated buffers (no allocation per step);
* backward precomputes the gate derivatives of all steps at once (large vectorised kernels, written
  into the buffer that then receives dL/dz), so the sequential part is one ``addmm`` for dL/dh, four
  element-wise kernels and two ``addmm_`` accumulating the weight gradients per step.

Under autocast (``torch.autocast("cuda", torch.float16)``, ``torch.autocast("cpu", torch.bfloat16)``)
the whole sequence runs in the autocast dtype, as cuDNN's and oneDNN's LSTMs do: the in-place
``addmm_`` cannot mix a low-precision product with float32 states, so the inputs, states and weights are
cast once on entry and autocast is switched off inside. The weight gradients of half-precision runs are
one matrix product over all ``T * B`` columns, so the sum over time is accumulated in float32 inside
the product and rounded once; float32 and float64 keep the cheaper per-step ``addmm_``.

Only first derivatives are supported (``once_differentiable``): use the reference path
(``fused=False``) for double backward.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..checks import HALF_DTYPES

__all__ = ["rnn_sequence", "lstm_sequence"]


def _to_internal(w: Tensor, hidden: int) -> Tensor:
    """Reorder LSTM gate blocks from torch's ``(i, f, g, o)`` to ``(o, i, f, g)``."""
    i, f, g, o = w.split(hidden, dim=0)
    return torch.cat((o, i, f, g), dim=0)


def _to_torch(w: Tensor, hidden: int) -> Tensor:
    """Inverse of :func:`_to_internal`."""
    o, i, f, g = w.split(hidden, dim=0)
    return torch.cat((i, f, g, o), dim=0)


def _input_projection(x_tm: Tensor, weight_ih: Tensor, bias: Tensor) -> Tensor:
    """``W_ih x_t + b`` for every step, feature-major: ``[T, G, B]`` from ``x_tm`` ``[T, B, I]``."""
    z = torch.matmul(weight_ih, x_tm.transpose(1, 2))
    return z.add_(bias.unsqueeze(1))


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype autocast runs matrix products of ``x`` in, or None outside autocast (and for float64,
    which autocast leaves alone)."""
    kind = x.device.type
    if x.dtype == torch.float64 or kind not in ("cpu", "cuda") or not torch.is_autocast_enabled(kind):
        return None
    return torch.get_autocast_dtype(kind)


def _apply(fn: type[torch.autograd.Function], x_tm: Tensor, *tensors: Tensor):
    """``fn.apply(x_tm, *tensors)``; under autocast with every tensor cast to the autocast dtype and
    autocast off inside (see the module docstring)."""
    dtype = _autocast_dtype(x_tm)
    if dtype is None:
        return fn.apply(x_tm, *tensors)
    with torch.autocast(x_tm.device.type, enabled=False):
        return fn.apply(*(t.to(dtype) for t in (x_tm, *tensors)))


def _weight_grads(dz: Tensor, x_tm: Tensor, hs: Tensor, h0_fm: Tensor, need_wih: bool, need_whh: bool):
    """``sum_t dz_t x_t^T`` and ``sum_t dz_t h_{t-1}^T`` for feature-major ``dz`` [T, G, B]."""
    T, G, B = dz.shape
    if dz.dtype in HALF_DTYPES:  # one product over all steps: float32 accumulation, one rounding
        d = dz.transpose(0, 1).reshape(G, T * B)  # [T, G, B] -> [G, T*B]
        gw_ih = d.mm(x_tm.reshape(T * B, -1)) if need_wih else None
        if not need_whh:
            return gw_ih, None
        prev = torch.cat((h0_fm.unsqueeze(0), hs[:-1])).transpose(1, 2).reshape(T * B, -1)  # h_{t-1}: [T*B, H]
        return gw_ih, d.mm(prev)
    gw_ih = dz.new_zeros(G, x_tm.shape[2]) if need_wih else None
    gw_hh = dz.new_zeros(G, hs.shape[1]) if need_whh else None
    for t in range(T):
        if need_wih:
            gw_ih.addmm_(dz[t], x_tm[t])
        if need_whh:
            gw_hh.addmm_(dz[t], (hs[t - 1] if t > 0 else h0_fm).t())
    return gw_ih, gw_hh


class _RNNSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_tm: Tensor, h0: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor) -> Tensor:
        T = x_tm.shape[0]
        # the buffer holds the pre-activations, then (after tanh_) the hidden states h_t as [H, B]
        hs = _input_projection(x_tm, weight_ih, bias)
        h = h0.t()
        for t in range(T):
            h = hs[t].addmm_(weight_hh, h).tanh_()
        ctx.save_for_backward(x_tm, h0, weight_ih, weight_hh, hs)
        return hs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs: Tensor):
        with torch.autocast(grad_hs.device.type, enabled=False):  # in case backward() runs under autocast
            return _RNNSequence._backward(ctx, grad_hs)

    @staticmethod
    def _backward(ctx, grad_hs: Tensor):
        x_tm, h0, weight_ih, weight_hh, hs = ctx.saved_tensors
        T = x_tm.shape[0]
        # d tanh = 1 - h_t^2 for every step at once; overwritten in place by dL/da_t step by step
        da = torch.mul(hs, hs)
        da.neg_().add_(1.0)
        w_hh_t = weight_hh.t()
        dh = torch.empty_like(hs[0])
        for t in range(T - 1, -1, -1):
            if t == T - 1:
                dh.copy_(grad_hs[t])
            else:
                torch.addmm(grad_hs[t], w_hh_t, da[t + 1], out=dh)
            da[t].mul_(dh)
        need_x, need_h0, need_wih, need_whh, need_b = ctx.needs_input_grad
        grad_x = torch.matmul(da.transpose(1, 2), weight_ih) if need_x else None
        grad_h0 = w_hh_t.mm(da[0]).t() if need_h0 else None
        grad_wih, grad_whh = _weight_grads(da, x_tm, hs, h0.t(), need_wih, need_whh)
        grad_b = da.sum((0, 2)) if need_b else None
        return grad_x, grad_h0, grad_wih, grad_whh, grad_b


class _LSTMSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_tm, h0, c0, weight_ih, weight_hh, bias):
        T, B, _ = x_tm.shape
        H = weight_hh.shape[1]
        w_ih, w_hh, b = (_to_internal(w, H) for w in (weight_ih, weight_hh, bias))
        gates = _input_projection(x_tm, w_ih, b)  # [T, 4H, B]: input part now, recurrent part per step
        hs = x_tm.new_empty(T, H, B)
        cs = x_tm.new_empty(T, H, B)
        tcs = x_tm.new_empty(T, H, B)  # tanh(c_t)
        c0_fm = c0.t().contiguous()
        h, c = h0.t(), c0_fm
        for t in range(T):
            z = gates[t].addmm_(w_hh, h)
            z[: 3 * H].sigmoid_()
            z[3 * H :].tanh_()
            o, i, f, g = z[:H], z[H : 2 * H], z[2 * H : 3 * H], z[3 * H :]
            c = torch.mul(f, c, out=cs[t]).addcmul_(i, g)
            h = torch.mul(o, torch.tanh(c, out=tcs[t]), out=hs[t])
        ctx.save_for_backward(x_tm, h0, c0_fm, w_ih, w_hh, hs)
        ctx.buffers = (gates, cs, tcs)
        return hs, cs[T - 1].t().contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs, grad_cT):
        with torch.autocast(grad_hs.device.type, enabled=False):  # in case backward() runs under autocast
            return _LSTMSequence._backward(ctx, grad_hs, grad_cT)

    @staticmethod
    def _backward(ctx, grad_hs: Tensor, grad_cT: Tensor):
        x_tm, h0, c0_fm, w_ih, w_hh, hs = ctx.saved_tensors
        gates, cs, tcs = ctx.buffers
        T, H = hs.shape[:2]
        o, i, f, g = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
        # derivative factors of all steps, vectorised; dz (below) then overwrites them step by step:
        #   dz_o = dh * tanh(c) o (1 - o)                   dc = dh * o (1 - tanh(c)^2) + dc_{t+1} f_{t+1}
        #   dz_i = dc * g i (1 - i)   dz_f = dc * c_{t-1} f (1 - f)   dz_g = dc * i (1 - g^2)
        dz = torch.empty_like(gates)
        sig = gates[:, : 3 * H]
        torch.addcmul(sig, sig, sig, value=-1.0, out=dz[:, : 3 * H])
        dz[:, :H].mul_(tcs)
        dz[:, H : 2 * H].mul_(g)
        dz[1:, 2 * H : 3 * H].mul_(cs[:-1])
        dz[0, 2 * H : 3 * H].mul_(c0_fm)
        torch.mul(g, g, out=dz[:, 3 * H :])
        torch.addcmul(i, i, dz[:, 3 * H :], value=-1.0, out=dz[:, 3 * H :])
        dc_from_dh = torch.mul(tcs, tcs)
        torch.addcmul(o, o, dc_from_dh, value=-1.0, out=dc_from_dh)

        w_hh_t = w_hh.t()
        carry = grad_cT.t().clone(memory_format=torch.contiguous_format)  # dL/dc_t, coming back from step t+1
        dh = torch.empty_like(carry)
        for t in range(T - 1, -1, -1):
            if t == T - 1:
                dh.copy_(grad_hs[t])
            else:
                torch.addmm(grad_hs[t], w_hh_t, dz[t + 1], out=dh)
            carry.addcmul_(dh, dc_from_dh[t])
            dz[t, :H].mul_(dh)
            dz[t, H:].view(3, H, -1).mul_(carry.unsqueeze(0))
            carry.mul_(f[t])
        need_x, need_h0, need_c0, need_wih, need_whh, need_b = ctx.needs_input_grad
        grad_x = torch.matmul(dz.transpose(1, 2), w_ih) if need_x else None
        grad_h0 = w_hh_t.mm(dz[0]).t() if need_h0 else None
        grad_c0 = carry.t() if need_c0 else None
        gw_ih, gw_hh = _weight_grads(dz, x_tm, hs, h0.t(), need_wih, need_whh)
        grad_wih = _to_torch(gw_ih, H) if need_wih else None
        grad_whh = _to_torch(gw_hh, H) if need_whh else None
        grad_b = _to_torch(dz.sum((0, 2)), H) if need_b else None
        return grad_x, grad_h0, grad_c0, grad_wih, grad_whh, grad_b


def rnn_sequence(x_tm: Tensor, h0: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor) -> Tensor:
    """All hidden states of a tanh RNN, feature-major ``[T, H, B]``, for a time-major input ``[T, B, I]``
    and an initial state ``h0`` ``[B, H]``."""
    return _apply(_RNNSequence, x_tm, h0, weight_ih, weight_hh, bias)


def lstm_sequence(x_tm: Tensor, h0: Tensor, c0: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                  bias: Tensor) -> tuple[Tensor, Tensor]:
    """All hidden states of an LSTM (torch gate order ``i, f, g, o``), feature-major ``[T, H, B]``, and
    the last cell state ``[B, H]``, for a time-major input ``[T, B, I]`` and ``h0``, ``c0`` ``[B, H]``."""
    return _apply(_LSTMSequence, x_tm, h0, c0, weight_ih, weight_hh, bias)
