"""``benchmarks/gpu_check.py`` must not rot between GPU sessions: its dry run (a few tests and every
benchmark script with ``--quick`` on the CPU, then the targets read from their CSVs) runs here, and the
targets are judged against hand-made GPU rows."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_runs_every_step_and_reads_every_target(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "OUT", "GSEQ_DATA")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=600, cwd=REPO, env=env)
    log = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, log
    summary = (tmp_path / "gpu_check_summary.txt").read_text()
    assert "failed steps: none" in summary, log
    header, *table = summary.splitlines()[1:]
    column = header.index("status")
    statuses = [row[column:column + 7].strip() for row in table]
    assert len(statuses) == 9 and set(statuses) == {"DRY", "INFO"}, summary  # every target read, none judged
    text = (tmp_path / "gpu_check.log").read_text()
    assert " passed" in text and text.count("exit 0 after") == 6, text[-3000:]
    for name in ("bench_spmm", "bench_gcn", "bench_rnn", "bench_text", "bench_sampling"):
        assert (tmp_path / f"{name}.csv").stat().st_size > 0, name
    assert len(list(tmp_path.iterdir())) <= 8  # what a device run brings back: 8 files at most


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_targets_are_judged_from_the_gpu_rows(tmp_path):
    gc = _module()

    def spmm(f, ratio, bwd):
        return {"graph": "arxiv", "F": f, "variant": "gseq triton", "fwd_ratio": ratio, "bwd_over_fwd": bwd,
                "gbs": 900, "copy_pct": 30, "fwdbwd_ms": "", "peak_mib": ""}

    n, e = gc.BIG_GRAPH[1]
    layer = {"F": 100, "fwd_ratio": "", "bwd_over_fwd": "", "gbs": "", "copy_pct": ""}
    _write(tmp_path / "bench_spmm.csv", [
        spmm(16, 1.2, 0.9), spmm(32, 1.4, 0.8), spmm(128, 1.1, 1.05),
        {**spmm(16, 0.5, 3.0), "variant": "gseq torch"},  # the CPU row: not a GPU target
        {**layer, "graph": "1m", "variant": "gseq GCN cached=True (layer)", "fwdbwd_ms": 11.5, "peak_mib": 1},
        {**layer, "graph": "2.45m", "variant": "gseq GCN cached=False (layer)", "fwdbwd_ms": 30,
         "peak_mib": 13 * (4 * n * 100 + 8 * e) / 2**20}])
    _write(tmp_path / "bench_rnn.csv", [{"T": 30, "variant": "gseq-fused", "ratio_vs_torch": 1.9}])
    _write(tmp_path / "bench_text.csv", [{"section": "generate", "batch": 1, "variant": "gseq generate, CUDA graph",
                                          "seconds": 60e-6}])
    rows = gc.targets(tmp_path, dry=False)
    assert len(rows) == 9

    def found(prefix):
        return next((text, met) for name, text, met in rows if name.startswith(prefix))
    assert found("SpMM forward >= torch.sparse.mm (cuSPARSE)") == ("min 1.10x (arxiv, F=128)", True)
    assert found("SpMM forward >= 1.3x torch.sparse.mm") == ("min 1.20x (arxiv, F=16)", False)
    assert found("SpMM backward <= forward") == ("max bwd/fwd 1.05 (arxiv, F=128)", False)
    assert found("SpMM bandwidth against a device copy")[1] is None
    assert found("GCN layer fwd+bwd <= 12 ms") == ("11.50 ms", True)
    assert found("GCN layer on 2.45m in O(N F + E) memory")[1] is False  # 13 x the bound's unit
    assert found("fused LSTM training step <= 2x cuDNN nn.LSTM")[1] is True
    assert found("200 characters of generate at batch 1 <= 10 ms") == ("12.00 ms (gseq generate, CUDA graph)", False)
    assert found("sampling 1024 seeds [15")[1] == "missing"  # no bench_sampling.csv: NOT-RUN, not a crash


def test_a_step_past_its_time_is_stopped_and_counts_as_failed(tmp_path):
    gc = _module()
    with open(tmp_path / "log", "w") as log:
        ok = gc.run_step("sleeper", ["-c", "import time; print('started', flush=True); time.sleep(60)"], log, 2.0,
                         dict(os.environ))
    text = (tmp_path / "log").read_text()
    assert not ok and "started" in text and "sleeper: TIMED OUT after 2 s" in text, text
