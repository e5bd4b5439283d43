"""One command that checks every CUDA claim of gseq on a GPU, and a dry run of the same code on the CPU.

    PYTHONPATH=$PWD python benchmarks/gpu_check.py                      # one H100/H200: under 6 minutes
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --dry-run            # CPU, tiny sizes, Triton interpreted
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --dry-run --quick    # the representative subset the tests run
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --only ops large     # some sections (see --help)

Sections, in order; each runs in its own ``try`` (one failure does not lose the rest), under a global
time budget (a section whose estimate no longer fits is reported NOT-RUN), with timestamped progress:

- ``env``: device, versions, the measured device-to-device copy bandwidth.
- ``tests``: the CUDA test pass, ``pytest tests/ops tests/layers tests/models`` and ``pytest -m triton
  tests/ops`` in subprocesses with ``TRITON_INTERPRET`` unset (the device-parametrised tests then run on
  CUDA as well), started in the background at the beginning and collected before the benchmarks.
- ``ops``: ``spmm`` for sum/mean/max/min x float32/float64/float16/bfloat16 x F = 1, 64, 100, 1433
  (outputs and ``x`` gradients), weighted ``spmm`` (and the values' gradients), ``scatter`` and
  ``segment_csr`` against the CPU float64 reference, on a power-law graph with a hub row of 70,000
  entries (float16 counts overflow at 65,504) and empty rows. Inputs are multiples of 1/8 below 8,
  exact in every dtype, so float32 sums are exact and the tolerances are the output's rounding.
- ``large``: a CSR with more than 2^31 entries (int64 offsets) and an ``x`` of more than 2^31 elements,
  contiguous and as ``X.t()`` (``(F - 1) * stride(1) >= 2^31``); rows sampled over the whole range
  (the last ones included) are compared exactly with a gather on the device. Forward only.
- ``repeat``: two runs of spmm (sum, max; forward and gradients), scatter and a GCN layer are bitwise
  equal.
- ``gcn``: ``gseq.layers.GCN`` against PyG's ``GCNConv`` (outputs and gradients; float32 with TF32 off,
  and float64; with and without edge weights; cached).
- ``lstm``: the fused :class:`gseq.layers.LSTM` against ``nn.LSTM`` (cuDNN) with TF32 off; the loss
  backward under autocast (float16 on CUDA, bfloat16 on the CPU).
- ``generate``: CUDA-graph generation equals the eager loop; the captured graph is reused by a second
  call and reserved memory is kept (no ``empty_cache``); no host synchronisation per character
  (``torch.cuda.set_sync_debug_mode``); on two GPUs, a model on ``cuda:1`` while ``cuda:0`` is current.
- ``bench_spmm``: gseq's Triton SpMM against ``torch.sparse.mm`` (cuSPARSE, int32 indices) and
  torch_scatter when installed, forward, backward and both, on the arxiv-size graph (F = 16..128) and
  the 2.45M-node / 60M-edge graph (F = 100), both generated on the GPU; achieved GB/s
  (``nnz*8 + nnz*F*s + N*F*s`` bytes over the time) against the copy bandwidth.
- ``bench_gcn``: one GCN layer forward + backward against ``GCNConv`` at arxiv size, 1M nodes / 32M
  edges (F = 128) and 2.45M / 60M (F = 100, with peak memory).
- ``bench_rnn``: a training step of the fused LSTM against ``nn.LSTM`` (cuDNN), T = 30, TF32 off for both.
- ``bench_text``: character generation (200 characters at batch 1 and 256; CUDA graph and eager) and
  training steps.
- ``bench_sampling``: ``benchmarks/bench_sampling.py`` on the device: sampling 1024 seeds with fan-out
  [15, 10] on the 169,343-node graph against one forward + backward of a 2-layer GCN on the batch.

Every timing is the median of several calls timed with CUDA events after a warm-up, with the results
checked first. One summary table at the end lists every check and every target of the issue with its
measured figure and PASS / FAIL / NOT-RUN (INFO for figures without a target; in a dry run the speed
targets read DRY: CPU timings of interpreted kernels say nothing about them). Raw outputs (JSON, CSV,
the test logs, the summary) go to ``--out`` (default ``$OUT`` when set). The exit status is 1 when a
correctness check failed or a section raised, else 0; a missed speed target shows as FAIL in the
summary without changing the exit status.

Run as a script, it sets ``TRITON_INTERPRET=1`` for ``--dry-run`` (and unsets it otherwise) before
anything imports Triton.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # before torch, triton or gseq are imported: a dry run interprets the kernels
    if "--dry-run" in sys.argv:
        os.environ["TRITON_INTERPRET"] = "1"
    else:
        os.environ.pop("TRITON_INTERPRET", None)
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import bench_gcn  # noqa: E402
import bench_rnn  # noqa: E402
import bench_sampling  # noqa: E402
import bench_spmm  # noqa: E402
import bench_text  # noqa: E402

import gseq.ops as ops  # noqa: E402
from gseq.ops import CSR  # noqa: E402

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
REDUCES = ("sum", "mean", "max", "min")
#: per-element tolerance: |got - ref| <= tol * (|ref| + 1), the output's rounding (inputs are exact)
TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


# ---------------------------------------------------------------------------------------------- sizes
F32, F64, F16, BF16 = DTYPES


def _cross(*lists) -> tuple:
    return tuple(itertools.product(*lists))


@dataclass(frozen=True)
class Sizes:
    grid_nodes: int
    grid_edges: int
    grid_hub: int
    grid: tuple  # (F, reduce, dtype) cases of spmm
    weighted: tuple  # (reduce, dtype) cases of weighted spmm, at F = weighted_f
    weighted_f: int
    scatter: tuple  # (reduce, dtype) cases of scatter and segment_csr, at F = weighted_f
    big_rows: int
    big_degree: int
    big_cols: int
    wide_nodes: int
    wide_features: int
    repeat_graph: tuple
    gcn_check_graph: tuple | None  # (nodes, edges) of a synthetic graph; None: Cora (real when available)
    gcn_cases: tuple  # (dtype, weighted, cached)
    spmm_graphs: tuple  # (name, nodes, edges, features)
    gcn_graphs: tuple  # (name, nodes, edges, F, variants left out)
    triton_everywhere: bool  # beyond ops and large: gseq's ops on Triton (interpreted in a dry run), timed too
    lstm: tuple  # batch, time, hidden, input
    text_hidden: int  # CharLSTM size of the generation checks and benchmarks
    gen_length: int
    gen_batches: tuple
    sync_lengths: tuple  # a short and a long sample: the same number of host syncs means none per character
    bench_length: int
    timing_ms: float  # time spent per timing (median of the calls in it); 0: one call
    tests: str  # "full", "dry" or "quick"


_NO_EDGE_INDEX = ("PyG GCNConv edge_index",)
FULL = Sizes(
    grid_nodes=4096, grid_edges=32_768, grid_hub=70_000,
    grid=_cross((1, 64, 100, 1433), REDUCES, DTYPES), weighted=_cross(("sum", "max"), DTYPES), weighted_f=64,
    scatter=_cross(REDUCES, DTYPES),
    big_rows=1 << 21, big_degree=1025, big_cols=1 << 20,  # 2,149,580,800 entries > 2^31
    wide_nodes=2_200_000, wide_features=1000,  # 2.2e9 elements > 2^31
    repeat_graph=(169_343, 2_330_000), gcn_check_graph=None, gcn_cases=_cross((F32, F64), (False, True), (False, True)),
    spmm_graphs=(("arxiv", 169_343, 2_330_000, (16, 32, 64, 128)), ("2.45m", 2_450_000, 60_000_000, (100,))),
    gcn_graphs=(("arxiv", 169_343, 2_330_000, 128, ()), ("1m", 1_000_000, 32_000_000, 128, ()),
                ("2.45m", 2_450_000, 60_000_000, 100, _NO_EDGE_INDEX)),  # PyG's edge_index path: OOM on 80 GB
    triton_everywhere=True, lstm=(128, 30, 128, 10), text_hidden=128, gen_length=300, gen_batches=(1, 4), sync_lengths=(50, 300), bench_length=200,
    timing_ms=150.0, tests="full")
# the dry run: every reduction x dtype at one width, every width at two reductions (the interpreter costs
# about a second per case here)
DRY = Sizes(
    grid_nodes=24, grid_edges=60, grid_hub=300,
    grid=_cross((64,), REDUCES, DTYPES) + _cross((1, 100, 1433), ("max",), (F32,)),
    weighted=_cross(("sum", "max"), (F32, BF16)), weighted_f=64,
    scatter=_cross(REDUCES, (F32,)) + (("sum", BF16), ("max", F16)),
    big_rows=40, big_degree=20, big_cols=30, wide_nodes=40, wide_features=7,
    repeat_graph=(30, 100), gcn_check_graph=(40, 160),
    gcn_cases=((F32, False, False), (F32, True, True), (F64, True, False)),
    spmm_graphs=(("arxiv", 120, 600, (16,)), ("2.45m", 150, 900, (100,))),
    gcn_graphs=(("1m", 100, 500, 16, ()), ("2.45m", 120, 600, 8, _NO_EDGE_INDEX)),
    triton_everywhere=True, lstm=(8, 6, 16, 10), text_hidden=32, gen_length=270, gen_batches=(3,),
    sync_lengths=(50, 270), bench_length=40, timing_ms=0.0,
    tests="dry")
# the tests' subset: each kind of check once; the benchmark harness on the torch backend
QUICK = replace(DRY, grid_nodes=12, grid_edges=30, grid=((1, "sum", BF16), (100, "max", BF16)),
                weighted=(("sum", F32),), weighted_f=16, scatter=(("mean", F32),),
                gcn_check_graph=(30, 100), gcn_cases=((F32, True, False),),
                spmm_graphs=(("arxiv", 60, 240, (16,)), ("2.45m", 80, 320, (100,))),
                gcn_graphs=(("1m", 50, 200, 16, ()), ("2.45m", 60, 240, 8, _NO_EDGE_INDEX)), triton_everywhere=False,
                gen_length=30, gen_batches=(2,), sync_lengths=(10, 40), bench_length=20, tests="quick")

#: section -> (seconds it is expected to take on one H100/H200, in the dry run, in the quick dry run; the
#: dry figures are for an idle 2-core machine). A section starts while half its estimate is left.
ESTIMATES = {"env": (5, 2, 2), "ops": (100, 40, 6), "large": (40, 1, 1), "repeat": (15, 5, 1), "gcn": (10, 5, 1),
             "lstm": (5, 1, 1), "generate": (20, 4, 2), "bench_spmm": (40, 10, 1), "bench_gcn": (40, 10, 1),
             "bench_rnn": (10, 1, 1), "bench_text": (25, 4, 2), "bench_sampling": (20, 6, 3)}
SECTIONS = list(ESTIMATES)

#: the summary: (key, what is claimed); targets of the issue's part 4 are the keys starting with "t_"
SUMMARY = [
    ("tests", "CUDA test pass: pytest tests/ops tests/layers tests/models"),
    ("tests_triton", "CUDA test pass: pytest -m triton tests/ops"),
    ("ops_grid", "spmm vs CPU: sum/mean/max/min x fp32/fp64/fp16/bf16 x F=1,64,100,1433, +grad"),
    ("ops_weighted", "weighted spmm vs CPU, +grad of x and values"),
    ("ops_scatter", "scatter / segment_csr vs CPU, +grad"),
    ("large_nnz", "spmm with nnz > 2^31 (sum, max)"),
    ("large_nf", "spmm with N x F > 2^31: x contiguous and X.t()"),
    ("repeat", "bitwise repeatability: spmm, scatter, GCN (fwd + grads)"),
    ("gcn", "GCN vs PyG GCNConv (fp32 TF32 off, fp64; weights; cached)"),
    ("lstm", "fused LSTM vs cuDNN nn.LSTM (TF32 off); autocast backward"),
    ("gen_equal", "CUDA-graph generation == eager loop"),
    ("gen_cache", "graph reused by the next call, reserved memory kept"),
    ("gen_sync", "no host sync per generated character"),
    ("gen_multi", "generation on cuda:1 while cuda:0 is current"),
    ("t_spmm", "target: SpMM fwd >= cuSPARSE, F = 16..128"),
    ("t_spmm_small", "target: SpMM fwd >= 1.3x cuSPARSE at F <= 32"),
    ("t_spmm_bwd", "target: SpMM backward <= forward"),
    ("t_bandwidth", "SpMM achieved bandwidth / copy bandwidth"),
    ("t_gcn", "target: GCN fwd+bwd <= 12 ms, 1M nodes / 32M edges, F=128"),
    ("t_gcn_big", "target: 2.45M / 60M GCN runs, peak memory O(NF + E)"),
    ("t_lstm", "target: fused LSTM step <= 2x cuDNN at T=30 (TF32 off)"),
    ("t_gen", "target: 200 characters at batch 1 <= 10 ms"),
    ("t_sampling", "target: sampling 1024 seeds with [15, 10] < GCN fwd+bwd on the batch (169k-node graph)"),
]


# ---------------------------------------------------------------------------------------------- report
class Report:
    """Checks, figures and raw rows; saved to ``out`` after every section."""

    def __init__(self, out: Path | None, budget: float, dry: bool) -> None:
        self.t0 = time.monotonic()
        self.out, self.budget, self.dry = out, budget, dry
        self.env: dict = {}
        self.checks: list[dict] = []
        self.figures: dict[str, str] = {}
        self.status: dict[str, str] = {}  # explicit status (targets, NOT-RUN reasons)
        self.raw: dict[str, list[dict]] = {}
        self.sections: dict[str, dict] = {}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def remaining(self) -> float:
        return self.budget - self.elapsed()

    def log(self, msg: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {msg}", flush=True)

    def check(self, key: str, name: str, ok: bool, detail: str = "", quiet: bool = False) -> bool:
        ok = bool(ok)
        self.checks.append({"key": key, "name": name, "ok": ok, "detail": detail})
        if not ok or not quiet:
            self.log(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        return ok

    def figure(self, key: str, text: str, status: str | None = None) -> None:
        self.figures[key] = text
        if status is not None:
            self.status[key] = status

    def target(self, key: str, text: str, met: bool | None) -> None:
        """A speed target: PASS/FAIL on a GPU, DRY in a dry run, INFO when ``met`` is None."""
        status = "INFO" if met is None else "DRY" if self.dry else ("PASS" if met else "FAIL")
        self.figure(key, text, status)
        self.log(f"  {status:<4} {key}: {text}")

    def rows(self, name: str, rows: list[dict]) -> None:
        self.raw.setdefault(name, []).extend(rows)

    def summary_rows(self) -> list[tuple[str, str, str, str]]:
        out = []
        for key, label in SUMMARY:
            mine = [c for c in self.checks if c["key"] == key]
            if key in self.status:
                status = self.status[key]
            elif mine:
                status = "PASS" if all(c["ok"] for c in mine) else "FAIL"
            else:
                status = "NOT-RUN"
            figure = self.figures.get(key)
            if figure is None and mine:
                bad = [c for c in mine if not c["ok"]]
                figure = f"{len(mine) - len(bad)}/{len(mine)} ok" + (f"; first failure: {bad[0]['name']}" if bad else "")
            out.append((key, label, figure or "-", status))
        return out

    def failed(self) -> bool:
        return any(not c["ok"] for c in self.checks) or any(s.get("error") for s in self.sections.values())

    def summary(self) -> str:
        lines = [f"gpu_check summary: {self.env.get('device', '?')}, {self.elapsed():.1f} s"
                 + (" (DRY RUN: CPU, tiny sizes, Triton interpreted)" if self.dry else "")]
        rows = self.summary_rows()
        w1 = max(len(r[1]) for r in rows)
        w2 = min(70, max(len(r[2]) for r in rows))
        lines.append(f"{'claim':<{w1}}  {'measured':<{w2}}  status")
        lines.append("-" * (w1 + w2 + 10))
        for _, label, figure, status in rows:
            lines.append(f"{label:<{w1}}  {figure:<{w2}}  {status}")
        errors = [f"{k}: {v['error']}" for k, v in self.sections.items() if v.get("error")]
        if errors:
            lines.append("sections that raised: " + "; ".join(errors))
        lines.append(f"exit status: {1 if self.failed() else 0} (1 = a correctness check failed or a section raised)")
        return "\n".join(lines)

    def save(self) -> None:
        if self.out is None:
            return
        from gseq.train import write_csv, write_json

        summary = [dict(zip(("key", "claim", "measured", "status"), r)) for r in self.summary_rows()]
        write_json(self.out / "gpu_check.json", {"env": self.env, "sections": self.sections, "summary": summary,
                                                 "checks": self.checks, "raw": self.raw})
        write_csv(self.out / "checks.csv", self.checks, ["key", "name", "ok", "detail"])
        for name, rows in self.raw.items():
            if rows:
                fields = list(dict.fromkeys(k for r in rows for k in r))
                write_csv(self.out / f"{name}.csv", rows, fields)


# ---------------------------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device: torch.device, target_ms: float) -> float:
    """Median milliseconds of one call of ``fn``: a warm-up (compilation, caches) of about 25 ms, then as
    many calls as fit in ``target_ms`` (3..200), each timed with CUDA events on CUDA (``perf_counter``
    on the CPU); on the CPU with ``target_ms == 0`` (a dry run) the time of one call."""
    if device.type != "cuda":
        t0 = time.perf_counter()
        fn()
        first = (time.perf_counter() - t0) * 1e3
        if target_ms <= 0:
            return first
        samples = []
        for _ in range(max(2, min(50, int(target_ms / max(first, 1e-3))))):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(samples)
    fn()
    sync(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    est = max(start.elapsed_time(end), 1e-3)
    for _ in range(min(200, int(25 / est))):
        fn()
    reps = max(3, min(200, int(target_ms / est)))
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in events:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize(device)
    return statistics.median(s.elapsed_time(e) for s, e in events)


def exact_values(shape, generator: torch.Generator, low: int = -64, high: int = 64) -> torch.Tensor:
    """float64 multiples of 1/8 in [low/8, high/8]: exact in float16, bfloat16, float32 and float64."""
    return torch.randint(low, high + 1, shape, generator=generator).double().div_(8)


def compare(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> tuple[bool, str]:
    """Elementwise ``|got - ref| <= tol (|ref| + 1)``; the worst ratio of error to allowance."""
    got = got.detach().double().cpu()
    if got.shape != ref.shape:
        return False, f"shape {tuple(got.shape)} != {tuple(ref.shape)}"
    tol = TOL[dtype]
    if got.numel() == 0:
        return True, "empty"
    err = (got - ref).abs()
    allow = tol * (ref.abs() + 1)
    worst = float((err / allow).nan_to_num(nan=float("inf")).max())
    return worst <= 1.0, f"worst error {worst:.2g} x tolerance"


@contextlib.contextmanager
def no_tf32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def triton_everywhere(device: torch.device, cfg: Sizes | None = None):
    """Run gseq's ops on the Triton backend: automatic on CUDA; forced under the interpreter on the CPU
    (a dry run exercises the kernels; explicit ``backend="torch"`` references are unaffected), except
    outside ``ops``/``large`` in the quick dry run (``cfg.triton_everywhere`` false: torch backend)."""
    if device.type == "cuda":
        return contextlib.nullcontext()
    return ops.use_backend("triton" if cfg is None or cfg.triton_everywhere else "torch")


def free(device: torch.device) -> None:
    """Return this script's cached blocks between big sections (the script's own memory, not a user's)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _segment_fn():
    """``segment_csr`` (torch_scatter's name) when gseq has it, else the older ``segment``."""
    return getattr(ops, "segment_csr", None) or ops.segment


