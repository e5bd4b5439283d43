"""Helpers shared by the examples: where figures go, and a tiny argument parser."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"),
                   help="folder for the figure (default: $GSEQ_EXAMPLES_OUT or ./gseq-examples)")
    return p


def figure_path(out: str, name: str) -> Path:
    path = Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
