"""Plain-torch references and graph generators shared by the gseq.ops tests."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from gseq.ops import CSR

REDUCES = ["sum", "mean", "max", "min"]
DTYPES = [torch.float32, torch.float64]


def reference(indptr, indices, values, x, reduce: str) -> torch.Tensor:
    """Row-by-row loop: reduce over v_e * x[col_e] for the entries of each row; empty rows give 0."""
    m = indptr.numel() - 1
    out = torch.zeros(m, x.size(1), dtype=torch.float64)
    xd = x.detach().double().cpu()
    for i in range(m):
        s, e = int(indptr[i]), int(indptr[i + 1])
        if s == e:
            continue
        cols = indices[s:e].cpu()
        rows = xd[cols]
        if values is not None:
            rows = rows * values[s:e].detach().double().cpu()[:, None]
        out[i] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.amax(0), "min": rows.amin(0)}[reduce]
    return out.to(device=x.device, dtype=x.dtype)


def csr_from_pairs(rows, cols, m: int, n: int, values=None) -> CSR:
    """A CSR from (row, col) pairs (sorted by row, then column; duplicates kept)."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    cols = torch.as_tensor(cols, dtype=torch.long)
    order = torch.argsort(rows * max(n, 1) + cols, stable=True)
    rows, cols = rows[order], cols[order]
    indptr = torch.zeros(m + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=m), 0)
    if values is not None:
        values = values[order]
    return CSR(indptr, cols, values, (m, n))


def power_law_csr(m: int, n: int, nnz: int, *, seed: int = 0, exponent: float = 1.2, weighted: bool = True,
                  dtype=torch.float64) -> CSR:
    """Rows drawn with Zipf-like weights (a few heavy rows), columns uniformly; duplicates possible."""
    g = torch.Generator().manual_seed(seed)
    w = torch.arange(1, m + 1, dtype=torch.float64) ** -exponent
    rows = torch.multinomial(w, nnz, replacement=True, generator=g) if m and nnz else torch.zeros(0, dtype=torch.long)
    cols = torch.randint(0, max(n, 1), (rows.numel(),), generator=g)
    vals = torch.rand(rows.numel(), generator=g, dtype=dtype) + 0.5 if weighted else None
    return csr_from_pairs(rows, cols, m, n, vals)


@st.composite
def graphs(draw, max_nodes: int = 12, max_edges: int = 40):
    """(rows, cols, m, n) with empty rows, duplicates, self-loops and a possibly heavy row."""
    m = draw(st.integers(0, max_nodes))
    n = draw(st.integers(0, max_nodes))
    if m == 0 or n == 0:
        return [], [], m, n
    k = draw(st.integers(0, max_edges))
    heavy = draw(st.integers(0, m - 1))
    rows = draw(st.lists(st.one_of(st.just(heavy), st.integers(0, m - 1)), min_size=k, max_size=k))
    cols = draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k))
    if m == n and draw(st.booleans()):  # self-loops on a few rows
        loops = draw(st.lists(st.integers(0, m - 1), max_size=4))
        rows, cols = rows + loops, cols + loops
    return rows, cols, m, n
