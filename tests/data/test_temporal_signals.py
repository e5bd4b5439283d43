"""Temporal signals: windows of lags against PGT's construction, splits by time, the files' loaders and
their errors."""

import gzip
import json

import pytest
import torch

from gseq.data import TemporalSignal, lag_signal, load_temporal_json, split_by_time, temporal_dataset


def test_lags_match_pgt_construction():
    series = torch.arange(30.0).view(10, 3)
    s = lag_signal(series, torch.tensor([[0, 1], [1, 2]]), lags=4)
    # PGT: features[i] = series[i:i+lags].T, targets[i] = series[i+lags].T for i < T0 - lags
    assert s.num_steps == 6
    for i in range(6):
        torch.testing.assert_close(s.x[i], series[i:i + 4].t())
        torch.testing.assert_close(s.y[i, :, 0], series[i + 4])


def test_multi_step_horizon_and_dynamic_graph_of_the_last_observed_step():
    series = torch.randn(12, 4)
    edges = [torch.tensor([[t % 4], [(t + 1) % 4]]) for t in range(12)]
    s = lag_signal(series, edges, [torch.tensor([float(t + 1)]) for t in range(12)], lags=3, horizon=4)
    assert s.num_steps == 12 - 3 - 4 + 1 and s.dynamic
    for t in range(s.num_steps):
        torch.testing.assert_close(s.y[t], series[t + 3:t + 7].t())
        assert torch.equal(s.edge_index[t], edges[t + 2]) and float(s.edge_weight[t]) == t + 3


def test_split_by_time_keeps_order_and_sizes():
    s = lag_signal(torch.randn(25, 2), torch.zeros(2, 0, dtype=torch.long), lags=4)  # 21 snapshots
    train, val, test = split_by_time(s, 0.8, 0.1)
    assert (len(train), len(val), len(test)) == (15, 1, 5)
    torch.testing.assert_close(torch.cat([train.x, val.x, test.x]), s.x)
    train, val, test = split_by_time(s, 0.2)  # PGT's tutorial split: int(0.2 * 21) = 4 snapshots train
    assert val is None and (len(train), len(test)) == (4, 17)
    train, val, test = split_by_time(s, 0.2, 0.1)  # a tenth of 4 rounds down to 0: one snapshot validates
    assert (len(train), len(val), len(test)) == (3, 1, 17)


def test_chickenpox_ships_and_matches_the_published_file():
    s = temporal_dataset("chickenpox")
    assert (s.num_steps, s.num_nodes, s.x.size(2), s.edge_index.size(1)) == (517, 20, 4, 102)
    assert s.edge_weight is None  # unweighted, as published


def test_a_file_in_the_static_layout_loads_with_each_weight_kind(tmp_path):
    X = [[float(t * 3 + i) for i in range(3)] for t in range(8)]
    path = tmp_path / "g.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"edges": [[0, 1], [1, 2]], "weights": [2.0, 8.0], "X": X}, f)
    assert load_temporal_json(path, 2).edge_weight.tolist() == [0.25, 1.0]  # similarity: / max
    assert load_temporal_json(path, 2, edge_weights="raw").edge_weight.tolist() == [2.0, 8.0]
    assert load_temporal_json(path, 2, edge_weights="none").edge_weight is None
    d = torch.tensor([2.0, 8.0])
    torch.testing.assert_close(load_temporal_json(path, 2, edge_weights="distance").edge_weight,
                               torch.exp(-(d / d.std()) ** 2))


BAD_FILES = [
    ({"X": [[1.0, 2.0]] * 6}, "missing key 'edges'"),
    ({"edges": [[0, 1]]}, r"missing key 'X' \(or 'FX'\)"),
    ({"edges": [[0, 1, 2]], "X": [[1.0, 2.0]] * 6}, "'edges' must be a list of"),
    ({"edges": [[0, 5]], "X": [[1.0, 2.0]] * 6}, r"edge_index: node ids must lie in \[0, 2\)"),
    ({"edges": [[0, 1]], "weights": [1.0, 2.0], "X": [[1.0, 2.0]] * 6}, "'weights' has 2 entries for 1 edges"),
    ({"edges": [[0, 1]], "X": [[1.0, 2.0], [1.0]]}, "'X' is not a rectangular array"),
    ({"edges": [[0, 1]], "X": [[1.0, 2.0]] * 3}, "lags: 4 lags"),
    ({"edges": [[0, 1]], "X": [[1.0, float("nan")]] * 6}, "key 'X': the signal holds NaN"),
    ({"edge_mapping": {"edge_index": {"0": [[0, 1]]}}, "y": [[1.0, 2.0]] * 6}, "no edges for time step 1"),
]


@pytest.mark.parametrize("content, match", BAD_FILES)
def test_malformed_files_name_the_key(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
        load_temporal_json(path, 4)


BAD_SIGNALS = [
    (lambda: TemporalSignal(torch.randn(5, 3, 2), torch.randn(4, 3, 1), torch.zeros(2, 0, dtype=torch.long)),
     "y: targets"),
    (lambda: TemporalSignal(torch.randn(5, 3, 2), torch.randn(5, 2, 1), torch.zeros(2, 0, dtype=torch.long)),
     "y: targets"),
    (lambda: TemporalSignal(torch.full((5, 3, 2), float("inf")), torch.randn(5, 3, 1),
                            torch.zeros(2, 0, dtype=torch.long)), "x: the signal holds NaN or inf"),
    (lambda: TemporalSignal(torch.randn(2, 3, 2), torch.randn(2, 3, 1), [torch.tensor([[0], [1]]),
                                                                          torch.tensor([[0], [3]])]),
     r"edge_index \(snapshot 1\)"),
    (lambda: split_by_time(lag_signal(torch.randn(8, 2), torch.zeros(2, 0, dtype=torch.long), lags=4), 0.1),
     "train: a ratio of 0.1 leaves 0 training"),
    (lambda: split_by_time(lag_signal(torch.randn(9, 2), torch.zeros(2, 0, dtype=torch.long), lags=4), 0.2, 0.1),
     "val: 1 of the 1 training snapshots"),
    (lambda: temporal_dataset("pedalme", root="/nonexistent"), "pedalme_london.json"),
]


@pytest.mark.parametrize("call, match", BAD_SIGNALS)
def test_bad_signals_name_the_argument(call, match, monkeypatch):
    monkeypatch.delenv("GSEQ_DATA", raising=False)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        call()


def test_without_self_loops_drops_the_loops_and_their_weights_on_static_and_changing_graphs():
    ei = torch.tensor([[0, 1, 1, 2, 2], [0, 2, 1, 0, 2]])
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    x, y = torch.randn(3, 3, 2), torch.randn(3, 3, 1)
    static = TemporalSignal(x, y, ei, w).without_self_loops()
    assert static.edge_index.tolist() == [[1, 2], [2, 0]] and static.edge_weight.tolist() == [2.0, 4.0]
    changing = TemporalSignal(x, y, [ei, ei[:, :2], ei[:, 3:]], [w, w[:2], None]).without_self_loops()
    assert [e.tolist() for e in changing.edge_index] == [[[1, 2], [2, 0]], [[1], [2]], [[2], [0]]]
    assert changing.edge_weight[0].tolist() == [2.0, 4.0] and changing.edge_weight[1].tolist() == [2.0]
    assert changing.edge_weight[2] is None
    assert torch.equal(changing.x, x) and torch.equal(changing.y, y)
