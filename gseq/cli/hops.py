"""``gseq hops``: how far information travels through k GCN layers, and what depth buys on Cora."""

from __future__ import annotations

import math
import time

from ..config import DATASETS, parse_dataset, parse_self_loop_weight
from ._args import announce, check_out, positive_int, random_seed


def register(sub) -> None:
    p = sub.add_parser("hops", help="receptive-field hops: the example graph's table and the Cora depth study")
    hsub = p.add_subparsers(dest="hops_command", metavar="{example,depth}")
    hsub.required = True

    e = hsub.add_parser("example", help="shortest paths vs the measured GCN depth for all pairs of the 6-node graph")
    e.add_argument("--source", default="C", help="node whose hop distances colour the figure")
    e.add_argument("--seed", type=random_seed, default=0, help="seed of the random GCN weights")
    e.add_argument("--out", default=None, help="folder for hop_table.csv and hop_graph.png (default: write nothing)")
    e.set_defaults(func=run_example)

    d = hsub.add_parser("depth", help="accuracy, receptive field and influence vs GCN depth (resumable)")
    d.add_argument("--dataset", default="Cora", type=parse_dataset, metavar="{" + ",".join(DATASETS) + "}",
                   help="Planetoid name, or 'example' / 'karate'")
    d.add_argument("--root", default=None,
                   help="Planetoid root (default: $GSEQ_DATA/planetoid, then the cache, then the copy shipped "
                        "with gseq (Cora), then a download)")
    d.add_argument("--models", nargs="+", choices=["gcn", "gcnii"], default=["gcn", "gcnii"],
                   help="the plain GCN (Kipf & Welling) and/or GCNII (initial residual and identity mapping)")
    d.add_argument("--depths", nargs="+", type=positive_int, default=[1, 2, 4, 8, 16, 32, 64],
                   help="numbers of graph layers")
    d.add_argument("--self-loop-weights", nargs="+", type=parse_self_loop_weight, default=[1.0, 2.0, "learn"],
                   help="self-loop weights w (numbers >= 0 or 'learn')")
    d.add_argument("--seeds", type=positive_int, default=10, help="seeds per setting")
    d.add_argument("--epochs", type=positive_int, default=200, help="epochs per GCN run")
    d.add_argument("--gcnii-epochs", type=positive_int, default=1500,
                   help="most epochs per GCNII run (stopped after 100 without a lower validation loss)")
    d.add_argument("--influence-nodes", type=positive_int, default=20, help="probe nodes for influence")
    d.add_argument("--jobs", type=positive_int, default=1, help="parallel processes")
    d.add_argument("--out", required=True,
                   help="folder for depth.csv (resumed when present, same settings only), summary.csv, "
                        "findings.json, depth.png")
    d.set_defaults(func=run_depth)


def run_example(args) -> int:
    started = time.time()
    out = check_out(args.out)
    from ..analysis.hops import hop_table
    from ..data import example_graph
    from ..plots import plot_hop_graph
    from ..train import write_csv

    data = example_graph()
    rows = hop_table(data, seed=args.seed)
    names = data.node_names
    print("smallest GCN depth k at which the target's output depends on the source (measured by influence);")
    print("in brackets the shortest-path hops where they differ\n")
    print("source\\target " + " ".join(f"{n:>3}" for n in names))
    for s in names:
        cells = []
        for t in names:
            r = next(r for r in rows if r["source"] == s and r["target"] == t)
            k = "-" if r["first_k"] is None else str(r["first_k"])
            cells.append(f"{k:>3}" if r["agree"] else f"{k}({r['hops']})")
        print(f"{s:>13} " + " ".join(cells))
    agree = sum(r["agree"] for r in rows)
    ce = next(r for r in rows if r["source"] == "C" and r["target"] == "E")
    print(f"\n{agree} of {len(rows)} ordered pairs: measured depth == shortest-path hops; C -> E needs "
          f"{ce['first_k']} layers ({ce['hops']} hops)")
    if out is not None:
        import matplotlib.pyplot as plt

        write_csv(out / "hop_table.csv", [{**r, "hops": r["hops"] if math.isfinite(r["hops"]) else "inf"} for r in rows])
        plt.close(plot_hop_graph(data, args.source, path=out / "hop_graph.png"))
        announce([out / "hop_table.csv", out / "hop_graph.png"], started)
    return 0 if agree == len(rows) else 1


def run_depth(args) -> int:
    started = time.time()
    out = check_out(args.out)
    from ..analysis.hops import depth_study, describe_depth_study, summarize_depth_study
    from ..plots import plot_depth_study
    from ..train import write_csv, write_json
    from .gcn import load_dataset

    data = load_dataset(args.dataset, args.root) if args.dataset in ("example", "karate") else None

    def log(row, finished, total):
        print(f"[{finished}/{total}] {row['model']:<5} depth {row['depth']:>2} w={row['self_loop_weight']:<5} "
              f"seed {row['seed']}: "
              f"test acc {row['test_acc']:.4f}, self influence {row['self_influence']:.3f}, "
              f"ring {row['ring_influence']:.3f}, w {row['learned_w']:.2f}, {row['seconds']:.1f} s", flush=True)

    rows = depth_study(str(out / "depth.csv"), dataset=args.dataset, root=args.root, data=data, models=args.models,
                       depths=args.depths, self_loop_weights=args.self_loop_weights, seeds=args.seeds,
                       epochs=args.epochs, gcnii_epochs=args.gcnii_epochs,
                       influence_nodes=args.influence_nodes, jobs=args.jobs, log=log)
    summary = summarize_depth_study(rows)
    write_csv(out / "summary.csv", summary)
    print(f"\n{'model':>5} {'w':>6} {'depth':>5} {'runs':>4} {'test acc %':>12} {'RF % nodes':>10} {'self infl':>9} "
          f"{'ring infl':>9} {'w (mean)':>8}")
    for r in summary:
        print(f"{r['model']:>5} {r['self_loop_weight']:>6} {r['depth']:>5} {r['runs']:>4} "
              f"{100 * r['test_acc_mean']:6.1f} +- "
              f"{100 * r['test_acc_std']:3.1f} {100 * r['rf_fraction']:10.1f} {r['self_influence']:9.3f} "
              f"{r['ring_influence']:9.3f} {r['learned_w']:8.2f}")
    findings = describe_depth_study(summary)
    print("\nfindings:")
    for line in findings:
        print(f"- {line}")
    write_json(out / "findings.json", {"findings": findings, "summary": summary})
    import matplotlib.pyplot as plt

    plt.close(plot_depth_study(summary, title=f"GCN and GCNII depth on {args.dataset} ({args.seeds} seeds)",
                               path=out / "depth.png"))
    announce([out / name for name in ("depth.csv", "depth.json", "summary.csv", "findings.json", "depth.png")],
             started)
    return 0
