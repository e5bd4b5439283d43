"""gseq.ops._anchored: products through an anchor tensor, eager and under torch.compile, against dense references."""

from __future__ import annotations

import pytest
import torch
from ops_reference import power_law_csr

import gseq.ops as ops
from gseq.ops import CSR
from gseq.ops._anchored import anchored_spmm, make_anchor, owner_of, scaled_spmm


class Owner:
    """The least an anchor owner does: hand out its matrix (or the transpose) with values of a dtype."""

    def __init__(self, csr: CSR):
        self.csr = csr
        self.anchor = make_anchor(self, csr.device)

    def adjacency(self, dtype: torch.dtype, transpose: bool = False) -> CSR:
        csr = self.csr.with_values(self.csr.values.detach().to(dtype))
        return csr.t() if transpose else csr


def dense(csr: CSR, dtype: torch.dtype) -> torch.Tensor:
    d = torch.zeros(csr.shape, dtype=dtype, device=csr.device)
    return d.index_put_((csr.row(), csr.indices), csr.values.detach().to(dtype), accumulate=True)


def owner_and_dense(device, dtype=torch.float64, n=9):
    owner = Owner(power_law_csr(n, n, 30, seed=4).to(device))  # duplicates and empty rows
    return owner, dense(owner.csr, dtype)


def test_owner_of_finds_the_owner_and_refuses_other_tensors():
    owner, _ = owner_and_dense("cpu")
    assert owner_of(owner.anchor) is owner and owner.anchor.numel() == 0
    with pytest.raises(RuntimeError, match="not an anchor"):
        owner_of(torch.empty(0))


@pytest.mark.parametrize("transpose", [False, True])
def test_anchored_spmm_matches_the_dense_product_with_gradients(backend, device, transpose):
    owner, a = owner_and_dense(device)
    a = a.t() if transpose else a
    x = torch.randn(9, 3, dtype=torch.float64, device=device, requires_grad=True)
    with ops.use_backend(backend):
        out = anchored_spmm(x, owner.anchor, transpose)
        grad = torch.randn_like(out)
        (got,) = torch.autograd.grad(out, x, grad)
    torch.testing.assert_close(out, a @ x)
    torch.testing.assert_close(got, a.t() @ grad)


@pytest.mark.parametrize("same_s", [True, False])
def test_scaled_spmm_matches_the_composition_and_gradchecks(backend, device, same_s):
    owner, a = owner_and_dense(device)
    g = torch.Generator().manual_seed(0)
    x, s_t, s_s, c = (torch.rand(*shape, generator=g, dtype=torch.float64).to(device).requires_grad_()
                      for shape in ((9, 3), (9,), (9,), (9,)))
    inputs = (x, s_t, c) if same_s else (x, s_t, s_s, c)

    def fn(x, s_t, *rest):
        s_s, c = (None, rest[0]) if same_s else rest
        return scaled_spmm(owner.anchor, x, s_t, s_s, c)

    def composition(x, s_t, *rest):
        s_s, c = (s_t, rest[0]) if same_s else rest
        return s_t[:, None] * (a @ (s_s[:, None] * x)) + c[:, None] * x

    with ops.use_backend(backend):
        torch.testing.assert_close(fn(*inputs), composition(*inputs))
        assert torch.autograd.gradcheck(fn, inputs, fast_mode=backend == "triton")


def test_compiled_products_trace_into_one_graph_and_equal_eager():
    owner, _ = owner_and_dense("cpu", torch.float32)
    g = torch.Generator().manual_seed(1)
    x, s_t, s_s, c = (torch.rand(*shape, generator=g) for shape in ((9, 3), (9,), (9,), (9,)))

    def fn(x, s_t, s_s, c, anchor):
        return scaled_spmm(anchor, x, s_t, s_s, c) + anchored_spmm(x, anchor, transpose=True)

    torch._dynamo.reset()
    report = torch._dynamo.explain(fn)(x, s_t, s_s, c, owner.anchor)
    assert report.graph_break_count == 0, [b.reason for b in report.break_reasons]
    results = []
    for f in (fn, torch.compile(fn, fullgraph=True, backend="aot_eager")):
        xi, si = x.clone().requires_grad_(), s_t.clone().requires_grad_()
        out = f(xi, si, s_s, c, owner.anchor)
        out.pow(2).sum().backward()
        results.append((out.detach(), xi.grad, si.grad))
    torch._dynamo.reset()
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager)
