"""A 64-layer GCNII training epoch on Cora: ``gseq.layers.GCN2`` against PyG's ``GCN2Conv`` in the same model.

    python benchmarks/bench_gcn2.py                      # 64 layers, CPU, one thread
    python benchmarks/bench_gcn2.py --layers 16 --rounds 5

One training epoch is ``zero_grad -> forward -> NLL loss on the training nodes -> backward -> Adam step``
(full batch, dropout on, GCNII's settings: hidden 64, alpha 0.1, theta 0.5, dropout 0.6). Variants, all
built after the same seed and checked to give the same eval-mode logits before timing:

- ``pyg adj_t``: PyG's ``examples/gcn2_cora.py`` model as published: ``GCN2Conv(normalize=False)`` on
  the ``adj_t`` of ``T.GCNNorm()`` and ``T.ToSparseTensor()`` (a torch sparse CSR matrix). The baseline.
- ``pyg edge_index``: the same model, ``GCN2Conv(cached=True)`` on ``edge_index`` (message passing).
- ``gseq GCN2 adj_t``: the example's model and input with ``from gseq.layers import GCN2 as GCN2Conv``:
  the import swapped, nothing else (``normalize=False`` on ``adj_t``).
- ``gseq GCN2``: the same model with ``from gseq.layers import GCN2 as GCN2Conv``, ``cached=True`` on
  ``edge_index``: the layer swapped.
- ``gseq GCNII``: :class:`gseq.models.GCNII` (the same parameters and the same math, plus what the model
  does beside the layer: one graph for all layers, the bag-of-words input as a sparse matrix, dropout drawn
  as one uniform per element).

The variants run interleaved round by round in one process (``torch.utils.benchmark``, one thread by
default); printed: the median seconds per epoch and the speed-up over ``pyg adj_t``. With ``--eval`` an
epoch is the example's: the training step, then one evaluation forward under ``no_grad``; with
``--forward`` only that evaluation forward is timed.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_spmm import time_interleaved  # noqa: E402


class Net(torch.nn.Module):
    """The model of PyG's examples/gcn2_cora.py, with the layer class and its arguments as parameters."""

    def __init__(self, conv, in_channels, out_channels, layers, **conv_kwargs):
        super().__init__()
        self.lins = torch.nn.ModuleList([torch.nn.Linear(in_channels, 64), torch.nn.Linear(64, out_channels)])
        self.convs = torch.nn.ModuleList(conv(64, 0.1, 0.5, i + 1, True, **conv_kwargs) for i in range(layers))

    def forward(self, x, adj):
        x = F.dropout(x, 0.6, training=self.training)
        x = x_0 = self.lins[0](x).relu()
        for conv in self.convs:
            x = F.dropout(x, 0.6, training=self.training)
            x = conv(x, x_0, adj).relu()
        x = F.dropout(x, 0.6, training=self.training)
        return self.lins[1](x).log_softmax(dim=-1)


def epoch_fn(model, x, graph, data, evaluate=False):
    optimizer = torch.optim.Adam([dict(params=model.convs.parameters(), weight_decay=0.01),
                                  dict(params=model.lins.parameters(), weight_decay=5e-4)], lr=0.01)

    def epoch():
        model.train()
        optimizer.zero_grad()
        out = model(x, graph)
        F.nll_loss(out[data.train_mask], data.y[data.train_mask]).backward()
        optimizer.step()
        if evaluate:  # the example's test(): eval mode, no_grad
            model.eval()
            with torch.no_grad():
                model(x, graph)
    return epoch


def forward_fn(model, x, graph):
    def forward():
        model.eval()
        with torch.no_grad():
            model(x, graph)
    return forward


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=64)
    p.add_argument("--rounds", type=int, default=7, help="timing rounds, interleaved (default: 7)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval", action="store_true", help="an epoch also evaluates once under no_grad, as the example's")
    p.add_argument("--forward", action="store_true", help="time only the evaluation forward (eval mode, no_grad)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*Sparse CSR tensor support is in beta.*")
    warnings.filterwarnings("ignore", ".*Sparse invariant checks are implicitly disabled.*")

    import torch_geometric.transforms as T
    from torch_geometric.nn import GCN2Conv

    from gseq.data import planetoid
    from gseq.layers import GCN2
    from gseq.models import GCNII, sparse_features

    data = planetoid("Cora")  # $GSEQ_DATA, the cache, or the copy shipped with gseq; features row-normalised
    adj_t = T.Compose([T.GCNNorm(), T.ToSparseTensor()])(data.clone()).adj_t
    f_in, classes = data.num_features, int(data.y.max()) + 1
    models = {}
    for name, conv, kwargs, graph in [("pyg adj_t", GCN2Conv, {"normalize": False}, adj_t),
                                      ("pyg edge_index", GCN2Conv, {"cached": True}, data.edge_index),
                                      ("gseq GCN2 adj_t", GCN2, {"normalize": False}, adj_t),
                                      ("gseq GCN2", GCN2, {"cached": True}, data.edge_index)]:
        torch.manual_seed(0)
        models[name] = (Net(conv, f_in, classes, args.layers, **kwargs), data.x, graph)
    torch.manual_seed(0)
    gcnii = GCNII(f_in, classes, num_layers=args.layers, cached=True)
    gcnii.load_state_dict(models["pyg adj_t"][0].state_dict())
    models["gseq GCNII"] = (gcnii, sparse_features(data.x), data.edge_index)

    with torch.no_grad():  # same weights -> same eval-mode logits
        ref = None
        for name, (model, x, graph) in models.items():
            model.eval()
            out = model(x, graph).log_softmax(dim=-1)
            ref = out if ref is None else ref
            err = float((out - ref).abs().max())
            print(f"{name:>16}: eval logits max |diff| to pyg adj_t {err:.2e}")
            assert err < 1e-4, f"{name} does not compute the same model"

    fns = {name: forward_fn(model, x, graph) if args.forward else epoch_fn(model, x, graph, data, args.eval)
           for name, (model, x, graph) in models.items()}
    times = time_interleaved(fns, rounds=args.rounds, number=1, threads=args.threads)
    base = times["pyg adj_t"]
    what = ("one evaluation forward" if args.forward else
            "one training step and one evaluation" if args.eval else "one training epoch")
    print(f"\nCora, {args.layers} layers, {what}, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'variant':>16} {'s / epoch':>10} {'vs pyg adj_t':>13}")
    for name, t in times.items():
        print(f"{name:>16} {t:10.3f} {base / t:12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
