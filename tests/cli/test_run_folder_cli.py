"""One run-folder policy for every command: what a new user hit (abbreviated flags, a folder of another
kind of run, stale files after --overwrite, a resume with nothing left to train) is refused or said plainly."""

import errno
import json
import os
from unittest import mock

import pytest

from gseq.cli import main

GCN = ["gcn", "--dataset", "karate", "--epochs", "3", "--device", "cpu", "--threads", "1"]
TEXT = ["text", "train", "--steps", "4", "--seq-length", "8", "--batch-size", "4", "--hidden-size", "8", "--num-layers",
        "1", "--eval-every", "2", "--sample-every", "0", "--no-progress", "--device", "cpu", "--threads", "1"]


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("The king is asleep. The queen is awake and the cat is asleep too.\n" * 12)
    return str(path)


def test_abbreviations_are_refused_and_gcn_runs_one_chosen_seed(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*GCN, "--seed=3x"])
    with pytest.raises(SystemExit):
        main(["gcn", "--see", "3"])  # not expanded to --seed or --seeds
    assert "unrecognized arguments: --see" in capsys.readouterr().err
    assert main([*GCN, "--seed", "3", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.startswith("seed 3: ")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["results.json", "seed_3"]
    assert main([*GCN, "--seed", "1", "--seeds", "2"]) == 2
    assert "--seed, --seeds: choose one" in capsys.readouterr().err


def test_overwrite_removes_the_old_runs_files_and_needs_out(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*GCN, "--seeds", "3", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    assert main([*GCN, "--seeds", "1", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "results.json", "seed_0"]
    assert len(json.loads((out / "results.json").read_text())["per_seed"]) == 1
    capsys.readouterr()
    assert main([*GCN, "--overwrite"]) == 2
    assert capsys.readouterr().err.strip() == "gseq gcn: error: --overwrite: needs --out, the run folder"


def test_a_folder_of_another_kind_of_run_is_refused_naming_it(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main([*TEXT, "--file", book, "--out", str(out)]) == 0
    before = sorted(p.name for p in out.iterdir())
    for argv in ([*GCN, "--out", str(out)], [*GCN, "--out", str(out), "--overwrite"],
                 ["palindrome", "train", "--max-steps", "1", "--out", str(out), "--overwrite"]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--out: '{out}' holds a text run, not a" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in out.iterdir()) == before


def test_resume_says_what_was_trained_or_that_nothing_was_left(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main([*TEXT, "--file", book, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*TEXT, "--file", book, "--out", str(out), "--resume", "--steps", "2"]) == 0
    assert "(resumed at step 4: nothing left to train; raise the step count to train more)" in capsys.readouterr().out
    assert main([*TEXT, "--file", book, "--out", str(out), "--resume", "--steps", "6"]) == 0
    assert "steps 6 (max_steps) (resumed at step 4, trained steps 5..6)" in capsys.readouterr().out
    assert main([*GCN, "--out", str(tmp_path / "g")]) == 0
    capsys.readouterr()
    assert main([*GCN, "--epochs", "5", "--out", str(tmp_path / "g"), "--resume"]) == 0
    assert "(resumed at epoch 3, trained epochs 4..5)" in capsys.readouterr().out


def test_messages_speak_in_flags(tmp_path, book, capsys):
    out = tmp_path / "run"
    assert main([*TEXT, "--file", book, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*TEXT, "--file", book, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gseq text train: error: --out: ") and "--resume" in err and "--overwrite" in err
    assert "resume=True" not in err and "out_dir" not in err
    assert main([*GCN, "--num-nodes", "5"]) == 2
    assert "--num-nodes: only applies to --dataset synthetic" in capsys.readouterr().err
    assert main([*GCN, "--dataset", "synthetic", "--num-nodes", "5"]) == 2
    assert "--num-nodes: a synthetic graph of average degree 10 needs more than 10 nodes" in capsys.readouterr().err


def test_a_json_file_is_not_a_checkpoint_and_a_full_disk_names_the_file(tmp_path, capsys):
    (tmp_path / "c.json").write_text('{"a": 1}')
    assert main(["text", "generate", "--checkpoint", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert "is not a checkpoint (it starts with '{\"a\"'" in err and "unsafe" not in err

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with mock.patch("os.fsync", full):
        assert main([*GCN, "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device: '" in err and str(tmp_path / "g") in err
    assert not [p for p in (tmp_path / "g").rglob(".*.tmp")]  # the temporary file went with the failed write
