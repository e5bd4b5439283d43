"""The one training loop shared by every gseq model.

A :class:`Trainer` knows nothing about graphs, palindromes or text. A task hands it three things:

* ``loss_fn(model, batch)``: the loss tensor, or a dict with ``"loss"`` and other scalar metrics to log;
  it calls ``model(...)`` (under ``torchrun``, ``DistributedDataParallel``'s forward, which syncs gradients);
* ``data``: a *sampler* ``data(generator) -> batch`` called once per step (palindromes, text windows,
  ``lambda g: graph`` for full-batch training), or a re-iterable of batches walked epoch by epoch (a list,
  a ``DataLoader``, a :class:`~gseq.loader.NeighborLoader`). An iterable with a ``generator`` attribute
  (a ``torch.Generator``) has its state at the start of each epoch saved, so a resumed run walks the
  same batches;
* ``evaluate(model) -> dict``: optional, every ``eval_every`` steps under ``torch.no_grad()`` in eval
  mode; a value may be a :class:`~gseq.train.Mean` (a sum and a count), which ranks combine exactly.

The loop is ``fit -> _train_loop -> _training_step``. Where it runs (one process, or one rank of many
under ``torchrun``) is the :mod:`~gseq.train.strategy` object's business; stopping rules and Ctrl-C are
:mod:`~gseq.train.callbacks` (the ``on_*`` methods a callback may define are listed there); the run
folder's policy is :class:`~gseq.train.RunFolder`'s.

Nothing is lost: a checkpoint holds the model, optimizer, counters, history, the training logs since the
last row, the callbacks' states, the data generator's epoch-start state and every RNG state, so a resumed
run continues bitwise; a non-finite loss stops with a ``FloatingPointError`` naming the step (before it
changes the weights); Ctrl-C finishes the step in progress (its row and checkpoint included) and raises
:class:`TrainingInterrupted`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import boolean, choice, instance, non_negative_float, positive_float, positive_int, random_seed
from ..io import save_checkpoint, write_csv, write_json
from .callbacks import Best, Patience, Target, TrainingInterrupted, stop_on_sigint
from .checkpoint import read_checkpoint, restore_trainer, trainer_settings, trainer_state
from .distributed import Mean
from .run_folder import RunFolder
from .runtime import _OPTIMIZERS, make_optimizer, move_to, seed_everything  # noqa: F401 - _OPTIMIZERS re-exported
from .strategy import choose_strategy

__all__ = ["Trainer", "TrainingInterrupted"]

_END = object()


def _scalar(value: Any) -> float:
    return float(value.detach().item()) if isinstance(value, Tensor) else float(value)


class Trainer:
    """One readable training loop with callbacks, checkpoints and exact resume, on one process or many.

    Args:
        model: the ``nn.Module`` to train (moved to the device).
        optimizer, lr, weight_decay, optimizer_kwargs: ``"adam"`` (default), ``"adamw"``, ``"rmsprop"`` or
            ``"sgd"``, and its arguments. (default: lr ``1e-3``, weight decay ``0``)
        param_groups: torch's per-group dicts, or a callable ``model -> groups`` (Kipf & Welling's weight
            decay on the first GCN layer). (default: one group)
        clip_grad_norm: clip the global gradient norm to this; None disables. (default: None)
        max_steps, max_epochs: stop after this many steps / passes over an iterable ``data`` (a sampler's
            step is an epoch); at least one is needed.
        eval_every: a history row (and an evaluation) every this many steps and after the last. (default: 1)
        eval_at_start: also a row at step 0, before the first step, which the stopping rules see like any other
            (keep-best may then return the starting weights, when no step beats them; a resumed run has it
            already). (default: False)
        monitor, mode, target, patience, keep_best: the metric of the stopping rules, larger (``"max"``) or
            smaller better, and the rules :class:`~gseq.train.Target`, :class:`~gseq.train.Patience`,
            :class:`~gseq.train.Best` (keep-best loads the best evaluation's weights at the end).
        seed: seeds the global generators when ``fit`` starts and :attr:`generator`, handed to a sampler
            (rank ``r``: ``rank_seed(seed, r)``). (default: None, not seeded)
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...; under ``torchrun``
            ``cuda:LOCAL_RANK`` or the CPU. (default: ``"auto"``)
        callbacks, progress, desc: plain objects with ``on_*`` methods; a tqdm bar (rank 0) and its label.
        out_dir, overwrite: the run folder (``metrics.csv``, ``config.json``, ``checkpoint.pt``, written by
            rank 0; None writes nothing) under :class:`~gseq.train.RunFolder`'s policy, and whether a fresh
            run may replace the run there. (default: None, False)
        checkpoint_every: also save every this many steps. (default: only at the end)
        config: the task's settings, a :class:`gseq.config.Config` (its resume rules apply) or a mapping,
            saved in ``config.json`` and checkpoints beside the trainer's own.
        checkpoint_extra: plain data stored in every checkpoint (e.g. a vocabulary).
        distributed, dist_timeout: None (default) trains on ``torch.distributed`` when launched by
            ``torchrun`` with more than one process, False always alone, True refuses to run alone; seconds
            a collective waits before :class:`~gseq.train.RankLostError` (``GSEQ_DIST_TIMEOUT``, else 300).
    """

    def __init__(self, model: nn.Module, *, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 param_groups: list[dict] | Callable[[nn.Module], list[dict]] | None = None,
                 optimizer_kwargs: Mapping[str, Any] | None = None, clip_grad_norm: float | None = None,
                 max_steps: int | None = None, max_epochs: int | None = None, eval_every: int = 1,
                 eval_at_start: bool = False, monitor: str | None = None, mode: str = "max", target: float | None = None,
                 patience: int | None = None, keep_best: bool = False, seed: int | None = None,
                 device: str | torch.device | None = "auto", callbacks: Iterable[Any] = (), progress: bool = True,
                 out_dir: str | Path | None = None, overwrite: bool = False, checkpoint_every: int | None = None,
                 config: Any = None, checkpoint_extra: Mapping[str, Any] | None = None, desc: str | None = None,
                 distributed: bool | None = None, dist_timeout: float | None = None) -> None:
        instance("model", model, nn.Module, "a torch.nn.Module")
        self.optimizer_name = choice("optimizer", str(optimizer).lower(), sorted(_OPTIMIZERS))
        self.lr, self.weight_decay = float(positive_float("lr", lr)), float(non_negative_float("weight_decay",
                                                                                               weight_decay))
        self.clip_grad_norm = positive_float("clip_grad_norm", clip_grad_norm, none_ok=True)
        for arg, value in (("max_steps", max_steps), ("max_epochs", max_epochs), ("checkpoint_every", checkpoint_every)):
            positive_int(arg, value, none_ok=True)
        self.eval_every = positive_int("eval_every", eval_every)
        self.eval_at_start = boolean("eval_at_start", eval_at_start)
        self.monitor, self.mode = monitor, choice("mode", mode, ("max", "min"))
        if (target is not None or patience is not None or keep_best) and monitor is None:
            raise ValueError("monitor: name the evaluation metric (e.g. monitor='val_acc') to use target, "
                             "patience or keep_best")
        self.strategy = choose_strategy(distributed, device, dist_timeout)
        self.rank, self.world_size, self.device = self.strategy.rank, self.strategy.world_size, self.strategy.device
        self.model = model.to(self.device)
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.optimizer = make_optimizer(self.optimizer_name, self.model, param_groups, lr=self.lr,
                                        weight_decay=self.weight_decay, **self.optimizer_kwargs)
        self.max_steps, self.max_epochs, self.checkpoint_every = max_steps, max_epochs, checkpoint_every
        self.target, self.patience, self.keep_best = target, patience, keep_best
        self.seed = random_seed("seed", seed, none_ok=True)
        self.best = Best(monitor, mode, keep_best) if monitor is not None else None
        rules = [self.best, Target(monitor, target, mode) if target is not None else None,
                 Patience(monitor, patience, mode) if patience is not None else None]
        self.callbacks = [cb for cb in rules if cb is not None] + list(callbacks)
        self.progress, self.desc = progress, desc
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.overwrite = bool(overwrite)
        self.run_config = config if hasattr(config, "resume_differences") else None  # a gseq.config.Config
        self.user_config = config.to_dict() if self.run_config is not None else dict(config or {})
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.generator = torch.Generator()
        self.generator.manual_seed(self.strategy.data_seed(seed) if seed is not None
                                   else int(torch.randint(2**62, ()).item()))
        self.step = self.epoch = self.epoch_step = 0  # epoch_step: batches taken from the current pass
        self.history: list[dict[str, Any]] = []
        self.running: dict[str, list[float]] = {}  # training logs since the last history row
        self.last_eval: dict[str, float] = {}
        self.should_stop, self.stop_reason, self.interrupted = False, None, False
        self.resumed_from: int | None = None  # the step a resumed fit started from
        self.data_state: Tensor | None = None  # the data generator's state at the start of this epoch
        self._own_checkpoint = False  # a checkpoint this trainer wrote may be continued without resume=True

    is_main = property(lambda self: self.strategy.is_main, doc="True on the process that writes and reports.")
    best_metric = property(lambda self: self.best.metric if self.best else None)
    best_step = property(lambda self: self.best.step if self.best else None)

    @property
    def config(self) -> dict[str, Any]:
        """The resolved settings: the caller's, and the trainer's own under ``"trainer"``."""
        return {**self.user_config, "trainer": trainer_settings(self)}

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "checkpoint.pt" if self.out_dir is not None else None

    def _path(self, path: str | Path | None) -> Path:
        if path is None and self.checkpoint_path is None:
            raise ValueError("path: give a checkpoint path, or construct the Trainer with out_dir")
        return Path(path) if path is not None else self.checkpoint_path

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training stopped (a collective in a distributed
        ``fit``: every rank's RNG states are gathered; call it on every rank)."""
        return trainer_state(self)

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write :meth:`state_dict` atomically to ``path`` (default ``out_dir/checkpoint.pt``); every rank
        calls it, rank 0 writes."""
        path = self._path(path)
        state = self.state_dict()
        if self.is_main:
            save_checkpoint(path, state)
            self._fire("on_checkpoint", path)
        self._own_checkpoint |= path == self.checkpoint_path
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> dict[str, Any]:
        """Restore everything :meth:`state_dict` saved (rank 0 reads the file, the others get it); a
        ValueError names an unreadable file, another model, or each setting that differs."""
        ckpt = self.strategy.on_main(read_checkpoint, self._path(path), self.model, self.config, self.run_config)
        restore_trainer(self, ckpt)
        self.resumed_from = self.step
        return ckpt

    # ------------------------------------------------------------------ the loop
    def fit(self, loss_fn: Callable[[nn.Module, Any], Tensor | Mapping[str, Any]],
            data: Callable[[torch.Generator], Any] | Iterable[Any],
            evaluate: Callable[[nn.Module], Mapping[str, Any]] | None = None, *, resume: bool = False) -> dict[str, Any]:
        """Train ``loss_fn`` on ``data`` (see the module docstring) until a stopping rule fires, continuing
        ``out_dir/checkpoint.pt`` with ``resume``; return ``{"step", "epoch", "stop_reason", "best_metric",
        "best_step", "seconds", "last_eval", "resumed_from"}``. Raises ``FloatingPointError`` (a non-finite
        loss, the step named, weights unchanged), :class:`TrainingInterrupted` (Ctrl-C, after saving) or
        :class:`~gseq.train.RankLostError` (another rank died, hung past ``dist_timeout`` or lost contact)."""
        sampler = callable(data) and not hasattr(data, "__iter__")
        if not sampler and not hasattr(data, "__iter__"):
            raise TypeError("data: expected a sampler callable(generator) -> batch or an iterable of batches, "
                            f"got {type(data).__name__}")
        if self.max_steps is None and self.max_epochs is None:
            raise ValueError("max_steps / max_epochs: give at least one, or training would never stop")
        if evaluate is None and self.monitor is not None:
            raise ValueError(f"evaluate: monitor={self.monitor!r} needs an evaluate function")
        if evaluate is None and self.eval_at_start:
            raise ValueError("evaluate: eval_at_start=True needs an evaluate function")
        self.strategy.start()
        try:
            self._start(resume)
            with stop_on_sigint(self):
                try:
                    interrupted = self._train_loop(self.strategy.wrap(self.model), loss_fn, data, evaluate, sampler)
                except KeyboardInterrupt:  # a second Ctrl-C: the step was cut short, save nothing
                    raise TrainingInterrupted(self.step, None, "the step in progress was cut short, nothing saved "
                                                               "since the last checkpoint") from None
                finally:
                    self._bar.close()
            return self._finish(interrupted)
        except Exception as err:
            lost = self.strategy.lost_rank_error(err, self.step)
            if lost is None:
                raise
            raise lost from err

    def _start(self, resume: bool) -> None:
        """Before the first step: the run folder's policy, seeds, the checkpoint to continue, the bar."""
        if self.out_dir is not None:
            folder = RunFolder(self.out_dir, self.user_config.get("task"), resume=resume, overwrite=self.overwrite,
                               config=self.run_config, continuing=self._own_checkpoint or self.resumed_from is not None)
            resume = self.strategy.on_main(folder.prepare) and resume
        if self.seed is not None and self.resumed_from is None:
            seed_everything(self.strategy.data_seed(self.seed))
        if resume and self.resumed_from is None:
            self.load_checkpoint()
        self.should_stop, self.stop_reason, self.interrupted = False, None, False
        self._started, self._seconds_before = time.perf_counter(), self.history[-1]["seconds"] if self.history else 0.0
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.max_steps, initial=self.step, disable=not (self.progress and self.is_main),
                         desc=self.desc, dynamic_ncols=True, leave=False)
        self._fire("on_fit_start")
        self.model.train()

    def _train_loop(self, model: nn.Module, loss_fn, data, evaluate, sampler: bool) -> bool:
        """Steps until a stopping rule fires or Ctrl-C (then True): a batch, a step, callbacks, every
        ``eval_every`` steps a history row (with an evaluation), every ``checkpoint_every`` steps the outputs."""
        batches = None if sampler else self._batches(data)
        stop = False
        if self.eval_at_start and self.step == 0 and not self.history:  # a resumed run logged it already
            self._log_row(evaluate)
        while not (stop or self._done()):
            batch, last_of_epoch = (data(self.generator), True) if sampler else next(batches)
            logs = self._training_step(model, loss_fn, move_to(batch, self.device))
            self.step, self.epoch_step = self.step + 1, self.epoch_step + 1
            if last_of_epoch:
                self.epoch, self.epoch_step = self.epoch + 1, 0
            for k, v in logs.items():
                self.running.setdefault(k, []).append(v)
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
            self._fire("on_step_end", self.step, logs)
            own = self.should_stop
            self.should_stop, stop = self.strategy.any([own, self.interrupted])  # every rank agrees (the loop
            # ends on the agreed flag: a Ctrl-C that comes later on one rank is seen at the next step)
            if self.should_stop and not own:
                self.stop_reason = "stopped on another rank"
            if self.step % self.eval_every == 0 or self._done():
                self._log_row(evaluate)
            if self.checkpoint_every and self.step % self.checkpoint_every == 0 and self.out_dir is not None:
                self._write_outputs()
        return stop

    def _training_step(self, model: nn.Module, loss_fn, batch) -> dict[str, float]:
        """One optimizer step on ``batch``; returns the step's scalar logs (the loss first)."""
        out = loss_fn(model, batch)
        if isinstance(out, Mapping) and "loss" not in out:
            raise ValueError("loss_fn: a returned dict must hold the loss under 'loss'")
        loss, extra = (out["loss"], {k: v for k, v in out.items() if k != "loss"}) if isinstance(out, Mapping) \
            else (out, {})
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise TypeError("loss_fn: must return a scalar loss tensor (or a dict holding one under 'loss')")
        value = _scalar(loss)
        bad = self.strategy.flagged_ranks(not math.isfinite(value))  # every rank stops before the step
        if bad:
            last = f"; the checkpoint in {self.out_dir} is from an earlier step" if self._own_checkpoint else ""
            where = f" on rank {', '.join(map(str, bad))}" if self.world_size > 1 else ""
            name = self.run_config.name if self.run_config is not None else str  # --lr on the command line
            raise FloatingPointError(
                f"loss: became {value if not math.isfinite(value) else 'not finite'}{where} at step {self.step + 1}; "
                f"training stopped before that step changed the weights{last}. Lower the learning rate ({name('lr')} "
                f"{self.lr:g}) or clip the gradients ({name('clip_grad_norm')})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        logs = {"loss": value}
        if self.clip_grad_norm is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            logs["grad_norm"] = _scalar(torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm))
        self.optimizer.step()
        logs.update({k: _scalar(v) for k, v in extra.items()})
        return logs

    def _log_row(self, evaluate) -> None:
        """A history row: the mean training logs since the last row (over all ranks) and an evaluation,
        which the callbacks (stopping rules among them) see through ``on_eval``."""
        row: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        row.update(self.strategy.reduce({k: Mean(sum(v), len(v)) for k, v in self.running.items()}))
        self.running = {}
        metrics = self._evaluate(evaluate) if evaluate is not None else {}
        row.update(metrics, seconds=self._seconds())
        self.history.append(row)
        self.last_eval = {k: v for k, v in row.items() if k not in ("step", "epoch", "seconds")}
        if evaluate is not None:
            self._fire("on_eval", self.step, dict(self.last_eval))
            shown = {k: f"{v:.4f}" for k, v in list(metrics.items())[:3]}
            self._bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", **shown)

    def _finish(self, interrupted: bool) -> dict[str, Any]:
        """After the loop: the outputs, then TrainingInterrupted (Ctrl-C on any rank) or the summary."""
        if self.out_dir is not None:
            self._write_outputs()
        if interrupted:
            raise TrainingInterrupted(self.step, self.checkpoint_path)
        if self.stop_reason is None:
            self.stop_reason = ("stopped by a callback" if self.should_stop else "max_steps"
                                if self.max_steps is not None and self.step >= self.max_steps else "max_epochs")
        result = {"step": self.step, "epoch": self.epoch, "stop_reason": self.stop_reason,
                  "best_metric": self.best_metric, "best_step": self.best_step, "seconds": self._seconds(),
                  "last_eval": dict(self.last_eval), "resumed_from": self.resumed_from}
        self._fire("on_fit_end", result)
        return result

    # ------------------------------------------------------------------ pieces of the loop
    def _batches(self, data: Iterable[Any]):
        """Walk ``data`` epoch by epoch, yielding ``(batch, last_of_epoch)``; a resumed run restores the data
        generator's epoch-start state and skips the batches it already took."""
        generator = getattr(data, "generator", None)
        generator = generator if isinstance(generator, torch.Generator) else None
        while True:
            if generator is not None:  # where this epoch starts (a resumed run: where the first run's started)
                if self.data_state is not None:
                    generator.set_state(self.data_state)
                self.data_state = generator.get_state()
            it = iter(self.strategy.epoch_data(data, self.epoch, self.seed if self.seed is not None else 0))
            for _ in range(self.epoch_step):
                next(it, None)
            nxt = next(it, _END)
            if nxt is _END and self.epoch_step == 0:
                raise ValueError("data: the iterable yielded no batches")
            while nxt is not _END:
                batch, nxt = nxt, next(it, _END)
                if nxt is _END and generator is not None:
                    self.data_state = generator.get_state()  # saved after the epoch's last step: the next starts here
                yield batch, nxt is _END

    def _done(self) -> bool:
        return self.should_stop or (self.max_steps is not None and self.step >= self.max_steps) or \
            (self.max_epochs is not None and self.epoch >= self.max_epochs)

    def _evaluate(self, evaluate) -> dict[str, float]:
        self.model.eval()
        try:
            with torch.no_grad():
                raw = dict(evaluate(self.model))
        finally:
            self.model.train()  # the loop trains
        means = {k: v for k, v in raw.items() if isinstance(v, Mean)}  # added over ranks; plain numbers rank 0's,
        plain = self.strategy.broadcast({k: _scalar(v) for k, v in raw.items() if k not in means})  # so rules agree
        combined = {**plain, **self.strategy.reduce(means)}
        return {k: combined[k] for k in raw}  # in the evaluate function's order

    def _write_outputs(self) -> None:
        if self.is_main:
            write_csv(self.out_dir / "metrics.csv", self.history)
            write_json(self.out_dir / "config.json", self.config)
        self.save_checkpoint()

    def _seconds(self) -> float:
        return self._seconds_before + time.perf_counter() - self._started

    def _fire(self, name: str, *args: Any) -> None:
        for cb in self.callbacks:
            method = getattr(cb, name, None)
            if method is not None:
                method(self, *args)
