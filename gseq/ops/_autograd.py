"""Autograd for SpMM, shared by both backends.

``impl`` is the backend that runs the kernels (a module with the functions of
:class:`gseq.ops._backend.Backend`). The gradients are

- sum: :math:`\\partial L/\\partial X = A^\\top G` through the transpose cached on the CSR (a
  row-parallel product, no atomics) and :math:`\\partial L/\\partial v_e = \\langle G_{\\mathrm{row}(e)},
  X_{\\mathrm{col}(e)} \\rangle` (an SDDMM over the entries, never an ``[nnz, F]`` tensor). Both are
  themselves differentiable (an SpMM and an SDDMM, whose gradients are SpMMs again), so gradients of
  any order are exact (``torch.autograd.gradgradcheck`` passes);
- mean: the sum, accumulated and divided by the row counts in float32 (float64 for float64 inputs),
  then cast to the input dtype (so a half-precision row of 70,000 entries has the right mean);
- max/min: the gradient goes to the entry that attained the extreme (``arg``), as in torch_scatter.
  That backward is not differentiable again: a second-order gradient through it raises an error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._backend import Backend
from ._checks import accumulation_dtype
from .csr import CSR

__all__ = ["spmm_reduce", "spmm_sum", "spmm_arg", "row_counts"]


def row_counts(csr: CSR, dtype: torch.dtype) -> Tensor:
    """Entries per row, at least 1 (an empty row divides 0 by 1), as ``dtype`` ``[M]``."""
    return csr.cached(f"counts:{dtype}", lambda: csr.row_counts().clamp(min=1).to(dtype))


def _needs_graph(*ts: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def spmm_sum(csr: CSR, x: Tensor, impl: Backend, dtype: torch.dtype) -> Tensor:
    """:math:`A X` with the values of ``csr``, returned as ``dtype``; differentiable to any order."""
    if _needs_graph(csr.values, x):
        return _SpMMSum.apply(csr.values, x, csr, impl, dtype)
    return impl.spmm_sum(csr, csr.values, x, dtype)


def _sddmm(csr: CSR, a: Tensor, b: Tensor, impl: Backend, dtype: torch.dtype) -> Tensor:
    """:math:`g_e = \\langle a_{\\mathrm{row}(e)}, b_{\\mathrm{col}(e)} \\rangle` as ``dtype``; differentiable."""
    if _needs_graph(a, b):
        return _SDDMM.apply(a, b, csr, impl, dtype)
    return impl.sddmm(csr, a, b, dtype)


class _SpMMSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor | None, x: Tensor, csr: CSR, impl: Backend, dtype: torch.dtype) -> Tensor:
        ctx.csr, ctx.impl, ctx.x_dtype = csr, impl, x.dtype
        ctx.save_for_backward(values, x if ctx.needs_input_grad[0] else None)
        return impl.spmm_sum(csr, values, x, dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        values, x = ctx.saved_tensors
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:  # A^T G on the cached transpose: an SpMM, differentiable in turn
            grad_x = spmm_sum(ctx.csr.with_values(values).t(), grad, ctx.impl, ctx.x_dtype)
        if ctx.needs_input_grad[0]:
            grad_values = _sddmm(ctx.csr, grad, x, ctx.impl, values.dtype)
        return grad_values, grad_x, None, None, None


class _SDDMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, csr: CSR, impl: Backend, dtype: torch.dtype) -> Tensor:
        ctx.csr, ctx.impl, ctx.dtypes = csr, impl, (a.dtype, b.dtype)
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)
        return impl.sddmm(csr, a, b, dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        weighted = ctx.csr.with_values(grad)  # the edge gradients as the values of A
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:  # sum_e in row(i) g_e b_col(e)
            grad_a = spmm_sum(weighted, b, ctx.impl, ctx.dtypes[0])
        if ctx.needs_input_grad[1]:  # sum_e in col(c) g_e a_row(e)
            grad_b = spmm_sum(weighted.t(), a, ctx.impl, ctx.dtypes[1])
        return grad_a, grad_b, None, None, None


class _SpMMArg(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor | None, x: Tensor, csr: CSR, impl: Backend, reduce: str):
        out, arg = impl.spmm_arg(csr, values, x, reduce)
        ctx.mark_non_differentiable(arg)
        ctx.csr, ctx.impl, ctx.num_cols, ctx.reduce = csr, impl, x.size(0), reduce
        ctx.save_for_backward(values, x if ctx.needs_input_grad[0] else None, arg)
        return out, arg

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_arg: Tensor | None):
        values, x, arg = ctx.saved_tensors
        csr, impl = ctx.csr, ctx.impl
        grad_values = grad_x = None
        with torch.no_grad():
            if ctx.needs_input_grad[1]:
                grad_x = impl.spmm_arg_backward_x(csr, values, grad, arg, ctx.num_cols)
            if ctx.needs_input_grad[0]:
                grad_values = impl.sddmm_arg(csr, grad, x, arg).to(values.dtype)
        if _needs_graph(grad, values, x):  # create_graph=True: a second derivative through here raises, never 0
            grad_values, grad_x = _NoDoubleBackward.apply(ctx.reduce, grad, values, x, grad_values, grad_x)
        return grad_values, grad_x, None, None, None


class _NoDoubleBackward(torch.autograd.Function):
    """The identity on the first-order gradients of max/min; differentiating them raises."""

    @staticmethod
    def forward(ctx, reduce: str, grad: Tensor, values: Tensor | None, x: Tensor | None,
                grad_values: Tensor | None, grad_x: Tensor | None):
        ctx.reduce = reduce  # grad, values, x: what the gradients depend on, so that they are in the graph
        return (None if grad_values is None else grad_values.clone(), None if grad_x is None else grad_x.clone())

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(f"gseq.ops: the gradient of reduce={ctx.reduce!r} is not differentiable again "
                           "(second-order gradients are supported for reduce='sum' and 'mean')")


def spmm_arg(csr: CSR, x: Tensor, reduce: str, impl: Backend) -> tuple[Tensor, Tensor]:
    """Max/min over each row and the arg entry (``nnz`` for an empty row), differentiable in the output."""
    if _needs_graph(csr.values, x):
        return _SpMMArg.apply(csr.values, x, csr, impl, reduce)
    return impl.spmm_arg(csr, csr.values, x, reduce)


def spmm_reduce(csr: CSR, x: Tensor, reduce: str, impl: Backend) -> Tensor:
    """``reduce`` over each row of :math:`v_e X_{\\mathrm{col}(e)}` with the kernels of ``impl`` (inputs validated)."""
    if reduce in ("sum", "add"):
        return spmm_sum(csr, x, impl, x.dtype)
    if reduce == "mean":
        acc = accumulation_dtype(x.dtype)
        return (spmm_sum(csr, x, impl, acc) / row_counts(csr, acc)[:, None]).to(x.dtype)
    return spmm_arg(csr, x, reduce, impl)[0]
