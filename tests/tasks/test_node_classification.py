"""Node classification: full-batch (train_node_classifier) and on sampled subgraphs
(train_node_classifier_minibatch)."""

import pytest
import torch

from gseq.data import example_graph, karate, planetoid, synthetic_graph
from gseq.tasks import train_node_classifier, train_node_classifier_minibatch


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



def test_minibatch_training_learns_and_is_reproducible():
    data = synthetic_graph(800, 8, 3, 8, noise=2.0, split=(0.3, 0.2), seed=0)
    kwargs = dict(num_neighbors=[5, 5], batch_size=64, epochs=8, hidden_channels=16, lr=0.05, device="cpu", seed=3)
    a = train_node_classifier_minibatch(data, **kwargs)
    assert a["test_acc"] > 0.75  # logistic regression on the features alone: 0.62
    assert [row["epoch"] for row in a["history"]] == list(range(1, 9))  # one evaluation per epoch
    assert a["history"][-1]["loss"] < a["history"][0]["loss"]
    assert 1 <= a["best_epoch"] <= 8
    b = train_node_classifier_minibatch(data, **kwargs)
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_minibatch_training_bad_settings():
    data = karate()
    with pytest.raises(ValueError, match="num_neighbors"):
        train_node_classifier_minibatch(data, num_neighbors=[5], num_layers=2, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        train_node_classifier_minibatch(data, batch_size=0, device="cpu")
    with pytest.raises(ValueError, match="eval_every"):
        train_node_classifier_minibatch(data, eval_every=0, device="cpu")


def test_minibatch_training_with_sparse_features_keeps_the_callers_data():
    data = synthetic_graph(300, 6, 3, 8, noise=1.0, split=(0.3, 0.2), seed=0)
    data.x = torch.relu(data.x - 1.5)  # mostly zeros: a bag-of-words-like input
    r = train_node_classifier_minibatch(data, num_neighbors=[4, 4], batch_size=32, epochs=2, device="cpu",
                                        sparse_input=True)
    assert data.x.layout == torch.strided
    assert 0.0 <= r["test_acc"] <= 1.0 and len(r["history"]) == 2
