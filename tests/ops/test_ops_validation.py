"""Every bad input raises a clear ValueError/TypeError at the public boundary, before any kernel."""

from __future__ import annotations

import pytest
import torch
from ops_reference import BACKENDS

from gseq.ops import CSR, scatter, segment, spmm

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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make,kwargs,error,match", SPMM_CASES)
def test_spmm_rejects(backend, make, kwargs, error, match, request):
    if request.node.get_closest_marker("triton"):
        from ops_reference import require_triton_runtime
        require_triton_runtime()
    csr, x = make()
    kwargs = {"backend": backend, **kwargs}
    with pytest.raises(error, match=match):
        spmm(csr, x, **kwargs)


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((torch.ones(3, 2), torch.tensor([0, 1])), {}, ValueError, "entries"),
    ((torch.ones(3, 2), torch.tensor([0, -1, 1])), {}, ValueError, "non-negative"),
    ((torch.ones(3, 2), torch.tensor([0, 4, 1])), {"dim_size": 3}, ValueError, "< dim_size"),
    ((torch.ones(3, 2), torch.tensor([0.0, 1.0, 1.0])), {}, TypeError, "integer dtype"),
    ((torch.ones(3, 2, dtype=L), torch.tensor([0, 1, 1])), {}, TypeError, "float32"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1])), {"reduce": "mul"}, ValueError, "reduce"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1])), {"dim": 2}, ValueError, "dim must be"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1])), {"dim_size": 2.5}, TypeError, "dim_size"),
    ((torch.ones(3, 2), torch.tensor([[0, 1, 1]])), {}, ValueError, "broadcast"),
    ((torch.ones(3, 2), torch.tensor([0, 1, 1], device="meta")), {}, ValueError, "device"),
])
def test_scatter_rejects(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        scatter(*args, **kwargs)


@pytest.mark.parametrize("indptr,error,match", [
    (torch.tensor([0, 2, 1]), ValueError, "non-decreasing"),
    (torch.tensor([0, 2, 5]), ValueError, "exceeds"),
    (torch.tensor([-1, 2]), ValueError, "non-negative"),
    (torch.tensor([[0, 2]]), ValueError, "one-dimensional"),
    (torch.tensor([0.0, 2.0]), TypeError, "integer dtype"),
])
def test_segment_rejects(indptr, error, match):
    with pytest.raises(error, match=match):
        segment(torch.ones(4, 2), indptr)
