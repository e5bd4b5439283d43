import json

import pytest
import torch

from gseq.cli import main


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_gcn_example_json(capsys):
    out = run_json(capsys, "gcn", "--dataset", "example", "--epochs", "30", "--seeds", "2", "--json")
    assert set(out) >= {"test_acc_mean", "test_acc_std", "per_seed", "seconds"}
    assert [r["seed"] for r in out["per_seed"]] == [0, 1]
    assert 0.0 <= out["test_acc_mean"] <= 1.0


def test_gcn_cora_text_output_and_out_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("GSEQ_DATA", raising=False)  # Cora ships with gseq: no data folder needed
    assert main(["gcn", "--epochs", "30", "--out", str(tmp_path), "--self-loop-weight", "learn"]) == 0
    text = capsys.readouterr().out
    assert "Cora: test accuracy" in text
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["test_acc_mean"] > 0.6  # 40 epochs of Kipf's setup already classify most of Cora
    wrote = next(line for line in text.splitlines() if line.startswith("wrote "))
    assert str(tmp_path / "results.json") in wrote
    for name in ("metrics.csv", "config.json", "curves.png", "checkpoint.pt"):
        assert (tmp_path / "seed_0" / name).is_file(), name
        assert str(tmp_path / "seed_0" / name) in wrote, name
    # a second run into the same folder is refused, and replaces it only with --overwrite
    before = (tmp_path / "seed_0" / "checkpoint.pt").read_bytes()
    assert main(["gcn", "--epochs", "3", "--out", str(tmp_path)]) == 2
    assert "already holds a gcn run" in capsys.readouterr().err
    assert (tmp_path / "seed_0" / "checkpoint.pt").read_bytes() == before
    assert main(["gcn", "--epochs", "3", "--out", str(tmp_path), "--overwrite"]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["epochs"] == 3


def test_gcn_karate_runs_without_files(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GSEQ_DATA", str(tmp_path / "empty"))
    out = run_json(capsys, "gcn", "--dataset", "karate", "--epochs", "20", "--json")
    assert len(out["per_seed"]) == 1


def test_gcn_missing_files_is_a_clear_error(capsys, tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["gcn", "--dataset", "citeseer", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ind.citeseer.x" in err and str(tmp_path) in err and "offline" in err


@pytest.mark.parametrize("argv, flag", [
    (["--dataset", "nope"], "--dataset"), (["--self-loop-weight", "-2"], "--self-loop-weight"),
    (["--layers", "0"], "--layers"), (["--lr", "1e300"], "--lr"), (["--lr", "0"], "--lr"),
    (["--weight-decay", "nan"], "--weight-decay"), (["--weight-decay", "-1"], "--weight-decay"),
    (["--dropout", "1.5"], "--dropout"), (["--epochs", "1e9"], "--epochs"),
])
def test_gcn_bad_arguments_exit_2_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gcn", *argv])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"gseq gcn: error: argument {flag}")


def test_gcn_refused_devices_and_folders_are_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    cases = [(["--device", "mps"], "--device: 'mps' is not available"),
             (["--device", f"cuda:{torch.cuda.device_count()}"], f"--device: 'cuda:{torch.cuda.device_count()}'"),
             (["--device", "tpu:x"], "--device: 'tpu:x' is not a device"),
             (["--out", str(tmp_path / "file")], "--out:"),
             (["--out", str(tmp_path / "file" / "sub")], "cannot be written (Not a directory)")]
    for argv, message in cases:
        assert main(["gcn", "--dataset", "example", "--epochs", "1", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("gseq gcn: error: ") and message in err and len(err.strip().splitlines()) == 1, err


def test_gcn_device_cuda_runs_where_cuda_is_and_is_refused_in_one_line_where_not(capsys):
    code = main(["gcn", "--dataset", "example", "--epochs", "2", "--device", "cuda"])
    out, err = capsys.readouterr()
    if torch.cuda.is_available():
        assert code == 0 and "test accuracy" in out, err
    else:
        assert code == 2 and err.strip() == ("gseq gcn: error: --device: 'cuda' was asked for but CUDA is not "
                                             "available here; use 'auto' or 'cpu'")


def test_gcn_trust_warns_and_a_damaged_file_is_one_line(capsys, tmp_path, data_root):
    import shutil

    shutil.copytree(data_root / "planetoid" / "Cora", tmp_path / "Cora")
    path = tmp_path / "Cora" / "raw" / "ind.cora.graph"
    path.chmod(0o644)
    path.write_bytes(b"\x80\x04\x95 damaged")
    assert main(["gcn", "--root", str(tmp_path), "--trust", "--epochs", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("gseq gcn: warning: --trust unpickles") and "runs code" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("gseq gcn: error: root:") and "ind.cora.graph" in lines[1]


def test_env_prints_versions(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "torch " in out and "torch_geometric" in out and "cuda available" in out


def test_gcn_model_gcnii_takes_its_defaults_and_refuses_gcn_only_flags(capsys):
    assert main(["gcn", "--model", "gcnii", "--dataset", "example", "--layers", "3", "--hidden", "8", "--epochs", "5",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "gcnii" and summary["layers"] == 3 and summary["hidden"] == 8
    assert summary["dropout"] == 0.6 and summary["weight_decay"] == 0.01  # GCNII's settings where none was given
    assert len(summary["per_seed"][0]["self_loop_weights"]) == 3
    for argv, message in ([["--alpha", "0.2"], "--alpha: only applies to --model gcnii"],
                          [["--model", "gcnii", "--batch-size", "8"], "--batch-size: --model gcnii trains full-batch"]):
        assert main(["gcn", "--dataset", "example", *argv]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses the value itself
        main(["gcn", "--model", "gcnii", "--alpha", "1.5"])
    assert "--alpha: must lie in [0, 1], got 1.5" in capsys.readouterr().err
