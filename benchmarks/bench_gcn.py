"""One GCN layer, forward + backward: ``gseq.layers.GCN`` against PyG's ``GCNConv`` on both of its paths.

    python benchmarks/bench_gcn.py                       # CPU: Cora and a 169,343-node / 2.33M-edge graph
    python benchmarks/bench_gcn.py --graphs cora --features 16 128 --threads 2
    python benchmarks/bench_gcn.py --device cuda --graphs arxiv 1m

For each graph the script checks that every variant gives the same output (same weights), then times
``model.zero_grad(); model(x, graph).backward(g)`` for all variants side by side, interleaved round by
round in one process (``torch.utils.benchmark``), and prints the median, the speed-up over PyG's default
``edge_index`` path and over its sparse-adjacency path, and the peak extra memory of one call (on the CPU,
the growth of the process's resident-set high-water mark; on CUDA ``max_memory_allocated``). The last
column, ``E*F*4`` MiB, is the size of one edges x features float32 tensor: PyG's ``edge_index`` path
builds such message tensors, gseq never does.

Graphs: ``cora`` is the real Cora graph when ``$GSEQ_DATA`` holds it (else a synthetic graph of its
size); ``arxiv``, ``1m``, ``2.45m`` are the seeded power-law graphs of ``bench_spmm.py``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_spmm import SIZES, _status_kb, gcn_variants, peak_mb, power_law_graph, time_interleaved  # noqa: E402
from bench_spmm import parse_quick  # noqa: E402


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


def make_step(model, graph, x, grad):
    def step():
        model.zero_grad(set_to_none=True)
        model(x, graph).backward(grad)
    return step


def child_peak_mib(graph_name: str, f: int, variant: str, seed: int) -> float:
    """Run in a fresh process: peak extra resident memory (MiB) of one forward+backward of ``variant``."""
    import subprocess

    code = (f"import sys; sys.argv=['bench_gcn']; sys.path.insert(0, {str(HERE)!r}); import bench_gcn; "
            f"print(bench_gcn._peak_here({graph_name!r}, {f}, {variant!r}, {seed}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _peak_here(graph_name: str, f: int, variant: str, seed: int) -> float:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    device = torch.device("cpu")
    edge_index, n, _ = load_graph(graph_name, seed, device)
    x, grad = torch.randn(n, f), torch.randn(n, f)
    model, graph = gcn_variants(edge_index, n, f, device)[variant]
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
    args = parse_quick(p, argv, "the cora graph, F = 16, one round, no CPU peak memory", graphs=["cora"],
                       features=[16], rounds=1, number=1)
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
        print(f"{'F':>4} {'variant':<26} {'ms':>9} {'vs edge_index':>13} {'vs sparse':>9} {'peak MiB':>9} {'E*F*4 MiB':>10}")
        for f in args.features:
            x = torch.randn(n, f, device=device)
            grad = torch.randn(n, f, device=device)
            fns, ref = {}, None
            for k, (model, graph) in gcn_variants(edge_index, n, f, device).items():
                out = model(x, graph)
                ref = out if ref is None else ref
                torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4, msg=lambda m: f"{k}: {m}")
                fns[k] = make_step(model, graph, x, grad)
            med = time_interleaved(fns, args.rounds, number, args.threads)
            base, sparse = med["PyG GCNConv edge_index"], med["PyG GCNConv sparse adj_t"]
            ef = edge_index.size(1) * f * 4 / 2**20
            for k, fn in fns.items():
                peak = peak_mb(fn, device) if device.type == "cuda" else None if args.quick else \
                    child_peak_mib(name, f, k, args.seed)
                row = dict(graph=name, F=f, variant=k, ms=med[k] * 1e3, vs_edge_index=base / med[k],
                           vs_sparse=sparse / med[k], peak_mib=peak, ef_mib=ef)
                rows.append(row)
                peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:9.1f}"
                print(f"{f:>4} {k:<26} {row['ms']:9.2f} {row['vs_edge_index']:12.2f}x {row['vs_sparse']:8.2f}x "
                      f"{peak:>9} {ef:10.1f}", flush=True)
    print("\nms: median of forward+backward; 'vs': speed-up of the row over PyG GCNConv on that path")
    if args.csv:
        from gseq.train import write_csv

        write_csv(args.csv, rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
