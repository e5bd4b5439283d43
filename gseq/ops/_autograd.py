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

from ._backend import Backend, backend_module
from ._checks import accumulation_dtype
from .csr import CSR

__all__ = ["spmm_reduce", "spmm_sum", "scaled_spmm", "spmm_arg", "row_counts"]


def row_counts(csr: CSR, dtype: torch.dtype) -> Tensor:
    """Entries per row, at least 1 (an empty row divides 0 by 1), as ``dtype`` ``[M]``."""
    counts = csr.structure.mean_counts.get(dtype)
    if counts is None:
        counts = csr.structure.mean_counts[dtype] = csr.row_counts().clamp(min=1).to(dtype)
    return counts


def _needs_graph(*ts: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def spmm_sum(csr: CSR, x: Tensor, impl: Backend, dtype: torch.dtype) -> Tensor:
    """:math:`A X` with the values of ``csr``, returned as ``dtype``; differentiable to any order."""
    return scaled_spmm(csr, x, impl, dtype)


def scaled_spmm(csr: CSR, x: Tensor, impl: Backend, dtype: torch.dtype, row_scale: Tensor | None = None,
                col_scale: Tensor | None = None, diag: Tensor | None = None) -> Tensor:
    r""":math:`r \odot (A (s \odot X)) + d \odot X` (:math:`\odot` scales rows; a missing scaling is 1, a
    missing ``diag`` 0), returned as ``dtype``; differentiable in ``x``, the scalings and the values.

    Values that need no gradient (a graph's fixed edge weights, or none) take the custom operator
    ``gseq::scaled_spmm`` under ``torch.compile``, which traces it without a graph break or a host sync;
    values that need one take :class:`_SpMMSum` (eagerly: a graph break under ``torch.compile``). Eagerly,
    the operator's body runs without its dispatch: directly with nothing to differentiate (an
    evaluation), else through :class:`_ScaledSpMM`, the same body and gradients as a plain
    ``autograd.Function``. Same kernels, same bits; the dispatch and its autograd cost a few hundred
    microseconds a call, forward and backward, which is most of a step on a small graph
    (`benchmarks/bench_gcn2.py --forward`, `benchmarks/temporal_pgt.py --speed chickenpox`).
    """
    if _needs_graph(csr.values):
        y = x if col_scale is None else x * col_scale.unsqueeze(-1)
        out = _spmm_sum_values_grad(csr, y, impl, dtype)
        out = out if row_scale is None else out * row_scale.unsqueeze(-1)
        return out if diag is None else out + x * diag.unsqueeze(-1)
    if not torch.compiler.is_compiling():  # eagerly: the operator's body without its dispatch
        if _needs_graph(x, row_scale, col_scale, diag):
            return _ScaledSpMM.apply(x, row_scale, col_scale, diag, csr, impl, dtype)[0]
        values, _ = impl.kernel_inputs(csr, x.dtype)
        return _scaled_spmm_body(impl, csr, values, x, row_scale, col_scale, diag, False, dtype)[0]
    values, work = impl.kernel_inputs(csr, x.dtype)
    if _needs_graph(x, col_scale):  # the backward multiplies with the transpose (its pattern is kept)
        t = csr.t()
        values_t, work_t = impl.kernel_inputs(t, x.dtype)
    else:  # no backward product: the transpose is not built
        t, values_t, work_t = csr, values, work
    keep = _needs_graph(row_scale)  # the gradient of row_scale needs A (s x)
    return _scaled_spmm_op(x, row_scale, col_scale, diag, keep, csr.indptr, csr.indices, values, work,
                           t.indptr, t.indices, values_t, work_t, impl.NAME, dtype)[0]


@torch.compiler.disable
def _spmm_sum_values_grad(csr: CSR, x: Tensor, impl: Backend, dtype: torch.dtype) -> Tensor:
    return _SpMMSum.apply(csr.values, x, csr, impl, dtype)


@torch.library.custom_op("gseq::scaled_spmm", mutates_args=())
def _scaled_spmm_op(x: Tensor, row_scale: Tensor | None, col_scale: Tensor | None, diag: Tensor | None,
                    keep: bool, indptr: Tensor, indices: Tensor, values: Tensor | None, work: list[Tensor],
                    indptr_t: Tensor, indices_t: Tensor, values_t: Tensor | None, work_t: list[Tensor],
                    backend: str, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(r * (A (s * x)) + d * x, A (s * x) if keep else [])`` for the CSR ``(indptr, indices, values)`` of
    shape ``[len(indptr) - 1, len(x)]``; the arrays of ``A^T`` are the backward's (``work``: the backend's
    tables, :meth:`~gseq.ops._backend.Backend.kernel_inputs`). The scalings are applied in place."""
    impl = backend_module(backend)
    csr = impl.from_kernel_inputs(indptr, indices, values, work, (indptr.numel() - 1, x.size(0)))
    return _scaled_spmm_body(impl, csr, values, x, row_scale, col_scale, diag, keep, dtype)


def _scaled_spmm_body(impl: Backend, csr: CSR, values: Tensor | None, x: Tensor, row_scale: Tensor | None,
                      col_scale: Tensor | None, diag: Tensor | None, keep: bool,
                      dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """What ``gseq::scaled_spmm`` computes, on a CSR (:func:`scaled_spmm` calls it directly when there is
    nothing to differentiate, out of ``torch.compile``)."""
    agg = impl.spmm_sum(csr, values, x if col_scale is None else x * col_scale.unsqueeze(-1), dtype)
    if row_scale is None:
        out = agg.clone() if keep else agg  # an output may not alias the other one
    else:
        out = agg * row_scale.unsqueeze(-1) if keep else agg.mul_(row_scale.unsqueeze(-1))
    if diag is not None:
        out.addcmul_(x, diag.unsqueeze(-1))
    return out, agg if keep else agg.new_empty(0)


@_scaled_spmm_op.register_fake
def _(x, row_scale, col_scale, diag, keep, indptr, *rest):
    out = x.new_empty(indptr.size(0) - 1, x.size(1), dtype=rest[-1])
    return out, torch.empty_like(out) if keep else out.new_empty(0)


def _scaled_spmm_context(ctx, inputs, output) -> None:
    x, row_scale, col_scale, diag, keep, *arrays, backend, _ = inputs
    need_x, need_r, need_s, need_d = ctx.needs_input_grad[:4]
    ctx.save_for_backward(x if (need_s or need_d) else None, row_scale, col_scale, diag, output[1] if keep else None)
    ctx.arrays, ctx.backend, ctx.x_dtype = arrays, backend, x.dtype


def _scaled_spmm_backward(ctx, grad: Tensor, grad_agg: Tensor | None):
    indptr, indices, values, work, indptr_t, indices_t, values_t, work_t = ctx.arrays

    def transposed(g, row_scale, col_scale, diag):  # the same operator on A^T: differentiable in turn
        return _scaled_spmm_op(g, row_scale, col_scale, diag, False, indptr_t, indices_t, values_t, work_t,
                               indptr, indices, values, work, ctx.backend, ctx.x_dtype)[0]

    return (*_scaled_spmm_grads(ctx, grad, grad_agg, transposed), None, None, None, None, [None] * len(work), None,
            None, None, [None] * len(work_t), None, None)


def _scaled_spmm_grads(ctx, grad: Tensor, grad_agg: Tensor | None, transposed) -> tuple:
    r"""The gradients of ``(x, row_scale, col_scale, diag)``; ``transposed(g, r, s, d)`` is the same function
    on :math:`A^\top`."""
    x, r, s, d, agg = ctx.saved_tensors
    need_x, need_r, need_s, need_d = ctx.needs_input_grad[:4]
    grad_x = grad_r = grad_s = grad_d = None
    # a gradient reaching the kept A (s x) itself (a second-order gradient through the one of r)
    through_agg = grad_agg is not None and grad_agg.numel() > 0
    if need_s or (need_x and through_agg):  # A^T (r G + G_agg), shared by the gradients of x and s
        g = grad if r is None else grad * r.unsqueeze(-1)
        back = transposed(g + grad_agg if through_agg else g, None, None, None)
        if need_s:
            grad_s = (back * x).sum(-1)
        if need_x:
            grad_x = (back if s is None else back * s.unsqueeze(-1)) + (0 if d is None else grad * d.unsqueeze(-1))
    elif need_x:  # s * A^T (r G) + d * G: the operator itself on the transpose
        grad_x = transposed(grad, s, r, d)
    if need_r:
        grad_r = (grad * agg).sum(-1)
    if need_d:
        grad_d = (grad * x).sum(-1)
    return grad_x, grad_r, grad_s, grad_d


_scaled_spmm_op.register_autograd(_scaled_spmm_backward, setup_context=_scaled_spmm_context)


class _ScaledSpMM(torch.autograd.Function):
    """``gseq::scaled_spmm`` without the custom operator's dispatch, for eager mode: the same body, the same
    gradients (:func:`_scaled_spmm_grads`), its backward product again a :func:`scaled_spmm` on the
    transpose (so differentiable in turn)."""

    @staticmethod
    def forward(ctx, x: Tensor, row_scale: Tensor | None, col_scale: Tensor | None, diag: Tensor | None, csr: CSR,
                impl: Backend, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        need_x, need_r, need_s, need_d = ctx.needs_input_grad[:4]
        values, _ = impl.kernel_inputs(csr, x.dtype)
        out, agg = _scaled_spmm_body(impl, csr, values, x, row_scale, col_scale, diag, need_r, dtype)
        ctx.save_for_backward(x if (need_s or need_d) else None, row_scale, col_scale, diag, agg if need_r else None)
        ctx.csr, ctx.impl, ctx.x_dtype = csr, impl, x.dtype
        return out, agg

    @staticmethod
    def backward(ctx, grad: Tensor, grad_agg: Tensor | None):
        t = ctx.csr.t()

        def transposed(g, row_scale, col_scale, diag):
            return scaled_spmm(t, g, ctx.impl, ctx.x_dtype, row_scale, col_scale, diag)

        return (*_scaled_spmm_grads(ctx, grad, grad_agg, transposed), None, None, None)


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
