"""gseq.layers.GCN on the Triton backend (the triton pass: TRITON_INTERPRET=1 python -m pytest -m triton)."""

import os

import pytest
import torch
from torch_geometric.nn import GCNConv

import gseq.ops as ops
from gseq.layers import GCN

pytestmark = pytest.mark.triton


@pytest.fixture(autouse=True)
def _runtime():
    if not ops.TRITON_AVAILABLE:
        pytest.fail("the triton tests need Triton installed")
    if not (os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available()):
        pytest.fail("the triton tests run on CUDA or under TRITON_INTERPRET=1 (set before importing gseq)")


@pytest.mark.parametrize("aggr, flow", [("add", "target_to_source"), ("mean", "source_to_target"),
                                        ("max", "source_to_target")])
def test_gcn_on_triton_matches_gcnconv(aggr, flow):
    g = torch.Generator().manual_seed(3)
    edge_index = torch.cat([torch.randint(0, 9, (2, 30), generator=g), torch.tensor([[2, 2], [2, 2]])], dim=1)
    weight = torch.rand(edge_index.size(1), generator=g) + 0.1
    x = torch.randn(2, 10, 4, generator=g)  # batched features, one graph
    pyg = GCNConv(4, 3, aggr=aggr, flow=flow)
    ours = GCN(4, 3, aggr=aggr, flow=flow, cached=True, self_loop_weight="learn")
    ours.load_state_dict(pyg.state_dict(), strict=False)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    with ops.use_backend("triton"):
        got = ours(xs[0], edge_index, weight)
        got.pow(2).sum().backward()
    expected = pyg(xs[1], edge_index, weight)
    expected.pow(2).sum().backward()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(xs[0].grad, xs[1].grad, atol=1e-4, rtol=1e-4)
