"""One GCN layer, forward + backward: ``gseq.layers.GCN`` against PyG's ``GCNConv`` on both of its paths.

    python benchmarks/bench_gcn.py                       # CPU: Cora and a 169,343-node / 2.33M-edge graph
    python benchmarks/bench_gcn.py --graphs cora --features 16 128 --threads 2
    python benchmarks/bench_gcn.py --device cuda --graphs arxiv 1m
    python benchmarks/bench_gcn.py --graphs arxiv --baseline /path/to/other/checkout  # before/after rows

For each graph the script checks that every variant gives the same output (same weights), then times
``model.zero_grad(); model(x, graph).backward(g)`` for all variants side by side, interleaved round by
round in one process (``torch.utils.benchmark``), and prints the median, the speed-up over PyG's default
``edge_index`` path and over its sparse-adjacency path, and the peak extra memory of one call (on the CPU,
the growth of the process's resident-set high-water mark; on CUDA ``max_memory_allocated``). The last
column, ``E*F*4`` MiB, is the size of one edges x features float32 tensor: PyG's ``edge_index`` path
builds such message tensors, gseq never does.

Rows: PyG's two paths; ``gseq GCN cached=True`` (the graph built once); ``cached=False`` (the same
``edge_index`` tensor every call, as a training loop on one graph passes it); ``cached=False, new
edge_index`` (a new tensor object with the same edges every call, as a loader yields: the graph is built
every call). ``--baseline DIR`` imports the ``gseq`` package of another checkout (``DIR/gseq``, e.g. a
``git worktree`` of main) under another name and adds its GCN rows, timed in the same rounds.

Graphs: ``cora`` is the real Cora graph when ``$GSEQ_DATA`` holds it (else a synthetic graph of its
size); ``arxiv``, ``1m``, ``2.45m`` are the seeded power-law graphs of ``bench_spmm.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_spmm import SIZES, _status_kb, gcn_variants, peak_mb, power_law_graph, time_interleaved  # noqa: E402


def load_graph(name: str, seed: int, device: torch.device) -> tuple[torch.Tensor, int, str]:
    if name == "cora":
        try:
            from gseq.data import planetoid

            data = planetoid("Cora", download=False)
            return data.edge_index.to(device), data.num_nodes, "Cora (real)"
        except (FileNotFoundError, ValueError) as err:
            print(f"note: real Cora not available ({str(err).splitlines()[0][:80]}...); using a synthetic graph")
    from torch_geometric.utils import coalesce, remove_self_loops

    n, e = SIZES[name]
    # a simple graph: PyG's two paths treat existing self-loops and duplicates differently (a sparse adj_t
    # sums duplicates, and keeps a loop's summed weight), so they only agree on graphs without them
    edge_index = coalesce(remove_self_loops(power_law_graph(n, e, seed, device))[0], num_nodes=n)
    return edge_index, n, f"power-law {n:,} nodes, self-loops and duplicates removed"


class NewEdgeIndex(torch.nn.Module):
    """``model`` given a new tensor object with the same edges (a view) on every call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, edge_index):
        return self.model(x, edge_index.view_as(edge_index))


