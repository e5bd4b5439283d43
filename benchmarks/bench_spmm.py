"""SpMM and GCN-layer speed of :mod:`gseq.ops` against ``torch.sparse.mm`` and PyG's ``GCNConv``.

For each seeded synthetic power-law graph (a few rows hold tens of thousands of entries) and feature
width ``F``, the script first checks every variant against ``torch.sparse.mm`` (outputs and the
gradient with respect to ``x``), then times them side by side in one process, interleaved round by
round (a busy machine slows them alike), with ``torch.utils.benchmark`` (synchronised on CUDA), and
prints the median time, the ratio to the baseline, the achieved bandwidth against a measured
device-to-device copy, and the peak memory of one call.

    python benchmarks/bench_spmm.py --device cpu                      # Cora-size and 169k/2.33M, 1 thread
    python benchmarks/bench_spmm.py --device cpu --sizes cora --features 16 128 --csv /tmp/spmm.csv
    python benchmarks/bench_spmm.py --device cuda                     # all sizes, F = 16 32 64 128

Variants (unweighted adjacency, ``A[i, j] = 1`` for an edge ``j -> i``):

- ``torch.sparse.mm``: ``torch.sparse.mm(A, x)`` on a ``torch.sparse_csr_tensor`` with int32 indices
  built once (cuSPARSE on CUDA, MKL on the CPU); its backward transposes ``A`` on the fly. The baseline
  of every ratio.
- ``gseq torch`` / ``gseq triton``: ``gseq.ops.spmm(csr, x, backend=...)``; backward through the
  transpose cached on the CSR. The Triton backend is timed on CUDA only (on the CPU it runs in
  Triton's interpreter, which is a correctness tool).
- ``torch_scatter``: gather + ``torch_scatter.segment_csr`` in chunks of rows (when installed); the chunk
  bounds are computed once, so the timed calls make no host synchronisation.
- GCN layer (``F`` in = out, at the ``--gcn-features`` widths): PyG ``GCNConv`` on ``edge_index`` and
  on a sparse ``adj_t``; ``gseq.layers.GCN`` (``cached=False`` and ``True``).

Bandwidth: one SpMM must read ``nnz`` gathered rows of ``x`` (no reuse) and 8 bytes per entry (index
and value, or one 64-bit index) and write the output: ``bytes = nnz*8 + nnz*F*s + M*F*s`` with ``s``
the element size;
``GB/s = bytes / time``; ``copy%`` compares it with ``dst.copy_(src)`` of a large buffer (2 bytes
moved per byte copied). Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the
growth of the process's resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``), an approximation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import torch
from torch.utils import benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gseq.ops as ops  # noqa: E402
from gseq.ops import CSR  # noqa: E402

#: name -> (nodes, edges)
#: widths used when --features / --gcn-features are not given (the issue's 2.45M graph uses F = 100)
SIZE_FEATURES = {"2.45m": [100]}
SIZES = {
    "cora": (2_708, 10_556),
    "arxiv": (169_343, 2_330_000),
    "1m": (1_000_000, 32_000_000),
    "2.45m": (2_450_000, 60_000_000),
}


def power_law_graph(n: int, e: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``edge_index`` [2, e] of distinct non-loop edges, sources and targets drawn with Zipf-like weights.

    Node ``k`` of a random order gets weight ``rank^-0.8`` (separately for sources and targets), so a
    few rows and columns hold tens of thousands of entries. Duplicates and self-loops are dropped
    (every variant then sees the same graph: GCNConv treats duplicate loops differently from a
    coalesced sparse ``adj_t``) and pairs are redrawn until there are ``e``.

    Built on ``device`` with a generator of that device, in vectorised chunks of up to 2^24 draws (the
    60M-edge graph takes seconds on a GPU instead of minutes on the CPU). The same seed gives the same
    graph on the same kind of device; the CPU and CUDA generators draw different graphs.
    """
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    weights = torch.arange(1, n + 1, dtype=torch.float64, device=device) ** -0.8
    src_w = weights[torch.randperm(n, generator=g, device=device)]
    dst_w = weights[torch.randperm(n, generator=g, device=device)]
    keys = torch.zeros(0, dtype=torch.long, device=device)
    while keys.numel() < e:
        k = min(1 << 24, int((e - keys.numel()) * 1.25) + 1000)
        src = torch.multinomial(src_w, k, True, generator=g)
        dst = torch.multinomial(dst_w, k, True, generator=g)
        keep = src != dst
        keys = torch.unique(torch.cat([keys, dst[keep] * n + src[keep]]))
    keys = keys[torch.randperm(keys.numel(), generator=g, device=device)[:e]]
    return torch.stack([keys % n, keys // n])


def torch_csr(csr: CSR, dtype: torch.dtype, index_dtype: torch.dtype = torch.int32) -> torch.Tensor:
    """The baseline's ``torch.sparse_csr_tensor`` of ``csr`` (all-ones values), with int32 indices when
    they fit: cuSPARSE's fast path, so the baseline is not slowed by 64-bit indices."""
    if csr.nnz >= 2**31 or max(csr.shape) >= 2**31:
        index_dtype = torch.int64
    return torch.sparse_csr_tensor(csr.indptr.to(index_dtype), csr.indices.to(index_dtype),
                                   torch.ones(csr.nnz, device=csr.device, dtype=dtype), csr.shape)


def spmm_bytes(nnz: int, rows: int, f: int, element_size: int) -> int:
    """Bytes one SpMM must move at least: 8 per entry (an index and a value, or one 64-bit index), the
    ``nnz`` gathered rows of ``x`` (no reuse assumed) and the output: ``nnz*8 + nnz*F*s + M*F*s``."""
    return nnz * 8 + nnz * f * element_size + rows * f * element_size


def copy_bandwidth(device: torch.device, threads: int) -> float:
    """GB/s of a device-to-device copy (bytes read + written)."""
    numel = (256 << 20) // 4 if device.type == "cpu" else (1 << 30) // 4
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    t = benchmark.Timer("dst.copy_(src)", globals={"dst": dst, "src": src}, num_threads=threads)
    return 2 * numel * 4 / t.blocked_autorange(min_run_time=0.5).median / 1e9


def peak_mb(fn, device: torch.device) -> float | None:
    """Peak extra memory of one call of ``fn`` in MiB (see the module docstring), or None."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        base = _status_kb("VmRSS")
        fn()
        return (_status_kb("VmHWM") - base) / 1024
    except OSError:
        return None


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(key)


def time_interleaved(fns: dict, rounds: int, number: int | None, threads: int,
                     target_s: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each fn: ``rounds`` rounds, each timing every fn ``number`` times.

    ``number=None`` picks, per fn, enough calls to last about ``target_s`` (small graphs need many).
    """
    timers = {k: benchmark.Timer("fn()", globals={"fn": f}, num_threads=threads) for k, f in fns.items()}
    numbers = {}
    for k, f in fns.items():  # warm-up (Triton compilation, caches) and calibration
        f()
        numbers[k] = number or max(1, min(1000, int(target_s / max(timers[k].timeit(1).median, 1e-7))))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, t in timers.items():
            samples[k].append(t.timeit(numbers[k]).median)
    return {k: statistics.median(v) for k, v in samples.items()}


def spmm_variants(csr: CSR, a_torch: torch.Tensor, x: torch.Tensor, device: torch.device,
                  triton: bool | None = None):
    """name -> (forward fn, forward+backward fn, output fn for the check, backward-only fn).

    ``triton``: include the Triton backend (default: on CUDA only; on the CPU it runs in Triton's
    interpreter, a correctness tool)."""
    g = torch.randn(csr.num_rows, x.size(1), device=device, dtype=x.dtype)
    xg = x.detach().requires_grad_()

    def pair(f):
        held = {}

        def backward_only():  # the backward of a forward run once (graph retained)
            if "out" not in held:
                held["out"] = f(xg)
            return torch.autograd.grad(held["out"], xg, g, retain_graph=True)
        return (lambda: f(x), lambda: torch.autograd.grad(f(xg), xg, g),
                lambda: (f(x), torch.autograd.grad(f(xg), xg, g)[0]), backward_only)

    out = {"torch.sparse.mm": pair(lambda z: torch.sparse.mm(a_torch, z)),
           "gseq torch": pair(lambda z: ops.spmm(csr, z, backend="torch"))}
    if (device.type == "cuda" if triton is None else triton) and ops.TRITON_AVAILABLE:
        out["gseq triton"] = pair(lambda z: ops.spmm(csr, z, backend="triton"))
    try:
        import torch_scatter
    except ImportError:
        return out, g
    col = csr.indices
    # chunks of rows holding about 2^22 / F entries each: never an [nnz, F] tensor for the whole graph.
    # The bounds are read to the host once here, so the timed function makes no host synchronisation.
    step = max(1, (1 << 22) // max(x.size(1), 1))
    cuts = torch.searchsorted(csr.indptr, torch.arange(0, csr.nnz + step, step, device=device)).tolist()
    indptr = csr.indptr.tolist()
    chunks, r0 = [], 0
    for r1 in cuts[1:] + [csr.num_rows]:
        r1 = min(max(r1, r0), csr.num_rows)
        if r1 > r0:
            s, e = indptr[r0], indptr[r1]
            chunks.append((col[s:e], csr.indptr[r0:r1 + 1] - s))
            r0 = r1

    def scatter_spmm(z):
        parts = [torch_scatter.segment_csr(z[c], ptr, reduce="sum") for c, ptr in chunks]
        return torch.cat(parts) if parts else z.new_zeros(csr.num_rows, z.size(1))
    out["torch_scatter segment_csr"] = pair(scatter_spmm)
    return out, g


def gcn_variants(edge_index: torch.Tensor, n: int, f: int, device: torch.device):
    """name -> (model, graph argument) for the GCN-layer rows (same weights everywhere)."""
    from torch_geometric.nn import GCNConv

    torch.manual_seed(0)
    pyg = GCNConv(f, f).to(device)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.size(1), device=device),
                                    (n, n)).coalesce().to_sparse_csr()
    variants = {"PyG GCNConv edge_index": (pyg, edge_index), "PyG GCNConv sparse adj_t": (pyg, adj_t)}
    try:
        from gseq.layers import GCN
    except ImportError as exc:
        print(f"  note: gseq.layers.GCN not importable ({exc}); its rows are skipped")
        return variants
    for cached in (False, True):
        ours = GCN(f, f, cached=cached).to(device)
        ours.load_state_dict(pyg.state_dict())
        variants[f"gseq GCN cached={cached}"] = (ours, edge_index)
    return variants


def gcn_steps(edge_index: torch.Tensor, n: int, x: torch.Tensor, grad: torch.Tensor, skip=()) -> dict:
    """name -> a forward + backward of that GCN-layer variant on ``x`` (``skip`` leaves variants out);
    each step returns the detached output, for checking the variants against each other."""
    fns = {}
    for k, (model, graph) in gcn_variants(edge_index, n, x.size(1), x.device).items():
        if k in skip:
            continue
        model = model.to(x.dtype)

        def step(model=model, graph=graph):
            model.zero_grad(set_to_none=True)
            out = model(x, graph)
            out.backward(grad)
            return out.detach()
        fns[k] = step
    return fns


def parse_quick(p: argparse.ArgumentParser, argv, what: str, **quick) -> argparse.Namespace:
    """``p``'s arguments with ``--quick``: ``quick`` as the defaults, a run of seconds (``gpu_check.py
    --dry-run`` runs every script so); flags given explicitly still win."""
    p.add_argument("--quick", action="store_true", help=f"seconds: {what} (gpu_check --dry-run)")
    args = p.parse_args(argv)
    if args.quick:
        p.set_defaults(**quick)
        args = p.parse_args(argv)
    return args


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=None,
                   help="graphs (default: cora arxiv on cpu, all on cuda)")
    p.add_argument("--features", nargs="+", type=int, default=None,
                   help="SpMM widths (default: 16 32 64 128; 100 on the 2.45m graph)")
    p.add_argument("--gcn-features", nargs="+", type=int, default=None,
                   help="widths of the GCN-layer rows (default: 128; 100 on 2.45m; 0: skip them)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--number", type=int, default=None, help="calls per timing (default: about 50 ms worth)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=None, help="also write the table here")
    args = parse_quick(p, argv, "the cora graph, F = 16, one round", sizes=["cora"], features=[16],
                       gcn_features=[16], rounds=1, number=1)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    sizes = args.sizes or (["cora", "arxiv"] if device.type == "cpu" else list(SIZES))
    number = args.number
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    copy_gbs = copy_bandwidth(device, args.threads)
    print(f"device: {name}; torch {torch.__version__}; dtype {args.dtype}; copy bandwidth {copy_gbs:.1f} GB/s")
    if device.type != "cuda":
        print("note: the Triton backend is not timed on the CPU (it runs only in Triton's interpreter there)")
    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        print("note: torch_scatter is not installed; its rows are skipped")
    rows = []
    header = f"{'graph':>7} {'F':>4} {'variant':<34} {'fwd ms':>9} {'x':>6} {'fwd+bwd ms':>11} {'x':>6} " \
             f"{'bwd ms':>9} {'bwd/fwd':>7} {'GB/s':>7} {'copy%':>6} {'peak MiB':>9}"
    for size in sizes:
        n, e = SIZES[size]
        edge_index = power_law_graph(n, e, args.seed, device)
        csr = CSR.from_edge_index(edge_index, num_nodes=n)
        counts = csr.row_counts()
        a_torch = torch_csr(csr, dtype)
        print(f"\ngraph {size}: {n:,} nodes, {csr.nnz:,} edges, largest row {int(counts.max()):,} entries, "
              f"largest column {int(torch.bincount(csr.indices, minlength=n).max()):,}")
        print(header)
        for f in args.features or SIZE_FEATURES.get(size, [16, 32, 64, 128]):
            x = torch.randn(n, f, device=device, dtype=dtype)
            variants = _checked(spmm_variants(csr, a_torch, x, device)[0], lambda v: v[2](), dtype)
            fwd = time_interleaved({k: v[0] for k, v in variants.items()}, args.rounds, number, args.threads)
            fb = time_interleaved({k: v[1] for k, v in variants.items()}, args.rounds, number, args.threads)
            bwd = time_interleaved({k: v[3] for k, v in variants.items()}, args.rounds, number, args.threads)
            moved = spmm_bytes(csr.nnz, n, f, x.element_size())
            nan = float("nan")
            for k in variants:
                gbs = moved / fwd[k] / 1e9
                row = dict(graph=size, F=f, variant=k, fwd_ms=fwd[k] * 1e3,
                           fwd_ratio=fwd.get("torch.sparse.mm", nan) / fwd[k],
                           fwdbwd_ms=fb[k] * 1e3, fwdbwd_ratio=fb.get("torch.sparse.mm", nan) / fb[k],
                           bwd_ms=bwd[k] * 1e3, bwd_over_fwd=bwd[k] / fwd[k], gbs=gbs, copy_pct=100 * gbs / copy_gbs,
                           peak_mib=peak_mb(variants[k][1], device))
                rows.append(row)
                _print_row(row)
            del variants, x
        for f in [w for w in (args.gcn_features or SIZE_FEATURES.get(size, [128])[-1:]) if w > 0]:
            x = torch.randn(n, f, device=device, dtype=dtype)
            grad = torch.randn(n, f, device=device, dtype=dtype)
            fns = _checked(gcn_steps(edge_index, n, x, grad), lambda fn: fn(), dtype, grads=False)
            fb = time_interleaved(fns, args.rounds, number, args.threads)
            base = fb.get("PyG GCNConv edge_index", float("nan"))
            for k in fns:
                row = dict(graph=size, F=f, variant=k + " (layer)", fwd_ms=float("nan"), fwd_ratio=float("nan"),
                           fwdbwd_ms=fb[k] * 1e3, fwdbwd_ratio=base / fb[k], bwd_ms=float("nan"),
                           bwd_over_fwd=float("nan"),
                           gbs=float("nan"), copy_pct=float("nan"), peak_mib=peak_mb(fns[k], device))
                rows.append(row)
                _print_row(row)
            del fns, x, grad
    print("\nx: speed-up over the baseline (torch.sparse.mm for SpMM rows, PyG GCNConv edge_index for layer rows); "
          "bwd: the backward alone (w.r.t. x) of a retained forward; bwd/fwd its ratio to the forward")
    if args.csv:
        from gseq.train import write_csv

        write_csv(args.csv, rows)
        print(f"wrote {args.csv}")


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate" in str(exc)))


def _checked(variants: dict, run, dtype, grads: bool = True) -> dict:
    """Correctness first: every variant against the first one that runs; variants out of memory are dropped."""
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else {}
    kept, ref = {}, None
    for k, v in variants.items():
        try:
            got = run(v)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is expected; anything else re-raised
            if not _is_oom(exc):
                raise
            print(f"  {k}: out of memory ({type(exc).__name__}); not timed")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        got = got if grads else (got, None)
        if ref is None:
            ref = got
        else:
            torch.testing.assert_close(got[0], ref[0], **tol, msg=lambda m: f"{k} output: {m}")
            if grads:
                torch.testing.assert_close(got[1], ref[1], **tol, msg=lambda m: f"{k} gradient: {m}")
        kept[k] = v
    return kept


def _print_row(r: dict) -> None:
    def num(v, fmt):
        return format(v, fmt) if v is not None and v == v else "-".rjust(int(fmt.split(".")[0]))
    print(f"{r['graph']:>7} {r['F']:>4} {r['variant']:<34} {num(r['fwd_ms'], '9.3f')} {num(r['fwd_ratio'], '6.2f')} "
          f"{num(r['fwdbwd_ms'], '11.3f')} {num(r['fwdbwd_ratio'], '6.2f')} {num(r['bwd_ms'], '9.3f')} "
          f"{num(r['bwd_over_fwd'], '7.2f')} "
          f"{num(r['gbs'], '7.1f')} {num(r['copy_pct'], '6.1f')} {num(r['peak_mib'], '9.1f')}", flush=True)


if __name__ == "__main__":
    main()
