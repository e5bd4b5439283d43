"""The claims the GPU check makes about gseq.ops, as tests: every width the kernels tile differently, in
every reduction and dtype, against a float64 CPU reference; a row of 70,000 entries in half precision;
two runs bitwise equal; and, on a GPU with the memory, nnz and N x F past 2^31 (int64 offsets).

They run on the CPU here and on CUDA where it is present (``python -m pytest tests/ops``; the default
backend is then Triton). Inputs are multiples of 1/8 below 8, exact in every dtype, so float32 sums are
exact and a tolerance is only the output's rounding.
"""

from __future__ import annotations

import pytest
import torch

from gseq.ops import CSR, scatter, segment_csr, spmm

from ops_reference import REDUCES

HALF_AND_FULL = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
#: |got - ref| <= tol * (|ref| + 1): the output's rounding (inputs are exact)
TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def exact(shape, generator, low=-64, high=64) -> torch.Tensor:
    """float64 multiples of 1/8 in [low/8, high/8]: exact in float16, bfloat16, float32 and float64."""
    return torch.randint(low, high + 1, shape, generator=generator).double().div_(8)


def assert_rounding_close(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    got, ref = got.detach().double().cpu(), ref.detach()
    assert got.shape == ref.shape, what
    ratio = ((got - ref).abs() / (TOL[dtype] * (ref.abs() + 1))).nan_to_num(nan=float("inf"))
    worst = float(ratio.max()) if ratio.numel() else 0.0
    assert worst <= 1.0, f"{what}: worst error {worst:.2g} x the {dtype} tolerance"


def hub_graph(n: int, edges: int, hub: int, seed: int) -> CSR:
    """Random edges among ``n`` nodes plus ``hub`` more into node 0 (repeated sources included); the
    last quarter of the rows is left empty."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.cat([torch.randint(3 * n // 4, (edges,), generator=g), torch.zeros(hub, dtype=torch.long)])
    cols = torch.randint(n, (edges + hub,), generator=g)
    return CSR.from_edge_index(torch.stack([cols, rows]), num_nodes=n)


@pytest.mark.parametrize("f", [1, 64, 100, 1433])
def test_spmm_every_width_reduction_and_dtype_matches_float64(device, f):
    csr = hub_graph(40, 200, 300, seed=f)
    g = torch.Generator().manual_seed(0)
    x64, grad64 = exact((40, f), g), exact((40, f), g)
    for reduce in REDUCES:
        x = x64.clone().requires_grad_()
        ref = spmm(csr, x, reduce)  # the float64 CPU reference
        (ref_grad,) = torch.autograd.grad(ref, x, grad64)
        for dtype in HALF_AND_FULL:
            x = x64.to(device, dtype).requires_grad_()
            out = spmm(csr.to(device), x, reduce)
            (gx,) = torch.autograd.grad(out, x, grad64.to(device, dtype))
            assert out.dtype == dtype and out.device.type == torch.device(device).type
            assert_rounding_close(out, ref, dtype, f"{reduce} {dtype} output")
            assert_rounding_close(gx, ref_grad, dtype, f"{reduce} {dtype} gradient")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_row_of_70000_entries_in_half_precision(device, dtype):
    """A count of 70,000 overflows float16 (65,504): sums and means accumulate in float32."""
    csr = hub_graph(30, 100, 70_000, seed=1).to(device)
    x64 = exact((30, 2), torch.Generator().manual_seed(2))
    for reduce in REDUCES:
        ref = spmm(csr.to("cpu"), x64, reduce)
        assert_rounding_close(spmm(csr, x64.to(device, dtype), reduce), ref, dtype, reduce)


def test_weighted_spmm_scatter_and_segment_csr_match_float64(device):
    csr = hub_graph(50, 300, 200, seed=3)
    g = torch.Generator().manual_seed(4)
    x64, grad64 = exact((50, 16), g), exact((50, 16), g)
    values64 = torch.randint(1, 5, (csr.nnz,), generator=g).double().div_(2)  # x * value stays exact in bfloat16
    index = torch.repeat_interleave(torch.arange(50), csr.indptr.diff())  # the row of every entry
    src64 = exact((csr.nnz, 16), g)
    for reduce in REDUCES:
        x, v, src = x64.clone().requires_grad_(), values64.clone().requires_grad_(), src64.clone().requires_grad_()
        wref = spmm(csr.with_values(v), x, reduce)
        wgrads = torch.autograd.grad(wref, (x, v), grad64)
        sref = scatter(src, index, 0, None, 50, reduce)
        (sgrad,) = torch.autograd.grad(sref, src, grad64)
        segref = segment_csr(src64, csr.indptr, None, reduce)
        for dtype in HALF_AND_FULL:
            x, v = x64.to(device, dtype).requires_grad_(), values64.to(device, dtype).requires_grad_()
            out = spmm(csr.to(device).with_values(v), x, reduce)
            got = torch.autograd.grad(out, (x, v), grad64.to(device, dtype))
            checks = [("weighted", out, wref), ("grad x", got[0], wgrads[0]), ("grad values", got[1], wgrads[1])]
            for what, a, b in checks[:3 if reduce in ("sum", "mean") else 2]:  # max/min: tied entries may share
                assert_rounding_close(a, b, dtype, f"{what} {reduce} {dtype}")
            src = src64.to(device, dtype).requires_grad_()
            out = scatter(src, index.to(device), 0, None, 50, reduce)
            (got,) = torch.autograd.grad(out, src, grad64.to(device, dtype))
            assert_rounding_close(out, sref, dtype, f"scatter {reduce} {dtype}")
            assert_rounding_close(got, sgrad, dtype, f"scatter grad {reduce} {dtype}")
            assert_rounding_close(segment_csr(src64.to(device, dtype), csr.indptr.to(device), None, reduce), segref,
                                  dtype, f"segment_csr {reduce} {dtype}")


def test_two_runs_are_bitwise_equal(device):
    """spmm (sum, max; output and gradients of x and the weights) and scatter: no atomics, a fixed order.
    On CUDA at ogbn-arxiv's size (169,343 nodes, 2.33M edges) with a row of 70,000 entries."""
    n, e, hub = (169_343, 2_330_000, 70_000) if device == "cuda" else (300, 3000, 5000)
    g = torch.Generator().manual_seed(5)
    csr = hub_graph(n, e, hub, seed=5).to(device)
    x, w = torch.randn(n, 64, generator=g).to(device), torch.rand(csr.nnz, generator=g).to(device)
    index, src = torch.randint(n, (e,), generator=g).to(device), torch.randn(e, 64, generator=g).to(device)

    def run(reduce):
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = spmm(csr.with_values(wr), xr, reduce)
        return [out, *torch.autograd.grad(out, (xr, wr), torch.ones_like(out) / 7)]

    for reduce in ("sum", "max"):
        assert all(torch.equal(a, b) for a, b in zip(run(reduce), run(reduce))), reduce
    assert torch.equal(scatter(src, index, 0, None, n), scatter(src, index, 0, None, n))


def _cuda_memory_gib() -> float:
    return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else 0.0


@pytest.mark.skipif(_cuda_memory_gib() < 40, reason="nnz past 2^31 needs a GPU with 40 GiB")
def test_spmm_past_2_to_the_31_entries_and_elements_on_cuda():
    """nnz = 2,149,580,800 > 2^31 (row i holds 1025 entries, columns spread by a hash) and an x of
    2.2e9 elements > 2^31, contiguous and as X.t(); sampled rows (the last ones included) are compared
    exactly with a gather on the device."""
    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(5)

    def sampled(rows):  # the first and last rows (the largest offsets) and 256 random ones
        return torch.unique(torch.cat([torch.arange(16), torch.arange(rows - 64, rows),
                                       torch.randint(rows, (256,), generator=g)])).to(dev)
    m, d, n = 1 << 21, 1025, 1 << 20
    indices = torch.arange(m * d, device=dev, dtype=torch.long).mul_(2654435761).remainder_(n)
    csr = CSR(torch.arange(m + 1, device=dev, dtype=torch.long).mul_(d), indices, None, (m, n))
    x = exact((n, 2), g).float().to(dev)
    rows = sampled(m)
    gathered = x.double()[indices[csr.indptr[rows][:, None] + torch.arange(d, device=dev)]]  # [rows, d, 2]
    assert torch.equal(spmm(csr, x)[rows].double(), gathered.sum(1))
    assert torch.equal(spmm(csr, x, "max")[rows].double(), gathered.amax(1))
    del indices, csr, gathered
    torch.cuda.empty_cache()
    nw, fw = 2_200_000, 1000  # N x F = 2.2e9
    r = torch.arange(nw, device=dev)
    csr = CSR.from_edge_index(torch.stack([torch.cat([r, nw - 1 - r]), torch.cat([r, r])]), num_nodes=nw)
    big = torch.randint(-64, 65, (fw, nw), device=dev, dtype=torch.float32).div_(8)  # X [F, N]
    rows = sampled(nw)
    for x in (big.t(), big.t().contiguous()):  # strides (1, N), then (F, 1)
        expected = x[rows].double() + x[nw - 1 - rows].double()
        assert torch.equal(spmm(csr, x)[rows].double(), expected), x.stride()
