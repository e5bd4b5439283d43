"""``gseq temporal train``: forecast node signals on a graph with a recurrent graph cell, beside the linear
AR baseline and the same model without the graph.

Examples::

    gseq temporal train                                     # chickenpox (shipped), dcrnn, 80/20 split
    gseq temporal train --dataset pedalme --model tgcn --self-loop-weight learn --horizon 4
    gseq temporal train --file my_signal.json --lags 8 --json
    gseq temporal train --train 0.2 --out runs/pgt-split    # PyTorch Geometric Temporal's tutorial split
"""

from __future__ import annotations

import json
import time

from ..config import TemporalConfig
from ._args import announce, check_out


def register(sub) -> None:
    commands = sub.add_parser("temporal", help="temporal graph signals: forecasting with recurrent graph cells",
                              description="Forecast node signals that change in time over a graph."
                              ).add_subparsers(dest="temporal_command", metavar="{train}", required=True)
    t = commands.add_parser("train", help="train a recurrent graph forecaster (through the shared Trainer)",
                        description="Train a forecaster and its baselines (linear AR, the model without the graph) "
                                    "on one split by time; every option is a field of gseq.config.TemporalConfig.")
    TemporalConfig.add_arguments(t)
    t.add_argument("--json", action="store_true", help="print one JSON object (the model's test metrics and the "
                                                      "baselines') instead of text")
    t.set_defaults(func=run_train, distributed=True)


def run_train(args) -> int:
    started = time.time()
    cfg = TemporalConfig.from_args(args, progress=args.progress and not args.json)
    out = check_out(cfg.out_dir)
    from ..tasks.forecasting import train_forecaster

    run = train_forecaster(cfg)
    metrics, baselines = run["metrics"], run["baselines"]
    keys = [k for k in metrics if k.startswith("test_")]
    if args.json:
        print(json.dumps({**{k: metrics[k] for k in keys}, "model": cfg.model, "split": run["split"],
                          "baselines": {name: {k: b[k] for k in keys} for name, b in baselines.items()}}))
        return 0
    split = run["split"]
    print(f"{cfg.file or cfg.dataset}: {split['train']} training, {split['val']} validation, {split['test']} test "
          f"snapshots; {cfg.model} stopped after {metrics['epochs']} epochs ({metrics['stop_reason']})")
    rows = [(cfg.model, metrics)] + [(f"baseline {name}", b) for name, b in baselines.items()]
    for name, m in rows:
        print(f"  {name:22s} test MSE {m['test_mse']:.4f}  MAE {m['test_mae']:.4f}"
              + "".join(f"  h{h}: {m[f'test_mse_h{h}']:.4f}" for h in range(1, cfg.horizon + 1) if cfg.horizon > 1))
    if "no_graph" in baselines:
        gain = baselines["no_graph"]["test_mse"] - metrics["test_mse"]
        print(f"  the graph {'helps' if gain > 0 else 'does not help'} here: test MSE {metrics['test_mse']:.4f} with, "
              f"{baselines['no_graph']['test_mse']:.4f} without")
    if out is not None:
        announce([out / n for n in ("checkpoint.pt", "metrics.csv", "config.json", "results.json", "forecast.png")],
                 started)
    return 0
