"""The palindrome sweeps behind docs/recurrent.md, as named presets of ``gseq palindrome sweep``.

    python benchmarks/palindrome_sweep.py onehot [--jobs 2] [--out DIR]   # one-hot digits, forget bias 1
    python benchmarks/palindrome_sweep.py course [--jobs 2] [--out DIR]   # the course's scalar set-up
    python benchmarks/palindrome_sweep.py course-kaiming                   # ... with Kaiming-normal weights
    python benchmarks/palindrome_sweep.py course-adam                      # ... LSTM with Adam, 4000 steps
    python benchmarks/palindrome_sweep.py onehot --print                  # only print the commands

Each preset is one or more ``gseq palindrome sweep`` commands into one folder (results.csv, sweep.json,
sweep.png); a preset that is run again resumes where it stopped. Afterwards the figure and CSV are
copied to docs/_static/figures/ and docs/_static/results/ with ``--publish``.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: preset -> (default folder, [extra arguments of each `gseq palindrome sweep` call])
PRESETS = {
    # one-hot inputs, orthogonal weights, Adam 1e-3, forget-gate bias 1 (LSTM); each cell over the lengths
    # it can reach. (RMSprop at 1e-3 makes ten-times-lr first steps that wreck some RNN seeds.)
    "onehot": ("/tmp/gseq-sweeps/onehot", [
        ["--cells", "rnn", "--lengths", "5:80:5", "90", "100"],
        ["--cells", "lstm", "--lengths", "5:60:5", "70:100:10", "150"],
    ], ["--input", "onehot", "--init", "orthogonal", "--optimizer", "adam", "--forget-bias", "1",
        "--max-steps", "3000", "--seeds", "4"]),
    # the original course's set-up: scalar digits, Xavier, RMSprop 1e-3, batch 128, clip 10
    "course": ("/tmp/gseq-sweeps/course", [
        ["--cells", "rnn", "lstm", "--lengths", "5:40:5"],
    ], ["--input", "scalar", "--max-steps", "2000", "--seeds", "4"]),
    # the same with Kaiming-normal weights (the report's best LSTM: up to length 39)
    "course-kaiming": ("/tmp/gseq-sweeps/course-kaiming", [
        ["--cells", "rnn", "--lengths", "5:20:5"],  # the RNN fails from T=10 on here: no need to go on
        ["--cells", "lstm", "--lengths", "5:50:5"],
    ], ["--input", "scalar", "--init", "kaiming_normal", "--max-steps", "3000", "--seeds", "4"]),
    # the report's LSTM protocol (Xavier, Adam, 4000 steps) at the length where RMSprop fails
    "course-adam": ("/tmp/gseq-sweeps/course-adam", [
        ["--cells", "lstm", "--lengths", "20"],
    ], ["--input", "scalar", "--optimizer", "adam", "--max-steps", "4000", "--seeds", "4"]),
}


def commands(preset: str, out: str, jobs: int | None) -> list[list[str]]:
    _, calls, shared = PRESETS[preset]
    extra = ["--jobs", str(jobs)] if jobs else []
    return [["palindrome", "sweep", *call, *shared, "--out", out, *extra] for call in calls]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("preset", choices=sorted(PRESETS))
    p.add_argument("--out", default=None, help="sweep folder (default: /tmp/gseq-sweeps/PRESET)")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: CPU cores)")
    p.add_argument("--print", action="store_true", help="print the commands only")
    p.add_argument("--publish", action="store_true",
                   help="copy sweep.png and results.csv to docs/_static as palindrome_sweep_PRESET.*")
    args = p.parse_args(argv)
    out = args.out or PRESETS[args.preset][0]
    from gseq.cli import main as gseq_main

    for argv_ in commands(args.preset, out, args.jobs):
        print("gseq " + shlex.join(argv_), flush=True)
        if not args.print:
            code = gseq_main(argv_)
            if code:
                return code
    if args.publish:
        fig = REPO / "docs/_static/figures" / f"palindrome_sweep_{args.preset}.png"
        csv = REPO / "docs/_static/results" / f"palindrome_sweep_{args.preset}.csv"
        for src, dst in ((Path(out) / "sweep.png", fig), (Path(out) / "results.csv", csv)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            print(f"copied {src} -> {dst.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
