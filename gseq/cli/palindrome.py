"""``gseq palindrome``: train the hand-written RNN/LSTM on palindromes, sweep lengths, trace gradients.

    gseq palindrome train --cell lstm --length 20 [--input onehot] [--optimizer adam] [--json]
    gseq palindrome sweep --cells rnn lstm --lengths 5:40:2 --seeds 4 [--max-steps N] --out DIR [--jobs J]
    gseq palindrome grads --length 50 --cells rnn lstm --out DIR

Defaults are the original course's: scalar digit inputs, hidden 128, Xavier-uniform weights, RMSprop
with lr 1e-3, batch 128, gradient norm clipped to 10; training stops when the accuracy on fresh
palindromes reaches 1.0 or after ``--max-steps``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]


def _training_options(p: argparse.ArgumentParser, *, max_steps: int) -> None:
    from ..layers.recurrent import INITS

    g = p.add_argument_group("model and training (the course's defaults)")
    g.add_argument("--input", choices=["scalar", "onehot"], default="scalar",
                   help="digit as one float channel (course) or one-hot over 10 channels (default: scalar)")
    g.add_argument("--hidden-size", type=int, default=128, help="(default: 128)")
    g.add_argument("--init", choices=list(INITS), default="xavier_uniform", help="(default: xavier_uniform)")
    g.add_argument("--forget-bias", type=float, default=0.0, help="initial LSTM forget-gate bias (default: 0)")
    g.add_argument("--optimizer", default="rmsprop", help="rmsprop, adam, adamw or sgd (default: rmsprop)")
    g.add_argument("--lr", type=float, default=1e-3, help="(default: 1e-3)")
    g.add_argument("--batch-size", type=int, default=128, help="(default: 128)")
    g.add_argument("--max-steps", type=int, default=max_steps, help=f"(default: {max_steps})")
    g.add_argument("--clip-grad-norm", type=float, default=10.0, help="(default: 10)")
    g.add_argument("--eval-every", type=int, default=10,
                   help="evaluate on 512 fresh palindromes every N steps; stop at accuracy 1 (default: 10)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")


def _settings(args) -> dict:
    return {"input": args.input, "hidden_size": args.hidden_size, "init": args.init,
            "forget_bias": args.forget_bias, "optimizer": args.optimizer, "lr": args.lr,
            "batch_size": args.batch_size, "max_steps": args.max_steps, "clip_grad_norm": args.clip_grad_norm,
            "eval_every": args.eval_every, "device": args.device}


def register(sub) -> None:
    p = sub.add_parser("palindrome", help="hand-written RNN/LSTM on the palindrome memorisation task",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="palindrome_command", metavar="ACTION")
    cmds.required = True

    t = cmds.add_parser("train", help="train one model; print accuracy, steps and seconds")
    t.add_argument("--cell", choices=["rnn", "lstm"], default="lstm")
    t.add_argument("--length", type=int, default=20, help="palindrome length T (default: 20)")
    t.add_argument("--seed", type=int, default=0)
    _training_options(t, max_steps=5000)
    t.add_argument("--out", default=None, help="folder for metrics.csv, config.json, checkpoint.pt")
    t.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    t.add_argument("--progress", action="store_true", help="show a progress bar")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=run_train)

    s = cmds.add_parser("sweep", help="train every (cell, length, seed); CSV and figure; resumable")
    s.add_argument("--cells", nargs="+", choices=["rnn", "lstm"], default=["rnn", "lstm"])
    s.add_argument("--lengths", nargs="+", default=["5:39:2"],
                   help="lengths or ranges start:stop[:step], stop included (default: 5:39:2)")
    s.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 (default: 4)")
    s.add_argument("--out", required=True, help="folder for results.csv, sweep.json, sweep.png")
    s.add_argument("--jobs", type=int, default=None, help="parallel processes (default: CPU cores)")
    s.add_argument("--title", default=None)
    _training_options(s, max_steps=5000)
    s.set_defaults(func=run_sweep)

    g = cmds.add_parser("grads", help="norm of dL/dh_t over t, at initialisation and after training")
    g.add_argument("--cells", nargs="+", choices=["rnn", "lstm"], default=["rnn", "lstm"])
    g.add_argument("--length", type=int, default=50)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--samples", type=int, default=256, help="palindromes the norms average over (default: 256)")
    g.add_argument("--out", required=True, help="folder for grad_norms.csv, grad_norms.json, grad_norms.png")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    _training_options(g, max_steps=3000)
    g.set_defaults(func=run_grads)


def _set_threads(n) -> None:
    if n is not None:
        import torch

        if n < 1:
            raise ValueError(f"threads: must be >= 1, got {n}")
        torch.set_num_threads(n)


def run_train(args) -> int:
    from ..models.sequence import train_palindrome

    _set_threads(args.threads)
    settings = _settings(args)
    forget_bias = settings.pop("forget_bias")
    if args.cell == "rnn" and forget_bias:
        raise ValueError("forget-bias: only the LSTM has a forget gate")
    result = train_palindrome(args.cell, args.length, seed=args.seed, forget_bias=forget_bias,
                              out_dir=args.out, resume=args.resume, progress=args.progress, **settings)
    if args.json:
        keys = ("cell", "length", "seed", "accuracy", "steps", "seconds", "stop_reason", "eval_accuracy")
        print(json.dumps({k: result[k] for k in keys}))
    else:
        print(f"{args.cell} T={args.length} seed={args.seed}: accuracy {result['accuracy']:.4f} on 2048 fresh "
              f"palindromes after {result['steps']} steps, {result['seconds']:.1f} s ({result['stop_reason']})")
    return 0


def run_sweep(args) -> int:
    from ..analysis.sweep import palindrome_sweep, parse_lengths

    rows = palindrome_sweep(args.out, args.cells, parse_lengths(args.lengths), args.seeds, jobs=args.jobs,
                            title=args.title, log=lambda line: print(line, flush=True), **_settings(args))
    print(_summary(rows))
    print(f"wrote {Path(args.out) / 'results.csv'} and {Path(args.out) / 'sweep.png'}")
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
    import torch

    from ..analysis.gradients import hidden_grad_norms
    from ..data.palindromes import palindromes
    from ..models.sequence import SequenceClassifier, fit_palindrome
    from ..plots import plot_grad_norms
    from ..train.io import write_csv, write_json

    _set_threads(args.threads)
    if args.samples < 1:
        raise ValueError(f"samples: must be >= 1, got {args.samples}")
    settings = _settings(args)
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
    out = Path(args.out)
    write_csv(out / "grad_norms.csv", rows)
    write_json(out / "grad_norms.json", {"length": args.length, "seed": args.seed, **settings, "runs": summary})
    trained = ", ".join(f"{c.upper()} acc {s['accuracy']:.2f} after {s['steps']} steps" for c, s in summary.items())
    fb = f", LSTM forget bias {settings['forget_bias']:g}"
    title = (f"T={args.length}, {settings['input']} input, {settings['init']} init{fb}\n"
             f"trained ({settings['optimizer']} lr {settings['lr']:g}): {trained}")
    plot_grad_norms(rows, title=title, path=out / "grad_norms.png")
    print(f"wrote {out / 'grad_norms.csv'} and {out / 'grad_norms.png'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from . import main

    sys.exit(main(["palindrome", *sys.argv[1:]]))
