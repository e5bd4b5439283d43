import pytest
import torch

from gseq.data import example_graph, planetoid
from gseq.models import GCNNet, train_node_classifier


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


def test_training_on_cora_learns(data_root):
    data = planetoid("Cora")
    result = train_node_classifier(data, epochs=40, seed=0, device="cpu")
    assert result["test_acc"] > 0.7
    assert result["history"][-1]["loss"] < result["history"][0]["loss"]


def test_learned_self_loop_weight_moves_during_training(data_root):
    result = train_node_classifier(planetoid("Cora"), epochs=10, seed=0, device="cpu", self_loop_weight="learn")
    assert all(w > 0 for w in result["self_loop_weights"])
    assert any(abs(w - 1.0) > 1e-3 for w in result["self_loop_weights"])


def test_needs_masks():
    data = example_graph()
    del data.val_mask
    with pytest.raises(ValueError, match="val_mask"):
        train_node_classifier(data, epochs=1)


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
