"""The torch (CPU and reference) implementation of the kernels behind :mod:`gseq.ops`.

Every function here takes arrays that :mod:`gseq.ops` has validated and returns plain tensors (no
autograd: :mod:`gseq.ops._autograd` wires forward and backward). None of them builds an
``[nnz, F]`` tensor for the whole graph: the weighted sum goes through a ``torch.sparse_csr_tensor``
(cached per structure when unweighted; MKL's CSR x dense product on the CPU, row-parallel and
bitwise reproducible run to run), the edge-value gradient through ``torch.sparse.sampled_addmm``
(or chunks of entries), and max/min reductions through chunks of at most :data:`CHUNK_ELEMS`
gathered elements. On CUDA tensors (``backend="torch"`` forced) the same calls run cuSPARSE and
``scatter_add_``, which torch does not promise to be deterministic there: the Triton backend is.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .csr import CSR, Structure

NAME = "torch"

__all__ = ["NAME", "kernel_inputs", "from_kernel_inputs", "spmm_sum", "spmm_arg", "sddmm", "sddmm_arg", "spmm_arg_backward_x", "CHUNK_ELEMS"]

#: upper bound on the elements of one gathered ``[chunk, F]`` block in the chunked paths
CHUNK_ELEMS = 1 << 21


def _chunk(nnz: int, width: int) -> int:
    return max(1, CHUNK_ELEMS // max(width, 1)) if nnz else 1


def _sparse_csr(csr: CSR, values: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A ``torch.sparse_csr_tensor`` with the structure of ``csr`` and ``values`` (detached)."""
    # int64 indices as they are: MKL's product is as fast with them as with int32 copies (bench_spmm.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(csr.indptr, csr.indices, values.detach(), csr.shape, dtype=dtype,
                                       device=csr.device, check_invariants=False)


def _ones(csr: CSR, dtype: torch.dtype) -> Tensor:
    """The values of the unweighted ``csr``, ``[nnz]`` ones of ``dtype`` (kept on its structure)."""
    ones = csr.structure.torch_ones.get(dtype)
    if ones is None:
        ones = csr.structure.torch_ones[dtype] = torch.ones(csr.nnz, dtype=dtype, device=csr.device)
    return ones


