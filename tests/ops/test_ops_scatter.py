"""gseq.ops.scatter / segment against plain torch references (and torch_scatter where installed)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import given, settings, strategies as st
from ops_reference import BACKENDS, DTYPES, REDUCES

from gseq.ops import scatter, segment

_HOW = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


@pytest.fixture(autouse=True)
def _triton_runtime(request):
    if request.node.get_closest_marker("triton"):
        from ops_reference import require_triton_runtime
        require_triton_runtime()


def scatter_ref(src, index, dim, dim_size, reduce):
    """torch.scatter_reduce with include_self=False on zeros: untouched positions stay 0."""
    shape = list(src.shape)
    shape[dim] = dim_size
    if index.dim() == 1:
        view = [1] * src.dim()
        view[dim] = -1
        index = index.view(view).expand_as(src)
    return src.new_zeros(shape).scatter_reduce(dim, index, src, _HOW[reduce], include_self=False)


def segment_ref(src, indptr, reduce):
    out = src.new_zeros((indptr.numel() - 1,) + tuple(src.shape[1:]))
    for i in range(indptr.numel() - 1):
        s, e = int(indptr[i]), int(indptr[i + 1])
        if e > s:
            seg = src[s:e]
            out[i] = {"sum": seg.sum(0), "mean": seg.mean(0), "max": seg.amax(0), "min": seg.amin(0)}[reduce]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
def test_scatter_matches_reference(backend, dtype, reduce):
    src = torch.randn(4, 9, 3, dtype=dtype, requires_grad=True)
    index = torch.tensor([0, 4, 2, 4, 4, 0, 1, 2, 4])  # position 3 and 5 receive nothing
    out = scatter(src, index, dim=1, dim_size=6, reduce=reduce, backend=backend)
    want = scatter_ref(src, index, 1, 6, reduce)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, src, g)[0], torch.autograd.grad(want, src, g)[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", REDUCES)
def test_scatter_full_index(backend, reduce):
    src = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 4, (7, 3))
    out = scatter(src, index, 0, 5, reduce, backend=backend)
    want = scatter_ref(src, index, 0, 5, reduce)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), src)[0], torch.autograd.grad(want.sum(), src)[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_matches_reference(backend, dtype, reduce):
    src = torch.randn(10, 2, 2, dtype=dtype, requires_grad=True)
    indptr = torch.tensor([1, 3, 3, 8, 9])  # starts after 0 and ends before the last row, like segment_csr
    out = segment(src, indptr, reduce, backend=backend)
    want = segment_ref(src, indptr, reduce)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, src, g)[0], torch.autograd.grad(want, src, g)[0])


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_scatter_segment_gradcheck(reduce):
    src = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([2, 0, 2, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda s: scatter(s, index, 0, 4, reduce), (src,))
    assert torch.autograd.gradcheck(lambda s: segment(s, torch.tensor([0, 2, 2, 6]), reduce), (src,))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 20), size=st.integers(1, 6), reduce=st.sampled_from(REDUCES), seed=st.integers(0, 99))
def test_scatter_property(n, size, reduce, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(n, 2, generator=g, dtype=torch.float64)
    index = torch.randint(0, size, (n,), generator=g)
    torch.testing.assert_close(scatter(src, index, 0, size, reduce), scatter_ref(src, index, 0, size, reduce))


def test_scatter_default_dim_size_and_vector():
    out = scatter(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2, 0, 2]))
    assert out.tolist() == [2.0, 0.0, 4.0]
    assert scatter(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).shape == (0, 3)


def test_scatter_deterministic_bitwise():
    src = torch.randn(50000, 16)
    index = torch.randint(0, 100, (50000,))
    assert torch.equal(scatter(src, index, 0, 100), scatter(src, index, 0, 100))


if importlib.util.find_spec("torch_scatter"):  # compared only where torch_scatter is installed (it is optional)
    @pytest.mark.parametrize("reduce", REDUCES)
    def test_against_torch_scatter(reduce):
        import torch_scatter

        src = torch.randn(30, 4)
        index = torch.randint(0, 8, (30,))
        want = torch_scatter.scatter(src, index, 0, None, 9, reduce)
        torch.testing.assert_close(scatter(src, index, 0, 9, reduce), want)
        indptr = torch.tensor([0, 4, 4, 20, 30])
        torch.testing.assert_close(segment(src, indptr, reduce), torch_scatter.segment_csr(src, indptr, None, reduce))