# ---------------------------------------------------------------------------------------------- env
def sec_env(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    env = {"python": platform.python_version(), "torch": torch.__version__, "dry_run": rep.dry,
           "triton_available": ops.TRITON_AVAILABLE, "cuda": torch.version.cuda,
           "cpu_threads": torch.get_num_threads()}
    for mod in ("triton", "torch_geometric", "torch_scatter", "pytest", "hypothesis"):
        spec = importlib.util.find_spec(mod)
        if spec is None:
            env[mod] = None
            continue
        try:
            env[mod] = getattr(__import__(mod), "__version__", "installed")
        except Exception as exc:  # noqa: BLE001 - a broken install is reported, not fatal
            env[mod] = f"import failed: {exc}"
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(device=f"{props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.0f} GiB)",
                   gpus=torch.cuda.device_count())
    else:
        env["device"] = f"CPU ({os.cpu_count()} cores)"
    env["copy_gbs"] = bench_spmm.copy_bandwidth(dev, torch.get_num_threads())
    rep.env.update(env)
    for k, v in env.items():
        rep.log(f"  {k}: {v}")
    if env["torch_scatter"] is None:
        rep.log("  note: torch_scatter is not installed: its benchmark rows are skipped")
    if env["hypothesis"] is None:
        rep.log("  note: hypothesis is not installed: test modules that import it cannot be collected")


# ---------------------------------------------------------------------------------------------- tests
class TestPass(threading.Thread):
    """The pytest passes in subprocesses, one after the other, in a background thread."""

    def __init__(self, cfg: Sizes, dev: torch.device, deadline: float, out: Path | None, log) -> None:
        super().__init__(daemon=True)
        self.deadline, self.out, self.log = deadline, out, log
        self.results: dict[str, dict] = {}
        py = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
              "--continue-on-collection-errors"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.pop("TRITON_INTERPRET", None)
        interp = dict(env, TRITON_INTERPRET="1")
        if cfg.tests == "full":
            self.runs = [("tests", py + ["-m", "not triton", "tests/ops", "tests/layers", "tests/models"], env),
                         ("tests_triton", py + ["-m", "triton", "tests/ops"], env if dev.type == "cuda" else interp)]
        else:  # the same machinery on a few tests; the triton selection only collected
            pick = "bad_arguments and temperature" if cfg.tests == "quick" else "autocast or bad_arguments"
            self.runs = [("tests", py + ["-m", "not triton", "tests/layers/test_recurrent.py",
                                         "tests/models/test_generate.py", "-k", pick], env)]
            if cfg.tests == "dry":
                self.runs.append(("tests_triton", py + ["--co", "-m", "triton", "tests/ops"], interp))

    def run(self) -> None:
        for name, cmd, env in self.runs:
            left = self.deadline - time.monotonic()
            if left < 5:
                self.results[name] = {"not_run": "no time left in the budget"}
                continue
            self.log(f"tests: starting {name}: {' '.join(cmd[1:])}")
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
            try:
                text, _ = proc.communicate(timeout=left)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the pytest process this thread started, and its children
                text, _ = proc.communicate()
                timed_out = True
            result = parse_pytest(text)
            result.update(rc=proc.returncode, seconds=round(time.monotonic() - t0, 1), timed_out=timed_out,
                          command=" ".join(cmd[1:]))
            self.results[name] = result
            if self.out is not None:
                (self.out / f"pytest-{name}.txt").write_text(text)
            self.log(f"tests: {name} done in {result['seconds']} s: {result['line']}")


_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)")


