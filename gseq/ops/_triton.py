"""Triton kernels for :mod:`gseq.ops` (CUDA; on the CPU under ``TRITON_INTERPRET=1``).

Triton is imported softly: :data:`AVAILABLE` says whether it worked. The kernels use only long-standing
``tl`` operations (masked ``load``/``store``, ``arange``, ``sum``, ``max``, ``min``, ``where``), so
they compile on Triton 3.x.

Work balance and determinism. Each row of the CSR is cut into chunks of at most :data:`CHUNK`
entries (a row with no entries is one empty chunk); one program reduces one chunk over a
``BLOCK_F``-wide slice of the features, walking its entries ``BLOCK_E`` at a time. A row that fits one
chunk is written directly; the chunks of a longer row write partial results, which a second kernel
adds (or maxes) in chunk order. Every output element is therefore reduced by one program in a fixed
order: no atomics, bitwise-reproducible results. Gradients are pulls too: ``A^T G`` runs the same
kernel on the transpose cached on the CSR, the edge-value gradient is an SDDMM with one program per
block of entries, and the gradient of max/min pulls over the transpose, keeping the entries that
attained the extreme.

No host synchronisation: the chunk table is built on the device, padded to sizes known from the
shape (:func:`_work`), so a CSR built per call (scatter, segment) launches without waiting for the GPU.
Addresses are computed in int64 (``f * stride`` passes 2**31 for a transposed ``[2.45M, 1000]`` input).
Launches enter the inputs' device (``torch.cuda.device``), so tensors on ``cuda:1`` work whichever GPU
is current. Max/min propagate NaN as ``torch.amax`` does; half types accumulate in float32.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import Tensor

from ._checks import accumulation_dtype
from .csr import CSR, Structure

try:
    import triton
    import triton.language as tl
    AVAILABLE, IMPORT_ERROR = True, None
except ImportError as exc:  # pragma: no cover - depends on the installation
    triton = tl = None
    AVAILABLE, IMPORT_ERROR = False, exc

NAME = "triton"

__all__ = ["NAME", "AVAILABLE", "INTERPRET", "CHUNK", "kernel_inputs", "from_kernel_inputs", "REDUCE_SUM", "REDUCE_MAX", "REDUCE_MIN", "spmm_sum", "sddmm", "spmm_arg", "spmm_arg_backward_x", "sddmm_arg"]

#: whether Triton's interpreter was on when this module was imported (kernels then run on CPU tensors)
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
#: most entries one program reduces; longer rows are split and their partials combined in order
CHUNK = 256

#: the ``REDUCE`` argument of the chunk and combine kernels: which reduction a launch computes (min runs as
#: ``-max(-x)``). The Python side passes these ints; the kernels compare with their ``tl.constexpr`` twins.
REDUCE_SUM, REDUCE_MAX, REDUCE_MIN = 0, 1, 2

if AVAILABLE:
    # the same numbers as constexpr globals, the only kind of global a @triton.jit function may read
    _SUM: tl.constexpr = tl.constexpr(REDUCE_SUM)
    _MIN: tl.constexpr = tl.constexpr(REDUCE_MIN)

    @triton.jit
    def _spmm_chunk_kernel(x_ptr, val_ptr, col_ptr, eid_ptr, arg_ptr,
                           crow_ptr, cstart_ptr, cend_ptr, cslot_ptr,
                           out_ptr, oarg_ptr, part_ptr, parg_ptr,
                           F, NNZ, sx0, sx1, so0, sa0,
                           HAS_VAL: tl.constexpr, REDUCE: tl.constexpr, MASKED: tl.constexpr,
                           ACC: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
        c = tl.program_id(0)
        f = (tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)).to(tl.int64)  # int64: f * sx1 may pass 2**31
        fm = f < F
        row = tl.load(crow_ptr + c)
        start = tl.load(cstart_ptr + c)
        end = tl.load(cend_ptr + c)
        slot = tl.load(cslot_ptr + c)
        if REDUCE == _SUM:
            acc = tl.zeros([BLOCK_F], dtype=ACC)
        else:
            acc = tl.full([BLOCK_F], float("-inf"), ACC)
        arg = tl.zeros([BLOCK_F], dtype=tl.int64) + NNZ
        for s in range(start, end, BLOCK_E):
            e = s + tl.arange(0, BLOCK_E).to(tl.int64)
            em = e < end
            col = tl.load(col_ptr + e, mask=em, other=0)
            m2 = em[:, None] & fm[None, :]
            xv = tl.load(x_ptr + col[:, None] * sx0 + f[None, :] * sx1, mask=m2, other=0.0).to(ACC)
            if HAS_VAL:
                w = tl.load(val_ptr + e, mask=em, other=0.0).to(ACC)
                xv = xv * w[:, None]
            if MASKED:  # gradient of max/min: keep the (entry, feature) pairs that attained it
                eid = tl.load(eid_ptr + e, mask=em, other=-1)
                a = tl.load(arg_ptr + col[:, None] * sa0 + f[None, :], mask=m2, other=-1)
                xv = tl.where(a == eid[:, None], xv, 0.0)
            if REDUCE == _SUM:
                acc += tl.sum(xv, axis=0)
            else:
                if REDUCE == _MIN:
                    xv = -xv  # min(x) = -max(-x)
                num = m2 & (xv == xv)  # valid and not NaN
                tnan = tl.min(tl.where(m2 & (xv != xv), e[:, None], NNZ), axis=0)  # the tile's first NaN
                xv = tl.where(num, xv, float("-inf"))
                tmax = tl.max(xv, axis=0)
                targ = tl.min(tl.where(num & (xv == tmax[None, :]), e[:, None], NNZ), axis=0)  # first attaining
                # strict: an earlier tile keeps ties; the first number always counts (a row of -inf is -inf)
                upd = (targ < NNZ) & ((tmax > acc) | (arg == NNZ))
                arg = tl.where(upd, targ, arg)
                acc = tl.where(upd, tmax, acc)
                nan = (tnan < NNZ) & (acc == acc)  # NaN propagates as in torch.amax: the first NaN wins
                arg = tl.where(nan, tnan, arg)
                acc = tl.where(nan, float("nan"), acc)
        slots = slot + tl.zeros([BLOCK_F], dtype=tl.int64)  # as a vector: masks stay plain bool tensors
        direct = fm & (slots == -1)  # -2: a padding chunk of the work table, which writes nothing
        split = fm & (slots >= 0)
        pslot = tl.maximum(slots, 0)
        tl.store(part_ptr + pslot * F + f, acc, mask=split)
        if REDUCE != _SUM:
            tl.store(parg_ptr + pslot * F + f, arg, mask=split)
            empty = arg == NNZ
            if REDUCE == _MIN:
                acc = -acc
            acc = tl.where(empty, 0.0, acc)
            tl.store(oarg_ptr + row * F + f, arg, mask=direct)
        tl.store(out_ptr + row * so0 + f, acc.to(out_ptr.dtype.element_ty), mask=direct)

    @triton.jit
    def _combine_kernel(part_ptr, parg_ptr, srow_ptr, sptr_ptr, out_ptr, oarg_ptr, F, NNZ, so0,
                        REDUCE: tl.constexpr, ACC: tl.constexpr, BLOCK_F: tl.constexpr):
        r = tl.program_id(0)
        f = (tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)).to(tl.int64)
        row = tl.load(srow_ptr + r)  # -1: a padding entry of the work table
        rows = row + tl.zeros([BLOCK_F], dtype=tl.int64)  # as a vector: masks stay plain bool tensors
        fm = (f < F) & (rows >= 0)
        p0 = tl.load(sptr_ptr + r)
        p1 = tl.load(sptr_ptr + r + 1)
        if REDUCE == _SUM:
            acc = tl.zeros([BLOCK_F], dtype=ACC)
        else:
            acc = tl.full([BLOCK_F], float("-inf"), ACC)
        arg = tl.zeros([BLOCK_F], dtype=tl.int64) + NNZ
        for p in range(p0, p1):  # partials in chunk order: a fixed summation order
            v = tl.load(part_ptr + p * F + f, mask=fm, other=0.0)
            if REDUCE == _SUM:
                acc += v
            else:
                a = tl.load(parg_ptr + p * F + f, mask=fm, other=NNZ)
                upd = (a < NNZ) & (acc == acc) & ((v != v) | (v > acc) | (arg == NNZ))  # NaN wins, then >
                arg = tl.where(upd, a, arg)
                acc = tl.where(upd, v, acc)
        if REDUCE != _SUM:
            if REDUCE == _MIN:
                acc = -acc
            acc = tl.where(arg == NNZ, 0.0, acc)
            tl.store(oarg_ptr + row * F + f, arg, mask=fm)
        tl.store(out_ptr + row * so0 + f, acc.to(out_ptr.dtype.element_ty), mask=fm)

    @triton.jit
    def _sddmm_kernel(a_ptr, b_ptr, row_ptr, col_ptr, arg_ptr, out_ptr, F, NNZ, sa0, sa1, sb0, sb1, sg0,
                      MASKED: tl.constexpr, ACC: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
        e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
        em = e < NNZ
        r = tl.load(row_ptr + e, mask=em, other=0)
        c = tl.load(col_ptr + e, mask=em, other=0)
        acc = tl.zeros([BLOCK_E], dtype=ACC)
        for f0 in range(0, F, BLOCK_F):
            f = (f0 + tl.arange(0, BLOCK_F)).to(tl.int64)  # int64: f * sa1 may pass 2**31
            m2 = em[:, None] & (f < F)[None, :]
            g = tl.load(a_ptr + r[:, None] * sa0 + f[None, :] * sa1, mask=m2, other=0.0).to(ACC)
            xv = tl.load(b_ptr + c[:, None] * sb0 + f[None, :] * sb1, mask=m2, other=0.0).to(ACC)
            prod = g * xv
            if MASKED:
                am = tl.load(arg_ptr + r[:, None] * sg0 + f[None, :], mask=m2, other=-1)
                prod = tl.where(am == e[:, None], prod, 0.0)
            acc += tl.sum(prod, axis=1)
        tl.store(out_ptr + e, acc.to(out_ptr.dtype.element_ty), mask=em)


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _blocks(f: int) -> tuple[int, int]:
    block_f = min(128, max(16, triton.next_power_of_2(max(f, 1))))
    return (32 if block_f <= 32 else 16), block_f


def _work(csr, chunk: int = CHUNK):
    """The chunk table of ``csr`` for chunks of ``chunk`` entries, built without a host sync (the kernels'
    :data:`CHUNK`'s is kept on the structure, ``csr.structure.triton_work``).

    Chunk ``k`` reduces entries ``cstart[k]:cend[k]`` of row ``crow[k]`` and writes the row (``cslot``
    -1) or partial slot ``cslot[k]`` of a split row. Split row ``s`` is ``srow[s]``; its partials are
    slots ``sptr[s]:sptr[s+1]``. The number of chunks and of split rows depends on the data, so the
    tables are padded to bounds known from the shape alone (padding: ``cslot`` -2, ``srow`` -1, empty
    ranges): ``M + nnz // chunk`` chunks, ``nnz // (chunk + 1)`` split rows and ``2 nnz // chunk``
    partial slots (a split row of ``c > chunk`` entries has ``ceil(c / chunk) < 2 c / chunk`` chunks;
    :func:`_run_rows` derives that bound from ``nnz``).
    """
    def build():
        m, nnz = csr.num_rows, csr.nnz
        counts = csr.row_counts()
        dev = counts.device
        nch = torch.clamp((counts + chunk - 1) // chunk, min=1)  # chunks per row; an empty row is one
        ends = torch.cumsum(nch, 0)
        k = torch.arange(m + nnz // chunk, device=dev)
        crow = torch.searchsorted(ends, k, right=True)  # m for a padding chunk
        pad = crow >= m
        crow = crow.clamp(max=m - 1)
        cstart = csr.indptr[crow] + (k - (ends[crow] - nch[crow])) * chunk
        cend = torch.minimum(cstart + chunk, csr.indptr[crow + 1])
        cstart, cend = cstart.masked_fill(pad, 0), cend.masked_fill(pad, 0)
        split = nch > 1
        split_chunk = split[crow] & ~pad
        cslot = torch.where(split_chunk, torch.cumsum(split_chunk, 0) - 1, -1).masked_fill(pad, -2)
        nsplit = torch.cumsum(split, 0)
        srow = torch.searchsorted(nsplit, torch.arange(1, nnz // (chunk + 1) + 1, device=dev))  # s-th split row
        slot_end = torch.cumsum(torch.where(split, nch, 0), 0)
        sptr = torch.zeros(srow.numel() + 1, dtype=torch.long, device=dev)
        sptr[1:] = torch.where(srow < m, slot_end[srow.clamp(max=m - 1)], slot_end[-1])
        srow = srow.masked_fill(srow >= m, -1)
        return crow, cstart, cend, cslot, srow, sptr
    if chunk != CHUNK:
        return build()
    if csr.structure.triton_work is None:
        csr.structure.triton_work = build()
    return csr.structure.triton_work


def kernel_inputs(csr, dtype: torch.dtype) -> tuple[Tensor | None, list[Tensor]]:
    """``(values, work)``: the values as they are and the chunk table (:func:`_work`), kept on the structure
    (none for a matrix without entries, which no kernel reads)."""
    return csr.values, (list(_work(csr)) if csr.num_rows and csr.nnz else [])


def from_kernel_inputs(indptr: Tensor, indices: Tensor, values: Tensor | None, work: list[Tensor],
                       shape: tuple[int, int]) -> CSR:
    """The CSR of :func:`kernel_inputs`' arrays (trusted), its chunk table in place."""
    structure = Structure(indptr, indices, shape)
    structure.triton_work = tuple(work) if work else None
    return CSR._of(structure, values)


def _on_device(t: Tensor):
    """Launch on ``t``'s GPU, whichever is current (no-op on the CPU)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _run_rows(csr, values, x: Tensor, reduce: int, *, masked=None, dtype: torch.dtype | None = None
              ) -> tuple[Tensor, Tensor | None]:
    """One pass of the chunk kernel (+ the combine kernel for split rows) over the rows of ``csr``;
    ``reduce`` is :data:`REDUCE_SUM`, :data:`REDUCE_MAX` or :data:`REDUCE_MIN` (the extremes return ``arg``)."""
    m, f, nnz = csr.num_rows, x.size(1), csr.nnz
    extreme = reduce != REDUCE_SUM
    out = torch.empty(m, f, dtype=dtype or x.dtype, device=x.device)
    arg = torch.empty(m, f, dtype=torch.long, device=x.device) if extreme else None
    crow, cstart, cend, cslot, srow, sptr = _work(csr)
    nslots = 2 * nnz // CHUNK  # partial slots: the bound of _work's docstring
    acc_t = accumulation_dtype(x.dtype)
    part = torch.empty(max(nslots, 1), f, dtype=acc_t, device=x.device)
    parg = torch.empty(max(nslots, 1), f, dtype=torch.long, device=x.device) if extreme else part
    block_e, block_f = _blocks(f)
    eid, marg = masked if masked is not None else (csr.indices, csr.indices)
    grid = (crow.numel(), triton.cdiv(f, block_f))
    with _on_device(x):
        _spmm_chunk_kernel[grid](
            x, values if values is not None else x, csr.indices, eid, marg,
            crow, cstart, cend, cslot, out, arg if extreme else out, part, parg,
            f, nnz, x.stride(0), x.stride(1), out.stride(0),
            marg.stride(0) if masked is not None else 0,
            HAS_VAL=values is not None, REDUCE=reduce, MASKED=masked is not None, ACC=_acc(x.dtype),
            BLOCK_E=block_e, BLOCK_F=block_f)
        if srow.numel():
            _combine_kernel[(srow.numel(), triton.cdiv(f, block_f))](
                part, parg, srow, sptr, out, arg if extreme else out, f, nnz, out.stride(0),
                REDUCE=reduce, ACC=_acc(x.dtype), BLOCK_F=block_f)
    return out, arg


def spmm_sum(csr, values: Tensor | None, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    r""":math:`Y_i = \sum_{e \in \mathrm{row}(i)} v_e X_{\mathrm{col}(e)}`, accumulated in float32 (float64
    for float64 ``x``) and written as ``dtype`` (default: ``x.dtype``)."""
    if csr.num_rows == 0 or x.size(1) == 0 or csr.nnz == 0:
        return x.new_zeros(csr.num_rows, x.size(1), dtype=dtype or x.dtype)
    return _run_rows(csr, values, x, REDUCE_SUM, dtype=dtype)[0]


def spmm_arg(csr, values: Tensor | None, x: Tensor, reduce: str) -> tuple[Tensor, Tensor]:
    """Max/min over each row and the first entry attaining it (``nnz`` for an empty row, whose output is 0).

    NaN propagates as in ``torch.amax``: a row with a NaN gives NaN, and the arg is its first NaN entry.
    """
    m, f = csr.num_rows, x.size(1)
    if m == 0 or f == 0 or csr.nnz == 0:
        return x.new_zeros(m, f), torch.full((m, f), csr.nnz, dtype=torch.long, device=x.device)
    return _run_rows(csr, values, x, REDUCE_MAX if reduce == "max" else REDUCE_MIN)


def spmm_arg_backward_x(csr, values: Tensor | None, grad: Tensor, arg: Tensor, n: int) -> Tensor:
    r"""Gradient of max/min w.r.t. ``x``, a pull over the transpose.

    :math:`G^x_{c,f} = \sum_{e \in \mathrm{col}(c),\ arg_{\mathrm{row}(e) f} = e} v_e G_{\mathrm{row}(e) f}`.
    """
    f = grad.size(1)
    if csr.nnz == 0 or f == 0 or n == 0:
        return grad.new_zeros(n, f)
    t = csr.t()
    perm = csr.structure.transpose()[1]
    values_t = None if values is None else values.index_select(0, perm)
    arg = arg.contiguous()
    return _run_rows(t, values_t, grad, REDUCE_SUM, masked=(perm, arg))[0]


def _sddmm(csr, a: Tensor, b: Tensor, arg: Tensor | None, dtype: torch.dtype | None = None) -> Tensor:
    nnz, f = csr.nnz, a.size(1)
    out = torch.empty(nnz, dtype=dtype or a.dtype, device=a.device)
    if nnz == 0:
        return out
    if f == 0:
        return out.zero_()
    block_e, block_f = _blocks(f)
    block_e = 64 if block_f <= 32 else 32
    if arg is not None:
        arg = arg.contiguous()
    acc = tl.float64 if torch.float64 in (a.dtype, b.dtype) else tl.float32
    with _on_device(a):
        _sddmm_kernel[(triton.cdiv(nnz, block_e),)](
            a, b, csr.row(), csr.indices, arg if arg is not None else csr.indices, out, f, nnz,
            a.stride(0), a.stride(1), b.stride(0), b.stride(1), arg.stride(0) if arg is not None else 0,
            MASKED=arg is not None, ACC=acc, BLOCK_E=block_e, BLOCK_F=block_f)
    return out


def sddmm(csr, a: Tensor, b: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    r""":math:`g_e = \langle a_{\mathrm{row}(e)}, b_{\mathrm{col}(e)} \rangle`, one program per block of entries.

    ``a`` and ``b`` may have different floating dtypes; the result has ``dtype`` (default: ``a.dtype``).
    """
    return _sddmm(csr, a, b, None, dtype)


def sddmm_arg(csr, grad: Tensor, x: Tensor, arg: Tensor) -> Tensor:
    r"""Gradient of max/min w.r.t. the values.

    :math:`g_e = \sum_{f: arg_{\mathrm{row}(e) f} = e} G_{\mathrm{row}(e) f} X_{\mathrm{col}(e) f}`.
    """
    return _sddmm(csr, grad, x, arg)
