"""Character LSTM speed: training steps through the shared Trainer, and generation, against plain loops.

    python benchmarks/bench_text.py                        # CPU, 1 thread
    python benchmarks/bench_text.py --threads 2 --csv docs/_static/results/bench_text_cpu.csv
    python benchmarks/bench_text.py --device cuda          # where a GPU is present (adds the CUDA graph)

Training: one step of ``gseq.tasks.train_char_lstm``'s loop (``Trainer.fit`` with ``char_lm_loss``, windows
from ``gseq.data.window_sampler``, Adam, clipping) against the obvious loop a course notebook writes
(windows gathered by a Python list of slices, ``F.one_hot(x).float()`` into ``nn.LSTM``, ``nn.Linear``,
cross-entropy, backward, clipping, Adam). Same model size (2 x 128, vocabulary of the preprocessed book),
batch 64, sequence 30.

Generation of ``--length`` characters at batch 1 and 256: ``gseq.models.generate`` (Gumbel-max sampling,
one model step per character) against the obvious loop (``softmax(logits / T)`` + ``torch.multinomial``
every step), and against a *bare model step* (``model.step`` alone, no sampling, no bookkeeping): the
issue's target is a per-character cost of generate() of at most 1.2x one bare step. The bare step is
timed both with torch's default CPU settings and with the settings generate() uses (oneDNN off for
batches up to 64, see ``gseq.models.generate.SMALL_BATCH``); the ratio is taken to the faster one.

All variants run side by side in one process, interleaved round by round, so a busy machine slows them
alike; the script prints medians and ratios and can write the table as CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.data import CharVocab, load_text, split_text, window_sampler  # noqa: E402
from gseq.models import CharLSTM, char_lm_loss, generate  # noqa: E402
from gseq.models.generate import SMALL_BATCH, _mkldnn_off  # noqa: E402
from gseq.train import Trainer  # noqa: E402

BOOK = "book_EN_democracy_in_the_US.txt"  # from $GSEQ_DATA
SHIPPED_BOOK = "book_EN_grimms_fairy_tails.txt"  # shipped with gseq: needs no data folder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------- training
class StepTimer:
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_fit_start(self, trainer) -> None:
        sync(trainer.device)
        self.last = time.perf_counter()

    def on_step_end(self, trainer, step, logs) -> None:
        sync(trainer.device)  # logs already called .item() on the loss
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def training(ids: torch.Tensor, vocab_size: int, device: torch.device, rounds: int, steps: int, *,
             hidden_size: int = 128, seq_length: int = 30, batch_size: int = 64) -> dict[str, float]:
    """Median seconds per training step of both loops (a 2-layer model of ``hidden_size``)."""
    torch.manual_seed(0)
    model = CharLSTM(vocab_size, hidden_size=hidden_size)
    timer = StepTimer()
    trainer = Trainer(model, lr=2e-3, clip_grad_norm=5.0, max_steps=1, seed=0, device=device, progress=False,
                      callbacks=[timer])
    sampler = window_sampler(ids, seq_length, batch_size)

    def run_gseq() -> list[float]:
        timer.times = []
        trainer.max_steps = trainer.step + steps
        trainer.fit(char_lm_loss, sampler)
        return timer.times

    torch.manual_seed(0)
    lstm = nn.LSTM(vocab_size, hidden_size, 2, batch_first=True).to(device)
    fc = nn.Linear(hidden_size, vocab_size).to(device)
    params = list(lstm.parameters()) + list(fc.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    data = ids.tolist()

    def run_plain() -> list[float]:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            starts = torch.randint(len(data) - seq_length - 1, (batch_size,)).tolist()
            batch = torch.tensor([data[s:s + seq_length + 1] for s in starts], device=device)
            x = F.one_hot(batch[:, :-1], vocab_size).float()
            out, _ = lstm(x)
            logits = fc(out)
            loss = F.cross_entropy(logits.reshape(-1, vocab_size), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            loss.item()
            sync(device)
            times.append(time.perf_counter() - t0)
        return times

    samples: dict[str, list[float]] = {"gseq Trainer step": [], "plain nn.LSTM loop step": []}
    for r in range(rounds + 1):
        for name, fn in (("gseq Trainer step", run_gseq), ("plain nn.LSTM loop step", run_plain)):
            times = fn()
            if r:  # round 0 is warm-up
                samples[name] += times
    return {name: statistics.median(ts) for name, ts in samples.items()}


# ---------------------------------------------------------------------- generation
def generation(model: CharLSTM, vocab: CharVocab, device: torch.device, batch: int, length: int, rounds: int,
               repeats: int) -> dict[str, float]:
    """Median seconds per generated character (per step, for the bare steps)."""
    g = torch.Generator(device=device).manual_seed(0)
    V = len(vocab)
    flags = _mkldnn_off if device.type == "cpu" and batch <= SMALL_BATCH else contextlib.nullcontext

    def gen(**kw):
        return lambda: generate(model, vocab, "", length, 1.0, generator=g, batch=batch, **kw)

    def bare(settings):
        def run():
            ids = torch.randint(V, (batch,), device=device)
            with torch.inference_mode(), settings():
                logits, state = model.step(ids, None)
                for _ in range(length - 1):
                    logits, state = model.step(ids, state)
        return run

    def plain():
        chars = vocab.chars
        with torch.no_grad():
            x = torch.randint(V, (batch,), device=device)
            state, out = None, [x]
            for _ in range(length - 1):
                h, state = model.lstm(F.one_hot(x, V).float().unsqueeze(1), state)
                probs = torch.softmax(model.head(h[:, 0]) / 1.0, dim=-1)
                x = torch.multinomial(probs, 1)[:, 0]
                out.append(x)
            ids = torch.stack(out, 1).tolist()
        return ["".join(chars[i] for i in row) for row in ids]

    variants = {"gseq generate": gen(cuda_graph=False), "plain loop (softmax+multinomial)": plain,
                "bare step, torch defaults": bare(contextlib.nullcontext)}
    if flags is not contextlib.nullcontext:
        variants["bare step, generate's settings"] = bare(flags)
    if device.type == "cuda":
        variants["gseq generate, CUDA graph"] = gen(cuda_graph=True)
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds + 1):
        for name, fn in variants.items():
            for _ in range(repeats):
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                if r:
                    samples[name].append((time.perf_counter() - t0) / length)
    return {name: statistics.median(ts) for name, ts in samples.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds after a warm-up (default: 5)")
    p.add_argument("--steps", type=int, default=20, help="training steps per variant and round (default: 20)")
    p.add_argument("--length", type=int, default=200, help="characters per generate() call (default: 200)")
    p.add_argument("--repeats", type=int, default=3, help="generate() calls per variant and round (default: 3)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    p.add_argument("--csv", default=None, help="write the table here")
    p.add_argument("--book", default=BOOK, help=f"text file or book name (default: {BOOK}, from $GSEQ_DATA; "
                   f"{SHIPPED_BOOK} is shipped)")
    p.add_argument("--quick", action="store_true",
                   help="seconds: the shipped book, 20 characters at batch 1, one round (gpu_check --dry-run)")
    args = p.parse_args(argv)
    if args.quick:  # tiny defaults; flags given explicitly still win
        p.set_defaults(book=SHIPPED_BOOK, rounds=1, steps=1, length=20, repeats=1, batches=[1])
        args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    text = load_text(args.book, preprocess=True)
    vocab = CharVocab.from_text(text)
    train_ids, _ = split_text(vocab.encode(text))
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} thread(s); "
          f"CharLSTM 2x128, vocabulary {len(vocab)}")
    rows = []

    t = training(train_ids, len(vocab), device, args.rounds, args.steps)
    base = t["plain nn.LSTM loop step"]
    print(f"\ntraining (batch 64, seq 30), median of {args.rounds}x{args.steps} steps each")
    for name, sec in t.items():
        print(f"  {name:<34} {sec * 1e3:8.2f} ms/step {1 / sec:8.1f} steps/s   speed vs plain {base / sec:5.2f}x")
        rows.append({"section": "train", "batch": 64, "variant": name, "seconds": sec, "per_second": 1 / sec,
                     "ratio": base / sec})

    torch.manual_seed(0)
    model = CharLSTM(len(vocab)).to(device).eval()
    for batch in args.batches:
        gtimes = generation(model, vocab, device, batch, args.length, args.rounds, args.repeats)
        bare = min(v for k, v in gtimes.items() if k.startswith("bare step"))
        print(f"\ngeneration, batch {batch}, {args.length} characters per call "
              f"(median of {args.rounds}x{args.repeats} calls; per character = per step)")
        for name, sec in gtimes.items():
            rate = batch / sec
            print(f"  {name:<34} {sec * 1e6:9.1f} us/char {rate:12,.0f} chars/s   x bare step {sec / bare:5.2f}"
                  + (f"   ({sec * args.length * 1e3:.1f} ms per {args.length} chars)" if device.type == "cuda" else ""))
            rows.append({"section": "generate", "batch": batch, "variant": name, "seconds": sec, "per_second": rate,
                         "ratio": sec / bare})
        ratio = gtimes["gseq generate"] / bare
        plain = gtimes["plain loop (softmax+multinomial)"] / gtimes["gseq generate"]
        print(f"  -> generate() per character = {ratio:.2f}x one bare step (target <= 1.2: "
              f"{'met' if ratio <= 1.2 else 'NOT met'}); {plain:.2f}x the speed of the plain loop")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
