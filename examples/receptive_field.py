"""
Receptive fields and influence: what each extra layer buys
==========================================================

A k-layer GCN sees the nodes within k hops (its receptive field); on Cora that is most of the graph
after a handful of layers. Which of those nodes actually matter is measured by the influence
distribution of Xu et al. (2018): the share of the absolute Jacobian of a node's output that each input
node accounts for. As depth grows, the node's own share shrinks: over-smoothing. A larger self-loop
weight keeps more of it.
"""

# %%
import argparse
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from gseq.analysis import hop_table, influence_by_hop, receptive_field
from gseq.data import example_graph, planetoid
from gseq.models import GCNNet
from gseq.plots import save_figure

p = argparse.ArgumentParser(description='Receptive fields and influence: what each extra layer buys')
p.add_argument("--out", default=os.environ.get("GSEQ_EXAMPLES_OUT", "gseq-examples"), help="figure folder")
p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4, 8])
p.add_argument("--probes", type=int, default=10, help="nodes whose influence is measured")
args = p.parse_args()

# %%
# On the example graph the measured depth equals the shortest-path length for every ordered pair.
rows = hop_table(example_graph())
print(f"example graph: {sum(r['agree'] for r in rows)} of {len(rows)} pairs agree (C -> E: "
      f"{next(r['first_k'] for r in rows if (r['source'], r['target']) == ('C', 'E'))} layers)")

# %%
# On Cora: receptive-field size and the influence a node keeps on itself, for untrained GCNs.
data = planetoid("Cora")
probes = torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(0))[: args.probes].tolist()
results = {}
for w in (1.0, 4.0):
    for k in args.depths:
        torch.manual_seed(0)
        model = GCNNet(data.num_features, 7, num_layers=k, self_loop_weight=w, cached=True)
        self_share = sum(float(influence_by_hop(model, data, v, max_hops=k)[0]) for v in probes) / len(probes)
        rf = receptive_field(data, k, return_counts=True).float().mean().item() / data.num_nodes
        results[(w, k)] = (rf, self_share)
        print(f"w={w:g} depth {k:2d}: receptive field {100 * rf:5.1f}% of the nodes, self influence {self_share:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.8))
for w in (1.0, 4.0):
    ax.plot(args.depths, [results[(w, k)][1] for k in args.depths], marker="o", label=f"self influence, w={w:g}")
ax.plot(args.depths, [results[(1.0, k)][0] for k in args.depths], marker="s", color="grey", linestyle="--",
        label="receptive field (fraction of nodes)")
ax.set_xscale("log", base=2)
ax.set_xlabel("GCN layers")
ax.legend()
ax.grid(alpha=0.3)
ax.set_title("Cora: reach grows, a node's own share shrinks")
figure = Path(args.out, "receptive_field.png")
save_figure(fig, figure)
print(f"figure written to {figure.resolve()}")
