"""The public API refuses the usual bad values (wrong dtype, wrong shape, empty, NaN, out of range, huge)
with a ``ValueError`` / ``TypeError`` that names the argument, raised by gseq itself: never a traceback
from inside torch. One row per (function, bad value); every public ``seed`` argument is in the table."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from gseq import analysis, data, io, layers, loader, models, plots, tasks, train
from gseq.checks import WrongTypeError

NAN = float("nan")
GSEQ = Path(data.__file__).resolve().parents[1]


def _graph() -> Data:
    return data.example_graph()


def _node_data(**change) -> Data:
    g = Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]), y=torch.tensor([0, 1, 0, 1]),
             train_mask=torch.tensor([True, True, False, False]), val_mask=torch.tensor([False, False, True, False]),
             test_mask=torch.tensor([False, False, False, True]))
    for key, value in change.items():
        setattr(g, key, value)
    return g


def _lstm() -> models.SequenceClassifier:
    return models.SequenceClassifier("lstm", 8)


def _signal(x=(5, 3, 2), y=(5, 3, 1), edge_index=None, edge_weight=None, fill=None) -> data.TemporalSignal:
    x, y = torch.randn(x), torch.randn(y)
    if fill is not None:
        x[-1, 0, 0] = fill
    return data.TemporalSignal(x, y, RING if edge_index is None else edge_index, edge_weight)


def _sequence(cell="gconv_gru", *, x=(2, 3, 3), **kw):
    seq = layers.GraphSequence(layers.GRAPH_CELLS[cell](3, 4) if cell == "tgcn" else layers.GRAPH_CELLS[cell](3, 4, 2))
    return seq(torch.randn(x), **{"edge_index": RING, **kw})


def _ring_graphs():
    return layers.GraphSequence(layers.GConvGRU(3, 4, 2)).graphs(RING, num_nodes=3)


def _forecast(**settings):
    return tasks.train_forecaster(**{"epochs": 1, "hidden": 4, "progress": False, "baselines": False, **settings})


RING = torch.tensor([[0, 1, 2], [1, 2, 0]])
OUT = torch.tensor([[0], [3]])  # node 3 of 3
VOCAB = data.CharVocab("abc")
LONG_IDS = torch.arange(100) % 3

CASES = [
    # (id, call, the argument the message starts with)
    # --- seeds: one check (gseq.checks.random_seed) behind every public seed argument
    ("synthetic_graph seed float", lambda: data.synthetic_graph(100, seed=1.5), "seed"),
    ("synthetic_graph seed str", lambda: data.synthetic_graph(100, seed="0"), "seed"),
    ("synthetic_graph seed huge", lambda: data.synthetic_graph(100, seed=2**70), "seed"),
    ("PalindromeDataset seed", lambda: data.PalindromeDataset(5, seed=1.5), "seed"),
    ("NeighborLoader.shard seed", lambda: loader.NeighborLoader(_graph(), [2]).shard(0, 1, seed=-1), "seed"),
    ("train_node_classifier seed", lambda: tasks.train_node_classifier(_node_data(), seed=1.5, epochs=1), "seed"),
    ("train_node_classifier_minibatch seed",
     lambda: tasks.train_node_classifier_minibatch(_node_data(), seed="0", epochs=1), "seed"),
    ("train_palindrome seed", lambda: tasks.train_palindrome("lstm", 5, seed=2**70, max_steps=1), "seed"),
    ("fit_palindrome seed", lambda: tasks.fit_palindrome(_lstm(), 5, seed=-1, max_steps=1), "seed"),
    ("train_palindrome_gcn seed", lambda: tasks.train_palindrome_gcn(5, 2, seed=1.5, max_steps=1), "seed"),
    ("train_char_lstm seed", lambda: tasks.train_char_lstm("book.txt", seed="0", steps=1), "seed"),
    ("SampleLogger seed", lambda: tasks.SampleLogger(VOCAB, seed=1.5), "seed"),
    ("hop_table seed", lambda: analysis.hop_table(seed=1.5), "seed"),
    ("Trainer seed", lambda: train.Trainer(torch.nn.Linear(2, 2), seed=2**40), "seed"),
    ("seed_everything", lambda: train.seed_everything("0"), "seed"),
    ("shard_indices seed", lambda: train.shard_indices(10, 0, 1, seed=1.5), "seed"),
    ("plot_hop_graph seed", lambda: plots.plot_hop_graph(_graph(), 0, seed=1.5), "seed"),
    # --- sizes refused before anything is allocated
    ("synthetic_graph huge", lambda: data.synthetic_graph(10**12), "num_nodes"),
    ("palindromes huge", lambda: data.palindromes(10**12, 5), "batch_size"),
    ("path_graph huge", lambda: data.path_graph(10**12), "num_nodes"),
    # --- data
    ("synthetic_graph power_law", lambda: data.synthetic_graph(1000, power_law=1.5), "power_law"),
    ("synthetic_graph avg_degree nan", lambda: data.synthetic_graph(100, avg_degree=NAN), "avg_degree"),
    ("hop_distances source", lambda: data.hop_distances(_graph(), 99), "source"),
    ("hops target", lambda: data.hops(_graph(), 0, -1), "target"),
    ("planetoid name", lambda: data.planetoid(5), "name"),
    ("planetoid normalize", lambda: data.planetoid("Cora", normalize="yes"), "normalize"),
    ("planetoid trust", lambda: data.planetoid("Cora", trust=1), "trust"),
    ("normalize_features list", lambda: data.normalize_features([[1.0]]), "x"),
    ("split_text float ids", lambda: data.split_text(torch.rand(100)), "ids"),
    ("split_text 2-D ids", lambda: data.split_text(torch.zeros(10, 10, dtype=torch.long)), "ids"),
    ("split_text nan", lambda: data.split_text(LONG_IDS, NAN), "val_fraction"),
    ("window_sampler float ids", lambda: data.window_sampler(torch.rand(100), 5), "ids"),
    ("window_sampler seq_length 0", lambda: data.window_sampler(LONG_IDS, 0), "seq_length"),
    ("eval_windows float ids", lambda: data.eval_windows(torch.rand(100), 5), "ids"),
    ("palindromes batch 0", lambda: data.palindromes(0, 5), "batch_size"),
    ("palindrome_graphs float x", lambda: data.palindrome_graphs(torch.rand(2, 5)), "x"),
    ("palindrome_graphs empty", lambda: data.palindrome_graphs(torch.zeros(0, 5, dtype=torch.long)), "x"),
    # --- temporal signals (each refused before training: train_forecaster loads and splits first)
    ("TemporalSignal T mismatch", lambda: _signal(y=(4, 3, 1)), "y"),
    ("TemporalSignal N mismatch", lambda: _signal(y=(5, 2, 1)), "y"),
    ("TemporalSignal NaN x", lambda: _signal(fill=NAN), "x"),
    ("TemporalSignal inf x", lambda: _signal(fill=float("inf")), "x"),
    ("TemporalSignal NaN y", lambda: data.TemporalSignal(torch.randn(5, 3, 2), torch.full((5, 3, 1), NAN), RING), "y"),
    ("TemporalSignal NaN edge_weight", lambda: _signal(edge_weight=torch.tensor([1.0, NAN, 1.0])), "edge_weight"),
    ("TemporalSignal edge out of range", lambda: _signal(edge_index=OUT), "edge_index"),
    ("TemporalSignal edge out of range, snapshot 4",
     lambda: _signal(edge_index=[RING] * 4 + [OUT]), "edge_index (snapshot 4)"),
    ("TemporalSignal negative edge, snapshot 1",
     lambda: _signal(edge_index=[RING, -RING] + [RING] * 3), "edge_index (snapshot 1)"),
    ("TemporalSignal inf edge_weight, snapshot 2",
     lambda: _signal(edge_index=[RING] * 5, edge_weight=[None, None, torch.tensor([1.0, float("inf"), 1.0]), None,
                                                         None]), "edge_weight (snapshot 2)"),
    ("TemporalSignal edge sets for T", lambda: _signal(edge_index=[RING] * 4), "edge_index"),
    ("lag_signal NaN series", lambda: data.lag_signal(torch.full((8, 3), NAN), RING), "series"),
    ("lag_signal lags >= T", lambda: data.lag_signal(torch.randn(4, 3), RING, lags=4), "lags"),
    ("lag_signal lags + horizon > T", lambda: data.lag_signal(torch.randn(6, 3), RING, lags=4, horizon=3), "lags"),
    ("lag_signal edge out of range, last step",  # a step no snapshot reads is still checked
     lambda: data.lag_signal(torch.randn(8, 3), [RING] * 7 + [OUT]), "edge_index (time step 7)"),
    ("split_by_time empty training", lambda: data.split_by_time(_signal(), 0.1), "train"),
    ("split_by_time empty fit", lambda: data.split_by_time(_signal(x=(9, 3, 2), y=(9, 3, 1)), 0.2, 0.5), "val"),
    ("split_by_time train 1", lambda: data.split_by_time(_signal(), 1.0), "train"),
    ("GraphSequence edge out of range, snapshot 1", lambda: _sequence("tgcn", edge_index=[RING, OUT]),
     "edge_index (snapshot 1)"),
    ("GraphSequence negative weight, snapshot 0",
     lambda: _sequence("dcrnn", edge_index=[RING, RING], edge_weight=[-torch.ones(3), None]),
     "edge_weight (snapshot 0)"),
    ("GraphSequence nodes", lambda: _sequence(x=(2, 4, 3), edge_index=_ring_graphs()), "x"),  # graphs of 3 nodes
    ("GraphSequence state shape", lambda: _sequence(state=torch.zeros(3, 5)), "state (h)"),
    ("GraphSequence state nodes", lambda: _sequence(state=torch.zeros(4, 4)), "state (h)"),
    ("GraphSequence LSTM state", lambda: _sequence("gconv_lstm", state=torch.zeros(3, 4)), "state"),
    ("GraphSequence LSTM cell state", lambda: _sequence("gconv_lstm", state=(torch.zeros(3, 4), torch.zeros(3, 5))),
     "state (c)"),
    ("GraphForecaster state", lambda: models.GraphForecaster("tgcn", 3, 4)(torch.randn(2, 3, 3), RING, torch.zeros(4)),
     "state (h)"),
    ("train_forecaster lags >= T", lambda: _forecast(lags=600), "lags"),
    ("train_forecaster no test", lambda: _forecast(train=1.0), "train"),
    ("train_forecaster empty training", lambda: _forecast(train=0.001), "train"),
    ("train_forecaster no validation", lambda: _forecast(val=0.0), "val"),
    ("train_forecaster empty fit", lambda: _forecast(train=0.002, val=0.9), "val"),
    # --- loader
    ("NeighborSampler float edge_index", lambda: loader.NeighborSampler(_graph().edge_index.float(), 6, [2]),
     "edge_index"),
    ("NeighborSampler edge out of range", lambda: loader.NeighborSampler(_graph().edge_index, 3, [2]), "edge_index"),
    ("NeighborSampler num_neighbors", lambda: loader.NeighborSampler(_graph().edge_index, 6, [-2]), "num_neighbors"),
    ("NeighborLoader batch_size 0", lambda: loader.NeighborLoader(_graph(), [2], batch_size=0), "batch_size"),
    ("NeighborLoader input_nodes", lambda: loader.NeighborLoader(_graph(), [2], input_nodes=torch.tensor([99])),
     "input_nodes"),
    ("NeighborLoader float input_nodes",
     lambda: loader.NeighborLoader(_graph(), [2], input_nodes=torch.tensor([0.5])), "input_nodes"),
    # --- models (GCNNet's own checks are tested beside it)
    ("CharLSTM vocab_size", lambda: models.CharLSTM(0), "vocab_size"),
    ("CharLSTM dropout nan", lambda: models.CharLSTM(5, dropout=NAN), "dropout"),
    ("char_lm_loss 1-D", lambda: models.char_lm_loss(models.CharLSTM(5, 8, 1), torch.zeros(4, dtype=torch.long)),
     "windows"),
    ("char_lm_loss one column",
     lambda: models.char_lm_loss(models.CharLSTM(5, 8, 1), torch.zeros(2, 1, dtype=torch.long)), "windows"),
    ("generate temperature nan", lambda: models.generate(models.CharLSTM(3, 8, 1), VOCAB, "a", 5, temperature=NAN),
     "temperature"),
    ("generate prompt", lambda: models.generate(models.CharLSTM(3, 8, 1), VOCAB, "z", 5), "prompt"),
    ("generate top_p", lambda: models.generate(models.CharLSTM(3, 8, 1), VOCAB, "a", 5, top_p=2.0), "top_p"),
    ("SequenceClassifier cell", lambda: models.SequenceClassifier("gru"), "cell"),
    ("SequenceClassifier float x", lambda: _lstm()(torch.rand(2, 5)), "x"),
    ("SequenceClassifier empty time", lambda: _lstm()(torch.zeros(2, 0, dtype=torch.long)), "x"),
    # --- tasks
    ("train_node_classifier epochs 0", lambda: tasks.train_node_classifier(_node_data(), epochs=0), "epochs"),
    ("train_node_classifier NaN x", lambda: tasks.train_node_classifier(_node_data(x=torch.full((4, 3), NAN)),
                                                                        epochs=1), "data.x"),
    ("train_node_classifier integer x",
     lambda: tasks.train_node_classifier(_node_data(x=torch.ones(4, 3, dtype=torch.long)), epochs=1), "data.x"),
    ("train_node_classifier float y",
     lambda: tasks.train_node_classifier(_node_data(y=torch.zeros(4)), epochs=1), "data.y"),
    ("train_node_classifier negative y",
     lambda: tasks.train_node_classifier(_node_data(y=torch.tensor([0, -1, 0, 1])), epochs=1), "data.y"),
    ("train_node_classifier empty train_mask",
     lambda: tasks.train_node_classifier(_node_data(train_mask=torch.zeros(4, dtype=torch.bool)), epochs=1),
     "data.train_mask"),
    ("train_node_classifier_minibatch NaN x",
     lambda: tasks.train_node_classifier_minibatch(_node_data(x=torch.full((4, 3), NAN)), epochs=1), "data.x"),
    ("train_palindrome cell", lambda: tasks.train_palindrome("gru", 5, max_steps=1), "cell"),
    ("palindrome_accuracy num 0", lambda: tasks.palindrome_accuracy(_lstm(), 5, 0), "num"),
    ("char_lm_evaluator float ids", lambda: tasks.char_lm_evaluator(torch.rand(100)), "ids"),
    ("SampleLogger every 0", lambda: tasks.SampleLogger(VOCAB, every=0), "every"),
    # --- analysis
    ("receptive_field k", lambda: analysis.receptive_field(_graph(), -1), "k"),
    ("influence node", lambda: analysis.influence(models.GCNNet(6, 2), _graph(), 99), "node"),
    ("influence_by_hop max_hops", lambda: analysis.influence_by_hop(models.GCNNet(6, 2), _graph(), 0, -1),
     "max_hops"),
    ("hop_table hidden", lambda: analysis.hop_table(hidden=0), "hidden"),
    ("depth_study seeds", lambda: analysis.depth_study("unused.csv", seeds=0), "seeds"),
    ("hidden_grad_norms float x",
     lambda: analysis.hidden_grad_norms(_lstm(), torch.rand(2, 5), torch.zeros(2, dtype=torch.long)), "x"),
    # --- train, io, plots
    ("Trainer lr nan", lambda: train.Trainer(torch.nn.Linear(2, 2), lr=NAN), "lr"),
    ("shard_indices rank", lambda: train.shard_indices(10, 3, 2), "rank"),
    ("resolve_device", lambda: train.resolve_device("tpu"), "device"),
    ("load_checkpoint folder", lambda: io.load_checkpoint(GSEQ), "checkpoint"),
    ("read_rows missing", lambda: plots.read_rows("no-such-file.csv"), "source"),
]


@pytest.mark.parametrize("call, name", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inputs_name_the_argument(call, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a call that got through would write here, not into the repo
    with pytest.raises((ValueError, TypeError, FileNotFoundError)) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    origin = Path(traceback.extract_tb(info.value.__traceback__)[-1].filename).resolve()
    assert GSEQ in origin.parents, f"raised inside {origin}, not by gseq: {message}"


def test_a_wrong_type_of_seed_is_both_a_type_error_and_a_value_error():
    with pytest.raises(WrongTypeError):
        data.synthetic_graph(100, seed=1.5)
