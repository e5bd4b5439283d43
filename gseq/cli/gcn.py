"""``gseq gcn``: train the GCN for node classification and report test accuracy over seeds."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from ._args import (add_device, add_out_flags, announce, check_out, dropout, is_main_process, learning_rate,
                    non_negative_float, positive_int)

DATASETS = ("Cora", "CiteSeer", "PubMed", "example", "karate", "synthetic")
SYNTHETIC_NODES = 100_000
TRUST_WARNING = ("warning: --trust unpickles raw files whose SHA-256 gseq does not know or that fail it; unpickling "
                 "runs code, so use it only on files you trust")

__all__ = ["register", "run", "load_dataset", "DATASETS", "positive_int", "self_loop_weight_arg",
           "fan_out"]


def self_loop_weight_arg(text: str) -> float | str:
    if text == "learn":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'learn', got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (or 'learn'), got {text!r}")
    return value


def fan_out(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or -1 (all neighbours), got {text!r}") from None
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(f"must be >= 1, or -1 for all neighbours, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("gcn", help="train a GCN on a graph and report test accuracy",
                       description="Train gseq's GCN (Kipf & Welling settings by default) and report the test "
                                   "accuracy at the epoch of best validation accuracy, over one or more seeds. "
                                   "Cora ships with gseq: no data folder or network is needed.")
    p.add_argument("--dataset", default="Cora", type=lambda s: _dataset_name(s), metavar="{" + ",".join(DATASETS) + "}",
                   help="Planetoid name, 'example' (the 6-node graph) / 'karate' (embedded, no files), or "
                        "'synthetic' (gseq.data.synthetic_graph, any size)")
    p.add_argument("--num-nodes", type=positive_int, default=None,
                   help="nodes of --dataset synthetic (degree-corrected SBM, average degree 10, 10 classes, "
                        f"64 features, seed 0) (default: {SYNTHETIC_NODES})")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="train on mini-batches of this many seed nodes with sampled neighbourhoods "
                        "(gseq.loader.NeighborLoader) and evaluate by exact layer-wise inference "
                        "(default: full-batch training)")
    p.add_argument("--num-neighbors", type=fan_out, nargs="+", default=None, metavar="K",
                   help="with --batch-size: neighbours sampled per node in each hop, one per layer; -1 takes "
                        "all (default: 10 per layer)")
    p.add_argument("--root", default=None,
                   help="folder holding <Name>/raw/ind.<name>.* (default: $GSEQ_DATA/planetoid, then "
                        "~/.cache/gseq/planetoid, then the copy shipped with gseq (Cora), then a download)")
    p.add_argument("--trust", action="store_true",
                   help="unpickle raw files whose SHA-256 gseq does not know (unpickling runs code)")
    p.add_argument("--layers", type=positive_int, default=2, help="number of GCN layers")
    p.add_argument("--hidden", type=positive_int, default=16, help="hidden channels")
    p.add_argument("--self-loop-weight", type=self_loop_weight_arg, default=1.0,
                   help="w in D^-1/2 (A + wI) D^-1/2: a number >= 0 or 'learn'")
    p.add_argument("--dropout", type=dropout, default=0.5, help="dropout probability, in [0, 1)")
    p.add_argument("--lr", type=learning_rate, default=0.01, help="Adam learning rate")
    p.add_argument("--weight-decay", type=non_negative_float, default=5e-4, help="weight decay on the first layer")
    p.add_argument("--epochs", type=positive_int, default=200, help="training epochs")
    p.add_argument("--seeds", type=positive_int, default=1, help="number of seeds 0..S-1")
    add_device(p)
    p.add_argument("--out", default=None,
                   help="folder for results.json and, per seed, seed_<i>/ with metrics.csv, config.json, "
                        "checkpoint.pt and curves.png (default: write nothing)")
    add_out_flags(p, resume=False)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--progress", action="store_true", help="show a progress bar per seed")
    p.set_defaults(func=run, distributed=True)


def _dataset_name(text: str) -> str:
    for name in DATASETS:
        if text.lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose one of {', '.join(DATASETS)}")


def load_dataset(name: str, root: str | None = None, trust: bool = False, num_nodes: int | None = None):
    from ..data.graphs import example_graph, karate
    from ..data.planetoid import planetoid

    if name == "synthetic":
        from ..data.synthetic import synthetic_graph

        return synthetic_graph(num_nodes or SYNTHETIC_NODES, seed=0)
    if num_nodes is not None:
        raise ValueError(f"--num-nodes: only applies to --dataset synthetic, not {name}")
    if name == "example":
        return example_graph()
    if name == "karate":
        return karate()
    return planetoid(name, root=root, trust=trust)


def _refuse_finished_run(out, seeds: int, overwrite: bool) -> None:
    """A folder that holds a run of this command is only replaced with ``--overwrite``."""
    if out is None or overwrite:
        return
    held = [p for p in [out / "results.json", *(out / f"seed_{s}" / "checkpoint.pt" for s in range(seeds))]
            if p.exists()]
    if held:
        raise ValueError(f"--out: {str(out)!r} already holds a run ({held[0].name} and {len(held) - 1} more "
                         "file(s)); pass --overwrite to replace it, or choose another folder (nothing was changed)")


def _trainer(args):
    """The training function and its extra arguments: full-batch, or mini-batch with --batch-size."""
    from ..tasks.node_classification import train_node_classifier, train_node_classifier_minibatch

    if args.batch_size is None:
        if args.num_neighbors is not None:
            raise ValueError("--num-neighbors: only applies to mini-batch training; add --batch-size")
        return train_node_classifier, {}
    num_neighbors = args.num_neighbors or [10] * args.layers
    if len(num_neighbors) != args.layers:
        raise ValueError(f"--num-neighbors: give one fan-out per layer ({args.layers} layers), got {num_neighbors}")
    return train_node_classifier_minibatch, {"batch_size": args.batch_size, "num_neighbors": num_neighbors}


def run(args) -> int:
    started = time.time()
    main = is_main_process()  # under torchrun: rank 0 writes the figures and results.json
    out = check_out(args.out)
    _refuse_finished_run(out, args.seeds, args.overwrite)
    if args.trust and args.dataset not in ("example", "karate") and main:
        print(f"gseq gcn: {TRUST_WARNING}", file=sys.stderr)

    from ..io import write_json

    train, extra = _trainer(args)
    data = load_dataset(args.dataset, args.root, args.trust, args.num_nodes)
    start = time.perf_counter()
    per_seed, written = [], []
    for seed in range(args.seeds):
        seed_dir = out / f"seed_{seed}" if out else None
        r = train(
            data, num_layers=args.layers, hidden_channels=args.hidden, dropout=args.dropout,
            self_loop_weight=args.self_loop_weight, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
            seed=seed, device=args.device, progress=args.progress, out_dir=seed_dir, overwrite=args.overwrite,
            **extra,
        )
        row = {"seed": seed, "test_acc": r["test_acc"], "val_acc": r["val_acc"], "best_epoch": r["best_epoch"],
               "self_loop_weights": r["self_loop_weights"], "seconds": round(r["seconds"], 3)}
        per_seed.append(row)
        if seed_dir is not None and main:
            import matplotlib.pyplot as plt

            from ..plots import plot_history

            plt.close(plot_history(r["history"], loss_keys=["loss", "val_loss"],
                                   metric_keys=["train_acc", "val_acc", "test_acc"], x="epoch",
                                   title=f"GCN on {args.dataset}, seed {seed}", path=seed_dir / "curves.png"))
            written += [seed_dir / name for name in ("metrics.csv", "config.json", "checkpoint.pt", "curves.png")]
        if not args.json:
            w = ", ".join(f"{v:.3f}" for v in r["self_loop_weights"])
            print(f"seed {seed}: test acc {r['test_acc']:.4f}  val acc {r['val_acc']:.4f}  best epoch "
                  f"{r['best_epoch']}  w [{w}]  {r['seconds']:.1f}s", flush=True)
    accs = [row["test_acc"] for row in per_seed]
    summary = {
        "dataset": args.dataset, "layers": args.layers, "hidden": args.hidden,
        "self_loop_weight": args.self_loop_weight, "epochs": args.epochs, "lr": args.lr,
        "weight_decay": args.weight_decay, "dropout": args.dropout,
        "batch_size": args.batch_size, "num_neighbors": extra.get("num_neighbors"),
        "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "per_seed": per_seed, "seconds": round(time.perf_counter() - start, 3),
    }
    if out is not None and main:
        written.insert(0, write_json(out / "results.json", summary))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.dataset}: test accuracy {100 * summary['test_acc_mean']:.2f} +- "
              f"{100 * summary['test_acc_std']:.2f} % over {len(accs)} seed(s) "
              f"({args.layers} layers, hidden {args.hidden}, self_loop_weight {args.self_loop_weight}, "
              f"{_batching(summary)}{summary['seconds']:.1f} s)")
    if main:
        announce(written, started, stream=sys.stderr if args.json else None)
    return 0


def _batching(summary: dict) -> str:
    if summary["batch_size"] is None:
        return "full-batch, "
    fan = ", ".join(str(k) for k in summary["num_neighbors"])
    return f"mini-batch {summary['batch_size']} with [{fan}] neighbours, "
