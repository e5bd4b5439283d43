"""The compressed-sparse-row container used by every sparse kernel in :mod:`gseq.ops`.

A :class:`CSR` is validated once, when it is built; the kernels then trust it (a Triton kernel given a
bad index would read or write out of bounds silently). Structure-derived arrays (the row of each entry,
the transposed structure, the work table of the balanced Triton kernels, a ``torch.sparse_csr_tensor``)
are built on first use and cached on the object, so a CSR built once and reused (``GCN(cached=True)``)
pays for them once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import fits_memory
from ._checks import DTYPES

__all__ = ["CSR"]


def _check_range(t: Tensor, high: int, name: str, bound: str, fix: str) -> None:
    """``0 <= t < high`` read on the host (building a CSR reads its arrays once); ``bound`` says the
    upper bound in words for the error message, ``fix`` what to do."""
    if t.numel() > 0:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0:
            raise ValueError(f"{name} must be non-negative, found {lo}")
        if hi >= high:
            raise ValueError(f"{name} must be {bound}, found {hi}; {fix}")


def _as_index(t: Any, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integers, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must have an integer dtype (int64 or int32), got {t.dtype}; convert it with .long()")
    if t.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    return t.long()


class CSR:
    r"""A sparse matrix :math:`A \in \mathbb{R}^{M \times N}` in compressed-sparse-row form.

    Row :math:`i` holds the entries ``indptr[i]:indptr[i+1]``; entry :math:`e` sits in column
    ``indices[e]`` with value ``values[e]`` (1 when ``values`` is ``None``: an unweighted matrix).
    Duplicate (row, column) pairs are allowed and add up in every product. The arrays are stored
    contiguous (a strided view such as ``edge_index[1]`` or ``W[:, 0]`` is copied once).

    Args:
        indptr (Tensor): row pointers, integer ``[M + 1]``, non-decreasing, ``indptr[0] == 0`` and
            ``indptr[-1] == nnz``.
        indices (Tensor): column of each entry, integer ``[nnz]``, in ``[0, N)``, grouped by row.
        values (Tensor, optional): floating ``[nnz]`` or ``None`` (all ones). May require grad.
            (default: ``None``)
        shape (tuple[int, int], optional): ``(M, N)``; ``N`` defaults to ``max(indices) + 1``.
            (default: ``None``)
        check (bool, keyword-only): validate the arrays (one pass over ``indptr`` and ``indices``).
            Pass ``False`` only for arrays that are valid by construction. (default: ``True``)

    Shapes:
        - **indptr:** :math:`(M + 1,)`; **indices**, **values:** :math:`(nnz,)`.
    """

    __slots__ = ("indptr", "indices", "values", "shape", "_scache", "__weakref__")

    def __init__(self, indptr: Tensor, indices: Tensor, values: Tensor | None = None,
                 shape: tuple[int, int] | None = None, *, check: bool = True) -> None:
        if check:
            indptr = _as_index(indptr, "indptr")
            indices = _as_index(indices, "indices")
        # the kernels address the arrays as contiguous: a strided view (E[:, 1]) is copied once here
        indptr, indices = indptr.contiguous(), indices.contiguous()
        values = values.contiguous() if isinstance(values, Tensor) else values
        self.indptr = indptr
        self.indices = indices
        if shape is None:
            m = indptr.numel() - 1
            n = int(indices.max()) + 1 if indices.numel() > 0 else 0
            shape = (m, n)
        if check:
            shape = self._check_structure(indptr, indices, shape)
            values = self._check_values(values, indices.numel(), indices.device)
        self.values = values
        self.shape = (int(shape[0]), int(shape[1]))
        self._scache: dict[str, Any] = {}  # structure-derived arrays, shared by with_values and t()

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_structure(indptr: Tensor, indices: Tensor, shape: Any) -> tuple[int, int]:
        if not (isinstance(shape, (tuple, list, torch.Size)) and len(shape) == 2
                and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)):
            raise TypeError(f"shape must be a pair of ints (M, N), got {shape!r}")
        m, n = int(shape[0]), int(shape[1])
        if m < 0 or n < 0:
            raise ValueError(f"shape must be non-negative, got {(m, n)}")
        if indptr.device != indices.device:
            raise ValueError(f"indptr is on {indptr.device} but indices on {indices.device}; move both to one device")
        if indptr.numel() != m + 1:
            raise ValueError(f"indptr must have M + 1 = {m + 1} entries for shape {(m, n)}, got {indptr.numel()}")
        nnz = indices.numel()
        if int(indptr[0]) != 0:
            raise ValueError(f"indptr[0] must be 0, got {int(indptr[0])}")
        if int(indptr[-1]) != nnz:
            raise ValueError(f"indptr[-1] must equal nnz = len(indices) = {nnz}, got {int(indptr[-1])}")
        if m > 0 and bool((indptr[1:] < indptr[:-1]).any()):
            raise ValueError("indptr must be non-decreasing (monotone row pointers); sort entries by row")
        _check_range(indices, n, "indices", f"< N = {n} (number of columns)", "pass a larger shape")
        return m, n

    @staticmethod
    def _check_values(values: Any, nnz: int, device: torch.device) -> Tensor | None:
        if values is None:
            return None
        if not isinstance(values, Tensor):
            raise TypeError(f"values must be a floating torch.Tensor or None, got {type(values).__name__}")
        if values.dtype not in DTYPES:
            raise TypeError(f"values must be floating (float32 or float64), got {values.dtype}; convert with .float()")
        if values.dim() != 1 or values.numel() != nnz:
            raise ValueError(f"values must have shape [nnz] = [{nnz}], got {tuple(values.shape)}")
        if values.device != device:
            raise ValueError(f"values is on {values.device} but indices on {device}; move them to one device")
        return values

    def validate(self) -> "CSR":
        """Run the constructor's checks again (for a CSR built with ``check=False``); returns ``self``."""
        self.indptr = _as_index(self.indptr, "indptr").contiguous()
        self.indices = _as_index(self.indices, "indices").contiguous()
        self._check_structure(self.indptr, self.indices, self.shape)
        self._check_values(self.values, self.nnz, self.device)
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(cls, edge_index: Tensor, edge_weight: Tensor | None = None,
                        num_nodes: int | None = None, *, check: bool = True) -> "CSR":
        r"""The adjacency matrix of ``edge_index`` for PyG's ``source_to_target`` flow.

        Row :math:`i` holds the edges :math:`j \to i` (``edge_index[1] == i``), in column
        ``j = edge_index[0]``, so :math:`(A X)_i = \sum_{j \to i} w_{ji} X_j`. Entries are sorted by
        row, then column (stable: duplicates keep their order and add up).

        Args:
            edge_index (Tensor): integer ``[2, E]`` (row 0 sources, row 1 targets).
            edge_weight (Tensor, optional): floating ``[E]``; permuted into CSR order
                differentiably. (default: ``None``: unweighted)
            num_nodes (int, optional): number of nodes; ``max(edge_index) + 1`` by default.
                (default: ``None``)
            check (bool, keyword-only): validate the inputs (one pass over ``edge_index``). Pass
                ``False`` only for edges already validated. (default: ``True``)
        """
        if check:
            edge_weight, num_nodes = cls._check_edges(edge_index, edge_weight, num_nodes)
        elif num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() > 0 else 0
        edge_index = edge_index.long()
        src, dst = edge_index[0], edge_index[1]
        _, perm = torch.sort(dst * max(num_nodes, 1) + src, stable=True)
        indices = src.index_select(0, perm)
        counts = torch.bincount(dst, minlength=num_nodes)
        indptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        values = None if edge_weight is None else edge_weight.index_select(0, perm)
        return cls(indptr, indices, values, (num_nodes, num_nodes), check=False)

    @classmethod
    def _check_edges(cls, edge_index: Any, edge_weight: Any, num_nodes: Any) -> tuple[Tensor | None, int]:
        """The checks of :meth:`from_edge_index`; returns ``edge_weight`` and ``num_nodes`` (from the edges
        when None)."""
        if not isinstance(edge_index, Tensor):
            raise TypeError(f"edge_index must be a torch.Tensor, got {type(edge_index).__name__}")
        if edge_index.dtype.is_floating_point or edge_index.dtype.is_complex or edge_index.dtype == torch.bool:
            raise TypeError(f"edge_index must have an integer dtype, got {edge_index.dtype}; convert with .long()")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
        num_edges = edge_index.size(1)
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if num_edges > 0 else 0
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 0:
            raise TypeError(f"num_nodes must be a non-negative int, got {num_nodes!r}")
        # the row pointers and the per-row counts: two int64 arrays of num_nodes + 1 entries
        fits_memory("num_nodes", num_nodes, 16 * (num_nodes + 1), edge_index.device, "nodes (the CSR's row pointers)")
        _check_range(edge_index, num_nodes, "edge_index", f"< num_nodes = {num_nodes}", "pass a larger num_nodes")
        if edge_weight is not None:
            edge_weight = cls._check_values(edge_weight, num_edges, edge_index.device)
        return edge_weight, num_nodes

    def with_values(self, values: Tensor | None) -> "CSR":
        """The same structure (sharing its cached structure arrays) with new ``values`` (or ``None``)."""
        values = self._check_values(values, self.nnz, self.device)
        out = CSR(self.indptr, self.indices, values, self.shape, check=False)
        out._scache = self._scache
        return out

    def to(self, device: torch.device | str) -> "CSR":
        """A copy on ``device`` (caches are rebuilt there on first use)."""
        device = torch.device(device)
        if device == self.device:
            return self
        values = None if self.values is None else self.values.to(device)
        return CSR(self.indptr.to(device), self.indices.to(device), values, self.shape, check=False)

    # ------------------------------------------------------------------ properties
    @property
    def nnz(self) -> int:
        return self.indices.numel()

    @property
    def num_rows(self) -> int:
        return self.shape[0]

    @property
    def num_cols(self) -> int:
        return self.shape[1]

    @property
    def device(self) -> torch.device:
        return self.indices.device

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype of ``values``, or ``None`` for an unweighted matrix."""
        return None if self.values is None else self.values.dtype

    def __repr__(self) -> str:
        vals = "None" if self.values is None else f"{self.values.dtype}"
        return (f"CSR(shape={self.shape}, nnz={self.nnz}, values={vals}, device={self.device})")

    def cached(self, key: str, build):
        """The structure-derived array ``key``, built by ``build()`` on first use and kept.

        The cache is shared by every CSR with the same structure (:meth:`with_values`, and the
        transpose returned by successive :meth:`t` calls), so kernels can keep work tables here.
        """
        hit = self._scache.get(key)
        if hit is None:
            hit = self._scache[key] = build()
        return hit

    def row_counts(self) -> Tensor:
        """Number of entries of each row, ``indptr.diff()``: int64 ``[M]`` (cached)."""
        return self.cached("counts", lambda: self.indptr.diff())

    def row(self) -> Tensor:
        """Row of each entry: int64 ``[nnz]`` (cached)."""
        return self.cached("row", lambda: torch.repeat_interleave(
            torch.arange(self.num_rows, device=self.device), self.row_counts(), output_size=self.nnz))

    # ------------------------------------------------------------------ transpose
    def transpose_structure(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(indptr_t, indices_t, perm)`` of :math:`A^\\top` (cached): transposed entry ``k`` is entry ``perm[k]``."""
        def build():
            lazy = self._scache.pop("t_lazy", None)
            if lazy is not None:
                return lazy()
            _, perm = torch.sort(self.indices, stable=True)  # by column; rows stay ascending inside
            indices_t = self.row().index_select(0, perm)
            counts = torch.bincount(self.indices, minlength=self.num_cols)
            indptr_t = torch.zeros(self.num_cols + 1, dtype=torch.long, device=self.device)
            torch.cumsum(counts, 0, out=indptr_t[1:])
            if torch.equal(indptr_t, self.indptr) and torch.equal(indices_t, self.indices):
                indptr_t, indices_t = self.indptr, self.indices  # symmetric pattern: share memory
            return indptr_t, indices_t, perm
        return self.cached("t", build)

    def _prime_transpose(self, build) -> "CSR":
        """Let :meth:`transpose_structure` call ``build()`` (returning what it returns) instead of sorting:
        for builders that know the transpose (the scatter and segment CSRs: one entry per column)."""
        self._scache["t_lazy"] = build
        return self

    def is_symmetric_pattern(self) -> bool:
        """Whether the sparsity pattern (with multiplicities, ignoring values) equals its transpose."""
        indptr_t, indices_t, _ = self.transpose_structure()
        return indptr_t is self.indptr and indices_t is self.indices

    def t(self) -> "CSR":
        """The transpose :math:`A^\\top` as a CSR (the CSC of ``self``).

        The structure is built on first use and cached; the values are ``values[perm]``, an index
        that autograd follows, so a gradient with respect to the transpose's values reaches ``values``.
        Successive calls share one structure cache, and the transpose of the transpose is
        ``self``'s structure again (no second sort).
        """
        indptr_t, indices_t, perm = self.transpose_structure()
        values_t = None if self.values is None else self.values.index_select(0, perm)
        out = CSR(indptr_t, indices_t, values_t, (self.num_cols, self.num_rows), check=False)
        tcache = self._scache.get("t_cache")
        if tcache is None:
            indptr, indices = self.indptr, self.indices

            def back():
                inv = torch.empty_like(perm)
                inv[perm] = torch.arange(perm.numel(), device=perm.device)
                return indptr, indices, inv
            tcache = self._scache["t_cache"] = {"t_lazy": back, "t_cache": self._scache}
        out._scache = tcache
        return out
