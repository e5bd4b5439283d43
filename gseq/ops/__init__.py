"""Sparse kernels: a CSR container, SpMM with autograd, scatter and segment reductions.

CUDA tensors run Triton kernels, everything else runs torch (see :mod:`gseq.ops._backend` for
``backend=``, :func:`set_backend`, :func:`use_backend` and ``GSEQ_OPS_BACKEND``). Every sum is a
row-parallel pull over CSR (forward) or the cached CSC (backward): no floating-point atomics, so two
runs give bitwise the same result. Inputs are validated here, before any kernel launches.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._autograd import spmm_reduce
from ._backend import TRITON_AVAILABLE, get_backend, resolve, set_backend, use_backend
from .csr import CSR

__all__ = ["CSR", "spmm", "scatter", "segment", "TRITON_AVAILABLE", "set_backend", "get_backend",
           "use_backend", "REDUCTIONS", "DTYPES"]

#: the supported reductions (``"add"`` is an alias of ``"sum"``)
REDUCTIONS = ("sum", "add", "mean", "max", "min")
#: the supported floating dtypes (half types accumulate in float32)
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _check_reduce(reduce: object) -> str:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    return "sum" if reduce == "add" else reduce  # type: ignore[return-value]


def _check_float(t: object, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in DTYPES:
        raise TypeError(f"{name} must be float32 or float64 (or float16/bfloat16), got {t.dtype}; "
                        "convert with .float()")
    return t


def spmm(csr: CSR, x: Tensor, reduce: str = "sum", *, backend: str = "auto") -> Tensor:
    r"""Sparse-dense product :math:`Y = A \cdot X` with a row reduction.

    .. math::
        Y_i = \bigoplus_{e \in \mathrm{row}(i)} v_e \, X_{\mathrm{col}(e)}

    with :math:`\bigoplus` the sum, the mean (sum over the number of entries of the row), the max or
    the min; a row without entries gives 0 (torch_scatter's convention). Differentiable with respect
    to ``x`` and ``csr.values``; the sum's backward runs on the transpose cached on ``csr``.
    Deterministic: two runs give bitwise the same output and gradients.

    Args:
        csr (CSR): the sparse matrix :math:`A` (validated when it was built).
        x (Tensor): dense input on ``csr.device``, dtype of ``csr.values``.
        reduce (str, optional): ``"sum"`` (``"add"``), ``"mean"``, ``"max"`` or ``"min"``.
            (default: ``"sum"``)
        backend (str, keyword-only): ``"auto"``, ``"torch"`` or ``"triton"``. (default: ``"auto"``)

    Shapes:
        - **csr:** :math:`(M, N)`; **x:** :math:`(N, F)`; **output:** :math:`(M, F)`.
    """
    if not isinstance(csr, CSR):
        raise TypeError(f"csr must be a gseq.ops.CSR (build one with CSR.from_edge_index), got {type(csr).__name__}")
    x = _check_float(x, "x")
    reduce = _check_reduce(reduce)
    if x.dim() != 2:
        raise ValueError(f"x must be two-dimensional [N, F], got shape {tuple(x.shape)}; "
                         "use x.view(-1, 1) for a vector")
    if x.size(0) != csr.num_cols:
        raise ValueError(f"x has {x.size(0)} rows but csr has {csr.num_cols} columns (shape {csr.shape})")
    if x.device != csr.device:
        raise ValueError(f"x is on {x.device} but csr on {csr.device}; move one with .to(device)")
    if csr.values is not None and csr.values.dtype != x.dtype:
        raise TypeError(f"csr.values has dtype {csr.values.dtype} but x has {x.dtype}; convert one to match")
    impl = resolve(backend, x.device)
    return spmm_reduce(csr, x, reduce, impl)


def _flatten(src: Tensor, dim: int) -> tuple[Tensor, list[int]]:
    moved = src.movedim(dim, 0)
    return moved.reshape(moved.size(0), math.prod(moved.shape[1:])), list(moved.shape[1:])


def _unflatten(out: Tensor, trailing: list[int], dim: int) -> Tensor:
    return out.reshape([out.size(0)] + trailing).movedim(0, dim)


def _check_index(index: object, name: str, device: torch.device) -> Tensor:
    if not isinstance(index, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(index).__name__}")
    if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
        raise TypeError(f"{name} must have an integer dtype, got {index.dtype}; convert with .long()")
    if index.device != device:
        raise ValueError(f"{name} is on {index.device} but src on {device}; move one with .to(device)")
    return index.long()


def scatter(src: Tensor, index: Tensor, dim: int = 0, dim_size: int | None = None, reduce: str = "sum",
            *, backend: str = "auto") -> Tensor:
    r"""Reduce the slices of ``src`` along ``dim`` into the positions given by ``index``.

    .. math::
        \mathrm{out}_{\ldots, i, \ldots} = \bigoplus_{j:\ \mathrm{index}_j = i} \mathrm{src}_{\ldots, j, \ldots}

    torch_scatter's ``scatter`` semantics: a one-dimensional ``index`` of length ``src.size(dim)`` is
    broadcast over the other dimensions (a full-shape index, broadcastable like torch_scatter's, is
    also accepted); positions that receive nothing are 0 for every reduction. Runs as a
    deterministic pull: the entries are sorted by target (stably) into a CSR and reduced row by row.

    Args:
        src (Tensor): floating input.
        index (Tensor): integer targets, non-negative and ``< dim_size``.
        dim (int, optional): the dimension to reduce along. (default: ``0``)
        dim_size (int, optional): size of ``dim`` in the output; ``index.max() + 1`` by default.
            (default: ``None``)
        reduce (str, optional): ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. (default: ``"sum"``)
        backend (str, keyword-only): as in :func:`spmm`. (default: ``"auto"``)

    Shapes:
        - **src:** :math:`(*, E, *)`; **index:** :math:`(E,)` or broadcastable to ``src``;
          **output:** ``src`` with size ``dim_size`` at ``dim``.
    """
    src = _check_float(src, "src")
    reduce = _check_reduce(reduce)
    index = _check_index(index, "index", src.device)
    if not isinstance(dim, int) or not -src.dim() <= dim < max(src.dim(), 1):
        raise ValueError(f"dim must be an int in [-{src.dim()}, {src.dim()}), got {dim!r}")
    dim = dim % max(src.dim(), 1)
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension")
    n = src.size(dim)
    if index.dim() == 1:
        if index.numel() != n:
            raise ValueError(f"index has {index.numel()} entries but src.size({dim}) = {n}")
    else:
        if index.dim() > src.dim():
            raise ValueError(f"index has more dimensions ({index.dim()}) than src ({src.dim()})")
        view = index.view(list(index.shape) + [1] * (src.dim() - index.dim()))
        try:
            index = view.expand_as(src)
        except RuntimeError:
            raise ValueError(f"index of shape {tuple(view.shape)} cannot broadcast to src {tuple(src.shape)}") from None
    if index.numel() and int(index.min()) < 0:
        raise ValueError(f"index must be non-negative, found {int(index.min())}")
    top = int(index.max()) + 1 if index.numel() else 0
    if dim_size is None:
        dim_size = top
    if not isinstance(dim_size, int) or isinstance(dim_size, bool) or dim_size < 0:
        raise TypeError(f"dim_size must be a non-negative int or None, got {dim_size!r}")
    if top > dim_size:
        raise ValueError(f"index must be < dim_size = {dim_size}, found {top - 1}; pass a larger dim_size")
    impl = resolve(backend, src.device)
    flat, trailing = _flatten(src, dim)
    if index.dim() == 1:
        csr = _sorted_csr(index, dim_size, n)
        return _unflatten(spmm_reduce(csr, flat, reduce, impl), trailing, dim)
    # a full index: one CSR row per (target, feature) pair, over src as a column vector
    idx, _ = _flatten(index, dim)
    f = idx.size(1)
    rows = (idx * f + torch.arange(f, device=idx.device)).reshape(-1)
    csr = _sorted_csr(rows, dim_size * f, rows.numel())
    out = spmm_reduce(csr, flat.reshape(-1, 1), reduce, impl)
    return _unflatten(out.reshape(dim_size, f), trailing, dim)


def _sorted_csr(target: Tensor, num_rows: int, num_cols: int) -> CSR:
    """The CSR whose row ``i`` holds the positions ``j`` with ``target[j] == i``, in order."""
    _, perm = torch.sort(target, stable=True)
    indptr = torch.zeros(num_rows + 1, dtype=torch.long, device=target.device)
    torch.cumsum(torch.bincount(target, minlength=num_rows), 0, out=indptr[1:])
    return CSR(indptr, perm, None, (num_rows, num_cols), check=False)


def segment(src: Tensor, indptr: Tensor, reduce: str = "sum", *, backend: str = "auto") -> Tensor:
    r"""Reduce contiguous segments of ``src`` along dimension 0: torch_scatter's ``segment_csr``.

    .. math::
        \mathrm{out}_i = \bigoplus_{j = \mathrm{indptr}_i}^{\mathrm{indptr}_{i+1} - 1} \mathrm{src}_j

    Empty segments give 0.

    Args:
        src (Tensor): floating input.
        indptr (Tensor): integer ``[M + 1]``, non-decreasing, non-negative, ``indptr[-1] <= src.size(0)``.
        reduce (str, optional): ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. (default: ``"sum"``)
        backend (str, keyword-only): as in :func:`spmm`. (default: ``"auto"``)

    Shapes:
        - **src:** :math:`(E, *)`; **indptr:** :math:`(M + 1,)`; **output:** :math:`(M, *)`.
    """
    src = _check_float(src, "src")
    reduce = _check_reduce(reduce)
    indptr = _check_index(indptr, "indptr", src.device)
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension")
    if indptr.dim() != 1 or indptr.numel() < 1:
        raise ValueError(f"indptr must be one-dimensional with at least one entry, got shape {tuple(indptr.shape)}")
    lo, hi = int(indptr[0]), int(indptr[-1])
    if lo < 0:
        raise ValueError(f"indptr must be non-negative, found indptr[0] = {lo}")
    if bool((indptr[1:] < indptr[:-1]).any()):
        raise ValueError("indptr must be non-decreasing")
    if hi > src.size(0):
        raise ValueError(f"indptr[-1] = {hi} exceeds src.size(0) = {src.size(0)}")
    impl = resolve(backend, src.device)
    flat, trailing = _flatten(src, 0)
    csr = CSR(indptr - lo, torch.arange(lo, hi, device=src.device), None, (indptr.numel() - 1, src.size(0)),
              check=False)
    return _unflatten(spmm_reduce(csr, flat, reduce, impl), trailing, 0)
