"""``benchmarks/gpu_check.py`` must not rot between GPU sessions: its quick dry run (the same code paths on
the CPU with tiny sizes, Triton interpreted, the benchmarks' harness on the torch backend) runs here.
``python benchmarks/gpu_check.py --dry-run`` (all of it, about two minutes) is the fuller rehearsal."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _module():
    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)  # imported, not run: leaves TRITON_INTERPRET alone
    return sys.modules["gpu_check"]


def test_quick_dry_run_passes_and_writes_its_outputs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "OUT")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--quick", "--budget", "400", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    log = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, log
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert not [k for k, s in report["sections"].items() if "error" in s], log
    status = {row["key"]: row["status"] for row in report["summary"]}
    checked = ["tests", "ops_grid", "ops_weighted", "ops_scatter", "large_nnz", "large_nf", "repeat", "gcn", "lstm",
               "gen_equal", "gen_cache", "gen_sync"]
    assert {k: status[k] for k in checked} == dict.fromkeys(checked, "PASS"), log
    # speed targets are shown, not judged, on the CPU; what needs a GPU says so
    assert status["t_gcn"] == status["t_gcn_big"] == status["t_lstm"] == status["t_gen"] == "DRY"
    assert status["gen_multi"] == "NOT-RUN" and "FAIL" not in status.values()
    assert report["env"]["dry_run"] is True and report["env"]["copy_gbs"] > 0
    assert "gpu_check summary" in proc.stdout and (tmp_path / "gpu_check_summary.txt").read_text().strip()
    for name in ("checks.csv", "ops.csv", "bench_spmm.csv", "bench_gcn.csv", "bench_rnn.csv", "bench_text.csv",
                 "pytest-tests.txt"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_pytest_output_is_parsed_and_missing_data_is_told_apart():
    gc = _module()
    out = "\n".join([
        "...F..E",
        "FAILED tests/models/test_gcn_net.py::test_training_on_cora_learns - Failed: GSEQ_DATA=/x does not hold",
        "FAILED tests/ops/test_ops_spmm.py::test_sum[cuda] - AssertionError: Tensor-likes are not close!",
        "ERROR tests/layers/test_recurrent.py - ModuleNotFoundError: No module named 'hypothesis'",
        "==== 2 failed, 120 passed, 3 skipped, 4 deselected, 1 error, 2 warnings in 10.20s ====",
    ])
    r = gc.parse_pytest(out)
    assert (r["passed"], r["failed"], r["skipped"], r["deselected"], r["errors"]) == (120, 2, 3, 4, 1)
    assert [len(r[k]) for k in ("failures", "needs_data", "needs_hypothesis")] == [1, 1, 1]
    assert "test_sum[cuda]" in r["failures"][0]
    collected = gc.parse_pytest("tests/ops/test_ops_triton.py::test_a\n\n106/251 tests collected (145 deselected) in 8.17s")
    assert collected["collected"] == 106 and collected["deselected"] == 145 and collected["passed"] == 0


def test_exact_values_are_exact_in_every_dtype_and_compare_catches_one_entry():
    import torch

    gc = _module()
    x = gc.exact_values((1000,), torch.Generator().manual_seed(0))
    for dtype in gc.DTYPES:
        assert torch.equal(x.to(dtype).double(), x)
    ref = torch.tensor([3.0, -1.5, 0.0])
    assert gc.compare(ref.bfloat16(), ref, torch.bfloat16)[0]
    assert not gc.compare(torch.tensor([3.0, -1.5, 0.125]), ref, torch.float32)[0]  # one missing 1/8 entry
    assert not gc.compare(torch.tensor([3.0, -1.375, 0.0]).bfloat16(), ref, torch.bfloat16)[0]
