"""Every bad input raises a clear ValueError/TypeError at the public boundary, before any kernel."""

from __future__ import annotations

import pytest
import torch

from gseq.ops import CSR, scatter, scatter_max, segment_coo, segment_csr, spmm

L = torch.long


def _ok_csr():
    return CSR(torch.tensor([0, 2, 3]), torch.tensor([0, 2, 1]), torch.ones(3), (2, 3))


CSR_CASES = [
    # (kwargs, error, message fragment)
    (dict(indptr=torch.tensor([0, 2, 1, 3]), indices=torch.tensor([0, 1, 2])), ValueError, "non-decreasing"),
    (dict(indptr=torch.tensor([0, 1, 2]), indices=torch.tensor([0, 1, 2])), ValueError, "indptr\\[-1\\]"),
    (dict(indptr=torch.tensor([1, 2, 3]), indices=torch.tensor([0, 1, 2])), ValueError, "indptr\\[0\\]"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, -1, 2])), ValueError, "non-negative"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, 1, 3]), shape=(2, 3)), ValueError, "< N = 3"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0.0, 1.0, 2.0])), TypeError, "integer dtype"),
    (dict(indptr=torch.tensor([0.0, 1.0, 3.0]), indices=torch.tensor([0, 1, 2])), TypeError, "integer dtype"),
    (dict(indptr=[0, 1, 3], indices=torch.tensor([0, 1, 2])), TypeError, "torch.Tensor"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([[0, 1, 2]])), ValueError, "one-dimensional"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, 1, 2]), shape=(3, 3)), ValueError, "M \\+ 1"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, 1, 2]), shape=(2, -1)), ValueError, "non-negative"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, 1, 2]), shape=(2.0, 3)), TypeError, "pair of ints"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, 1, 2]), values=torch.ones(2)), ValueError, "nnz"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, 1, 2]), values=torch.ones(3, dtype=L)),
     TypeError, "floating"),
    (dict(indptr=torch.tensor([0, 1, 3]), indices=torch.tensor([0, 1, 2]), values=[1.0, 2.0, 3.0]),
     TypeError, "floating"),
    (dict(indptr=torch.tensor([0, 1, 3], device="meta"), indices=torch.tensor([0, 1, 2])), ValueError, "device"),
]


@pytest.mark.parametrize("kwargs,error,match", CSR_CASES)
def test_csr_constructor_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        CSR(**kwargs)


@pytest.mark.parametrize("edge_index,weight,num_nodes,error,match", [
    (torch.tensor([[0, 1], [1, 5]]), None, 3, ValueError, "< num_nodes"),
    (torch.tensor([[0, -1], [1, 2]]), None, 3, ValueError, "non-negative"),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), None, 3, TypeError, "integer dtype"),
    (torch.tensor([0, 1, 2]), None, 3, ValueError, "\\[2, E\\]"),
    (torch.tensor([[0, 1], [1, 2]]), torch.ones(3), 3, ValueError, "nnz"),
    (torch.tensor([[0, 1], [1, 2]]), torch.ones(2, dtype=L), 3, TypeError, "floating"),
    (torch.tensor([[0, 1], [1, 2]]), None, -1, TypeError, "num_nodes"),
    ("edges", None, 3, TypeError, "torch.Tensor"),
])
def test_from_edge_index_rejects(edge_index, weight, num_nodes, error, match):
    with pytest.raises(error, match=match):
        CSR.from_edge_index(edge_index, weight, num_nodes)


SPMM_CASES = [
    (lambda: (_ok_csr(), torch.ones(4, 2)), {}, ValueError, "3 columns"),
    (lambda: (_ok_csr(), torch.ones(3)), {}, ValueError, "two-dimensional"),
    (lambda: (_ok_csr(), torch.ones(3, 2, dtype=L)), {}, TypeError, "float32 or float64"),
    (lambda: (_ok_csr(), torch.ones(3, 2, dtype=torch.float64)), {}, TypeError, "dtype"),
    (lambda: (_ok_csr(), torch.ones(3, 2)), {"reduce": "prod"}, ValueError, "reduce must be one of"),
    (lambda: (_ok_csr(), torch.ones(3, 2, device="meta")), {}, ValueError, "on meta"),
    (lambda: (_ok_csr(), torch.ones(3, 2)), {"backend": "cuda"}, ValueError, "backend must be one of"),
    (lambda: ("csr", torch.ones(3, 2)), {}, TypeError, "gseq.ops.CSR"),
    (lambda: (_ok_csr(), [[1.0]] * 3), {}, TypeError, "torch.Tensor"),
]


