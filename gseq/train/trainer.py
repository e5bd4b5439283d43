"""The one training loop shared by every gseq model.

A :class:`Trainer` knows nothing about graphs, palindromes or text. A task hands it three things:

* ``loss_fn(model, batch)``: returns the loss tensor, or a dict with ``"loss"`` and any other scalar
  training metrics to log; it calls ``model(...)`` (under ``torchrun`` the model is wrapped in
  ``DistributedDataParallel``, whose forward is what synchronises the gradients);
* ``data``: either a *sampler* ``data(generator) -> batch`` called once per step (palindromes, text
  windows, or ``lambda g: graph`` for full-batch training), or a re-iterable of batches (a list, a
  ``DataLoader``, a :class:`~gseq.loader.NeighborLoader`) that is walked epoch by epoch;
* ``evaluate(model) -> dict``: optional, called every ``eval_every`` steps under ``torch.no_grad()``
  with the model in eval mode. A value may be a :class:`~gseq.train.Mean` (a sum and a count), which
  distributed ranks combine exactly.

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

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same loop trains one replica per process on
``torch.distributed`` (see :mod:`gseq.train.distributed`): the first ``fit`` creates the process group
(NCCL on CUDA, one device per local rank; gloo on the CPU; destroyed when the process exits), ``fit``
wraps the model in ``DistributedDataParallel``, hands each rank its own share of the data (a sampler
gets a generator seeded from ``(seed, rank)``; a list is split as ``DistributedSampler`` splits it,
reshuffled per epoch; an object with ``shard(rank, world_size, epoch=, seed=)`` such as
``NeighborLoader`` splits itself), reduces metrics exactly, stops every rank at the same step, and lets
rank 0 alone write files and show progress. Callbacks run on every rank; one that writes files checks
:attr:`is_main`.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import (CHECKPOINT_FORMAT, RESUMABLE_SETTINGS, check_model_state, check_same_settings, rng_state,
                         set_rng_state)
from .distributed import (DistEnv, Distributed, Mean, group_env, launched_env, rank_device, rank_seed,
                          shard_sequence)
from ..checks import choice, instance, non_negative_float, positive_float, positive_int
from ..io import check_writable_dir, load_checkpoint, remove_stale_temp_files, save_checkpoint, write_csv, write_json
from .runtime import check_optimizer_groups, move_to, resolve_device, seed_everything

__all__ = ["Trainer", "TrainingInterrupted"]

#: the files a Trainer writes into ``out_dir``
_OUTPUTS = ("checkpoint.pt", "metrics.csv", "config.json")
_END = object()
_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


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


def _scalar(value: Any) -> float:
    return float(value.detach().item()) if isinstance(value, Tensor) else float(value)


class Trainer:
    """One readable training loop with callbacks, checkpoints and exact resume, on one process or many.

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
            handed to a sampler ``data`` (on rank ``r`` of a distributed run: ``rank_seed(seed, r)``).
            (default: None, not seeded)
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``... Under ``torchrun`` every
            process takes ``cuda:LOCAL_RANK`` (``"auto"``/``"cuda"``) or the CPU. (default: ``"auto"``)
        callbacks: plain objects with any of the ``on_*`` methods listed in the module docstring.
        progress: show a tqdm progress bar (on rank 0 only). (default: True)
        out_dir: folder for ``metrics.csv``, ``config.json`` and ``checkpoint.pt`` (written by rank 0);
            None writes nothing. Checked to be writable when ``fit`` starts; a checkpoint already there
            is refused unless ``fit(resume=True)`` continues it or ``overwrite`` replaces it.
        overwrite: let a fresh run replace a checkpoint in ``out_dir``. (default: False)
        checkpoint_every: write ``out_dir/checkpoint.pt`` every this many steps (and at the end).
            (default: only at the end when ``out_dir`` is given)
        config: the caller's settings (model size, data, ...) saved in ``config.json`` and in
            checkpoints beside the trainer's own.
        checkpoint_extra: extra plain data stored in every checkpoint (e.g. a vocabulary).
        desc: label of the progress bar.
        distributed: None (default) trains on ``torch.distributed`` when launched by ``torchrun`` with
            more than one process (or inside a process group the caller created), alone otherwise; False
            always trains alone; True refuses to run alone.
        dist_timeout: seconds a collective waits for the other ranks before the run stops with
            :class:`~gseq.train.RankLostError`. (default: ``GSEQ_DIST_TIMEOUT``, else 300)
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
        distributed: bool | None = None,
        dist_timeout: float | None = None,
    ) -> None:
        instance("model", model, nn.Module, "a torch.nn.Module")
        name = choice("optimizer", str(optimizer).lower(), sorted(_OPTIMIZERS))
        positive_float("lr", lr)
        non_negative_float("weight_decay", weight_decay)
        positive_float("clip_grad_norm", clip_grad_norm, none_ok=True)
        for arg, value in (("max_steps", max_steps), ("max_epochs", max_epochs), ("patience", patience),
                           ("checkpoint_every", checkpoint_every)):
            positive_int(arg, value, none_ok=True)
        positive_int("eval_every", eval_every)
        choice("mode", mode, ("max", "min"))
        if (target is not None or patience is not None or keep_best) and monitor is None:
            raise ValueError("monitor: name the evaluation metric (e.g. monitor='val_acc') to use target, "
                             "patience or keep_best")

        self.dist_env = _distributed_env(distributed)
        self.rank = self.dist_env.rank if self.dist_env else 0
        self.world_size = self.dist_env.world_size if self.dist_env else 1
        self.dist_timeout = dist_timeout
        self.device = rank_device(device, self.dist_env) if self.dist_env else resolve_device(device)
        self.model = model.to(self.device)
        self.optimizer_name = name
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        groups = param_groups(self.model) if callable(param_groups) else param_groups
        if groups is None:
            groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        self.optimizer = _OPTIMIZERS[name](groups, lr=self.lr, weight_decay=self.weight_decay,
                                           **dict(optimizer_kwargs or {}))
        check_optimizer_groups(self.optimizer)
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
        #: the task's config (a gseq.config.Config) when one was given: it spells names and knows what may change
        self.run_config = config if hasattr(config, "resume_differences") else None
        self.user_config = config.to_dict() if self.run_config is not None else dict(config or {})
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.desc = desc

        self.generator = torch.Generator()
        self.generator.manual_seed(rank_seed(seed, self.rank) if seed is not None
                                   else int(torch.randint(2**62, ()).item()))
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
        self._dist: Distributed | None = None  # the process group, while fit runs

    @property
    def is_main(self) -> bool:
        """True in a single process, and on rank 0 of a distributed run: the one that writes and reports."""
        return self.rank == 0

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
        if self.world_size > 1:
            trainer["world_size"] = self.world_size
        return {**self.user_config, "trainer": trainer}

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "checkpoint.pt" if self.out_dir is not None else None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training stopped.

        While a distributed ``fit`` runs this is a collective (every rank's RNG states are gathered):
        call it on every rank.
        """
        rng = rng_state(self.generator)
        state = {
            "format": CHECKPOINT_FORMAT,
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "model": self.model.state_dict(),  # the module itself, never DDP's wrapper: no "module." prefix
            "optimizer": self.optimizer.state_dict(),
            "step": self.step, "epoch": self.epoch, "epoch_step": self.epoch_step,
            "config": self.config, "history": self.history,
            "best": {"metric": self.best_metric, "step": self.best_step, "evals_since": self.evals_since_best},
            "best_model": self.best_state,
            "rng": rng,
            "extra": self.checkpoint_extra,
        }
        if self._dist is not None:
            state["rng_ranks"] = self._dist.gather(rng)
        return state

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write :meth:`state_dict` atomically to ``path`` (default ``out_dir/checkpoint.pt``); in a
        distributed run every rank calls it and rank 0 writes."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("path: give a checkpoint path, or construct the Trainer with out_dir")
        state = self.state_dict()
        if self.is_main:
            save_checkpoint(path, state)
            self._fire("on_checkpoint", path)
        if path == self.checkpoint_path:
            self._wrote_checkpoint = True
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> dict[str, Any]:
        """Restore model, optimizer, counters, history, best state and RNG states from a checkpoint.

        In a distributed ``fit`` rank 0 reads the file and hands it to the others, so only rank 0 needs
        to see it; each rank restores its own RNG states.

        Raises:
            ValueError: the checkpoint is unreadable, was written for another model (another class, or
                parameters of other names or shapes), or ran with other settings than this trainer's
                (each one is named; only those in :data:`RESUMABLE_SETTINGS` may differ; a distributed
                run resumes with as many processes as wrote it).
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("path: give a checkpoint path, or construct the Trainer with out_dir")
        ckpt = self._on_main(self._read_checkpoint, path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.epoch, self.epoch_step = ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]
        self.history = list(ckpt["history"])
        best = ckpt["best"]
        self.best_metric, self.best_step, self.evals_since_best = best["metric"], best["step"], best["evals_since"]
        self.best_state = ckpt["best_model"]
        self.last_eval = {k: v for k, v in (self.history[-1] if self.history else {}).items()
                          if k not in ("step", "epoch", "seconds")}
        set_rng_state(ckpt["rng_ranks"][self.rank] if "rng_ranks" in ckpt else ckpt["rng"], self.generator)
        self._resumed = True
        return ckpt

    def _read_checkpoint(self, path: Path) -> dict[str, Any]:
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint: {str(path)!r} is not a gseq Trainer checkpoint "
                             f"(format {ckpt.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        check_same_settings(ckpt.get("config") or {}, self.config, source=str(path), config=self.run_config)
        check_model_state(self.model, ckpt["model"], ckpt.get("model_class"), source=str(path))
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
            evaluate: ``evaluate(model) -> {name: number or Mean}``, run every ``eval_every`` steps.
            resume: continue from ``out_dir/checkpoint.pt`` when it exists.

        Returns:
            ``{"step", "epoch", "stop_reason", "best_metric", "best_step", "seconds", "last_eval"}``.

        Raises:
            FloatingPointError: the loss became NaN or infinite (the step is named; weights unchanged).
            TrainingInterrupted: Ctrl-C; the step in progress was finished and saved.
            RankLostError: another rank died, hung past ``dist_timeout`` or lost its connection.
        """
        sampler = callable(data) and not hasattr(data, "__iter__")
        if not sampler and not hasattr(data, "__iter__"):
            raise TypeError("data: expected a sampler callable(generator) -> batch or an iterable of batches, "
                            f"got {type(data).__name__}")
        if self.max_steps is None and self.max_epochs is None:
            raise ValueError("max_steps / max_epochs: give at least one, or training would never stop")
        if evaluate is None and self.monitor is not None:
            raise ValueError(f"evaluate: monitor={self.monitor!r} needs an evaluate function")
        if self.dist_env is not None:
            self._dist = Distributed.start(self.dist_env, self.device, self.dist_timeout)
        try:
            return self._fit(loss_fn, data, evaluate, sampler, resume)
        except Exception as err:
            if self._dist is not None and _is_comm_error(err):
                raise self._dist.lost_rank_error(err, self.step) from err
            raise
        finally:
            self._dist = None  # the group itself stays for the next fit (see Distributed)

    def _fit(self, loss_fn, data, evaluate, sampler: bool, resume: bool) -> dict[str, Any]:
        if self.out_dir is not None:
            self._on_main(self._prepare_out_dir, resume)
        if self.seed is not None and not self._resumed:
            seed_everything(rank_seed(self.seed, self.rank))
        if resume and not self._resumed and self._on_main(self._has_checkpoint):
            self.load_checkpoint()
        self.should_stop, self.stop_reason = False, None
        self._start, self._seconds_before = time.perf_counter(), (self.history[-1]["seconds"] if self.history else 0.0)
        model = self._wrapped_model()
        self._bar = _progress_bar(total=self.max_steps, initial=self.step, disable=not (self.progress and self.is_main),
                                  desc=self.desc)
        self._fire("on_fit_start")
        self.model.train()
        self._interrupted = False
        previous_handler = self._catch_sigint()
        try:
            self._train_loop(model, loss_fn, data, evaluate, sampler)
        except KeyboardInterrupt:  # a second Ctrl-C, or no handler of ours: the step was cut short, save nothing
            raise TrainingInterrupted(self.step, None, "the step in progress was cut short, nothing saved since the "
                                                       "last checkpoint") from None
        finally:
            self._bar.close()
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)

        if self._interrupted:
            if self.out_dir is not None:
                self._write_outputs()
            raise TrainingInterrupted(self.step, self.checkpoint_path if self.out_dir is not None else None)
        if self.stop_reason is None:
            self.stop_reason = ("stopped by a callback" if self.should_stop else
                                "max_steps" if self.max_steps is not None and self.step >= self.max_steps else
                                "max_epochs")
        if self.out_dir is not None:
            self._write_outputs()
        if self.keep_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        result = {
            "step": self.step, "epoch": self.epoch, "stop_reason": self.stop_reason,
            "best_metric": self.best_metric, "best_step": self.best_step,
            "seconds": self._seconds(), "last_eval": dict(self.last_eval),
        }
        self._fire("on_fit_end", result)
        return result

    def _train_loop(self, model: nn.Module, loss_fn, data, evaluate, sampler: bool) -> None:
        """Steps until a stopping rule fires: a batch, a step, callbacks, and every ``eval_every`` steps a
        row of history (with an evaluation) and, every ``checkpoint_every`` steps, the outputs."""
        batches = None if sampler else self._batches(data)
        running: dict[str, list[float]] = {}
        while not self._done() and not self._interrupted:
            batch, last_of_epoch = (data(self.generator), True) if sampler else next(batches)
            logs = self._training_step(model, loss_fn, move_to(batch, self.device))
            self.step += 1
            self.epoch_step += 1
            if last_of_epoch:
                self.epoch, self.epoch_step = self.epoch + 1, 0
            for k, v in logs.items():
                running.setdefault(k, []).append(v)
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
            self._fire("on_step_end", self.step, logs)
            self._agree_to_stop()
            if self._interrupted:
                break
            if self.step % self.eval_every == 0 or self._done():
                self._log_row(running, evaluate)
                running = {}
            if self.checkpoint_every and self.step % self.checkpoint_every == 0 and self.out_dir is not None:
                self._write_outputs()

    def _training_step(self, model: nn.Module, loss_fn, batch) -> dict[str, float]:
        """One optimizer step on ``batch``; returns the step's scalar logs (the loss first)."""
        out = loss_fn(model, batch)
        if isinstance(out, Mapping):
            if "loss" not in out:
                raise ValueError("loss_fn: a returned dict must hold the loss under 'loss'")
            loss, extra = out["loss"], {k: v for k, v in out.items() if k != "loss"}
        else:
            loss, extra = out, {}
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise TypeError("loss_fn: must return a scalar loss tensor (or a dict holding one under 'loss')")
        value = _scalar(loss)
        bad = [self.rank] if not math.isfinite(value) else []
        if self._dist is not None:  # every rank stops together, before any of them takes the step
            bad = [r for r, flag in enumerate(self._dist.flags(bool(bad))) if flag]
        if bad:
            last = f"; the checkpoint in {self.out_dir} is from an earlier step" if self._wrote_checkpoint else ""
            where = f" on rank {', '.join(map(str, bad))}" if self._dist is not None else ""
            shown = value if not math.isfinite(value) else "not finite"
            raise FloatingPointError(
                f"loss: became {shown}{where} at step {self.step + 1}; training stopped before that step changed "
                f"the weights{last}. Lower the learning rate (lr {self.lr:g}) or clip the gradients (clip_grad_norm)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        logs = {"loss": value}
        if self.clip_grad_norm is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            logs["grad_norm"] = _scalar(torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm))
        self.optimizer.step()
        logs.update({k: _scalar(v) for k, v in extra.items()})
        return logs

    def _log_row(self, running: Mapping[str, list[float]], evaluate) -> None:
        """Append a history row: the mean training logs since the last row (over all ranks) and an
        evaluation; update the best state and the stopping rules; fire ``on_eval``."""
        row: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        row.update(self._reduce({k: Mean(sum(v), len(v)) for k, v in running.items()}))
        if evaluate is not None:
            metrics = self._evaluate(evaluate)
            row.update(metrics)
            self._track_best(metrics)
        row["seconds"] = self._seconds()
        self.history.append(row)
        self.last_eval = {k: v for k, v in row.items() if k not in ("step", "epoch", "seconds")}
        if evaluate is not None:
            self._fire("on_eval", self.step, dict(self.last_eval))
            shown = {k: f"{v:.4f}" for k, v in self.last_eval.items() if k != "loss"}
            self._bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", **dict(list(shown.items())[:3]))

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

    def _has_checkpoint(self) -> bool:
        return self.checkpoint_path is not None and self.checkpoint_path.is_file()

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
            if self.is_main:
                print(f"\ninterrupted: finishing step {self.step + 1}"
                      + (" and saving a checkpoint" if self.out_dir is not None else "")
                      + " (Ctrl-C again to stop at once, saving nothing)", file=sys.stderr, flush=True)

        return signal.signal(signal.SIGINT, on_sigint)

    def _batches(self, data: Iterable[Any]):
        """Walk ``data`` epoch by epoch, yielding ``(batch, last_of_epoch)`` and skipping what a resumed
        run already consumed."""
        while True:
            it = iter(self._epoch_data(data))
            for _ in range(self.epoch_step):
                next(it, None)
            nxt = next(it, _END)
            if nxt is _END and self.epoch_step == 0:
                raise ValueError("data: the iterable yielded no batches")
            while nxt is not _END:
                batch, nxt = nxt, next(it, _END)
                yield batch, nxt is _END

    def _epoch_data(self, data: Iterable[Any]) -> Iterable[Any]:
        """This rank's batches of the current epoch: all of ``data`` in a single process."""
        if self._dist is None:
            return data
        seed = self.seed if self.seed is not None else 0
        sampler = getattr(data, "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler):  # the caller sharded it already
            sampler.set_epoch(self.epoch)
            return data
        if callable(getattr(data, "shard", None)):
            return data.shard(self.rank, self.world_size, epoch=self.epoch, seed=seed)
        if isinstance(data, Sequence):
            return shard_sequence(data, self.rank, self.world_size, epoch=self.epoch, seed=seed)
        raise ValueError(f"data: a distributed run splits its data by rank, but a {type(data).__name__} can be split "
                         "neither as a sequence (a list of batches) nor by a shard(rank, world_size, epoch=, seed=) "
                         "method; pass a list, a DataLoader with a DistributedSampler, or a gseq NeighborLoader")

    def _done(self) -> bool:
        if self.should_stop:
            return True
        if self.max_steps is not None and self.step >= self.max_steps:
            return True
        return self.max_epochs is not None and self.epoch >= self.max_epochs

    def _agree_to_stop(self) -> None:
        """A stop (a callback's, or Ctrl-C) on any rank stops every rank after this step."""
        if self._dist is None:
            return
        stop, interrupted = self._dist.flags_any([self.should_stop, self._interrupted])
        if stop and not self.should_stop:
            self.should_stop, self.stop_reason = True, self.stop_reason or "stopped on another rank"
        self._interrupted = interrupted

    def _evaluate(self, evaluate) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                raw = dict(evaluate(self.model))
        finally:
            self.model.train(was_training)
        means = {k: v for k, v in raw.items() if isinstance(v, Mean)}
        plain = {k: _scalar(v) for k, v in raw.items() if k not in means}
        if self._dist is not None:  # the same numbers on every rank: stopping rules agree
            plain = self._dist.broadcast(plain)
        combined = {**plain, **self._reduce(means)}
        metrics = {k: combined[k] for k in raw}  # in the evaluate function's order
        if self.monitor is not None and self.monitor not in metrics:
            raise ValueError(f"monitor: {self.monitor!r} is not among the evaluation metrics {sorted(metrics)}")
        return metrics

    def _reduce(self, means: Mapping[str, Mean]) -> dict[str, float]:
        """The value of every :class:`Mean`, its sums and counts added over all ranks."""
        if self._dist is not None:
            means = self._dist.all_reduce_means(means)
        return {k: float(m) for k, m in means.items()}

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
        if self.is_main:
            write_csv(self.out_dir / "metrics.csv", self.history)
            write_json(self.out_dir / "config.json", self.config)
        self.save_checkpoint()

    def _wrapped_model(self) -> nn.Module:
        """The model ``loss_fn`` trains: ``DistributedDataParallel`` around it in a distributed run."""
        if self._dist is None:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def _on_main(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on rank 0, its result (or its ValueError) on every rank."""
        if self._dist is None:
            return fn(*args)
        outcome: tuple[str, Any] = ("ok", None)
        if self.is_main:
            try:
                outcome = ("ok", fn(*args))
            except (ValueError, FileNotFoundError, OSError) as err:
                outcome = ("error", f"{err}")
        kind, value = self._dist.broadcast(outcome)
        if kind == "error":
            raise ValueError(value)
        return value

    def _seconds(self) -> float:
        return self._seconds_before + time.perf_counter() - self._start

    def _fire(self, name: str, *args: Any) -> None:
        for cb in self.callbacks:
            method = getattr(cb, name, None)
            if method is not None:
                method(self, *args)


def _distributed_env(distributed: bool | None) -> DistEnv | None:
    """Where this process trains: None alone, else its place among the ranks."""
    if distributed not in (None, True, False):
        raise TypeError(f"distributed: expected None, True or False, got {distributed!r}")
    if distributed is False:
        return None
    env = group_env() or launched_env()
    if env is None and distributed:
        raise ValueError("distributed: True needs a launch by torchrun with more than one process (WORLD_SIZE, RANK, "
                         "LOCAL_RANK) or a process group of more than one process; use distributed=None to train "
                         "alone when there is none")
    return env


def _is_comm_error(err: BaseException) -> bool:
    """An error raised by a collective because another rank is gone (gloo and NCCL word it differently)."""
    import torch.distributed as dist

    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(s in text for s in (
        "gloo", "Gloo", "NCCL", "Connection closed", "Connection reset", "Broken pipe", "timed out", "Timed out"))


def _progress_bar(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(dynamic_ncols=True, leave=False, **kwargs)
