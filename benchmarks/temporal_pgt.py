"""gseq's recurrent graph cells against PyTorch Geometric Temporal (PGT): equality given the same
weights, and milliseconds per training epoch side by side in one process.

PGT is a benchmark peer, never a dependency: ``pip install --no-deps torch-geometric-temporal``. Its
package imports ``torch_sparse`` (absent here); this script imports PyG and gseq first, then puts the stub
in ``benchmarks/pgt_stub`` on ``sys.path`` and imports PGT (so PyG never sees a ``torch_sparse``).

    python benchmarks/temporal_pgt.py --check                      # equality with PGT's cells
    python benchmarks/temporal_pgt.py --speed chickenpox           # PGT's tutorial epoch, 20% train split
    python benchmarks/temporal_pgt.py --speed synthetic            # 100k nodes / 1M edges / T = 24
    python benchmarks/temporal_pgt.py --memory synthetic           # peak memory, one process per variant
    python benchmarks/temporal_pgt.py --recipe                     # PGT's tutorial training, PGT and gseq

An epoch is PGT's tutorial loop (``RecurrentGCN``: cell -> ReLU -> Linear; for each snapshot
``model(x, edge_index, edge_weight)`` with the state never carried, the loss averaged over snapshots,
one Adam step). ``gseq`` computes the same function in one call (the T snapshots as a batch of T signals
of length 1; the first epoch's loss is checked equal to PGT's); ``gseq-carried`` runs the snapshots as one
sequence with the state carried (a different model, what gseq's forecasting task trains). Every variant
starts from the same weights. Medians over interleaved rounds; ratios against PGT.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch_geometric  # noqa: F401  (imported before the torch_sparse stub goes on the path)
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gseq.data import lag_signal, split_by_time, synthetic_graph, temporal_dataset  # noqa: E402
from gseq.layers import GRAPH_CELLS, GraphSequence  # noqa: E402
from gseq.ops import CSR, spmm  # noqa: E402
from gseq.train import write_csv  # noqa: E402

CELLS = ("gconv_gru", "gconv_lstm", "tgcn", "dcrnn")


def import_pgt():
    sys.path.insert(0, str(Path(__file__).resolve().parent / "pgt_stub"))
    from torch_geometric_temporal.nn import recurrent
    return {"gconv_gru": recurrent.GConvGRU, "gconv_lstm": recurrent.GConvLSTM, "tgcn": recurrent.TGCN,
            "dcrnn": recurrent.DCRNN}


# ---------------------------------------------------------------- same weights
def make_pair(name: str, pgt_cells, in_channels: int, hidden: int, K: int = 2):
    """(PGT's cell, gseq's cell with PGT's weights); PGT's biases made non-zero first."""
    torch.manual_seed(0)
    theirs = pgt_cells[name](in_channels, hidden) if name == "tgcn" else pgt_cells[name](in_channels, hidden, K)
    with torch.no_grad():
        for n, p in theirs.named_parameters():
            if "bias" in n or n.startswith("b_"):
                p.add_(torch.randn_like(p) * 0.1)
    ours = GRAPH_CELLS[name](in_channels, hidden) if name == "tgcn" else GRAPH_CELLS[name](in_channels, hidden, K)
    with torch.no_grad():
        COPY[name](theirs, ours, in_channels, hidden, K)
    return theirs, ours


def _copy_cheb(theirs, ours, gates: list[tuple[str, str, str | None]], H: int, K: int) -> None:
    for g, (cx, ch, b) in enumerate(gates):
        rows = slice(g * H, (g + 1) * H)
        conv_x, conv_h = getattr(theirs, cx), getattr(theirs, ch)
        for k in range(K):
            ours.weight_ih[k, rows] = conv_x.lins[k].weight
            ours.weight_hh[k, rows] = conv_h.lins[k].weight
        ours.bias[rows] = conv_x.bias + conv_h.bias + (getattr(theirs, b).view(-1) if b else 0)


def copy_gconv_gru(theirs, ours, F, H, K):
    _copy_cheb(theirs, ours, [("conv_x_r", "conv_h_r", None), ("conv_x_z", "conv_h_z", None),
                              ("conv_x_h", "conv_h_h", None)], H, K)


def copy_gconv_lstm(theirs, ours, F, H, K):
    _copy_cheb(theirs, ours, [("conv_x_i", "conv_h_i", "b_i"), ("conv_x_f", "conv_h_f", "b_f"),
                              ("conv_x_c", "conv_h_c", "b_c"), ("conv_x_o", "conv_h_o", "b_o")], H, K)
    ours.weight_ci.copy_(theirs.w_c_i.view(-1)), ours.weight_cf.copy_(theirs.w_c_f.view(-1))
    ours.weight_co.copy_(theirs.w_c_o.view(-1))


def copy_tgcn(theirs, ours, F, H, K):
    convs = [theirs.conv_r, theirs.conv_z, theirs.conv_h]
    lins = [theirs.linear_r, theirs.linear_z, theirs.linear_h]
    ours.conv.lin.weight.copy_(torch.cat([c.lin.weight for c in convs]))
    ours.conv.bias.copy_(torch.cat([c.bias for c in convs]))
    for g, lin in enumerate(lins):
        rows = slice(g * H, (g + 1) * H)
        ours.weight_ih[0, rows] = lin.weight[:, :H]
        ours.weight_hh[0, rows] = lin.weight[:, H:]
        ours.bias[rows] = lin.bias


def copy_dcrnn(theirs, ours, F, H, K):
    for g, conv in enumerate([theirs.conv_x_r, theirs.conv_x_z, theirs.conv_x_h]):
        rows = slice(g * H, (g + 1) * H)
        W = conv.weight  # [direction, k, F + H, H], applied as X @ W
        supports = [W[0, 0] + W[1, 0]] + [W[0, k] for k in range(1, K)] + [W[1, k] for k in range(1, K)]
        for s, w in enumerate(supports):
            ours.weight_ih[s, rows] = w[:F].t()
            ours.weight_hh[s, rows] = w[F:].t()
        ours.bias[rows] = conv.bias


COPY = {"gconv_gru": copy_gconv_gru, "gconv_lstm": copy_gconv_lstm, "tgcn": copy_tgcn, "dcrnn": copy_dcrnn}


def check(pgt_cells, steps: int = 5) -> list[dict]:
    """Both cells over ``steps`` snapshots with the state carried: max |difference| of the states and of
    the gradient of a loss with respect to the inputs."""
    signal = temporal_dataset("chickenpox")
    g = torch.Generator().manual_seed(1)
    n = signal.num_nodes
    weighted = torch.unique(torch.randint(0, n, (2, 80), generator=g), dim=1)  # no duplicate edges (PGT's
    # DConv breaks on duplicates: to_dense_adj merges them, its reversed edge list is then shorter)
    graphs = {"chickenpox (unweighted, symmetric)": (signal.edge_index, None),
              "random directed, weighted": (weighted, torch.rand(weighted.size(1), generator=g) + 0.1),
              "random directed, unweighted": (weighted, None)}
    rows = []
    for name in CELLS:
        for gname, (ei, w) in graphs.items():
            theirs, ours = make_pair(name, pgt_cells, 4, 8)
            xs = signal.x[:steps].clone().requires_grad_(True)
            probe = torch.randn(steps, n, 8, generator=g)
            outs, grads = [], []
            for cell in (theirs, ours):
                state, hs = None, []
                for t in range(steps):
                    if name == "gconv_lstm":
                        h, c = cell(xs[t], ei, w, *(state or (None, None))) if cell is theirs else \
                            cell(xs[t], ei, w, state=state)
                        state = (h, c)
                    else:
                        h = cell(xs[t], ei, w, state) if cell is theirs else cell(xs[t], ei, w, state=state)
                        state = h
                    hs.append(h)
                hs = torch.stack(hs)
                (grad,) = torch.autograd.grad((hs * probe).sum(), xs)
                outs.append(hs), grads.append(grad)
            d_out = float((outs[0] - outs[1]).abs().max().detach())
            d_grad = float((grads[0] - grads[1]).abs().max())
            rows.append({"cell": name, "graph": gname, "max_abs_diff_states": d_out, "max_abs_diff_grad_x": d_grad})
            note = ""
            if d_out > 1e-4 and name == "dcrnn":  # where PGT's DConv departs from the paper (see gseq.layers.DCRNN)
                note = ("  (differs: PGT reads the backward walk's normalisation in the forward edges' order"
                        + (", and its messages ignore the weights)" if w is not None else ")"))
            print(f"{name:10s} {gname:36s} states {d_out:.2e}  grad x {d_grad:.2e}{note}")
    return rows


# ---------------------------------------------------------------- one training epoch
class PGTModel(nn.Module):
    """PGT's tutorial RecurrentGCN: cell -> ReLU -> Linear(hidden, 1)."""

    def __init__(self, cell, hidden):
        super().__init__()
        self.recurrent, self.linear = cell, nn.Linear(hidden, 1)

    def forward(self, x, edge_index, edge_weight):
        h = self.recurrent(x, edge_index, edge_weight)
        h = h[0] if isinstance(h, tuple) else h
        return self.linear(torch.relu(h))


class OursModel(nn.Module):
    def __init__(self, cell, head):
        super().__init__()
        self.sequence, self.head = GraphSequence(cell), head

    def forward(self, x, graphs):
        hs, _ = self.sequence(x, graphs)
        return self.head(torch.relu(hs))


def make_epochs(name, pgt_cells, signal, hidden, variants, K=2):
    """One closure per variant running one training epoch over ``signal`` (returns the loss)."""
    theirs, ours = make_pair(name, pgt_cells, signal.x.size(-1), hidden, K)
    head = nn.Linear(hidden, 1)
    x, y = signal.x, signal.y
    ei, w = signal.edge_index, signal.edge_weight
    epochs = {}
    if "pgt" in variants:
        pgt = PGTModel(theirs, hidden)
        pgt.linear.load_state_dict(head.state_dict())
        opt_p = torch.optim.Adam(pgt.parameters(), lr=0.01)

        def pgt_epoch():
            cost = 0
            for t in range(x.size(0)):
                y_hat = pgt(x[t], ei, w)
                cost = cost + torch.mean((y_hat - y[t]) ** 2)
            cost = cost / x.size(0)
            cost.backward()
            opt_p.step()
            opt_p.zero_grad()
            return float(cost)
        pgt_epoch.predict = lambda xs: torch.stack([pgt(xt, ei, w) for xt in xs])
        epochs["pgt"] = pgt_epoch
    for variant in ("gseq", "gseq-carried"):
        if variant not in variants:
            continue
        cell = GRAPH_CELLS[name](x.size(-1), hidden) if name == "tgcn" else GRAPH_CELLS[name](x.size(-1), hidden, K)
        cell.load_state_dict(ours.state_dict())
        model = OursModel(cell, nn.Linear(hidden, 1))
        model.head.load_state_dict(head.state_dict())
        graphs = model.sequence.graphs(ei, w, x.size(1))  # built once, as a user of gseq builds it
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        xin = x.unsqueeze(1) if variant == "gseq" else x  # [T, 1, N, F]: T signals of one step (PGT's function)
        yin = y.unsqueeze(1) if variant == "gseq" else y

        def our_epoch(model=model, opt=opt, xin=xin, yin=yin, graphs=graphs):
            loss = torch.mean((model(xin, graphs) - yin) ** 2)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return float(loss)
        our_epoch.predict = lambda xs, model=model, graphs=graphs: model(xs.unsqueeze(1), graphs).squeeze(1)
        epochs[variant] = our_epoch
    return epochs


def chickenpox_train():
    train, _, _ = split_by_time(temporal_dataset("chickenpox"), 0.2)  # PGT's tutorial split
    return train


def synthetic_signal(nodes: int, edges: int, steps: int, lags: int = 4, seed: int = 0):
    """``synthetic_graph`` with ~``edges`` directed edges and a diffusion process on it:
    s_{t+1} = 0.5 s_t + 0.45 P s_t + 0.1 noise, P the random walk (mean over in-neighbours)."""
    data = synthetic_graph(nodes, avg_degree=edges / nodes, num_features=1, seed=seed)
    ei = data.edge_index
    csr = CSR.from_edge_index(ei, num_nodes=nodes)
    deg = csr.row_counts().clamp(min=1).float().unsqueeze(1)
    g = torch.Generator().manual_seed(seed)
    s = [torch.randn(nodes, 1, generator=g)]
    for _ in range(steps + lags):
        s.append(0.5 * s[-1] + 0.45 * spmm(csr, s[-1]) / deg + 0.1 * torch.randn(nodes, 1, generator=g))
    series = torch.cat(s[1:], 1).t().contiguous()  # [steps + lags, N]
    return lag_signal(series, ei, None, lags)  # steps snapshots


def speed(args, pgt_cells) -> list[dict]:
    signal = chickenpox_train() if args.speed == "chickenpox" else synthetic_signal(args.nodes, args.edges, args.steps)
    E = signal.edge_index.size(1)
    print(f"{args.speed}: T = {signal.num_steps} snapshots, N = {signal.num_nodes}, E = {E}, F = {signal.x.size(2)}, "
          f"hidden {args.hidden}, threads {torch.get_num_threads()}, median of {args.rounds} rounds")
    rows = []
    for name in args.cells:
        variants = ["pgt", "gseq", "gseq-carried"]
        if name == "dcrnn" and signal.num_nodes ** 2 * 4 > args.dense_limit:
            print(f"{name:10s} pgt: not run: PGT's DConv builds the dense N x N adjacency (to_dense_adj), "
                  f"{signal.num_nodes ** 2 * 4 / 2**30:.0f} GiB")
            variants.remove("pgt")
        epochs = make_epochs(name, pgt_cells, signal, args.hidden, variants)
        first = {v: f() for v, f in epochs.items()} if args.warmup else {}  # warm-up, and the first epochs' losses
        if "pgt" in first:
            print(f"{name:10s} first-epoch loss: pgt {first['pgt']:.6f}  gseq {first['gseq']:.6f} "
                  f"(same function, same weights)")
        times = {v: [] for v in epochs}
        for _ in range(args.rounds):
            for v, f in epochs.items():
                t0 = time.perf_counter()
                f()
                times[v].append(time.perf_counter() - t0)
        med = {v: statistics.median(ts) for v, ts in times.items()}
        base = med.get("pgt")
        for v, t in med.items():
            ratio = base / t if base else float("nan")
            rows.append({"dataset": args.speed, "cell": name, "variant": v, "ms_per_epoch": round(t * 1e3, 2),
                         "speedup_vs_pgt": round(ratio, 2) if base else "", "threads": torch.get_num_threads(),
                         "hidden": args.hidden, "T": signal.num_steps, "N": signal.num_nodes, "E": E})
            print(f"{name:10s} {v:13s} {t * 1e3:10.1f} ms/epoch" + (f"  {ratio:6.1f}x faster than pgt" if base else ""))
    return rows


def recipe(args, pgt_cells) -> list[dict]:
    """PGT's tutorial recipe on chickenpox (the first 20% train, ``--epochs`` full-batch epochs) run by PGT
    and by gseq's equal function from the same weights: the test MSE of both (the state never carried,
    as the tutorial evaluates)."""
    signal = temporal_dataset("chickenpox")
    train, _, test = split_by_time(signal, 0.2)
    rows = []
    for name in args.cells:
        epochs = make_epochs(name, pgt_cells, train, args.hidden, ["pgt", "gseq"])
        for _ in range(args.epochs):
            for f in epochs.values():
                f()
        with torch.no_grad():
            mse = {v: float(torch.mean((f.predict(test.x) - test.y) ** 2)) for v, f in epochs.items()}
        rows.append({"cell": name, "epochs": args.epochs, **{f"test_mse_{v}": round(m, 4) for v, m in mse.items()}})
        print(f"{name:10s} after {args.epochs} epochs: test MSE pgt {mse['pgt']:.4f}, gseq {mse['gseq']:.4f}")
    return rows


def memory(args) -> list[dict]:
    """Peak resident memory of one training epoch per variant, each in a fresh process (the increase over
    the process's peak after the data and the models are built)."""
    rows = []
    for name in args.cells:
        for variant in ("pgt", "gseq", "gseq-carried"):
            if name == "dcrnn" and variant == "pgt" and args.nodes ** 2 * 4 > args.dense_limit:
                print(f"{name:10s} {variant:13s} not run (dense N x N adjacency)")
                continue
            cmd = [sys.executable, __file__, "--_one-epoch", name, variant, "--nodes", str(args.nodes), "--edges",
                   str(args.edges), "--steps", str(args.steps), "--hidden", str(args.hidden)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name:10s} {variant:13s} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"cell": name, "variant": variant, **r})
            print(f"{name:10s} {variant:13s} peak +{r['peak_mib']:8.0f} MiB over {r['base_mib']:.0f} MiB "
                  f"(one epoch {r['seconds']:.1f} s)")
    return rows


