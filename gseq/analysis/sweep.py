"""The palindrome-length sweep: train every (cell, length, seed), resumable and in parallel.

:func:`palindrome_sweep` writes into one folder:

* ``results.csv``: one row per finished run (``cell, length, seed, accuracy, steps, seconds,
  stop_reason``), rewritten atomically after every run, so an interrupted sweep loses no finished run;
* ``sweep.json``: the training settings shared by all runs. Running the sweep again on the same
  folder skips the (cell, length, seed) already in the CSV; other settings are refused, so one CSV
  never mixes two set-ups;
* ``sweep.png``: accuracy against palindrome length (:func:`gseq.plots.plot_palindrome_sweep`).

Runs are independent, so with ``jobs > 1`` they go to a ``ProcessPoolExecutor`` (worker processes
each with ``torch.set_num_threads(1)``, forked on Linux for CPU runs, spawned otherwise); the parent
collects the rows as they finish.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..checks import choice, positive_int, random_seed
from .grid import read_rows_typed, run_grid

__all__ = ["palindrome_sweep", "parse_lengths", "read_sweep", "SWEEP_FIELDS", "SWEEP_DEFAULTS"]

#: the columns of ``results.csv``
SWEEP_FIELDS = ["cell", "length", "seed", "accuracy", "steps", "seconds", "stop_reason"]
_TYPES = {"length": int, "seed": int, "accuracy": float, "steps": int, "seconds": float}
#: the settings every run of a sweep shares (the course's set-up), stored in ``sweep.json``
SWEEP_DEFAULTS: dict[str, Any] = {
    "input": "scalar", "hidden_size": 128, "init": "xavier_uniform", "forget_bias": 0.0,
    "optimizer": "rmsprop", "lr": 1e-3, "batch_size": 128, "max_steps": 5000, "clip_grad_norm": 10.0,
    "eval_every": 10, "eval_size": 512, "test_size": 2048, "target": 1.0, "device": "cpu",
}


def parse_lengths(specs: Iterable[str | int]) -> list[int]:
    """Palindrome lengths from ``"5:40:2"`` (start:stop:step, stop included when hit; step defaults to 1)
    or plain numbers, in order, without repeats.

    >>> parse_lengths(["5:60:5"])[-1], parse_lengths(["5", "7:11:2"])
    (60, [5, 7, 9, 11])
    """
    lengths: list[int] = []
    for spec in specs:
        text = str(spec)
        try:
            parts = [int(p) for p in text.split(":")]
        except ValueError:
            raise ValueError(f"lengths: {text!r} is not a length or a range start:stop[:step]") from None
        if len(parts) == 1:
            values = parts
        elif len(parts) in (2, 3):
            start, stop, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
            if step < 1 or stop < start:
                raise ValueError(f"lengths: range {text!r} needs start <= stop and step >= 1")
            values = list(range(start, stop + 1, step))
        else:
            raise ValueError(f"lengths: {text!r} is not a length or a range start:stop[:step]")
        for v in values:
            if v < 2:
                raise ValueError(f"lengths: a palindrome length must be >= 2, got {v}")
            if v not in lengths:
                lengths.append(v)
    if not lengths:
        raise ValueError("lengths: give at least one length")
    return lengths


def read_sweep(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The finished runs in ``out/results.csv`` (numbers parsed), or ``[]`` when there is none."""
    return read_rows_typed(Path(out) / "results.csv", _TYPES)


