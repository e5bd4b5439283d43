r"""Sparse products that ``torch.compile`` traces: a matrix reached through an *anchor* tensor.

``torch.compile`` traces tensors, not Python objects, and a ``torch.library`` custom operator takes
tensors and plain scalars only. An object that owns a square sparse matrix (an :class:`AnchorOwner`:
the :class:`~gseq.layers.GCNGraph` of a GCN layer) therefore makes one empty *anchor* tensor that refers
back to it (:func:`make_anchor`), before any tracing. The custom operator
``gseq::anchored_spmm(x, anchor, transpose)`` finds the matrix through the anchor (:func:`owner_of`) and
computes :math:`A x` or :math:`A^\top x`: one opaque node of the compiled graph, no host
synchronisation, and a backward that is the product with the transpose. Saving the anchor for the
backward keeps its owner alive.

:func:`scaled_spmm` is the normalised sum of a GCN layer, :math:`s_t \odot (A (s_s \odot x)) + c \odot x`
(:math:`\odot` scales rows), as one autograd node with a hand-written backward.

Internal to gseq: the path of :class:`gseq.layers.GCN` to compiled products (the public sparse product
is :func:`gseq.ops.spmm`). The inputs are trusted: the owner built and validated its matrix once, and the
caller passes ``x`` as ``[N, F]`` on the matrix's device.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._autograd import spmm_sum
from ._backend import resolve
from .csr import CSR

__all__ = ["AnchorOwner", "make_anchor", "owner_of", "anchored_spmm", "scaled_spmm"]


class AnchorOwner(Protocol):
    """What an anchor refers to: an object that hands out its square sparse matrix :math:`A`."""

    def adjacency(self, dtype: torch.dtype, transpose: bool = False) -> CSR:
        """:math:`A` (:math:`A^\\top` with ``transpose``), ``[N, N]``, with values of ``dtype`` (or None)
        that need no gradient; built once and kept."""


def make_anchor(owner: AnchorOwner, device: torch.device) -> Tensor:
    """An empty tensor on ``device`` that refers back to ``owner`` (made once, before tracing)."""
    anchor = torch.empty(0, device=device)
    anchor._gseq_graph = owner
    return anchor


def owner_of(anchor: Tensor) -> AnchorOwner:
    """The owner that ``anchor`` refers to."""
    owner = getattr(anchor, "_gseq_graph", None)
    if owner is None:
        raise RuntimeError("gseq: this tensor is not an anchor (pass graph.anchor)")
    return owner


def _product(x: Tensor, anchor: Tensor, transpose: bool) -> Tensor:
    """:math:`A x` (:math:`A^\\top x`) through :func:`gseq.ops.spmm`'s kernels, differentiable in ``x``."""
    return spmm_sum(owner_of(anchor).adjacency(x.dtype, transpose), x, resolve("auto", x.device), x.dtype)


@torch.library.custom_op("gseq::anchored_spmm", mutates_args=())
def _anchored_spmm(x: Tensor, anchor: Tensor, transpose: bool) -> Tensor:
    """``A x`` (``A^T x`` with ``transpose``), ``A`` the matrix of the owner of ``anchor``."""
    return _product(x, anchor, transpose)


@_anchored_spmm.register_fake
def _(x: Tensor, anchor: Tensor, transpose: bool) -> Tensor:
    return torch.empty_like(x)  # A is square, [N, N]


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[1])  # the anchor keeps its owner alive until the backward has run
    ctx.transpose = inputs[2]


def _backward(ctx, grad: Tensor):
    (anchor,) = ctx.saved_tensors
    return _anchored_spmm(grad, anchor, not ctx.transpose), None, None


_anchored_spmm.register_autograd(_backward, setup_context=_setup_context)


def anchored_spmm(x: Tensor, anchor: Tensor, transpose: bool = False) -> Tensor:
    r""":math:`A x` (:math:`A^\top x` with ``transpose``) for the matrix of ``anchor``'s owner, ``[N, F]``.

    The custom operator when traced by ``torch.compile``; eagerly, its body, without the overhead of a
    custom operator's dispatch.
    """
    if torch.compiler.is_compiling():
        return _anchored_spmm(x, anchor, transpose)
    return _product(x, anchor, transpose)


class _ScaledSpMM(torch.autograd.Function):
    """``s_t * (A @ (s_s * x)) + c * x`` as one autograd node (``s_s=None``: ``s_s = s_t``).

    The same numbers as the composition of dense scalings around the sparse product, with fewer passes
    over the ``[N, F]`` tensors: the forward scales in place, and the backward computes
    ``s_s * (A^T (s_t * G)) + c * G`` through the owner's transpose, plus the row sums that give the
    gradients of ``s_t``, ``s_s`` and ``c`` only when they are needed.
    """

    @staticmethod
    def forward(ctx, x: Tensor, s_t: Tensor, s_s: Tensor | None, c: Tensor, anchor: Tensor) -> Tensor:
        need_x, need_st, need_ss, need_c = ctx.needs_input_grad[:4]
        ctx.same_s = s_s is None
        if ctx.same_s:
            s_s, need_ss = s_t, need_st
        ctx.need = (need_x, need_st, need_ss, need_c)
        agg = anchored_spmm(x * s_s.unsqueeze(-1), anchor)  # A @ (s_s * x), [N, F]
        out = agg * s_t.unsqueeze(-1) if need_st else agg.mul_(s_t.unsqueeze(-1))
        out.addcmul_(x, c.unsqueeze(-1))
        ctx.save_for_backward(x if (need_ss or need_c) else None, s_t, s_s, c, agg if need_st else None, anchor)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, s_t, s_s, c, agg, anchor = ctx.saved_tensors
        need_x, need_st, need_ss, need_c = ctx.need
        grad_x = grad_st = grad_ss = grad_c = None
        if need_x or need_ss:
            back = anchored_spmm(grad * s_t.unsqueeze(-1), anchor, transpose=True)  # A^T (s_t * G)
            if need_ss:
                grad_ss = (back * x).sum(dim=1)
            if need_x:
                grad_x = back.mul_(s_s.unsqueeze(-1)).addcmul_(grad, c.unsqueeze(-1))
        if need_st:
            grad_st = (grad * agg).sum(dim=1)
        if need_c:
            grad_c = (grad * x).sum(dim=1)
        if ctx.same_s:  # s_t played both parts: its gradient is the sum of the two
            grad_st, grad_ss = (grad_st + grad_ss if need_st else None), None
        return grad_x, grad_st, grad_ss, grad_c, None


def scaled_spmm(anchor: Tensor, x: Tensor, s_t: Tensor, s_s: Tensor | None, c: Tensor) -> Tensor:
    r""":math:`s_t \odot (A (s_s \odot x)) + c \odot x` for the matrix :math:`A` of ``anchor``'s owner.

    One autograd node, differentiable in ``x``, ``s_t``, ``s_s`` and ``c`` (not in the values of
    :math:`A`, which the owner hands out detached). Pass ``s_s=None`` for :math:`s_s = s_t`
    (``torch.compile`` cannot take one tensor for two arguments of an autograd function).

    Shapes:
        - **x:** :math:`(N, F)`; **s_t**, **s_s**, **c:** :math:`(N,)`; **output:** :math:`(N, F)`.
    """
    return _ScaledSpMM.apply(x, s_t, s_s, c, anchor)
