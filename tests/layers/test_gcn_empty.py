"""Empty graphs (0 nodes, 0 edges; nodes without edges) through the GCN layer and model, against PyG's GCNConv."""

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv

from gseq.layers import GCN, gcn_norm
from gseq.models import GCNNet

NO_EDGES = torch.empty(2, 0, dtype=torch.long)
SETTINGS = {"default": {}, "improved": {"improved": True}, "mean": {"aggr": "mean"}, "max": {"aggr": "max"},
            "no-normalize": {"normalize": False}, "cached": {"cached": True}}


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("num_nodes", [0, 4])
def test_graph_without_edges_matches_gcnconv(name, num_nodes):
    kwargs = SETTINGS[name]
    pyg = GCNConv(4, 3, **kwargs)
    torch.nn.init.normal_(pyg.bias)
    ours = GCN(4, 3, **kwargs)
    ours.load_state_dict(pyg.state_dict())
    x = torch.randn(num_nodes, 4)
    outs, grads = [], []
    for layer in (pyg, ours):
        xi = x.clone().requires_grad_()
        out = layer(xi, NO_EDGES)
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append(xi.grad)
    assert outs[1].shape == (num_nodes, 3)
    torch.testing.assert_close(outs[1], outs[0])
    torch.testing.assert_close(grads[1], grads[0])


def test_empty_batched_features_and_learned_weight():
    layer = GCN(4, 3, self_loop_weight="learn")
    out = layer(torch.randn(2, 0, 4), NO_EDGES)
    assert out.shape == (2, 0, 3) and out.is_contiguous()
    out.sum().backward()
    assert layer.raw_self_loop_weight.grad is not None and float(layer.raw_self_loop_weight.grad) == 0.0


def test_empty_graph_through_the_model_and_its_inference():
    model = GCNNet(4, 3).eval()
    data = Data(x=torch.randn(0, 4), edge_index=NO_EDGES)
    assert model(data.x, data.edge_index).shape == (0, 3)
    assert model.inference(data).shape == (0, 3)


def test_gcn_norm_of_an_empty_graph_matches_pyg():
    from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm

    ours, pyg = gcn_norm(NO_EDGES, None, 0), pyg_gcn_norm(NO_EDGES, None, 0)
    assert ours[0].shape == pyg[0].shape == (2, 0) and ours[1].shape == pyg[1].shape == (0,)
