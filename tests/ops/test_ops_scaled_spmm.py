"""gseq.ops.scaled_spmm, (D_r A D_c + D_d) X as one custom operator: against the dense composition, gradients
(float64 gradcheck, second order), torch.compile, validation, and the typed structure caches it reads."""

from __future__ import annotations

import pytest
import torch
from ops_reference import power_law_csr

import gseq.ops as ops
from gseq.ops import CSR, scaled_spmm


def dense(csr: CSR, dtype=torch.float64) -> torch.Tensor:
    d = torch.zeros(csr.shape, dtype=dtype, device=csr.device)
    values = torch.ones(csr.nnz, dtype=dtype, device=csr.device) if csr.values is None else csr.values.detach()
    return d.index_put_((csr.row(), csr.indices), values.to(dtype), accumulate=True)


def inputs(device, n=9, m=9, f=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    csr = power_law_csr(m, n, 30, seed=4).to(device)  # duplicates and empty rows
    x, r, c, d = (torch.rand(*shape, generator=g, dtype=torch.float64).to(device).requires_grad_()
                  for shape in ((n, f), (m,), (n,), (m,)))
    return csr, x, r, c, d


# which of (row_scale, col_scale, diag) are given
SCALINGS = {"all": (True, True, True), "none": (False, False, False), "rows": (True, False, False),
            "cols-diag": (False, True, True)}


@pytest.mark.parametrize("which", SCALINGS)
def test_matches_the_dense_composition_and_gradchecks(backend, device, which):
    csr, x, r, c, d = inputs(device)
    use = SCALINGS[which]
    a = dense(csr)

    def fn(x, r, c, d):
        r, c, d = (t if u else None for t, u in zip((r, c, d), use))
        return scaled_spmm(csr, x, row_scale=r, col_scale=c, diag=d, backend=backend)

    def composition(x, r, c, d):
        out = a @ (x * c[:, None] if use[1] else x)
        out = out * r[:, None] if use[0] else out
        return out + d[:, None] * x if use[2] else out

    torch.testing.assert_close(fn(x, r, c, d), composition(x, r, c, d))
    fast = backend == "triton"
    assert torch.autograd.gradcheck(fn, (x, r, c, d), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (x, r, c, d), fast_mode=fast)


@pytest.mark.parametrize("which", SCALINGS)
def test_eager_calls_skip_the_operator_dispatch_with_the_same_bits(backend, device, which, monkeypatch):
    """Eagerly the operator's body runs without gseq::scaled_spmm's dispatch (directly under no_grad, else
    through _ScaledSpMM) and gives the operator's bits: outputs, first and second-order gradients."""
    csr, x, r, c, d = inputs(device)
    r, c, d = (t if u else None for t, u in zip((r, c, d), SCALINGS[which]))
    leaves = [t for t in (x, r, c, d) if t is not None]

    def run():
        out = scaled_spmm(csr, x, row_scale=r, col_scale=c, diag=d, backend=backend)
        grads = torch.autograd.grad(out.pow(3).sum(), leaves, create_graph=True)
        second = torch.autograd.grad(sum(g.pow(2).sum() for g in grads), leaves)
        with torch.no_grad():
            evaluated = scaled_spmm(csr, x, row_scale=r, col_scale=c, diag=d, backend=backend)
        return [out, evaluated, *grads, *second]

    with monkeypatch.context() as traced:
        traced.setattr(torch.compiler, "is_compiling", lambda: True)  # the path torch.compile traces
        through_operator = run()

    def refuse(*args):
        raise AssertionError("gseq::scaled_spmm was dispatched eagerly")

    monkeypatch.setattr(ops._autograd, "_scaled_spmm_op", refuse)
    eager = run()
    assert len(eager) == 2 + 2 * len(leaves)
    for a, b in zip(eager, through_operator, strict=True):
        assert torch.equal(a.detach(), b.detach())
    with monkeypatch.context() as traced, pytest.raises(AssertionError, match="dispatched eagerly"):
        traced.setattr(torch.compiler, "is_compiling", lambda: True)
        scaled_spmm(csr, x, row_scale=r, col_scale=c, diag=d, backend=backend)


def test_values_that_require_grad_get_their_gradient(backend, device):
    csr, x, r, c, d = inputs(device)
    values = csr.values.detach().clone().requires_grad_()
    weighted = csr.with_values(values)

    def fn(values, x):
        return scaled_spmm(csr.with_values(values), x, row_scale=r, col_scale=c, diag=d, backend=backend)

    assert torch.autograd.gradcheck(fn, (values, x), fast_mode=backend == "triton")
    assert weighted.values is values


def test_non_square_without_diag_and_bad_arguments():
    csr, x, r, c, d = inputs("cpu", n=9, m=5)
    out = scaled_spmm(csr, x, row_scale=r, col_scale=c)
    torch.testing.assert_close(out, r[:, None] * (dense(csr) @ (c[:, None] * x)))
    with pytest.raises(ValueError, match="diag needs a square csr"):
        scaled_spmm(csr, x, diag=d)
    with pytest.raises(ValueError, match="row_scale must be a vector \\[5\\]"):
        scaled_spmm(csr, x, row_scale=c)
    with pytest.raises(ValueError, match="col_scale must be a vector \\[9\\] of x's dtype"):
        scaled_spmm(csr, x, col_scale=c.float())
    with pytest.raises(TypeError, match="csr must be a gseq.ops.CSR"):
        scaled_spmm(dense(csr), x)


def test_compiles_into_one_graph_and_equals_eager():
    csr, x, r, c, d = inputs("cpu")
    csr = csr.with_values(csr.values.float())
    x, r, c, d = (t.detach().float() for t in (x, r, c, d))
    csr.structure.transpose()  # built outside the traced code, as GCN.graph() does

    def fn(x, r, c, d):
        return scaled_spmm(csr, x, row_scale=r, col_scale=c, diag=d) + ops.spmm(csr.t(), x[:9])

    torch._dynamo.reset()
    report = torch._dynamo.explain(fn)(x, r, c, d)
    assert report.graph_break_count == 0, [b.reason for b in report.break_reasons]
    results = []
    for f in (fn, torch.compile(fn, fullgraph=True, backend="aot_eager")):
        xi, ri = x.clone().requires_grad_(), r.clone().requires_grad_()
        out = f(xi, ri, c, d)
        out.pow(2).sum().backward()
        results.append((out.detach(), xi.grad, ri.grad))
    torch._dynamo.reset()
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager)


def test_the_backward_transpose_and_the_ones_are_kept_on_the_structure():
    csr = power_law_csr(20, 20, 70, seed=6, weighted=False)
    x = torch.randn(20, 4, dtype=torch.float32, requires_grad=True)
    scaled_spmm(csr, x).sum().backward()
    t, perm = csr.structure.transpose()
    ones = csr.structure.torch_ones[torch.float32]
    scaled_spmm(csr, x).sum().backward()
    assert csr.structure.transpose()[0] is t and csr.structure.torch_ones[torch.float32] is ones
    assert t.torch_ones[torch.float32].numel() == 70  # the backward's product read the transpose's ones
    with torch.no_grad():  # no backward: no transpose needed
        fresh = power_law_csr(20, 20, 70, seed=6, weighted=False)
        scaled_spmm(fresh, x)
        assert fresh.structure._transpose is None
