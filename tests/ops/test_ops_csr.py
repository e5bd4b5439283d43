"""gseq.ops.CSR: construction from edge_index, transpose cache, with_values, properties."""

from __future__ import annotations

import pytest
import torch
from ops_reference import power_law_csr

from gseq.ops import CSR, spmm


def dense(csr: CSR) -> torch.Tensor:
    d = torch.zeros(csr.shape, dtype=torch.float64)
    v = torch.ones(csr.nnz, dtype=torch.float64) if csr.values is None else csr.values.detach().double()
    d.index_put_((csr.row(), csr.indices), v, accumulate=True)
    return d


def test_from_edge_index_is_source_to_target():
    ei = torch.tensor([[0, 1, 1, 2, 3, 3, 0, 2], [1, 0, 2, 1, 1, 1, 3, 2]])  # duplicate 3->1, self-loop 2->2
    w = torch.arange(1.0, 9.0, dtype=torch.float64)
    csr = CSR.from_edge_index(ei, w, num_nodes=5)
    want = torch.zeros(5, 5, dtype=torch.float64)
    want.index_put_((ei[1], ei[0]), w, accumulate=True)  # row = target, column = source
    assert torch.equal(dense(csr), want)
    assert csr.shape == (5, 5) and csr.nnz == 8 and csr.num_rows == 5 and csr.num_cols == 5
    assert csr.indptr.tolist() == [0, 1, 5, 7, 8, 8]
    for i in range(5):  # columns sorted inside each row, duplicates kept
        seg = csr.indices[csr.indptr[i]:csr.indptr[i + 1]]
        assert torch.equal(seg, seg.sort().values)
    assert csr.indices[1:5].tolist() == [0, 2, 3, 3]
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(spmm(csr, x), want @ x)


def test_from_edge_index_unchecked_builds_the_same_csr():
    """check=False (edges validated by the caller, as gcn_graph does) skips the checks, not the work."""
    ei = torch.tensor([[0, 1, 1, 2, 3, 3, 0, 2], [1, 0, 2, 1, 1, 1, 3, 2]], dtype=torch.int32)
    w = torch.arange(1.0, 9.0)
    for weight, num_nodes in ((w, 5), (None, None)):
        checked = CSR.from_edge_index(ei, weight, num_nodes)
        unchecked = CSR.from_edge_index(ei, weight, num_nodes, check=False)
        assert unchecked.shape == checked.shape
        assert torch.equal(unchecked.indptr, checked.indptr) and torch.equal(unchecked.indices, checked.indices)
        assert (unchecked.values is None) == (weight is None)
        if weight is not None:
            assert torch.equal(unchecked.values, checked.values)
    with pytest.raises(ValueError, match="edge_index must be < num_nodes = 3"):
        CSR.from_edge_index(ei, num_nodes=3)


def test_from_edge_index_defaults_and_unweighted():
    ei = torch.tensor([[0, 2], [1, 2]], dtype=torch.int32)
    csr = CSR.from_edge_index(ei)
    assert csr.shape == (3, 3) and csr.values is None and csr.dtype is None
    assert CSR.from_edge_index(torch.zeros(2, 0, dtype=torch.long)).shape == (0, 0)


def test_edge_weight_gradient_flows_in_edge_order():
    ei = torch.tensor([[2, 0, 1], [0, 1, 0]])
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = torch.tensor([[10.0], [20.0], [30.0]])
    spmm(CSR.from_edge_index(ei, w, 3), x).sum().backward()
    assert w.grad.tolist() == [30.0, 10.0, 20.0]  # d/dw_e = x[source_e]


def test_transpose_values_and_cache():
    csr = power_law_csr(9, 7, 40, seed=0)
    t = csr.t()
    assert t.shape == (7, 9)
    assert torch.equal(dense(t), dense(csr).t())
    assert csr.t().indptr is t.indptr  # the structure is built once
    assert csr.structure.transpose() is csr.structure.transpose()
    tt = t.t()
    assert torch.equal(tt.indptr, csr.indptr) and torch.equal(tt.indices, csr.indices)
    assert torch.equal(tt.values, csr.values)
    assert tt.structure is csr.structure  # the transpose of the transpose: the same pattern, no second sort
    assert csr.t().row() is t.row()  # successive transposes share one structure and its caches


