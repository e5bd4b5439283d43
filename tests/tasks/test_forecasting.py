"""The forecasting task: baselines from the same split, the carried state, multi-step horizons, a graph per
snapshot, exact resume; and ``gseq temporal train`` on the shipped chickenpox."""

import contextlib
import csv
import io
import json

import pytest
import torch

from gseq.cli import main
from gseq.data import load_temporal_json, split_by_time
from gseq.models import GraphForecaster, LinearAR
from gseq.tasks.forecasting import Windows, train_forecaster

SMALL = dict(hidden=4, window=6, epochs=3, patience=None, progress=False, device="cpu")


def signal_file(tmp_path, T=40, N=5, dynamic=False):
    g = torch.Generator().manual_seed(0)
    series = torch.randn(T, N, generator=g).cumsum(0).mul(0.3).tolist()
    path = tmp_path / "signal.json"
    if dynamic:
        index = {str(t): [[t % N, (t + 1) % N], [(t + 2) % N, t % N]] for t in range(T)}
        weights = {str(t): [1.0, 2.0] for t in range(T)}
        path.write_text(json.dumps({"edge_mapping": {"edge_index": index, "edge_weight": weights}, "y": series}))
    else:
        path.write_text(json.dumps({"edges": [[i, (i + 1) % N] for i in range(N)], "X": series}))
    return path


def test_task_reports_the_model_and_both_baselines_on_one_split(tmp_path):
    path = signal_file(tmp_path)
    run = train_forecaster(file=str(path), **SMALL)
    signal = load_temporal_json(path, 4)
    fit, val, test = split_by_time(signal, 0.8, 0.1)
    assert run["split"] == {"train": len(fit), "val": len(val), "test": len(test)}
    n_train = len(fit) + len(val)
    ar = LinearAR.fit(signal.x[:n_train], signal.y[:n_train])  # the closed form, on all training snapshots
    want = torch.mean((ar(signal.x[n_train:]) - signal.y[n_train:]) ** 2)
    assert run["baselines"]["ar"]["test_mse"] == pytest.approx(float(want), rel=1e-5)
    pred = run["predictions"]
    assert pred.shape == signal.y.shape
    assert run["metrics"]["test_mse"] == pytest.approx(float(torch.mean((pred[n_train:] - signal.y[n_train:]) ** 2)))
    assert set(run["baselines"]["no_graph"]) >= {"test_mse", "test_mae"}


def test_training_starts_from_the_ar_model_of_the_fit_snapshots_and_may_keep_it(tmp_path):
    path = signal_file(tmp_path)
    run = train_forecaster(file=str(path), out_dir=str(tmp_path / "run"), baselines=False, **SMALL)
    signal = load_temporal_json(path, 4)
    fit, val, _ = split_by_time(signal, 0.8, 0.1)
    n_fit, n_train = len(fit), len(fit) + len(val)
    ar = LinearAR.fit(signal.x[:n_fit], signal.y[:n_fit])  # fitted without the validation snapshots
    start = float(torch.mean((ar(signal.x[n_fit:n_train]) - signal.y[n_fit:n_train]) ** 2))
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert int(rows[0]["step"]) == 0 and float(rows[0]["val_mse"]) == pytest.approx(start, rel=1e-5)
    assert run["metrics"]["best_val_mse"] == pytest.approx(min(float(r["val_mse"]) for r in rows))
    # a learning rate that only makes it worse: keep-best returns the AR model's forecasts
    worse = train_forecaster(file=str(path), baselines=False, **{**SMALL, "lr": 5.0})
    assert worse["result"]["best_step"] == 0 and worse["metrics"]["best_val_mse"] == pytest.approx(start, rel=1e-5)
    torch.testing.assert_close(worse["predictions"], ar(signal.x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="ar_init: .*ar_skip=True or ar_init=False"):
        train_forecaster(file=str(path), ar_skip=False, **SMALL)
    train_forecaster(file=str(path), ar_skip=False, ar_init=False, baselines=False, **SMALL)


def test_multi_step_horizon_and_a_graph_per_snapshot(tmp_path):
    run = train_forecaster(file=str(signal_file(tmp_path, dynamic=True)), horizon=3, model="dcrnn", **SMALL)
    assert {f"test_mse_h{h}" for h in (1, 2, 3)} <= set(run["metrics"])
    assert run["predictions"].shape[-1] == 3
    per_h = [run["metrics"][f"test_mse_h{h}"] for h in (1, 2, 3)]
    assert run["metrics"]["test_mse"] == pytest.approx(sum(per_h) / 3, rel=1e-5)


def test_windows_are_contiguous_blocks_by_rank():
    w = Windows(23, 4)
    assert list(w) == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 23)]
    assert w.shard(0, 2) == [(0, 4), (4, 8), (8, 12)] and w.shard(1, 2) == [(12, 16), (16, 20), (20, 23)]
    with pytest.raises(ValueError, match="window"):
        Windows(3, 4).shard(0, 2)