def parse_pytest(text: str) -> dict:
    """Counts from pytest's last line, and the FAILED/ERROR lines split by cause: a missing
    ``$GSEQ_DATA`` folder or a missing ``hypothesis`` is the machine's, not the code's."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = next((ln for ln in reversed(lines) if re.search(r" in [\d.]+s", ln) or "collected" in ln), "")
    counts = {k: 0 for k in ("passed", "failed", "errors", "skipped", "deselected", "xfailed", "xpassed")}
    for n, what in _COUNT.findall(last):
        counts["errors" if what.startswith("error") else what] += int(n)
    collected = re.search(r"(\d+)(?:/\d+)? tests? collected", last)
    bad = [ln for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    data = [ln for ln in bad if "GSEQ_DATA" in ln]
    hyp = [ln for ln in bad if "No module named 'hypothesis'" in ln]
    real = [ln for ln in bad if ln not in data and ln not in hyp]
    return {"line": last.strip("= ").strip(), **counts, "collected": int(collected.group(1)) if collected else None,
            "failures": real, "needs_data": data, "needs_hypothesis": hyp}


def collect_tests(rep: Report, tests: TestPass | None, why: str = "") -> None:
    if tests is None:
        for key in ("tests", "tests_triton"):
            rep.figure(key, why or "not started", "NOT-RUN")
        return
    tests.join(max(0.0, tests.deadline - time.monotonic()) + 10)
    for key, _, _ in tests.runs:
        r = tests.results.get(key)
        if r is None or "not_run" in r:
            rep.figure(key, (r or {}).get("not_run", "still running at the deadline"), "NOT-RUN")
            continue
        rep.sections.setdefault("tests", {})[key] = r
        notes = []
        if r["needs_data"]:
            notes.append(f"{len(r['needs_data'])} need $GSEQ_DATA (absent)")
        if r["needs_hypothesis"]:
            notes.append(f"{len(r['needs_hypothesis'])} modules need hypothesis (absent)")
        if r["collected"] is not None and not r["passed"]:  # --co: collection only (dry run)
            figure = f"{r['collected']} tests collected (collection only), rc {r['rc']}"
            ok = r["rc"] == 0 and r["collected"] > 0
        else:
            figure = f"{r['passed']} passed, {len(r['failures'])} failed/errors, {r['skipped']} skipped"
            ok = r["passed"] > 0 and not r["failures"] and not r["timed_out"]
        if r["timed_out"]:
            figure += f"; TIMED OUT after {r['seconds']} s"
        figure += f" ({r['seconds']} s)" + ("; " + "; ".join(notes) if notes else "")
        rep.figure(key, figure)
        rep.check(key, f"pytest {key}", ok, figure)
        for ln in r["failures"][:20]:
            rep.log(f"    {ln[:200]}")


# ---------------------------------------------------------------------------------------------- ops
def _grid_graph(cfg: Sizes) -> tuple[torch.Tensor, int]:
    """A power-law graph plus a hub: node 0 receives ``grid_hub`` more edges (repeated sources included)."""
    n = cfg.grid_nodes
    g = torch.Generator().manual_seed(11)
    ei = bench_spmm.power_law_graph(n, cfg.grid_edges, 1, "cpu")
    hub = torch.stack([torch.randint(n, (cfg.grid_hub,), generator=g), torch.zeros(cfg.grid_hub, dtype=torch.long)])
    return torch.cat([ei, hub], 1), n


def _spmm_case(csr_dev, x64, g64, reduce, dtype, dev, values=None):
    """Output and gradients (x, and values when given) of gseq's spmm on the device."""
    x = x64.to(dev, dtype).requires_grad_()
    if values is not None:
        v = values.to(dev, dtype).requires_grad_()
        csr_dev = csr_dev.with_values(v)
    y = ops.spmm(csr_dev, x, reduce, backend="triton")
    grads = torch.autograd.grad(y, [x] + ([v] if values is not None else []), g64.to(dev, dtype))
    return y, grads


