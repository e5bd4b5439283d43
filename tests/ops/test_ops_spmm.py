"""gseq.ops.spmm against plain torch references, table-driven over reductions x dtypes x backend/device."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from ops_reference import DTYPES, REDUCES, csr_from_pairs, graphs, power_law_csr, reference

from gseq.ops import CSR, spmm

_SCATTER = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


def diff_reference(csr: CSR, values, x, reduce):
    """A differentiable reference on a tiny graph: gather every entry, then scatter_reduce."""
    row, col = csr.row(), csr.indices
    g = x[col] if values is None else x[col] * values[:, None]
    out = x.new_zeros(csr.num_rows, x.size(1))
    return out.scatter_reduce(0, row[:, None].expand_as(g), g, _SCATTER[reduce], include_self=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("weighted", [True, False])
def test_spmm_forward_backward(backend, device, dtype, reduce, weighted):
    csr = power_law_csr(14, 11, 60, seed=1, weighted=weighted, dtype=dtype).to(device)
    assert bool((csr.row_counts() == 0).any())  # the graph has empty rows
    x = torch.randn(11, 5, dtype=dtype, device=device, requires_grad=True)
    values = None if csr.values is None else csr.values.detach().requires_grad_()
    out = spmm(csr.with_values(values), x, reduce, backend=backend)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    assert out.dtype == dtype and out.shape == (14, 5) and out.device == x.device
    torch.testing.assert_close(out, reference(csr.indptr, csr.indices, values, x, reduce), **tol)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x] + ([values] if weighted else []), grad)
    x2 = x.detach().clone().requires_grad_()
    v2 = None if values is None else values.detach().clone().requires_grad_()
    want = torch.autograd.grad(diff_reference(csr, v2, x2, reduce), [x2] + ([v2] if weighted else []), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("reduce", REDUCES)
def test_gradcheck_float64(backend, device, reduce):
    csr = power_law_csr(7, 6, 18, seed=2, dtype=torch.float64).to(device)  # weighted: no exact ties for max/min
    x = torch.randn(6, 3, dtype=torch.float64, device=device, requires_grad=True)
    v = csr.values.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda v, x: spmm(csr.with_values(v), x, reduce, backend=backend), (v, x))


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_gradgradcheck_float64(backend, device, reduce):
    """Second-order gradients: the backward of sum/mean is an SpMM and an SDDMM, differentiable again."""
    csr = power_law_csr(5, 4, 10, seed=2, dtype=torch.float64).to(device)
    x = torch.randn(4, 2, dtype=torch.float64, device=device, requires_grad=True)
    v = csr.values.detach().requires_grad_()
    fast = backend == "triton"  # the interpreter is slow: random projections instead of full Jacobians

    def f(v, x):
        return spmm(csr.with_values(v), x, reduce, backend=backend)
    assert torch.autograd.gradgradcheck(f, (v, x), fast_mode=fast)
    unweighted = CSR(csr.indptr, csr.indices, None, csr.shape)
    assert torch.autograd.gradgradcheck(lambda x: spmm(unweighted, x, reduce, backend=backend), (x,), fast_mode=fast)
    # d/dx of the edge-value gradient of a plain sum (a silent 0 if the SDDMM backward were not differentiable)
    gv = torch.autograd.grad(f(v, x).sum(), v, create_graph=True)[0]
    (hx,) = torch.autograd.grad(gv.pow(2).sum(), x)
    x2, v2 = x.detach().requires_grad_(), v.detach().requires_grad_()
    ref = diff_reference(csr, v2, x2, reduce if reduce == "sum" else "mean")
    gv2 = torch.autograd.grad(ref.sum(), v2, create_graph=True)[0]
    torch.testing.assert_close(hx, torch.autograd.grad(gv2.pow(2).sum(), x2)[0])
    assert bool(hx.abs().sum() > 0)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_double_backward_max_min_raises(backend, device, reduce):
    """max/min support first-order gradients; a second-order one raises instead of being silently 0."""
    csr = power_law_csr(7, 6, 18, seed=2, dtype=torch.float64).to(device)
    x = torch.randn(6, 3, dtype=torch.float64, device=device, requires_grad=True)
    v = csr.values.detach().requires_grad_()
    out = spmm(csr.with_values(v), x, reduce, backend=backend)
    gv, gx = torch.autograd.grad(out.sum(), (v, x), create_graph=True)  # first order works
    with pytest.raises(RuntimeError, match="not differentiable again"):
        torch.autograd.grad(gv.pow(2).sum() + gx.sum(), x)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_nan_propagates_like_torch(backend, device, reduce):
    """A NaN in a row gives NaN (torch.scatter_reduce's amax/amin), other rows keep their values; a row
    of -inf (max) or +inf (min) is -inf/+inf, not the 0 of an empty row."""
    nan, inf = float("nan"), float("inf")
    x = torch.tensor([[1.0, nan], [nan, 2.0], [3.0, -1.0], [-inf, inf], [-inf, inf]], device=device)
    rows = [0, 0, 0, 1, 1, 2, 3, 3]
    cols = [0, 1, 2, 2, 1, 2, 3, 4]
    csr = csr_from_pairs(rows, cols, 5, 5).to(device)  # row 4 is empty
    out = spmm(csr, x, reduce, backend=backend)
    want = diff_reference(csr, None, x, reduce)
    assert bool(want.isnan().any())  # the reference propagates NaN
    torch.testing.assert_close(out, want, equal_nan=True)
    assert out[3].tolist() == [-inf, inf]
    assert out[4].tolist() == [0.0, 0.0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(), reduce_i=..., width=...)
def test_property_torch(graph, reduce_i: bool, width: bool):
    _check_property(graph, "max" if reduce_i else "sum", 3 if width else 1, "torch", "cpu")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs())
def test_property_torch_mean_min(graph):
    _check_property(graph, "mean", 2, "torch", "cpu")
    _check_property(graph, "min", 2, "torch", "cpu")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(max_nodes=8, max_edges=24))
def test_property_triton(triton_device, graph):
    for reduce in REDUCES:
        _check_property(graph, reduce, 3, "triton", triton_device)


def _check_property(graph, reduce, f, backend, device):
    rows, cols, m, n = graph
    g = torch.Generator().manual_seed(len(rows))
    vals = torch.rand(len(rows), generator=g, dtype=torch.float64)
    csr = csr_from_pairs(rows, cols, m, n, vals).to(device)
    x = torch.randn(n, f, generator=g, dtype=torch.float64).to(device)
    out = spmm(csr, x, reduce, backend=backend)
    torch.testing.assert_close(out, reference(csr.indptr, csr.indices, csr.values, x, reduce))


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("m,n,nnz,f", [(0, 0, 0, 3), (0, 4, 0, 2), (5, 0, 0, 2), (4, 4, 0, 3), (4, 5, 9, 0)])
def test_zero_sizes(backend, device, reduce, m, n, nnz, f):
    csr = power_law_csr(m, n, nnz, seed=3) if nnz else CSR(torch.zeros(m + 1, dtype=torch.long),
                                                         torch.zeros(0, dtype=torch.long), None, (m, n))
    csr = csr.to(device)
    x = torch.randn(n, f, dtype=csr.dtype or torch.float32, device=device, requires_grad=True)
    out = spmm(csr, x, reduce, backend=backend)
    assert out.shape == (m, f) and not bool(out.any())
    (out.sum() * 2).backward()
    assert x.grad.shape == x.shape and not bool(x.grad.any())


@pytest.mark.parametrize("reduce", ["sum", "max"])
def test_non_contiguous_x(backend, device, reduce):
    csr = power_law_csr(9, 8, 30, seed=4, dtype=torch.float32).to(device)
    base = torch.randn(6, 8, device=device)  # x = base.t(): strides (1, 8)
    x = base.t()
    assert not x.is_contiguous()
    sliced = torch.randn(8, 12, device=device)[:, ::2]
    for xx in (x, sliced):
        torch.testing.assert_close(spmm(csr, xx, reduce, backend=backend), spmm(csr, xx.contiguous(), reduce))


def test_feature_offsets_past_int32(backend, device):
    """x = X.t()-like strides with (F - 1) * stride(1) >= 2**31: offsets must be computed in int64.

    The storage is reserved (about 4 GiB of float16) but only a few pages are touched."""
    n, f, stride = 4, 3, 2**30 + 8
    buf = torch.empty((f - 1) * stride + n, dtype=torch.float16, device=device)
    x = buf.as_strided((n, f), (1, stride))
    dense = torch.arange(1.0, n * f + 1, device=device).view(f, n).t().to(torch.float16)
    x.copy_(dense)
    csr = CSR(torch.tensor([0, 2, 4, 4]), torch.tensor([0, 1, 3, 2]), None, (3, n)).to(device)
    torch.testing.assert_close(spmm(csr, x, backend=backend), spmm(csr, dense, backend="torch"))
    torch.testing.assert_close(spmm(csr, x, "max", backend=backend), spmm(csr, dense, "max", backend="torch"))


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
    first = csr.structure.transpose()
    spmm(csr, x).sum().backward()
    assert csr.structure.transpose() is first


def test_half_precision_accumulates_in_float32(backend, device):
    csr = power_law_csr(30, 30, 200, seed=7, dtype=torch.float32).to(device)
    x = torch.randn(30, 8, device=device)
    for dt in (torch.float16, torch.bfloat16):
        for reduce in REDUCES:
            out = spmm(csr.with_values(csr.values.to(dt)), x.to(dt), reduce, backend=backend)
            assert out.dtype == dt
            torch.testing.assert_close(out.float(), spmm(csr, x, reduce), rtol=2e-2, atol=5e-2)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the interpreter casting inf
def test_half_precision_sums_past_fp16_range(backend, device, monkeypatch):
    """fp16 sums and means whose running sums leave fp16's range (65,504) but whose results do not
    (the Triton rows are split into chunks of 2, so the partial sums go through the combine kernel)."""
    from gseq.ops import _triton

    monkeypatch.setattr(_triton, "CHUNK", 2)
    big = 60000.0
    x = torch.tensor([[big], [big], [-big], [big]], dtype=torch.float16, device=device)
    csr = CSR(torch.tensor([0, 3, 6]), torch.tensor([0, 1, 2, 0, 1, 3]), None, (2, 4)).to(device)
    assert spmm(csr, x, "sum", backend=backend)[:, 0].tolist() == [big, float("inf")]  # 180,000 is out of range
    assert spmm(csr, x, "mean", backend=backend)[:, 0].tolist() == [big / 3, big]


def test_half_precision_row_of_70000_entries():
    """A row of 70,000 entries in fp16: the count (>= 65,520) and the running sum stay in float32."""
    n = 70_000
    ones = torch.ones(2 * n, 1, dtype=torch.float16)
    ones[n:] = -1  # the running sum reaches 70,000, the total is 0
    csr = CSR(torch.tensor([0, n, 2 * n]), torch.arange(2 * n), None, (2, 2 * n))
    assert spmm(csr, ones, "mean")[:, 0].tolist() == [1.0, -1.0]
    both = CSR(torch.tensor([0, 2 * n]), torch.arange(2 * n), None, (1, 2 * n))
    assert spmm(both, ones, "sum").item() == 0.0
    assert spmm(both, ones, "mean").item() == 0.0


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


@pytest.mark.parametrize("reduce", REDUCES)
def test_unsorted_columns_inside_rows(backend, device, reduce):
    """CSR() accepts rows whose columns are not sorted (only grouped by row)."""
    csr = CSR(torch.tensor([0, 4, 4, 7]), torch.tensor([3, 0, 2, 0, 1, 3, 0]),
              torch.rand(7, dtype=torch.float64) + 0.5, (3, 4)).to(device)
    x = torch.randn(4, 3, dtype=torch.float64, device=device, requires_grad=True)
    out = spmm(csr, x, reduce, backend=backend)
    torch.testing.assert_close(out, reference(csr.indptr, csr.indices, csr.values, x, reduce))
    gx = torch.autograd.grad(out.sum(), x)[0]
    x2 = x.detach().requires_grad_()
    torch.testing.assert_close(gx, torch.autograd.grad(diff_reference(csr, csr.values, x2, reduce).sum(), x2)[0])
