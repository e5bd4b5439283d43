"""The character language model task: evaluation, training through the Trainer, resume, loading."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gseq.data import CharVocab, eval_windows, load_text
from gseq.models import CharLSTM, generate
from gseq.tasks import char_lm_evaluator, load_char_lstm, train_char_lstm
from gseq.train import Trainer, load_checkpoint

TEXT = ("the cat sat on the mat. the dog sat on the log. a cat and a dog met on the mat and sat. "
        "then the dog ran to the log and the cat ran to the mat. ") * 6


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT)
    return path


def tiny_run(path, out, steps, resume=False, **kw):
    args = dict(steps=steps, out_dir=out, resume=resume, device="cpu", seq_length=12, batch_size=8, hidden_size=16,
                num_layers=2, eval_every=3, sample_every=4, checkpoint_every=3, seed=3, progress=False)
    args.update(kw)
    return train_char_lstm(path, **args)


# ---------------------------------------------------------------------- evaluation
def test_evaluator_stream_and_windows_match_references(device):
    torch.manual_seed(0)
    model = CharLSTM(6, hidden_size=5, num_layers=2).double().eval().to(device)
    ids = torch.randint(6, (201,), device=device)
    with torch.no_grad():
        logits, _ = model(ids[:-1].unsqueeze(0))  # the whole stream in one call
        stream = F.cross_entropy(logits[0], ids[1:]).item()
        w = eval_windows(ids, 10)
        wl, _ = model(w[:, :-1])
        window = F.cross_entropy(wl.reshape(-1, 6), w[:, 1:].reshape(-1)).item()
        one = char_lm_evaluator(ids, 10, segments=1, chunk=7, batch_size=3)(model)
        four = char_lm_evaluator(ids, 10, segments=4)(model)
    assert one["val_loss"] == pytest.approx(stream, rel=1e-9)
    assert one["val_acc"] == pytest.approx((logits[0].argmax(-1) == ids[1:]).double().mean().item())
    assert one["val_window_loss"] == pytest.approx(window, rel=1e-9) == four["val_window_loss"]
    assert four["val_loss"] == pytest.approx(stream, abs=0.05) and four["val_loss"] != one["val_loss"]


# ---------------------------------------------------------------------- training
def test_short_training_run_learns_the_book(tmp_path):
    vocab_size = len(set(load_text("book_EN_grimms_fairy_tails.txt", preprocess=True)))
    run = train_char_lstm("book_EN_grimms_fairy_tails.txt", preprocess=True, steps=250, batch_size=32,
                          hidden_size=64, num_layers=1, lr=1e-2, eval_every=250, sample_every=None,
                          checkpoint_every=None, device="cpu", progress=False, out_dir=tmp_path / "run")
    val = run["result"]["last_eval"]
    assert len(run["vocab"]) == vocab_size
    assert val["val_loss"] < math.log(vocab_size) - 1.0, val  # ln(38) = 3.64 nats at chance
    assert val["val_window_loss"] < math.log(vocab_size) - 1.0 and val["val_acc"] > 0.3
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000


def test_run_folder_checkpoint_holds_vocab_and_config_as_plain_data(text_file, tmp_path):
    run = tiny_run(text_file, tmp_path / "run", 8)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    extra = ckpt["extra"]
    assert extra["vocab"] == run["vocab"].chars == "".join(sorted(set(TEXT)))
    assert extra["model_config"] == run["model"].config and set(extra) == {"kind", "vocab", "model_config"}
    assert ckpt["config"]["seq_length"] == 12 and ckpt["config"]["derived"]["vocab"] == extra["vocab"]
    assert {"metrics.csv", "config.json", "checkpoint.pt", "samples.csv", "loss.png"} <= \
        {p.name for p in (tmp_path / "run").iterdir()}
    rows = (tmp_path / "run" / "samples.csv").read_text().splitlines()
    assert rows[0] == "step,length,temperature,text" and len(rows) == 1 + 2 * 2 * 3  # steps 4, 8; T 0, 1; 3 lengths
    model, vocab, info = load_char_lstm(tmp_path / "run" / "checkpoint.pt")
    assert vocab == run["vocab"] and info["step"] == 8 and not model.training
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert generate(model, vocab, "the ", 40, 0.8, generator=g1) == \
        generate(run["model"].cpu(), run["vocab"], "the ", 40, 0.8, generator=g2)


def test_resume_equals_one_uninterrupted_run(text_file, tmp_path, device):
    whole = tiny_run(text_file, tmp_path / "whole", 14, device=device)["model"].state_dict()
    tiny_run(text_file, tmp_path / "split", 6, device=device)
    resumed = tiny_run(text_file, tmp_path / "split", 14, resume=True, device=device)
    assert resumed["result"]["step"] == 14
    for key, value in whole.items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key
    a = (tmp_path / "whole" / "samples.csv").read_text()
    assert a == (tmp_path / "split" / "samples.csv").read_text()


def test_lr_decay_follows_the_step(text_file, tmp_path):
    run = tiny_run(text_file, None, 7, lr=1e-2, lr_decay=0.5, lr_decay_every=3, sample_every=None)
    assert run["trainer"].optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5 ** 2)


def test_target_stops_training(text_file):
    run = tiny_run(text_file, None, 30, target_loss=100.0, sample_every=None)
    assert run["result"]["step"] == 3 and run["result"]["stop_reason"] == "target"


# ---------------------------------------------------------------------- bad input, nothing lost
def test_bad_text_files_write_nothing(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("too short")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    for name, match in (("empty.txt", "empty"), ("short.txt", "seq_length"), ("bin.txt", "UTF-8")):
        with pytest.raises(ValueError, match=match):
            tiny_run(tmp_path / name, tmp_path / "out", 3)
    with pytest.raises(FileNotFoundError):
        tiny_run(tmp_path / "nope.txt", tmp_path / "out", 3)
    assert not (tmp_path / "out").exists()


def test_existing_checkpoint_is_never_lost(text_file, tmp_path):
    out = tmp_path / "run"
    tiny_run(text_file, out, 3)
    path = out / "checkpoint.pt"
    before = path.read_bytes()
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        tiny_run(text_file, out, 6)  # a fresh run does not overwrite it
    other = tmp_path / "other.txt"
    other.write_text(TEXT.upper())
    with pytest.raises(ValueError, match="vocab ' .acdeghlmnorst' there, ' .ACDEGHLMNORST' now"):
        tiny_run(other, out, 6, resume=True)
    with pytest.raises(ValueError, match="hidden_size 16 there, 32 now"):
        tiny_run(text_file, out, 6, resume=True, hidden_size=32)
    assert path.read_bytes() == before
    path.write_bytes(before[: len(before) // 2])  # corrupted (truncated) file
    with pytest.raises(ValueError, match="corrupted"):
        tiny_run(text_file, out, 6, resume=True)
    with pytest.raises(ValueError, match="corrupted"):
        load_char_lstm(path)
    assert path.read_bytes() == before[: len(before) // 2]
    with pytest.raises(FileNotFoundError):
        load_char_lstm(tmp_path / "missing.pt")


def test_load_rejects_other_checkpoints_and_vocabularies(text_file, tmp_path):
    tiny_run(text_file, tmp_path / "run", 3)
    with pytest.raises(ValueError, match="differs from the vocabulary"):
        load_char_lstm(tmp_path / "run" / "checkpoint.pt", vocab=CharVocab("abc"))
    trainer = Trainer(nn.Linear(2, 2), max_steps=1, progress=False, device="cpu", out_dir=tmp_path / "lin")
    trainer.fit(lambda m, b: m(b).sum(), lambda g: torch.randn(2, 2, generator=g))
    with pytest.raises(ValueError, match="not a gseq text checkpoint"):
        load_char_lstm(tmp_path / "lin" / "checkpoint.pt")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    ckpt["extra"]["vocab"] = ckpt["extra"]["vocab"][:-1]
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="inconsistent"):
        load_char_lstm(tmp_path / "bad.pt")
