"""Triton-specific checks, on ``triton_device`` (CPU under TRITON_INTERPRET=1 in the marked pass; CUDA when present).

Heavy rows split into several chunks (and several feature tiles) must give the torch results and be
bitwise reproducible; the work table is padded to sizes known without a host sync; the GCN layer must
match PyG's GCNConv on the Triton backend.
"""

from __future__ import annotations

import pytest
import torch
from ops_reference import DTYPES, REDUCES, power_law_csr

import gseq.ops as ops
from gseq.ops import CSR, _torch, _triton, spmm


def heavy_graph(dtype, device="cpu"):
    """Row 0 holds 150 entries (duplicates included), rows 3 and 7 none, the rest a few."""
    g = torch.Generator().manual_seed(0)
    rows = torch.cat([torch.zeros(150, dtype=torch.long), torch.randint(1, 10, (40,), generator=g)])
    rows = rows[(rows != 3) & (rows != 7)]
    cols = torch.randint(0, 12, (rows.numel(),), generator=g)
    order = torch.argsort(rows * 12 + cols, stable=True)
    indptr = torch.zeros(11, dtype=torch.long)
    indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=10), 0)
    vals = torch.rand(rows.numel(), generator=g, dtype=dtype) + 0.5
    return CSR(indptr, cols[order], vals, (10, 12)).to(device)


@pytest.mark.parametrize("chunk", [4, 64, 256])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
def test_split_rows_match_torch_and_are_deterministic(triton_device, monkeypatch, chunk, dtype, reduce):
    monkeypatch.setattr(_triton, "CHUNK", chunk)
    csr = heavy_graph(dtype, triton_device)
    f = 130 if chunk == 64 else 6  # 130 features: two feature tiles
    x = torch.randn(12, f, dtype=dtype, device=triton_device, requires_grad=True)
    v = csr.values.detach().requires_grad_()
    grad = torch.randn(10, f, dtype=dtype, device=triton_device)

    def run(backend):
        out = spmm(csr.with_values(v), x, reduce, backend=backend)
        return (out,) + torch.autograd.grad(out, (x, v), grad)

    first, second, want = run("triton"), run("triton"), run("torch")
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b, w in zip(first, second, want):
        assert torch.equal(a, b)  # bitwise: no atomics, fixed order
        torch.testing.assert_close(a, w, **tol)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_nan_and_infinities_across_chunks(triton_device, monkeypatch, reduce):
    """NaN, -inf and +inf in rows split into chunks of 4 (the combine kernel): the torch backend's values
    and args, which are torch.amax's / amin's (NaN propagates; a row of -inf is -inf, not empty)."""
    monkeypatch.setattr(_triton, "CHUNK", 4)
    nan, inf = float("nan"), float("inf")
    col = [-inf, -inf, -inf, -inf, -inf, 2.0, nan, 5.0, nan, 1.0, inf, inf, inf, -1.0, 3.0, -inf]
    x = torch.tensor(col, device=triton_device).view(-1, 1).repeat(1, 3)
    x[:, 1] = torch.where(x[:, 1].isnan(), 0.0, x[:, 1])  # feature 1: no NaN
    x[:, 2] = -x[:, 2]
    indptr = torch.tensor([0, 5, 16, 16], device=triton_device)  # row 0: the five -inf; row 1: the rest
    csr = CSR(indptr, torch.arange(16, device=triton_device), None, (3, 16))
    got, want = _triton.spmm_arg(csr, None, x, reduce), _torch.spmm_arg(csr, None, x, reduce)
    torch.testing.assert_close(got[0], want[0], equal_nan=True)
    assert torch.equal(got[1], want[1])
    ref = torch.zeros(3, 3, device=triton_device).scatter_reduce(
        0, csr.row()[:, None].expand(-1, 3), x, "amax" if reduce == "max" else "amin", include_self=False)
    torch.testing.assert_close(got[0], ref, equal_nan=True)
    assert bool(got[0][1, 0].isnan()) and int(got[1][1, 0]) == 6  # the first NaN entry
    assert got[0][0].tolist() == [-inf, -inf, inf] and got[1][0].tolist() == [0, 0, 0]  # a row of infinities
    assert got[0][2].tolist() == [0.0, 0.0, 0.0] and got[1][2].tolist() == [16, 16, 16]  # the empty row


