"""The character language model task: train a :class:`~gseq.models.CharLSTM` on a text file through the
shared :class:`~gseq.train.Trainer` (:func:`train_char_lstm`: windows of the text, :func:`~gseq.models.char_lm_loss`,
the held-out evaluation of :func:`char_lm_evaluator`, the :class:`SampleLogger`, learning-rate decay, targets
and the loss figure as callbacks), and rebuild a trained model from its checkpoint alone
(:func:`load_char_lstm`: the stored config and vocabulary).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import fits_memory, positive_int
from ..config import TextConfig
from ..data.text import CharVocab, eval_windows, load_text, split_text, window_sampler
from ..io import load_checkpoint, write_csv
from ..models.char_lstm import CharLSTM, char_lm_loss
from ..models.generate import generate
from ..train import (CHECKPOINT_FORMAT, Mean, Trainer, apply_threads, check_model_state, rank_and_world_size,
                     resolve_device, training_device)

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
        self.seed, self.echo = int(seed), echo
        self.path = Path(path) if path is not None else None
        self.rows: list[dict[str, Any]] = []

    def on_fit_start(self, trainer) -> None:
        self.rows = []
        if self.path is not None and self.path.is_file() and trainer.step > 0:
            with open(self.path, newline="", encoding="utf-8") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= trainer.step]

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
            write_csv(self.path, self.rows, fieldnames=["step", "length", "temperature", "text"])


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


def train_char_lstm(file: str | os.PathLike | TextConfig = TextConfig.file, **settings: Any) -> dict[str, Any]:
    """Train a :class:`CharLSTM` on a text file through :class:`gseq.train.Trainer`.

    The text is read with :func:`gseq.data.load_text`, its sorted vocabulary built, the last
    ``val_fraction`` held out (validation loss in nats per character and accuracy, read as a stream and in
    training-length windows, see :func:`char_lm_evaluator`), and random windows of ``seq_length + 1``
    characters drawn as batches;
    the loss is the mean cross-entropy over all time steps (:func:`char_lm_loss`), optimised by Adam with
    the global gradient norm clipped. With ``out_dir`` the run folder receives ``metrics.csv``,
    ``config.json``, ``checkpoint.pt`` (model, optimizer, step, RNG states, plus the vocabulary and model
    config as plain data), ``samples.csv`` (:class:`SampleLogger`) and ``loss.png``.

    Args:
        file: the text file, or a book's name under ``$GSEQ_DATA/text``; or a whole
            :class:`~gseq.config.TextConfig`. (default: the book shipped with gseq)
        **settings: the fields of :class:`~gseq.config.TextConfig`, each with its default and help there
            (``steps=20000``, ``out_dir=None``, ``resume=False``, ``overwrite=False``, ``seq_length=30``,
            ``batch_size=64``, ``lr=2e-3``, ``hidden_size=128``, ``num_layers=2``, ...); with a config as
            ``file``, they replace its fields.

    Returns:
        ``{"model", "vocab", "trainer", "result", "config"}`` with ``result`` from :meth:`Trainer.fit`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a setting is out of range; the file is empty, not UTF-8 or too short for ``seq_length``;
            ``out_dir`` holds a checkpoint and neither ``resume`` nor ``overwrite`` is set, or holds one of
            another vocabulary, model or data.
    """
    cfg = _config(file, settings)
    apply_threads(cfg.threads)
    text = load_text(cfg.file, strip_header=cfg.strip_header, preprocess=cfg.preprocess)
    if len(text) < cfg.seq_length + 1:
        raise ValueError(f"{cfg.name('file')}: {cfg.file!r} holds {len(text)} characters (after cleaning), fewer than "
                         f"{cfg.name('seq_length')} + 1 = {cfg.seq_length + 1}; use a longer text or a smaller "
                         f"{cfg.name('seq_length')}")
    vocab = CharVocab.from_text(text)
    train_ids, val_ids = split_text(vocab.encode(text), cfg.val_fraction)
    if val_ids.numel() < cfg.seq_length + 1:
        raise ValueError(f"{cfg.name('file')}: the held-out {cfg.val_fraction:.0%} of {cfg.file!r} ({val_ids.numel()} "
                         f"characters) is shorter than {cfg.name('seq_length')} + 1 = {cfg.seq_length + 1}; use a "
                         f"longer text or a larger {cfg.name('val_fraction')}")
    # one step holds, per character of a batch, its ids, its input (one-hot or embedded) and every layer's gates
    # and states, each with its gradient: refuse a batch that cannot fit before allocating it
    per_char = 16 + 2 * 4 * ((len(vocab) if cfg.embedding == "onehot" else cfg.hidden_size)
                             + 6 * cfg.hidden_size * cfg.num_layers)
    fits_memory(cfg.name("batch_size"), cfg.batch_size, cfg.batch_size * (cfg.seq_length + 1) * per_char,
                training_device(cfg.device), what=f"windows of {cfg.seq_length + 1} characters")
    sampler = window_sampler(train_ids, cfg.seq_length, cfg.batch_size)
    evaluate = char_lm_evaluator(val_ids, cfg.seq_length)

    torch.manual_seed(cfg.seed)
    model = CharLSTM(len(vocab), cfg.hidden_size, cfg.num_layers, cfg.dropout, cfg.embedding)
    cfg.derived.update(vocab=vocab.to_data(), characters=len(text))
    out = Path(cfg.out_dir) if cfg.out_dir is not None else None
    callbacks: list[Any] = []
    if cfg.sample_every:
        callbacks.append(SampleLogger(vocab, cfg.sample_every, seed=cfg.seed, echo=cfg.echo_samples,
                                      path=out / "samples.csv" if out is not None else None))
    if cfg.lr_decay is not None and cfg.lr_decay != 1:
        callbacks.append(_StepDecay(cfg.lr, cfg.lr_decay, cfg.lr_decay_every))
    if cfg.target_loss is not None or cfg.target_acc is not None:
        callbacks.append(_Targets(cfg.target_loss, cfg.target_acc))
    if out is not None:
        callbacks.append(_Figure(out / "loss.png", f"CharLSTM {cfg.num_layers}x{cfg.hidden_size} on "
                                                   f"{Path(cfg.file).name}"))
    trainer = Trainer(model, optimizer="adam", lr=cfg.lr, clip_grad_norm=cfg.clip_grad_norm, max_steps=cfg.steps,
                      eval_every=cfg.eval_every, seed=cfg.seed, device=cfg.device, callbacks=callbacks,
                      progress=cfg.progress, out_dir=out, overwrite=cfg.overwrite,
                      checkpoint_every=cfg.checkpoint_every, config=cfg,
                      checkpoint_extra={"kind": TEXT_CHECKPOINT_KIND, "vocab": vocab.to_data(),
                                        "model_config": model.config},
                      desc="text")
    result = trainer.fit(char_lm_loss, sampler, evaluate, resume=cfg.resume)
    return {"model": model, "vocab": vocab, "trainer": trainer, "result": result, "config": cfg}


def _config(file, settings: dict[str, Any]) -> TextConfig:
    if isinstance(file, TextConfig):
        return file.with_changes(**settings)
    return TextConfig(file=os.fspath(file), **settings)


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
        ``{"step", "data", "last_eval"}`` (``data``: the run's saved :class:`~gseq.config.TextConfig`).

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
    info = {"step": ckpt.get("step"), "data": dict(ckpt.get("config") or {}),
            "last_eval": {k: v for k, v in history[-1].items() if k.startswith("val_")}}
    return model, stored, info
