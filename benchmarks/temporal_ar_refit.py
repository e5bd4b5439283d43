"""Would refitting the forecaster's linear AR term on all training snapshots help? (Mixed: not adopted.)

    GSEQ_DATA=/path/to/data python benchmarks/temporal_ar_refit.py

``gseq temporal train`` starts its model as the AR model of the *fit* snapshots and keeps the step with
the best validation MSE; the AR baseline is fitted on fit *and* validation snapshots. This script trains
the default model (no baselines) per dataset, protocol and seed, then, with the recurrent part frozen,
refits the AR term (skip weights and read-out bias) by least squares on fit + validation snapshots,
against the target minus the recurrent read-out, and prints the test MSE before and after beside the AR
baseline's and that of the AR model of the fit snapshots alone (the model's starting point). With the
default DCRNN the refit lowers the test MSE on pedalme and chickenpox and raises it on england_covid.
Whether to refit could only be chosen on the test snapshots (the refit uses the validation ones), so
gseq does not refit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.config import TemporalConfig  # noqa: E402
from gseq.models.temporal import LinearAR  # noqa: E402
from gseq.tasks.forecasting import train_forecaster  # noqa: E402


def refit_ar(out: dict) -> tuple[float, float, float, float]:
    """``(test MSE as trained, after the refit, AR baseline, AR of the fit snapshots)`` of one
    :func:`train_forecaster` result."""
    model, signal, split = out["model"], out["signal"], out["split"]
    n_train = split["train"] + split["val"]
    x, y = signal.x, signal.y
    with torch.no_grad():
        model.eval()
        graphs = model.graphs(signal.edge_index, signal.edge_weight, signal.num_nodes,
                              signal.num_steps if signal.dynamic else None)
        hs, _ = model.sequence(x, graphs)
        readout = F.linear(torch.relu(hs), model.head.weight)  # the recurrent part, without the bias
        refit = LinearAR.fit(x[:n_train], (y - readout)[:n_train])
        pred = readout + refit(x)
        ar = LinearAR.fit(x[:n_train], y[:n_train])(x)
        ar_fit = LinearAR.fit(x[:split["train"]], y[:split["train"]])(x)
    mse = lambda p: float((p[n_train:] - y[n_train:]).pow(2).mean())  # noqa: E731
    return out["metrics"]["test_mse"], mse(pred), mse(ar), mse(ar_fit)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["pedalme", "chickenpox", "england_covid"])
    p.add_argument("--protocols", nargs="+", type=float, default=[0.2, 0.8], help="training fractions")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("dataset        train  as trained        AR refit          AR baseline  AR of fit (test MSE, mean +- std)")
    for dataset in args.datasets:
        for train in args.protocols:
            runs = [refit_ar(train_forecaster(TemporalConfig(dataset=dataset, train=train, seed=seed,
                                                             progress=False, baselines=False)))
                    for seed in args.seeds]
            cols = [[r[i] for r in runs] for i in range(4)]
            sd = [statistics.stdev(c) if len(c) > 1 else 0.0 for c in cols]
            print(f"{dataset:14s} {train:5.1f}  " + "  ".join(f"{statistics.mean(c):.4f} +- {s:.4f}"
                                                          for c, s in zip(cols[:2], sd))
                  + f"  {cols[2][0]:.4f}       {cols[3][0]:.4f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
