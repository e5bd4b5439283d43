"""The one training loop shared by every gseq model.

A :class:`Trainer` knows nothing about graphs, palindromes or text. A task hands it three things:

* ``loss_fn(model, batch)``: returns the loss tensor, or a dict with ``"loss"`` and any other scalar
  training metrics to log;
* ``data``: either a *sampler* ``data(generator) -> batch`` called once per step (palindromes, text
  windows, or ``lambda g: graph`` for full-batch training), or a re-iterable of batches (a list, a
  ``DataLoader``) that is walked epoch by epoch;
* ``evaluate(model) -> dict``: optional, called every ``eval_every`` steps under ``torch.no_grad()``
  with the model in eval mode.

Everything else lives here: the optimizer by name, gradient clipping, stopping rules (max steps or
epochs, a target metric, a patience), keeping the best state by a validation metric, seeding, the
device, callbacks, a progress bar, a metrics CSV with the resolved config beside it, and checkpoints
that resume exactly (model, optimizer, step, RNG states and history are all saved).

Callbacks are plain objects. Any of these methods that a callback defines is called by name:
``on_fit_start(trainer)``, ``on_step_end(trainer, step, logs)``, ``on_eval(trainer, step, metrics)``,
``on_checkpoint(trainer, path)``, ``on_fit_end(trainer, result)``. A callback stops training by setting
``trainer.should_stop = True``.

Nothing is lost or silently wrong: a loss that is not finite stops training with a ``FloatingPointError``
naming the step (before that step changes the weights); Ctrl-C finishes the current step, saves a
checkpoint when there is an ``out_dir`` and raises :class:`TrainingInterrupted`; a run folder that holds
a checkpoint is continued only with ``resume=True`` and the same settings (only ``max_steps``,
``max_epochs`` and ``device`` may change), and replaced only with ``overwrite=True``; the folder is
checked to be writable before the first step.
"""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..io import check_writable_dir, load_checkpoint, remove_stale_temp_files, save_checkpoint, write_csv, write_json

__all__ = ["Trainer", "TrainingInterrupted", "seed_everything", "resolve_device", "move_to", "check_model_state",
           "CHECKPOINT_FORMAT", "RESUMABLE_SETTINGS"]

