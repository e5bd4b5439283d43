"""The cases of PyG's own GCNConv tests (test/nn/conv/test_gcn_conv.py) that apply to gseq's GCN.

Each runs with gseq's GCN, and where PyG's test only checks shapes or self-consistency, also against
GCNConv with the same weights. (TorchScript and torch_sparse.SparseTensor cases do not apply: gseq
supports neither.)
"""

import copy

import torch
from torch_geometric.nn import GCNConv
from torch_geometric.utils import to_torch_csc_tensor

from gseq.layers import GCN

EDGE_INDEX = torch.tensor([[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0]])


def pair(in_channels, out_channels, **kwargs):
    pyg = GCNConv(in_channels, out_channels, **kwargs)
    torch.nn.init.normal_(pyg.bias)
    ours = GCN(in_channels, out_channels, **kwargs)
    ours.load_state_dict(pyg.state_dict())
    return pyg, ours


def test_edge_index_and_sparse_adjacency_with_and_without_weights_then_cached():
    x = torch.randn(4, 16)
    value = torch.rand(EDGE_INDEX.size(1))
    adj1 = to_torch_csc_tensor(EDGE_INDEX, size=(4, 4))
    adj2 = to_torch_csc_tensor(EDGE_INDEX, value, size=(4, 4))
    pyg, conv = pair(16, 32)

    out1 = conv(x, EDGE_INDEX)
    assert out1.size() == (4, 32)
    torch.testing.assert_close(out1, pyg(x, EDGE_INDEX), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(conv(x, adj1.t()), out1, atol=1e-6, rtol=1e-5)

    out2 = conv(x, EDGE_INDEX, value)
    assert out2.size() == (4, 32)
    torch.testing.assert_close(out2, pyg(x, EDGE_INDEX, value), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(conv(x, adj2.t()), out2, atol=1e-6, rtol=1e-5)

    conv.cached = True  # switched on after construction, as PyG's test does
    conv(x, EDGE_INDEX)
    assert conv._cached_graph is not None
    torch.testing.assert_close(conv(x, EDGE_INDEX), out1, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(conv(x, adj1.t()), out1, atol=1e-6, rtol=1e-5)


def test_decomposed_layers_change_nothing():
    x = torch.randn(4, 16)
    _, conv = pair(16, 32)
    decomposed = copy.deepcopy(conv)
    decomposed.decomposed_layers = 2
    torch.testing.assert_close(decomposed(x, EDGE_INDEX), conv(x, EDGE_INDEX))
    constructed = GCN(16, 32, decomposed_layers=2)
    constructed.load_state_dict(conv.state_dict())
    torch.testing.assert_close(constructed(x, EDGE_INDEX), conv(x, EDGE_INDEX))


def test_sparse_input_features():
    x = torch.sparse_coo_tensor(indices=torch.tensor([[0, 0], [0, 1]]), values=torch.tensor([1.0, 1.0]),
                                size=torch.Size([4, 16]))
    pyg, conv = pair(16, 32)
    out = conv(x, EDGE_INDEX)
    assert out.size() == (4, 32)
    torch.testing.assert_close(out, pyg(x, EDGE_INDEX), atol=1e-6, rtol=1e-5)


def test_static_graph_with_batched_features():
    x = torch.randn(3, 4, 16)
    pyg, conv = pair(16, 32)
    out = conv(x, EDGE_INDEX)
    assert out.size() == (3, 4, 32)
    torch.testing.assert_close(out, pyg(x, EDGE_INDEX), atol=1e-6, rtol=1e-5)


def test_flow_set_after_construction():
    x = torch.randn(4, 16)
    edge_index = torch.tensor([[0, 0, 0], [1, 2, 3]])
    pyg, conv = pair(16, 32, flow="source_to_target")
    out1 = conv(x, edge_index)
    conv.flow = pyg.flow = "target_to_source"
    out2 = conv(x, edge_index.flip(0))
    torch.testing.assert_close(out1, out2, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out2, pyg(x, edge_index.flip(0)), atol=1e-6, rtol=1e-5)
