"""``gseq palindrome``: train the hand-written RNN/LSTM on palindromes, sweep lengths, trace gradients.

    gseq palindrome train --cell lstm --length 20 [--input onehot] [--optimizer adam] [--json]
                          [--out DIR [--resume | --overwrite]]
    gseq palindrome sweep --cells rnn lstm --lengths 5:40:2 --seeds 4 [--max-steps N] --out DIR [--jobs J]
    gseq palindrome grads --length 50 --cells rnn lstm [--out DIR]    (default DIR: runs/palindrome-grads)

Defaults are the original course's: scalar digit inputs, hidden 128, Xavier-uniform weights, RMSprop
with lr 1e-3, batch 128, gradient norm clipped to 10; training stops when the accuracy on fresh
palindromes reaches 1.0 or after ``--max-steps``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..config import INITS, OPTIMIZERS, PalindromeConfig  # noqa: F401 - INITS, OPTIMIZERS: the parser's constants
from ._args import announce, check_out, is_main_process, physical_memory, positive_int, resumed_note

__all__ = ["register"]

#: where ``gseq palindrome grads`` writes when no --out is given
GRADS_OUT = "runs/palindrome-grads"


def _training_options(p: argparse.ArgumentParser, **defaults) -> None:
    """The training fields of :class:`~gseq.config.PalindromeConfig` (sweep and grads share them)."""
    g = p.add_argument_group("model and training (the course's defaults)")
    PalindromeConfig.add_arguments(g, only=PalindromeConfig.TRAINING, defaults=defaults)


def _settings(args) -> dict:
    return {name: getattr(args, name) for name in PalindromeConfig.TRAINING}


def _check_memory(lengths, batch: int, hidden: int, flag: str = "--length") -> None:
    """Refuse a length whose training step alone cannot fit in memory, before anything is allocated.

    One step keeps, per sequence and time step, the gates and states of the cell for the backward pass:
    about 4 bytes x (8 hidden + 16) (an over-estimate for the RNN)."""
    memory = physical_memory()
    length = max(lengths)
    need = 4 * length * batch * (8 * hidden + 16)
    if memory is not None and need > memory:
        raise ValueError(f"{flag}: {length} steps at --batch-size {batch} and --hidden-size {hidden} need about "
                         f"{need / 2**30:,.0f} GiB for one training step, more than this machine's "
                         f"{memory / 2**30:,.0f} GiB; use a shorter length or a smaller batch")


def register(sub) -> None:
    p = sub.add_parser("palindrome", help="hand-written RNN/LSTM on the palindrome memorisation task",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="palindrome_command", metavar="ACTION")
    cmds.required = True

    t = cmds.add_parser("train", help="train one model; print accuracy, steps and seconds",
                        description="Train one model; every option is a field of gseq.config.PalindromeConfig.")
    PalindromeConfig.add_arguments(t)
    t.set_defaults(func=run_train, distributed=True)

    s = cmds.add_parser("sweep", help="train every (cell, length, seed); CSV and figure; resumable")
    s.add_argument("--cells", nargs="+", choices=["rnn", "lstm"], default=["rnn", "lstm"], help="recurrent cells")
    s.add_argument("--lengths", nargs="+", default=["5:39:2"],
                   help="lengths or ranges start:stop[:step], stop included")
    s.add_argument("--seeds", type=positive_int, default=4, help="seeds 0..N-1")
    s.add_argument("--out", required=True,
                   help="folder for results.csv, sweep.json, sweep.png; a folder with results is resumed "
                        "(same settings only)")
    s.add_argument("--jobs", type=positive_int, default=None, help="parallel processes (default: CPU cores)")
    s.add_argument("--title", default=None, help="figure title (default: the settings)")
    _training_options(s)
    s.set_defaults(func=run_sweep)

    g = cmds.add_parser("grads", help="norm of dL/dh_t over t, at initialisation and after training")
    g.add_argument("--cells", nargs="+", choices=["rnn", "lstm"], default=["rnn", "lstm"], help="recurrent cells")
    PalindromeConfig.add_arguments(g, only=("length", "seed", "threads"), defaults={"length": 50})
    g.add_argument("--samples", type=positive_int, default=256, help="palindromes the norms average over")
    g.add_argument("--out", default=GRADS_OUT, help="folder for grad_norms.csv, grad_norms.json, grad_norms.png "
                                                    "(replaced when present)")
    _training_options(g, max_steps=3000)
    g.set_defaults(func=run_grads)


def run_train(args) -> int:
    started = time.time()
    cfg = PalindromeConfig.from_args(args)
    _check_memory([cfg.length], cfg.batch_size, cfg.hidden_size)

    from ..tasks.palindrome import train_palindrome

    result = train_palindrome(config=cfg)
    if cfg.json:
        keys = ("cell", "length", "seed", "accuracy", "steps", "seconds", "stop_reason", "eval_accuracy")
        print(json.dumps({k: result[k] for k in keys}))
    else:
        print(f"{cfg.cell} T={cfg.length} seed={cfg.seed}: accuracy {result['accuracy']:.4f} on 2048 fresh "
              f"palindromes after {result['steps']} steps, {result['seconds']:.1f} s ({result['stop_reason']})"
              f"{resumed_note({'step': result['steps'], 'resumed_from': result['resumed_from']})}")
    if cfg.out_dir is not None and is_main_process():
        out = Path(cfg.out_dir)
        announce([out / name for name in ("checkpoint.pt", "metrics.csv", "config.json")], started,
                 stream=sys.stderr if cfg.json else None)
    return 0


def run_sweep(args) -> int:
    started = time.time()
    out = check_out(args.out)
    from ..analysis.sweep import palindrome_sweep, parse_lengths
    from ..train import resolve_device

    lengths = parse_lengths(args.lengths)
    _check_memory(lengths, args.batch_size, args.hidden_size, flag="--lengths")
    settings = _settings(args)
    settings["device"] = str(resolve_device(args.device))  # what the runs use, as sweep.json records it
    rows = palindrome_sweep(out, args.cells, lengths, args.seeds, jobs=args.jobs,
                            title=args.title, log=lambda line: print(line, flush=True), **settings)
    print(_summary(rows))
    announce([out / name for name in ("results.csv", "sweep.json", "sweep.png")], started)
    return 0


def _summary(rows) -> str:
    """Per cell and length: mean accuracy and how many seeds reached >= 0.99."""
    lines = ["cell  length  mean_acc  seeds>=0.99"]
    for cell in sorted({r["cell"] for r in rows}):
        for n in sorted({r["length"] for r in rows if r["cell"] == cell}):
            acc = [r["accuracy"] for r in rows if r["cell"] == cell and r["length"] == n]
            lines.append(f"{cell:4s}  {n:6d}  {sum(acc) / len(acc):8.4f}  {sum(a >= 0.99 for a in acc)}/{len(acc)}")
    return "\n".join(lines)


def run_grads(args) -> int:
    started = time.time()
    out = check_out(args.out)
    _check_memory([args.length], max(args.batch_size, args.samples), args.hidden_size)
    import torch

    from ..analysis.gradients import hidden_grad_norms
    from ..data.palindromes import palindromes
    from ..io import write_csv, write_json
    from ..models.sequence import SequenceClassifier
    from ..plots import plot_grad_norms
    from ..tasks.palindrome import fit_palindrome
    from ..train import apply_threads, resolve_device

    apply_threads(args.threads)
    settings = _settings(args)
    settings["device"] = str(resolve_device(args.device))  # what ran, as grad_norms.json records it
    model_keys = ("input", "hidden_size", "init")
    rows, summary = [], {}
    x, y = palindromes(args.samples, args.length, generator=torch.Generator().manual_seed(args.seed + 12345))
    for cell in args.cells:
        torch.manual_seed(args.seed)
        fb = settings["forget_bias"] if cell == "lstm" else 0.0
        model = SequenceClassifier(cell, settings["hidden_size"], input=settings["input"], init=settings["init"],
                                   forget_bias=fb)
        norms = {"init": hidden_grad_norms(model, x, y)}
        fit_kwargs = {k: v for k, v in settings.items() if k not in model_keys + ("forget_bias",)}
        result = fit_palindrome(model, args.length, seed=args.seed, **fit_kwargs)
        norms["trained"] = hidden_grad_norms(model.cpu(), x, y)
        summary[cell] = {k: result[k] for k in ("accuracy", "steps", "seconds", "stop_reason")}
        for stage, values in norms.items():
            rows += [{"cell": cell, "stage": stage, "t": t + 1, "grad_norm": float(v)} for t, v in enumerate(values)]
        print(f"{cell}: |dL/dh_1| / |dL/dh_T| = {float(norms['init'][0] / norms['init'][-1]):.3g} at init, "
              f"{float(norms['trained'][0] / norms['trained'][-1]):.3g} after {result['steps']} steps "
              f"(accuracy {result['accuracy']:.4f})")
    write_csv(out / "grad_norms.csv", rows)
    write_json(out / "grad_norms.json", {"length": args.length, "seed": args.seed, **settings, "runs": summary})
    trained = ", ".join(f"{c.upper()} acc {s['accuracy']:.2f} after {s['steps']} steps" for c, s in summary.items())
    fb = f", LSTM forget bias {settings['forget_bias']:g}"
    title = (f"T={args.length}, {settings['input']} input, {settings['init']} init{fb}\n"
             f"trained ({settings['optimizer']} lr {settings['lr']:g}): {trained}")
    import matplotlib.pyplot as plt

    plt.close(plot_grad_norms(rows, title=title, path=out / "grad_norms.png"))
    announce([out / name for name in ("grad_norms.csv", "grad_norms.json", "grad_norms.png")], started)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from . import main

    sys.exit(main(["palindrome", *sys.argv[1:]]))
