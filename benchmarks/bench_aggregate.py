"""A GCN aggregation with its normalisation kept in the CSR values against the same sum scaled around the product.

    python benchmarks/bench_aggregate.py                        # Cora and a 200,000-node synthetic graph
    python benchmarks/bench_aggregate.py --nodes 1000000 --features 32

``gseq.layers.gcn_structure.aggregate(graph, h, w)`` computes
:math:`\\hat D^{-1/2} (A + wI) \\hat D^{-1/2} h`. For a float ``w`` (fixed) the graph keeps the normalised
values :math:`s_j a_{ij} s_i` on its CSR pattern, and the sum is one sparse product plus the loops'
diagonal (``folded``). A 0-d tensor ``w`` takes the path a learned weight takes, ``s * (A (s * h)) +
l s^2 h`` (``scaled``): the same function, one call, two paths, in one process. Timed: the forward
under ``no_grad`` (an evaluation) and forward + backward with respect to ``h`` (a training step),
interleaved round by round on one thread by default; printed: medians and the speed-up of ``folded``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_spmm import time_interleaved  # noqa: E402

from gseq.layers.gcn_structure import aggregate, gcn_graph  # noqa: E402


def graphs(nodes: int):
    from gseq.data import planetoid, synthetic_graph

    yield "Cora", planetoid("Cora")
    yield f"synthetic {nodes:,}", synthetic_graph(nodes, seed=0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=200_000, help="nodes of the synthetic graph")
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"aggregate(graph, h, w = 1), F = {args.features}, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'graph':>20s} {'edges':>10s} {'pass':>17s} {'scaled ms':>10s} {'folded ms':>10s} {'speed-up':>9s}")
    for name, data in graphs(args.nodes):
        graph = gcn_graph(data.edge_index, None, data.num_nodes)
        h = torch.randn(data.num_nodes, args.features, generator=torch.Generator().manual_seed(0))
        hg = h.clone().requires_grad_()
        grad = torch.randn_like(h)
        ws = {"scaled": torch.tensor(1.0), "folded": 1.0}
        with torch.no_grad():
            diff = (aggregate(graph, h, ws["scaled"]) - aggregate(graph, h, ws["folded"])).abs().max().item()

        def forward(w):
            def fn():
                with torch.no_grad():
                    aggregate(graph, h, w)
            return fn

        def step(w):
            def fn():
                hg.grad = None
                aggregate(graph, hg, w).backward(grad)
            return fn

        for label, make in (("forward, no_grad", forward), ("forward+backward", step)):
            t = time_interleaved({k: make(w) for k, w in ws.items()}, args.rounds, None, args.threads)
            print(f"{name:>20s} {graph.csr.nnz:>10,d} {label:>17s} {1e3 * t['scaled']:10.3f} "
                  f"{1e3 * t['folded']:10.3f} {t['scaled'] / t['folded']:8.2f}x")
        print(f"{'':>20s} max |scaled - folded| = {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
