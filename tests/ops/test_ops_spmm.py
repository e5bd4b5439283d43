"""gseq.ops.spmm against plain torch references, table-driven over reductions x dtypes x backends."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, HealthCheck
from ops_reference import BACKENDS, DTYPES, REDUCES, csr_from_pairs, graphs, power_law_csr, reference

from gseq.ops import CSR, spmm

_SCATTER = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


@pytest.fixture(autouse=True)
def _triton_runtime(request):
    if request.node.get_closest_marker("triton"):
        from ops_reference import require_triton_runtime
        require_triton_runtime()


def diff_reference(csr: CSR, values, x, reduce):
    """A differentiable reference on a tiny graph: gather every entry, then scatter_reduce."""
    row, col = csr.row(), csr.indices
    g = x[col] if values is None else x[col] * values[:, None]
    out = x.new_zeros(csr.num_rows, x.size(1))
    return out.scatter_reduce(0, row[:, None].expand_as(g), g, _SCATTER[reduce], include_self=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("weighted", [True, False])
def test_spmm_forward_backward(backend, dtype, reduce, weighted):
    csr = power_law_csr(14, 11, 60, seed=1, weighted=weighted, dtype=dtype)
    assert bool((csr.row_counts() == 0).any())  # the graph has empty rows
    x = torch.randn(11, 5, dtype=dtype, requires_grad=True)
    values = None if csr.values is None else csr.values.detach().requires_grad_()
    out = spmm(csr.with_values(values), x, reduce, backend=backend)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    assert out.dtype == dtype and out.shape == (14, 5)
    torch.testing.assert_close(out, reference(csr.indptr, csr.indices, values, x, reduce), **tol)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x] + ([values] if weighted else []), grad)
    x2 = x.detach().clone().requires_grad_()
    v2 = None if values is None else values.detach().clone().requires_grad_()
    want = torch.autograd.grad(diff_reference(csr, v2, x2, reduce), [x2] + ([v2] if weighted else []), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", REDUCES)
def test_gradcheck_float64(backend, reduce):
    csr = power_law_csr(7, 6, 18, seed=2, dtype=torch.float64)  # weighted: no exact ties for max/min
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    v = csr.values.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda v, x: spmm(csr.with_values(v), x, reduce, backend=backend), (v, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_through_edge_index_weights(backend):
    """CSR.from_edge_index permutes edge_weight differentiably: the gradient reaches the edge order."""
    ei = torch.tensor([[0, 2, 1, 2, 0, 3, 3], [1, 0, 2, 1, 3, 3, 1]])
    w = torch.rand(7, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, x: spmm(CSR.from_edge_index(ei, w, 4), x, backend=backend), (w, x))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(), reduce_i=..., width=...)
def test_property_torch(graph, reduce_i: bool, width: bool):
    _check_property(graph, "max" if reduce_i else "sum", 3 if width else 1, "torch")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs())
def test_property_torch_mean_min(graph):
    _check_property(graph, "mean", 2, "torch")
    _check_property(graph, "min", 2, "torch")


@pytest.mark.triton
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(max_nodes=8, max_edges=24))
def test_property_triton(graph):
    from ops_reference import require_triton_runtime
    require_triton_runtime()
    for reduce in REDUCES:
        _check_property(graph, reduce, 3, "triton")


def _check_property(graph, reduce, f, backend):
    rows, cols, m, n = graph
    g = torch.Generator().manual_seed(len(rows))
    vals = torch.rand(len(rows), generator=g, dtype=torch.float64)
    csr = csr_from_pairs(rows, cols, m, n, vals)
    x = torch.randn(n, f, generator=g, dtype=torch.float64)
    out = spmm(csr, x, reduce, backend=backend)
    torch.testing.assert_close(out, reference(csr.indptr, csr.indices, csr.values, x, reduce))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("m,n,nnz,f", [(0, 0, 0, 3), (0, 4, 0, 2), (5, 0, 0, 2), (4, 4, 0, 3), (4, 5, 9, 0)])
def test_zero_sizes(backend, reduce, m, n, nnz, f):
    csr = power_law_csr(m, n, nnz, seed=3) if nnz else CSR(torch.zeros(m + 1, dtype=torch.long),
                                                         torch.zeros(0, dtype=torch.long), None, (m, n))
    x = torch.randn(n, f, dtype=csr.dtype or torch.float32, requires_grad=True)
    out = spmm(csr, x, reduce, backend=backend)
    assert out.shape == (m, f) and not bool(out.any())
    (out.sum() * 2).backward()
    assert x.grad.shape == x.shape and not bool(x.grad.any())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", ["sum", "max"])
def test_non_contiguous_x(backend, reduce):
    csr = power_law_csr(9, 8, 30, seed=4, dtype=torch.float32)
    base = torch.randn(6, 8)  # x = base.t(): strides (1, 8)
    x = base.t()
    assert not x.is_contiguous()
    sliced = torch.randn(8, 12)[:, ::2]
    for xx in (x, sliced):
        torch.testing.assert_close(spmm(csr, xx, reduce, backend=backend), spmm(csr, xx.contiguous(), reduce))


@pytest.mark.parametrize("reduce", REDUCES)
def test_torch_deterministic_bitwise(reduce):
    """Two runs (two threads, a graph with heavy rows) give bitwise equal outputs and gradients."""
    csr = power_law_csr(3000, 3000, 60000, seed=5, dtype=torch.float32)
    x = torch.randn(3000, 32, requires_grad=True)
    v = csr.values.detach().requires_grad_()

    def run():
        out = spmm(csr.with_values(v), x, reduce)
        gx, gv = torch.autograd.grad(out, (x, v), torch.ones_like(out) / 7)
        return out, gx, gv

    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_backward_reuses_cached_transpose():
    csr = power_law_csr(20, 20, 70, seed=6, dtype=torch.float32)
    x = torch.randn(20, 4, requires_grad=True)
    spmm(csr, x).sum().backward()
    first = csr.transpose_structure()
    spmm(csr, x).sum().backward()
    assert csr.transpose_structure() is first


def test_half_precision_accumulates_in_float32():
    csr = power_law_csr(30, 30, 200, seed=7, dtype=torch.float32)
    x = torch.randn(30, 8)
    for dt in (torch.float16, torch.bfloat16):
        out = spmm(csr.with_values(csr.values.to(dt)), x.to(dt))
        assert out.dtype == dt
        torch.testing.assert_close(out.float(), spmm(csr, x), rtol=2e-2, atol=5e-2)


@settings(max_examples=40, deadline=None)
@given(graph=graphs(max_nodes=6, max_edges=60))
def test_sddmm_torch_matches_gather(graph):
    """The edge-value gradient (an SDDMM) on graphs with many duplicates (more entries than cells)."""
    from gseq.ops import _torch

    rows, cols, m, n = graph
    csr = csr_from_pairs(rows, cols, m, n)
    a, b = torch.randn(m, 3, dtype=torch.float64), torch.randn(n, 3, dtype=torch.float64)
    want = (a[csr.row()] * b[csr.indices]).sum(1)
    torch.testing.assert_close(_torch.sddmm(csr, a, b), want)
    torch.testing.assert_close(_torch._sddmm_chunked(csr, a, b), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", REDUCES)
def test_unsorted_columns_inside_rows(backend, reduce):
    """CSR() accepts rows whose columns are not sorted (only grouped by row)."""
    csr = CSR(torch.tensor([0, 4, 4, 7]), torch.tensor([3, 0, 2, 0, 1, 3, 0]),
              torch.rand(7, dtype=torch.float64) + 0.5, (3, 4))
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    out = spmm(csr, x, reduce, backend=backend)
    torch.testing.assert_close(out, reference(csr.indptr, csr.indices, csr.values, x, reduce))
    gx = torch.autograd.grad(out.sum(), x)[0]
    x2 = x.detach().requires_grad_()
    torch.testing.assert_close(gx, torch.autograd.grad(diff_reference(csr, csr.values, x2, reduce).sum(), x2)[0])