@pytest.mark.parametrize("make,kwargs,error,match", SPMM_CASES)
def test_spmm_rejects(backend, device, make, kwargs, error, match):
    csr, x = make()
    kwargs = {"backend": backend, **kwargs}
    with pytest.raises(error, match=match):
        spmm(csr, x, **kwargs)


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((torch.ones(3, 2), torch.tensor([0, 1, 1])), {}, ValueError, "cannot broadcast"),  # dim=-1 has size 2
    ((torch.ones(3, 2), torch.tensor([0, 1]), 0), {}, ValueError, "cannot broadcast"),
    ((torch.ones(3, 2), torch.tensor([0, -1, 1]), 0), {}, ValueError, "non-negative, found -1"),
    ((torch.ones(3, 2), torch.tensor([0, -1, 1]), 0), {"dim_size": 3}, ValueError, "non-negative, found -1"),
    ((torch.ones(3, 2), torch.tensor([0, 4, 1]), 0), {"dim_size": 3}, ValueError, "< dim_size = 3, found 4"),
    ((torch.ones(3, 2), torch.tensor([0.0, 1.0, 1.0]), 0), {}, TypeError, "integer dtype"),
    ((torch.ones(3, 2, dtype=L), torch.tensor([0, 1, 1]), 0), {}, TypeError, "float32"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1]), 0), {"reduce": "mul"}, ValueError, "reduce"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1])), {"dim": 2}, ValueError, "dim must be"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1]), 0), {"dim_size": 2.5}, TypeError, "dim_size"),
    ((torch.ones(3, 2), torch.tensor([[[0, 1, 1]]]), 0), {}, ValueError, "more dimensions"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1], device="meta"), 0), {}, ValueError, "device"),
    ((torch.ones(()), torch.tensor(0)), {}, ValueError, "at least one dimension"),
    # torch_scatter's order (src, index, dim, out, dim_size, reduce): the old positional dim_size lands in out
    ((torch.ones(3, 2), torch.tensor([0, 1, 1]), 0, 4), {}, TypeError, "pass dim_size= and reduce= by keyword"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1]), 0), {"out": torch.zeros(2, 2, dtype=torch.float64)}, TypeError,
     "dtype and device"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1]), 0), {"out": torch.zeros(2, 3)}, ValueError, "out must have shape"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1]), 0), {"out": torch.zeros(2, 2), "dim_size": 3}, ValueError,
     "dim_size = 3 but out.size"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 2]), 0), {"out": torch.zeros(2, 2)}, ValueError, "< dim_size = 2"),
])
def test_scatter_rejects(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        scatter(*args, **kwargs)
    if "reduce" not in kwargs:  # the named variants share the checks
        with pytest.raises(error, match=match):
            scatter_max(*args, **kwargs)


@pytest.mark.parametrize("indptr,error,match", [
    (torch.tensor([0, 2, 1]), ValueError, "non-decreasing"),
    (torch.tensor([[0, 1, 2], [0, 2, 1], [0, 0, 0], [0, 2, 2]]), ValueError, "non-decreasing"),
    (torch.tensor([0, 2, 5]), ValueError, "<= src.size\\(0\\) = 4, found 5"),
    (torch.tensor([-1, 2]), ValueError, "non-negative"),
    (torch.tensor([[[0, 2]]]), ValueError, "dimensions"),
    (torch.tensor([[0, 1], [0, 1], [0, 1]]), ValueError, "leading dimensions"),
    (torch.tensor([0.0, 2.0]), TypeError, "integer dtype"),
    (torch.tensor(0), ValueError, "dimensions"),
])
def test_segment_csr_rejects(indptr, error, match):
    with pytest.raises(error, match=match):
        segment_csr(torch.ones(4, 2), indptr)


def test_segment_csr_old_positional_reduce_is_refused():
    """segment(src, indptr, "max") of the old signature: reduce is now the 4th argument (torch_scatter's)."""
    with pytest.raises(TypeError, match="pass dim_size= and reduce= by keyword"):
        segment_csr(torch.ones(4, 2), torch.tensor([0, 4]), "max")
    with pytest.raises(ValueError, match="out must have shape"):
        segment_csr(torch.ones(4, 2), torch.tensor([0, 1, 4]), torch.zeros(3, 2))


@pytest.mark.parametrize("index,kwargs,error,match", [
    (torch.tensor([[[0, 0, 1, 1]]]), {}, ValueError, "dimensions"),
    (torch.tensor([0, 0, 1, 5]), {"dim_size": 3}, ValueError, "< dim_size = 3, found 5"),
    (torch.tensor([0, 0, 1]), {}, ValueError, "cannot broadcast"),
    ("index", {}, TypeError, "torch.Tensor"),
])
def test_segment_coo_rejects(index, kwargs, error, match):
    with pytest.raises(error, match=match):
        segment_coo(torch.ones(4, 2), index, **kwargs)


def test_an_absurd_num_nodes_is_refused_before_allocating():
    from gseq.ops import CSR

    with pytest.raises(ValueError, match=r"num_nodes: 1,000,000,000,000 nodes .* need about .* GiB, more than"):
        CSR.from_edge_index(torch.tensor([[0, 1], [1, 0]]), None, 10**12)
    assert CSR.from_edge_index(torch.tensor([[0, 1], [1, 0]]), None, 10**5).shape == (10**5, 10**5)
