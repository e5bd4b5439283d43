"""What every sub-command shares: the help formatter, argument types, and checks of ``--out``.

Only the standard library is imported here, so ``gseq --help`` and argument errors never wait for torch.
An argument type raises ``argparse.ArgumentTypeError``, which argparse reports as
``gseq X: error: argument --flag: ...`` before anything runs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["HelpFormatter", "RawHelpFormatter", "positive_int", "non_negative_int", "positive_float",
           "non_negative_float", "finite_float", "learning_rate", "dropout", "top_p", "MAX_LR",
           "add_device", "add_out_flags", "check_out", "announce", "physical_memory"]

#: the largest learning rate the command line accepts (larger ones diverge at the first step)
MAX_LR = 1e3


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults formatter, except that a help text that states its default keeps its own
    wording (``"(default: torch's choice)"`` reads better than ``"(default: None)"``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text:
            return text
        return super()._get_help_string(action)


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """:class:`HelpFormatter` that keeps the description's line breaks (usage examples)."""


def _number(text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def finite_float(text: str) -> float:
    return _number(text)


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def learning_rate(text: str) -> float:
    value = _number(text)
    if not 0 < value <= MAX_LR:
        raise argparse.ArgumentTypeError(f"must lie in (0, {MAX_LR:g}], got {text!r}")
    return value


def dropout(text: str) -> float:
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text!r}")
    return value


def top_p(text: str) -> float:
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {text!r}")
    return value


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N; a device this "
                             "machine or this torch lacks is refused before anything runs")


def add_out_flags(parser: argparse.ArgumentParser, *, resume: bool) -> None:
    """``--overwrite`` (and ``--resume``) for a command whose ``--out`` holds a trained checkpoint."""
    if resume:
        parser.add_argument("--resume", action="store_true",
                            help="continue the run in --out from its checkpoint (same settings; more steps allowed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished or interrupted run in --out (refused without this flag)")


def check_out(out: str | os.PathLike | None, flag: str = "--out") -> Path | None:
    """``out`` as a Path, after checking that it is (or can become) a writable folder, without creating it."""
    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {str(path)!r} is a file, not a folder; choose a folder for the outputs")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag}: cannot create {str(path)!r}: {str(existing)!r} is a file")
    writable = os.access(existing, os.W_OK | os.X_OK)
    if writable and existing == path:  # an existing folder: try it (permissions alone miss read-only mounts)
        try:
            tempfile.TemporaryFile(dir=path).close()
        except OSError:
            writable = False
    if not writable:
        raise ValueError(f"{flag}: {str(existing)!r} is not writable; choose a folder you can write to")
    return path


def launch_rank() -> tuple[int, int]:
    """``(rank, world_size)`` from the environment ``torchrun`` sets; ``(0, 1)`` when run alone (no torch
    import: the command line stays fast)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 else (0, 1)


def is_main_process() -> bool:
    """True alone and on rank 0 under ``torchrun``: the one process that prints results and writes files."""
    return launch_rank()[0] == 0


def announce(paths, since: float, *, stream=None) -> None:
    """Print one line ``wrote A, B, ...`` naming the files of ``paths`` written since ``since``
    (a ``time.time()``); files that were not written are not named."""
    written = []
    for p in paths:
        try:
            if Path(p).stat().st_mtime >= since - 1e-3:
                written.append(str(p))
        except OSError:
            continue
    if written:
        print("wrote " + ", ".join(written), file=stream or sys.stdout, flush=True)


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
