"""
Forecasting chickenpox cases with a recurrent graph cell
========================================================

Weekly chickenpox cases in the 20 counties of Hungary (shipped with gseq) form a signal on the county
graph. A ``GConvGRU`` (a GRU whose products are Chebyshev graph convolutions) reads four weeks of lags
at every county and forecasts the next week, its state carried from week to week. The task trains it
through the shared Trainer (truncated backpropagation through time, early stopping) and reports it
beside the linear autoregressive baseline and the same model without the graph.
"""

# %%
import argparse
import os
from pathlib import Path

import torch

from gseq.plots import plot_forecast
from gseq.tasks import train_forecaster

p = argparse.ArgumentParser(description="Forecasting chickenpox cases with a recurrent graph cell")
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
p.add_argument("--epochs", type=int, default=30)
p.add_argument("--hidden", type=int, default=32)
args = p.parse_args()
torch.set_num_threads(1)

run = train_forecaster("chickenpox", model="gconv_gru", epochs=args.epochs, hidden=args.hidden, progress=False,
                       device="cpu", seed=0)
m, b = run["metrics"], run["baselines"]
print(f"split {run['split']}; test MSE: gconv_gru {m['test_mse']:.4f}, linear AR {b['ar']['test_mse']:.4f}, "
      f"without the graph {b['no_graph']['test_mse']:.4f}")

# %%
# One-step forecasts of the first four counties over the test weeks.
n_test = run["split"]["test"]
truth = run["signal"].y[-n_test:, :4, 0]
figure = Path(args.out, "temporal_forecasting.png")
fig = plot_forecast(truth, {"gconv_gru": run["predictions"][-n_test:, :4, 0]}, [0, 1, 2, 3],
                    title="chickenpox, one week ahead", path=figure)
print(f"figure written to {figure.resolve()}")
