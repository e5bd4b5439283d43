import json

import pytest

from gseq.cli import main


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_gcn_example_json(capsys):
    out = run_json(capsys, "gcn", "--dataset", "example", "--epochs", "30", "--seeds", "2", "--json")
    assert set(out) >= {"test_acc_mean", "test_acc_std", "per_seed", "seconds"}
    assert [r["seed"] for r in out["per_seed"]] == [0, 1]
    assert 0.0 <= out["test_acc_mean"] <= 1.0


def test_gcn_cora_text_output_and_out_folder(capsys, tmp_path, data_root):
    assert main(["gcn", "--epochs", "30", "--out", str(tmp_path), "--self-loop-weight", "learn"]) == 0
    text = capsys.readouterr().out
    assert "Cora: test accuracy" in text
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["test_acc_mean"] > 0.6  # 40 epochs of Kipf's setup already classify most of Cora
    for name in ("metrics.csv", "config.json", "curves.png", "checkpoint.pt"):
        assert (tmp_path / "seed_0" / name).is_file(), name


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


@pytest.mark.parametrize("argv", [["gcn", "--dataset", "nope"], ["gcn", "--self-loop-weight", "-2"],
                                  ["gcn", "--layers", "0"]])
def test_gcn_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_env_prints_versions(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "torch " in out and "torch_geometric" in out and "cuda available" in out
