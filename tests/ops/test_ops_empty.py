"""Empty inputs (no entries, no rows, no positions) through every op, against torch's and PyG's references
(PyG's ``torch_geometric.utils.scatter`` is torch_scatter's contract, computed with torch)."""

import pytest
import torch
from torch_geometric.utils import scatter as pyg_scatter

import gseq.ops as ops
from gseq.ops import CSR

EMPTY_INDEX = torch.empty(0, dtype=torch.long)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("num_nodes", [0, 3])
def test_spmm_on_a_graph_without_edges(backend, device, reduce, num_nodes):
    csr = CSR.from_edge_index(torch.empty(2, 0, dtype=torch.long, device=device), None, num_nodes)
    assert csr.shape == (num_nodes, num_nodes) and csr.nnz == 0
    x = torch.randn(num_nodes, 4, device=device, requires_grad=True)
    out = ops.spmm(csr, x, reduce, backend=backend)
    assert torch.equal(out, torch.zeros(num_nodes, 4, device=device))  # torch_scatter: empty rows give 0
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(ops.scaled_spmm(csr, x, backend=backend), out)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("dim_size", [None, 0, 3])
def test_scatter_of_nothing_matches_pyg(backend, device, reduce, dim_size):
    src = torch.randn(0, 4, device=device)
    index = EMPTY_INDEX.to(device)
    got = ops.scatter(src, index, 0, dim_size=dim_size, reduce=reduce, backend=backend)
    want = pyg_scatter(src, index, 0, dim_size=dim_size, reduce=reduce)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("indptr", [[0], [0, 0, 0]])
def test_segments_of_nothing_match_torch(backend, device, reduce, indptr):
    src = torch.randn(0, 4, device=device)
    indptr = torch.tensor(indptr, device=device)
    got = ops.segment_csr(src, indptr, reduce=reduce, backend=backend)
    want = torch.segment_reduce(src, reduce, offsets=indptr, axis=0, unsafe=True)
    want = want.nan_to_num(0.0, posinf=0.0, neginf=0.0)  # torch fills empty segments with the identity
    torch.testing.assert_close(got, want)
    coo = ops.segment_coo(src, EMPTY_INDEX.to(device), dim_size=indptr.numel() - 1, reduce=reduce, backend=backend)
    torch.testing.assert_close(coo, want)


def test_empty_csr_transposes_and_validates():
    csr = CSR(torch.zeros(1, dtype=torch.long), EMPTY_INDEX, None, (0, 5))
    t = csr.t()
    assert t.shape == (5, 0) and torch.equal(t.indptr, torch.zeros(6, dtype=torch.long)) and t.nnz == 0
    assert csr.validate() is csr


def test_int16_indices_are_refused_everywhere():
    """One index dtype rule: int64 or int32 (CSR accepted int16 before while the GCN refused it)."""
    short = torch.tensor([0, 1], dtype=torch.int16)
    with pytest.raises(TypeError, match="indices must have an integer dtype \\(int64 or int32\\)"):
        CSR(torch.tensor([0, 1, 2]), short, None, (2, 2))
    with pytest.raises(TypeError, match="edge_index must have an integer dtype \\(int64 or int32\\)"):
        CSR.from_edge_index(torch.stack([short, short]))
    with pytest.raises(TypeError, match="index must have an integer dtype \\(int64 or int32\\)"):
        ops.scatter(torch.randn(2, 3), short, 0)
    int32 = CSR(torch.tensor([0, 1, 2], dtype=torch.int32), torch.tensor([1, 0], dtype=torch.int32), None, (2, 2))
    assert int32.indices.dtype == torch.int64