#: the ``"format"`` tag of a Trainer checkpoint; a file with another tag is refused
CHECKPOINT_FORMAT = "gseq-trainer-1"
#: the settings a resumed run may change (everything else must equal the checkpoint's)
RESUMABLE_SETTINGS = ("max_steps", "max_epochs", "device")
#: the files a Trainer writes into ``out_dir``
_OUTPUTS = ("checkpoint.pt", "metrics.csv", "config.json")
_END = object()


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :meth:`Trainer.fit` after Ctrl-C (SIGINT): the step in progress was finished and, when
    the trainer has an ``out_dir``, a checkpoint of it saved (``resume=True`` continues from there).

    Attributes:
        step: the last completed step.
        checkpoint: the path of the saved checkpoint, or None when nothing was saved.
    """

    def __init__(self, step: int, checkpoint: Path | None, detail: str | None = None) -> None:
        self.step, self.checkpoint = step, checkpoint
        if detail is None:
            detail = f"checkpoint saved to {checkpoint}" if checkpoint is not None else "nothing saved (no out_dir)"
        super().__init__(f"stopped after step {step}; {detail}")
_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (when installed) and torch's global generators."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA when it is available, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: {device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device: {device!r} does not exist; this machine has {count} CUDA device(s), "
                             f"cuda:0..cuda:{count - 1}")
        return dev
    if dev.type == "meta":
        raise ValueError(f"device: {device!r} holds no data and cannot train; use 'auto', 'cpu' or 'cuda'")
    try:  # any other kind (mps, xpu, ...): usable only if this torch build and machine can hold a tensor there
        torch.empty(0, device=dev)
    except Exception:
        raise ValueError(f"device: {device!r} is not available with this torch build on this machine; use 'auto', "
                         "'cpu' or 'cuda'") from None
    return dev


def move_to(obj: Any, device: torch.device) -> Any:
    """Move tensors, PyG ``Data`` objects and (nested) tuples, lists and dicts of them to ``device``."""
    if isinstance(obj, Tensor) or hasattr(obj, "to") and callable(obj.to) and not isinstance(obj, nn.Module):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(move_to(v, device) for v in obj)
    if isinstance(obj, list):
        return [move_to(v, device) for v in obj]
    return obj


def _scalar(value: Any) -> float:
    return float(value.detach().item()) if isinstance(value, Tensor) else float(value)


class Trainer:
    """One readable training loop with callbacks, checkpoints and exact resume.

    Args:
        model: the ``nn.Module`` to train (moved to ``device``).
        optimizer: ``"adam"`` (default), ``"adamw"``, ``"rmsprop"`` or ``"sgd"``.
        lr: learning rate. (default: ``1e-3``)
        weight_decay: weight decay for every parameter not in ``param_groups``. (default: ``0``)
        param_groups: per-parameter-group settings, as torch optimizers take them (a list of dicts with
            ``"params"``), or a callable ``model -> groups``; e.g. Kipf & Welling's weight decay on the
            first GCN layer only. (default: all parameters, one group)
        optimizer_kwargs: extra keyword arguments for the optimizer (e.g. ``{"momentum": 0.9}``).
        clip_grad_norm: clip the global gradient norm to this value; None disables. (default: None)
        max_steps: stop after this many optimizer steps.
        max_epochs: stop after this many passes over an iterable ``data`` (for a sampler, one step is
            one epoch).
        eval_every: evaluate every this many steps (and after the last step). (default: ``1``)
        monitor: the metric of ``evaluate`` used for ``target``, ``patience`` and ``keep_best``.
        mode: ``"max"`` (default) or ``"min"``: whether a larger ``monitor`` is better.
        target: stop as soon as ``monitor`` reaches this value.
        patience: stop after this many evaluations without improvement of ``monitor``.
        keep_best: at the end, load the weights of the best evaluation by ``monitor``. (default: False)
        seed: seeds the global generators when ``fit`` starts, and :attr:`generator`, the generator
            handed to a sampler ``data``. (default: None, not seeded)
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``... (default: ``"auto"``)
        callbacks: plain objects with any of the ``on_*`` methods listed in the module docstring.
        progress: show a tqdm progress bar. (default: True)
        out_dir: folder for ``metrics.csv``, ``config.json`` and ``checkpoint.pt``; None writes nothing.
            Checked to be writable when ``fit`` starts; a checkpoint already there is refused unless
            ``fit(resume=True)`` continues it or ``overwrite`` replaces it.
        overwrite: let a fresh run replace a checkpoint in ``out_dir``. (default: False)
        checkpoint_every: write ``out_dir/checkpoint.pt`` every this many steps (and at the end).
            (default: only at the end when ``out_dir`` is given)
        config: the caller's settings (model size, data, ...) saved in ``config.json`` and in
            checkpoints beside the trainer's own.
        checkpoint_extra: extra plain data stored in every checkpoint (e.g. a vocabulary).
        desc: label of the progress bar.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        param_groups: list[dict] | Callable[[nn.Module], list[dict]] | None = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        clip_grad_norm: float | None = None,
        max_steps: int | None = None,
        max_epochs: int | None = None,
        eval_every: int = 1,
        monitor: str | None = None,
        mode: str = "max",
        target: float | None = None,
        patience: int | None = None,
        keep_best: bool = False,
        seed: int | None = None,
        device: str | torch.device | None = "auto",
        callbacks: Iterable[Any] = (),
        progress: bool = True,
        out_dir: str | Path | None = None,
        overwrite: bool = False,
        checkpoint_every: int | None = None,
        config: Mapping[str, Any] | None = None,
        checkpoint_extra: Mapping[str, Any] | None = None,
        desc: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        name = str(optimizer).lower()
        if name not in _OPTIMIZERS:
            raise ValueError(f"optimizer: unknown name {optimizer!r}; choose one of {sorted(_OPTIMIZERS)}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr: must be a finite positive number, got {lr!r}")
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) \
                or not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay: must be a finite number >= 0, got {weight_decay!r}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm: must be > 0 or None, got {clip_grad_norm!r}")
        for arg, value in (("max_steps", max_steps), ("max_epochs", max_epochs), ("patience", patience),
                           ("checkpoint_every", checkpoint_every)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{arg}: must be a positive integer or None, got {value!r}")
        if not isinstance(eval_every, int) or eval_every < 1:
            raise ValueError(f"eval_every: must be a positive integer, got {eval_every!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode: must be 'max' or 'min', got {mode!r}")
        if (target is not None or patience is not None or keep_best) and monitor is None:
            raise ValueError("monitor: name the evaluation metric (e.g. monitor='val_acc') to use target, "
                             "patience or keep_best")

        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.optimizer_name = name
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        groups = param_groups(self.model) if callable(param_groups) else param_groups
        if groups is None:
            groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        self.optimizer = _OPTIMIZERS[name](groups, lr=self.lr, weight_decay=self.weight_decay,
                                           **dict(optimizer_kwargs or {}))
        _check_groups(self.optimizer)
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.clip_grad_norm = clip_grad_norm
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.eval_every = eval_every
        self.monitor = monitor
        self.mode = mode
        self.target = target
        self.patience = patience
        self.keep_best = keep_best
        self.seed = seed
        self.callbacks = list(callbacks)
        self.progress = progress
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.overwrite = bool(overwrite)
        self.checkpoint_every = checkpoint_every
        self.user_config = dict(config or {})
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.desc = desc

        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
        self.step = 0
        self.epoch = 0
        self.epoch_step = 0  # batches already taken from the current pass over an iterable
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.evals_since_best = 0
        self.should_stop = False
        self.stop_reason: str | None = None
        self.last_eval: dict[str, float] = {}
        self._resumed = False
        self._wrote_checkpoint = False  # a checkpoint in out_dir written by this trainer may be replaced
        self._interrupted = False

    # ------------------------------------------------------------------ config and checkpoints
    @property
    def config(self) -> dict[str, Any]:
        """The resolved settings: the trainer's own under ``"trainer"``, the caller's beside them."""
        trainer = {
            "optimizer": self.optimizer_name, "lr": self.lr, "weight_decay": self.weight_decay,
            "optimizer_kwargs": self.optimizer_kwargs, "clip_grad_norm": self.clip_grad_norm,
            "max_steps": self.max_steps, "max_epochs": self.max_epochs, "eval_every": self.eval_every,
            "monitor": self.monitor, "mode": self.mode, "target": self.target, "patience": self.patience,
            "keep_best": self.keep_best, "seed": self.seed, "device": str(self.device),
            "model": type(self.model).__name__,
        }
        return {**self.user_config, "trainer": trainer}

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "checkpoint.pt" if self.out_dir is not None else None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training stopped."""
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state(),
               "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT,
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step, "epoch": self.epoch, "epoch_step": self.epoch_step,
            "config": self.config, "history": self.history,
            "best": {"metric": self.best_metric, "step": self.best_step, "evals_since": self.evals_since_best},
            "best_model": self.best_state,
            "rng": rng,
            "extra": self.checkpoint_extra,
        }

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write :meth:`state_dict` atomically to ``path`` (default ``out_dir/checkpoint.pt``)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("path: give a checkpoint path, or construct the Trainer with out_dir")
        save_checkpoint(path, self.state_dict())
        if path == self.checkpoint_path:
            self._wrote_checkpoint = True
        self._fire("on_checkpoint", path)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> dict[str, Any]:
        """Restore model, optimizer, counters, history, best state and RNG states from a checkpoint.

        Raises:
            ValueError: the checkpoint is unreadable, was written for another model (another class, or
                parameters of other names or shapes), or ran with other settings than this trainer's
                (each one is named; only those in :data:`RESUMABLE_SETTINGS` may differ).
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("path: give a checkpoint path, or construct the Trainer with out_dir")
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint: {str(path)!r} is not a gseq Trainer checkpoint "
                             f"(format {ckpt.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        check_model_state(self.model, ckpt["model"], ckpt.get("model_class"), source=str(path))
        _check_same_settings(ckpt.get("config") or {}, self.config, source=str(path))
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.epoch, self.epoch_step = ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]
        self.history = list(ckpt["history"])
        best = ckpt["best"]
        self.best_metric, self.best_step, self.evals_since_best = best["metric"], best["step"], best["evals_since"]
        self.best_state = ckpt["best_model"]
        self.last_eval = {k: v for k, v in (self.history[-1] if self.history else {}).items()
                          if k not in ("step", "epoch", "seconds")}
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        random.setstate(_as_python_rng_state(rng["python"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self._resumed = True
        return ckpt

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        loss_fn: Callable[[nn.Module, Any], Tensor | Mapping[str, Any]],
        data: Callable[[torch.Generator], Any] | Iterable[Any],
        evaluate: Callable[[nn.Module], Mapping[str, Any]] | None = None,
        *,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Train until a stopping rule fires; return a summary dict.

        Args:
            loss_fn: ``loss_fn(model, batch)`` -> loss tensor, or dict with ``"loss"`` and scalar metrics.
            data: a sampler ``data(generator) -> batch`` or a re-iterable of batches.
            evaluate: ``evaluate(model) -> {name: number}``, run every ``eval_every`` steps.
            resume: continue from ``out_dir/checkpoint.pt`` when it exists.

        Returns:
            ``{"step", "epoch", "stop_reason", "best_metric", "best_step", "seconds", "last_eval"}``.

        Raises:
            ValueError: ``out_dir`` cannot be written, or holds a checkpoint that neither ``resume`` nor
                ``overwrite`` allows to touch, or one of other settings (see :meth:`load_checkpoint`).
            FloatingPointError: the loss of a step was NaN or infinite (training stops before that
                step updates the weights).
            TrainingInterrupted: Ctrl-C; the step in progress was finished and saved.
        """
        sampler = callable(data) and not hasattr(data, "__iter__")
        if not sampler and not hasattr(data, "__iter__"):
            raise TypeError("data: expected a sampler callable(generator) -> batch or an iterable of batches, "
                            f"got {type(data).__name__}")
        if self.max_steps is None and self.max_epochs is None:
            raise ValueError("max_steps / max_epochs: give at least one, or training would never stop")
        if evaluate is None and self.monitor is not None:
            raise ValueError(f"evaluate: monitor={self.monitor!r} needs an evaluate function")

        if self.out_dir is not None:
            self._prepare_out_dir(resume)
        if self.seed is not None and not self._resumed:
            seed_everything(self.seed)
        if resume and self.checkpoint_path is not None and self.checkpoint_path.is_file() and not self._resumed:
            self.load_checkpoint()
        self.should_stop, self.stop_reason = False, None
        start = time.perf_counter()
        seconds_before = self.history[-1]["seconds"] if self.history else 0.0

        total = self.max_steps if self.max_steps is not None else None
        bar = _progress_bar(total=total, initial=self.step, disable=not self.progress, desc=self.desc)
        self._fire("on_fit_start")
        batches = None if sampler else self._batches(data)
        running: dict[str, list[float]] = {}
        self.model.train()
        self._interrupted = False
        previous_handler = self._catch_sigint()
        try:
            while not self._done() and not self._interrupted:
                batch, last_of_epoch = (data(self.generator), True) if sampler else next(batches)
                logs = self._train_step(loss_fn, move_to(batch, self.device))
                self.step += 1
                self.epoch_step += 1
                if last_of_epoch:
                    self.epoch, self.epoch_step = self.epoch + 1, 0
                for k, v in logs.items():
                    running.setdefault(k, []).append(v)
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
                self._fire("on_step_end", self.step, logs)
                if self._interrupted:
                    break
                last = self._done()
                if self.step % self.eval_every == 0 or last or self.should_stop:
                    row = {"step": self.step, "epoch": self.epoch}
                    row.update({k: sum(v) / len(v) for k, v in running.items()})
                    running = {}
                    if evaluate is not None:
                        metrics = self._evaluate(evaluate)
                        row.update(metrics)
                        self._track_best(metrics)
                    row["seconds"] = seconds_before + time.perf_counter() - start
                    self.history.append(row)
                    self.last_eval = {k: v for k, v in row.items() if k not in ("step", "epoch", "seconds")}
                    if evaluate is not None:
                        self._fire("on_eval", self.step, dict(self.last_eval))
                        shown = {k: f"{v:.4f}" for k, v in self.last_eval.items() if k != "loss"}
                        bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", **dict(list(shown.items())[:3]))
                if self.checkpoint_every and self.step % self.checkpoint_every == 0 and self.out_dir is not None:
                    self._write_outputs()
        except KeyboardInterrupt:  # a second Ctrl-C, or no handler of ours: the step was cut short, save nothing
            raise TrainingInterrupted(self.step, None, "the step in progress was cut short, nothing saved since the "
                                                       "last checkpoint") from None
        finally:
            bar.close()
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)

        if self._interrupted:
            saved = None
            if self.out_dir is not None:
                self._write_outputs()
                saved = self.checkpoint_path
            raise TrainingInterrupted(self.step, saved)

        if self.stop_reason is None:
            self.stop_reason = "max_steps" if self.max_steps is not None and self.step >= self.max_steps else "max_epochs"
        if self.out_dir is not None:
            self._write_outputs()
        if self.keep_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        result = {
            "step": self.step, "epoch": self.epoch, "stop_reason": self.stop_reason,
            "best_metric": self.best_metric, "best_step": self.best_step,
            "seconds": seconds_before + time.perf_counter() - start, "last_eval": dict(self.last_eval),
        }
        self._fire("on_fit_end", result)
        return result

    # ------------------------------------------------------------------ pieces of the loop
    def _prepare_out_dir(self, resume: bool) -> None:
        """Before the first step: the folder can be written, leftovers of killed saves are gone, and a
        checkpoint already there is only touched when resuming or overwriting."""
        assert self.out_dir is not None and self.checkpoint_path is not None
        check_writable_dir(self.out_dir, "out_dir")
        remove_stale_temp_files(self.out_dir, _OUTPUTS)
        if self.checkpoint_path.exists() and not (resume or self.overwrite or self._resumed or self._wrote_checkpoint):
            raise ValueError(f"out_dir: {str(self.out_dir)!r} already holds a checkpoint; continue it with "
                             "resume=True (--resume), replace it with overwrite=True (--overwrite), or choose another "
                             "folder (nothing was changed)")

    def _catch_sigint(self):
        """Make Ctrl-C finish the current step (then save and stop) instead of cutting it short; a second
        Ctrl-C stops at once. Only in the main thread, and only over Python's default handler."""
        if threading.current_thread() is not threading.main_thread() \
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None

        def on_sigint(signum, frame):
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True
            print(f"\ninterrupted: finishing step {self.step + 1}"
                  + (" and saving a checkpoint" if self.out_dir is not None else "")
                  + " (Ctrl-C again to stop at once, saving nothing)", file=sys.stderr, flush=True)

        return signal.signal(signal.SIGINT, on_sigint)

    def _batches(self, data: Iterable[Any]):
        """Walk ``data`` epoch by epoch, yielding ``(batch, last_of_epoch)`` and skipping what a resumed
        run already consumed."""
        while True:
            it = iter(data)
            for _ in range(self.epoch_step):
                next(it, None)
            nxt = next(it, _END)
            if nxt is _END and self.epoch_step == 0:
                raise ValueError("data: the iterable yielded no batches")
            while nxt is not _END:
                batch, nxt = nxt, next(it, _END)
                yield batch, nxt is _END

    def _done(self) -> bool:
        if self.should_stop:
            return True
        if self.max_steps is not None and self.step >= self.max_steps:
            return True
        return self.max_epochs is not None and self.epoch >= self.max_epochs

    def _train_step(self, loss_fn, batch) -> dict[str, float]:
        out = loss_fn(self.model, batch)
        if isinstance(out, Mapping):
            if "loss" not in out:
                raise ValueError("loss_fn: a returned dict must hold the loss under 'loss'")
            loss, extra = out["loss"], {k: v for k, v in out.items() if k != "loss"}
        else:
            loss, extra = out, {}
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise TypeError("loss_fn: must return a scalar loss tensor (or a dict holding one under 'loss')")
        value = _scalar(loss)
        if not math.isfinite(value):
            last = f"; the checkpoint in {self.out_dir} is from an earlier step" if self._wrote_checkpoint else ""
            raise FloatingPointError(
                f"loss: became {value} at step {self.step + 1}; training stopped before that step changed the "
                f"weights{last}. Lower the learning rate (lr {self.lr:g}) or clip the gradients (clip_grad_norm)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        logs = {"loss": value}
        if self.clip_grad_norm is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            logs["grad_norm"] = _scalar(torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm))
        self.optimizer.step()
        logs.update({k: _scalar(v) for k, v in extra.items()})
        return logs

    def _evaluate(self, evaluate) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = {k: _scalar(v) for k, v in dict(evaluate(self.model)).items()}
        finally:
            self.model.train(was_training)
        if self.monitor is not None and self.monitor not in metrics:
            raise ValueError(f"monitor: {self.monitor!r} is not among the evaluation metrics {sorted(metrics)}")
        return metrics

    def _track_best(self, metrics: Mapping[str, float]) -> None:
        if self.monitor is None:
            return
        value = metrics[self.monitor]
        better = self.best_metric is None or (value > self.best_metric if self.mode == "max" else value < self.best_metric)
        if better and not math.isnan(value):
            self.best_metric, self.best_step, self.evals_since_best = value, self.step, 0
            if self.keep_best:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        else:
            self.evals_since_best += 1
        if self.target is not None and (value >= self.target if self.mode == "max" else value <= self.target):
            self.should_stop, self.stop_reason = True, "target"
        elif self.patience is not None and self.evals_since_best >= self.patience:
            self.should_stop, self.stop_reason = True, "patience"

    def _write_outputs(self) -> None:
        assert self.out_dir is not None
        write_csv(self.out_dir / "metrics.csv", self.history)
        write_json(self.out_dir / "config.json", self.config)
        self.save_checkpoint()

    def _fire(self, name: str, *args: Any) -> None:
        for cb in self.callbacks:
            method = getattr(cb, name, None)
            if method is not None:
                method(self, *args)


def check_model_state(model: nn.Module, state: Mapping[str, Tensor], model_class: str | None, source: str) -> None:
    """Refuse a state dict written for another model, naming what differs."""
    expected = f"{type(model).__module__}.{type(model).__qualname__}"
    if model_class is not None and model_class != expected:
        raise ValueError(f"checkpoint: {source!r} was written for {model_class}, not {expected}; "
                         "load it into the model it was trained with")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        detail = "; ".join(part for part in (
            f"missing {missing[:5]}" if missing else "",
            f"unexpected {unexpected[:5]}" if unexpected else "",
            "shape mismatch in " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:5])
            if shapes else "",
        ) if part)
        raise ValueError(f"checkpoint: {source!r} does not fit this model ({detail}); it comes from a model of "
                         "another size or kind")


def _check_groups(optimizer: torch.optim.Optimizer) -> None:
    """Every parameter group's learning rate and weight decay are finite, in range, and representable in
    the dtype of its parameters (``lr=1e300`` would be ``inf`` in float32)."""
    for i, group in enumerate(optimizer.param_groups):
        for key, low_ok in (("lr", False), ("weight_decay", True)):
            value = group.get(key)
            if value is None:
                continue
            value = float(value)
            if not math.isfinite(value) or value < 0 or (value == 0 and not low_ok):
                raise ValueError(f"{key}: must be a finite number {'>= 0' if low_ok else '> 0'}, got {value!r} "
                                 f"(parameter group {i})")
            for p in group["params"]:
                if p.dtype.is_floating_point and value > torch.finfo(p.dtype).max:
                    raise ValueError(f"{key}: {value:g} overflows {p.dtype}, the dtype of the parameters it "
                                     f"updates (largest value {torch.finfo(p.dtype).max:.3g})")


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def _check_same_settings(saved: Mapping[str, Any], current: Mapping[str, Any], source: str) -> None:
    """Refuse to resume a run whose settings differ from the checkpoint's, naming each difference."""
    def plain(config):  # as config.json holds them: tuples become lists, odd values strings
        return _flat(json.loads(json.dumps(config, default=str)))

    old, new = plain(saved), plain(current)
    allowed = {f"trainer.{key}" for key in RESUMABLE_SETTINGS}
    differ = [k for k in sorted(set(old) | set(new)) if k not in allowed and old.get(k) != new.get(k)]
    if differ:
        shown = "; ".join(f"{k.removeprefix('trainer.')} {old.get(k)!r} there, {new.get(k)!r} now" for k in differ)
        raise ValueError(f"resume: {source!r} was trained with other settings ({shown}); resume with the settings it "
                         f"was trained with (only {', '.join(RESUMABLE_SETTINGS)} may change), or start a new run "
                         "in another folder")


def _as_python_rng_state(state: Any) -> tuple:
    # torch.load gives lists back where random.getstate() had tuples
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def _progress_bar(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(dynamic_ncols=True, leave=False, **kwargs)
