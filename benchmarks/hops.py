"""Receptive-field hops: what each extra GCN layer buys.

    python benchmarks/hops.py                          # example-graph table + the full Cora depth study
    python benchmarks/hops.py --seeds 3 --depths 1 2 4 8 --out runs/hops-quick

Part 1 (seconds): on the 6-node example graph, for every ordered pair of nodes, the shortest-path length
against the smallest depth k at which a k-layer GCN's output at the target depends on the source,
measured through the Jacobian influence; it prints the table and draws the graph coloured by hops.

Part 2 (795 s of training, 22 minutes of wall time, on this 2-core machine while it was shared): on Cora, GCNs of depth 1, 2, 3, 4, 6, 8, 16
with self-loop weight 1, 2 and learned, 10 seeds each (Kipf & Welling's training otherwise): test
accuracy (mean, std), receptive-field size as a fraction of the graph, and the influence a node keeps on
itself vs. the mass on its k-hop ring. Writes depth.csv (resumable: rerun to continue), summary.csv,
findings.json and depth.png into --out, and prints the findings in plain words. Both parts are the
``gseq hops example`` and ``gseq hops depth`` commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.cli import main as gseq_main  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/hops", help="output folder (default: runs/hops)")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--depths", nargs="+", default=["1", "2", "3", "4", "6", "8", "16"])
    p.add_argument("--self-loop-weights", nargs="+", default=["1", "2", "learn"])
    p.add_argument("--seeds", default="10")
    p.add_argument("--epochs", default="200")
    p.add_argument("--jobs", default="1")
    args = p.parse_args(argv)
    status = gseq_main(["hops", "example", "--out", args.out])
    print()
    return status or gseq_main(["hops", "depth", "--dataset", args.dataset, "--depths", *args.depths,
                                "--self-loop-weights", *args.self_loop_weights, "--seeds", args.seeds,
                                "--epochs", args.epochs, "--jobs", args.jobs, "--out", f"{args.out}/{args.dataset}"])


if __name__ == "__main__":
    sys.exit(main())
