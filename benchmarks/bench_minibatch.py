"""Mini-batch GCN training (sampled subgraphs, layer-wise evaluation) against full-batch training.

    python benchmarks/bench_minibatch.py cora                  # 10 seeds on Cora: full-batch, [10, 10], [25, 10]
    python benchmarks/bench_minibatch.py build                 # synthetic_graph(1M nodes, avg degree 10): seconds
    python benchmarks/bench_minibatch.py memory                # peak memory: 200k and 2M nodes, fresh processes
    python benchmarks/bench_minibatch.py synthetic             # accuracy on a 200k-node synthetic graph
    python benchmarks/bench_minibatch.py memory --nodes 200000 2000000 --full-batch 2000000 --steps 10

``cora``: :func:`gseq.tasks.train_node_classifier` (full-batch) and
:func:`gseq.tasks.train_node_classifier_minibatch` (batches of 1024 training seeds, shuffled, each the
seeds' sampled 2-hop neighbourhood; evaluated every epoch by exact layer-wise inference), Kipf &
Welling's settings otherwise (200 epochs, hidden 16, dropout 0.5, Adam 0.01, weight decay 5e-4 on the
first layer); mean and standard deviation of the test accuracy at the epoch of best validation accuracy.
Needs the real Cora under ``$GSEQ_DATA`` or the package cache.

``memory``: each measurement runs in a fresh process. It builds the synthetic graph (64 features, average
degree 10) and, for mini-batch training, the loader (its CSR), then resets the resident-set high-water
mark (``/proc/self/clear_refs``) and runs ``--steps`` training steps (forward, backward, Adam) of a
2-layer GCN (hidden 64): mini-batch with 1024 seeds and fan-out [15, 10], or full-batch. It prints the
graph's own storage (tensor bytes of ``x``, ``y``, masks, ``edge_index``, plus the loader's CSR), the
RSS after building it and the peak RSS growth during training, then, for mini-batch, the peak growth
of one layer-wise inference over all nodes. glibc is told to return freed memory
(``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``) so that the RSS tracks live memory.

``synthetic``: a 2-layer GCN (hidden 64) on ``synthetic_graph(N)`` (10% of nodes train, 10% validate,
80% test): full-batch and mini-batch ([10, 10], 1024 seeds), and logistic regression on the features
alone for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_spmm import _status_kb  # noqa: E402  (the VmRSS / VmHWM reader, Linux)

from gseq.data import synthetic_graph  # noqa: E402
from gseq.tasks import train_node_classifier, train_node_classifier_minibatch  # noqa: E402


def cora(args) -> None:
    from gseq.data import planetoid

    data = planetoid("Cora")
    runs = {"full-batch": {}}
    for fan in args.fan_outs:
        runs[f"mini-batch {args.batch_size}, [{fan}]"] = {"num_neighbors": [int(k) for k in fan.split(",")],
                                                         "batch_size": args.batch_size}
    print(f"Cora, {args.seeds} seeds, 2 layers, hidden 16, 200 epochs; test accuracy at the best validation epoch")
    base = None
    for name, extra in runs.items():
        start = time.perf_counter()
        accs = []
        for seed in range(args.seeds):
            if extra:
                r = train_node_classifier_minibatch(data, seed=seed, device="cpu", **extra)
            else:
                r = train_node_classifier(data, seed=seed, device="cpu")
            accs.append(100 * r["test_acc"])
        mean, std = statistics.fmean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0
        base = mean if base is None else base
        print(f"  {name:<28} {mean:6.2f} +- {std:4.2f} %   (vs full-batch {mean - base:+.2f} points; "
              f"{time.perf_counter() - start:6.1f} s for {args.seeds} seeds)", flush=True)


def build(args) -> None:
    for n in args.nodes or [1_000_000]:
        start = time.perf_counter()
        data = synthetic_graph(n, 10, 10, 64, seed=0)
        seconds = time.perf_counter() - start
        print(f"synthetic_graph({n:,}, avg_degree=10, num_classes=10, num_features=64): {seconds:.1f} s, "
              f"{data.edge_index.size(1):,} directed edges, largest degree "
              f"{int(torch.bincount(data.edge_index[1]).max()):,}")


def _reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_kb("VmRSS")


def _storage_mib(*tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None) / 2**20


def memory_child(n: int, mode: str, steps: int, hidden: int) -> dict:
    """Runs in a fresh process: peak RSS growth (MiB) of ``steps`` training steps beyond the graph."""
    import torch.nn.functional as F

    from gseq.loader import NeighborLoader
    from gseq.models import GCNNet

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    data = synthetic_graph(n, 10, 10, 64, seed=0)
    storage = [data.x, data.y, data.edge_index, data.train_mask, data.val_mask, data.test_mask]
    model = GCNNet(64, 10, hidden_channels=hidden, num_layers=2, dropout=0.5, cached=mode == "full")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    if mode == "mini":
        loader = NeighborLoader(data, [15, 10], input_nodes=data.train_mask, batch_size=1024, shuffle=True,
                                generator=torch.Generator().manual_seed(0))
        s = loader.sampler
        storage += [s.csr.indptr, s.csr.indices, s.perm, s._local]
        batches = (batch for _ in range(steps) for batch in loader)  # epochs, as many as the steps need
    after_build = _reset_peak()
    nodes = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        if mode == "mini":
            batch = next(batches)
            nodes.append(batch.num_nodes)
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
            loss = F.cross_entropy(out, batch.y[:batch.batch_size])
        else:
            out = model(data.x, data.edge_index)
            loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        opt.step()
        del out, loss
    train_peak = (_status_kb("VmHWM") - after_build) / 1024
    result = {"nodes": n, "mode": mode, "storage_mib": _storage_mib(*storage), "rss_after_build_mib": after_build / 1024,
              "train_peak_mib": train_peak, "batch_nodes": statistics.median(nodes) if nodes else n}
    if mode == "mini":
        base = _reset_peak()
        model.eval()
        model.inference(data, 4096)
        result["inference_peak_mib"] = (_status_kb("VmHWM") - base) / 1024
    return result


def memory(args) -> None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    jobs = [(n, "mini") for n in args.nodes or [200_000, 2_000_000]]
    jobs += [(n, "full") for n in (args.full_batch if args.full_batch is not None else [2_000_000])]
    print(f"2-layer GCN, hidden {args.hidden}, 64 features, avg degree 10; {args.steps} training steps per run; "
          "mini-batch: 1024 seeds, fan-out [15, 10]; MiB")
    print(f"{'nodes':>10} {'training':<11} {'graph storage':>13} {'RSS after build':>15} {'train peak':>11} "
          f"{'batch nodes':>11} {'inference peak':>14}")
    for n, mode in jobs:
        code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import bench_minibatch as b; "
                f"print(json.dumps(b.memory_child({n}, {mode!r}, {args.steps}, {args.hidden})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            print(f"{n:>10,} {mode}: the child failed:\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        inf = f"{r['inference_peak_mib']:14.1f}" if "inference_peak_mib" in r else f"{'-':>14}"
        print(f"{n:>10,} {'mini-batch' if mode == 'mini' else 'full-batch':<11} {r['storage_mib']:13.1f} "
              f"{r['rss_after_build_mib']:15.1f} {r['train_peak_mib']:11.1f} {r['batch_nodes']:11,.0f} {inf}",
              flush=True)
    print("train peak: growth of the resident-set high-water mark during training, beyond the graph; "
          "graph storage: x, y, masks, edge_index (+ the loader's CSR for mini-batch)")


def synthetic(args) -> None:
    from sklearn.linear_model import LogisticRegression

    n = (args.nodes or [200_000])[0]
    data = synthetic_graph(n, 10, 10, 64, seed=0)
    print(f"synthetic_graph({n:,}): {data.edge_index.size(1):,} directed edges, 10 classes, 64 features, "
          f"edge homophily {float((data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).float().mean()):.3f}")
    clf = LogisticRegression(max_iter=500).fit(data.x[data.train_mask].numpy(), data.y[data.train_mask].numpy())
    print(f"  logistic regression on the features alone: test accuracy "
          f"{100 * clf.score(data.x[data.test_mask].numpy(), data.y[data.test_mask].numpy()):.2f} %")
    common = dict(hidden_channels=64, dropout=0.5, weight_decay=5e-4, device="cpu", seed=0)
    start = time.perf_counter()
    r = train_node_classifier(data, epochs=args.full_epochs, **common)
    print(f"  full-batch GCN, {args.full_epochs} epochs: test accuracy {100 * r['test_acc']:.2f} % "
          f"(best epoch {r['best_epoch']}, {time.perf_counter() - start:.0f} s)", flush=True)
    start = time.perf_counter()
    r = train_node_classifier_minibatch(data, num_neighbors=[10, 10], batch_size=1024, epochs=args.mini_epochs,
                                        **common)
    print(f"  mini-batch GCN, 1024 seeds, [10, 10], {args.mini_epochs} epochs: test accuracy "
          f"{100 * r['test_acc']:.2f} % (best epoch {r['best_epoch']}, {time.perf_counter() - start:.0f} s)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("part", choices=["cora", "build", "memory", "synthetic"], help="what to measure")
    p.add_argument("--seeds", type=int, default=10, help="cora: seeds (default: 10)")
    p.add_argument("--fan-outs", nargs="+", default=["10,10", "25,10"], help="cora: fan-outs (default: 10,10 25,10)")
    p.add_argument("--batch-size", type=int, default=1024, help="cora: seeds per batch (default: 1024)")
    p.add_argument("--nodes", type=int, nargs="+", default=None,
                   help="graph sizes (default: build 1000000; memory 200000 2000000; synthetic 200000)")
    p.add_argument("--full-batch", type=int, nargs="*", default=None,
                   help="memory: sizes to also train full-batch (default: 2000000)")
    p.add_argument("--steps", type=int, default=10, help="memory: training steps per run (default: 10)")
    p.add_argument("--hidden", type=int, default=64, help="memory: hidden channels (default: 64)")
    p.add_argument("--full-epochs", type=int, default=100, help="synthetic: full-batch epochs (default: 100)")
    p.add_argument("--mini-epochs", type=int, default=10, help="synthetic: mini-batch epochs (default: 10)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    print(f"torch {torch.__version__}, CPU, 1 thread")
    {"cora": cora, "build": build, "memory": memory, "synthetic": synthetic}[args.part](args)


if __name__ == "__main__":
    main()
