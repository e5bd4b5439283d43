"""What a training run needs from its machine: seeds, a device, batches moved there, sane optimizer groups."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import non_negative_float, positive_float

__all__ = ["seed_everything", "apply_threads", "resolve_device", "training_device", "move_to", "make_optimizer",
           "check_optimizer_groups"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (when installed) and torch's global generators."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass


def apply_threads(threads: int | None) -> None:
    """The one rule for CPU threads across commands: a task run with ``threads=N`` (``--threads N``) sets
    ``torch.set_num_threads(N)`` when it starts; None leaves torch's choice (and any earlier setting) as it is."""
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA when it is available, else the CPU; any other device must exist here."""
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


def training_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device this process trains on, as a :class:`~gseq.train.Trainer` built here would pick it:
    :func:`resolve_device` in a single process; under ``torchrun``, this rank's (``cuda:LOCAL_RANK`` or
    the CPU, see :func:`~gseq.train.distributed.rank_device`). Tasks put their data there before the
    Trainer exists."""
    from .distributed import group_env, launched_env, rank_device

    env = group_env() or launched_env()
    return rank_device(device, env) if env is not None else resolve_device(device)


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


_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
               "sgd": torch.optim.SGD}


def make_optimizer(name: str, model: nn.Module, param_groups=None, **kwargs: Any) -> torch.optim.Optimizer:
    """The optimizer ``name`` (a key of ``_OPTIMIZERS``) over ``param_groups`` (torch's dicts, or a callable
    ``model -> groups``; default: every trainable parameter), its groups checked by
    :func:`check_optimizer_groups`."""
    groups = param_groups(model) if callable(param_groups) else param_groups
    optimizer = _OPTIMIZERS[name](groups or [{"params": [p for p in model.parameters() if p.requires_grad]}],
                                  **kwargs)
    check_optimizer_groups(optimizer)
    return optimizer


def check_optimizer_groups(optimizer: torch.optim.Optimizer) -> None:
    """Every parameter group's learning rate and weight decay are finite, in range, and representable in
    the dtype of its parameters (``lr=1e300`` would be ``inf`` in float32)."""
    for i, group in enumerate(optimizer.param_groups):
        for key, check in (("lr", positive_float), ("weight_decay", non_negative_float)):
            value = group.get(key)
            if value is None:
                continue
            value = check(key, float(value), hint=f" (parameter group {i})")
            for p in group["params"]:
                if p.dtype.is_floating_point and value > torch.finfo(p.dtype).max:
                    raise ValueError(f"{key}: {value:g} overflows {p.dtype}, the dtype of the parameters it "
                                     f"updates (largest value {torch.finfo(p.dtype).max:.3g})")
