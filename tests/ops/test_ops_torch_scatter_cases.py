"""torch_scatter's own test cases, run against gseq.ops (torch_scatter itself is not installed).

The tables below are those of rusty1s/pytorch_scatter's ``test/test_scatter.py`` and
``test/test_segment.py`` (commit 648dda3), crossed as there with the reductions, the dtypes (the
floating ones: gseq refuses integer ``src``) and the backend/device grid; the expected values are
also checked against a plain torch reference (``torch.scatter_reduce``, a loop for the args), so the
tables vouch for nothing by themselves. Also from that suite: ``out=``, non-contiguous inputs,
``gradcheck``, zero-element tensors with an empty ``index``/``indptr`` and index broadcasting.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import gseq.ops as ops

REDUCTIONS = ["sum", "add", "mean", "min", "max"]
DTYPES = [torch.half, torch.bfloat16, torch.float, torch.double]
#: Triton (slow under the interpreter) runs the tables in two dtypes (bfloat16 and float64 kernels are
#: covered by test_ops_spmm.py) and the gradchecks on a 1-D and a 2-D (batched) case
TRITON_DTYPES = [torch.half, torch.float]
TRITON_GRAD_CASES = (0, 2)
TRITON_GRAD_REDUCTIONS = ["sum", "mean", "min", "max"]  # "add" is "sum"


def dtypes_for(backend: str) -> list:
    return TRITON_DTYPES if backend == "triton" else DTYPES
_HOW = {"sum": "sum", "add": "sum", "mean": "mean", "min": "amin", "max": "amax"}

SCATTER_CASES = [
    dict(src=[1, 3, 2, 4, 5, 6], index=[0, 1, 0, 1, 1, 3], dim=-1,
         sum=[3, 12, 0, 6], mean=[1.5, 4, 0, 6], min=[1, 3, 0, 6], arg_min=[0, 1, 6, 5],
         max=[2, 5, 0, 6], arg_max=[2, 4, 6, 5]),
    dict(src=[[1, 2], [5, 6], [3, 4], [7, 8], [9, 10], [11, 12]], index=[0, 1, 0, 1, 1, 3], dim=0,
         sum=[[4, 6], [21, 24], [0, 0], [11, 12]], mean=[[2, 3], [7, 8], [0, 0], [11, 12]],
         min=[[1, 2], [5, 6], [0, 0], [11, 12]], arg_min=[[0, 0], [1, 1], [6, 6], [5, 5]],
         max=[[3, 4], [9, 10], [0, 0], [11, 12]], arg_max=[[2, 2], [4, 4], [6, 6], [5, 5]]),
    dict(src=[[1, 5, 3, 7, 9, 11], [2, 4, 8, 6, 10, 12]], index=[[0, 1, 0, 1, 1, 3], [0, 0, 1, 0, 1, 2]], dim=1,
         sum=[[4, 21, 0, 11], [12, 18, 12, 0]], mean=[[2, 7, 0, 11], [4, 9, 12, 0]],
         min=[[1, 5, 0, 11], [2, 8, 12, 0]], arg_min=[[0, 1, 6, 5], [0, 2, 5, 6]],
         max=[[3, 9, 0, 11], [6, 10, 12, 0]], arg_max=[[2, 4, 6, 5], [3, 4, 5, 6]]),
    dict(src=[[[1, 2], [5, 6], [3, 4]], [[10, 11], [7, 9], [12, 13]]], index=[[0, 1, 0], [2, 0, 2]], dim=1,
         sum=[[[4, 6], [5, 6], [0, 0]], [[7, 9], [0, 0], [22, 24]]],
         mean=[[[2, 3], [5, 6], [0, 0]], [[7, 9], [0, 0], [11, 12]]],
         min=[[[1, 2], [5, 6], [0, 0]], [[7, 9], [0, 0], [10, 11]]],
         arg_min=[[[0, 0], [1, 1], [3, 3]], [[1, 1], [3, 3], [0, 0]]],
         max=[[[3, 4], [5, 6], [0, 0]], [[7, 9], [0, 0], [12, 13]]],
         arg_max=[[[2, 2], [1, 1], [3, 3]], [[1, 1], [3, 3], [2, 2]]]),
    dict(src=[[1, 3], [2, 4]], index=[[0, 0], [0, 0]], dim=1,
         sum=[[4], [6]], mean=[[2], [3]], min=[[1], [2]], arg_min=[[0], [0]], max=[[3], [4]], arg_max=[[1], [1]]),
    dict(src=[[[1, 1], [3, 3]], [[2, 2], [4, 4]]], index=[[0, 0], [0, 0]], dim=1,
         sum=[[[4, 4]], [[6, 6]]], mean=[[[2, 2]], [[3, 3]]], min=[[[1, 1]], [[2, 2]]],
         arg_min=[[[0, 0]], [[0, 0]]], max=[[[3, 3]], [[4, 4]]], arg_max=[[[1, 1]], [[1, 1]]]),
]

SEGMENT_CASES = [
    dict(src=[1, 2, 3, 4, 5, 6], index=[0, 0, 1, 1, 1, 3], indptr=[0, 2, 5, 5, 6],
         sum=[3, 12, 0, 6], mean=[1.5, 4, 0, 6], min=[1, 3, 0, 6], arg_min=[0, 2, 6, 5],
         max=[2, 5, 0, 6], arg_max=[1, 4, 6, 5]),
    dict(src=[[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]], index=[0, 0, 1, 1, 1, 3], indptr=[0, 2, 5, 5, 6],
         sum=[[4, 6], [21, 24], [0, 0], [11, 12]], mean=[[2, 3], [7, 8], [0, 0], [11, 12]],
         min=[[1, 2], [5, 6], [0, 0], [11, 12]], arg_min=[[0, 0], [2, 2], [6, 6], [5, 5]],
         max=[[3, 4], [9, 10], [0, 0], [11, 12]], arg_max=[[1, 1], [4, 4], [6, 6], [5, 5]]),
    dict(src=[[1, 3, 5, 7, 9, 11], [2, 4, 6, 8, 10, 12]], index=[[0, 0, 1, 1, 1, 3], [0, 0, 0, 1, 1, 2]],
         indptr=[[0, 2, 5, 5, 6], [0, 3, 5, 6, 6]],
         sum=[[4, 21, 0, 11], [12, 18, 12, 0]], mean=[[2, 7, 0, 11], [4, 9, 12, 0]],
         min=[[1, 5, 0, 11], [2, 8, 12, 0]], arg_min=[[0, 2, 6, 5], [0, 3, 5, 6]],
         max=[[3, 9, 0, 11], [6, 10, 12, 0]], arg_max=[[1, 4, 6, 5], [2, 4, 5, 6]]),
    dict(src=[[[1, 2], [3, 4], [5, 6]], [[7, 9], [10, 11], [12, 13]]], index=[[0, 0, 1], [0, 2, 2]],
         indptr=[[0, 2, 3, 3], [0, 1, 1, 3]],
         sum=[[[4, 6], [5, 6], [0, 0]], [[7, 9], [0, 0], [22, 24]]],
         mean=[[[2, 3], [5, 6], [0, 0]], [[7, 9], [0, 0], [11, 12]]],
         min=[[[1, 2], [5, 6], [0, 0]], [[7, 9], [0, 0], [10, 11]]],
         arg_min=[[[0, 0], [2, 2], [3, 3]], [[0, 0], [3, 3], [1, 1]]],
         max=[[[3, 4], [5, 6], [0, 0]], [[7, 9], [0, 0], [12, 13]]],
         arg_max=[[[1, 1], [2, 2], [3, 3]], [[0, 0], [3, 3], [2, 2]]]),
    dict(src=[[1, 3], [2, 4]], index=[[0, 0], [0, 0]], indptr=[[0, 2], [0, 2]],
         sum=[[4], [6]], mean=[[2], [3]], min=[[1], [2]], arg_min=[[0], [0]], max=[[3], [4]], arg_max=[[1], [1]]),
    dict(src=[[[1, 1], [3, 3]], [[2, 2], [4, 4]]], index=[[0, 0], [0, 0]], indptr=[[0, 2], [0, 2]],
         sum=[[[4, 4]], [[6, 6]]], mean=[[[2, 2]], [[3, 3]]], min=[[[1, 1]], [[2, 2]]],
         arg_min=[[[0, 0]], [[0, 0]]], max=[[[3, 3]], [[4, 4]]], arg_max=[[[1, 1]], [[1, 1]]]),
]


def tensor(x, dtype, device):
    return torch.tensor(x, device=device).to(dtype)


def expected(case: dict, reduce: str) -> list:
    return case["sum" if reduce == "add" else reduce]


def _broadcast(index: torch.Tensor, src: torch.Tensor, dim: int) -> torch.Tensor:
    """torch_scatter's utils.broadcast, written out."""
    dim = dim % src.dim()
    if index.dim() == 1:
        index = index.view([1] * dim + [-1])
    return index.view(list(index.shape) + [1] * (src.dim() - index.dim())).expand_as(src)


