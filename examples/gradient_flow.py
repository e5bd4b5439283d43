"""
Gradient flow through time: RNN against LSTM
============================================

How much does the loss at the last step of a palindrome depend on the hidden state at step ``t``?
``gseq.analysis.hidden_grad_norms`` returns the batch-averaged norm of ``dL/dh_t`` for every ``t``,
measured here at initialisation and after a short training. At initialisation both cells' gradients
shrink as ``t`` moves away from the end (the original report noticed, to its surprise, that the LSTM's
shrink faster there); training is what opens the LSTM's path back to the first digit, through its
additive cell state.
"""

# %%
import argparse
import os
from pathlib import Path

import torch

from gseq.analysis import hidden_grad_norms
from gseq.data import palindromes
from gseq.models import SequenceClassifier
from gseq.plots import plot_grad_norms
from gseq.tasks import fit_palindrome

p = argparse.ArgumentParser(description="Gradient flow through time: RNN against LSTM")
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
p.add_argument("--length", type=int, default=30)
p.add_argument("--train-steps", type=int, default=200, help="steps of training before the second measure")
p.add_argument("--hidden", type=int, default=64)
args = p.parse_args()

x, y = palindromes(256, args.length, generator=torch.Generator().manual_seed(1))
rows = []
for cell in ("rnn", "lstm"):
    torch.manual_seed(0)
    model = SequenceClassifier(cell, args.hidden, input="onehot", forget_bias=1.0 if cell == "lstm" else 0.0)
    stages = {"init": hidden_grad_norms(model, x, y)}
    fit_palindrome(model, args.length, optimizer="adam", max_steps=args.train_steps, device="cpu")
    stages["trained"] = hidden_grad_norms(model, x, y)
    for stage, norms in stages.items():
        rows += [{"cell": cell, "stage": stage, "t": t + 1, "grad_norm": float(v)} for t, v in enumerate(norms)]
        print(f"{cell:4s} {stage:7s}: |dL/dh_1| = {float(norms[0]):.2e}, |dL/dh_T| = {float(norms[-1]):.2e}, "
              f"ratio {float(norms[0] / norms[-1]):.2e}")

# %%
figure = Path(args.out, "gradient_flow.png")
fig = plot_grad_norms(rows, title=f"T = {args.length}, one-hot input, xavier init, LSTM forget bias 1",
                      path=figure)
print(f"figure written to {figure.resolve()}")
