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
    (["train", "--length", "1"], "argument --length"),
    (["train", "--length", "1e9"], "argument --length"),
    (["train", "--batch-size", "0"], "argument --batch-size"),
    (["train", "--optimizer", "adagrad"], "argument --optimizer"),
    (["train", "--lr", "1e300"], "argument --lr"),
    (["train", "--lr", "nan"], "argument --lr"),
    (["train", "--clip-grad-norm", "-1"], "argument --clip-grad-norm"),
    (["grads", "--samples", "0"], "argument --samples"),
])
def test_refused_flags_name_the_flag_before_anything_runs(capsys, argv, match):
    with pytest.raises(SystemExit) as exc:
        main(["palindrome", *argv, "--max-steps", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"gseq palindrome {argv[0]}: error: {match}")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, match", [
    (["train", "--cell", "rnn", "--forget-bias", "1"], "--forget-bias"),
    (["train", "--length", "1000000000"], "--length: 1000000000 steps"),  # refused before any allocation
    (["sweep", "--lengths", "5", "1000000000", "--out", "{tmp}"], "--lengths: 1000000000 steps"),
    (["grads", "--length", "1000000000", "--out", "{tmp}"], "--length: 1000000000 steps"),
    (["train", "--device", "mps"], "--device: 'mps'"),
    (["train", "--device", "cuda:3"], "--device: 'cuda:3'"),
    (["train", "--resume"], "--resume: needs --out"),
    (["train", "--resume", "--out", "{tmp}"], "holds no checkpoint"),
    (["train", "--resume", "--overwrite", "--out", "{tmp}"], "choose one"),
    (["sweep", "--lengths", "5:x", "--out", "{tmp}"], "lengths"),
    (["sweep", "--lengths", "1:3", "--out", "{tmp}"], "lengths"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, argv, match):
    argv = [a.replace("{tmp}", str(tmp_path / "run")) for a in argv]
    assert main(["palindrome", *argv, "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gseq palindrome {argv[0]}: error:") and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "results.csv").exists()


def test_a_trained_run_is_never_overwritten_silently(capsys, tmp_path):
    argv = ["palindrome", "train", "--cell", "rnn", "--length", "4", "--input", "onehot", "--max-steps", "5",
            "--hidden-size", "8", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for name in ("checkpoint.pt", "metrics.csv", "config.json"):  # every file written is announced
        assert str(tmp_path / name) in out
    before = (tmp_path / "checkpoint.pt").read_bytes()
    assert main(argv + ["--seed", "1"]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert main(argv + ["--seed", "1", "--overwrite"]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["seed"] == 1


def test_resume_with_other_settings_is_refused_naming_each(capsys, tmp_path):
    argv = ["palindrome", "train", "--cell", "lstm", "--length", "4", "--input", "onehot", "--hidden-size", "8",
            "--eval-every", "5", "--out", str(tmp_path)]
    assert main(argv + ["--max-steps", "5"]) == 0
    config = (tmp_path / "config.json").read_text()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main([*argv[:5], "6", *argv[6:], "--max-steps", "10", "--lr", "0.01", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "length 4 there, 6 now" in err and "lr 0.001 there, 0.01 now" in err
    assert (tmp_path / "config.json").read_text() == config and (tmp_path / "checkpoint.pt").read_bytes() == before
    # more steps is what resuming is for: allowed, and config.json says what ran
    assert main(argv + ["--max-steps", "10", "--resume"]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["max_steps"] == 10


def test_a_loss_that_becomes_nan_stops_with_one_line(capsys, tmp_path, monkeypatch):
    from gseq.tasks import palindrome

    calls = []
    loss = palindrome._sequence_loss

    def poisoned(model, batch):
        calls.append(1)
        out = loss(model, batch)
        return {**out, "loss": out["loss"] * float("nan")} if len(calls) == 3 else out

    monkeypatch.setattr(palindrome, "_sequence_loss", poisoned)
    code = main(["palindrome", "train", "--cell", "rnn", "--length", "4", "--hidden-size", "8", "--max-steps", "50",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("gseq palindrome train: error: loss: became nan at step 3")
    assert len(err.strip().splitlines()) == 1 and len(calls) == 3  # training stopped there


def test_grads_writes_a_default_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["palindrome", "grads", "--length", "4", "--cells", "rnn", "--max-steps", "2", "--samples", "4",
                 "--hidden-size", "8"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "runs" / "palindrome-grads"
    for name in ("grad_norms.csv", "grad_norms.json", "grad_norms.png"):
        assert (folder / name).is_file() and f"runs/palindrome-grads/{name}" in out


def test_a_truncated_sweep_csv_is_named(capsys, tmp_path):
    argv = ["palindrome", "sweep", "--cells", "rnn", "--lengths", "3", "--seeds", "2", "--input", "onehot",
            "--max-steps", "5", "--hidden-size", "8", "--jobs", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    text = (tmp_path / "results.csv").read_text()
    (tmp_path / "results.csv").write_text(text[: text.rindex(",")])  # the last line cut short
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "results.csv: line 3 is incomplete" in err and "NoneType" not in err


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