def scatter_reference(src, index, dim, dim_size, reduce):
    """``torch.scatter_reduce`` in float64 with include_self=False on zeros: untouched positions stay 0."""
    dim = dim % src.dim()
    shape = list(src.shape)
    shape[dim] = dim_size
    out = torch.zeros(shape, dtype=torch.float64, device=src.device)
    return out.scatter_reduce(dim, _broadcast(index, src, dim), src.double(), _HOW[reduce], include_self=False)


def arg_reference(src, index, dim, dim_size, reduce):
    """The first position along ``dim`` attaining the extreme, ``src.size(dim)`` for an empty output."""
    dim = dim % src.dim()
    full = _broadcast(index, src, dim).cpu()
    values = src.double().cpu()
    shape = list(src.shape)
    shape[dim] = dim_size
    best = torch.full(shape, float("nan"), dtype=torch.float64)
    arg = torch.full(shape, src.size(dim), dtype=torch.long)
    for pos in itertools.product(*map(range, src.shape)):
        target = list(pos)
        target[dim] = int(full[pos])
        target = tuple(target)
        v = float(values[pos])
        if arg[target] == src.size(dim) or (v > best[target] if reduce == "max" else v < best[target]):
            best[target], arg[target] = v, pos[dim]
    return arg


def segment_reference(src, indptr, reduce):
    """A loop over the ranges of a (batched) indptr along dim ``indptr.dim() - 1``."""
    dim = indptr.dim() - 1
    indptr = indptr.expand(list(src.shape[:dim]) + [indptr.size(-1)]).cpu()
    shape = list(src.shape)
    shape[dim] = max(indptr.size(-1) - 1, 0)
    out = torch.zeros(shape, dtype=torch.float64)
    s64 = src.double().cpu()
    for lead in itertools.product(*map(range, src.shape[:dim])):
        for i in range(shape[dim]):
            lo, hi = int(indptr[lead + (i,)]), int(indptr[lead + (i + 1,)])
            if hi > lo:
                part = s64[lead][lo:hi]
                out[lead + (i,)] = {"sum": part.sum(0), "add": part.sum(0), "mean": part.mean(0),
                                    "min": part.amin(0), "max": part.amax(0)}[reduce]
    return out.to(src.device)


