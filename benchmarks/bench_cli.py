"""Start-up time of the ``gseq`` command against importing torch and PyG.

    python benchmarks/bench_cli.py                    # 5 rounds, one torch thread per process
    python benchmarks/bench_cli.py --repeats 9 --src /tmp/gseq-old   # another source tree, e.g. an old commit

Every command runs as a fresh process, as the installed ``gseq`` script runs it (``python -c "from
gseq.cli import main; main()" ARGS`` with ``PYTHONPATH`` at the source tree and an empty working folder, so
no other copy of gseq is picked up), all of them once per round, interleaved, so a busy machine slows them alike; the script prints the median
and the fastest wall time of each and the ratio of medians to ``python -c "import torch"``.

Targets (issue 14): ``gseq --help`` under 0.5 s; ``gseq gcn --dataset karate`` no slower than importing
torch and PyG plus the work itself. "The work" is timed inside one process that has already imported
torch and PyG: ``gseq.cli.main(["gcn", "--dataset", "karate"])`` (gseq's own imports, loading the graph,
200 epochs, the printout); the bound is the median import time plus the median work time.

Each process runs with ``OMP_NUM_THREADS`` set to ``--threads`` (default 1): on this project's shared
2-core machine, two threads per process made karate's tiny sparse products ten times slower and the
timings noisy, which hides the start-up cost this script is about.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORK = ("import time, contextlib, io, torch, torch_geometric\n"
        "t = time.perf_counter()\n"
        "from gseq.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['gcn', '--dataset', 'karate'])\n"
        "print(time.perf_counter() - t)\n")

GSEQ = ["-c", "import sys; from gseq.cli import main; sys.exit(main())"]  # what the console script does
COMMANDS = [
    ("python -c pass", ["-c", "pass"]),
    ('python -c "import torch"', ["-c", "import torch"]),
    ('python -c "import torch, torch_geometric"', ["-c", "import torch, torch_geometric"]),
    ("gseq --help", [*GSEQ, "--help"]),
    ("gseq gcn --help", [*GSEQ, "gcn", "--help"]),
    ("gseq gcn --dataset karate", [*GSEQ, "gcn", "--dataset", "karate"]),
]


#: the working folder of every process: empty, so that no gseq beside it is imported instead of --src
CWD = tempfile.mkdtemp(prefix="gseq-bench-cli-")


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=CWD)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="rounds (default: 5)")
    p.add_argument("--src", default=str(ROOT), help="source tree to time (default: this repository)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process (default: 1)")
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": args.src, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": str(args.threads)}
    env.pop("GSEQ_DATA", None)
    where = run(["-c", "import gseq; print(gseq.__file__)"], env)[1].strip()
    if not Path(where).is_relative_to(Path(args.src).resolve()):
        raise SystemExit(f"gseq is imported from {where}, not from {args.src}")

    times: dict[str, list[float]] = {name: [] for name, _ in COMMANDS}
    work: list[float] = []
    run([*GSEQ, "gcn", "--dataset", "karate"], env)  # warm the file cache once
    for _ in range(args.repeats):
        for name, argv in COMMANDS:
            times[name].append(run(argv, env)[0])
        work.append(float(run(["-c", WORK], env)[1].strip().splitlines()[-1]))

    base = statistics.median(times['python -c "import torch"'])
    print(f"gseq from {where}; {args.repeats} rounds; python {sys.version.split()[0]}; OMP_NUM_THREADS="
          f"{args.threads}; wall seconds per process\n")
    print(f"{'command':44s} {'median':>8s} {'fastest':>8s} {'vs import torch':>16s}")
    for name, _ in COMMANDS:
        t = times[name]
        print(f"{name:44s} {statistics.median(t):8.3f} {min(t):8.3f} {statistics.median(t) / base:15.2f}x")
    imports = statistics.median(times['python -c "import torch, torch_geometric"'])
    bound = imports + statistics.median(work)
    cli = statistics.median(times["gseq gcn --dataset karate"])
    print(f"\nthe work in-process (after torch + PyG are imported): median {statistics.median(work):.3f} s")
    print(f"gseq gcn --dataset karate: {cli:.3f} s vs import torch + PyG + the work = {imports:.3f} + "
          f"{statistics.median(work):.3f} = {bound:.3f} s: ratio {cli / bound:.2f} (target <= 1)")
    helps = statistics.median(times["gseq --help"])
    print(f"gseq --help: {helps:.3f} s (target < 0.5 s), {helps / base:.2f}x import torch")


if __name__ == "__main__":
    main()
