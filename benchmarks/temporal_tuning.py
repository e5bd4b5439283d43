"""Choose the forecasting defaults on validation snapshots only: for each candidate setting, the best
validation MSE of ``gseq.tasks.train_forecaster`` over datasets, protocols and seeds, as a ratio to the
validation MSE of the AR model the forecaster starts from (fitted on the same fit snapshots). Test
snapshots are never scored here.

    GSEQ_DATA=/path/to/data python benchmarks/temporal_tuning.py --settings "" "lr=0.003" "hidden=16,weight_decay=1e-4"

A setting is ``field=value`` pairs of :class:`gseq.config.TemporalConfig` separated by commas (the empty string
is the defaults). The score of a setting is the geometric mean of its ratios over all cells (dataset x
protocol) and seeds; lower is better, 1 is the AR starting point.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gseq.config import TemporalConfig  # noqa: E402
from gseq.data import split_by_time  # noqa: E402
from gseq.models import LinearAR  # noqa: E402
from gseq.tasks.forecasting import load_signal, train_forecaster  # noqa: E402
from temporal_accuracy import PROTOCOLS  # noqa: E402  (the same two protocols as the accuracy table)


def parse_setting(text: str) -> dict:
    out = {}
    for pair in filter(None, text.split(",")):
        key, value = pair.split("=")
        field = TemporalConfig.__dataclass_fields__[key]
        parse = field.metadata["parse"] or {"bool": lambda t: t.lower() in ("1", "true"), "str": str,
                                            "int": int}.get(field.type.split(" ")[0], float)
        out[key] = parse(value)
    return out


def ar_val_mse(cfg: TemporalConfig) -> float:
    """The validation MSE of the AR model fitted on the fit snapshots (the forecaster's starting point)."""
    signal = load_signal(cfg)
    fit, val, _ = split_by_time(signal, cfg.train, cfg.val)
    n_fit, n_train = fit.num_steps, fit.num_steps + val.num_steps
    with torch.no_grad():
        pred = LinearAR.fit(signal.x[:n_fit], signal.y[:n_fit])(signal.x[n_fit:n_train])
    return float((pred - signal.y[n_fit:n_train]).pow(2).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="+", default=[""])
    p.add_argument("--datasets", nargs="+", default=["chickenpox", "pedalme", "england_covid"])
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    p.add_argument("--models", nargs="+", default=["gconv_gru"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scores = {}
    for text in args.settings:
        for model in args.models:
            ratios, t0 = [], time.time()
            cells = []
            for dataset in args.datasets:
                for protocol in args.protocols:
                    cfg = TemporalConfig(dataset=dataset, model=model, train=PROTOCOLS[protocol], progress=False,
                                         baselines=False, **parse_setting(text))
                    start = ar_val_mse(cfg)
                    vals = [train_forecaster(cfg.with_changes(seed=s))["metrics"]["best_val_mse"] for s in args.seeds]
                    ratios += [v / start for v in vals]
                    cells.append(f"{dataset} {protocol} {statistics.mean(vals) / start:.3f}")
            score = math.exp(statistics.mean(math.log(r) for r in ratios))
            scores[(text, model)] = score
            print(f"[{model} {text or 'defaults'}] val/AR-start {score:.4f} ({time.time() - t0:.0f} s): "
                  + "; ".join(cells), flush=True)
    best = min(scores, key=scores.get)
    print(f"lowest validation ratio: {best[1]} {best[0] or 'defaults'} ({scores[best]:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