@pytest.mark.parametrize("case", range(len(SCATTER_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_forward(backend, device, case, reduce):
    test = SCATTER_CASES[case]
    for dtype in dtypes_for(backend):
        src, index = tensor(test["src"], dtype, device), tensor(test["index"], torch.long, device)
        dim, want = test["dim"], tensor(expected(test, reduce), dtype, device)
        size = want.size(dim)
        assert torch.equal(want.double(), scatter_reference(src, index, dim, size, reduce))  # the table is right
        fn = getattr(ops, "scatter_" + reduce)
        out = fn(src, index, dim, backend=backend)
        if reduce in ("min", "max"):
            out, arg = out
            assert torch.equal(arg, tensor(test["arg_" + reduce], torch.long, device))
            assert torch.equal(arg.cpu(), arg_reference(src, index, dim, size, reduce))
        assert out.dtype == dtype and torch.equal(out, want)
        assert torch.equal(ops.scatter(src, index, dim, reduce=reduce, backend=backend), want)


def _scatter_gradcheck(backend, device, case, reduce):
    test = SCATTER_CASES[case]
    src = tensor(test["src"], torch.double, device).requires_grad_()
    index = tensor(test["index"], torch.long, device)
    assert torch.autograd.gradcheck(lambda s: ops.scatter(s, index, test["dim"], None, None, reduce, backend=backend),
                                    (src,), fast_mode=backend == "triton")


@pytest.mark.parametrize("case", range(len(SCATTER_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_backward(device, case, reduce):
    _scatter_gradcheck("torch", device, case, reduce)


@pytest.mark.parametrize("case", TRITON_GRAD_CASES)
@pytest.mark.parametrize("reduce", TRITON_GRAD_REDUCTIONS)
def test_scatter_backward_triton(triton_device, case, reduce):
    _scatter_gradcheck("triton", triton_device, case, reduce)


@pytest.mark.parametrize("case", range(len(SCATTER_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_out(backend, device, case, reduce):
    """out=: sum adds into it, mean divides (out + sum) by the counts, max/min compare with it."""
    test = SCATTER_CASES[case]
    for dtype in dtypes_for(backend):
        src, index = tensor(test["src"], dtype, device), tensor(test["index"], torch.long, device)
        dim, want = test["dim"], tensor(expected(test, reduce), dtype, device)
        out = torch.full_like(want, -2)
        got = getattr(ops, "scatter_" + reduce)(src, index, dim, out, backend=backend)
        got = got[0] if isinstance(got, tuple) else got
        assert got is out
        if reduce in ("sum", "add"):
            want = want - 2
        elif reduce == "mean":  # torch_scatter does not test this one: (out + sum) / max(count, 1)
            ones = torch.ones_like(src, dtype=torch.float64)
            count = scatter_reference(ones, index, dim, want.size(dim), "sum").clamp(min=1)
            want = ((scatter_reference(src, index, dim, want.size(dim), "sum") - 2) / count).to(dtype)
        elif reduce == "min":
            want = want.fill_(-2)
        else:
            want[want == 0] = -2
        assert torch.equal(out, want)


@pytest.mark.parametrize("reduce", ["min", "max"])
def test_scatter_arg_with_out(backend, device, reduce):
    """With out=, arg is src.size(dim) where out's value was not beaten (torch_scatter's strict test)."""
    src = torch.tensor([1.0, 5.0, 2.0, -4.0], device=device)
    index = torch.tensor([0, 0, 1, 2], device=device)
    out = torch.tensor([3.0, 3.0, 3.0, 3.0], device=device)
    got, arg = getattr(ops, "scatter_" + reduce)(src, index, 0, out, backend=backend)
    if reduce == "max":
        assert got.tolist() == [5.0, 3.0, 3.0, 3.0] and arg.tolist() == [1, 4, 4, 4]
    else:
        assert got.tolist() == [1.0, 2.0, -4.0, 3.0] and arg.tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("case", range(len(SCATTER_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_non_contiguous(backend, device, case, reduce):
    test = SCATTER_CASES[case]
    src, index = tensor(test["src"], torch.float, device), tensor(test["index"], torch.long, device)
    if src.dim() > 1:
        src = src.transpose(0, 1).contiguous().transpose(0, 1)
    if index.dim() > 1:
        index = index.transpose(0, 1).contiguous().transpose(0, 1)
    out = getattr(ops, "scatter_" + reduce)(src, index, test["dim"], backend=backend)
    if isinstance(out, tuple):
        out, arg = out
        assert torch.equal(arg, tensor(test["arg_" + reduce], torch.long, device))
    assert torch.equal(out, tensor(expected(test, reduce), torch.float, device))


@pytest.mark.parametrize("case", range(len(SEGMENT_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_segment_forward(backend, device, case, reduce):
    test = SEGMENT_CASES[case]
    for dtype in dtypes_for(backend):
        src = tensor(test["src"], dtype, device)
        index, indptr = tensor(test["index"], torch.long, device), tensor(test["indptr"], torch.long, device)
        want = tensor(expected(test, reduce), dtype, device)
        assert torch.equal(want.double(), segment_reference(src, indptr, reduce))  # the table is right
        out = ops.segment_csr(src, indptr, reduce=reduce, backend=backend)
        assert out.dtype == dtype and torch.equal(out, want)
        out = ops.segment_coo(src, index, reduce=reduce, backend=backend)
        assert out.dtype == dtype and torch.equal(out, want)


def _segment_gradcheck(backend, device, case, reduce):
    test = SEGMENT_CASES[case]
    src = tensor(test["src"], torch.double, device).requires_grad_()
    index, indptr = tensor(test["index"], torch.long, device), tensor(test["indptr"], torch.long, device)
    fast = backend == "triton"
    assert torch.autograd.gradcheck(lambda s: ops.segment_csr(s, indptr, None, reduce, backend=backend), (src,),
                                    fast_mode=fast)
    assert torch.autograd.gradcheck(lambda s: ops.segment_coo(s, index, None, None, reduce, backend=backend), (src,),
                                    fast_mode=fast)


@pytest.mark.parametrize("case", range(len(SEGMENT_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_segment_backward(device, case, reduce):
    _segment_gradcheck("torch", device, case, reduce)


@pytest.mark.parametrize("case", TRITON_GRAD_CASES)
@pytest.mark.parametrize("reduce", TRITON_GRAD_REDUCTIONS)
def test_segment_backward_triton(triton_device, case, reduce):
    _segment_gradcheck("triton", triton_device, case, reduce)


@pytest.mark.parametrize("case", range(len(SEGMENT_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_segment_out(backend, device, case, reduce):
    """segment_csr overwrites out; segment_coo accumulates into it like scatter."""
    test = SEGMENT_CASES[case]
    for dtype in dtypes_for(backend):
        src = tensor(test["src"], dtype, device)
        index, indptr = tensor(test["index"], torch.long, device), tensor(test["indptr"], torch.long, device)
        want = tensor(expected(test, reduce), dtype, device)
        out = torch.full_like(want, -2)
        assert ops.segment_csr(src, indptr, out, reduce, backend=backend) is out
        assert torch.equal(out, want)
        out.fill_(-2)
        assert ops.segment_coo(src, index, out, reduce=reduce, backend=backend) is out
        if reduce in ("sum", "add"):
            want = want - 2
        elif reduce == "mean":
            dim = index.dim() - 1
            count = scatter_reference(torch.ones_like(src, dtype=torch.float64), index, dim, want.size(dim), "sum")
            want = ((scatter_reference(src, index, dim, want.size(dim), "sum") - 2) / count.clamp(min=1)).to(dtype)
        elif reduce == "min":
            want = want.fill_(-2)
        else:
            want[want == 0] = -2
        assert torch.equal(out, want)


@pytest.mark.parametrize("case", range(len(SEGMENT_CASES)))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_segment_non_contiguous(backend, device, case, reduce):
    test = SEGMENT_CASES[case]
    src = tensor(test["src"], torch.float, device)
    index, indptr = tensor(test["index"], torch.long, device), tensor(test["indptr"], torch.long, device)
    if src.dim() > 1:
        src = src.transpose(0, 1).contiguous().transpose(0, 1)
    if index.dim() > 1:
        index = index.transpose(0, 1).contiguous().transpose(0, 1)
    if indptr.dim() > 1:
        indptr = indptr.transpose(0, 1).contiguous().transpose(0, 1)
    want = tensor(expected(test, reduce), torch.float, device)
    assert torch.equal(ops.segment_csr(src, indptr, reduce=reduce, backend=backend), want)
    assert torch.equal(ops.segment_coo(src, index, reduce=reduce, backend=backend), want)


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_zero_elements(backend, device, reduce):
    """torch_scatter's test_zero_tensors: an empty index and an empty indptr give empty outputs, with gradients."""
    for dtype in (torch.float, torch.double):
        x = torch.randn(0, 0, 0, 16, dtype=dtype, device=device, requires_grad=True)
        index = torch.tensor([], dtype=torch.long, device=device)
        indptr = torch.tensor([], dtype=torch.long, device=device)
        for out in (ops.scatter(x, index, dim=0, dim_size=0, reduce=reduce, backend=backend),
                    ops.segment_coo(x, index, dim_size=0, reduce=reduce, backend=backend),
                    ops.segment_csr(x, indptr, reduce=reduce, backend=backend)):
            out.backward(torch.randn_like(out))
            assert out.size() == (0, 0, 0, 16)
    # an empty indptr over a non-empty src: no segments
    src = torch.randn(5, 3, device=device, requires_grad=True)
    out = ops.segment_csr(src, indptr, reduce=reduce, backend=backend)
    assert out.shape == (0, 3)
    out.sum().backward()
    assert torch.equal(src.grad, torch.zeros_like(src))


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_broadcasting(backend, device, reduce):
    """torch_scatter's test_broadcasting (smaller under the interpreter), the values checked against the reference."""
    b, c, h, w = (4, 3, 8, 8) if backend == "torch" else (2, 3, 4, 2)
    for index in (torch.randint(0, h, (h,)), torch.randint(0, h, (b, 1, h, w))):
        src = torch.randn((b, c, h, w), device=device)
        index = index.to(device)
        out = ops.scatter(src, index, dim=2, dim_size=h, reduce=reduce, backend=backend)
        assert out.size() == (b, c, h, w)
        torch.testing.assert_close(out, scatter_reference(src, index, 2, h, reduce).float())


def test_integer_src_is_refused():
    """torch_scatter also reduces integer tensors; gseq refuses them with a clear error instead."""
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.scatter(torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1]))