def import_baseline(path: str):
    """The ``gseq`` package of the checkout at ``path``, imported as ``gseq_baseline``."""
    root = Path(path).resolve() / "gseq"
    spec = importlib.util.spec_from_file_location("gseq_baseline", root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gseq_baseline"] = module
    spec.loader.exec_module(module)
    return module


def variants(edge_index, n, f, device, baseline=None, skip=()) -> dict:
    """bench_spmm's GCN rows, the new-edge_index row, and the baseline checkout's GCN rows."""
    out = gcn_variants(edge_index, n, f, device)
    pyg = out["PyG GCNConv edge_index"][0]
    models = {"gseq GCN cached=False, new edge_index": type(out["gseq GCN cached=False"][0])}
    if baseline is not None:
        for cached in (True, False):
            models[f"baseline GCN cached={cached}"] = baseline.layers.GCN
        models["baseline GCN cached=False, new edge_index"] = baseline.layers.GCN
    for name, cls in models.items():
        model = cls(f, f, cached="cached=True" in name).to(device)
        model.load_state_dict(pyg.state_dict())
        out[name] = (NewEdgeIndex(model) if "new edge_index" in name else model, edge_index)
    return {k: v for k, v in out.items() if k not in skip}


def make_step(model, graph, x, grad):
    def step():
        model.zero_grad(set_to_none=True)
        model(x, graph).backward(grad)
    return step


def child_peak_mib(graph_name: str, f: int, variant: str, seed: int, baseline: str | None) -> float:
    """Run in a fresh process: peak extra resident memory (MiB) of one forward+backward of ``variant``."""
    import subprocess

    code = (f"import sys; sys.argv=['bench_gcn']; sys.path.insert(0, {str(HERE)!r}); import bench_gcn; "
            f"print(bench_gcn._peak_here({graph_name!r}, {f}, {variant!r}, {seed}, {baseline!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _peak_here(graph_name: str, f: int, variant: str, seed: int, baseline: str | None) -> float:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    device = torch.device("cpu")
    edge_index, n, _ = load_graph(graph_name, seed, device)
    x, grad = torch.randn(n, f), torch.randn(n, f)
    baseline = import_baseline(baseline) if baseline else None
    model, graph = variants(edge_index, n, f, device, baseline)[variant]
    step = make_step(model, graph, x, grad)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _status_kb("VmRSS")
    step()
    return (_status_kb("VmHWM") - base) / 1024


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--graphs", nargs="+", choices=list(SIZES), default=["cora", "arxiv"])
    p.add_argument("--features", nargs="+", type=int, default=[128], help="in = out channels (default: 128)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default: 5)")
    p.add_argument("--number", type=int, default=None, help="calls per timing (default: 10 cuda, 1 cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=None, help="also write the table here")
    p.add_argument("--baseline", default=None, help="a checkout whose gseq GCN rows to add (default: none)")
    p.add_argument("--skip", nargs="*", default=[], help="variants to leave out, by their full name (PyG's "
                   "sparse path always runs: it is the last ratio column)")
    p.add_argument("--no-peak", action="store_true", help="skip the per-variant peak memory (one process each)")
    args = p.parse_args(argv)
    baseline = import_baseline(args.baseline) if args.baseline else None
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    number = args.number or (10 if device.type == "cuda" else 1)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"device: {where}; torch {torch.__version__}; one GCN layer, forward + backward, float32")
    rows = []
    for name in args.graphs:
        edge_index, n, label = load_graph(name, args.seed, device)
        print(f"\n{name}: {label}, {edge_index.size(1):,} edges")
        print(f"{'F':>4} {'variant':<42} {'ms':>9} {'vs edge_index':>13} {'vs sparse':>9} {'peak MiB':>9} {'E*F*4 MiB':>10}")
        for f in args.features:
            x = torch.randn(n, f, device=device)
            grad = torch.randn(n, f, device=device)
            fns, ref = {}, None
            skip = [s for s in args.skip if s != "PyG GCNConv sparse adj_t"]
            for k, (model, graph) in variants(edge_index, n, f, device, baseline, skip).items():
                out = model(x, graph)
                ref = out if ref is None else ref
                torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4, msg=lambda m: f"{k}: {m}")
                fns[k] = make_step(model, graph, x, grad)
            med = time_interleaved(fns, args.rounds, number, args.threads)
            base, sparse = med.get("PyG GCNConv edge_index", float("nan")), med["PyG GCNConv sparse adj_t"]
            ef = edge_index.size(1) * f * 4 / 2**20
            for k, fn in fns.items():
                if args.no_peak:
                    peak = None
                elif device.type == "cuda":
                    peak = peak_mb(fn, device)
                else:
                    peak = child_peak_mib(name, f, k, args.seed, args.baseline)
                row = dict(graph=name, F=f, variant=k, ms=med[k] * 1e3, vs_edge_index=base / med[k],
                           vs_sparse=sparse / med[k], peak_mib=peak, ef_mib=ef)
                rows.append(row)
                peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:9.1f}"
                vs_ei = "-" if base != base else f"{row['vs_edge_index']:.2f}x"  # NaN: edge_index path skipped
                print(f"{f:>4} {k:<42} {row['ms']:9.2f} {vs_ei:>13} {row['vs_sparse']:8.2f}x {peak:>9} {ef:10.1f}",
                      flush=True)
    print("\nms: median of forward+backward; 'vs': speed-up of the row over PyG GCNConv on that path")
    if args.csv:
        from gseq.train import write_csv

        write_csv(args.csv, rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
