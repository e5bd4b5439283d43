"""The ``gseq`` command: one sub-command per module of this package.

Each module named in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser", "COMMANDS"]

#: sub-command modules, in the order ``gseq --help`` lists them
COMMANDS = ["gcn", "hops", "palindrome", "text", "env"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gseq", description="Graph and sequence models around PyTorch Geometric.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"gseq {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
