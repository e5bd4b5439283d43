"""Where a :class:`~gseq.train.Trainer` runs: one process, or one rank of many under ``torchrun``.

The Trainer's loop reads the same in both cases; what differs lives behind one object (as Lightning's
build-your-own-trainer example hands its devices and processes to ``fabric``):

* :class:`SingleProcess`: the model as it is, the data as it is, metrics as they are;
* :class:`DataParallel`: ``DistributedDataParallel`` around the model, each rank's share of the data,
  metrics added over the ranks (:class:`~gseq.train.Mean`), decisions taken on rank 0 and broadcast,
  a stop on any rank a stop on all, per-rank RNG states gathered into rank 0's checkpoint, and a failed
  collective turned into :class:`~gseq.train.RankLostError` naming the lost rank.

:func:`choose_strategy` picks one from the environment (``torchrun`` sets ``WORLD_SIZE`` and friends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .distributed import DistEnv, Distributed, Mean, group_env, launched_env, rank_device, rank_seed, shard_sequence
from .runtime import resolve_device

__all__ = ["SingleProcess", "DataParallel", "choose_strategy"]


class SingleProcess:
    """Training in this process alone: every method is the identity of its distributed twin."""

    rank, world_size = 0, 1

    def __init__(self, device: str | torch.device | None = "auto") -> None:
        self.device = resolve_device(device)

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and shows progress."""
        return self.rank == 0

    def start(self) -> None:
        """Called when ``fit`` starts."""

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module ``loss_fn`` calls."""
        return model

    def data_seed(self, seed: int) -> int:
        """The seed of this process's data generator and global generators."""
        return seed

    def epoch_data(self, data: Iterable[Any], epoch: int, seed: int) -> Iterable[Any]:
        """This process's batches of ``epoch``."""
        return data

    def reduce(self, means: Mapping[str, Mean]) -> dict[str, float]:
        """Each :class:`Mean` as a float (its sums added over all ranks first)."""
        return {k: float(m) for k, m in means.items()}

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return obj

    def flagged_ranks(self, flag: bool) -> list[int]:
        """The ranks on which ``flag`` is True."""
        return [self.rank] if flag else []

    def any(self, flags: Sequence[bool]) -> list[bool]:
        """Each flag, True everywhere when True on any rank."""
        return list(flags)

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` (None alone: there is nothing to gather)."""
        return None

    def on_main(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on rank 0; its result, or its ValueError, on every rank."""
        return fn(*args)

    def lost_rank_error(self, err: BaseException, step: int) -> BaseException | None:
        """The error to raise instead of ``err`` when a collective failed because a rank was lost."""
        return None


class DataParallel(SingleProcess):
    """One rank of a ``torchrun`` job (``torch.distributed``; see :mod:`gseq.train.distributed`)."""

    def __init__(self, env: DistEnv, device: str | torch.device | None = "auto", timeout: float | None = None) -> None:
        self.env, self.rank, self.world_size = env, env.rank, env.world_size
        self.device = rank_device(device, env)
        self.timeout = timeout
        self.dist: Distributed | None = None

    def start(self) -> None:
        self.dist = Distributed.start(self.env, self.device, self.timeout)

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def data_seed(self, seed: int) -> int:
        return rank_seed(seed, self.rank)

    def epoch_data(self, data: Iterable[Any], epoch: int, seed: int) -> Iterable[Any]:
        sampler = getattr(data, "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler):  # the caller sharded it already
            sampler.set_epoch(epoch)
            return data
        if callable(getattr(data, "shard", None)):
            return data.shard(self.rank, self.world_size, epoch=epoch, seed=seed)
        if isinstance(data, Sequence):
            return shard_sequence(data, self.rank, self.world_size, epoch=epoch, seed=seed)
        raise ValueError(f"data: a distributed run splits its data by rank, but a {type(data).__name__} can be split "
                         "neither as a sequence (a list of batches) nor by a shard(rank, world_size, epoch=, seed=) "
                         "method; pass a list, a DataLoader with a DistributedSampler, or a gseq NeighborLoader")

    def reduce(self, means: Mapping[str, Mean]) -> dict[str, float]:
        return super().reduce(self.dist.all_reduce_means(means))

    def broadcast(self, obj: Any) -> Any:
        return self.dist.broadcast(obj)

    def flagged_ranks(self, flag: bool) -> list[int]:
        return [r for r, f in enumerate(self.dist.flags(flag)) if f]

    def any(self, flags: Sequence[bool]) -> list[bool]:
        return self.dist.flags_any(flags)

    def gather(self, obj: Any) -> list[Any] | None:
        return self.dist.gather(obj)

    def on_main(self, fn: Callable[..., Any], *args: Any) -> Any:
        outcome: tuple[str, Any] = ("ok", None)
        if self.is_main:
            try:
                outcome = ("ok", fn(*args))
            except (ValueError, OSError) as err:
                outcome = ("error", f"{err}")
        kind, value = self.dist.broadcast(outcome)
        if kind == "error":
            raise ValueError(value)
        return value

    def lost_rank_error(self, err: BaseException, step: int) -> BaseException | None:
        if self.dist is None or not _is_comm_error(err):
            return None
        return self.dist.lost_rank_error(err, step)


def choose_strategy(distributed: bool | None, device: str | torch.device | None,
                    timeout: float | None = None) -> SingleProcess:
    """:class:`DataParallel` when launched by ``torchrun`` with more than one process (or inside a process
    group the caller created), unless ``distributed`` is False; else :class:`SingleProcess`."""
    if distributed not in (None, True, False):
        raise TypeError(f"distributed: expected None, True or False, got {distributed!r}")
    env = None if distributed is False else group_env() or launched_env()
    if env is None and distributed:
        raise ValueError("distributed: True needs a launch by torchrun with more than one process (WORLD_SIZE, RANK, "
                         "LOCAL_RANK) or a process group of more than one process; use distributed=None to train "
                         "alone when there is none")
    return DataParallel(env, device, timeout) if env is not None else SingleProcess(device)


def _is_comm_error(err: BaseException) -> bool:
    """An error raised by a collective because another rank is gone (gloo and NCCL word it differently)."""
    import torch.distributed as dist

    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(s in text for s in (
        "gloo", "Gloo", "NCCL", "Connection closed", "Connection reset", "Broken pipe", "timed out", "Timed out"))
