"""Scatter and segment reductions with torch_scatter's signatures, on the SpMM kernels of :mod:`gseq.ops`.

Each call turns its index into a CSR whose row ``i`` lists the positions that reduce into output ``i``
(a stable sort for ``scatter``/``segment_coo``, the pointers themselves for ``segment_csr``) and
reduces it with :func:`gseq.ops.spmm`'s kernels: a deterministic pull, no atomics, on both backends.

Same as torch_scatter (``scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum")``,
``segment_csr(src, indptr, out=None, reduce="sum")``, ``segment_coo(src, index, out=None,
dim_size=None, reduce="sum")``, ``scatter_sum/add/mean/max/min``): argument order and defaults, index
broadcasting, ``out=`` (sum and mean accumulate into ``out``, max/min compare with it, ``segment_csr``
overwrites it; ``out`` is returned), empty positions 0, ``scatter_max``/``scatter_min`` return
``(out, arg)`` with ``arg`` = ``src.size(dim)`` where no entry won, empty ``index``/``indptr``. The cases of
torch_scatter's own test suite run in ``tests/ops/test_ops_torch_scatter_cases.py``.

Different from torch_scatter:

- floating ``src`` only (float16, bfloat16, float32, float64); no ``reduce="mul"``, no
  ``scatter_mul``/``scatter_std``/``scatter_logsumexp``/``scatter_softmax``, no ``gather_csr``/
  ``gather_coo`` and no per-reduction ``segment_*_csr``/``segment_*_coo`` (use ``reduce=``);
- max/min propagate NaN, as ``torch.scatter_reduce`` and ``torch.amax`` do (torch_scatter skips NaN);
  the ``arg`` of a NaN output is its first NaN entry;
- half types accumulate in float32, and ``mean`` divides by float32 counts, then casts once;
- ``segment_coo`` accepts an unsorted ``index`` (the result is ``scatter``'s);
- with ``out=``, a sum is ``out + (sum of the entries)``, equal to torch_scatter's running sum up to
  rounding.

Host synchronisation: none when ``dim_size`` (or ``out``) is given and none for ``segment_csr``: an
index out of range is then a device-side assertion on CUDA (a ``ValueError`` on the CPU). With
``dim_size=None``, finding ``index.max() + 1`` costs one sync, as in torch_scatter.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._autograd import row_counts, spmm_arg, spmm_sum
from ._backend import resolve
from ._checks import accumulation_dtype, assert_valid, check_float, check_index, check_out, check_range, check_reduce
from .csr import CSR, Structure

__all__ = ["scatter", "scatter_sum", "scatter_add", "scatter_mean", "scatter_max", "scatter_min",
           "segment_csr", "segment_coo", "segment"]


def scatter(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None, dim_size: int | None = None,
            reduce: str = "sum", *, backend: str = "auto") -> Tensor:
    r"""Reduce the values of ``src`` along ``dim`` into the positions given by ``index``: torch_scatter's ``scatter``.

    .. math::
        \mathrm{out}_{\ldots, i, \ldots} = \bigoplus_{j:\ \mathrm{index}_{\ldots, j, \ldots} = i}
        \mathrm{src}_{\ldots, j, \ldots}

    with :math:`\bigoplus` the sum, mean, max or min. ``index`` broadcasts as in torch_scatter: a
    one-dimensional ``index`` runs along ``dim``, and a shorter one gains trailing dimensions of size 1.
    Positions that receive nothing are 0 (or keep ``out``'s value). Deterministic on both backends.

    Args:
        src (Tensor): floating input.
        index (Tensor): integer targets in ``[0, dim_size)``, broadcastable to ``src``.
        dim (int, optional): the dimension to reduce along. (default: ``-1``)
        out (Tensor, optional): the destination, ``src``'s shape but at ``dim``: sum and mean add its
            values in (``mean`` then divides by the number of entries), max/min compare with them. It
            is written in place and returned. (default: ``None``)
        dim_size (int, optional): size of ``dim`` in the output when ``out`` is not given;
            ``index.max() + 1`` (one host sync) when ``None``. (default: ``None``)
        reduce (str, optional): ``"sum"`` (``"add"``), ``"mean"``, ``"max"`` or ``"min"``. (default: ``"sum"``)
        backend (str, keyword-only): ``"auto"``, ``"torch"`` or ``"triton"``. (default: ``"auto"``)

    Shapes:
        - **src:** :math:`(*, E, *)`; **index:** :math:`(E,)` or broadcastable to ``src``;
          **output:** ``src``'s shape with ``dim_size`` at ``dim``.

    Example::

        src = torch.randn(10, 6, 64)
        index = torch.tensor([0, 1, 0, 1, 2, 1])
        out = scatter(src, index, dim=1, reduce="sum")  # [10, 3, 64]
    """
    return _scatter(src, index, dim, out, dim_size, reduce, backend)[0]


def scatter_sum(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None,
                dim_size: int | None = None, *, backend: str = "auto") -> Tensor:
    """:func:`scatter` with ``reduce="sum"``."""
    return _scatter(src, index, dim, out, dim_size, "sum", backend)[0]


def scatter_add(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None,
                dim_size: int | None = None, *, backend: str = "auto") -> Tensor:
    """:func:`scatter` with ``reduce="sum"`` (torch_scatter's other name for it)."""
    return _scatter(src, index, dim, out, dim_size, "sum", backend)[0]


def scatter_mean(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None,
                 dim_size: int | None = None, *, backend: str = "auto") -> Tensor:
    """:func:`scatter` with ``reduce="mean"``."""
    return _scatter(src, index, dim, out, dim_size, "mean", backend)[0]


def scatter_max(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None,
                dim_size: int | None = None, *, backend: str = "auto") -> tuple[Tensor, Tensor]:
    """:func:`scatter` with ``reduce="max"``, and the argmax.

    Returns ``(out, arg)``: ``arg`` (int64, ``out``'s shape) holds the position along ``dim`` of the
    first entry of ``src`` attaining the maximum, and ``src.size(dim)`` where no entry reached the
    position (or, with ``out=``, none exceeded ``out``'s value), as in torch_scatter.
    """
    return _scatter(src, index, dim, out, dim_size, "max", backend)  # type: ignore[return-value]


def scatter_min(src: Tensor, index: Tensor, dim: int = -1, out: Tensor | None = None,
                dim_size: int | None = None, *, backend: str = "auto") -> tuple[Tensor, Tensor]:
    """:func:`scatter` with ``reduce="min"``, and the argmin (see :func:`scatter_max`)."""
    return _scatter(src, index, dim, out, dim_size, "min", backend)  # type: ignore[return-value]


def segment_coo(src: Tensor, index: Tensor, out: Tensor | None = None, dim_size: int | None = None,
                reduce: str = "sum", *, backend: str = "auto") -> Tensor:
    r"""Reduce ``src`` along dimension ``index.dim() - 1`` into the positions of ``index``: torch_scatter's ``segment_coo``.

    The same result as ``scatter(src, index, index.dim() - 1, out, dim_size, reduce)``. torch_scatter
    requires ``index`` sorted along its last dimension; gseq does not (it sorts anyway).

    Args:
        src (Tensor): floating input.
        index (Tensor): integer targets, its leading dimensions those of ``src`` (or 1).
        out (Tensor, optional): as in :func:`scatter`. (default: ``None``)
        dim_size (int, optional): as in :func:`scatter`. (default: ``None``)
        reduce (str, optional): ``"sum"`` (``"add"``), ``"mean"``, ``"max"`` or ``"min"``. (default: ``"sum"``)
        backend (str, keyword-only): as in :func:`scatter`. (default: ``"auto"``)

    Shapes:
        - **src:** :math:`(x_0, \ldots, x_{m-1}, E, *)`; **index:** :math:`(x_0, \ldots, x_{m-1}, E)`;
          **output:** :math:`(x_0, \ldots, x_{m-1}, \mathrm{dim\_size}, *)`.
    """
    if isinstance(index, Tensor) and isinstance(src, Tensor) and not 1 <= index.dim() <= max(src.dim(), 1):
        raise ValueError(f"index must have between 1 and src.dim() = {src.dim()} dimensions, "
                         f"got shape {tuple(index.shape)}")
    dim = index.dim() - 1 if isinstance(index, Tensor) else 0
    return _scatter(src, index, dim, out, dim_size, reduce, backend)[0]


def segment_csr(src: Tensor, indptr: Tensor, out: Tensor | None = None, reduce: str = "sum", *,
                backend: str = "auto") -> Tensor:
    r"""Reduce contiguous ranges of ``src``: torch_scatter's ``segment_csr``.

    .. math::
        \mathrm{out}_{\ldots, i, \ldots} = \bigoplus_{j = \mathrm{indptr}_{\ldots, i}}^{\mathrm{indptr}_{\ldots, i+1} - 1}
        \mathrm{src}_{\ldots, j, \ldots}

    along dimension ``indptr.dim() - 1`` of ``src``; a batched ``indptr`` gives each leading index
    its own ranges (a leading size of 1 broadcasts). Ranges may start after 0 and end before the end;
    an empty range gives 0, an empty ``indptr`` an empty output. Deterministic, no host sync.

    Args:
        src (Tensor): floating input.
        indptr (Tensor): integer ``[..., M + 1]``, non-decreasing along its last dimension, in
            ``[0, src.size(indptr.dim() - 1)]``.
        out (Tensor, optional): the destination, overwritten (as in torch_scatter) and returned.
            (default: ``None``)
        reduce (str, optional): ``"sum"`` (``"add"``), ``"mean"``, ``"max"`` or ``"min"``. (default: ``"sum"``)
        backend (str, keyword-only): as in :func:`scatter`. (default: ``"auto"``)

    Shapes:
        - **src:** :math:`(x_0, \ldots, x_{m-2}, E, *)`; **indptr:** :math:`(x_0, \ldots, x_{m-2}, M + 1)`;
          **output:** :math:`(x_0, \ldots, x_{m-2}, M, *)`.
    """
    src = check_float(src, "src")
    reduce = check_reduce(reduce)
    indptr = check_index(indptr, "indptr", src.device)
    if not 1 <= indptr.dim() <= src.dim():
        raise ValueError(f"indptr must have between 1 and src.dim() = {src.dim()} dimensions, "
                         f"got shape {tuple(indptr.shape)}")
    dim = indptr.dim() - 1
    lead, size = list(src.shape[:dim]), src.size(dim)
    if any(a not in (1, b) for a, b in zip(indptr.shape[:-1], lead)):
        raise ValueError(f"indptr of shape {tuple(indptr.shape)} does not match the leading dimensions "
                         f"{tuple(lead)} of src (each must be equal or 1)")
    y = indptr.size(-1)
    m = max(y - 1, 0)
    if out is not None:
        out = check_out(out, src, dim, m)
    rising = (indptr.diff(dim=-1) >= 0).all() if y > 1 else torch.ones((), dtype=torch.bool, device=src.device)
    assert_valid(rising, "indptr", lambda: "indptr must be non-decreasing along its last dimension")
    check_range(indptr, size + 1, "indptr", f"<= src.size({dim}) = {size}", "its values are positions along that dim")
    impl = resolve(backend, src.device)
    b, k = math.prod(lead), math.prod(src.shape[dim + 1:])
    # one CSR over the b * size positions: a row before the first range, then per batch the m ranges
    # and the gap up to the next batch's first range, so the rows cover every position once
    ptr = indptr.expand(lead + [y]).reshape(b, y) + torch.arange(b, device=src.device)[:, None] * size
    whole = torch.cat([ptr.new_zeros(1), ptr.reshape(-1), ptr.new_full((1,), b * size)])
    pattern = Structure(whole, torch.arange(b * size, device=src.device), (b * y + 1, b * size),
                        transpose=lambda: (torch.arange(b * size + 1, device=src.device), pattern.row(),
                                           torch.arange(b * size, device=src.device)))
    csr = CSR._of(pattern, None)
    res = _reduce(csr, src.reshape(b * size, k), reduce, impl)[0]
    res = res[1:].reshape(b, y, k)[:, :m].reshape(lead + [m] + list(src.shape[dim + 1:]))
    return res if out is None else out.copy_(res)


#: the old name of :func:`segment_csr`
segment = segment_csr


def _broadcast(index: Tensor, src: Tensor, dim: int) -> Tensor:
    """torch_scatter's ``broadcast``: a 1-D index along ``dim``, then trailing dimensions of size 1 (not expanded)."""
    if index.dim() > src.dim():
        raise ValueError(f"index has more dimensions ({index.dim()}) than src ({src.dim()})")
    if index.dim() == 1:
        index = index.view([1] * dim + [-1])
    index = index.view(list(index.shape) + [1] * (src.dim() - index.dim()))
    if any(a not in (1, b) for a, b in zip(index.shape, src.shape)):
        raise ValueError(f"index of shape {tuple(index.shape)} cannot broadcast to src {tuple(src.shape)} "
                         f"(scattering along dim {dim}); each size must equal src's or be 1")
    return index


def _sorted_csr(target: Tensor, num_rows: int) -> CSR:
    """The CSR whose row ``i`` holds the positions ``j`` with ``target[j] == i``, in order (targets validated)."""
    n = target.numel()
    ordered, perm = torch.sort(target, stable=True)
    indptr = torch.searchsorted(ordered, torch.arange(num_rows + 1, device=target.device))
    def transpose():  # position j is one entry, in row target[j]; transposed entry j is entry inv[j]
        inv = torch.empty_like(perm).scatter_(0, perm, torch.arange(n, device=perm.device))
        return torch.arange(n + 1, device=target.device), target, inv
    return CSR._of(Structure(indptr, perm, (num_rows, n), transpose=transpose), None)


def _reduce(csr: CSR, x: Tensor, reduce: str, impl, base: Tensor | None = None,
            counts_shape: tuple[int, int] | None = None) -> tuple[Tensor, Tensor | None]:
    """``reduce`` over the rows of ``csr`` applied to ``x``, combined with ``base`` (``out``'s values) when given.

    Returns ``(result, arg)``; ``arg`` holds entry ids (``nnz``: nothing won) for max/min, else ``None``.
    """
    if reduce == "sum":
        res = spmm_sum(csr, x, impl, x.dtype)
        return (res if base is None else base + res.view_as(base)), None
    if reduce == "mean":
        acc = accumulation_dtype(x.dtype)
        total = spmm_sum(csr, x, impl, acc)
        counts = row_counts(csr, acc)
        if base is not None:
            total = base.to(acc) + total.view_as(base)
            counts = counts.view(counts_shape)
        else:
            counts = counts[:, None]
        return (total / counts).to(x.dtype), None
    res, arg = spmm_arg(csr, x, reduce, impl)
    if base is None:
        return res, arg
    res, arg = res.view_as(base), arg.view_as(base)
    has = arg < csr.nnz
    beats = (res > base) if reduce == "max" else (res < base)
    wins = has & (beats | (res.isnan() & ~base.isnan()))
    pick = torch.maximum(base, res) if reduce == "max" else torch.minimum(base, res)  # NaN propagates
    return torch.where(has, pick, base), arg.masked_fill(~wins, csr.nnz)


def _scatter(src, index, dim, out, dim_size, reduce, backend) -> tuple[Tensor, Tensor | None]:
    src = check_float(src, "src")
    reduce = check_reduce(reduce)
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension; use src.view(1)")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -src.dim() <= dim < src.dim():
        raise ValueError(f"dim must be an int in [-{src.dim()}, {src.dim()}), got {dim!r}")
    dim %= src.dim()
    index = check_index(index, "index", src.device)
    view = _broadcast(index, src, dim)
    if out is not None:
        out = check_out(out, src, dim)
        if dim_size is not None and dim_size != out.size(dim):
            raise ValueError(f"dim_size = {dim_size} but out.size({dim}) = {out.size(dim)}; pass one of them")
        dim_size = out.size(dim)
    elif dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() else 0  # the one host sync, as in torch_scatter
    if not isinstance(dim_size, int) or isinstance(dim_size, bool) or dim_size < 0:
        raise TypeError(f"dim_size must be a non-negative int or None, got {dim_size!r}")
    check_range(index, dim_size, "index", f"< dim_size = {dim_size}", "pass a larger dim_size (or out)")
    impl = resolve(backend, src.device)

    n = src.size(dim)
    moved = src.movedim(dim, 0)
    trailing = list(moved.shape[1:])
    k = math.prod(trailing)
    flat = moved.reshape(n, k)
    if all(s == 1 for i, s in enumerate(view.shape) if i != dim):  # the index runs along dim only
        csr = _sorted_csr(view.reshape(-1).expand(n), dim_size)
        x, counts_shape = flat, (dim_size, 1)
    else:  # a full index: one row per (target, trailing position), over src as a column vector
        idx = view.expand_as(src).movedim(dim, 0).reshape(n, k)
        csr = _sorted_csr((idx * k + torch.arange(k, device=src.device)).reshape(-1), dim_size * k)
        x, counts_shape = flat.reshape(-1, 1), (dim_size, k)
    base = None if out is None else out.movedim(dim, 0).reshape(dim_size, k).clone()  # out is written below
    res, arg = _reduce(csr, x, reduce, impl, base, counts_shape)

    def unflatten(t: Tensor) -> Tensor:
        return t.reshape([dim_size] + trailing).movedim(0, dim)

    res = unflatten(res)
    if out is not None:
        res = out.copy_(res)
    if arg is None:
        return res, None
    # entry ids -> positions along dim (a column is a position, or position * k + trailing offset)
    pos = csr.indices if x is flat else csr.indices // k
    found = arg < csr.nnz
    arg = torch.where(found, pos[arg.clamp(max=max(csr.nnz - 1, 0))] if csr.nnz else arg, n)
    return res, unflatten(arg.reshape(dim_size, k))
