r"""How far back the loss reaches: gradient norms of the hidden states through time.

For a :class:`~gseq.models.SequenceClassifier` with loss :math:`\mathcal{L}` at the last step only,
:func:`hidden_grad_norms` returns :math:`\lVert \partial \mathcal{L} / \partial h_t \rVert` for
:math:`t = 1..T`. The derivative is the total one, through all later steps
(:math:`\partial \mathcal{L}/\partial h_t = \partial \mathcal{L}/\partial h_{t+1} \cdot \partial h_{t+1}/\partial h_t`
for the RNN; through :math:`h` and :math:`c` for the LSTM), so its decay with :math:`T - t` shows
vanishing gradients directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import instance

__all__ = ["hidden_grad_norms"]


def hidden_grad_norms(model, x: Tensor, y: Tensor) -> Tensor:
    r"""Batch-averaged norms of :math:`\partial \ell / \partial h_t` for every step.

    .. math::
        n_t = \frac{1}{B} \sum_{b=1}^{B} \Big\lVert \frac{\partial \ell_b}{\partial h_t^{(b)}} \Big\rVert_2,
        \qquad \ell_b = \mathrm{CE}(W_{ph} h_T^{(b)} + b_p,\; y_b)

    (sample :math:`b`'s loss at the last step depends on its own hidden states only, so each row of the
    gradient of :math:`\sum_b \ell_b` is one sample's gradient). The model is run step by step through
    its cell (the reference path) with the graph kept, and nothing is written into the parameters'
    ``.grad``.

    Args:
        model: a :class:`~gseq.models.SequenceClassifier`.
        x: token indices ``[B, T]``.
        y: targets ``[B]``.

    Returns:
        a float tensor ``[T]`` on the CPU: entry ``t - 1`` is :math:`n_t`.
    """
    from ..models.sequence import SequenceClassifier

    instance("model", model, SequenceClassifier, "a gseq.models.SequenceClassifier")
    if not isinstance(y, Tensor) or y.dim() != 1 or y.dtype != torch.long:
        raise ValueError("y: expected a LongTensor of class indices with shape [batch]")
    inputs = model.encode(x)
    if y.shape[0] != inputs.shape[0]:
        raise ValueError(f"y: expected {inputs.shape[0]} targets (one per sequence in x), got {y.shape[0]}")
    if int(y.min()) < 0 or int(y.max()) >= model.num_classes:
        raise ValueError(f"y: class indices must lie in 0..{model.num_classes - 1}")
    cell = model.rnn.cell
    B, T, _ = inputs.shape
    with torch.enable_grad():
        h = inputs.new_zeros(B, model.hidden_size)
        c = torch.zeros_like(h)
        hidden = []
        for t in range(T):  # model.encode checked the inputs once: each step is the cell's equation alone
            if model.cell_type == "lstm":
                h, c = cell._step(inputs[:, t], h, c)
            else:
                h = cell._step(inputs[:, t], h)
            hidden.append(h)
        loss = F.cross_entropy(model.readout(h), y, reduction="sum")
        grads = torch.autograd.grad(loss, hidden)
    return torch.stack([g.norm(dim=1).mean() for g in grads]).detach().cpu()
