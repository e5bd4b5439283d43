"""``gseq gcn``: train the GCN for node classification and report test accuracy over seeds."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from ..config import DATASETS, GCNII_DEFAULTS, SYNTHETIC_NODES, NodeClassificationConfig
from ._args import announce, is_main_process, resumed_note
TRUST_WARNING = ("warning: --trust unpickles raw files whose SHA-256 gseq does not know or that fail it; unpickling "
                 "runs code, so use it only on files you trust")

__all__ = ["register", "run", "load_dataset", "DATASETS"]


def register(sub) -> None:
    p = sub.add_parser("gcn", help="train a GCN on a graph and report test accuracy",
                       description="Train gseq's GCN (Kipf & Welling settings by default) and report the test "
                                   "accuracy at the epoch of best validation accuracy, over one or more seeds. "
                                   "Cora ships with gseq: no data folder or network is needed. Every option is a "
                                   "field of gseq.config.NodeClassificationConfig.")
    # the flags whose default depends on --model are None here and filled in by run()
    NodeClassificationConfig.add_arguments(p, defaults=dict.fromkeys(GCNII_DEFAULTS))
    p.set_defaults(func=run, distributed=True)


#: the settings train_gcnii takes under the config's names
TRAIN_GCNII_SETTINGS = ("num_layers", "hidden_channels", "alpha", "theta", "dropout", "self_loop_weight", "epochs",
                        "patience", "lr", "dense_weight_decay", "device", "progress", "overwrite")


def _config(args) -> NodeClassificationConfig:
    """The config of the parsed flags, each flag left unset taking its --model's default."""
    defaults = GCNII_DEFAULTS if args.model == "gcnii" else {
        f: NodeClassificationConfig.__dataclass_fields__[f].default for f in GCNII_DEFAULTS}
    unset = {k: v for k, v in defaults.items() if getattr(args, k) is None}
    return NodeClassificationConfig.from_args(args, **unset)


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


def run(args) -> int:
    started = time.time()
    cfg = _config(args)
    main = is_main_process()  # under torchrun: rank 0 writes the figures and results.json
    out = Path(cfg.out_dir) if cfg.out_dir is not None else None
    if out is not None and main:  # the policy of the folder of all seeds; each seed's folder is the Trainer's
        from ..train.run_folder import RunFolder

        RunFolder(out, "gcn", resume=cfg.resume, overwrite=cfg.overwrite, config=cfg).prepare()
    if cfg.trust and cfg.dataset not in ("example", "karate") and main:
        print(f"gseq gcn: {TRUST_WARNING}", file=sys.stderr)

    from ..io import write_json
    from ..tasks.gcnii import train_gcnii
    from ..train import apply_threads
    from ..tasks.node_classification import train_node_classifier

    data = load_dataset(cfg.dataset, cfg.root, cfg.trust, cfg.num_nodes)
    start = time.perf_counter()
    per_seed, written = [], []
    for seed in cfg.seed_list():
        seed_dir = out / f"seed_{seed}" if out else None
        resume = cfg.resume and (seed_dir / "checkpoint.pt").is_file()  # a seed not started yet starts
        if cfg.model == "gcnii":
            apply_threads(cfg.threads)
            r = train_gcnii(data, **{k: getattr(cfg, k) for k in TRAIN_GCNII_SETTINGS},
                            conv_weight_decay=cfg.weight_decay, seed=seed, out_dir=seed_dir)
        else:
            r = train_node_classifier(data, config=cfg, seed=seed, seeds=1, out_dir=seed_dir, resume=resume)
        row = {"seed": seed, "test_acc": r["test_acc"], "val_acc": r["val_acc"], "best_epoch": r["best_epoch"],
               "self_loop_weights": r["self_loop_weights"], "seconds": round(r["seconds"], 3)}
        per_seed.append(row)
        if seed_dir is not None and main:
            import matplotlib.pyplot as plt

            from ..plots import plot_history

            plt.close(plot_history(r["history"], loss_keys=["loss", "val_loss"],
                                   metric_keys=["train_acc", "val_acc", "test_acc"], x="epoch",
                                   title=f"{cfg.model.upper()} on {cfg.dataset}, seed {seed}",
                                   path=seed_dir / "curves.png"))
            written += [seed_dir / name for name in ("metrics.csv", "config.json", "checkpoint.pt", "curves.png")]
        if not cfg.json:
            w = ", ".join(f"{v:.3f}" for v in r["self_loop_weights"])
            print(f"seed {seed}: test acc {r['test_acc']:.4f}  val acc {r['val_acc']:.4f}  best epoch "
                  f"{r['best_epoch']}  w [{w}]  {r['seconds']:.1f}s{resumed_note(r['result'], 'epoch')}", flush=True)
    accs = [row["test_acc"] for row in per_seed]
    summary = {
        "dataset": cfg.dataset, "model": cfg.model, "layers": cfg.num_layers, "hidden": cfg.hidden_channels,
        "self_loop_weight": cfg.self_loop_weight, "epochs": cfg.epochs, "lr": cfg.lr,
        "weight_decay": cfg.weight_decay, "dropout": cfg.dropout,
        "batch_size": cfg.batch_size, "num_neighbors": cfg.fan_outs if cfg.batch_size is not None else None,
        "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "per_seed": per_seed, "seconds": round(time.perf_counter() - start, 3),
    }
    if out is not None and main:
        written.insert(0, write_json(out / "results.json", summary))
    if cfg.json:
        print(json.dumps(summary))
    else:
        print(f"{cfg.dataset}: test accuracy {100 * summary['test_acc_mean']:.2f} +- "
              f"{100 * summary['test_acc_std']:.2f} % over {len(accs)} seed(s) "
              f"({cfg.num_layers} layers, hidden {cfg.hidden_channels}, self_loop_weight {cfg.self_loop_weight}, "
              f"{_batching(summary)}{summary['seconds']:.1f} s)")
    if main:
        announce(written, started, stream=sys.stderr if cfg.json else None)
    return 0


def _batching(summary: dict) -> str:
    if summary["batch_size"] is None:
        return "full-batch, "
    fan = ", ".join(str(k) for k in summary["num_neighbors"])
    return f"mini-batch {summary['batch_size']} with [{fan}] neighbours, "
