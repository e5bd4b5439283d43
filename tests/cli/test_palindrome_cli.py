import csv
import json

import pytest

from gseq.cli import main



def test_train_prints_json(capsys):
    code = main(["palindrome", "train", "--cell", "rnn", "--length", "5", "--input", "onehot",
                 "--max-steps", "300", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"accuracy", "steps", "seconds"} <= set(result)
    assert result["accuracy"] >= 0.99 and 0 < result["steps"] <= 300 and result["stop_reason"] == "target"


def test_train_text_output_and_checkpoint(capsys, tmp_path):
    code = main(["palindrome", "train", "--cell", "lstm", "--length", "4", "--optimizer", "adam",
                 "--init", "kaiming_normal", "--forget-bias", "1", "--max-steps", "20", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "lstm T=4 seed=0: accuracy" in out and "steps" in out
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "metrics.csv").is_file()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["forget_bias"] == 1.0 and config["init"] == "kaiming_normal"
    assert config["trainer"]["optimizer"] == "adam"


@pytest.mark.parametrize("argv, match", [
    (["train", "--length", "1"], "length"),
    (["train", "--batch-size", "0"], "batch_size"),
    (["train", "--optimizer", "adagrad"], "optimizer"),
    (["train", "--cell", "rnn", "--forget-bias", "1"], "forget-bias"),
    (["sweep", "--lengths", "5:x", "--out", "unused"], "lengths"),
    (["sweep", "--lengths", "1:3", "--out", "unused"], "lengths"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, match):
    assert main(["palindrome", *argv, "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gseq palindrome: error:") and match in err


def test_sweep_writes_csv_and_figure_and_resumes(capsys, tmp_path):
    argv = ["palindrome", "sweep", "--cells", "rnn", "lstm", "--lengths", "3:5:2", "--input", "onehot",
            "--max-steps", "30", "--jobs", "1", "--out", str(tmp_path)]
    assert main([*argv, "--seeds", "2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 8
    assert list(rows[0]) == ["cell", "length", "seed", "accuracy", "steps", "seconds", "stop_reason"]
    assert {(r["cell"], int(r["length"]), int(r["seed"])) for r in rows} == {
        (c, n, s) for c in ("rnn", "lstm") for n in (3, 5) for s in (0, 1)}
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    capsys.readouterr()

    # an interrupted sweep: two finished runs lost from the CSV, one more seed asked for
    with open(tmp_path / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:6])
    assert main([*argv, "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "resuming: 6 runs" in out and "6 to go" in out
    again = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(again) == 12
    kept = {(r["cell"], r["length"], r["seed"]): r for r in again}
    for r in rows[:6]:  # finished runs are kept as they were, not run again
        assert kept[(r["cell"], r["length"], r["seed"])] == r

    # other settings on the same folder are refused
    assert main([*argv, "--seeds", "3", "--lr", "0.01"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_grads_writes_csv_and_figure(capsys, tmp_path):
    code = main(["palindrome", "grads", "--length", "6", "--cells", "rnn", "lstm", "--forget-bias", "1",
                 "--max-steps", "20", "--samples", "16", "--out", str(tmp_path)])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "grad_norms.csv")))
    assert len(rows) == 2 * 2 * 5
    assert {(r["cell"], r["stage"]) for r in rows} == {(c, s) for c in ("rnn", "lstm") for s in ("init", "trained")}
    assert all(float(r["grad_norm"]) > 0 for r in rows)
    summary = json.loads((tmp_path / "grad_norms.json").read_text())
    assert set(summary["runs"]) == {"rnn", "lstm"} and summary["forget_bias"] == 1.0
    assert (tmp_path / "grad_norms.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out
