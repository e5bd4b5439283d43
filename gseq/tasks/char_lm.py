"""The character language model task: train a :class:`~gseq.models.CharLSTM` on a text file through the
shared :class:`~gseq.train.Trainer` (:func:`train_char_lstm`: windows of the text, :func:`~gseq.models.char_lm_loss`,
the held-out evaluation of :func:`char_lm_evaluator`, the :class:`SampleLogger`, learning-rate decay, targets
and the loss figure as callbacks), and rebuild a trained model from its checkpoint alone
(:func:`load_char_lstm`: the stored config and vocabulary).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import in_range, positive_int, random_seed
from ..data.text import CharVocab, eval_windows, load_text, split_text, window_sampler
from ..io import load_checkpoint, read_verified_text, write_csv
from ..models.char_lstm import CharLSTM, char_lm_loss
from ..models.generate import generate
from ..train import CHECKPOINT_FORMAT, Mean, Trainer, check_model_state, rank_and_world_size, resolve_device

__all__ = ["train_char_lstm", "load_char_lstm", "char_lm_evaluator", "SampleLogger", "TEXT_CHECKPOINT_KIND"]


def char_lm_evaluator(ids: Tensor, seq_length: int = 30, *, segments: int = 8, chunk: int = 2048,
                      batch_size: int = 1024, prefix: str = "val"):
    r"""``evaluate(model) -> dict`` on held-out text, measured two ways (nats per character, accuracy of the
    argmax prediction):

    * ``{prefix}_loss``, ``{prefix}_acc``: the text read as a stream with the LSTM state carried from
      character to character, as a language model is scored (and as char-rnn reports its validation
      loss) and as :func:`~gseq.models.generate` uses the model. The text is cut into ``segments``
      contiguous parts read side by side; only their first characters are predicted without context.
    * ``{prefix}_window_loss``, ``{prefix}_window_acc``: windows of ``seq_length + 1`` characters each
      read from a zero state (:func:`gseq.data.eval_windows`): the training condition, comparable with the
      training loss. Early positions of a window have little context, so this is higher.

    Args:
        ids: the held-out character ids.
        seq_length: window length of the windowed measure. (default: ``30``)
        segments: parallel contiguous parts of the stream. (default: ``8``)
        chunk: time steps per forward call of the stream (state carried). (default: ``2048``)
        batch_size: windows per forward call. (default: ``1024``)
        prefix: metric name prefix. (default: ``"val"``)

    Shapes:
        ids: :math:`[N]`, :math:`N \ge` ``seq_length + 1``.
    """
    windows = eval_windows(ids, seq_length)
    n = (ids.numel() - 1) // max(1, min(segments, (ids.numel() - 1) // seq_length))
    parts = (ids.numel() - 1) // n
    inputs, targets = ids[:parts * n].view(parts, n), ids[1:parts * n + 1].view(parts, n)

    def score(model: nn.Module, x: Tensor, y: Tensor, state):
        logits, state = model(x, state)
        flat, y = logits.reshape(-1, logits.size(-1)), y.reshape(-1)
        return float(F.cross_entropy(flat, y, reduction="sum")), int((flat.argmax(-1) == y).sum()), y.numel(), state

    def evaluate(model: nn.Module) -> dict[str, Mean]:
        # in a distributed run every rank scores its own segments and windows; the Trainer adds the
        # sums and counts of all ranks (a Mean), so the result is that of one process reading everything
        rank, world = rank_and_world_size()
        device = next(model.parameters()).device
        out = {}
        total = correct = count = 0
        state = None
        for x, y in zip(inputs[rank::world].split(chunk, dim=1), targets[rank::world].split(chunk, dim=1)):
            t, c, k, state = score(model, x.to(device), y.to(device), state)
            total, correct, count = total + t, correct + c, count + k
        out[f"{prefix}_loss"], out[f"{prefix}_acc"] = Mean(total, count), Mean(correct, count)
        total = correct = count = 0
        for w in windows[rank::world].split(batch_size):
            w = w.to(device)
            t, c, k, _ = score(model, w[:, :-1], w[:, 1:], None)
            total, correct, count = total + t, correct + c, count + k
        out[f"{prefix}_window_loss"], out[f"{prefix}_window_acc"] = Mean(total, count), Mean(correct, count)
        return out

    return evaluate


# ---------------------------------------------------------------------- training through the Trainer
#: the ``kind`` stored in the ``extra`` of a text checkpoint (with the vocabulary, model config and data)
TEXT_CHECKPOINT_KIND = "gseq-char-lstm-1"


class SampleLogger:
    """Trainer callback: every ``every`` steps, sample one text of each length in ``lengths`` from a
    random first character at each temperature (the report's Table 1 is greedy, ``temperature=0``) and
    keep them, with the step, in ``path`` (a CSV rewritten atomically; on resume the rows of steps after
    the checkpoint are dropped). Samples use their own generator seeded by ``(seed, step)``, so logging
    them never changes the training run.

    Args:
        vocab: the training vocabulary.
        every: sampling interval in steps. (default: ``1000``)
        lengths: characters per sample. (default: ``(20, 30, 60)``)
        temperatures: sampling temperatures, ``0`` = greedy. (default: ``(0.0, 1.0)``)
        seed: base seed of the sampling generator. (default: ``0``)
        path: the CSV file; None keeps the rows in :attr:`rows` only. (default: None)
        echo: also print the samples above the progress bar. (default: False)
    """

    def __init__(self, vocab, every: int = 1000, lengths=(20, 30, 60), temperatures=(0.0, 1.0), seed: int = 0,
                 path=None, echo: bool = False) -> None:
        positive_int("every", every)
        self.vocab, self.every, self.lengths, self.temperatures = vocab, every, tuple(lengths), tuple(temperatures)
        self.seed, self.echo = random_seed("seed", seed), echo
        self.path = Path(path) if path is not None else None
        self.rows: list[dict[str, Any]] = []

    def on_fit_start(self, trainer) -> None:
        self.rows = []
        if self.path is not None and self.path.is_file() and trainer.step > 0:
            text = read_verified_text(self.path, "samples")  # stamped when written: damage is an error
            try:
                self.rows = [r for r in csv.DictReader(io.StringIO(text, newline="")) if int(r["step"]) <= trainer.step]
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"samples: {str(self.path)!r} is damaged (a row without a step number); restore it "
                                 "or delete it to resume without the earlier samples") from None

    def on_step_end(self, trainer, step: int, logs) -> None:
        if step % self.every or not trainer.is_main:  # rank 0 alone samples and writes
            return
        g = torch.Generator(device=trainer.device).manual_seed(self.seed * 1_000_003 + step)
        for temperature in self.temperatures:
            for length in self.lengths:
                text = generate(trainer.model, self.vocab, "", length, temperature, generator=g)[0]
                self.rows.append({"step": step, "length": length, "temperature": temperature, "text": text})
                if self.echo:
                    from tqdm.auto import tqdm

                    tqdm.write(f"step {step} T={temperature:g} len {length}: {text}")
        if self.path is not None:
            write_csv(self.path, self.rows, fieldnames=["step", "length", "temperature", "text"], stamp=True)


class _StepDecay:
    """lr = base_lr * gamma ** (step // every), set from the step alone (so resume stays exact)."""

    def __init__(self, base_lr: float, gamma: float, every: int) -> None:
        self.base_lr, self.gamma, self.every = base_lr, gamma, every

    def _set(self, trainer, step: int) -> None:
        lr = self.base_lr * self.gamma ** (step // self.every)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr

    def on_fit_start(self, trainer) -> None:
        self._set(trainer, trainer.step)

    def on_step_end(self, trainer, step: int, logs) -> None:
        self._set(trainer, step)


class _Targets:
    """Stop once validation loss <= target_loss and validation accuracy >= target_acc (either optional)."""

    def __init__(self, target_loss: float | None, target_acc: float | None) -> None:
        self.target_loss, self.target_acc = target_loss, target_acc

    def on_eval(self, trainer, step: int, metrics) -> None:
        if (self.target_loss is None or metrics["val_loss"] <= self.target_loss) and \
                (self.target_acc is None or metrics["val_acc"] >= self.target_acc):
            trainer.should_stop, trainer.stop_reason = True, "target"


class _Figure:
    """Redraw ``loss.png`` (loss and accuracy, training and validation) at every checkpoint."""

    def __init__(self, path: Path, title: str) -> None:
        self.path, self.title = path, title

    def on_checkpoint(self, trainer, path) -> None:
        if trainer.history:
            import matplotlib.pyplot as plt

            from ..plots import plot_history

            plt.close(plot_history(trainer.history, loss_keys=["loss", "val_window_loss", "val_loss"],
                                   metric_keys=["acc", "val_window_acc", "val_acc"], title=self.title, path=self.path))


def _check_resume(path: Path, extra: Mapping[str, Any]) -> None:
    ckpt = load_checkpoint(path)
    old = ckpt.get("extra") or {}
    if old.get("kind") != TEXT_CHECKPOINT_KIND:
        raise ValueError(f"checkpoint: {str(path)!r} is not a gseq text checkpoint; choose another out_dir")
    if old.get("vocab") != extra["vocab"]:
        before = old.get("vocab") or ""
        raise ValueError(f"checkpoint: {str(path)!r} was trained with another vocabulary ({len(before)} "
                         f"characters {str(before)[:40]!r}...) than this text gives ({len(extra['vocab'])} "
                         "characters); resume with the same file and preprocessing, or choose another out_dir")
    for key, what in (("model_config", "model"), ("data", "data settings")):
        if old.get(key) != extra[key]:
            raise ValueError(f"checkpoint: {str(path)!r} was trained with other {what} ({old.get(key)} vs "
                             f"{extra[key]}); resume with the same settings, or choose another out_dir")


def train_char_lstm(
    file: str | os.PathLike,
    *,
    steps: int = 20000,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device | None = "auto",
    preprocess: bool = False,
    strip_header: bool = True,
    seq_length: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    hidden_size: int = 128,
    num_layers: int = 2,
    dropout: float = 0.0,
    embedding: str = "onehot",
    clip_grad_norm: float | None = 5.0,
    val_fraction: float = 0.05,
    eval_every: int = 500,
    sample_every: int | None = 1000,
    checkpoint_every: int | None = 1000,
    lr_decay: float | None = None,
    lr_decay_every: int = 5000,
    target_loss: float | None = None,
    target_acc: float | None = None,
    seed: int = 0,
    progress: bool = True,
    echo_samples: bool = False,
) -> dict[str, Any]:
    """Train a :class:`CharLSTM` on a text file through :class:`gseq.train.Trainer`.

    The text is read with :func:`gseq.data.load_text`, its sorted vocabulary built, the last
    ``val_fraction`` held out (validation loss in nats per character and accuracy, read as a stream and in
    training-length windows, see :func:`char_lm_evaluator`), and random windows of ``seq_length + 1``
    characters drawn as batches;
    the loss is the mean cross-entropy over all time steps (:func:`char_lm_loss`), optimised by Adam with
    the global gradient norm clipped. With ``out_dir`` the run folder receives ``metrics.csv``,
    ``config.json``, ``checkpoint.pt`` (model, optimizer, step, RNG states, plus the vocabulary, model
    config and data settings as plain data), ``samples.csv`` (:class:`SampleLogger`) and ``loss.png``.

    Args:
        file: the text file, or a book's name under ``$GSEQ_DATA/text``.
        steps: total optimizer steps (a resumed run continues up to this number). (default: ``20000``)
        out_dir: run folder; None writes nothing. An existing checkpoint there is only continued with
            ``resume=True``, or replaced with ``overwrite=True``. (default: None)
        resume: continue exactly from ``out_dir/checkpoint.pt`` (same file and settings). (default: False)
        overwrite: let this fresh run replace a checkpoint in ``out_dir``. (default: False)
        device: ``"auto"``, ``"cpu"``, ``"cuda"``... (default: ``"auto"``)
        preprocess: the report's preprocessing (letters, digits, spaces; lower-case). (default: False)
        strip_header: drop the Project Gutenberg header and licence. (default: True)
        seq_length, batch_size, lr: the course's defaults. (default: ``30``, ``64``, ``2e-3``)
        hidden_size, num_layers, dropout, embedding: the :class:`CharLSTM`. (default: ``128``, ``2``,
            ``0.0``, ``"onehot"``)
        clip_grad_norm: global gradient-norm clip. (default: ``5.0``)
        val_fraction: held-out tail of the text. (default: ``0.05``)
        eval_every, sample_every, checkpoint_every: intervals in steps. (default: ``500``, ``1000``,
            ``1000``; None switches sampling off / checkpoints only at the end)
        lr_decay: multiply the learning rate by this every ``lr_decay_every`` steps. (default: None)
        target_loss, target_acc: stop early once ``val_loss`` <= target_loss and ``val_acc`` >= target_acc
            (the stream measure of :func:`char_lm_evaluator`). (default: None)
        seed: seeds the model's initialisation, the batches and the samples. (default: ``0``)
        progress: show a progress bar. (default: True)
        echo_samples: print the logged samples. (default: False)

    Returns:
        ``{"model", "vocab", "trainer", "result"}`` with ``result`` from :meth:`Trainer.fit`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, not UTF-8 or too short for ``seq_length``; ``out_dir`` holds a
            checkpoint and ``resume`` is False, or holds one of another vocabulary, model or data.
    """
    random_seed("seed", seed)
    in_range("lr_decay", lr_decay, 0, 1, low_open=True, none_ok=True)
    positive_int("lr_decay_every", lr_decay_every)
    text = load_text(file, strip_header=strip_header, preprocess=preprocess)
    positive_int("seq_length", seq_length)
    if len(text) < seq_length + 1:
        raise ValueError(f"file: {str(file)!r} holds {len(text)} characters (after cleaning), fewer than "
                         f"seq_length + 1 = {seq_length + 1}; use a longer text or a smaller seq_length")
    vocab = CharVocab.from_text(text)
    train_ids, val_ids = split_text(vocab.encode(text), val_fraction)
    if val_ids.numel() < seq_length + 1:
        raise ValueError(f"file: the held-out {val_fraction:.0%} of {str(file)!r} ({val_ids.numel()} characters) is "
                         f"shorter than seq_length + 1 = {seq_length + 1}; use a longer text or a larger val_fraction")
    sampler = window_sampler(train_ids, seq_length, batch_size)
    evaluate = char_lm_evaluator(val_ids, seq_length)

    torch.manual_seed(seed)
    model = CharLSTM(len(vocab), hidden_size, num_layers, dropout, embedding)
    data = {"file": Path(file).name, "preprocess": bool(preprocess), "strip_header": bool(strip_header),
            "val_fraction": float(val_fraction), "seq_length": seq_length, "batch_size": batch_size,
            "characters": len(text)}
    extra = {"kind": TEXT_CHECKPOINT_KIND, "vocab": vocab.to_data(), "model_config": model.config, "data": data}
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ValueError("resume: needs out_dir, the run folder holding checkpoint.pt")
    if resume and overwrite:
        raise ValueError("resume, overwrite: choose one: resume continues the run in out_dir, overwrite replaces it")
    if out is not None and (out / "checkpoint.pt").exists():
        if not resume and not overwrite:
            raise ValueError(f"out_dir: {str(out)!r} already holds a checkpoint; pass resume=True (--resume) to "
                             "continue it, overwrite=True (--overwrite) to replace it, or choose another out_dir "
                             "(nothing was overwritten)")
        if resume:
            _check_resume(out / "checkpoint.pt", extra)

    callbacks: list[Any] = []
    if sample_every:
        callbacks.append(SampleLogger(vocab, sample_every, seed=seed, echo=echo_samples,
                                      path=out / "samples.csv" if out is not None else None))
    if lr_decay is not None and lr_decay != 1:
        callbacks.append(_StepDecay(lr, lr_decay, lr_decay_every))
    if target_loss is not None or target_acc is not None:
        callbacks.append(_Targets(target_loss, target_acc))
    if out is not None:
        callbacks.append(_Figure(out / "loss.png", f"CharLSTM {num_layers}x{hidden_size} on {data['file']}"))
    config = {"task": "text", "data": data, "model": model.config, "lr_decay": lr_decay,
              "lr_decay_every": lr_decay_every, "target_loss": target_loss, "target_acc": target_acc}
    trainer = Trainer(model, optimizer="adam", lr=lr, clip_grad_norm=clip_grad_norm, max_steps=steps,
                      eval_every=eval_every, seed=seed, device=device, callbacks=callbacks, progress=progress,
                      out_dir=out, overwrite=overwrite, checkpoint_every=checkpoint_every, config=config,
                      checkpoint_extra=extra,
                      desc="text")
    result = trainer.fit(char_lm_loss, sampler, evaluate, resume=resume)
    return {"model": model, "vocab": vocab, "trainer": trainer, "result": result}


def load_char_lstm(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = "cpu",
    vocab: CharVocab | None = None,
) -> tuple[CharLSTM, CharVocab, dict[str, Any]]:
    """Rebuild a trained :class:`CharLSTM` from a checkpoint alone (its stored config and vocabulary).

    Args:
        path: a ``checkpoint.pt`` written by :func:`train_char_lstm` (loaded with ``weights_only=True``).
        device: where to put the model. (default: ``"cpu"``)
        vocab: when given, the checkpoint's vocabulary must equal it. (default: None)

    Returns:
        ``(model, vocab, info)``: the model in eval mode, the stored vocabulary, and
        ``{"step", "data", "last_eval"}``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupted, not a gseq text checkpoint, or its vocabulary, config and
            weights do not agree (or the vocabulary differs from ``vocab``).
    """
    ckpt = load_checkpoint(path)
    extra = ckpt.get("extra")
    source = str(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT or not isinstance(extra, dict) \
            or extra.get("kind") != TEXT_CHECKPOINT_KIND:
        raise ValueError(f"checkpoint: {source!r} is not a gseq text checkpoint (no vocabulary and model config "
                         "stored); train one with `gseq text train`")
    try:
        stored = CharVocab.from_data(extra["vocab"])
        model = CharLSTM.from_config(extra["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"checkpoint: {source!r} holds an unusable vocabulary or model config ({err})") from err
    if model.vocab_size != len(stored):
        raise ValueError(f"checkpoint: {source!r} stores {len(stored)} characters but a model for "
                         f"{model.vocab_size}; the file is inconsistent")
    if vocab is not None and vocab != stored:
        raise ValueError(f"vocab: differs from the vocabulary of {source!r} ({vocab!r} vs {stored!r}); a model only "
                         "reads text in the vocabulary it was trained with")
    check_model_state(model, ckpt["model"], ckpt.get("model_class"), source=source)
    model.load_state_dict(ckpt["model"])
    model.to(resolve_device(device)).eval()
    history = ckpt.get("history") or [{}]
    info = {"step": ckpt.get("step"), "data": dict(extra.get("data") or {}),
            "last_eval": {k: v for k, v in history[-1].items() if k.startswith("val_")}}
    return model, stored, info
