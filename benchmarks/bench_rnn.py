"""Training-step speed of the hand-written LSTM/RNN against ``torch.nn.LSTM`` / ``torch.nn.RNN``.

One training step = forward over the sequence, cross-entropy on the last hidden state through a
linear read-out, backward, gradient clipping and an RMSprop step: what ``gseq palindrome train`` does.
All variants are timed side by side in one process, interleaved round by round (so a busy machine
slows them alike), with the same weights and the same batch; the script prints the median time per
step and the ratio to torch's module, and writes the table as CSV.

    python benchmarks/bench_rnn.py                         # CPU, 1 thread, T = 10 30 100
    python benchmarks/bench_rnn.py --threads 1 2 --cells lstm rnn --csv /tmp/bench_rnn.csv
    python benchmarks/bench_rnn.py --device cuda           # where a GPU is present

Variants: ``torch`` (``nn.LSTM``/``nn.RNN``, oneDNN/cuDNN kernels), ``gseq-fused`` (the default fast
path of :class:`gseq.layers.LSTM`), ``gseq-reference`` (``fused=False``: the per-step cell equations).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.layers import LSTM, RNN  # noqa: E402
from gseq.train import write_csv  # noqa: E402


def make_variants(cell: str, input_size: int, hidden: int, device: torch.device, reference: bool):
    torch.manual_seed(0)
    ours = (LSTM if cell == "lstm" else RNN)(input_size, hidden).to(device)
    ref_mod = (nn.LSTM if cell == "lstm" else nn.RNN)(input_size, hidden, batch_first=True).to(device)
    with torch.no_grad():  # same weights everywhere
        ref_mod.weight_ih_l0.copy_(ours.cell.weight_ih)
        ref_mod.weight_hh_l0.copy_(ours.cell.weight_hh)
        ref_mod.bias_ih_l0.copy_(ours.cell.bias_ih)
        ref_mod.bias_hh_l0.copy_(ours.cell.bias_hh)

    def last_hidden_torch(x):
        return ref_mod(x)[0][:, -1]

    def last_hidden_ours(x):
        return ours(x)[0][:, -1]

    variants = {"torch": (ref_mod, last_hidden_torch), "gseq-fused": (ours, last_hidden_ours)}
    if reference:
        slow = (LSTM if cell == "lstm" else RNN)(input_size, hidden, fused=False).to(device)
        slow.load_state_dict(ours.state_dict())
        variants["gseq-reference"] = (slow, lambda x: slow(x)[0][:, -1])
    steps = {}
    for name, (module, last_hidden) in variants.items():
        head = nn.Linear(hidden, 10).to(device)
        params = list(module.parameters()) + list(head.parameters())
        opt = torch.optim.RMSprop(params, lr=1e-3)

        def step(x, y, last_hidden=last_hidden, head=head, params=params, opt=opt):
            loss = nn.functional.cross_entropy(head(last_hidden(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            return loss

        steps[name] = step
    return steps


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(steps, x, y, device, rounds: int, per_round: int, warmup: int) -> dict[str, float]:
    for step in steps.values():
        for _ in range(warmup):
            step(x, y)
    sync(device)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(per_round):
                step(x, y)
            sync(device)
            times[name].append((time.perf_counter() - t0) / per_round)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="+", default=["lstm"], choices=["lstm", "rnn"])
    p.add_argument("--lengths", nargs="+", type=int, default=[10, 30, 100])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--input-size", type=int, default=10, help="10 = one-hot palindrome digits (default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch CPU threads, one table each (default 1)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-reference", action="store_true", help="skip the slow per-step reference path")
    p.add_argument("--csv", default=None, help="write the table here")
    p.add_argument("--quick", action="store_true",
                   help="seconds: T = 10, batch 8, hidden 16, one round (gpu_check --dry-run)")
    args = p.parse_args(argv)
    if args.quick:  # tiny defaults; flags given explicitly still win
        p.set_defaults(lengths=[10], batch_size=8, hidden_size=16, rounds=1, per_round=1, warmup=1, no_reference=True)
        args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
              f"batch {args.batch_size}, hidden {args.hidden_size}, input {args.input_size}, "
              f"median of {args.rounds} rounds x {args.per_round} steps")
        rows += run_table(args, device, threads)
    if args.csv:
        write_csv(args.csv, rows)
        print(f"wrote {args.csv}")
    return 0


def run_table(args, device, threads) -> list[dict]:
    rows = []
    for cell in args.cells:
        for T in args.lengths:
            g = torch.Generator().manual_seed(T)
            x = torch.randn(args.batch_size, T, args.input_size, generator=g).to(device)
            y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
            steps = make_variants(cell, args.input_size, args.hidden_size, device, not args.no_reference)
            med = bench(steps, x, y, device, args.rounds, args.per_round, args.warmup)
            base = med["torch"]
            for name, t in med.items():
                rows.append({"cell": cell, "T": T, "variant": name, "ms_per_step": round(t * 1e3, 3),
                             "ratio_vs_torch": round(t / base, 3), "device": str(device), "threads": threads})
                print(f"{cell:4s} T={T:4d} {name:15s} {t * 1e3:9.3f} ms/step  {t / base:5.2f}x torch")
    return rows


if __name__ == "__main__":
    sys.exit(main())
