"""Receptive-field hops: what each extra graph layer buys, for the plain GCN and for GCNII.

    python benchmarks/hops.py                          # example-graph table + the full Cora depth study
    python benchmarks/hops.py --seeds 3 --depths 1 2 4 8 --models gcn --out runs/hops-quick
    python benchmarks/hops.py --profile-only --profile-depth 16 --out runs/hops   # the influence profile alone

Part 1 (seconds): on the 6-node example graph, for every ordered pair of nodes, the shortest-path length
against the smallest depth k at which a k-layer GCN's output at the target depends on the source,
measured through the Jacobian influence; it prints the table and draws the graph coloured by hops.

Part 2 (hours on one CPU core: a 64-layer GCNII run is 500-1000 epochs): on Cora, the plain GCN (Kipf &
Welling's training) and GCNII (initial residual and identity mapping, GCNII's training) at depths 1, 2,
4, 8, 16, 32, 64, with self-loop weight 1, 2 and learned, 10 seeds each: test accuracy (mean, std),
receptive-field size as a fraction of the graph, and the influence a node keeps on itself vs. the mass
on its k-hop ring. Writes depth.csv (resumable: rerun to continue), summary.csv, findings.json and
depth.png into --out, and prints the findings in plain words. Parts 1 and 2 are the ``gseq hops example``
and ``gseq hops depth`` commands.

Part 3: one GCN and one GCNII of ``--profile-depth`` layers trained on Cora (seed 0), and the influence
on a node's output by hop distance of the source, averaged over 20 fixed probe nodes: where the initial
residual puts the influence. Prints the table, writes influence_profile.csv and .png into --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.cli import main as gseq_main  # noqa: E402


def influence_profiles(depth: int, out: Path, dataset: str = "Cora") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from gseq.analysis import influence_profile
    from gseq.analysis.hops import probe_nodes
    from gseq.data import planetoid
    from gseq.io import write_csv
    from gseq.plots import plot_influence_profile
    from gseq.tasks.gcnii import train_gcnii
    from gseq.tasks.node_classification import train_node_classifier

    torch.set_num_threads(1)
    data = planetoid(dataset)
    probes = probe_nodes(data, 20)
    profiles, accs = {}, {}
    for name, train in (("gcn", train_node_classifier), ("gcnii", train_gcnii)):
        r = train(data, num_layers=depth, seed=0, device="cpu")
        profiles[name], accs[name] = influence_profile(r["model"], data, probes, depth), r["test_acc"]
    print(f"\ninfluence on a node's output by hops from it, {depth} layers, {dataset}, seed 0, 20 probe nodes (%)")
    print(f"{'hops':>4} " + " ".join(f"{f'{n} ({100 * accs[n]:.1f}%)':>16}" for n in profiles))
    for d in range(depth + 1):
        print(f"{d:>4} " + " ".join(f"{100 * profiles[n][d]:16.3f}" for n in profiles))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "influence_profile.csv", [{"hops": d, **{n: profiles[n][d] for n in profiles}}
                                              for d in range(depth + 1)])
    plot_influence_profile({f"{n}, {depth} layers ({100 * accs[n]:.1f}% test)": p for n, p in profiles.items()},
                           title=f"Influence by hop distance on {dataset}", path=out / "influence_profile.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/hops", help="output folder (default: runs/hops)")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--models", nargs="+", default=["gcn", "gcnii"])
    p.add_argument("--depths", nargs="+", default=["1", "2", "4", "8", "16", "32", "64"])
    p.add_argument("--self-loop-weights", nargs="+", default=["1", "2", "learn"])
    p.add_argument("--seeds", default="10")
    p.add_argument("--epochs", default="200")
    p.add_argument("--gcnii-epochs", default="1500")
    p.add_argument("--jobs", default="1")
    p.add_argument("--profile-depth", type=int, default=16, help="depth of the influence profile (Part 3)")
    p.add_argument("--profile-only", action="store_true", help="run Part 3 alone")
    args = p.parse_args(argv)
    if not args.profile_only:
        status = gseq_main(["hops", "example", "--out", args.out])
        print()
        status = status or gseq_main([
            "hops", "depth", "--dataset", args.dataset, "--models", *args.models, "--depths", *args.depths,
            "--self-loop-weights", *args.self_loop_weights, "--seeds", args.seeds, "--epochs", args.epochs,
            "--gcnii-epochs", args.gcnii_epochs, "--jobs", args.jobs, "--out", f"{args.out}/{args.dataset}"])
        if status:
            return status
    influence_profiles(args.profile_depth, Path(args.out) / args.dataset, args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
