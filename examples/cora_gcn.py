"""
Node classification on Cora with a GCN
======================================

Kipf & Welling's setting: 2 layers, 16 hidden units, dropout 0.5, Adam (lr 0.01, weight decay 5e-4 on
the first layer), row-normalised features, the public split (140 training nodes). The test accuracy is
read at the epoch of best validation accuracy. ``gseq gcn --seeds 10`` runs the same over ten seeds.
"""

# %%
import argparse
import os
from pathlib import Path

from gseq.data import planetoid
from gseq.plots import plot_history
from gseq.tasks import train_node_classifier

p = argparse.ArgumentParser(description='Node classification on Cora with a GCN')
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
p.add_argument("--epochs", type=int, default=200)
p.add_argument("--self-loop-weight", default="1.0", help="a number >= 0 or 'learn'")
args = p.parse_args()
w = args.self_loop_weight if args.self_loop_weight == "learn" else float(args.self_loop_weight)

data = planetoid("Cora")
print(data)
result = train_node_classifier(data, epochs=args.epochs, self_loop_weight=w, seed=0, device="cpu")
print(f"test accuracy {result['test_acc']:.4f} at epoch {result['best_epoch']} (best validation "
      f"{result['val_acc']:.4f}); self-loop weights {[round(v, 3) for v in result['self_loop_weights']]}; "
      f"{result['seconds']:.1f} s")

# %%
# Loss and accuracies over the epochs.
figure = Path(args.out, "cora_gcn.png")
fig = plot_history(result["history"], loss_keys=["loss", "val_loss"], metric_keys=["train_acc", "val_acc", "test_acc"],
                   x="epoch", title="GCN on Cora", path=figure)
print(f"figure written to {figure.resolve()}")
