"""What every sub-command shares: the help formatter, argument types, the check of an output folder that
is not a run folder (a run folder's policy is :class:`gseq.train.RunFolder`'s), and the summary helpers.

The training commands build their options from their config (:mod:`gseq.config`); the argument types
here serve the other commands (``text generate``, ``hops``, ``palindrome sweep|grads``).

Only the standard library (and :mod:`gseq.checks`, which imports no torch) is imported here, so
``gseq --help`` and argument errors never wait for torch. An argument type parses the text, checks the
value with the :mod:`gseq.checks` helper the library itself uses, and raises
``argparse.ArgumentTypeError``, which argparse reports as ``gseq X: error: argument --flag: ...`` before
anything runs.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

from .. import checks
from ..config import argument_type

__all__ = ["HelpFormatter", "RawHelpFormatter", "positive_int", "non_negative_int", "positive_float",
           "non_negative_float", "finite_float", "interval", "top_p", "add_device", "check_out", "announce",
           "physical_memory", "resumed_note"]

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


positive_int = argument_type(int, checks.positive_int)
non_negative_int = argument_type(int, checks.non_negative_int)
finite_float = argument_type(float, checks.finite_float)
positive_float = argument_type(float, checks.positive_float)
non_negative_float = argument_type(float, checks.non_negative_float)


def interval(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """An argument type for a number between ``low`` and ``high`` (see :func:`gseq.checks.in_range`)."""
    return argument_type(float, functools.partial(checks.in_range, low=low, high=high, low_open=low_open,
                                                  high_open=high_open))


top_p = interval(0, 1, low_open=True)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N; a device this "
                             "machine or this torch lacks is refused before anything runs")


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


def resumed_note(result: dict, unit: str = "step") -> str:
    """What a resumed run trained, for the summary line: ``""`` for a fresh run, else e.g.
    ``" (resumed at step 300: nothing left to train)"`` or ``" (resumed at step 19, trained 20..40)"``."""
    start = result.get("resumed_from")
    if start is None:
        return ""
    end = result["step"]
    if end <= start:
        return f" (resumed at {unit} {start}: nothing left to train; raise the {unit} count to train more)"
    return f" (resumed at {unit} {start}, trained {unit}s {start + 1}..{end})"


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
