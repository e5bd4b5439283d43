"""
Palindromes: a vanilla RNN against an LSTM
==========================================

The task of the original report: read the first ``T - 1`` digits of a palindrome and predict the last
one, which equals the first. The model has to carry one digit across the whole sequence. Both cells are
written from their equations (``gseq.layers.RNNCell``, ``gseq.layers.LSTMCell``); each is trained
through the shared ``Trainer`` until it is perfect or runs out of steps. ``gseq palindrome sweep`` runs
the full length sweep over seeds; this example runs a small one.
"""

# %%
import argparse
import os
from pathlib import Path

from gseq.plots import plot_palindrome_sweep
from gseq.tasks import train_palindrome

p = argparse.ArgumentParser(description="Palindromes: a vanilla RNN against an LSTM")
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
p.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 15])
p.add_argument("--max-steps", type=int, default=300)
p.add_argument("--hidden", type=int, default=64)
args = p.parse_args()

rows = []
for cell in ("rnn", "lstm"):
    for length in args.lengths:
        r = train_palindrome(cell, length, input="onehot", hidden_size=args.hidden, optimizer="adam",
                             forget_bias=1.0, max_steps=args.max_steps, seed=0, device="cpu")
        rows.append({"cell": cell, "length": length, "seed": 0, "accuracy": r["accuracy"], "steps": r["steps"]})
        print(f"{cell:4s} T={length:2d}: accuracy {r['accuracy']:.3f} after {r['steps']} steps "
              f"({r['seconds']:.1f} s)")

# %%
# Accuracy against palindrome length (one seed here; the sweep in docs/recurrent.md has four).
figure = Path(args.out, "palindrome_rnn_vs_lstm.png")
plot_palindrome_sweep(rows, title=f"one-hot input, Adam, at most {args.max_steps} steps", path=figure)
print(f"figure written to {figure.resolve()}")
