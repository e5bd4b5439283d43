"""The GPU check: gseq's test suite on CUDA, then the benchmark scripts at GPU sizes, in one command.

    PYTHONPATH=$PWD python benchmarks/gpu_check.py              # one H100/H200: at most 560 s (--budget)
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --dry-run    # the same steps on the CPU, --quick sizes

Each step is a subprocess with a time limit of its own (one failing does not stop the others):

- ``tests``: ``python -m pytest -q -p no:cacheprovider``, the whole suite. Where CUDA is present the
  device-parametrised tests run on ``cuda`` too and the CUDA-only ones run (spmm with nnz and N x F past
  2^31, CUDA-graph capture and reuse in ``generate``, host syncs per character, ...); the CLI tests
  expect ``--device cuda`` to work. Spread over 4 processes when pytest-xdist is installed.
- ``bench_spmm`` (SpMM against ``torch.sparse.mm``/cuSPARSE, and the GCN layer's rows at 1M and 2.45M
  nodes with peak memory), ``bench_gcn`` (the GCN layer against PyG on both paths), ``bench_rnn``,
  ``bench_text`` (generation with the CUDA graph, on the shipped book) and ``bench_sampling``, each
  writing its CSV.

It ends with a table of the CUDA targets read from those CSVs, PASS or FAIL (DRY in a dry run: CPU
timings of tiny sizes say nothing about them; NOT-RUN where the rows are missing). Logs and CSVs go to
``--out`` (default ``$OUT``, else a temporary folder). Exit status 1 when a step failed (a test or a
script), else 0; a missed target shows as FAIL in the table only. ``--dry-run`` runs a few tests and
every script with ``--quick`` on the CPU, so that the driver and the targets' columns cannot rot
(tests/benchmarks/test_gpu_check.py runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import os
import subprocess
import sys
import signal
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
#: name -> (arguments after ``python`` on a GPU, the same in a dry run, seconds allowed on a GPU, environment)
STEPS = {
    "tests": (PYTEST + ["--durations=15"] + (["-n", "4"] if importlib.util.find_spec("xdist") else []),
              PYTEST + ["tests/models/test_generate.py", "-k", "fast_path_equals_the_reference and h-40"], 330, {}),
    "bench_spmm": (["benchmarks/bench_spmm.py", "--sizes", "arxiv", "1m", "2.45m", "--rounds", "3"], ["--quick"], 150,
                   {}),
    "bench_gcn": (["benchmarks/bench_gcn.py", "--graphs", "arxiv", "1m", "--rounds", "3"], ["--quick"], 60, {}),
    # TF32 off in cuBLAS and cuDNN: the fused LSTM against cuDNN at the same precision
    "bench_rnn": (["benchmarks/bench_rnn.py", "--lengths", "30", "--no-reference", "--rounds", "7"], ["--quick"], 30,
                  {"NVIDIA_TF32_OVERRIDE": "0"}),
    "bench_text": (["benchmarks/bench_text.py", "--book", "book_EN_grimms_fairy_tails.txt", "--rounds", "3",
                    "--steps", "5"], ["--quick"], 60, {}),
    "bench_sampling": (["benchmarks/bench_sampling.py", "--rounds", "5"], ["--quick"], 40, {}),
}
#: the GCN targets' graphs (bench_spmm.SIZES: nodes, edges)
GCN_GRAPH, BIG_GRAPH = ("1m", (1_000_000, 32_000_000)), ("2.45m", (2_450_000, 60_000_000))


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the step this script started, and its children


def run_step(name: str, argv: list[str], log, seconds: float, env: dict) -> bool:
    """Run one step, its output on the screen and into ``log``; True when it exited 0 in time."""
    def say(text):
        print(text, end="", flush=True)
        log.write(text)
    say(f"\n=== {name}: python {' '.join(argv)} (at most {seconds:.0f} s)\n")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    timer = threading.Timer(seconds, _kill, (proc,))
    timer.start()
    try:
        for line in proc.stdout:
            say(line)
        proc.wait()
    finally:
        timer.cancel()
    late = time.monotonic() - t0 >= seconds
    say(f"=== {name}: {'TIMED OUT' if late else f'exit {proc.returncode}'} after {time.monotonic() - t0:.0f} s\n")
    return proc.returncode == 0 and not late


def read_rows(out: Path, name: str) -> list[dict]:
    path = out / f"{name}.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def targets(out: Path, dry: bool) -> list[tuple[str, str, object]]:
    """``(target, measured, met)`` from the benchmarks' CSVs: met is True/False, None for a figure without
    a bound, "missing" where the rows are not there (the step failed or was cut). A dry run reads the CPU
    rows in place of the GPU ones: gseq's torch backend, the cora graph, ``gseq generate`` eagerly."""
    spmm = read_rows(out, "bench_spmm")
    ours = [r for r in spmm if r["variant"] == ("gseq torch" if dry else "gseq triton")]
    layer = {(r["graph"], r["variant"]): r for r in spmm if r["variant"].endswith("(layer)")}
    (gcn_graph, _), (big_graph, (n, e)) = (("cora", None), ("cora", (2_708, 10_556))) if dry else (GCN_GRAPH, BIG_GRAPH)
    text = {r["variant"]: r for r in read_rows(out, "bench_text") if r["section"] == "generate" and r["batch"] == "1"}
    sampling = {r["variant"]: r for r in read_rows(out, "bench_sampling")}
    rnn = {r["variant"]: r for r in read_rows(out, "bench_rnn")}

    def spmm_forward(low, high, bound):
        r = min((r for r in ours if low <= int(r["F"]) <= high), key=lambda r: float(r["fwd_ratio"]))
        return f"min {float(r['fwd_ratio']):.2f}x ({r['graph']}, F={r['F']})", float(r["fwd_ratio"]) >= bound

    def spmm_backward():
        r = max(ours, key=lambda r: float(r["bwd_over_fwd"]))
        return f"max bwd/fwd {float(r['bwd_over_fwd']):.2f} ({r['graph']}, F={r['F']})", float(r["bwd_over_fwd"]) <= 1

    def bandwidth():
        r = max(ours, key=lambda r: float(r["copy_pct"]))
        return f"{float(r['gbs']):.0f} GB/s = {float(r['copy_pct']):.0f}% of a copy ({r['graph']}, F={r['F']})", None

    def gcn_time():
        ms = float(layer[(gcn_graph, "gseq GCN cached=True (layer)")]["fwdbwd_ms"])
        return f"{ms:.2f} ms", ms <= 12.0

    def gcn_memory():
        r = layer[(big_graph, "gseq GCN cached=False (layer)")]
        ratio = float(r["peak_mib"]) * 2**20 / (4 * n * int(r["F"]) + 8 * e)
        return f"{float(r['fwdbwd_ms']):.1f} ms, peak {ratio:.1f} x (4 N F + 8 E) bytes", ratio <= 12

    def lstm():
        r = rnn["gseq-fused"]
        return f"{float(r['ratio_vs_torch']):.2f}x nn.LSTM (T = {r['T']})", float(r["ratio_vs_torch"]) <= 2.0

    def generation():
        key = "gseq generate" if dry else "gseq generate, CUDA graph"
        ms = float(text[key]["seconds"]) * 200e3
        return f"{ms:.2f} ms ({key})", ms <= 10.0

    def sample():
        r = sampling["sample"]
        return f"{float(r['ratio']):.3f}x GCN fwd+bwd ({r['graph']})", float(r["ratio"]) < 1.0

    found = []
    for name, measure in (
            ("SpMM forward >= torch.sparse.mm (cuSPARSE), F = 16..128", lambda: spmm_forward(16, 128, 1.0)),
            ("SpMM forward >= 1.3x torch.sparse.mm, F <= 32", lambda: spmm_forward(1, 32, 1.3)),
            ("SpMM backward <= forward", spmm_backward),
            ("SpMM bandwidth against a device copy", bandwidth),
            (f"GCN layer fwd+bwd <= 12 ms ({gcn_graph}, F = 128, gseq cached=True)", gcn_time),
            (f"GCN layer on {big_graph} in O(N F + E) memory (<= 12x)", gcn_memory),
            ("fused LSTM training step <= 2x cuDNN nn.LSTM, T = 30", lstm),
            ("200 characters of generate at batch 1 <= 10 ms", generation),
            ("sampling 1024 seeds [15, 10] < the GCN step it feeds (arxiv)", sample)):
        try:
            found.append((name, *measure()))
        except (KeyError, ValueError) as err:  # rows missing (min/max of nothing is a ValueError too)
            found.append((name, f"no rows ({type(err).__name__}: {err})", "missing"))
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="steps: " + ", ".join(STEPS),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="the CPU, a few tests, every script with --quick")
    p.add_argument("--only", nargs="+", choices=list(STEPS), default=list(STEPS), help="run only these steps")
    p.add_argument("--budget", type=float, default=560.0, help="seconds for all steps together (default: 560)")
    p.add_argument("--out", default=os.environ.get("OUT"), help="folder for logs and CSVs (default: $OUT)")
    args = p.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        p.error("no CUDA device here; run with --dry-run for the CPU rehearsal")
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_check-"))
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.dry_run else "cuda"
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({os.cpu_count()} cores), dry run"
    print(f"gpu_check on {where}: torch {torch.__version__}, python {sys.version.split()[0]}; outputs in {out}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
               PYTHONUNBUFFERED="1")
    t0, failed = time.monotonic(), []
    with open(out / "gpu_check.log", "w") as log:
        for name in args.only:
            gpu_argv, dry_argv, seconds, step_env = STEPS[name]
            stepv = (dry_argv if name == "tests" else gpu_argv[:1] + dry_argv) if args.dry_run else gpu_argv
            if name != "tests":
                stepv = stepv + ["--device", device, "--csv", str(out / f"{name}.csv")]
            left = args.budget - (time.monotonic() - t0)
            seconds = min(left, seconds * (4 if args.dry_run else 1))
            if left < 10 or not run_step(name, stepv, log, seconds, {**env, **step_env}):
                failed.append(name)
    rows = targets(out, args.dry_run)
    width = max(len(r[0]) for r in rows)
    lines = [f"\ngpu_check on {where}, {time.monotonic() - t0:.0f} s; failed steps: {', '.join(failed) or 'none'}",
             f"{'target':<{width}}  status   measured"]
    for name, measured, met in rows:
        status = "NOT-RUN" if met == "missing" else "INFO" if met is None else "DRY" if args.dry_run else \
            "PASS" if met else "FAIL"
        lines.append(f"{name:<{width}}  {status:<7}  {measured}")
    print("\n".join(lines))
    (out / "gpu_check_summary.txt").write_text("\n".join(lines).strip() + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