def _spmm_reference(csr_cpu, x64, g64, reduce, values=None):
    x = x64.clone().requires_grad_()
    if values is not None:
        v = values.clone().requires_grad_()
        csr_cpu = csr_cpu.with_values(v)
    y = ops.spmm(csr_cpu, x, reduce, backend="torch")
    grads = torch.autograd.grad(y, [x] + ([v] if values is not None else []), g64)
    return y.detach(), [gr.detach() for gr in grads]


def sec_ops(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    ei, n = _grid_graph(cfg)
    csr_cpu = CSR.from_edge_index(ei, num_nodes=n)
    csr_dev = CSR.from_edge_index(ei.to(dev), num_nodes=n)
    counts = csr_cpu.row_counts()
    rep.log(f"  graph: {n} nodes, {csr_cpu.nnz:,} entries, largest row {int(counts.max()):,}, "
            f"{int((counts == 0).sum())} empty rows")
    g = torch.Generator().manual_seed(0)
    rows = []

    def record(key, op, reduce, dtype, f, run) -> None:
        try:
            ok, detail = run()
        except Exception as exc:  # noqa: BLE001 - one case failing is a result, not the end of the grid
            ok, detail = False, f"{type(exc).__name__}: {str(exc)[:200]}"
        rep.check(key, f"{op} {reduce} {str(dtype)[6:]} F={f}", ok, detail, quiet=True)
        rows.append({"op": op, "reduce": reduce, "dtype": str(dtype)[6:], "F": f, "ok": ok, "detail": detail})

    for f in sorted({c[0] for c in cfg.grid}):
        x64, g64 = exact_values((n, f), g), exact_values((n, f), g)
        t0 = time.monotonic()
        cases = [c for c in cfg.grid if c[0] == f]
        for reduce in dict.fromkeys(c[1] for c in cases):
            y_ref, (gx_ref,) = _spmm_reference(csr_cpu, x64, g64, reduce)
            for dtype in [c[2] for c in cases if c[1] == reduce]:
                def run(reduce=reduce, dtype=dtype, y_ref=y_ref, gx_ref=gx_ref):
                    y, (gx,) = _spmm_case(csr_dev, x64, g64, reduce, dtype, dev)
                    (ok_y, d_y), (ok_g, d_g) = compare(y, y_ref, dtype), compare(gx, gx_ref, dtype)
                    return ok_y and ok_g, f"output {d_y}; grad x {d_g}"
                record("ops_grid", "spmm", reduce, dtype, f, run)
        done = rows[-len(cases):]
        rep.log(f"  F={f}: {sum(r['ok'] for r in done)} of {len(cases)} (reduce, dtype) cases agree "
                f"({time.monotonic() - t0:.1f} s)")
    bad = [r for r in rows if not r["ok"]]
    rep.figure("ops_grid", f"{len(rows) - len(bad)}/{len(rows)} (F, reduce, dtype) cases ok, outputs and grads; "
               f"hub row {int(counts.max()):,} entries" + (f"; first failure: {bad[0]['reduce']} {bad[0]['dtype']} "
                                                           f"F={bad[0]['F']}" if bad else ""))
    # weighted: values multiples of 1/16 in [1/8, 1]; gradients of x and of the values
    f = cfg.weighted_f
    x64, g64 = exact_values((n, f), g), exact_values((n, f), g)
    values = exact_values((csr_cpu.nnz,), g, 2, 16).div_(2)
    for reduce in dict.fromkeys(c[0] for c in cfg.weighted):
        y_ref, (gx_ref, gv_ref) = _spmm_reference(csr_cpu, x64, g64, reduce, values)
        for dtype in [c[1] for c in cfg.weighted if c[0] == reduce]:
            def run(reduce=reduce, dtype=dtype, y_ref=y_ref, gx_ref=gx_ref, gv_ref=gv_ref):
                y, (gx, gv) = _spmm_case(csr_dev, x64, g64, reduce, dtype, dev, values)
                oks = [compare(a, b, dtype) for a, b in ((y, y_ref), (gx, gx_ref), (gv, gv_ref))]
                return all(o for o, _ in oks), "; ".join(f"{w} {d}" for w, (_, d) in zip(("y", "gx", "gv"), oks))
            record("ops_weighted", "weighted spmm", reduce, dtype, f, run)
    # scatter (torch_scatter's signature, keyword arguments) and segment_csr
    index = ei[1]
    src64 = exact_values((index.numel(), f), g)
    gsc64 = exact_values((n, f), g)
    seg = _segment_fn()
    indptr = csr_cpu.indptr
    ssrc64 = exact_values((csr_cpu.nnz, f), g)
    for reduce in dict.fromkeys(c[0] for c in cfg.scatter):
        s = src64.clone().requires_grad_()
        with ops.use_backend("torch"):
            ref = ops.scatter(s, index, dim=0, dim_size=n, reduce=reduce)
        (gref,) = torch.autograd.grad(ref, s, gsc64)
        # an independent forward reference: torch's scatter_reduce (positions receiving nothing stay 0)
        name = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}[reduce]
        ind = torch.zeros(n, f, dtype=torch.float64).scatter_reduce(0, index[:, None].expand(-1, f), src64, name,
                                                                    include_self=False)
        ok_ind, _ = compare(ref, ind, torch.float64)
        rep.check("ops_scatter", f"CPU reference scatter {reduce} == torch.scatter_reduce", ok_ind, quiet=True)
        ss = ssrc64.clone().requires_grad_()
        with ops.use_backend("torch"):
            sref = seg(ss, indptr, reduce=reduce)
        (sgref,) = torch.autograd.grad(sref, ss, gsc64)
        for dtype in [c[1] for c in cfg.scatter if c[0] == reduce]:
            for what, fn, src, r_out, r_grad in (
                    ("scatter", lambda t: ops.scatter(t, index.to(dev), dim=0, dim_size=n, reduce=reduce),
                     src64, ref, gref),
                    ("segment_csr", lambda t: seg(t, indptr.to(dev), reduce=reduce), ssrc64, sref, sgref)):
                def run(fn=fn, src=src, r_out=r_out, r_grad=r_grad, dtype=dtype):
                    t = src.to(dev, dtype).requires_grad_()
                    with ops.use_backend("triton"):  # keyword arguments: old and new (torch_scatter) signatures
                        out = fn(t)
                    (gt,) = torch.autograd.grad(out, t, gsc64.to(dev, dtype))
                    (o1, d1), (o2, d2) = compare(out, r_out.detach(), dtype), compare(gt, r_grad, dtype)
                    return o1 and o2, f"output {d1}; grad {d2}"
                record("ops_scatter", what, reduce, dtype, f, run)
    rep.rows("ops", rows)


