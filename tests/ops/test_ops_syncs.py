"""Hot paths make no host synchronisation.

On a GPU every read of a tensor's value by the host (``.item()``, ``int(t)``, ``bool(t)``, ``.tolist()``,
``nonzero``, ``torch.equal``, ``bincount`` and ``repeat_interleave`` without an output size) waits for
the device. Here, on the CPU, each of those entry points is wrapped to count the calls made from gseq's
own code while an op runs; the counts are those a CUDA run would sync on.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import pytest
import torch
from ops_reference import REDUCES, power_law_csr

import gseq.ops as ops

_TENSOR_METHODS = ("item", "tolist", "numpy", "nonzero", "__bool__", "__int__", "__float__", "__index__")
_TORCH_FUNCTIONS = ("nonzero", "argwhere", "equal", "unique", "bincount", "masked_select")


@contextmanager
def count_host_syncs(monkeypatch):
    """Yields a list that collects the name of every value-reading call made from a gseq module."""
    calls: list[str] = []

    def wrap(owner, name, *, needs=None):
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("gseq.") and (needs is None or needs(args, kwargs)):
                calls.append(f"{caller}: {name}")
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, counted)

    with monkeypatch.context() as m:
        monkeypatch = m
        for name in _TENSOR_METHODS:
            wrap(torch.Tensor, name)
        for name in _TORCH_FUNCTIONS:
            wrap(torch, name)
        no_size = lambda args, kwargs: kwargs.get("output_size") is None  # noqa: E731
        wrap(torch, "repeat_interleave", needs=no_size)
        wrap(torch.Tensor, "repeat_interleave", needs=no_size)
        yield calls


def test_the_counter_counts(monkeypatch):
    """The wrappers see a sync made from gseq code (CSR's build-time validation reads values)."""
    with count_host_syncs(monkeypatch) as calls:
        ops.CSR(torch.tensor([0, 1, 2]), torch.tensor([1, 0]), None, (2, 2))
    assert any("int" in c or "bool" in c for c in calls), calls


@pytest.mark.parametrize("reduce", REDUCES)
def test_spmm_on_a_built_csr_makes_no_sync(backend, device, reduce, monkeypatch):
    csr = power_law_csr(20, 15, 80, seed=0, dtype=torch.float32).to(device)
    x = torch.randn(15, 4, device=device, requires_grad=True)
    v = csr.values.detach().requires_grad_()
    spmm = ops.spmm
    spmm(csr.with_values(v), x, reduce, backend=backend).sum().backward()  # builds the transpose, once
    with count_host_syncs(monkeypatch) as calls:
        spmm(csr, x.detach(), reduce, backend=backend)  # forward only
        out = spmm(csr.with_values(v), x, reduce, backend=backend)
        torch.autograd.grad(out.sum(), (x, v))
    assert calls == []
    fresh = power_law_csr(20, 15, 80, seed=1, dtype=torch.float32).to(device)  # caches built inside
    with count_host_syncs(monkeypatch) as calls:
        spmm(fresh, x.detach(), reduce, backend=backend)
    assert calls == []


@pytest.mark.parametrize("reduce", REDUCES)
def test_scatter_and_segments_make_no_sync(backend, device, reduce, monkeypatch):
    """With dim_size (or out) given, scatter and segment_coo make no sync, forward or backward;
    segment_csr never does. The range checks run on the device."""
    src = torch.randn(12, 3, device=device, requires_grad=True)
    index = torch.tensor([3, 0, 3, 1, 1, 0, 5, 5, 5, 5, 0, 2], device=device)
    indptr = torch.tensor([0, 2, 2, 7, 12], device=device)
    with count_host_syncs(monkeypatch) as calls:
        outs = [ops.scatter(src, index, 0, None, 6, reduce, backend=backend),
                ops.scatter(src, index.view(-1, 1).expand(-1, 3), 0, None, 6, reduce, backend=backend),
                ops.scatter(src, index, 0, torch.zeros(6, 3, device=device), None, reduce, backend=backend),
                ops.segment_csr(src, indptr, None, reduce, backend=backend),
                ops.segment_coo(src, index.sort().values, None, 6, reduce, backend=backend)]
        torch.autograd.grad(sum(o.sum() for o in outs), src)
    assert calls == []


def test_scatter_without_dim_size_makes_one_sync(backend, device, monkeypatch):
    """dim_size=None: finding index.max() + 1 is one sync (torch_scatter makes it too)."""
    src = torch.randn(5, 2, device=device)
    with count_host_syncs(monkeypatch) as calls:
        out = ops.scatter(src, torch.tensor([0, 3, 3, 1, 0], device=device), 0, backend=backend)
    assert out.shape == (4, 2) and len(calls) == 1, calls
