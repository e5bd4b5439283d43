"""GCNII's alpha x lambda (x dropout) on Cora's validation nodes at one depth, a few seeds per setting.

    python benchmarks/gcnii_sweep.py --layers 8 --alphas 0.1 0.2 --thetas 0.5 1.0 1.5 --seeds 2 --csv runs/sweep8.csv

Each run is :func:`gseq.tasks.gcnii.train_gcnii` (GCNII's recipe: Adam 0.01, weight decay 0.01 / 5e-4,
up to 1500 epochs, stopped 100 epochs after the lowest validation loss) with the given ``alpha``,
``theta`` (GCNII's lambda) and ``dropout``. Rows (validation and test accuracy of the kept epoch) are
appended to the CSV as they finish, and settings already there are skipped, so a second call with more
values adds to the grid. ``--conv-init uniform`` draws the GCN2 weights as GCNII's repository does,
U(-1/sqrt(C), 1/sqrt(C)), in place of ``GCN2Conv``'s glorot (the CSV has no column for it:
give each init a CSV of its own). The table printed at the end ranks the settings by mean validation accuracy:
choose by that column, not by the test one.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gseq.data import planetoid  # noqa: E402
from gseq.tasks.gcnii import train_gcnii  # noqa: E402
from _rows import open_rows  # noqa: E402

FIELDS = ["layers", "alpha", "theta", "dropout", "seed", "val_acc", "test_acc", "best_epoch", "seconds"]


def uniform_init(weight) -> None:
    """GCNII's repository's ``GraphConvolution.reset_parameters``: U(-1/sqrt(C), 1/sqrt(C))."""
    if weight is not None:
        bound = 1.0 / math.sqrt(weight.size(-1))
        weight.data.uniform_(-bound, bound)


def run(args) -> None:
    path = Path(args.csv)
    done = open_rows(path, FIELDS, ["layers", "alpha", "theta", "dropout", "seed"])
    data = planetoid("Cora")
    for seed, (alpha, theta, dropout) in itertools.product(args.seeds_list,
                                                           itertools.product(args.alphas, args.thetas, args.dropouts)):
        if tuple(map(str, (args.layers, alpha, theta, dropout, seed))) in done:
            continue
        t0 = time.time()
        r = train_gcnii(data, seed=seed, num_layers=args.layers, alpha=alpha, theta=theta, dropout=dropout)
        row = {"layers": args.layers, "alpha": alpha, "theta": theta, "dropout": dropout, "seed": seed,
               "val_acc": f"{r['val_acc']:.4f}", "test_acc": f"{r['test_acc']:.4f}", "best_epoch": r["best_epoch"],
               "seconds": f"{time.time() - t0:.1f}"}
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow(row)
        print(", ".join(f"{k} {v}" for k, v in row.items()), flush=True)


def summary(path: str, layers: int) -> None:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["layers"]) == layers]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["alpha"], r["theta"], r["dropout"]), []).append(r)
    print(f"\n{layers} layers   alpha  theta  dropout  seeds  val acc %  test acc %")
    for (a, t, d), rs in sorted(groups.items(), key=lambda kv: -statistics.fmean(float(r["val_acc"]) for r in kv[1])):
        val = statistics.fmean(float(r["val_acc"]) for r in rs)
        test = statistics.fmean(float(r["test_acc"]) for r in rs)
        print(f"{'':10s} {a:>6s} {t:>6s} {d:>8s} {len(rs):6d} {100 * val:10.1f} {100 * test:11.1f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--alphas", nargs="+", type=float, default=[0.1])
    p.add_argument("--thetas", nargs="+", type=float, default=[0.5])
    p.add_argument("--dropouts", nargs="+", type=float, default=[0.6])
    p.add_argument("--seeds", type=int, default=2, help="seeds per setting (default: 2)")
    p.add_argument("--first-seed", type=int, default=0, help="the seeds are first..first+S-1 (default: 0)")
    p.add_argument("--csv", default="runs/gcnii_sweep.csv")
    p.add_argument("--conv-init", choices=["glorot", "uniform"], default="glorot",
                   help="GCN2 weights: glorot (GCN2Conv) or uniform (GCNII's repository) (default: glorot)")
    p.add_argument("--summary", action="store_true", help="print the table of --csv and exit")
    args = p.parse_args(argv)
    args.seeds_list = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.conv_init == "uniform":  # the layer draws its weights with this function, in the same order
        import gseq.layers.gcn2

        gseq.layers.gcn2.glorot = uniform_init
    if not args.summary:
        torch.set_num_threads(1)
        run(args)
    summary(args.csv, args.layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
