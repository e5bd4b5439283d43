"""Neighbour sampling against the training step it feeds: is sampling cheaper than the model?

    python benchmarks/bench_sampling.py                     # CPU, 1 thread: bench_gcn's 169,343-node graph
    python benchmarks/bench_sampling.py --device cuda       # the same on a GPU
    python benchmarks/bench_sampling.py --num-neighbors 25 10 --batch-size 512 --csv /tmp/sampling.csv

On bench_gcn's seeded power-law graph (``arxiv``: 169,343 nodes, 2.33M directed edges, in-degrees up to
about 26,000; ``load_graph`` is imported from ``bench_gcn.py``), with 128 random features per node and 40
classes, the script times, side by side and interleaved round by round in one process
(``torch.utils.benchmark``, synchronised on CUDA):

- ``sample``: :class:`gseq.loader.NeighborSampler` for one batch of seeds (a new random batch each call);
- ``loader batch``: ``NeighborLoader(index)``: sampling plus slicing ``x``, ``y`` and the masks into a
  ``Data``, what one training step waits for;
- ``sample, all-slot keys``: the textbook alternative for sampling without replacement, kept here as a
  baseline: a random key for *every* in-edge of a frontier node, a sort by (node, key), the first ``k``
  per node. Its work grows with the sum of the frontier's degrees (hubs included) where gseq's Floyd
  sampling does ``O(k^2)`` per node;
- ``GCN fwd+bwd``: ``GCNNet`` (2 layers, hidden 128, dropout 0.5) forward on one sampled batch, the
  cross-entropy of the seeds, backward: the step the batch feeds.

It prints the median of each, the ratio to ``GCN fwd+bwd``, the sampled subgraph's size, and PyG's
``NeighborLoader`` beside them when pyg-lib or torch-sparse is installed (else a note).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_gcn import load_graph  # noqa: E402
from bench_spmm import parse_quick, time_interleaved  # noqa: E402
from torch_geometric.data import Data  # noqa: E402

from gseq.loader import NeighborLoader, NeighborSampler  # noqa: E402
from gseq.models import GCNNet  # noqa: E402


class AllSlotKeysSampler(NeighborSampler):
    """Baseline: without replacement by sorting a random key per in-edge of every frontier node."""

    def _sample_slots(self, frontier, k, generator):
        if k < 0 or self.replace:
            return super()._sample_slots(frontier, k, generator)
        indptr = self.csr.indptr
        start = indptr[frontier]
        deg = indptr[frontier + 1] - start
        total = int(deg.sum())
        seg = torch.repeat_interleave(torch.arange(frontier.numel(), device=self.device), deg, output_size=total)
        slot = torch.arange(total, device=self.device) - (torch.cumsum(deg, 0) - deg)[seg] + start[seg]
        key = torch.rand(total, generator=generator, device=self.device) + seg.to(torch.float64) * 2  # segment-major
        order = torch.argsort(key)
        rank = torch.arange(total, device=self.device) - (torch.cumsum(deg, 0) - deg)[seg]
        keep = rank < k  # ranks of the sorted order: the first k of every segment
        return slot[order][keep], seg[keep]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--graph", default="arxiv", choices=["cora", "arxiv", "1m", "2.45m"],
                   help="a graph of bench_gcn.py (default: arxiv, 169,343 nodes)")
    p.add_argument("--num-neighbors", type=int, nargs="+", default=[15, 10], help="fan-out per hop (default: 15 10)")
    p.add_argument("--batch-size", type=int, default=1024, help="seeds per batch (default: 1024)")
    p.add_argument("--features", type=int, default=128, help="input features per node (default: 128)")
    p.add_argument("--hidden", type=int, default=128, help="GCN hidden channels (default: 128)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default: 7)")
    p.add_argument("--seed", type=int, default=0, help="graph and sampling seed (default: 0)")
    p.add_argument("--csv", default=None, help="also write the table here (default: none)")
    args = parse_quick(p, argv, "the cora graph, 64 seeds, one round", graph="cora", batch_size=64, rounds=1)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"device: {where}; torch {torch.__version__}")

    edge_index, n, label = load_graph(args.graph, args.seed, device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    data = Data(x=torch.randn(n, args.features, generator=g, device=device), edge_index=edge_index,
                y=torch.randint(40, (n,), generator=g, device=device))
    in_deg = torch.bincount(edge_index[1], minlength=n)
    print(f"graph {args.graph}: {label}; {edge_index.size(1):,} edges, largest in-degree {int(in_deg.max()):,}")
    loader = NeighborLoader(data, args.num_neighbors, batch_size=args.batch_size, shuffle=True, generator=g)
    keys = AllSlotKeysSampler(edge_index, n, args.num_neighbors)
    # a new random batch of seeds for every call (a pool of 64, cycled); input_nodes is all nodes, so an
    # index into it is a node id
    pool = [torch.randperm(n, generator=g, device=device)[:args.batch_size] for _ in range(64)]
    counter = {"i": 0}

    def next_seeds():
        counter["i"] += 1
        return pool[counter["i"] % len(pool)]

    batch = loader(pool[0])
    sizes = [loader(i) for i in pool[:16]]
    frontier_deg = []
    for s in pool[:16]:  # the sum of in-degrees the all-slot-keys baseline touches per batch
        out = loader.sampler.sample(s, g)
        lo, total = 0, 0
        for count in out.num_sampled_nodes[:-1]:
            total += int(in_deg[out.node[lo:lo + count]].sum())
            lo += count
        frontier_deg.append(total)
    print(f"batch: {args.batch_size} seeds, fan-out {args.num_neighbors}: "
          f"{statistics.median(b.num_nodes for b in sizes):,.0f} nodes, "
          f"{statistics.median(b.edge_index.size(1) for b in sizes):,.0f} sampled edges (medians of 16 batches); "
          f"in-degree sum of the frontiers {statistics.median(frontier_deg):,.0f}")

    model = GCNNet(args.features, 40, hidden_channels=args.hidden, num_layers=2, dropout=0.5).to(device)

    def step():
        model.zero_grad(set_to_none=True)
        out = model(batch.x, batch.edge_index)[:batch.batch_size]
        F.cross_entropy(out, batch.y[:batch.batch_size]).backward()

    fns = {
        "sample": lambda: loader.sampler.sample(next_seeds(), g, check=False),
        "loader batch": lambda: loader(next_seeds()),
        "sample, all-slot keys": lambda: keys.sample(next_seeds(), g, check=False),
        "GCN fwd+bwd": step,
    }
    pyg = _pyg_loader(data, args)
    if pyg is not None:
        fns["PyG NeighborLoader batch"] = pyg
    med = time_interleaved(fns, args.rounds, None, args.threads)
    base = med["GCN fwd+bwd"]
    print(f"\n{'variant':<26} {'ms':>9} {'vs GCN fwd+bwd':>15}")
    rows = []
    for k, v in med.items():
        rows.append({"graph": args.graph, "device": str(device), "variant": k, "ms": v * 1e3, "ratio": v / base})
        print(f"{k:<26} {v * 1e3:9.2f} {v / base:14.3f}x")
    print(f"\nsampling / (forward + backward) = {med['sample'] / base:.3f}; "
          f"a whole loader batch / (forward + backward) = {med['loader batch'] / base:.3f}; "
          f"all-slot keys / gseq sampling = {med['sample, all-slot keys'] / med['sample']:.2f}")
    if args.csv:
        from gseq.train import write_csv

        write_csv(args.csv, rows)
        print(f"wrote {args.csv}")


def _pyg_loader(data, args):
    """One PyG NeighborLoader batch per call, when pyg-lib or torch-sparse can sample; else None."""
    import torch_geometric.typing as pyg_typing

    if not (pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE):
        print("note: neither pyg-lib nor torch-sparse is installed, so PyG's NeighborLoader cannot sample here; "
              "its row is skipped")
        return None
    from torch_geometric.loader import NeighborLoader as PyGLoader

    it = {"it": None}
    loader = PyGLoader(data, num_neighbors=args.num_neighbors, batch_size=args.batch_size, shuffle=True)

    def one():
        try:
            return next(it["it"])
        except (StopIteration, TypeError):
            it["it"] = iter(loader)
            return next(it["it"])
    return one


if __name__ == "__main__":
    main()