def _run_one(cell: str, length: int, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    from ..tasks.palindrome import train_palindrome

    s = dict(settings)
    forget_bias = s.pop("forget_bias") if cell == "lstm" else 0.0
    s.pop("forget_bias", None)
    r = train_palindrome(cell, length, seed=seed, forget_bias=forget_bias, progress=False, **s)
    return {"cell": cell, "length": length, "seed": seed, "accuracy": r["accuracy"], "steps": r["steps"],
            "seconds": round(r["seconds"], 3), "stop_reason": r["stop_reason"]}


def palindrome_sweep(out: str | os.PathLike, cells: Sequence[str] = ("rnn", "lstm"),
                     lengths: Sequence[int] = tuple(range(5, 41, 2)), seeds: int | Sequence[int] = 4, *,
                     jobs: int | None = None, figure: bool = True, title: str | None = None,
                     log: Callable[[str], None] | None = print, **settings: Any) -> list[dict[str, Any]]:
    """Train every (cell, length, seed) on palindromes; resume from ``out/results.csv`` when it exists.

    Args:
        out: folder for ``results.csv``, ``sweep.json`` and ``sweep.png``.
        cells: any of ``"rnn"``, ``"lstm"``.
        lengths: palindrome lengths (see :func:`parse_lengths` for ranges). (default: 5, 7, ..., 39)
        seeds: a number ``n`` (seeds ``0..n-1``) or the seeds themselves. (default: ``4``)
        jobs: parallel processes. (default: the number of CPU cores this process may use)
        figure: draw ``out/sweep.png`` at the end. (default: True)
        title: figure title. (default: the settings)
        log: called with one line per finished run; None is silent.
        **settings: training settings shared by all runs, overriding :data:`SWEEP_DEFAULTS`
            (``input``, ``init``, ``forget_bias`` (LSTM only), ``optimizer``, ``lr``, ``max_steps``, ...).

    Returns:
        all rows of the sweep (earlier and new), sorted by cell, length and seed.
    """
    from ..models.sequence import CELLS

    unknown = sorted(set(settings) - set(SWEEP_DEFAULTS))
    if unknown:
        raise ValueError(f"settings: unknown {unknown}; known: {sorted(SWEEP_DEFAULTS)}")
    settings = {**SWEEP_DEFAULTS, **settings}
    cells = list(cells)
    for cell in cells:
        choice("cells", cell, CELLS)
    lengths = parse_lengths(lengths)
    if isinstance(seeds, (list, tuple, range)):
        seed_list = [random_seed("seeds", s) for s in seeds]
    else:
        seed_list = list(range(positive_int("seeds", seeds, hint=" (the number of seeds) or a list of seeds")))
    if not seed_list:
        raise ValueError(f"seeds: give a positive number of seeds or a list of seeds, got {seeds!r}")
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    positive_int("jobs", jobs)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(c, n, s) for n in lengths for s in seed_list for c in cells]
    done = len(read_sweep(out))
    if log and done:
        log(f"resuming: {done} runs in {out / 'results.csv'}, up to {len(tasks) - done} to go")

    def log_row(row: dict[str, Any], finished: int, total: int) -> None:
        if log:
            log(f"{row['cell']:4s} T={row['length']:3d} seed={row['seed']}: accuracy {row['accuracy']:.4f} "
                f"after {row['steps']} steps, {row['seconds']:.1f} s ({row['stop_reason']}) [{finished}/{total}]")

    start = time.perf_counter()
    rows = run_grid(out / "results.csv", tasks, functools.partial(_run_one, settings=settings),
                    key=lambda r: (r["cell"], int(r["length"]), int(r["seed"])), fields=SWEEP_FIELDS,
                    types=_TYPES, jobs=jobs, settings=settings, settings_path=out / "sweep.json",
                    device=settings["device"], log=log_row)
    if log and len(rows) > done:
        log(f"{len(rows) - done} runs in {time.perf_counter() - start:.0f} s; results in {out / 'results.csv'}")
    if figure and rows:
        from ..plots import plot_palindrome_sweep

        plot_palindrome_sweep(rows, path=out / "sweep.png", title=title or _title(settings))
    return rows


def _title(settings: dict[str, Any]) -> str:
    fb = f", forget bias {settings['forget_bias']:g}" if settings["forget_bias"] else ""
    return (f"{settings['input']} input, {settings['init']}{fb}, {settings['optimizer']} lr {settings['lr']:g}, "
            f"max {settings['max_steps']} steps")
