"""``gseq gcn --batch-size ... --num-neighbors ...`` and ``--dataset synthetic``."""

import json

import pytest

from gseq.cli import main


def test_minibatch_on_karate_json(capsys):
    assert main(["gcn", "--dataset", "karate", "--batch-size", "2", "--num-neighbors", "3", "-1",
                 "--epochs", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["batch_size"] == 2 and out["num_neighbors"] == [3, -1]
    assert 0.0 <= out["test_acc_mean"] <= 1.0


def test_synthetic_minibatch_text_and_default_fan_out(capsys):
    assert main(["gcn", "--dataset", "synthetic", "--num-nodes", "500", "--batch-size", "32", "--epochs", "2",
                 "--hidden", "8"]) == 0
    text = capsys.readouterr().out
    assert "synthetic: test accuracy" in text and "mini-batch 32 with [10, 10] neighbours" in text


def test_synthetic_full_batch(capsys):
    assert main(["gcn", "--dataset", "synthetic", "--num-nodes", "300", "--epochs", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["batch_size"] is None and len(out["per_seed"]) == 1


@pytest.mark.parametrize("argv,message", [
    (["gcn", "--dataset", "karate", "--num-neighbors", "3", "3"], "--batch-size"),
    (["gcn", "--dataset", "karate", "--batch-size", "4", "--num-neighbors", "3"], "one fan-out per layer"),
    (["gcn", "--dataset", "karate", "--num-nodes", "50"], "--num-nodes"),
])
def test_inconsistent_options_are_refused(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["gcn", "--batch-size", "0"], ["gcn", "--batch-size", "4", "--num-neighbors", "0"],
                                  ["gcn", "--batch-size", "4", "--num-neighbors", "-2"],
                                  ["gcn", "--dataset", "synthetic", "--num-nodes", "0"]])
def test_bad_values_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
