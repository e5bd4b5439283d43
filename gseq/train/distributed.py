"""Training across processes with ``torch.distributed``: what the Trainer takes from ``torchrun``.

``torchrun`` starts one process per device and sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and
``LOCAL_WORLD_SIZE`` (and the rendezvous address). :func:`launched_env` reads them,
:func:`rank_device` picks this rank's device and :meth:`Distributed.start` creates the process group (NCCL on CUDA with one device per local rank, gloo on the CPU) with a timeout, and
the :class:`Distributed` object gives the :class:`~gseq.train.Trainer` the few collective steps it
needs:

* exact metric reduction: a :class:`Mean` is a sum and a count, so ranks combine it by adding both
  (never a mean of means);
* each rank's share of a list of batches, by ``DistributedSampler``'s rule (one permutation per
  epoch, padded to a multiple of the world size, every ``world_size``-th item from ``rank``);
* gathering per-rank states (RNG states) for a checkpoint that rank 0 writes;
* naming the lost rank when a collective fails: every rank that sees the failure leaves a key in
  the process group's store, and the ranks that leave none within a few seconds are the lost ones.

Nothing here starts processes or opens sockets of its own; it is ``torch.distributed`` underneath.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from torch import Tensor

from ..checks import positive_float

__all__ = ["Distributed", "DistEnv", "Mean", "RankLostError", "shutdown", "launched_env", "group_env",
           "rank_and_world_size", "rank_device", "shard_indices", "shard_sequence", "rank_seed", "DEFAULT_TIMEOUT"]

#: seconds a collective waits for the other ranks before it fails (``GSEQ_DIST_TIMEOUT`` overrides)
DEFAULT_TIMEOUT = 300.0
_FAILED_KEY = "gseq/failed/{}"
_CREATED_TIMEOUT: float | None = None  # set while a group gseq created is alive


class RankLostError(RuntimeError):
    """A collective operation failed because another rank died, hung or lost its connection."""


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits among those ``torchrun`` started."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def launched_env(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The ``torchrun`` settings of this process, or None when it runs alone.

    A world of one process (``torchrun --nproc-per-node 1``) counts as alone: no group is created.

    Raises:
        ValueError: ``WORLD_SIZE``, ``RANK`` or ``LOCAL_RANK`` is malformed, or only some are set.
    """
    environ = os.environ if environ is None else environ
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
    present = [n for n in names if n in environ]
    if not present:
        return None
    if len(present) != len(names):
        missing = [n for n in names if n not in environ]
        raise ValueError(f"environment: {', '.join(present)} set but {', '.join(missing)} not; launch with "
                         "torchrun, which sets all of them")
    values = {}
    for name in (*names, "LOCAL_WORLD_SIZE"):
        text = environ.get(name)
        if text is None:
            continue
        try:
            values[name] = int(text)
        except ValueError:
            raise ValueError(f"environment: {name}={text!r} is not an integer") from None
    world, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    local_world = values.get("LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world:
        raise ValueError(f"environment: RANK={rank}, LOCAL_RANK={local} do not fit WORLD_SIZE={world}, "
                         f"LOCAL_WORLD_SIZE={local_world}")
    if world == 1:
        return None
    return DistEnv(rank, world, local, local_world)


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of the running process group, ``(0, 1)`` outside one. An ``evaluate``
    function calls it to score its own share of the held-out data (and returns :class:`Mean` values)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s data generator: ``seed`` itself on rank 0 (so a one-process run draws
    what rank 0 of a larger run draws), distinct and reproducible on every other rank."""
    if rank == 0:
        return seed
    return (seed * 1_000_003 + rank * 7_919 + 1) % (2**63 - 1)


def shard_indices(n: int, rank: int, world_size: int, *, epoch: int = 0, seed: int = 0,
                  shuffle: bool = True) -> list[int]:
    """The positions of ``n`` items that rank ``rank`` takes in epoch ``epoch``.

    ``torch.utils.data.DistributedSampler``'s rule (it is computed by one): one permutation of
    ``range(n)`` from ``seed + epoch`` (identity when ``shuffle`` is False), padded by repeating its
    start to a multiple of ``world_size``, then every ``world_size``-th item from ``rank``. Every rank
    gets ``ceil(n / world_size)`` items, so all ranks take the same number of steps.
    """
    if n < 1:
        raise ValueError("data: the iterable yielded no batches")
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


class Mean(float):
    """A mean that remembers its sum and count, so that ranks combine it exactly.

    It is the float ``total / count`` (NaN when ``count`` is 0) wherever a number is expected; return
    one from an ``evaluate`` function, e.g. ``{"val_acc": Mean(correct, total)}``, and a distributed
    Trainer adds the sums and counts of all ranks before dividing (never a mean of means).
    """

    total: float
    count: float

    def __new__(cls, total: float | Tensor, count: float | Tensor) -> Mean:
        total, count = float(total), float(count)
        self = super().__new__(cls, total / count if count else float("nan"))
        self.total, self.count = total, count
        return self

    def __repr__(self) -> str:
        return f"Mean({self.total!r} / {self.count!r} = {float(self):.6g})"


class Distributed:
    """The process group a distributed Trainer runs in.

    Build it with :meth:`start`. The group gseq creates lives as long as the process: the next ``fit``
    (another seed, another task) joins it again, and it is destroyed when the process exits (or by
    :func:`shutdown`); destroying and re-creating a group under one ``torchrun`` rendezvous can read
    the old group's addresses. A group the caller created stays theirs.

    Attributes:
        rank, world_size, local_rank: this process's place (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
        device: the device of this rank (``cuda:LOCAL_RANK`` with NCCL, the CPU with gloo).
        backend: ``"nccl"`` or ``"gloo"``.
        timeout: seconds a collective waits before it fails (that of the group's first ``start``).
    """

    def __init__(self, rank: int, world_size: int, local_rank: int, device: torch.device, backend: str,
                 timeout: float) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device, self.backend, self.timeout = device, backend, timeout

    # ------------------------------------------------------------------ set-up
    @classmethod
    def start(cls, env: DistEnv, device: torch.device, timeout: float | None = None) -> Distributed:
        """Join the process group of ``env``, creating it (NCCL for a CUDA ``device``, gloo otherwise) on
        the first call of the process; later calls, and a group the caller created, are joined as they are.

        Args:
            env: this process's place, from :func:`launched_env` (or :func:`group_env`).
            device: this rank's device, from :func:`rank_device`.
            timeout: seconds a collective waits for the other ranks (default: ``GSEQ_DIST_TIMEOUT``,
                else :data:`DEFAULT_TIMEOUT`); it is fixed when the group is created.
        """
        import torch.distributed as dist

        global _CREATED_TIMEOUT
        timeout = _timeout(timeout)
        if dist.is_initialized():
            if dist.get_world_size() != env.world_size or dist.get_rank() != env.rank:
                raise ValueError(f"distributed: the process group has rank {dist.get_rank()} of "
                                 f"{dist.get_world_size()}, but the environment says rank {env.rank} of "
                                 f"{env.world_size}")
            return cls(env.rank, env.world_size, env.local_rank, device, dist.get_backend(),
                       _CREATED_TIMEOUT or timeout)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
        if _CREATED_TIMEOUT is None:
            atexit.register(shutdown)
        _CREATED_TIMEOUT = timeout
        return cls(env.rank, env.world_size, env.local_rank, device, backend, timeout)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one rank that writes files and shows progress."""
        return self.rank == 0

    # ------------------------------------------------------------------ collectives
    def all_reduce_means(self, means: Mapping[str, Mean]) -> dict[str, Mean]:
        """Add the sums and counts of every :class:`Mean` over all ranks (one all-reduce)."""
        import torch.distributed as dist

        if not means:
            return {}
        keys = sorted(means)
        flat = torch.tensor([[means[k].total, means[k].count] for k in keys], dtype=torch.float64,
                            device=self._comm_device)
        dist.all_reduce(flat)
        flat = flat.cpu()
        return {k: Mean(flat[i, 0], flat[i, 1]) for i, k in enumerate(keys)}

    def flags(self, flag: bool) -> list[bool]:
        """Every rank's ``flag``, in rank order (one all-gather)."""
        import torch.distributed as dist

        mine = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._comm_device)
        out = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(out, mine)
        return [bool(t.item()) for t in out]

    def flags_any(self, flags: Sequence[bool]) -> list[bool]:
        """For each position, True on every rank when it is True on any rank (one all-reduce)."""
        import torch.distributed as dist

        t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable object)."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._comm_device)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    # ------------------------------------------------------------------ failures
    def lost_ranks(self, wait: float = 5.0) -> list[int] | None:
        """The ranks that did not report a failed collective within ``wait`` seconds (after a failure).

        Every surviving rank calls this when a collective fails: it leaves its own key in the process
        group's store, then waits for the others' keys. Returns None when the store itself is gone (it
        lives with rank 0 unless ``torchrun``'s agent hosts it).
        """
        import torch.distributed as dist

        try:
            with _native_stderr_silenced():  # a store whose host died makes c10d print a C++ stack trace
                return self._missing_ranks(dist, wait)
        except Exception:  # noqa: BLE001 - the store went down with its host: nothing more to learn
            return None

    def _missing_ranks(self, dist, wait: float) -> list[int]:
        store = dist.distributed_c10d._get_default_store()
        store.set(_FAILED_KEY.format(self.rank), "1")
        deadline = time.monotonic() + wait
        while True:
            missing = [r for r in range(self.world_size) if not store.check([_FAILED_KEY.format(r)])]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)

    def lost_rank_error(self, err: BaseException, step: int) -> RankLostError:
        """A :class:`RankLostError` naming the ranks that stopped answering around ``step``."""
        lost = self.lost_ranks()
        if lost is None:
            who = "rank 0 (it hosts the process group's store) or the rendezvous host"
        elif lost:
            who = "rank " + ", ".join(str(r) for r in lost)
        else:
            who = "no rank (every rank saw the failure: a network or timeout problem)"
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        return RankLostError(f"rank {self.rank}: lost contact with {who} at step {step} "
                             f"(timeout {self.timeout:g} s): {first}")


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send what native code writes to file descriptor 2 to /dev/null for the duration (Python's own
    ``sys.stderr`` is untouched): the C++ warnings of a failing store are noise before gseq's one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _timeout(timeout: float | None) -> float:
    if timeout is None:
        text = os.environ.get("GSEQ_DIST_TIMEOUT")
        if text is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"GSEQ_DIST_TIMEOUT: expected seconds, got {text!r}") from None
    return float(positive_float("dist_timeout", timeout, hint=" (seconds)"))


