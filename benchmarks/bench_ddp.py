"""Data-parallel throughput: the same training step on 1 process and on N processes (torch.distributed).

    python benchmarks/bench_ddp.py                       # CPU: gloo, 1 vs 2 processes, one thread each
    python benchmarks/bench_ddp.py --nproc 1 2 4 --device cuda     # GPUs: NCCL, one GPU per process
    python benchmarks/bench_ddp.py --steps 100 --workloads gcn --csv /tmp/ddp.csv

Each process count runs under ``torchrun`` (``python -m torch.distributed.run``) as a user would launch it:
every rank builds the same workload, :class:`gseq.train.Trainer` creates the process group and wraps the
model in ``DistributedDataParallel``, and rank 0 reports the time of the steps after a warm-up. The batch
per process is fixed (weak scaling), so throughput counts samples over all processes:

- ``gcn``: mini-batch GCN (2 layers, hidden 64) on a ``synthetic_graph`` of 50,000 nodes, 1024 seed nodes
  per process with fan-out [10, 10] (:class:`gseq.loader.NeighborLoader`, seeds split across ranks);
  samples are seed nodes;
- ``text``: the character LSTM (2 x 128, ``nn.LSTM``) on windows of 30 characters of the shipped book,
  64 windows per process; samples are windows.

It prints, per workload, steps/s and samples/s for each process count, the speed-up over one process and
the scaling efficiency (speed-up / processes). On the CPU the processes share the machine's cores: with
more processes than free cores the efficiency says more about the machine than about DDP.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

WORKLOADS = ("gcn", "text")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- the worker (one rank)
def build(workload: str, device: str):
    """``(model, loss_fn, data, samples_per_step_per_rank)`` for ``workload``."""
    import torch
    import torch.nn.functional as F

    if workload == "gcn":
        from gseq.data import synthetic_graph
        from gseq.loader import NeighborLoader
        from gseq.models import GCNNet

        graph = synthetic_graph(50_000, 10, 10, 64, seed=0)
        gen = torch.Generator().manual_seed(0)
        loader = NeighborLoader(graph, [10, 10], input_nodes=graph.train_mask, batch_size=1024, shuffle=True,
                                generator=gen)
        model = GCNNet(graph.num_features, 10, hidden_channels=64)

        def loss_fn(m, batch):
            out = m(batch.x, batch.edge_index)[:batch.batch_size]
            return F.cross_entropy(out, batch.y[:batch.batch_size])

        return model, loss_fn, loader, 1024
    if workload == "text":
        from gseq.data import BUNDLED_BOOK, CharVocab, load_text, window_sampler
        from gseq.models import CharLSTM, char_lm_loss

        text = load_text(BUNDLED_BOOK)
        vocab = CharVocab.from_text(text)
        sampler = window_sampler(vocab.encode(text), seq_length=30, batch_size=64)
        torch.manual_seed(0)
        return CharLSTM(len(vocab), hidden_size=128, num_layers=2), char_lm_loss, sampler, 64
    raise ValueError(f"workload: unknown {workload!r}; choose from {WORKLOADS}")


def worker(workload: str, device: str, warmup: int, steps: int, out: Path) -> None:
    import torch

    from gseq.train import Trainer, launched_env

    torch.set_num_threads(1)
    model, loss_fn, data, per_rank = build(workload, device)
    marks: dict[int, float] = {}

    class Clock:
        def on_step_end(self, trainer, step, logs):
            if step in (warmup, warmup + steps):
                if trainer.device.type == "cuda":
                    torch.cuda.synchronize(trainer.device)
                marks[step] = time.perf_counter()

    trainer = Trainer(model, lr=1e-3, max_steps=warmup + steps, seed=0, device=device, progress=False,
                      callbacks=[Clock()], eval_every=warmup + steps)
    trainer.fit(loss_fn, data)
    env = launched_env()
    if env is None or env.rank == 0:
        seconds = marks[warmup + steps] - marks[warmup]
        world = env.world_size if env else 1
        out.write_text(json.dumps({"workload": workload, "processes": world, "steps": steps, "seconds": seconds,
                                   "samples": steps * per_rank * world, "device": str(trainer.device)}))


# ---------------------------------------------------------------------- the driver
def launch(workload: str, nproc: int, args) -> dict:
    out = Path(args.tmp) / f"{workload}_{nproc}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port",
           str(_free_port()), str(Path(__file__).resolve()), "--worker", workload, "--device", args.device,
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE.parent),
                                                                            os.environ.get("PYTHONPATH", "")]))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL if not args.verbose else None,
                   stderr=subprocess.STDOUT if not args.verbose else None)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    p.add_argument("--nproc", nargs="+", type=int, default=[1, 2], help="process counts (default: 1 2)")
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL) (default: cpu)")
    p.add_argument("--warmup", type=int, default=5, help="steps before the clock starts (default: 5)")
    p.add_argument("--steps", type=int, default=30, help="timed steps (default: 30)")
    p.add_argument("--csv", default=None, help="also write the table here")
    p.add_argument("--verbose", action="store_true", help="show the workers' output")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.device, args.warmup, args.steps, Path(args.out))
        return 0
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for workload in args.workloads:
            base = None
            for n in args.nproc:
                r = launch(workload, n, args)
                r["steps_per_s"] = r["steps"] / r["seconds"]
                r["samples_per_s"] = r["samples"] / r["seconds"]
                base = base or (r if n == 1 else None)
                r["speedup"] = r["samples_per_s"] / base["samples_per_s"] if base else float("nan")
                r["efficiency"] = r["speedup"] / n if base else float("nan")
                rows.append(r)
                print(f"{workload:5s} {n} process(es) on {r['device']}: {r['steps_per_s']:7.2f} steps/s "
                      f"{r['samples_per_s']:10.1f} samples/s  speed-up {r['speedup']:.2f}x  "
                      f"efficiency {100 * r['efficiency']:.0f}%", flush=True)
    if args.csv:
        from gseq.io import write_csv

        write_csv(Path(args.csv), rows)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