def _matrix(csr: CSR, values: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``csr`` as a ``torch.sparse_csr_tensor`` of ``dtype`` (a view of its arrays: nothing is copied)."""
    return _sparse_csr(csr, _ones(csr, dtype) if values is None else values, dtype)


def kernel_inputs(csr: CSR, dtype: torch.dtype) -> tuple[Tensor, list[Tensor]]:
    """``(values, [])``: the values for features of ``dtype`` (kept ones when unweighted); no tables."""
    return (_ones(csr, _compute_dtype(dtype)) if csr.values is None else csr.values), []


def from_kernel_inputs(indptr: Tensor, indices: Tensor, values: Tensor | None, work: list[Tensor],
                       shape: tuple[int, int]) -> CSR:
    """The CSR of :func:`kernel_inputs`' arrays (trusted)."""
    return CSR._of(Structure(indptr, indices, shape), values)


def _compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """float64 if any input is float64, else float32: half types accumulate in float32."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def spmm_sum(csr: CSR, values: Tensor | None, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    r""":math:`Y_i = \sum_{e \in \mathrm{row}(i)} v_e X_{\mathrm{col}(e)}` (empty rows give 0), as ``dtype``.

    Accumulates in float32 (float64 for float64 inputs) and casts the result once to ``dtype``
    (default: ``x.dtype``); ``values`` may have another floating dtype than ``x``.
    """
    m, f = csr.num_rows, x.size(1)
    dtype = dtype or x.dtype
    if csr.nnz == 0 or f == 0 or m == 0:
        return x.new_zeros(m, f, dtype=dtype)
    c = _compute_dtype(x.dtype, *(() if values is None else (values.dtype,)))
    if x.dtype != c or (values is not None and values.dtype != c):
        return spmm_sum(csr, None if values is None else values.to(c), x.to(c)).to(dtype)
    a = _matrix(csr, values, x.dtype)
    if x.device.type != "cpu":
        return torch.sparse.mm(a, x).to(dtype)
    out = x.new_empty(m, f)
    # addmm with beta=0 into a given out: the same MKL kernel as torch.sparse.mm, without its zero-fill
    # and copy of the result (up to 2x faster on the CPU: benchmarks/bench_spmm.py); `out` is ignored
    return torch.addmm(out, a, x, beta=0.0, out=out).to(dtype)


def sddmm(csr: CSR, a: Tensor, b: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    r"""Sampled dense-dense product, ``[nnz]``: :math:`g_e = \langle a_{\mathrm{row}(e)}, b_{\mathrm{col}(e)} \rangle`.

    Accumulates in float32 (float64 when an input is float64); the result has ``dtype`` (default:
    ``a.dtype``).
    """
    f, dtype = a.size(1), dtype or a.dtype
    if csr.nnz == 0 or f == 0:
        return a.new_zeros(csr.nnz, dtype=dtype)
    c = _compute_dtype(a.dtype, b.dtype)
    if a.dtype != c or b.dtype != c:
        return sddmm(csr, a.to(c), b.to(c)).to(dtype)
    if csr.nnz > csr.num_rows * csr.num_cols:
        # torch.sparse.sampled_addmm rejects more entries than the dense matrix has cells (duplicates)
        return _sddmm_chunked(csr, a, b).to(dtype)
    mask = _matrix(csr, None, a.dtype)
    if a.device.type != "cpu":
        return torch.sparse.sampled_addmm(mask, a.contiguous(), b.t(), beta=0.0, alpha=1.0).values().to(dtype)
    out = _sparse_csr(csr, a.new_empty(csr.nnz))
    # beta=0 ignores the input's values; writing into `out` skips a copy of the result
    torch.sparse.sampled_addmm(mask, a.contiguous(), b.t(), beta=0.0, alpha=1.0, out=out)
    return out.values().to(dtype)


def _sddmm_chunked(csr: CSR, a: Tensor, b: Tensor) -> Tensor:
    out = a.new_empty(csr.nnz)
    row, col = csr.row(), csr.indices
    step = _chunk(csr.nnz, a.size(1))
    for s in range(0, csr.nnz, step):
        e = min(s + step, csr.nnz)
        out[s:e] = (a.index_select(0, row[s:e]) * b.index_select(0, col[s:e])).sum(1)
    return out


def spmm_arg(csr: CSR, values: Tensor | None, x: Tensor, reduce: str) -> tuple[Tensor, Tensor]:
    r"""Max (``reduce="max"``) or min over each row of :math:`v_e X_{\mathrm{col}(e)}`, and the arg entry.

    Returns ``(out [M, F], arg [M, F])``: ``arg[i, f]`` is the first entry (in CSR order) that attains
    the extreme, ``nnz`` for an empty row (whose output is 0, as in torch_scatter). NaN propagates as
    in ``torch.amax``: a row with a NaN gives NaN, and ``arg`` is its first NaN entry.
    """
    m, f, nnz = csr.num_rows, x.size(1), csr.nnz
    big = torch.iinfo(torch.int64).max
    fill = float("-inf") if reduce == "max" else float("inf")
    how = "amax" if reduce == "max" else "amin"
    out = x.new_full((m, f), fill)
    arg = torch.full((m, f), big, dtype=torch.long, device=x.device)
    if nnz == 0 or f == 0 or m == 0:
        return out.zero_(), arg.fill_(nnz)
    row, col = csr.row(), csr.indices
    step = _chunk(nnz, f)

    def gathered(s: int, e: int) -> Tensor:
        g = x.index_select(0, col[s:e])
        return g if values is None else g * values[s:e, None].to(x.dtype)

    for s in range(0, nnz, step):
        e = min(s + step, nnz)
        out.scatter_reduce_(0, row[s:e, None].expand(-1, f), gathered(s, e), how, include_self=True)
    for s in range(0, nnz, step):
        e = min(s + step, nnz)
        r = row[s:e]
        g, o = gathered(s, e), out.index_select(0, r)
        hit = (g == o) | (g.isnan() & o.isnan())  # NaN attains a NaN extreme
        ids = torch.where(hit, torch.arange(s, e, device=x.device)[:, None], big)
        arg.scatter_reduce_(0, r[:, None].expand(-1, f), ids, "amin", include_self=True)
    empty = arg == big
    return out.masked_fill_(empty, 0), arg.masked_fill_(empty, nnz)


def spmm_arg_backward_x(csr: CSR, values: Tensor | None, grad: Tensor, arg: Tensor, n: int) -> Tensor:
    r"""Gradient of a max/min SpMM w.r.t. ``x``.

    :math:`G^x_{c,f} = \sum_{i: \mathrm{col}(arg_{if}) = c} v_{arg_{if}} G_{if}`.
    """
    f = grad.size(1)
    out = grad.new_zeros(n, f)
    valid = arg < csr.nnz
    a = arg.clamp(max=max(csr.nnz - 1, 0))
    if csr.nnz == 0:
        return out
    g = grad if values is None else grad * values.to(grad.dtype)[a]
    g = torch.where(valid, g, 0)
    return out.scatter_add_(0, csr.indices[a], g)  # deterministic on the CPU


def sddmm_arg(csr: CSR, grad: Tensor, x: Tensor, arg: Tensor) -> Tensor:
    r"""Gradient of a max/min SpMM w.r.t. the values.

    :math:`g_e = \sum_{f: arg_{if} = e} G_{if} X_{\mathrm{col}(e), f}` with :math:`i = \mathrm{row}(e)`.
    """
    nnz = csr.nnz
    out = grad.new_zeros(nnz)
    if nnz == 0 or grad.size(1) == 0:
        return out
    valid = arg < nnz
    a = arg.clamp(max=nnz - 1)
    contrib = grad * x[csr.indices[a], _feat(grad)]  # [M, F]: O(nodes x features), never [nnz, F]
    return out.index_add_(0, a[valid], contrib[valid])  # a fixed (row, feature) order: deterministic


def _feat(t: Tensor) -> Tensor:
    return torch.arange(t.size(1), device=t.device).expand_as(t)
