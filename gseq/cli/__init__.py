"""The ``gseq`` command: one sub-command per module of this package.

Each module named in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser with
argparse alone (no torch, so ``gseq --help`` and argument errors are immediate) and sets ``func``
(called with the parsed arguments, returning an exit status), which imports what it needs.

Exit status: 0 done; 1 training failed (a loss that became NaN, out of memory, a lost rank); 2 a refused
argument, file or folder (one line ``gseq X: error: ...``); 130 interrupted (Ctrl-C; a training run with
``--out`` saves its checkpoint first).

Under ``torchrun`` (``torchrun --nproc-per-node 2 -m gseq gcn ...``) the training commands (``gcn``,
``palindrome train``, ``text train``) run one process per rank on ``torch.distributed``; rank 0 alone
prints results and writes files, and the other ranks print only their errors. The other commands refuse
to run under ``torchrun``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from ._args import HelpFormatter, RawHelpFormatter, launch_rank

__all__ = ["main", "build_parser", "COMMANDS"]

#: sub-command modules, in the order ``gseq --help`` lists them
COMMANDS = ["gcn", "hops", "palindrome", "text", "env"]


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gseq", description="Graph and sequence models around PyTorch Geometric.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for p in _parsers(parser):  # every option's help shows its default; no abbreviations (--seed is not --seeds)
        p.allow_abbrev = False
        raw = issubclass(p.formatter_class, argparse.RawDescriptionHelpFormatter)
        p.formatter_class = RawHelpFormatter if raw else HelpFormatter
    return parser


def _check_device(args: argparse.Namespace) -> None:
    """Refuse a ``--device`` this machine or this torch build lacks before any work starts."""
    device = getattr(args, "device", None)
    if device is not None:
        from ..train import resolve_device

        try:
            resolve_device(device)
        except ValueError as err:
            raise ValueError(f"--{err}") from None


def _command_name(args: argparse.Namespace) -> str:
    """The whole sub-command, as error headers name it: ``gseq text train``."""
    action = getattr(args, f"{args.command}_command", None)
    return f"gseq {args.command} {action}" if action else f"gseq {args.command}"


def _check_distributed(args: argparse.Namespace, world: int) -> None:
    """Under ``torchrun``, only the commands that train through the Trainer run (once per rank)."""
    if world > 1 and not getattr(args, "distributed", False):
        raise ValueError(f"torchrun: `{_command_name(args)}` does not run distributed (only gcn, palindrome train "
                         "and text train do); run it as a single process")


def _quiet(rank: int):
    """Rank 0 prints; the other ranks' standard output goes nowhere (their errors still show)."""
    if rank == 0:
        return contextlib.nullcontext()
    return contextlib.redirect_stdout(open(os.devnull, "w"))  # noqa: SIM115 - closed with the process


def _out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or \
        "can't allocate memory" in str(err) or "out of memory" in str(err).lower()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rank, world = launch_rank()
    command = _command_name(args) + (f" (rank {rank})" if rank else "")
    try:
        _check_distributed(args, world)
        _check_device(args)
        with _quiet(rank):
            return int(args.func(args) or 0)
    except KeyboardInterrupt as err:  # Trainer.fit raises TrainingInterrupted, after saving with --out
        detail = str(err).strip()
        if getattr(err, "checkpoint", None) is not None and hasattr(args, "resume"):
            detail += " (continue with --resume)"
        print(f"{command}: interrupted{': ' + detail if detail else ''}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:
        if type(err).__name__ == "RankLostError":  # gseq.train.RankLostError: its message names the lost rank
            print(f"{command}: error: {err}", file=sys.stderr)
            return 1
        if not _out_of_memory(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{command}: error: out of memory ({first}); use smaller sizes (batch, hidden size, length)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