def test_transpose_values_follow_values_differentiably():
    csr = power_law_csr(5, 5, 12, seed=1)
    v = csr.values.detach().requires_grad_()
    csr.with_values(v).t().values.sum().backward()
    assert torch.equal(v.grad, torch.ones_like(v))


def test_with_values_shares_structure_cache():
    csr = power_law_csr(6, 6, 20, seed=2)
    r = csr.row()
    other = csr.with_values(torch.ones(20, dtype=torch.float64))
    assert other.row() is r and other.indptr is csr.indptr
    assert csr.with_values(None).values is None


def test_symmetric_pattern_shares_memory():
    ei = torch.tensor([[0, 1, 1, 2, 2, 2], [1, 0, 2, 1, 2, 2]])
    csr = CSR.from_edge_index(ei)
    assert csr.is_symmetric_pattern()
    assert csr.t().indices is csr.indices
    assert not power_law_csr(6, 6, 20, seed=2).is_symmetric_pattern()


def test_properties_repr_to():
    csr = power_law_csr(6, 4, 10, seed=3, dtype=torch.float32)
    assert csr.dtype == torch.float32 and csr.device == torch.device("cpu")
    assert torch.equal(csr.row_counts(), csr.indptr.diff())
    assert "nnz=10" in repr(csr) and "(6, 4)" in repr(csr)
    assert csr.to("cpu") is csr
    shape_default = CSR(csr.indptr, csr.indices)
    assert shape_default.shape == (6, int(csr.indices.max()) + 1)


def test_int32_inputs_are_converted():
    csr = CSR(torch.tensor([0, 1, 2], dtype=torch.int32), torch.tensor([1, 0], dtype=torch.int32), shape=(2, 2))
    assert csr.indptr.dtype == torch.long and csr.indices.dtype == torch.long


def test_validate_rechecks():
    csr = CSR(torch.tensor([0, 1]), torch.tensor([5]), None, (1, 2), check=False)
    with pytest.raises(ValueError, match="indices must be < N"):
        csr.validate()


def test_strided_arrays_are_stored_contiguous(backend, device):
    """CSR(indptr, E[:, 1], W[:, 0]): strided views are copied once, so both backends sum them right."""
    edges = torch.tensor([[9, 0], [9, 2], [9, 1], [9, 2], [9, 0]], device=device)
    w = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [5.0, 50.0]], device=device,
                     dtype=torch.float64, requires_grad=True)
    indices, values = edges[:, 1], w[:, 0]
    assert not indices.is_contiguous() and not values.is_contiguous()
    csr = CSR(torch.tensor([0, 2, 5], device=device), indices, values, (2, 3))
    assert csr.indptr.is_contiguous() and csr.indices.is_contiguous() and csr.values.is_contiguous()
    x = torch.randn(3, 4, dtype=torch.float64, device=device)
    want = torch.zeros(2, 3, dtype=torch.float64, device=device)
    want.index_put_((torch.tensor([0, 0, 1, 1, 1], device=device), indices), values.detach(), accumulate=True)
    out = spmm(csr, x, backend=backend)
    torch.testing.assert_close(out, want @ x)
    out.sum().backward()  # the gradient reaches the strided parent
    torch.testing.assert_close(w.grad[:, 0], x[indices].sum(1))
    assert not bool(w.grad[:, 1].any())


def test_edges_already_in_csr_order_build_without_a_sort_and_equal_the_sorted_build(monkeypatch):
    g = torch.Generator().manual_seed(3)
    edge_index = torch.randint(0, 30, (2, 200), generator=g)
    weight = torch.rand(200, generator=g, dtype=torch.float64)
    want = CSR.from_edge_index(edge_index, weight, 30)
    order = torch.sort(edge_index[1] * 30 + edge_index[0], stable=True)[1]  # by target, then source
    monkeypatch.setattr(torch, "sort", lambda *a, **k: pytest.fail("sorted edges were sorted again"))
    got = CSR.from_edge_index(edge_index[:, order], weight[order], 30)
    assert torch.equal(got.indptr, want.indptr) and torch.equal(got.indices, want.indices)
    assert torch.equal(got.values, want.values)
