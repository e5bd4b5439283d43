"""Forecasting accuracy of gseq's recurrent graph models against the linear AR baseline, the same model
without the graph, and PyTorch Geometric Temporal's tutorial recipe, over seeds, datasets and protocols.

    GSEQ_DATA=/path/to/data python benchmarks/temporal_accuracy.py --csv runs/temporal_accuracy.csv
    python benchmarks/temporal_accuracy.py --summary runs/temporal_accuracy.csv     # the table only
    python benchmarks/temporal_accuracy.py --select runs/temporal_accuracy.csv      # the model validation picks

``--select`` picks, per dataset, protocol and horizon, the model with the lowest validation MSE (best
epoch, mean over seeds) and prints its test MSE beside the AR baseline's: a choice of model that reads no
test snapshot.

Protocols: ``pgt`` (the first 20% of the snapshots train, the rest test: PGT's tutorial split) and ``80/20``
(80% train, the last tenth of it validates). gseq's model trains with ``gseq.tasks.train_forecaster`` and
its defaults (it starts as the AR model fitted on its fit snapshots; truncated BPTT over windows with the
state carried, early stopping and keep-best on the validation tenth of the training part, step 0
included, so it fits on less data than the baselines). ``pgt_recipe`` is PGT's tutorial training of
the same cell: RecurrentGCN (cell -> ReLU -> Linear), Adam 0.01, 200 full-batch epochs on all training
snapshots, the state never carried; it runs through gseq's cells on the snapshots as a batch of
one-step signals, the function benchmarks/temporal_pgt.py checks equal to PGT's epoch by epoch (same
weights, same loss); PGT's own initialisation is not reproduced. Rows are appended as they finish, so an
interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gseq.data import split_by_time  # noqa: E402
from gseq.models import GraphForecaster, LinearAR  # noqa: E402
from gseq.tasks.forecasting import forecast_metrics, load_signal, train_forecaster  # noqa: E402
from gseq.config import TemporalConfig  # noqa: E402
from _rows import open_rows  # noqa: E402

PROTOCOLS = {"pgt": 0.2, "80/20": 0.8}
FIELDS = ["dataset", "protocol", "horizon", "model", "seed", "method", "test_mse", "test_mae", "epochs", "seconds",
          "val_mse"]


def pgt_recipe(cfg: TemporalConfig, epochs: int = 200) -> dict[str, float]:
    """PGT's tutorial training of ``cfg.model`` on the first ``cfg.train`` of the snapshots."""
    signal = load_signal(cfg)
    train, _, test = split_by_time(signal, cfg.train)
    torch.manual_seed(cfg.seed)
    model = GraphForecaster(cfg.model, signal.x.size(-1), cfg.hidden, signal.horizon, K=cfg.K, ar_skip=False)
    graphs = model.graphs(signal.edge_index, signal.edge_weight, signal.num_nodes,
                          signal.num_steps if signal.dynamic else None)
    n = train.num_steps
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def one_step_batch(lo, hi):  # [T, 1, N, F]: T signals of one snapshot each (the state never carried)
        if not signal.dynamic:
            return model(signal.x[lo:hi].unsqueeze(1), graphs)[0].squeeze(1)
        outs = [model(signal.x[t:t + 1], model.graphs([signal.edge_index[t]], None if signal.edge_weight is None
                                                      else [signal.edge_weight[t]], signal.num_nodes, 1))[0]
                for t in range(lo, hi)]
        return torch.cat(outs)

    for _ in range(epochs):
        loss = torch.mean((one_step_batch(0, n) - signal.y[:n]) ** 2)
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        pred = one_step_batch(n, signal.num_steps)
    return {**forecast_metrics(pred, signal.y[n:], "test"), "epochs": epochs}


def ar_baseline(signal, n_train: int) -> dict[str, float]:
    """The linear AR model of the first ``n_train`` snapshots, scored on the rest."""
    ar = LinearAR.fit(signal.x[:n_train], signal.y[:n_train])
    with torch.no_grad():
        return forecast_metrics(ar(signal.x[n_train:]), signal.y[n_train:], "test")


