"""
Message passing hop by hop on the 6-node graph
==============================================

The example graph of the GCN question in the original report: nodes A..F, edges A-B, A-E, A-F, B-C,
B-D, C-D, D-F, E-F. A GCN layer mixes each node with its neighbours, so after ``k`` layers a node has
heard from every node at most ``k`` hops away. We change C's input features and watch when E's output
starts to move: C and E are 3 hops apart, so it takes 3 layers.
"""

# %%
import argparse
import os
from pathlib import Path

import torch

from gseq.data import example_graph, hops
from gseq.layers import GCN
from gseq.plots import plot_hop_graph

p = argparse.ArgumentParser(description='Message passing hop by hop on the 6-node graph')
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
args = p.parse_args()
data = example_graph()
print("A + I (rows and columns A..F):")
adj = torch.eye(6)
adj[data.edge_index[0], data.edge_index[1]] = 1
for name, row in zip(data.node_names, adj.int().tolist()):
    print(f"  {name}: {' '.join(map(str, row))}")
print(f"hops(C, E) = {hops(data, 'C', 'E')}")

# %%
# A stack of k GCN layers (random weights, tanh between them): does E's output depend on C's input?
torch.manual_seed(0)
c, e = data.node_names.index("C"), data.node_names.index("E")
for k in range(1, 5):
    layers = [GCN(6, 6) for _ in range(k)]

    def run(x):
        for layer in layers:
            x = torch.tanh(layer(x, data.edge_index))
        return x

    x = data.x.clone()
    base = run(x)
    x[c] += 1.0  # change C's features
    moved = (run(x)[e] - base[e]).abs().max().item()
    print(f"k = {k}: E's output moved by {moved:.2e} -> {'reached' if moved > 0 else 'not reached'}")

# %%
# Nodes coloured by their distance from C, for k = 0..3 layers.
figure = Path(args.out, "six_node_graph.png")
fig = plot_hop_graph(data, "C", path=figure)
print(f"figure written to {figure.resolve()}")
