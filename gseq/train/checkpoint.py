"""What a Trainer checkpoint holds beyond tensors, and the checks that decide whether it may be resumed."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CHECKPOINT_FORMAT", "RESUMABLE_SETTINGS", "check_model_state", "check_same_settings", "read_checkpoint",
           "trainer_settings", "trainer_state", "restore_trainer", "rng_state", "set_rng_state"]

#: the ``"format"`` tag of a Trainer checkpoint; a file with another tag is refused
CHECKPOINT_FORMAT = "gseq-trainer-1"
#: the settings a resumed run may change (everything else must equal the checkpoint's)
RESUMABLE_SETTINGS = ("max_steps", "max_epochs", "device")


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


def check_same_settings(saved: Mapping[str, Any], current: Mapping[str, Any], source: str, config=None) -> None:
    """Refuse to resume a run whose settings differ from the checkpoint's, naming each difference (the
    number of processes among them: a run of one process has ``world_size`` 1).

    With ``config`` (the task's :class:`gseq.config.Config`), its fields are compared by
    :meth:`~gseq.config.Config.resume_differences` (its ``resumable`` fields may change, names are spelled as
    the caller spells them) and the trainer's own settings that no field holds by this function."""
    def plain(settings):  # as config.json holds them: tuples become lists, odd values strings
        flat = _flat(json.loads(json.dumps(settings, default=str)))
        flat.setdefault("trainer.world_size", 1)
        flat.setdefault("trainer.eval_at_start", False)  # checkpoints written before the setting existed
        return flat

    old, new = plain(saved), plain(current)
    allowed = {f"trainer.{key}" for key in RESUMABLE_SETTINGS}
    resumable = list(RESUMABLE_SETTINGS)
    differ: list[str] = []
    if config is not None:
        differ = config.resume_differences(saved)
        fields = set(config.to_dict())  # compared by the config; trainer.X repeats the field X (lr, seed, ...)
        allowed |= {k for k in set(old) | set(new) if k.split(".")[0] in fields or k.removeprefix("trainer.") in fields}
        resumable = list(config.resumable_names())
    differ += [f"{k.removeprefix('trainer.')} {old.get(k)!r} there, {new.get(k)!r} now"
               for k in sorted(set(old) | set(new)) if k not in allowed and old.get(k) != new.get(k)]
    if differ:
        raise ValueError(f"resume: {source!r} was trained with other settings ({'; '.join(differ)}); resume with the "
                         f"settings it was trained with (only {', '.join(resumable)} may change; a distributed run "
                         "resumes with the same number of processes), or start a new run in another folder")


def trainer_settings(trainer) -> dict[str, Any]:
    """A Trainer's own settings, as ``config.json`` holds them under ``"trainer"``."""
    settings = {"optimizer": trainer.optimizer_name, "lr": trainer.lr, "weight_decay": trainer.weight_decay,
                "optimizer_kwargs": trainer.optimizer_kwargs, "clip_grad_norm": trainer.clip_grad_norm,
                "max_steps": trainer.max_steps, "max_epochs": trainer.max_epochs, "eval_every": trainer.eval_every,
                "eval_at_start": trainer.eval_at_start,
                "monitor": trainer.monitor, "mode": trainer.mode, "target": trainer.target,
                "patience": trainer.patience, "keep_best": trainer.keep_best, "seed": trainer.seed,
                "device": str(trainer.device), "model": type(trainer.model).__name__}
    if trainer.world_size > 1:
        settings["world_size"] = trainer.world_size
    return settings


def trainer_state(trainer) -> dict[str, Any]:
    """Everything a :class:`~gseq.train.Trainer` needs to continue exactly where it stopped: model,
    optimizer, counters, history, the training logs since the last row and the RNG states (of every rank:
    a collective in a distributed fit), the callbacks' states (rank 0's; every rank's of a callback whose
    ``per_rank`` is True), the data generator's epoch-start state."""
    rng = rng_state(trainer.generator)
    states = [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in trainer.callbacks]
    own = [s if getattr(cb, "per_rank", False) else None for cb, s in zip(trainer.callbacks, states)]
    return {"format": CHECKPOINT_FORMAT,
            "model_class": f"{type(trainer.model).__module__}.{type(trainer.model).__qualname__}",
            "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "step": trainer.step, "epoch": trainer.epoch, "epoch_step": trainer.epoch_step, "config": trainer.config,
            "history": trainer.history, "running": trainer.running,
            "running_ranks": trainer.strategy.gather(trainer.running), "data_state": trainer.data_state,
            "callbacks": states, "callbacks_ranks": trainer.strategy.gather(own),
            "rng": rng, "rng_ranks": trainer.strategy.gather(rng), "extra": trainer.checkpoint_extra}


def restore_trainer(trainer, ckpt: Mapping[str, Any]) -> None:
    """Put what :func:`trainer_state` saved back into ``trainer`` (each rank its own logs, RNG states and
    per-rank callback states)."""
    trainer.model.load_state_dict(ckpt["model"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.step, trainer.epoch, trainer.epoch_step = ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]
    rank = trainer.rank
    running = ckpt["running_ranks"][rank] if ckpt.get("running_ranks") else ckpt["running"]
    trainer.history, trainer.running = list(ckpt["history"]), {k: list(v) for k, v in running.items()}
    trainer.data_state = ckpt["data_state"]
    ranks = ckpt.get("callbacks_ranks")
    for i, (cb, state) in enumerate(zip(trainer.callbacks, ckpt["callbacks"])):
        if ranks and getattr(cb, "per_rank", False):  # this rank's own state, not rank 0's
            state = ranks[rank][i]
        if state is not None:
            cb.load_state_dict(state)
    trainer.last_eval = {k: v for k, v in (trainer.history[-1] if trainer.history else {}).items()
                         if k not in ("step", "epoch", "seconds")}
    set_rng_state(ckpt["rng_ranks"][rank] if ckpt.get("rng_ranks") else ckpt["rng"], trainer.generator)


def read_checkpoint(path, model: nn.Module, settings: Mapping[str, Any], config=None) -> dict[str, Any]:
    """A Trainer checkpoint at ``path``, after checking that ``model`` and ``settings`` (a Trainer's
    :attr:`~gseq.train.Trainer.config`; ``config`` its :class:`gseq.config.Config`) may continue it."""
    from ..io import load_checkpoint

    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: {str(path)!r} is not a gseq Trainer checkpoint (format {ckpt.get('format')!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    if "running" not in ckpt:
        raise ValueError(f"checkpoint: {str(path)!r} was written by an earlier gseq, whose checkpoints lack what an "
                         "exact resume needs (the training logs since the last row); start a new run in another "
                         "folder (the checkpoint still loads, e.g. for gseq text generate)")
    check_same_settings(ckpt.get("config") or {}, settings, source=str(path), config=config)
    check_model_state(model, ckpt["model"], ckpt.get("model_class"), source=str(path))
    return ckpt


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """The states of torch's, CUDA's and Python's global generators and of ``generator``."""
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    version, internal, gauss = state["python"]  # torch.load gives lists back where getstate() had tuples
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out