def run(args) -> None:
    path = Path(args.csv)
    done = open_rows(path, FIELDS, ["dataset", "protocol", "horizon", "model", "seed"])
    for dataset in args.datasets:
        for protocol in args.protocols:
            for horizon in args.horizons:
                for model in args.models:
                    for seed in args.seeds:
                        key = (dataset, protocol, str(horizon), model, str(seed))
                        if key in done:
                            continue
                        cfg = TemporalConfig(dataset=dataset, model=model, train=PROTOCOLS[protocol], horizon=horizon,
                                             seed=seed, progress=False, self_loop_weight=args.self_loop_weight,
                                             baselines=args.baselines, drop_self_loops=args.drop_self_loops)
                        t0 = time.time()
                        out = train_forecaster(cfg)
                        seconds = time.time() - t0
                        rows = [("gseq", out["metrics"])] + [(b, out["baselines"][b]) for b in out["baselines"]]
                        if not args.baselines:  # the AR row still (least squares: no time to speak of)
                            rows.append(("ar", ar_baseline(out["signal"], sum(out["split"][k] for k in ("train", "val")))))
                        if horizon == 1 and args.pgt_recipe:
                            t1 = time.time()
                            rows.append(("pgt_recipe", pgt_recipe(cfg)))
                            rows[-1][1]["seconds"] = time.time() - t1
                        with open(path, "a", newline="") as f:
                            w = csv.DictWriter(f, FIELDS)
                            for method, m in rows:
                                w.writerow({"dataset": dataset, "protocol": protocol, "horizon": horizon, "model": model,
                                            "seed": seed, "method": method, "test_mse": round(m["test_mse"], 5),
                                            "test_mae": round(m["test_mae"], 5), "epochs": m.get("epochs", ""),
                                            "seconds": round(m.get("seconds", seconds), 1),
                                            "val_mse": round(m["best_val_mse"], 5) if "best_val_mse" in m else ""})
                        print(f"{dataset} {protocol} h{horizon} {model} seed {seed}: " + ", ".join(
                            f"{meth} {m['test_mse']:.4f}" for meth, m in rows) + f" ({seconds:.0f} s)", flush=True)


def summary(path: str) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["protocol"], r["horizon"], r["model"], r["method"]), []).append(
            float(r["test_mse"]))
    print("dataset        protocol h  model       method       test MSE mean +- std (seeds)")
    for (d, p, h, m, meth), v in sorted(groups.items()):
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"{d:14s} {p:8s} {h:2s} {m:11s} {meth:12s} {statistics.mean(v):.4f} +- {sd:.4f} ({len(v)})")


def select(path: str) -> None:
    """Per dataset, protocol and horizon: the model whose gseq runs have the lowest mean validation MSE, and
    its test MSE beside the AR baseline's (from rows of the same CSV or ``--ar`` ones)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] in ("gseq", "ar")]
    runs: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        runs.setdefault((r["dataset"], r["protocol"], r["horizon"]), {}).setdefault(
            r["model"] if r["method"] == "gseq" else "ar", []).append(r)
    print("dataset        protocol h  chosen      val MSE (per model)                              test MSE          AR")
    for key, by_model in sorted(runs.items()):
        ar = by_model.pop("ar", [])
        val = {m: statistics.mean(float(r["val_mse"]) for r in rs) for m, rs in by_model.items()}
        best = min(val, key=val.get)
        test = [float(r["test_mse"]) for r in by_model[best]]
        sd = statistics.stdev(test) if len(test) > 1 else 0.0
        ar_mse = f"{float(ar[0]['test_mse']):.4f}" if ar else "-"
        vals = " ".join(f"{m} {v:.4f}" for m, v in sorted(val.items(), key=lambda kv: kv[1]))
        print(f"{key[0]:14s} {key[1]:8s} {key[2]:2s} {best:11s} {vals:48s} {statistics.mean(test):.4f} +- {sd:.4f}"
              f" ({len(test)})  {ar_mse}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default="runs/temporal_accuracy.csv")
    p.add_argument("--datasets", nargs="+", default=["chickenpox", "pedalme", "england_covid"])
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    p.add_argument("--horizons", nargs="+", type=int, default=[1])
    p.add_argument("--models", nargs="+", default=["gconv_gru"])
    p.add_argument("--self-loop-weight", default=1.0, type=lambda t: t if t == "learn" else float(t))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-pgt-recipe", dest="pgt_recipe", action="store_false",
                   help="skip PGT's tutorial recipe (slow for DCRNN and on england_covid's changing graph)")
    p.add_argument("--drop-self-loops", action="store_true", help="the graphs without their own self-loops "
                   "(so that TGCN's self-loop weight weighs every node)")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip the AR model and the same model without the graph")
    p.add_argument("--summary", default=None, help="print the table of a CSV and exit")
    p.add_argument("--select", default=None, help="print the model that validation picks from a CSV and exit")
    args = p.parse_args(argv)
    if args.summary or args.select:
        summary(args.summary) if args.summary else select(args.select)
        return 0
    torch.set_num_threads(args.threads)
    run(args)
    summary(args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