@pytest.mark.parametrize("model", ["dcrnn", "tgcn"])
def test_resume_continues_exactly(tmp_path, device, model):
    path = str(signal_file(tmp_path))
    settings = {**SMALL, "device": str(device), "model": model}
    whole = train_forecaster(file=path, out_dir=str(tmp_path / "a"), baselines=False, **settings)
    settings["epochs"] = 2
    train_forecaster(file=path, out_dir=str(tmp_path / "b"), baselines=False, **settings)
    settings["epochs"] = 3
    resumed = train_forecaster(file=path, out_dir=str(tmp_path / "b"), baselines=False, resume=True, **settings)
    torch.testing.assert_close(resumed["predictions"], whole["predictions"], rtol=0, atol=0)
    for a, b in zip(whole["model"].state_dict().values(), resumed["model"].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_cli_runs_bare_options_on_shipped_chickenpox(tmp_path):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["temporal", "train", "--epochs", "1", "--hidden", "4", "--window", "100", "--train", "0.2",
                     "--json", "--out", str(tmp_path / "run"), "--threads", "1", "--device", "cpu"])
    assert code == 0
    out = json.loads(printed.getvalue().strip().splitlines()[-1])
    assert {"test_mse", "test_mae"} <= set(out) and set(out["baselines"]) == {"ar", "no_graph"}
    assert all({"test_mse", "test_mae"} <= set(b) for b in out["baselines"].values())
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test_mse"] == pytest.approx(out["test_mse"])
    assert (tmp_path / "run" / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.parametrize("argv, match", [
    (["--lags", "600"], "lags"),
    (["--train", "0.001"], "--train"),
    (["--model", "gcn"], "--model"),
    (["--self-loop-weight", "much"], "--self-loop-weight"),
    (["--dataset", "pedalme", "--root", "/nonexistent"], "pedalme_london.json"),
    (["--model", "tgcn", "--self-loop-weight", "learn"], "--self-loop-weight: every node of the graph already has"),
    (["--model", "dcrnn", "--self-loop-weight", "2"], "--self-loop-weight: only tgcn"),
    (["--model", "tgcn", "--k", "3"], "--k: tgcn's GCN takes one hop"),
])
def test_cli_bad_input_is_one_line_naming_the_argument(argv, match, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GSEQ_DATA", raising=False)
    with contextlib.suppress(SystemExit):
        code = main(["temporal", "train", "--out", str(tmp_path / "r"), "--no-progress"] + argv)
        assert code == 2
    assert match in capsys.readouterr().err


def test_a_self_loop_weight_that_would_weigh_no_node_is_refused_and_weighs_every_node_once_loops_are_dropped(tmp_path):
    T, N = 30, 4
    series = torch.randn(T, N, generator=torch.Generator().manual_seed(1)).tolist()
    path = tmp_path / "loops.json"  # a ring with a self-loop on every node, as the published graphs have
    path.write_text(json.dumps({"edges": [[i, (i + 1) % N] for i in range(N)] + [[i, i] for i in range(N)],
                                "X": series}))
    settings = {**SMALL, "model": "tgcn", "self_loop_weight": "learn", "baselines": False}
    with pytest.raises(ValueError, match="self_loop_weight: every node of the graph already has a self-loop"):
        train_forecaster(file=str(path), **settings)
    run = train_forecaster(file=str(path), drop_self_loops=True, **settings)
    w = run["model"].sequence.cell.conv.self_loop_weight()
    assert float(w) != 1.0  # learned: with the loops gone it weighs every node, so it gets a gradient
    with pytest.raises(ValueError, match="K: tgcn"):
        train_forecaster(file=str(path), **{**SMALL, "model": "tgcn", "K": 3})
    with pytest.raises(ValueError, match="self_loop_weight: only tgcn"):
        train_forecaster(file=str(path), **{**SMALL, "model": "gconv_gru", "self_loop_weight": 0.5})
    model = GraphForecaster("tgcn", 4, 8, self_loop_weight=0.5)  # the model refuses it too, given the graph
    signal = load_temporal_json(path, 4)
    with pytest.raises(ValueError, match="self_loop_weight: every node"):
        model.graphs(signal.edge_index, num_nodes=N)
    model.graphs(signal.without_self_loops().edge_index, num_nodes=N)
    with pytest.raises(ValueError, match="self_loop_weight: only tgcn"):
        GraphForecaster("dcrnn", 4, 8, self_loop_weight="learn")
