"""gseq.layers.GCN against PyG's GCNConv on each device (the CPU here, CUDA where present: the GPU
check's claim), float32 with TF32 off and float64, with and without edge weights, cached or not; and two
runs bitwise equal."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GCNConv
from torch_geometric.utils import coalesce, remove_self_loops

from gseq.layers import GCN

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-11)}


@pytest.fixture
def no_tf32():
    """float32 products in full precision on CUDA (TF32 off), restored afterwards."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def graph(n: int, e: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    src = torch.randint(n, (e,), generator=g)
    dst = torch.minimum(torch.randint(n, (e,), generator=g), torch.randint(n, (e,), generator=g))  # skewed in-degrees
    return coalesce(remove_self_loops(torch.stack([src, dst]))[0], num_nodes=n).to(device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighted, cached", [(False, False), (True, False), (True, True)])
def test_gcn_matches_gcnconv_on_the_device(device, dtype, weighted, cached, no_tf32):
    n, ei = 60, graph(60, 400, device)
    torch.manual_seed(0)
    pyg = GCNConv(16, 8, cached=cached).to(device, dtype)
    ours = GCN(16, 8, cached=cached).to(device, dtype)
    ours.load_state_dict(pyg.state_dict())
    x = torch.randn(n, 16, device=device, dtype=dtype)
    w = torch.rand(ei.size(1), device=device, dtype=dtype) + 0.5 if weighted else None
    gy = torch.randn(n, 8, device=device, dtype=dtype)
    results = []
    for model in (pyg, ours):
        for _ in range(2 if cached else 1):  # cached: the second call reads the cache
            xr = x.clone().requires_grad_()
            y = model(xr, ei, w)
        results.append([y, *torch.autograd.grad(y, [xr, model.lin.weight, model.bias], gy)])
    for what, got, want in zip(("output", "grad x", "grad W", "grad b"), results[1], results[0]):
        torch.testing.assert_close(got, want, **TOL[dtype], msg=lambda m, what=what: f"{what}: {m}")


def test_gcn_layer_two_runs_bitwise_equal(device):
    """On CUDA at ogbn-arxiv's size (169,343 nodes, 2.33M edges)."""
    n, e = (169_343, 2_330_000) if device.type == "cuda" else (300, 4000)
    ei = graph(n, e, device)
    x, gy = torch.randn(n, 32, device=device), torch.randn(n, 32, device=device)
    w = torch.rand(ei.size(1), device=device)

    def run():
        torch.manual_seed(1)
        layer = GCN(32, 32).to(device)
        xr = x.clone().requires_grad_()
        y = layer(xr, ei, w)
        return [y, *torch.autograd.grad(y, [xr, layer.lin.weight], gy)]

    assert all(torch.equal(a, b) for a, b in zip(run(), run()))
