import pytest
import torch

from gseq.data import example_graph
from gseq.models import GCNNet


def test_gcnnet_shapes_layers_and_param_groups():
    model = GCNNet(6, 2, num_layers=3, hidden_channels=8, self_loop_weight="learn")
    data = example_graph()
    assert model(data.x, data.edge_index).shape == (6, 2)
    assert len(model.convs) == 3 and model.self_loop_weights() == pytest.approx([1.0, 1.0, 1.0])
    decayed, rest = model.param_groups(5e-4)
    assert decayed["weight_decay"] == 5e-4 and rest["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model.convs[0].lin.weight), id(model.convs[0].bias)}
    assert len(decayed["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_gcnnet_bad_settings():
    with pytest.raises(ValueError, match="num_layers"):
        GCNNet(4, 2, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        GCNNet(4, 2, dropout=1.5)


def test_sparse_features_give_the_dense_output():
    from gseq.models import sparse_features

    data = example_graph()
    x = data.x * torch.rand(6, 1)
    model = GCNNet(6, 3, num_layers=2).eval()
    dense = model(x, data.edge_index)
    torch.testing.assert_close(model(sparse_features(x), data.edge_index), dense)
    torch.testing.assert_close(model(x.to_sparse(), data.edge_index), dense)
    model.train()
    torch.manual_seed(0)
    out = model(sparse_features(x), data.edge_index)  # dropout on stored entries only
    assert out.shape == (6, 3) and torch.isfinite(out).all()
