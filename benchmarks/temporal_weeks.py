"""Where a test MSE comes from: the squared error of every test snapshot, for gseq's forecaster (over seeds)
and the linear AR baseline, on one dataset and protocol.

    GSEQ_DATA=/path/to/data python benchmarks/temporal_weeks.py --dataset pedalme --train 0.8

On a short signal one snapshot can carry most of the test MSE (pedalme's last week); the script prints each
snapshot's share and both MSEs without it, so a comparison can be read with and without that snapshot.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.models import LinearAR  # noqa: E402
from gseq.tasks import train_forecaster  # noqa: E402


def per_snapshot(pred: torch.Tensor, target: torch.Tensor) -> list[float]:
    """Mean squared error of each snapshot (over nodes and horizons)."""
    return (pred - target).pow(2).mean(dim=(1, 2)).tolist()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pedalme")
    p.add_argument("--train", type=float, default=0.8)
    p.add_argument("--model", default="dcrnn")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    runs = [train_forecaster(args.dataset, model=args.model, train=args.train, seed=s, baselines=False,
                             progress=False, threads=args.threads) for s in args.seeds]
    signal, split = runs[0]["signal"], runs[0]["split"]
    n = split["train"] + split["val"]
    y = signal.y[n:]
    ar = LinearAR.fit(signal.x[:n], signal.y[:n])
    with torch.no_grad():
        rows = {"ar": per_snapshot(ar(signal.x[n:]), y)}
    for s, r in zip(args.seeds, runs):
        rows[f"{args.model} seed {s}"] = per_snapshot(r["predictions"][n:], y)

    print(f"{args.dataset}, train {args.train}: squared error per test snapshot (snapshot {n} is the first test one)")
    for name, errs in rows.items():
        total = sum(errs)
        print(f"{name:16s} MSE {total / len(errs):.4f}  without the largest snapshot "
              f"{(total - max(errs)) / (len(errs) - 1):.4f}  | " + " ".join(f"{e:.3f}" for e in errs))
    ar_errs = rows["ar"]
    worst = max(range(len(ar_errs)), key=ar_errs.__getitem__)
    print(f"AR: snapshot {n + worst} carries {ar_errs[worst] / sum(ar_errs):.0%} of its test MSE")
    model_rest = [(sum(e) - e[worst]) / (len(e) - 1) for k, e in rows.items() if k != "ar"]
    print(f"{args.model} without snapshot {n + worst}: {statistics.mean(model_rest):.4f} +- "
          f"{statistics.stdev(model_rest) if len(model_rest) > 1 else 0.0:.4f}; AR "
          f"{(sum(ar_errs) - ar_errs[worst]) / (len(ar_errs) - 1):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