def shutdown() -> None:
    """Destroy the process group gseq created (at exit; a group the caller created is left alone)."""
    import torch.distributed as dist

    global _CREATED_TIMEOUT
    if _CREATED_TIMEOUT is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CREATED_TIMEOUT = None


def group_env() -> DistEnv | None:
    """The place of this process in a process group the caller created (None when there is none, or it
    has one process). The local rank comes from ``LOCAL_RANK`` when set, else the current CUDA device."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    env = launched_env()
    if env is not None:
        return env
    local = torch.cuda.current_device() if torch.cuda.is_available() else 0
    count = torch.cuda.device_count() if torch.cuda.is_available() else dist.get_world_size()
    return DistEnv(dist.get_rank(), dist.get_world_size(), local, count)


def rank_device(device: str | torch.device | None, env: DistEnv) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` or the CPU, refusing one that cannot serve every local rank.

    ``"auto"`` (or None) is CUDA when present, else the CPU; a numbered ``cuda:N`` is refused (every
    process would take the same GPU), as are device types other than ``cpu`` and ``cuda``.
    """
    text = "auto" if device is None else str(device)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: {device!r} is not a device; use 'auto', 'cpu' or 'cuda'") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ValueError(f"device: {text!r} is not supported for distributed training; use 'cpu' (gloo) or "
                         "'cuda' (NCCL)")
    if dev.index is not None:
        raise ValueError(f"device: {text!r} names one GPU, but under torchrun each process takes "
                         "cuda:LOCAL_RANK; pass 'cuda' (or limit the GPUs with CUDA_VISIBLE_DEVICES)")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError("device: 'cuda' was asked for but CUDA is not available here; use 'cpu' or 'auto'")
    if count < env.local_world_size:
        raise ValueError(f"device: 'cuda' needs one GPU per process, but this machine runs {env.local_world_size} "
                         f"processes and sees {count} GPU(s); use --nproc-per-node {count} or less, or --device cpu")
    return torch.device("cuda", env.local_rank)


def shard_sequence(items: Sequence[Any], rank: int, world_size: int, *, epoch: int, seed: int,
                   shuffle: bool = True) -> list[Any]:
    """Rank ``rank``'s share of ``items`` in ``epoch`` (see :func:`shard_indices`)."""
    return [items[i] for i in shard_indices(len(items), rank, world_size, epoch=epoch, seed=seed, shuffle=shuffle)]
