import contextlib
import csv
import io
import json
import shutil

import pytest
import torch

from gseq.cli import main

TEXT = "Sleeping beauty is asleep. The king is asleep. The queen is awake and the cat is asleep too.\n" * 8
SMALL = ["--seq-length", "10", "--batch-size", "8", "--hidden-size", "16", "--num-layers", "1", "--eval-every", "5",
         "--sample-every", "5", "--checkpoint-every", "5", "--no-progress", "--quiet-samples", "--device", "cpu",
         "--threads", "1"]



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small training run shared by the tests of this file (which only read it)."""
    folder = tmp_path_factory.mktemp("text_cli")
    book = folder / "book.txt"
    book.write_text(TEXT)
    out = folder / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["text", "train", "--file", str(book), "--steps", "10", "--out", str(out), "--preprocess"]
                    + SMALL) == 0
    return book, out, printed.getvalue()


@pytest.fixture
def run_dir(trained):
    return trained[:2]


def test_train_writes_the_run_folder_and_resumes(trained, tmp_path, capsys):
    book, out, printed = trained
    assert "steps 10 (max_steps)" in printed and "val_loss" in printed
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [5, 10] and {"loss", "val_loss", "val_acc", "acc"} <= set(rows[0])
    samples = list(csv.DictReader(open(out / "samples.csv", encoding="utf-8")))
    assert {int(r["length"]) for r in samples} == {20, 30, 60}
    assert all(len(r["text"]) == int(r["length"]) for r in samples)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    out = shutil.copytree(out, tmp_path / "copy")
    assert main(["text", "train", "--file", str(book), "--steps", "15", "--out", str(out), "--preprocess", "--resume"]
                + SMALL) == 0
    assert "steps 15" in capsys.readouterr().out
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 15


def test_generate_from_the_checkpoint_alone(run_dir, capsys):
    _, out = run_dir
    capsys.readouterr()
    args = ["text", "generate", "--checkpoint", str(out / "checkpoint.pt"), "--length", "40", "--seed", "3",
            "--num-samples", "3", "--temperature", "0.8", "--top-k", "5", "--top-p", "0.9"]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 3 and all(len(line) == 40 for line in first)
    assert main(args) == 0 and capsys.readouterr().out.splitlines() == first  # same seed, same text
    # the checkpoint was trained on preprocessed text: the prompt gets the same preprocessing
    assert main(["text", "generate", "--checkpoint", str(out / "checkpoint.pt"), "--prompt", "Sleeping Beauty, ",
                 "--length", "25", "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("sleeping beauty ") and len(captured.out.strip()) == len("sleeping beauty ") + 25
    assert "preprocessed" in captured.err


@pytest.mark.parametrize("extra", [
    ["--temperature", "-1"], ["--temperature", "nan"], ["--top-p", "0"], ["--top-p", "1.5"], ["--top-k", "0"],
    ["--length", "-5"], ["--length", "1e12"], ["--num-samples", "1e9"], ["--num-samples", "0"],
])
def test_generate_refused_flags_name_the_flag(run_dir, capsys, extra):
    _, out = run_dir
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["text", "generate", "--checkpoint", str(out / "checkpoint.pt")] + extra)
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"gseq text generate: error: argument {extra[0]}")


@pytest.mark.parametrize("extra, message", [
    (["--prompt", "zebra"], "not in the vocabulary"),
    (["--length", "1000000000000"], "--length, --num-samples: 1,000,000,000,000 characters"),
    (["--num-samples", "1000000000"], "--length, --num-samples: 200 characters x 1,000,000,000 samples"),
    (["--device", "mps"], "--device: 'mps'"),
])
def test_generate_bad_arguments_exit_2(run_dir, capsys, extra, message):
    _, out = run_dir
    capsys.readouterr()
    assert main(["text", "generate", "--checkpoint", str(out / "checkpoint.pt")] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("gseq text generate: error:") and message in err and len(err.strip().splitlines()) == 1


def test_skip_unknown_prompt_characters(run_dir, capsys):
    _, out = run_dir
    capsys.readouterr()
    # 'x' survives the preprocessing but never occurs in the training text
    assert main(["text", "generate", "--checkpoint", str(out / "checkpoint.pt"), "--prompt", "the x", "--length", "5",
                 "--temperature", "0", "--skip-unknown"]) == 0
    assert capsys.readouterr().out.startswith("the x")


def test_bad_files_and_checkpoints_exit_2(tmp_path, run_dir, capsys):
    book, out = run_dir
    ckpt = out / "checkpoint.pt"
    before = ckpt.read_bytes()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("na\xefve caf\xe9 " .encode("latin-1") * 20)
    (tmp_path / "short.txt").write_text("tiny")
    (tmp_path / "other.txt").write_text(TEXT.replace("e", "3"))
    cases = [
        (["text", "train", "--file", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o1")], "no text file"),
        (["text", "train", "--file", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o2")], "empty"),
        (["text", "train", "--file", str(tmp_path / "latin1.txt"), "--out", str(tmp_path / "o3")], "not UTF-8"),
        (["text", "train", "--file", str(tmp_path / "short.txt"), "--out", str(tmp_path / "o4")], "--seq-length + 1"),
        (["text", "train", "--file", str(book), "--out", str(out), "--preprocess"], "already holds a checkpoint"),
        (["text", "train", "--file", str(tmp_path / "other.txt"), "--out", str(out), "--preprocess", "--resume"],
         "other settings (--file "),
        (["text", "generate", "--checkpoint", str(tmp_path / "none.pt")], "no file"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(args + (SMALL if args[1] == "train" else [])) == 2, args
        assert message in capsys.readouterr().err, args
    assert ckpt.read_bytes() == before
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))
    (tmp_path / "broken.pt").write_bytes(before[:100])
    assert main(["text", "generate", "--checkpoint", str(tmp_path / "broken.pt")]) == 2
    assert "corrupted" in capsys.readouterr().err


def test_a_malicious_checkpoint_is_refused_without_advice_to_load_it_anyway(tmp_path, capsys):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "gseq-trainer-1", "model": Payload()}, tmp_path / "evil.pt")
    assert main(["text", "generate", "--checkpoint", str(tmp_path / "evil.pt")]) == 2
    err = capsys.readouterr().err
    assert "is not a gseq checkpoint and may be unsafe" in err and "system" in err
    assert "weights_only" not in err and "will likely succeed" not in err and len(err.strip().splitlines()) == 1


def test_train_without_file_uses_the_shipped_book_offline(tmp_path, capsys, monkeypatch):
    """``gseq text train`` with no --file and no GSEQ_DATA: the book shipped with gseq. With sampling off, no
    samples.csv is written, and none is announced."""
    monkeypatch.delenv("GSEQ_DATA", raising=False)
    tiny = ["--seq-length", "8", "--batch-size", "4", "--hidden-size", "8", "--num-layers", "1", "--eval-every", "2",
            "--checkpoint-every", "2", "--no-progress", "--device", "cpu", "--threads", "1"]
    assert main(["text", "train", "--steps", "2", "--sample-every", "0", "--out", str(tmp_path)] + tiny) == 0
    out = capsys.readouterr().out
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["task"] == "text" and config["file"] == "book_EN_grimms_fairy_tails.txt"
    assert config["derived"]["characters"] > 500_000 and config["seq_length"] == 8 and config["trainer"]["lr"] == 2e-3
    wrote = next(line for line in out.splitlines() if line.startswith("wrote "))
    for name in ("checkpoint.pt", "metrics.csv", "config.json", "loss.png"):
        assert str(tmp_path / name) in wrote
    assert "samples.csv" not in wrote and not (tmp_path / "samples.csv").exists()


def test_resume_with_changed_settings_is_refused(trained, tmp_path, capsys):
    book, out, _ = trained
    out = shutil.copytree(out, tmp_path / "copy")
    config = (out / "config.json").read_text()
    capsys.readouterr()
    assert main(["text", "train", "--file", str(book), "--steps", "15", "--out", str(out), "--preprocess", "--resume",
                 *SMALL, "--lr", "0.5", "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.002 there, 0.5 now" in err and "--seed 0 there, 7 now" in err and "only --steps, --device" in err
    assert (out / "config.json").read_text() == config  # config.json never disagrees with what ran


@pytest.mark.parametrize("extra, message", [
    (["--sample-every", "-1"], "argument --sample-every"),
    (["--weight-decay", "1"], "unrecognized arguments"),
    (["--lr", "1e300"], "argument --lr"),
    (["--dropout", "1"], "argument --dropout"),
])
def test_train_refused_flags_name_the_flag(capsys, tmp_path, extra, message):
    with pytest.raises(SystemExit):
        main(["text", "train", "--out", str(tmp_path), *extra])
    assert message in capsys.readouterr().err


def test_unwritable_out_is_refused_before_training(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "run", "cannot create")):
        assert main(["text", "train", "--out", str(out), "--steps", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gseq text train: error: --out:") and message in err and len(err.strip().splitlines()) == 1
