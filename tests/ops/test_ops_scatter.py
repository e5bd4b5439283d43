"""gseq.ops.scatter / segment_csr / segment_coo against plain torch references (and torch_scatter where
installed). torch_scatter's own test tables run in test_ops_torch_scatter_cases.py."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import given, settings, strategies as st
from ops_reference import DTYPES, REDUCES

from gseq.ops import scatter, scatter_max, scatter_min, segment, segment_coo, segment_csr

_HOW = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


def scatter_ref(src, index, dim, dim_size, reduce):
    """torch.scatter_reduce with include_self=False on zeros (untouched positions stay 0), with
    torch_scatter's index broadcasting (a 1-D index along dim, trailing dimensions of size 1)."""
    dim = dim % src.dim()
    if index.dim() == 1:
        index = index.view([1] * dim + [-1])
    index = index.view(list(index.shape) + [1] * (src.dim() - index.dim())).expand_as(src)
    shape = list(src.shape)
    shape[dim] = dim_size
    return src.new_zeros(shape).scatter_reduce(dim, index, src, _HOW[reduce], include_self=False)


def segment_ref(src, indptr, reduce):
    out = src.new_zeros((indptr.numel() - 1,) + tuple(src.shape[1:]))
    for i in range(indptr.numel() - 1):
        s, e = int(indptr[i]), int(indptr[i + 1])
        if e > s:
            seg = src[s:e]
            out[i] = {"sum": seg.sum(0), "mean": seg.mean(0), "max": seg.amax(0), "min": seg.amin(0)}[reduce]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
def test_scatter_matches_reference(backend, device, dtype, reduce):
    src = torch.randn(4, 9, 3, dtype=dtype, device=device, requires_grad=True)
    index = torch.tensor([0, 4, 2, 4, 4, 0, 1, 2, 4], device=device)  # position 3 and 5 receive nothing
    out = scatter(src, index, dim=1, dim_size=6, reduce=reduce, backend=backend)
    want = scatter_ref(src, index, 1, 6, reduce)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, src, g)[0], torch.autograd.grad(want, src, g)[0])


@pytest.mark.parametrize("reduce", REDUCES)
def test_scatter_full_index(backend, device, reduce):
    src = torch.randn(7, 3, dtype=torch.float64, device=device, requires_grad=True)
    index = torch.randint(0, 4, (7, 3), device=device)
    out = scatter(src, index, 0, None, 5, reduce, backend=backend)
    want = scatter_ref(src, index, 0, 5, reduce)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), src)[0], torch.autograd.grad(want.sum(), src)[0])


def test_signature_and_defaults_are_torch_scatters():
    """scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum"): the order and defaults."""
    src = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    index = torch.tensor([2, 0, 2])
    assert scatter(src, index).tolist() == [[2.0, 0.0, 4.0], [5.0, 0.0, 10.0]]  # dim=-1, dim_size = max + 1
    assert scatter(src, index, -1, None, 4, "max").tolist() == [[2.0, 0.0, 3.0, 0.0], [5.0, 0.0, 6.0, 0.0]]
    assert scatter(src, torch.tensor([1, 1]), 0).tolist() == [[0.0] * 3, [5.0, 7.0, 9.0]]
    assert segment_csr(src, torch.tensor([[0, 1, 3]]), None, "min").tolist() == [[1.0, 2.0], [4.0, 5.0]]
    assert segment_coo(src, torch.tensor([[0, 0, 1]]), None, 3, "mean").tolist() == [[1.5, 3.0, 0.0], [4.5, 6.0, 0.0]]
    assert segment is segment_csr  # the old name, one meaning
    assert scatter(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 0).shape == (0, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_csr_matches_reference(backend, device, dtype, reduce):
    src = torch.randn(10, 2, 2, dtype=dtype, device=device, requires_grad=True)
    indptr = torch.tensor([1, 3, 3, 8, 9], device=device)  # starts after 0 and ends before the last row
    out = segment_csr(src, indptr, reduce=reduce, backend=backend)
    want = segment_ref(src, indptr, reduce)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, src, g)[0], torch.autograd.grad(want, src, g)[0])


@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_csr_batched_and_broadcast_indptr(backend, device, reduce):
    """A batched indptr reduces along dim indptr.dim() - 1; a leading size of 1 broadcasts."""
    src = torch.randn(3, 7, 2, dtype=torch.float64, device=device)
    indptr = torch.tensor([[0, 2, 2, 7], [1, 1, 4, 6], [0, 7, 7, 7]], device=device)
    out = segment_csr(src, indptr, reduce=reduce, backend=backend)
    assert out.shape == (3, 3, 2)
    for b in range(3):
        torch.testing.assert_close(out[b], segment_ref(src[b], indptr[b], reduce))
    shared = segment_csr(src, indptr[1:2], reduce=reduce, backend=backend)
    for b in range(3):
        torch.testing.assert_close(shared[b], segment_ref(src[b], indptr[1], reduce))