# ---------------------------------------------------------------------------------------------- large
def _sampled_rows(m: int, g: torch.Generator) -> torch.Tensor:
    """The first and last rows (the largest offsets) and 256 random ones."""
    return torch.unique(torch.cat([torch.arange(min(16, m)), torch.arange(max(0, m - 64), m),
                                   torch.randint(m, (256,), generator=g)]))


def sec_large(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    g = torch.Generator().manual_seed(5)
    # nnz > 2^31: row i holds `degree` entries, columns spread by a multiplicative hash
    m, d, n = cfg.big_rows, cfg.big_degree, cfg.big_cols
    nnz = m * d
    t0 = time.monotonic()
    indices = torch.arange(nnz, device=dev, dtype=torch.long).mul_(2654435761).remainder_(n)
    indptr = torch.arange(m + 1, device=dev, dtype=torch.long).mul_(d)
    csr = CSR(indptr, indices, None, (m, n))
    x = exact_values((n, 2), g).float().to(dev)
    sync(dev)
    rep.log(f"  nnz = {nnz:,} ({nnz / 2**31:.3f} x 2^31), built and validated on {dev} in {time.monotonic() - t0:.1f} s")
    rows = _sampled_rows(m, g).to(dev)
    entries = indices[indptr[rows][:, None] + torch.arange(d, device=dev)]  # [k, d]
    gathered = x.double()[entries]  # [k, d, 2]
    for reduce in ("sum", "max"):
        t0 = time.monotonic()
        with triton_everywhere(dev):
            y = ops.spmm(csr, x, reduce)
        sync(dev)
        secs = time.monotonic() - t0
        ref = gathered.sum(1) if reduce == "sum" else gathered.amax(1)
        ok = torch.equal(y[rows].double(), ref)
        rep.check("large_nnz", f"nnz = {nnz:,}: spmm {reduce} on {rows.numel()} sampled rows (the last included)", ok,
                  f"{secs:.2f} s")
    rep.figure("large_nnz", f"nnz = {nnz:,} ({'>' if nnz > 2**31 else '<='} 2^31); sum, max exact on sampled rows")
    del indices, indptr, csr, entries, gathered, y
    free(dev)
    # N x F > 2^31: row i sums x[i] and x[N-1-i]; x as X.t() (stride(1) = N) and contiguous
    nw, fw = cfg.wide_nodes, cfg.wide_features
    r = torch.arange(nw, device=dev)
    csr = CSR.from_edge_index(torch.stack([torch.cat([r, nw - 1 - r]), torch.cat([r, r])]), num_nodes=nw)
    del r
    big_x = torch.randint(-64, 65, (fw, nw), device=dev, dtype=torch.float32).div_(8)  # X [F, N]
    rows = _sampled_rows(nw, g).to(dev)
    for layout in ("X.t()", "contiguous"):
        x = big_x.t() if layout == "X.t()" else big_x.t().contiguous()
        if layout == "contiguous":
            del big_x
        t0 = time.monotonic()
        with triton_everywhere(dev):
            y = ops.spmm(csr, x)
        sync(dev)
        secs = time.monotonic() - t0
        ref = x[rows].double() + x[nw - 1 - rows].double()
        ok = torch.equal(y[rows].double(), ref)
        rep.check("large_nf", f"N x F = {nw:,} x {fw} = {nw * fw:,}, x {layout} (strides {x.stride()})", ok,
                  f"{secs:.2f} s")
        del y
    rep.figure("large_nf", f"N x F = {nw * fw:,} ({'>' if nw * fw > 2**31 else '<='} 2^31); exact on sampled rows")
    del x, csr
    free(dev)


# ---------------------------------------------------------------------------------------------- repeat
def sec_repeat(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    from gseq.layers import GCN

    n, e = cfg.repeat_graph
    ei = bench_spmm.power_law_graph(n, e, 2, dev)
    torch.manual_seed(0)
    x = torch.randn(n, 64, device=dev)
    gy = torch.randn(n, 64, device=dev)
    w = torch.rand(ei.size(1), device=dev)
    index = ei[1]
    src = torch.randn(ei.size(1), 64, device=dev)

    def spmm_run(reduce):
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        csr = CSR.from_edge_index(ei, edge_weight=wr, num_nodes=n)
        y = ops.spmm(csr, xr, reduce)
        return [y, *torch.autograd.grad(y, [xr, wr], gy)]

    def scatter_run():
        s = src.clone().requires_grad_()
        y = ops.scatter(s, index, dim=0, dim_size=n, reduce="sum")
        return [y, *torch.autograd.grad(y, s, gy)]

    def gcn_run():
        torch.manual_seed(1)
        layer = GCN(64, 64).to(dev)
        xr = x.clone().requires_grad_()
        y = layer(xr, ei, w)
        return [y, *torch.autograd.grad(y, [xr, layer.lin.weight], gy)]

    with triton_everywhere(dev, cfg):
        for name, fn in (("spmm sum", lambda: spmm_run("sum")), ("spmm max", lambda: spmm_run("max")),
                         ("scatter sum", scatter_run), ("GCN layer", gcn_run)):
            a, b = fn(), fn()
            same = all(torch.equal(p, q) for p, q in zip(a, b))
            rep.check("repeat", f"{name}: two runs bitwise equal (output and gradients)", same)
    rep.figure("repeat", f"graph {n:,} nodes / {ei.size(1):,} edges, F=64: "
               f"{sum(c['ok'] for c in rep.checks if c['key'] == 'repeat')}/4 bitwise equal")


# ---------------------------------------------------------------------------------------------- gcn
def sec_gcn(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    from torch_geometric.nn import GCNConv
    from torch_geometric.utils import coalesce, remove_self_loops

    from gseq.layers import GCN

    if cfg.gcn_check_graph is None:
        ei, n, label = bench_gcn.load_graph("cora", 0, dev)
    else:
        n, e = cfg.gcn_check_graph
        ei = coalesce(remove_self_loops(bench_spmm.power_law_graph(n, e, 3, dev))[0], num_nodes=n)
        label = f"power-law {n} nodes"
    rep.log(f"  graph: {label}, {ei.size(1):,} edges")
    tol = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-11)}
    with no_tf32(), triton_everywhere(dev, cfg):
        for dtype, weighted, cached in cfg.gcn_cases:
            torch.manual_seed(0)
            pyg = GCNConv(64, 32, cached=cached).to(dev, dtype)
            ours = GCN(64, 32, cached=cached).to(dev, dtype)
            ours.load_state_dict(pyg.state_dict())
            x = torch.randn(n, 64, device=dev, dtype=dtype)
            w = torch.rand(ei.size(1), device=dev, dtype=dtype) + 0.5 if weighted else None
            gy = torch.randn(n, 32, device=dev, dtype=dtype)
            results = []
            for model in (pyg, ours):
                for _ in range(2 if cached else 1):  # cached: the second call uses the cache
                    xr = x.clone().requires_grad_()
                    y = model(xr, ei, w)
                grads = torch.autograd.grad(y, [xr, model.lin.weight, model.bias], gy)
                results.append([y.detach(), *grads])
            errs = []
            ok = True
            for what, a, b in zip(("y", "grad x", "grad W", "grad b"), results[1], results[0]):
                try:
                    torch.testing.assert_close(a, b, **tol[dtype])
                except AssertionError:
                    ok = False
                errs.append(f"{what} {float((a - b).abs().max()):.1e}")
            rep.check("gcn", f"GCN vs GCNConv {str(dtype)[6:]} weighted={weighted} cached={cached}", ok,
                      "max abs diff: " + ", ".join(errs))


# ---------------------------------------------------------------------------------------------- lstm
def sec_lstm(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    from gseq.layers import LSTM

    b, t, h, i = cfg.lstm
    torch.manual_seed(0)
    ref = nn.LSTM(i, h, batch_first=True).to(dev)
    ours = LSTM(i, h).to(dev)
    ours.cell.load_state_dict({k[: -len("_l0")]: v for k, v in ref.state_dict().items()})
    x = torch.randn(b, t, i, device=dev)
    gy = torch.randn(b, t, h, device=dev)
    with no_tf32():
        outs = []
        for model, params in ((ref, [ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0]),
                              (ours, [ours.cell.weight_ih, ours.cell.weight_hh, ours.cell.bias_ih, ours.cell.bias_hh])):
            xr = x.clone().requires_grad_()
            y = model(xr)[0]
            outs.append([y.detach(), *torch.autograd.grad(y, [xr, *params], gy)])
    names = ("output", "grad x", "grad W_ih", "grad W_hh", "grad b_ih", "grad b_hh")
    errs, ok = [], True
    for what, a, c in zip(names, outs[1], outs[0]):
        try:
            torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
        except AssertionError:
            ok = False
        errs.append(f"{what} {float((a - c).abs().max()):.1e}")
    kind = "cuDNN" if dev.type == "cuda" else "oneDNN/native"
    rep.check("lstm", f"fused LSTM vs nn.LSTM ({kind}, TF32 off), B={b} T={t} H={h}", ok,
              "max abs diff: " + ", ".join(errs))
    half = torch.float16 if dev.type == "cuda" else torch.bfloat16
    ours.zero_grad()
    with torch.autocast(dev.type, dtype=half):
        y = ours(x)[0]
        loss = (y.float() * gy).sum()
    loss.backward()
    rel = float((y.float() - outs[1][0]).abs().max() / outs[1][0].abs().max())
    grads_ok = all(p.grad is not None and p.grad.dtype == torch.float32 and bool(torch.isfinite(p.grad).all())
                   for p in ours.parameters())
    rep.check("lstm", f"fused LSTM under autocast {str(half)[6:]}: output dtype {str(y.dtype)[6:]}, "
              f"finite float32 gradients", y.dtype == half and grads_ok and rel < 3e-2, f"max error {rel:.1e} of max |h|")


# ---------------------------------------------------------------------------------------------- generate
def _text_model(dev: torch.device, hidden: int, layers: int = 2):
    from gseq.data import CharVocab
    from gseq.models import CharLSTM

    vocab = CharVocab.from_text("".join(chr(c) for c in range(32, 127)))  # 95 characters
    torch.manual_seed(0)
    return CharLSTM(len(vocab), hidden_size=hidden, num_layers=layers).to(dev).eval(), vocab


def _count_syncs(fn, dev: torch.device) -> int:
    """Host synchronisations made by ``fn``: torch's sync debug mode on CUDA; on the CPU the Python-level
    reads of a tensor's value (item, bool, int, float, index, tolist) are counted instead."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)
    calls = []
    saved = {}
    for name in ("item", "__bool__", "__int__", "__float__", "__index__", "tolist"):
        saved[name] = torch.Tensor.__dict__.get(name)

        def counted(self, *args, _orig=getattr(torch.Tensor, name), **kwargs):
            calls.append(1)
            return _orig(self, *args, **kwargs)
        setattr(torch.Tensor, name, counted)
    try:
        fn()
    finally:
        for name, orig in saved.items():
            if orig is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, orig)
    return len(calls)


def sec_generate(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    from gseq.models import generate
    from gseq.models._step_graph import STEPS
    from gseq.models.generate import _sample_ids

    model, vocab = _text_model(dev, cfg.text_hidden)
    length = cfg.gen_length

    fallbacks = []

    def gen(graph, temperature, batch, seed=3, m=None, n=length):
        g = torch.Generator(device=(m or model).head.weight.device).manual_seed(seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            text = generate(m or model, vocab, "ab", n, temperature, generator=g, batch=batch, cuda_graph=graph)
        fallbacks.extend(str(w.message) for w in caught if "CUDA graph capture failed" in str(w.message))
        return text

    for temperature in (0.0, 0.8):
        for batch in cfg.gen_batches:
            same = gen(True, temperature, batch) == gen(False, temperature, batch)
            rep.check("gen_equal", f"generate(cuda_graph=True) == eager, T={temperature}, batch {batch}, {length} chars",
                      same)
    if dev.type == "cuda":  # equal because the graph ran, not because generate fell back to the eager loop
        rep.check("gen_equal", "the step was captured (no fall-back to the eager loop)", not fallbacks,
                  fallbacks[0][:300] if fallbacks else "")
    else:  # the CUDA-graph path's static step, run eagerly (on CUDA it is what generate captured)
        with torch.inference_mode():
            ids = vocab.encode("ab")
            a = _sample_ids(model, ids, length, 0.8, None, None, torch.Generator().manual_seed(1), 2)
            b = _sample_ids(model, ids, length, 0.8, None, None, torch.Generator().manual_seed(1), 2, static=True)
        rep.check("gen_equal", "static-buffer step (run eagerly) == eager loop", torch.equal(a, b))
    # the cache: a second call reuses the step, keeps reserved memory; weight updates in place are followed
    capture = dev.type == "cuda"

    def static(temperature=0.8, batch=2, seed=4):
        if capture:
            return gen(True, temperature, batch, seed)
        with torch.inference_mode():
            return _sample_ids(model, vocab.encode("ab"), length, temperature, None, None,
                               torch.Generator().manual_seed(seed), batch, static=True)
    static()
    builds = STEPS.builds
    reserved = torch.cuda.memory_reserved(dev) if capture else 0
    static(seed=5)
    again = STEPS.builds == builds and not fallbacks
    kept = (torch.cuda.memory_reserved(dev) >= reserved) if capture else True
    rep.check("gen_cache", "second call reuses the captured step (no new capture)", again,
              f"builds {builds} -> {STEPS.builds}")
    rep.check("gen_cache", "reserved memory kept across a call (no empty_cache)", kept,
              f"{reserved / 2**20:.0f} MiB -> {torch.cuda.memory_reserved(dev) / 2**20:.0f} MiB" if capture else "CPU")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
    follows = gen(True, 0.8, 2, 6) == gen(False, 0.8, 2, 6)
    rep.check("gen_cache", "after an in-place weight update the cached graph samples the new weights",
              follows and STEPS.builds == builds, f"builds {STEPS.builds}")
    model.double()
    replaced = gen(True, 0.8, 2, 7) == gen(False, 0.8, 2, 7)
    rep.check("gen_cache", "after model.double() (parameters replaced) a new step is built and is right",
              replaced and (STEPS.builds == builds + 1 or not capture), f"builds {STEPS.builds}")
    model.float()
    # host synchronisations: the same count for a short and a long sample, so none per character
    figures = []
    for graph in ((True, False) if capture else (False,)):
        n_short, n_long = cfg.sync_lengths
        gen(graph, 1.0, 1, n=n_short)  # builds (captures) the step outside the count
        short = _count_syncs(lambda: gen(graph, 1.0, 1, n=n_short), dev)
        long = _count_syncs(lambda: gen(graph, 1.0, 1, n=n_long), dev)
        rep.check("gen_sync", f"host syncs, cuda_graph={graph}: {short} for {n_short} characters, {long} for {n_long}",
                  long == short)
        figures.append(f"{'graph' if graph else 'eager'}: {short} syncs / {n_short} chars, {long} / {n_long}")
    rep.figure("gen_sync", "; ".join(figures) + ("" if capture else " (CPU: Python-level tensor reads counted)"))
    if dev.type == "cuda" and torch.cuda.device_count() > 1:
        other, _ = _text_model(torch.device("cuda:1"), cfg.text_hidden)
        with torch.cuda.device(0):
            same = gen(True, 0.8, 2, m=other) == gen(False, 0.8, 2, m=other)
        rep.check("gen_multi", "model on cuda:1, cuda:0 current: graph == eager", same)
    else:
        rep.figure("gen_multi", f"{torch.cuda.device_count() if dev.type == 'cuda' else 0} GPU(s) here", "NOT-RUN")


# ---------------------------------------------------------------------------------------------- benchmarks
class Graphs:
    """Power-law graphs built on the device once and shared by the benchmark sections (kept: the largest,
    60M edges, holds 0.96 GB of indices)."""

    def __init__(self, rep: Report, dev: torch.device) -> None:
        self.rep, self.dev, self.cache = rep, dev, {}

    def get(self, name: str, n: int, e: int) -> torch.Tensor:
        if (name, n, e) not in self.cache:
            t0 = time.monotonic()
            ei = bench_spmm.power_law_graph(n, e, 0, self.dev)
            sync(self.dev)
            self.rep.log(f"  graph {name}: {n:,} nodes, {ei.size(1):,} edges, built on {ei.device} "
                         f"in {time.monotonic() - t0:.1f} s")
            self.cache[(name, n, e)] = ei
        return self.cache[(name, n, e)]


def sec_bench_spmm(rep: Report, cfg: Sizes, dev: torch.device, graphs: Graphs) -> None:
    copy_gbs = rep.env.get("copy_gbs") or bench_spmm.copy_bandwidth(dev, torch.get_num_threads())
    rows = []
    for name, n, e, feats in cfg.spmm_graphs:
        ei = graphs.get(name, n, e)
        csr = CSR.from_edge_index(ei, num_nodes=n)
        a_torch = bench_spmm.torch_csr(csr, torch.float32)
        for f in feats:
            x = torch.randn(n, f, device=dev)
            variants = bench_spmm.spmm_variants(csr, a_torch, x, dev, triton=cfg.triton_everywhere)[0]
            variants = bench_spmm._checked(variants, lambda v: v[2](), torch.float32)  # correctness before timing
            moved = bench_spmm.spmm_bytes(csr.nnz, n, f, x.element_size())
            times = {k: [time_ms(v[i], dev, cfg.timing_ms) for i in (0, 3, 1)] for k, v in variants.items()}
            base = times.get("torch.sparse.mm")
            for k, (fwd, bwd, fb) in times.items():
                gbs = moved / (fwd / 1e3) / 1e9
                row = {"graph": name, "nodes": n, "nnz": csr.nnz, "F": f, "variant": k, "fwd_ms": fwd, "bwd_ms": bwd,
                       "fwdbwd_ms": fb, "fwd_speedup": base[0] / fwd if base else None,
                       "fwdbwd_speedup": base[2] / fb if base else None, "bwd_over_fwd": bwd / fwd, "gbs": gbs,
                       "copy_fraction": gbs / copy_gbs}
                rows.append(row)
                rep.log(f"  {name} F={f:<4} {k:<26} fwd {fwd:8.3f} ms  bwd {bwd:8.3f} ms  fwd+bwd {fb:8.3f} ms  "
                        f"x{row['fwd_speedup'] or float('nan'):5.2f}  {gbs:7.1f} GB/s ({100 * gbs / copy_gbs:4.1f}% of copy)")
            del variants, x
        del csr, a_torch
    rep.rows("bench_spmm", rows)
    ours = [r for r in rows if r["variant"] == "gseq triton"]
    if not ours:
        why = "Triton not available" if ops.TRITON_AVAILABLE is False else "Triton variant not timed (quick dry run)"
        for key in ("t_spmm", "t_spmm_small", "t_spmm_bwd", "t_bandwidth"):
            rep.figure(key, why, "NOT-RUN")
        return
    sp = min(ours, key=lambda r: r["fwd_speedup"])
    rep.target("t_spmm", f"min fwd speed-up {sp['fwd_speedup']:.2f}x ({sp['graph']}, F={sp['F']}); "
               + ", ".join(f"{r['graph']} F={r['F']}: {r['fwd_speedup']:.2f}x" for r in ours), sp["fwd_speedup"] >= 1.0)
    small = [r for r in ours if r["F"] <= 32]
    if small:
        s = min(small, key=lambda r: r["fwd_speedup"])
        rep.target("t_spmm_small", f"min {s['fwd_speedup']:.2f}x ({s['graph']}, F={s['F']})", s["fwd_speedup"] >= 1.3)
    worst = max(ours, key=lambda r: r["bwd_over_fwd"])
    rep.target("t_spmm_bwd", f"max bwd/fwd {worst['bwd_over_fwd']:.2f} ({worst['graph']}, F={worst['F']})",
               worst["bwd_over_fwd"] <= 1.0)
    best = max(ours, key=lambda r: r["copy_fraction"])
    rep.target("t_bandwidth", f"{best['gbs']:.0f} GB/s = {100 * best['copy_fraction']:.0f}% of copy "
               f"({copy_gbs:.0f} GB/s) at {best['graph']} F={best['F']}; min "
               f"{100 * min(r['copy_fraction'] for r in ours):.0f}%", None)


def sec_bench_gcn(rep: Report, cfg: Sizes, dev: torch.device, graphs: Graphs) -> None:
    rows = []
    for name, n, e, f, skip in cfg.gcn_graphs:
        ei = graphs.get(name, n, e)
        x = torch.randn(n, f, device=dev)
        grad = torch.randn(n, f, device=dev)
        with triton_everywhere(dev, cfg):
            fns = bench_spmm._checked(bench_spmm.gcn_steps(ei, n, x, grad, skip), lambda fn: fn(), torch.float32,
                                      grads=False)
            base = None
            for k, fn in fns.items():
                ms = time_ms(fn, dev, cfg.timing_ms)
                peak = bench_spmm.peak_mb(fn, dev)
                base = base or (k, ms)
                row = {"graph": name, "nodes": n, "edges": ei.size(1), "F": f, "variant": k, "fwdbwd_ms": ms,
                       "baseline": base[0], "speedup": base[1] / ms, "peak_mib": peak}
                rows.append(row)
                rep.log(f"  {name} F={f} {k:<28} fwd+bwd {ms:9.3f} ms  x{base[1] / ms:5.2f}  peak "
                        f"{'-' if peak is None else f'{peak:9.1f}'} MiB")
        for k in skip:
            rep.log(f"  {name}: {k} left out (builds E x F message tensors; out of memory on 80 GB at this size)")
        del x, grad, fns
    rep.rows("bench_gcn", rows)
    one = {r["variant"]: r for r in rows if r["graph"] == "1m"}
    if "gseq GCN cached=True" in one:
        r = one["gseq GCN cached=True"]
        others = ", ".join(f"{k.replace('PyG GCNConv ', 'PyG ')} {v['fwdbwd_ms']:.1f} ms" for k, v in one.items()
                           if k != "gseq GCN cached=True")
        rep.target("t_gcn", f"{r['fwdbwd_ms']:.2f} ms (gseq cached=True, {r['nodes']:,} nodes / {r['edges']:,} edges); "
                   + others, r["fwdbwd_ms"] <= 12.0)
    big = {r["variant"]: r for r in rows if r["graph"] == "2.45m"}
    if "gseq GCN cached=False" in big:
        r = big["gseq GCN cached=False"]
        unit = r["nodes"] * r["F"] * 4 + 8 * r["edges"]
        ratio = None if r["peak_mib"] is None else r["peak_mib"] * 2**20 / unit
        ef = r["edges"] * r["F"] * 4 / 2**30
        rep.target("t_gcn_big", f"ran: {r['fwdbwd_ms']:.1f} ms, peak {(r['peak_mib'] or 0) / 1024:.2f} GiB = "
                   f"{ratio or float('nan'):.1f} x (N F 4 + 8 E) [rule: <= 12]; one E x F tensor would be {ef:.1f} GiB",
                   ratio is not None and ratio <= 12)
    else:
        rep.figure("t_gcn_big", "gseq GCN did not run on the 2.45M graph", "FAIL" if not rep.dry else "DRY")


def sec_bench_rnn(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    b, t, h, i = cfg.lstm
    steps = bench_rnn.make_variants("lstm", i, h, dev, reference=False)
    g = torch.Generator().manual_seed(t)
    x = torch.randn(b, t, i, generator=g).to(dev)
    y = torch.randint(0, 10, (b,), generator=g).to(dev)
    rounds, per_round, warmup = (7, 3, 3) if not rep.dry else (1, 1, 1)
    with no_tf32():
        med = bench_rnn.bench(steps, x, y, dev, rounds, per_round, warmup)
    ratio = med["gseq-fused"] / med["torch"]
    rows = [{"cell": "lstm", "B": b, "T": t, "H": h, "variant": k, "ms_per_step": v * 1e3, "ratio_vs_torch": v / med["torch"],
             "tf32": False} for k, v in med.items()]
    for r in rows:
        rep.log(f"  LSTM T={t} {r['variant']:<12} {r['ms_per_step']:8.3f} ms/step  {r['ratio_vs_torch']:5.2f}x nn.LSTM")
    rep.rows("bench_rnn", rows)
    kind = "cuDNN" if dev.type == "cuda" else "CPU nn.LSTM"
    rep.target("t_lstm", f"{ratio:.2f}x {kind} ({med['gseq-fused'] * 1e3:.2f} vs {med['torch'] * 1e3:.2f} ms per "
               f"training step, B={b} H={h} T={t}, TF32 off)", ratio <= 2.0)


def sec_bench_text(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    model, vocab = _text_model(dev, cfg.text_hidden)
    rounds, repeats = (3, 3) if not rep.dry else (1, 1)
    rows = []
    figure = None
    for batch in (1, 256) if not rep.dry else (1, 4) if cfg.tests == "dry" else (1,):
        med = bench_text.generation(model, vocab, dev, batch, cfg.bench_length, rounds, repeats)
        for k, sec in med.items():
            ms = sec * cfg.bench_length * 1e3
            rows.append({"section": "generate", "batch": batch, "variant": k, "us_per_char": sec * 1e6,
                         f"ms_per_{cfg.bench_length}": ms})
            rep.log(f"  generate batch {batch:<4} {k:<34} {sec * 1e6:9.1f} us/char  {ms:8.2f} ms per "
                    f"{cfg.bench_length} characters")
        if batch == 1:
            key = "gseq generate, CUDA graph" if "gseq generate, CUDA graph" in med else "gseq generate"
            figure = (med[key] * cfg.bench_length * 1e3, key, med["gseq generate"] * cfg.bench_length * 1e3)
    ids = torch.randint(len(vocab), (20_000,), generator=torch.Generator().manual_seed(0))
    steps = 10 if not rep.dry else 2 if cfg.tests == "dry" else 1
    train = bench_text.training(ids, len(vocab), dev, 2 if not rep.dry else 1, steps, hidden_size=cfg.text_hidden)
    for k, sec in train.items():
        rows.append({"section": "train", "batch": 64, "variant": k, "ms_per_step": sec * 1e3})
        rep.log(f"  train (batch 64, seq 30) {k:<26} {sec * 1e3:8.2f} ms/step")
    rep.rows("bench_text", rows)
    if figure is not None:
        ms, key, eager = figure
        rep.target("t_gen", f"{ms:.2f} ms per {cfg.bench_length} characters ({key}); eager loop {eager:.2f} ms",
                   ms <= 10.0 and cfg.bench_length == 200)


def sec_bench_sampling(rep: Report, cfg: Sizes, dev: torch.device) -> None:
    """benchmarks/bench_sampling.py on this device: neighbour sampling against the GCN step it feeds."""
    import contextlib
    import io
    import tempfile

    graph = "arxiv" if not rep.dry else "cora"
    rounds = "5" if not rep.dry else "1"
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "sampling.csv"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            bench_sampling.main(["--device", str(dev), "--graph", graph, "--rounds", rounds, "--csv", str(csv_path)])
        for line in printed.getvalue().splitlines():
            rep.log(f"  {line}")
        import csv

        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    rep.rows("bench_sampling", rows)
    ratio = next(float(r["ratio"]) for r in rows if r["variant"] == "sample")
    ms = {r["variant"]: float(r["ms"]) for r in rows}
    rep.target("t_sampling", f"{ratio:.3f}x ({ms['sample']:.2f} ms sampling vs {ms['GCN fwd+bwd']:.2f} ms GCN "
               f"fwd+bwd, graph {graph})", ratio < 1.0 and not rep.dry)


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="sections: " + ", ".join(SECTIONS))
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, Triton under the interpreter")
    p.add_argument("--quick", action="store_true", help="with --dry-run: the representative subset the tests run")
    p.add_argument("--only", nargs="+", choices=SECTIONS + ["tests"],
                   help="run only these sections (env always runs)")
    p.add_argument("--skip", nargs="+", choices=SECTIONS + ["tests"], default=[], help="sections to leave out")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole run (default: 345 on a GPU, 240 dry, 120 quick: a cap on a busy "
                        "machine; on an idle one the dry runs take about half)")
    p.add_argument("--test-timeout", type=float, default=None,
                   help="seconds for the pytest passes together (default: 240 on a GPU, 60 dry)")
    p.add_argument("--out", default=os.environ.get("OUT"), help="folder for the raw outputs (default: $OUT)")
    args = p.parse_args(argv)
    if args.dry_run != INTERPRETED:
        p.error("--dry-run runs Triton's interpreter, a GPU run must not: run this file as a script (it sets "
                "TRITON_INTERPRET from the command line before importing Triton)")
    if args.quick and not args.dry_run:
        p.error("--quick is a dry-run option")
    cfg = (QUICK if args.quick else DRY) if args.dry_run else FULL
    col = 2 if args.quick else 1 if args.dry_run else 0
    budget = args.budget or (120.0 if args.quick else 240.0 if args.dry_run else 345.0)
    if args.dry_run:
        dev = torch.device("cpu")
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device here; run with --dry-run for the CPU rehearsal", file=sys.stderr)
            return 2
        dev = torch.device("cuda", torch.cuda.current_device())
        torch.set_num_threads(min(16, os.cpu_count() or 1))
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    rep = Report(Path(args.out) if args.out else None, budget, args.dry_run)
    rep.log(f"gpu_check on {dev}{' (dry run)' if args.dry_run else ''}, budget {budget:.0f} s, "
            f"sizes: {'quick' if args.quick else 'dry' if args.dry_run else 'full'}")
    chosen = [s for s in SECTIONS if (args.only is None or s in args.only or s == "env") and s not in args.skip]
    graphs = Graphs(rep, dev)
    runners = {"env": sec_env, "ops": sec_ops, "large": sec_large, "repeat": sec_repeat, "gcn": sec_gcn,
               "lstm": sec_lstm, "generate": sec_generate,
               "bench_spmm": lambda r, c, d: sec_bench_spmm(r, c, d, graphs),
               "bench_gcn": lambda r, c, d: sec_bench_gcn(r, c, d, graphs),
               "bench_rnn": sec_bench_rnn, "bench_text": sec_bench_text, "bench_sampling": sec_bench_sampling}
    run_tests = "tests" not in args.skip and (args.only is None or "tests" in args.only)
    tests, collected = None, not run_tests
    if not run_tests:
        collect_tests(rep, None, "left out (--skip tests or --only)")
    for name in chosen:
        if name != "env" and not collected and tests is None:  # the test pass runs beside the checks
            tests = start_tests(rep, cfg, dev, args)
            collected = tests is None
        if name.startswith("bench_") and not collected:  # but not beside the timings
            rep.log("tests: waiting for the test pass before the timings")
            collect_tests(rep, tests)
            collected = True
        est = ESTIMATES[name][col]
        if rep.remaining() < est * 0.5:
            rep.log(f"section {name}: NOT RUN (about {est} s needed, {rep.remaining():.0f} s left in the budget)")
            rep.sections[name] = {"not_run": "time budget"}
            continue
        rep.log(f"section {name} (about {est} s)")
        t0 = time.monotonic()
        try:
            runners[name](rep, cfg, dev)
            rep.sections[name] = {"seconds": round(time.monotonic() - t0, 1)}
        except Exception as exc:  # noqa: BLE001 - one section failing must not lose the others
            tb = traceback.format_exc()
            rep.log(f"section {name} RAISED {type(exc).__name__}: {exc}\n{tb}")
            rep.sections[name] = {"seconds": round(time.monotonic() - t0, 1), "error": f"{type(exc).__name__}: {exc}"[:500],
                                  "traceback": tb}
        free(dev)
        rep.save()
    if not collected:
        if tests is None:
            tests = start_tests(rep, cfg, dev, args)
        if tests is not None:
            collect_tests(rep, tests)
    rep.save()
    text = rep.summary()
    print("\n" + text, flush=True)
    if rep.out is not None:
        (rep.out / "gpu_check_summary.txt").write_text(text + "\n")
        rep.log(f"raw outputs in {rep.out}")
    return 1 if rep.failed() else 0


def start_tests(rep: Report, cfg: Sizes, dev: torch.device, args) -> TestPass | None:
    if importlib.util.find_spec("pytest") is None:
        rep.log("tests: pytest is not installed here; the test pass is skipped")
        for key in ("tests", "tests_triton"):
            rep.figure(key, "pytest not installed", "NOT-RUN")
        rep.sections["tests"] = {"not_run": "pytest not installed"}
        return None
    timeout = args.test_timeout or (240.0 if cfg.tests == "full" else 60.0)
    tests = TestPass(cfg, dev, time.monotonic() + min(timeout, max(10.0, rep.remaining() - 5)), rep.out, rep.log)
    tests.start()
    return tests


if __name__ == "__main__":
    sys.exit(main())