def test_work_table_is_padded_and_covers_every_entry(triton_device):
    csr = heavy_graph(torch.float32, triton_device)
    crow, cstart, cend, cslot, srow, sptr = _triton._work(csr, 16)
    nslots = 2 * csr.nnz // 16
    assert _triton._work(csr)[0] is _triton._work(csr)[0] is csr.structure.triton_work[0]  # kept on the structure
    assert crow.numel() == 10 + csr.nnz // 16 and srow.numel() == csr.nnz // 17  # sizes known from the shape
    real = cslot != -2
    assert torch.equal(torch.unique(crow[real]), torch.arange(10, device=triton_device))  # every row, empty ones too
    assert int((cend - cstart)[real].sum()) == csr.nnz and int((cend - cstart).max()) <= 16
    assert not bool((cend - cstart)[~real].any())  # padding chunks are empty
    assert srow[srow >= 0].tolist() == [0] and int(sptr[1]) == 10 and int(cslot.max()) == 9  # 150 entries / 16
    assert nslots >= int(sptr[-1])


@pytest.mark.parametrize("normalize", [True, "both"])
def test_gcn_matches_gcnconv_on_triton(triton_device, normalize):
    from torch_geometric.nn import GCNConv

    from gseq.layers import GCN

    g = torch.Generator().manual_seed(1)
    edge_index = torch.randint(0, 10, (2, 40), generator=g).to(triton_device)
    weight = (torch.rand(40, generator=g) + 0.1).to(triton_device)
    x = torch.randn(12, 5, generator=g).to(triton_device)
    pyg = GCNConv(5, 4).to(triton_device)
    if normalize == "both":
        ours = GCN(5, 4, normalize="both").to(triton_device)
        ours.load_state_dict(pyg.state_dict())
        with ops.use_backend("triton"):
            got = ours(x, edge_index, weight)
        with ops.use_backend("torch"):
            torch.testing.assert_close(got, ours(x, edge_index, weight), atol=1e-5, rtol=1e-5)
        return
    ours = GCN(5, 4).to(triton_device)
    ours.load_state_dict(pyg.state_dict())
    with ops.use_backend("triton"):
        got = ours(x, edge_index, weight)
        got.sum().backward()
    torch.testing.assert_close(got, pyg(x, edge_index, weight), atol=1e-5, rtol=1e-5)
    grad_ours = ours.lin.weight.grad.clone()
    pyg(x, edge_index, weight).sum().backward()
    torch.testing.assert_close(grad_ours, pyg.lin.weight.grad, atol=1e-5, rtol=1e-5)


def test_scatter_segment_on_power_law(triton_device):
    csr = power_law_csr(30, 25, 200, seed=9, dtype=torch.float32).to(triton_device)
    src = torch.randn(200, 3, device=triton_device)
    for reduce in REDUCES:
        torch.testing.assert_close(ops.scatter(src, csr.row(), 0, None, 30, reduce, backend="triton"),
                                   ops.scatter(src, csr.row(), 0, None, 30, reduce, backend="torch"))
        torch.testing.assert_close(ops.segment_csr(src, csr.indptr, None, reduce, backend="triton"),
                                   ops.segment_csr(src, csr.indptr, None, reduce, backend="torch"))


@pytest.mark.triton
def test_kernels_compile_for_sm90(tmp_path):
    """The interpreter does not compile: compile every kernel variant for an H100 (ptxas, no GPU needed),
    and check in the TTIR that no address arithmetic on feature indices is done in int32."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")
    script = Path(__file__).with_name("triton_compile_check.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ALL OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
