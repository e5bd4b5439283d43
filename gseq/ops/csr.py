"""The compressed-sparse-row container used by every sparse kernel in :mod:`gseq.ops`.

A :class:`CSR` is validated once, when it is built; the kernels then trust it (a Triton kernel given a
bad index would read or write out of bounds silently). Its sparsity pattern is a :class:`Structure`,
shared by every CSR with that pattern (:meth:`CSR.with_values`, the CSRs of successive :meth:`CSR.t`
calls), which keeps what is derived from the pattern alone in named fields, each written by one owner:
the row of each entry and the transposed pattern (:class:`Structure` itself), the mean's row counts
(:mod:`gseq.ops._autograd`), the unweighted ``torch.sparse_csr_tensor`` (:mod:`gseq.ops._torch`) and
the work table of the balanced Triton kernels (:mod:`gseq.ops._triton`). A CSR built once and reused
(``GCN(cached=True)``) pays for them once.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..checks import fits_memory
from ._checks import DTYPES, check_range, index_dtype

__all__ = ["CSR", "Structure"]


def _as_index(t: Any, name: str) -> Tensor:
    index_dtype(t, name)
    if t.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    return t.long()


def _indptr(counts: Tensor) -> Tensor:
    """Row pointers ``[M + 1]`` from the entries per row ``[M]``."""
    indptr = counts.new_zeros(counts.numel() + 1)
    torch.cumsum(counts, 0, out=indptr[1:])
    return indptr


def _inverse(perm: Tensor) -> Tensor:
    return torch.empty_like(perm).scatter_(0, perm, torch.arange(perm.numel(), device=perm.device))


class Structure:
    r"""The sparsity pattern of a CSR: ``indptr`` ``[M + 1]`` and ``indices`` ``[nnz]`` (int64, contiguous)
    of ``shape`` ``(M, N)``, and the arrays derived from it, built on first use and kept.

    Each cache is a named field with one owner, the only code that writes it:

    - ``_row`` (:meth:`row`) and ``_transpose`` (:meth:`transpose`): this class. A builder that knows
      the transpose already (the scatter reductions: one entry per column) passes ``transpose=``;
    - ``mean_counts``: :func:`gseq.ops._autograd.row_counts` (the mean's divisors, by dtype);
    - ``torch_ones``: :mod:`gseq.ops._torch` (the unweighted ``torch.sparse_csr_tensor``, by dtype);
    - ``triton_work``: :mod:`gseq.ops._triton` (the chunk table of its balanced kernels).
    """

    __slots__ = ("indptr", "indices", "shape", "_row", "_transpose", "_known_transpose", "mean_counts",
                 "torch_ones", "triton_work")

    def __init__(self, indptr: Tensor, indices: Tensor, shape: tuple[int, int], *,
                 transpose: Callable[[], tuple[Tensor, Tensor, Tensor]] | None = None) -> None:
        self.indptr, self.indices, self.shape = indptr, indices, shape
        self._row: Tensor | None = None
        self._transpose: tuple[Structure, Tensor] | None = None
        self._known_transpose = transpose  # a builder of (indptr_t, indices_t, perm), or (Structure, perm)
        self.mean_counts: dict[torch.dtype, Tensor] = {}
        self.torch_ones: dict[torch.dtype, Tensor] = {}
        self.triton_work: tuple[Tensor, ...] | None = None

    @property
    def nnz(self) -> int:
        return self.indices.numel()

    def row(self) -> Tensor:
        """Row of each entry, int64 ``[nnz]``."""
        if self._row is None:
            self._row = torch.repeat_interleave(torch.arange(self.shape[0], device=self.indices.device),
                                                self.indptr.diff(), output_size=self.nnz)
        return self._row

    def transpose(self) -> tuple["Structure", Tensor]:
        """``(pattern of A^T, perm)``: transposed entry ``k`` is entry ``perm[k]``. The transpose of the
        transpose is this object again (no second sort)."""
        if self._transpose is None:
            known, self._known_transpose = self._known_transpose, None
            if known is not None:
                *t, perm = known()
                t = t[0] if len(t) == 1 else t
            else:  # stable sort by column: rows stay ascending inside each column
                _, perm = torch.sort(self.indices, stable=True)
                indices_t = self.row().index_select(0, perm)
                indptr_t = _indptr(torch.bincount(self.indices, minlength=self.shape[1]))
                if torch.equal(indptr_t, self.indptr) and torch.equal(indices_t, self.indices):
                    indptr_t, indices_t = self.indptr, self.indices  # symmetric pattern: share memory
                t = (indptr_t, indices_t)
            if not isinstance(t, Structure):
                t = Structure(t[0], t[1], (self.shape[1], self.shape[0]))
                t._known_transpose = lambda: (self, _inverse(perm))
            self._transpose = (t, perm)
        return self._transpose


class CSR:
    r"""A sparse matrix :math:`A \in \mathbb{R}^{M \times N}` in compressed-sparse-row form.

    Row :math:`i` holds the entries ``indptr[i]:indptr[i+1]``; entry :math:`e` sits in column
    ``indices[e]`` with value ``values[e]`` (1 when ``values`` is ``None``: an unweighted matrix).
    Duplicate (row, column) pairs are allowed and add up in every product. The arrays are stored
    contiguous (a strided view such as ``edge_index[1]`` or ``W[:, 0]`` is copied once), the indices as
    int64 (int32 inputs are converted; other integer types are refused, as everywhere in gseq).

    Args:
        indptr (Tensor): row pointers, int64 or int32 ``[M + 1]``, non-decreasing, ``indptr[0] == 0``
            and ``indptr[-1] == nnz``.
        indices (Tensor): column of each entry, int64 or int32 ``[nnz]``, in ``[0, N)``, grouped by row.
        values (Tensor, optional): floating ``[nnz]`` or ``None`` (all ones). May require grad.
            (default: ``None``)
        shape (tuple[int, int], optional): ``(M, N)``; ``N`` defaults to ``max(indices) + 1``.
            (default: ``None``)
        check (bool, keyword-only): validate the arrays (one pass over ``indptr`` and ``indices``).
            Pass ``False`` only for arrays that are valid by construction. (default: ``True``)

    Shapes:
        - **indptr:** :math:`(M + 1,)`; **indices**, **values:** :math:`(nnz,)`.
    """

    # indptr, indices and shape are the structure's, kept here too for reading
    __slots__ = ("structure", "values", "indptr", "indices", "shape", "__weakref__")

    def __init__(self, indptr: Tensor, indices: Tensor, values: Tensor | None = None,
                 shape: tuple[int, int] | None = None, *, check: bool = True) -> None:
        if check:
            indptr = _as_index(indptr, "indptr")
            indices = _as_index(indices, "indices")
        # the kernels address the arrays as contiguous: a strided view (E[:, 1]) is copied once here
        indptr, indices = indptr.contiguous(), indices.contiguous()
        values = values.contiguous() if isinstance(values, Tensor) else values
        if shape is None:
            m = indptr.numel() - 1
            n = int(indices.max()) + 1 if indices.numel() > 0 else 0
            shape = (m, n)
        if check:
            shape = self._check_structure(indptr, indices, shape)
            values = self._check_values(values, indices.numel(), indices.device)
        self._set(Structure(indptr, indices, (int(shape[0]), int(shape[1]))), values)

    @classmethod
    def _of(cls, structure: Structure, values: Tensor | None) -> "CSR":
        """A CSR on an existing pattern (trusted: ``values`` match it)."""
        out = cls.__new__(cls)
        out._set(structure, values)
        return out

    def _set(self, structure: Structure, values: Tensor | None) -> None:
        self.structure, self.values = structure, values
        self.indptr, self.indices, self.shape = structure.indptr, structure.indices, structure.shape

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
        check_range(indices, n, "indices", f"< N = {n} (number of columns)", "pass a larger shape", on_host=True)
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
        indptr = _as_index(self.indptr, "indptr").contiguous()
        indices = _as_index(self.indices, "indices").contiguous()
        self._check_structure(indptr, indices, self.shape)
        self._check_values(self.values, indices.numel(), indices.device)
        if indptr is not self.indptr or indices is not self.indices:
            self._set(Structure(indptr, indices, self.shape), self.values)
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(cls, edge_index: Tensor, edge_weight: Tensor | None = None,
                        num_nodes: int | None = None, *, check: bool = True) -> "CSR":
        r"""The adjacency matrix of ``edge_index`` for PyG's ``source_to_target`` flow.

        Row :math:`i` holds the edges :math:`j \to i` (``edge_index[1] == i``), in column
        ``j = edge_index[0]``, so :math:`(A X)_i = \sum_{j \to i} w_{ji} X_j`. Entries are sorted by
        row, then column (stable: duplicates keep their order and add up). Edges already in that order
        (sorted by target, then source) are taken as they are, without a sort.

        Args:
            edge_index (Tensor): int64 or int32 ``[2, E]`` (row 0 sources, row 1 targets).
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
        key = dst * max(num_nodes, 1) + src
        indptr = _indptr(torch.bincount(dst, minlength=num_nodes))
        if key.numel() < 2 or bool((key[1:] >= key[:-1]).all()):  # already in CSR order: no sort
            values = edge_weight
            indices = src
        else:
            perm = torch.sort(key, stable=True)[1]
            indices = src.index_select(0, perm)
            values = None if edge_weight is None else edge_weight.index_select(0, perm)
        return cls(indptr, indices, values, (num_nodes, num_nodes), check=False)

    @classmethod
    def _check_edges(cls, edge_index: Any, edge_weight: Any, num_nodes: Any) -> tuple[Tensor | None, int]:
        """The checks of :meth:`from_edge_index`; returns ``edge_weight`` and ``num_nodes`` (from the edges
        when None)."""
        index_dtype(edge_index, "edge_index")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
        num_edges = edge_index.size(1)
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if num_edges > 0 else 0
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 0:
            raise TypeError(f"num_nodes must be a non-negative int, got {num_nodes!r}")
        # the row pointers and the per-row counts: two int64 arrays of num_nodes + 1 entries
        fits_memory("num_nodes", num_nodes, 16 * (num_nodes + 1), edge_index.device, "nodes (the CSR's row pointers)")
        check_range(edge_index, num_nodes, "edge_index", f"< num_nodes = {num_nodes}", "pass a larger num_nodes",
                    on_host=True)
        if edge_weight is not None:
            edge_weight = cls._check_values(edge_weight, num_edges, edge_index.device)
        return edge_weight, num_nodes

    def with_values(self, values: Tensor | None) -> "CSR":
        """The same structure (sharing its cached structure arrays) with new ``values`` (or ``None``)."""
        return CSR._of(self.structure, self._check_values(values, self.nnz, self.device))

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

    def row_counts(self) -> Tensor:
        """Number of entries of each row, ``indptr.diff()``: int64 ``[M]``."""
        return self.indptr.diff()

    def row(self) -> Tensor:
        """Row of each entry: int64 ``[nnz]`` (cached on the structure)."""
        return self.structure.row()

    # ------------------------------------------------------------------ transpose
    def is_symmetric_pattern(self) -> bool:
        """Whether the sparsity pattern (with multiplicities, ignoring values) equals its transpose."""
        t, _ = self.structure.transpose()
        return t.indptr is self.indptr and t.indices is self.indices

    def t(self) -> "CSR":
        """The transpose :math:`A^\\top` as a CSR (the CSC of ``self``).

        The structure is built on first use and kept on ``self.structure``; the values are
        ``values[perm]``, an index that autograd follows, so a gradient with respect to the
        transpose's values reaches ``values``. Successive calls share one structure, and the transpose
        of the transpose is ``self``'s structure again (no second sort).
        """
        t, perm = self.structure.transpose()
        return CSR._of(t, None if self.values is None else self.values.index_select(0, perm))
