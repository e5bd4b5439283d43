"""The stopping rules and Ctrl-C, as callbacks of :class:`~gseq.train.Trainer` like any other.

A callback is a plain object; the Trainer calls whichever of these methods it defines:
``on_fit_start(trainer)``, ``on_step_end(trainer, step, logs)``, ``on_eval(trainer, step, metrics)``,
``on_checkpoint(trainer, path)``, ``on_fit_end(trainer, result)``. A callback stops training by setting
``trainer.should_stop = True`` (and ``trainer.stop_reason``). One that keeps state across a resume
defines ``state_dict()`` and ``load_state_dict(state)``: the Trainer stores it in every checkpoint (rank 0's
state, which every rank loads; with ``per_rank = True`` each rank's, which each rank gets back).

:class:`Best` (keep the best evaluation, and optionally its weights), :class:`Target` and
:class:`Patience` are what ``Trainer(monitor=..., keep_best=..., target=..., patience=...)`` builds;
:func:`stop_on_sigint` makes Ctrl-C finish the step in progress (its evaluation and checkpoint
included) before training stops.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..checks import choice, positive_int

__all__ = ["Best", "Target", "Patience", "stop_on_sigint", "TrainingInterrupted"]


class _Monitor:
    """A rule on one evaluation metric, larger better (``mode="max"``) or smaller (``"min"``)."""

    def __init__(self, monitor: str, mode: str = "max") -> None:
        self.monitor, self.mode = monitor, choice("mode", mode, ("max", "min"))

    def value(self, metrics: Mapping[str, float]) -> float:
        if self.monitor not in metrics:
            raise ValueError(f"monitor: {self.monitor!r} is not among the evaluation metrics {sorted(metrics)}")
        return metrics[self.monitor]

    def better(self, value: float, than: float | None) -> bool:
        if math.isnan(value):
            return False
        return than is None or (value > than if self.mode == "max" else value < than)


class Best(_Monitor):
    """Remember the best evaluation by ``monitor`` (the first one on ties); with ``keep_weights``, copy
    the model's weights at it and load them back when training ends."""

    def __init__(self, monitor: str, mode: str = "max", keep_weights: bool = False) -> None:
        super().__init__(monitor, mode)
        self.keep_weights = keep_weights
        self.metric: float | None = None
        self.step: int | None = None
        self.weights: dict[str, Any] | None = None

    def on_eval(self, trainer, step: int, metrics: Mapping[str, float]) -> None:
        value = self.value(metrics)
        if self.better(value, self.metric):
            self.metric, self.step = value, step
            if self.keep_weights:
                self.weights = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}

    def on_fit_end(self, trainer, result) -> None:
        if self.weights is not None:
            trainer.model.load_state_dict(self.weights)

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "step": self.step, "weights": self.weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.metric, self.step, self.weights = state["metric"], state["step"], state["weights"]


class Target(_Monitor):
    """Stop as soon as ``monitor`` reaches ``target`` (>= for ``mode="max"``, <= for ``"min"``)."""

    def __init__(self, monitor: str, target: float, mode: str = "max") -> None:
        super().__init__(monitor, mode)
        self.target = target

    def on_eval(self, trainer, step: int, metrics: Mapping[str, float]) -> None:
        value = self.value(metrics)
        if value >= self.target if self.mode == "max" else value <= self.target:
            trainer.should_stop, trainer.stop_reason = True, "target"


class Patience(_Monitor):
    """Stop after ``patience`` evaluations in a row without a better ``monitor``."""

    def __init__(self, monitor: str, patience: int, mode: str = "max") -> None:
        super().__init__(monitor, mode)
        self.patience = positive_int("patience", patience)
        self.best: float | None = None
        self.waited = 0

    def on_eval(self, trainer, step: int, metrics: Mapping[str, float]) -> None:
        value = self.value(metrics)
        if self.better(value, self.best):
            self.best, self.waited = value, 0
        else:
            self.waited += 1
        if self.waited >= self.patience and not trainer.should_stop:
            trainer.should_stop, trainer.stop_reason = True, "patience"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.waited = state["best"], state["waited"]


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :meth:`Trainer.fit` after Ctrl-C (SIGINT): the step in progress was finished (its history
    row too) and, with an ``out_dir``, saved (``resume=True`` continues from there).

    Attributes:
        step: the last completed step.
        checkpoint: the path of the saved checkpoint, or None when nothing was saved.
    """

    def __init__(self, step: int, checkpoint: Path | None, detail: str | None = None) -> None:
        self.step, self.checkpoint = step, checkpoint
        if detail is None:
            detail = f"checkpoint saved to {checkpoint}" if checkpoint is not None else "nothing saved (no out_dir)"
        super().__init__(f"stopped after step {step}; {detail}")


@contextlib.contextmanager
def stop_on_sigint(trainer):
    """Within this block, Ctrl-C sets ``trainer.interrupted``: the loop finishes the step in progress (its
    history row and checkpoint included) and stops. A second Ctrl-C raises ``KeyboardInterrupt`` at once.
    Only in the main thread, and only over Python's default handler (a caller's own handler stays)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def on_sigint(signum, frame):
        if trainer.interrupted:
            raise KeyboardInterrupt
        trainer.interrupted = True
        if trainer.is_main:
            print(f"\ninterrupted: finishing step {trainer.step + 1}"
                  + (" and saving a checkpoint" if trainer.out_dir is not None else "")
                  + " (Ctrl-C again to stop at once, saving nothing)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
