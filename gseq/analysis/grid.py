"""Run a grid of independent experiments into one CSV: resumable, and in parallel processes.

:func:`run_grid` calls ``fn(*task)`` for every task not yet in the CSV, appends each result row as it
arrives and rewrites the CSV atomically, so an interrupted grid loses no finished run and a second call
on the same file picks up where the first stopped. The CSV and its settings file are stamped
(:func:`gseq.io.read_verified_text`): a resumed grid whose files were damaged or edited stops with an
error naming the file, instead of mixing a changed row into the results. With ``jobs > 1`` tasks go to a
``ProcessPoolExecutor`` (spawned processes, one torch thread each); ``fn`` must then be importable (a
module-level function). Ctrl-C is handled by the calling process alone: the rows already finished are in
the CSV, the workers are stopped, and the ``KeyboardInterrupt`` goes on to the caller.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..checks import positive_int
from ..io import read_verified_text, write_csv, write_json

__all__ = ["run_grid", "read_rows_typed", "default_jobs", "start_method"]


def default_jobs() -> int:
    """The number of CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def read_rows_typed(path: str | os.PathLike, types: dict[str, Callable[[str], Any]]) -> list[dict[str, Any]]:
    """Rows of a CSV with the columns in ``types`` converted (others kept as text); [] when there is no file.

    Raises:
        ValueError: the file differs from the stamp gseq wrote beside it, lacks a column of ``types``, or
            has a row that is incomplete or holds a value that does not convert (a truncated or edited
            file); the message names the file (and the line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with io.StringIO(read_verified_text(path, "results"), newline="") as f:
        reader = csv.DictReader(f)
        missing_columns = sorted(set(types) - set(reader.fieldnames or []))
        if missing_columns:
            raise ValueError(f"{path}: has no column {', '.join(missing_columns)}; the file is damaged or was written "
                             "by another grid: move it away to start again")
        for row in reader:
            missing = [k for k, v in row.items() if v is None or k is None]
            if missing:
                raise ValueError(f"{path}: line {reader.line_num} is incomplete (no value for "
                                 f"{', '.join(str(k) for k in missing)}); the file was cut short or edited: delete "
                                 "that line to run it again")
            try:
                rows.append({k: (types[k](v) if k in types and v != "" else v) for k, v in row.items()})
            except ValueError as err:
                raise ValueError(f"{path}: line {reader.line_num} holds a value that is not a number ({err}); the "
                                 "file was cut short or edited: delete that line to run it again") from None
    return rows


def _check_settings(meta: Path, settings: dict[str, Any]) -> None:
    settings = json.loads(json.dumps(settings, default=str))  # as it reads back
    if meta.is_file():
        try:
            previous = json.loads(read_verified_text(meta, "settings"))
        except json.JSONDecodeError as err:
            raise ValueError(f"settings: {str(meta)!r} is damaged: not JSON ({err}); restore it or start in another "
                             "folder") from None
        if not isinstance(previous, dict):
            raise ValueError(f"settings: {str(meta)!r} is damaged: holds a {type(previous).__name__}, not the settings")
        differ = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
        if differ:
            raise ValueError(f"settings: {str(meta.parent)!r} holds runs with other settings ("
                             + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in differ.items())
                             + "); use another folder or the same settings")
    write_json(meta, settings, stamp=True)


def start_method(device: str = "cpu") -> str:
    """``"fork"`` on POSIX for CPU work, else ``"spawn"`` (see the module docstring)."""
    if os.name == "posix" and "fork" in multiprocessing.get_all_start_methods() and str(device) == "cpu":
        return "fork"
    return "spawn"


def _init_worker() -> None:
    import signal

    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it records what finished and stops us


def run_grid(
    path: str | os.PathLike,
    tasks: Sequence[tuple],
    fn: Callable[..., dict[str, Any]],
    *,
    key: Callable[[dict[str, Any]], tuple],
    fields: Sequence[str],
    types: dict[str, Callable[[str], Any]],
    jobs: int = 1,
    settings: dict[str, Any] | None = None,
    settings_path: str | os.PathLike | None = None,
    device: str = "cpu",
    log: Callable[[dict[str, Any], int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``fn(*task)`` for each task whose ``key`` is not already in the CSV at ``path``.

    Args:
        path: the results CSV (created, or resumed from).
        tasks: the whole grid; ``task`` tuples must equal ``key(row)`` of the row ``fn(*task)`` returns.
        fn: one experiment, returning a dict row with at least ``fields``.
        key: the identity of a row, e.g. ``lambda r: (r["cell"], r["length"], r["seed"])``.
        fields: the CSV columns, in order.
        types: converters for reading the columns back (e.g. ``{"seed": int, "accuracy": float}``).
        jobs: parallel processes (1 runs in this process, with one torch thread). (default: ``1``)
        settings: what all runs share (JSON-serialisable); saved beside the CSV (``.json``), and a resumed
            grid with other settings is refused, so one CSV never mixes two set-ups.
        settings_path: where ``settings`` are kept. (default: the CSV's path with ``.json``)
        device: where the runs compute; picks the worker start method. (default: ``"cpu"``)
        log: called as ``log(row, finished, total)`` after every new row.

    Returns:
        All rows, earlier and new, sorted by ``key``.
    """
    positive_int("jobs", jobs)
    path = Path(path)
    if settings is not None:
        _check_settings(Path(settings_path) if settings_path else path.with_suffix(".json"), settings)
    rows = read_rows_typed(path, types)
    done = {key(r) for r in rows}
    todo = [t for t in tasks if tuple(t) not in done]
    total = len(rows) + len(todo)

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        rows.sort(key=key)
        write_csv(path, rows, fieldnames=list(fields), stamp=True)
        if log:
            log(row, len(rows), total)

    if jobs == 1 or len(todo) <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for task in todo:
                record(fn(*task))
        finally:
            torch.set_num_threads(threads)
    elif todo:
        ctx = multiprocessing.get_context(start_method(device))
        with cf.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_init_worker) as pool:
            futures = [pool.submit(fn, *task) for task in todo]
            try:
                for fut in cf.as_completed(futures):
                    record(fut.result())
            except BaseException:  # Ctrl-C or a failed run: finished rows are in the CSV, stop the rest now
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    rows.sort(key=key)
    return rows
