"""Triton-specific checks (run in the marked pass: TRITON_INTERPRET=1 python -m pytest -m triton).

Heavy rows split into several chunks (and several feature tiles) must give the torch results and be
bitwise reproducible; the GCN layer must match PyG's GCNConv on the Triton backend.
"""

from __future__ import annotations

import pytest
import torch
from ops_reference import DTYPES, REDUCES, power_law_csr, require_triton_runtime

import gseq.ops as ops
from gseq.ops import CSR, _triton, spmm

pytestmark = pytest.mark.triton


@pytest.fixture(autouse=True)
def _runtime():
    require_triton_runtime()


def heavy_graph(dtype):
    """Row 0 holds 150 entries (duplicates included), rows 3 and 7 none, the rest a few."""
    g = torch.Generator().manual_seed(0)
    rows = torch.cat([torch.zeros(150, dtype=torch.long), torch.randint(1, 10, (40,), generator=g)])
    rows = rows[(rows != 3) & (rows != 7)]
    cols = torch.randint(0, 12, (rows.numel(),), generator=g)
    order = torch.argsort(rows * 12 + cols, stable=True)
    indptr = torch.zeros(11, dtype=torch.long)
    indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=10), 0)
    vals = torch.rand(rows.numel(), generator=g, dtype=dtype) + 0.5
    return CSR(indptr, cols[order], vals, (10, 12))


@pytest.mark.parametrize("chunk", [4, 64, 256])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
def test_split_rows_match_torch_and_are_deterministic(monkeypatch, chunk, dtype, reduce):
    monkeypatch.setattr(_triton, "CHUNK", chunk)
    csr = heavy_graph(dtype)
    f = 130 if chunk == 64 else 6  # 130 features: two feature tiles
    x = torch.randn(12, f, dtype=dtype, requires_grad=True)
    v = csr.values.detach().requires_grad_()
    grad = torch.randn(10, f, dtype=dtype)

    def run(backend):
        out = spmm(csr.with_values(v), x, reduce, backend=backend)
        return (out,) + torch.autograd.grad(out, (x, v), grad)

    first, second, want = run("triton"), run("triton"), run("torch")
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b, w in zip(first, second, want):
        assert torch.equal(a, b)  # bitwise: no atomics, fixed order
        torch.testing.assert_close(a, w, **tol)


def test_work_table_is_cached_and_covers_every_entry():
    csr = heavy_graph(torch.float32)
    crow, cstart, cend, cslot, srow, sptr, nslots = _triton._work(csr, 16)
    assert _triton._work(csr, 16)[0] is crow
    assert torch.equal(torch.unique(crow), torch.arange(10))  # every row, the empty ones included
    assert int((cend - cstart).sum()) == csr.nnz and int((cend - cstart).max()) <= 16
    assert srow.tolist() == [0] and nslots == 10 and cslot.max().item() == 9  # 150 entries / 16


@pytest.mark.parametrize("normalize", [True, "both"])
def test_gcn_matches_gcnconv_on_triton(normalize):
    from torch_geometric.nn import GCNConv

    from gseq.layers import GCN

    g = torch.Generator().manual_seed(1)
    edge_index = torch.randint(0, 10, (2, 40), generator=g)
    weight = torch.rand(40, generator=g) + 0.1
    x = torch.randn(12, 5, generator=g)
    pyg = GCNConv(5, 4)
    if normalize == "both":
        ours = GCN(5, 4, normalize="both")
        ours.load_state_dict(pyg.state_dict())
        with ops.use_backend("triton"):
            got = ours(x, edge_index, weight)
        torch.testing.assert_close(got, ours(x, edge_index, weight), atol=1e-5, rtol=1e-5)
        return
    ours = GCN(5, 4)
    ours.load_state_dict(pyg.state_dict())
    with ops.use_backend("triton"):
        got = ours(x, edge_index, weight)
        got.sum().backward()
    torch.testing.assert_close(got, pyg(x, edge_index, weight), atol=1e-5, rtol=1e-5)
    grad_ours = ours.lin.weight.grad.clone()
    pyg(x, edge_index, weight).sum().backward()
    torch.testing.assert_close(grad_ours, pyg.lin.weight.grad, atol=1e-5, rtol=1e-5)


def test_scatter_segment_on_power_law():
    csr = power_law_csr(30, 25, 200, seed=9, dtype=torch.float32)
    src = torch.randn(200, 3)
    for reduce in REDUCES:
        torch.testing.assert_close(ops.scatter(src, csr.row(), 0, 30, reduce, backend="triton"),
                                   ops.scatter(src, csr.row(), 0, 30, reduce, backend="torch"))
        torch.testing.assert_close(ops.segment(src, csr.indptr, reduce, backend="triton"),
                                   ops.segment(src, csr.indptr, reduce, backend="torch"))


def test_kernels_compile_for_sm90(tmp_path):
    """The interpreter does not compile: compile every kernel variant for an H100 (ptxas, no GPU needed)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")
    script = Path(__file__).with_name("triton_compile_check.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ALL OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