def one_epoch(name, variant, args) -> None:
    torch.set_num_threads(1)
    pgt_cells = import_pgt()
    signal = synthetic_signal(args.nodes, args.edges, args.steps)
    epochs = make_epochs(name, pgt_cells, signal, args.hidden, [variant])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    epochs[variant]()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak - base, "base_mib": base, "seconds": seconds}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="equality with PGT's cells given the same weights")
    p.add_argument("--speed", choices=["chickenpox", "synthetic"], help="ms per training epoch")
    p.add_argument("--memory", choices=["synthetic"], help="peak memory of one epoch, a process per variant")
    p.add_argument("--recipe", action="store_true", help="PGT's tutorial training on chickenpox by PGT and by gseq "
                   "from the same weights: both test MSEs")
    p.add_argument("--epochs", type=int, default=200, help="epochs of --recipe")
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, choices=[0, 1], help="one untimed epoch per variant first "
                   "(0 for the large graph, where an epoch of PGT takes minutes)")
    p.add_argument("--nodes", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dense-limit", type=float, default=4 * 2**30, help="bytes above which PGT's dense DConv is skipped")
    p.add_argument("--csv", default=None)
    p.add_argument("--_one-epoch", nargs=2, metavar=("CELL", "VARIANT"), dest="one_epoch", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one_epoch:
        one_epoch(*args.one_epoch, args)
        return 0
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    rows = []
    pgt_cells = import_pgt()
    if args.check:
        rows += check(pgt_cells)
    if args.speed:
        rows += speed(args, pgt_cells)
    if args.memory:
        rows += memory(args)
    if args.recipe:
        rows += recipe(args, pgt_cells)
    if args.csv and rows:
        write_csv(args.csv, rows)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
