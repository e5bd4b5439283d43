"""
Character-level text generation with an LSTM
============================================

A 2-layer ``nn.LSTM`` learns Grimms' Fairy Tales one character at a time (the report's preprocessing:
letters, digits and spaces, lower-case), then writes text. The temperature ``T`` divides the logits
before the softmax: ``T -> 0`` is greedy, ``T = 1`` samples the model's distribution, larger ``T``
flattens it. The original report wrote ``softmax(tau * x)``: the same thing with ``tau = 1 / T``.
A couple of minutes of training (``--steps 3000``) already spells words; the default is kept short.
"""

# %%
import argparse
import os
from pathlib import Path

import torch

from gseq.models import generate
from gseq.plots import plot_history
from gseq.tasks import train_char_lstm

p = argparse.ArgumentParser(description='Character-level text generation with an LSTM')
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
p.add_argument("--file", default="book_EN_grimms_fairy_tails.txt", help="a file in $GSEQ_DATA/text, or a path")
p.add_argument("--steps", type=int, default=250)
p.add_argument("--hidden", type=int, default=128)
args = p.parse_args()

run = train_char_lstm(args.file, steps=args.steps, preprocess=True, hidden_size=args.hidden, eval_every=100,
                      sample_every=None, checkpoint_every=None, progress=False, device="cpu", seed=0)
model, vocab = run["model"], run["vocab"]
last = run["trainer"].history[-1]
print(f"{args.steps} steps, {len(vocab)} characters: train loss {last['loss']:.3f}, held-out loss "
      f"{last['val_loss']:.3f} nats/char, accuracy {last['val_acc']:.3f}")

# %%
# Samples from the prompt "the king", at several temperatures (tau = 1/T in the report's notation).
g = torch.Generator().manual_seed(0)
for temperature in (0.0, 0.5, 1.0, 2.0):
    text = generate(model, vocab, prompt="the king", length=80, temperature=temperature, generator=g)[0]
    tau = "greedy" if temperature == 0 else f"tau {1 / temperature:g}"
    print(f"T = {temperature:<4} ({tau}): the king{text}")

# %%
figure = Path(args.out, "text_generation.png")
fig = plot_history(run["trainer"].history, loss_keys=["loss", "val_loss"], metric_keys=["val_acc"],
                   title="character LSTM on Grimms' Fairy Tales", path=figure)
print(f"figure written to {figure.resolve()}")