@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_coo_matches_scatter(backend, device, reduce):
    src = torch.randn(2, 8, 3, dtype=torch.float64, device=device)
    index = torch.tensor([[0, 0, 1, 3, 3, 3, 4, 4], [1, 1, 1, 2, 2, 4, 4, 5]], device=device)
    out = segment_coo(src, index, reduce=reduce, backend=backend)
    torch.testing.assert_close(out, scatter_ref(src, index, 1, 6, reduce))
    unsorted = index[:, torch.tensor([3, 0, 7, 1, 5, 2, 6, 4], device=device)]  # torch_scatter needs sorted
    torch.testing.assert_close(segment_coo(src, unsorted, None, 6, reduce, backend=backend),
                               scatter_ref(src, unsorted, 1, 6, reduce))


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_scatter_segment_gradcheck(reduce):
    src = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([2, 0, 2, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda s: scatter(s, index, 0, None, 4, reduce), (src,))
    assert torch.autograd.gradcheck(lambda s: segment_csr(s, torch.tensor([0, 2, 2, 6]), None, reduce), (src,))
    assert torch.autograd.gradcheck(lambda s: segment_coo(s, torch.tensor([0, 0, 1, 1, 1, 3]), None, 5, reduce), (src,))
    out = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)  # out= is differentiable too
    assert torch.autograd.gradcheck(lambda s, o: scatter(s, index, 0, o.clone(), None, reduce), (src, out))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=3), data=st.data(),
       reduce=st.sampled_from(REDUCES), seed=st.integers(0, 99))
def test_scatter_property(shape, data, reduce, seed):
    """Random shapes, dims and index layouts (1-D along dim, or full) against scatter_reduce."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(shape, generator=g, dtype=torch.float64)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    size = data.draw(st.integers(1, 5))
    full = data.draw(st.booleans())
    index = torch.randint(0, size, shape if full else [shape[dim]], generator=g)
    torch.testing.assert_close(scatter(src, index, dim, None, size, reduce), scatter_ref(src, index, dim, size, reduce))


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_nan_propagates_like_torch(backend, device, reduce):
    nan = float("nan")
    src = torch.tensor([[1.0, nan, 3.0, 2.0, nan], [4.0, 5.0, -1.0, nan, 0.0]], device=device)
    index = torch.tensor([0, 0, 1, 1, 2], device=device)
    out, arg = (scatter_max if reduce == "max" else scatter_min)(src, index, 1, None, 4, backend=backend)
    torch.testing.assert_close(out, scatter_ref(src, index, 1, 4, reduce), equal_nan=True)
    assert arg[0].tolist() == ([1, 2, 4, 5] if reduce == "max" else [1, 3, 4, 5])  # a NaN's arg: its first NaN
    assert arg[1].tolist() == ([1, 3, 4, 5] if reduce == "max" else [0, 3, 4, 5])
    torch.testing.assert_close(segment_csr(src, torch.tensor([[0, 2, 4, 5]], device=device), None, reduce,
                                           backend=backend), scatter_ref(src, index, 1, 3, reduce), equal_nan=True)


def test_half_mean_of_70000_entries():
    """fp16 scatter/segment mean: counts and sums in float32 (a count >= 65,520 is inf in fp16)."""
    n = 70_000
    src = torch.ones(n, 2, dtype=torch.float16)
    src[:, 1] = -1
    assert scatter(src, torch.zeros(n, dtype=torch.long), 0, None, 1, "mean").tolist() == [[1.0, -1.0]]
    assert segment_csr(src, torch.tensor([0, n]), None, "mean").tolist() == [[1.0, -1.0]]
    both = torch.cat([src[:, :1], -src[:, :1]])  # running sum 70,000 then back to 0
    assert scatter(both, torch.zeros(2 * n, dtype=torch.long), 0, None, 1, "sum").item() == 0.0


def test_scatter_deterministic_bitwise():
    src = torch.randn(50000, 16)
    index = torch.randint(0, 100, (50000,))
    assert torch.equal(scatter(src, index, 0, None, 100), scatter(src, index, 0, None, 100))


if importlib.util.find_spec("torch_scatter"):  # compared only where torch_scatter is installed (it is optional)
    @pytest.mark.parametrize("reduce", REDUCES)
    def test_against_torch_scatter(reduce):
        import torch_scatter

        src = torch.randn(30, 4)
        index = torch.randint(0, 8, (30,))
        want = torch_scatter.scatter(src, index, 0, None, 9, reduce)
        torch.testing.assert_close(scatter(src, index, 0, None, 9, reduce), want)
        indptr = torch.tensor([0, 4, 4, 20, 30])
        torch.testing.assert_close(segment_csr(src, indptr, None, reduce),
                                   torch_scatter.segment_csr(src, indptr, None, reduce))
