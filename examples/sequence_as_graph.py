"""
A sequence is a directed path graph: palindromes for an LSTM and for a GCN
==========================================================================

The original report ends by contrasting RNNs, for data with a clear direction, with graph networks, for
data without one. The two meet on a path: a length-``T`` sequence is the directed graph
``0 -> 1 -> ... -> T-1``, and a GCN on it reads the sequence one hop per layer. Each palindrome becomes
such a graph (one node per digit, one-hot features, the last digit's node left blank: it is the one to
predict) and the GCN's answer is read at the last node, ``T - 1`` hops from the first digit it must
recall. So a GCN needs at least ``T - 1`` layers (its receptive field); an LSTM carries the digit in its
state whatever ``T`` is. ``python benchmarks/sequence_as_graph.py`` runs the fuller study over seeds.
"""

# %%
import argparse
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from gseq.analysis import influence
from gseq.data import palindrome_graphs, palindromes
from gseq.models import GCNNet
from gseq.plots import save_figure
from gseq.tasks import train_palindrome, train_palindrome_gcn

p = argparse.ArgumentParser(description="A sequence is a directed path graph: palindromes for an LSTM and a GCN")
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
p.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 15], help="palindrome lengths T")
p.add_argument("--depths", type=int, nargs="+", default=[4, 9, 14], help="GCN depths (layers)")
p.add_argument("--self-loop-weights", type=float, nargs="+", default=[0.1, 1.0],
               help="w of the GCN layers (1 is Kipf & Welling's)")
p.add_argument("--max-steps", type=int, default=300)
p.add_argument("--hidden", type=int, default=32, help="GCN hidden channels")
p.add_argument("--lstm-hidden", type=int, default=64)
args = p.parse_args()
# tiny models train fastest on one thread (as gseq.analysis.run_grid runs them); restored at the end
threads = torch.get_num_threads()
torch.set_num_threads(1)

# %%
# One palindrome as a graph: ``T`` nodes, edges ``t -> t+1``, the last node blank.
digits, target = palindromes(1, 6, generator=torch.Generator().manual_seed(0))
g = palindrome_graphs(digits, target)
print(f"palindrome {digits[0].tolist()} + [{int(target[0])}] -> {g.num_nodes} nodes, edges {g.edge_index.tolist()}")

# %%
# Before any training: how much does the first digit weigh in the last node's output? The Jacobian
# influence (as in the receptive-field benchmark, ``benchmarks/hops.py``) of a linear GCN depends only on
# the graph and the self-loop weight ``w``. It is exactly 0 below ``T - 1`` layers. At ``T - 1`` layers it is
# tiny with Kipf's ``w = 1``: every layer averages a node with its predecessor, so the first digit's
# weight halves with every hop. A light self-loop (``w = 0.1``) makes a layer nearly a shift along the
# path, and the digit arrives almost whole.
T = 10
graph = palindrome_graphs(*palindromes(1, T, generator=torch.Generator().manual_seed(1))).get_example(0)
for w in args.self_loop_weights:
    shares = []
    for k in (T - 2, T - 1):
        model = GCNNet(10, 10, hidden_channels=16, num_layers=k, dropout=0.0, self_loop_weight=w, act="identity")
        shares.append(float(influence(model, graph, T - 1)[0]))
    print(f"T={T}, w={w:g}: share of the first digit in the last node's influence: {shares[0]:.2g} with "
          f"{T - 2} layers, {shares[1]:.2g} with {T - 1}")

# %%
# Training: the LSTM on the digit sequence, GCNs of several depths and self-loop weights on the path
# graphs of the same palindromes, all through gseq's ``Trainer`` (Adam, batch 128, stop at accuracy 1 on
# fresh palindromes or after ``--max-steps``; the accuracy printed is on 2048 further ones).
rows = []
for length in args.lengths:
    r = train_palindrome("lstm", length, input="onehot", hidden_size=args.lstm_hidden, optimizer="adam",
                         forget_bias=1.0, max_steps=args.max_steps, seed=0, device="cpu")
    rows.append(("LSTM", None, None, length, r["accuracy"]))
    print(f"T={length:2d} LSTM                : accuracy {r['accuracy']:.3f} after {r['steps']:3d} steps")
    for w in args.self_loop_weights:
        for k in args.depths:
            r = train_palindrome_gcn(length, k, hidden_channels=args.hidden, self_loop_weight=w,
                                     max_steps=args.max_steps, seed=0, device="cpu")
            rows.append((f"GCN, {k} layers, w={w:g}", k, w, length, r["accuracy"]))
            sees = "sees" if k >= length - 1 else "cannot see"
            print(f"T={length:2d} GCN {k:2d} layers, w={w:<3g}: accuracy {r['accuracy']:.3f} after {r['steps']:3d} "
                  f"steps ({sees} the first digit)")

# %%
# Accuracy against palindrome length. With ``w = 0.1`` each GCN is perfect while ``T - 1`` is within its
# depth and at chance (0.1) beyond it; with ``w = 1`` depth is not enough once the first digit's weight
# has been halved ``T - 1`` times. The LSTM does not care how far back the digit is. Colour tells the
# self-loop weight, line style and marker the depth; the LSTM is the thick black line drawn on top.
fig, ax = plt.subplots(figsize=(6.4, 4.2))
styles, markers = ("-", "--", ":", "-."), ("o", "s", "^", "D", "v")
for name, k, w in dict.fromkeys(r[:3] for r in rows):
    runs = [(length, acc) for n, _, _, length, acc in rows if n == name]
    if k is None:
        style = {"color": "black", "lw": 3, "marker": "*", "markersize": 12, "zorder": 5}
    else:
        i = args.depths.index(k)
        style = {"color": f"C{args.self_loop_weights.index(w)}", "ls": styles[i % len(styles)],
                 "marker": markers[i % len(markers)], "lw": 1.5, "alpha": 0.85}
    ax.plot(*zip(*runs), label=name, **style)
for i, k in enumerate(args.depths):
    ax.axvline(k + 1, color="grey", ls=styles[i % len(styles)], lw=0.8)  # the longest within reach: T - 1 = k
ax.axhline(0.1, color="grey", lw=0.8, label="chance (0.1)")
ax.set_xlabel("palindrome length T (grey lines: T = layers + 1, in the depth's line style)")
ax.set_ylabel("accuracy on fresh palindromes")
ax.set_ylim(0, 1.05)
ax.grid(alpha=0.3)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)  # beside the plot: no line hidden
ax.set_title(f"LSTM vs GCN on the directed path ({args.max_steps} steps at most, one seed)", fontsize=9)
figure = Path(args.out, "sequence_as_graph.png")
save_figure(fig, figure)
print(f"figure written to {figure.resolve()}")
torch.set_num_threads(threads)
