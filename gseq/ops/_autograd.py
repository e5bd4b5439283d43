"""Autograd for SpMM, shared by both backends.

A backend is a module with ``spmm_sum``, ``sddmm``, ``spmm_arg``, ``spmm_arg_backward_x`` and
``sddmm_arg`` (see :mod:`gseq.ops._torch`). The gradients are

- sum: :math:`\\partial L/\\partial X = A^\\top G` through the transpose cached on the CSR (a
  row-parallel product, no atomics) and :math:`\\partial L/\\partial v_e = \\langle G_{\\mathrm{row}(e)},
  X_{\\mathrm{col}(e)} \\rangle` (an SDDMM over the entries, never an ``[nnz, F]`` tensor);
- mean: the sum divided by the row counts (dense, so autograd differentiates it);
- max/min: the gradient goes to the entry that attained the extreme (``arg``), as in torch_scatter.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .csr import CSR

__all__ = ["spmm_reduce"]


class _SpMMSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor | None, x: Tensor, csr: CSR, impl: ModuleType) -> Tensor:
        ctx.csr, ctx.impl = csr, impl
        ctx.save_for_backward(values, x if ctx.needs_input_grad[0] else None)
        return impl.spmm_sum(csr, values, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        values, x = ctx.saved_tensors
        csr, impl = ctx.csr, ctx.impl
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            t = csr.with_values(values).t()
            grad_x = impl.spmm_sum(t, t.values, grad)
        if ctx.needs_input_grad[0]:
            grad_values = impl.sddmm(csr, grad, x).to(values.dtype)
        return grad_values, grad_x, None, None


class _SpMMArg(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor | None, x: Tensor, csr: CSR, impl: ModuleType, reduce: str) -> Tensor:
        out, arg = impl.spmm_arg(csr, values, x, reduce)
        ctx.csr, ctx.impl, ctx.num_cols = csr, impl, x.size(0)
        ctx.save_for_backward(values, x if ctx.needs_input_grad[0] else None, arg)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        values, x, arg = ctx.saved_tensors
        csr, impl = ctx.csr, ctx.impl
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = impl.spmm_arg_backward_x(csr, values, grad, arg, ctx.num_cols)
        if ctx.needs_input_grad[0]:
            grad_values = impl.sddmm_arg(csr, grad, x, arg).to(values.dtype)
        return grad_values, grad_x, None, None, None


def spmm_reduce(csr: CSR, x: Tensor, reduce: str, impl: ModuleType) -> Tensor:
    """``reduce`` over each row of :math:`v_e X_{\\mathrm{col}(e)}` with the kernels of ``impl`` (inputs validated)."""
    values = csr.values
    grad = torch.is_grad_enabled() and (x.requires_grad or (values is not None and values.requires_grad))
    if reduce in ("sum", "add", "mean"):
        out = _SpMMSum.apply(values, x, csr, impl) if grad else impl.spmm_sum(csr, values, x)
        if reduce == "mean":
            counts = csr.row_counts().clamp(min=1).to(out.dtype)
            out = out / counts[:, None]
        return out
    if not grad:
        return impl.spmm_arg(csr, values, x, reduce)[0]
    return _SpMMArg.apply(values, x, csr, impl, reduce)
