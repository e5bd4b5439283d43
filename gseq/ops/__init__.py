"""Sparse kernels: a CSR container, SpMM with autograd, and torch_scatter's scatter and segment reductions.

CUDA tensors run Triton kernels, everything else runs torch (see :mod:`gseq.ops._backend` for
``backend=``, :func:`set_backend`, :func:`use_backend` and ``GSEQ_OPS_BACKEND``). Every sum is a
row-parallel pull over CSR (forward) or the cached CSC (backward): no floating-point atomics, so two
runs give bitwise the same result. Inputs are validated here, before any kernel launches; a CSR is
validated once, where it is built, and :func:`spmm` on it makes no host synchronisation. The scatter
and segment reductions (:mod:`gseq.ops.scatter`) take torch_scatter's signatures.
"""

from __future__ import annotations

from torch import Tensor

from . import _autograd
from ._autograd import spmm_reduce
from ._backend import TRITON_AVAILABLE, get_backend, resolve, set_backend, use_backend
from ._checks import DTYPES, REDUCTIONS, accumulation_dtype, check_float, check_reduce
from .csr import CSR
from .scatter import (scatter, scatter_add, scatter_max, scatter_mean, scatter_min, scatter_sum, segment,
                      segment_coo, segment_csr)

__all__ = ["CSR", "spmm", "scaled_spmm", "scatter", "scatter_sum", "scatter_add", "scatter_mean", "scatter_max", "scatter_min",
           "segment_csr", "segment_coo", "segment", "TRITON_AVAILABLE", "set_backend", "get_backend",
           "use_backend", "REDUCTIONS", "DTYPES", "accumulation_dtype"]


def spmm(csr: CSR, x: Tensor, reduce: str = "sum", *, backend: str = "auto") -> Tensor:
    r"""Sparse-dense product :math:`Y = A \cdot X` with a row reduction.

    .. math::
        Y_i = \bigoplus_{e \in \mathrm{row}(i)} v_e \, X_{\mathrm{col}(e)}

    with :math:`\bigoplus` the sum, the mean (sum over the number of entries of the row), the max or
    the min; a row without entries gives 0 (torch_scatter's convention); max/min propagate NaN (as
    ``torch.amax``). Half types accumulate in float32. Differentiable with respect to ``x`` and
    ``csr.values``; the sum's backward runs on the transpose cached on ``csr`` and is differentiable
    again (for sum and mean; a second-order gradient through max/min raises). Deterministic: two runs
    give bitwise the same output and gradients. No host synchronisation.

    Args:
        csr (CSR): the sparse matrix :math:`A` (validated when it was built).
        x (Tensor): dense input on ``csr.device``, dtype of ``csr.values``.
        reduce (str, optional): ``"sum"`` (``"add"``), ``"mean"``, ``"max"`` or ``"min"``.
            (default: ``"sum"``)
        backend (str, keyword-only): ``"auto"``, ``"torch"`` or ``"triton"``. (default: ``"auto"``)

    Shapes:
        - **csr:** :math:`(M, N)`; **x:** :math:`(N, F)`; **output:** :math:`(M, F)`.
    """
    x = _check_product(csr, x)
    reduce = check_reduce(reduce)
    impl = resolve(backend, x.device)
    return spmm_reduce(csr, x, reduce, impl)


def scaled_spmm(csr: CSR, x: Tensor, *, row_scale: Tensor | None = None, col_scale: Tensor | None = None,
                diag: Tensor | None = None, backend: str = "auto") -> Tensor:
    r"""The product with a scaled matrix plus a diagonal, :math:`Y = (D_r A D_c + D_d) X`, in one operator.

    .. math::
        Y_i = r_i \sum_{e \in \mathrm{row}(i)} v_e \, c_{\mathrm{col}(e)} X_{\mathrm{col}(e)} + d_i X_i

    (a GCN's normalised aggregation: :math:`r = c = \hat d^{-1/2}`, :math:`d = l \hat d^{-1}`). The same
    numbers as scaling around :func:`spmm`, with fewer passes over the ``[M, F]`` tensors (the scalings
    are applied in place) and a backward that is the same operator on the transpose,
    :math:`D_c A^	op D_r G + D_d G`. Differentiable in ``x``, the scalings and ``csr.values``;
    ``torch.compile`` traces it without a graph break or a host sync unless the values require a
    gradient. Accumulates as :func:`spmm` does and returns ``x``'s dtype.

    Args:
        csr (CSR): the sparse matrix :math:`A`, :math:`(M, N)`; square when ``diag`` is given.
        x (Tensor): dense input :math:`(N, F)` on ``csr.device``, dtype of ``csr.values``.
        row_scale (Tensor, optional): :math:`r`, ``[M]``. (default: ``None``: ones)
        col_scale (Tensor, optional): :math:`c`, ``[N]``. (default: ``None``: ones)
        diag (Tensor, optional): :math:`d`, ``[M]``. (default: ``None``: zeros)
        backend (str, keyword-only): ``"auto"``, ``"torch"`` or ``"triton"``. (default: ``"auto"``)
    """
    x = _check_product(csr, x)
    for name, t, size in (("row_scale", row_scale, csr.num_rows), ("col_scale", col_scale, csr.num_cols),
                          ("diag", diag, csr.num_rows)):
        if t is None:
            continue
        check_float(t, name)
        if t.shape != (size,) or t.device != x.device or t.dtype != x.dtype:
            raise ValueError(f"{name} must be a vector [{size}] of x's dtype and device ({x.dtype}, {x.device}), "
                             f"got {tuple(t.shape)} ({t.dtype}, {t.device})")
    if diag is not None and csr.num_rows != csr.num_cols:
        raise ValueError(f"diag needs a square csr (X_i is added to row i), got shape {csr.shape}")
    impl = resolve(backend, x.device)
    return _autograd.scaled_spmm(csr, x, impl, x.dtype, row_scale, col_scale, diag)


def _check_product(csr: CSR, x: Tensor) -> Tensor:
    """The checks of :func:`spmm` and :func:`scaled_spmm` on their two operands."""
    if not isinstance(csr, CSR):
        raise TypeError(f"csr must be a gseq.ops.CSR (build one with CSR.from_edge_index), got {type(csr).__name__}")
    x = check_float(x, "x")
    if x.dim() != 2:
        raise ValueError(f"x must be two-dimensional [N, F], got shape {tuple(x.shape)}; "
                         "use x.view(-1, 1) for a vector")
    if x.size(0) != csr.num_cols:
        raise ValueError(f"x has {x.size(0)} rows but csr has {csr.num_cols} columns (shape {csr.shape})")
    if x.device != csr.device:
        raise ValueError(f"x is on {x.device} but csr on {csr.device}; move one with .to(device)")
    if csr.values is not None and csr.values.dtype != x.dtype:
        raise TypeError(f"csr.values has dtype {csr.values.dtype} but x has {x.dtype}; convert one to match")
    return x
