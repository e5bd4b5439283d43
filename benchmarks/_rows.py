"""A results CSV that a benchmark appends to row by row, so an interrupted run continues where it stopped."""

from __future__ import annotations

import csv
from pathlib import Path


def open_rows(path: str | Path, fields: list[str], key: list[str]) -> set[tuple[str, ...]]:
    """The ``key`` values of the rows already in the CSV at ``path`` (as strings); a new file gets the header."""
    path = Path(path)
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != fields:  # appending would shift the columns
                raise SystemExit(f"{path}: its columns {reader.fieldnames} are not this benchmark's {fields}; "
                                 "write to a new --csv")
            return {tuple(r[k] for k in key) for r in reader}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.DictWriter(f, fields).writeheader()
    return set()
