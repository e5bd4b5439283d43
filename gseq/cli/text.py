"""``gseq text train|generate``: train a character LSTM on a book and sample text from a checkpoint.

Examples::

    gseq text train --steps 3000 --out runs/text-grimm     # the book shipped with gseq, no data folder needed
    gseq text train --file book_EN_democracy_in_the_US.txt --preprocess --steps 20000 --out runs/text
    gseq text train --file book_EN_democracy_in_the_US.txt --preprocess --steps 30000 --out runs/text --resume
    gseq text generate --checkpoint runs/text/checkpoint.pt --prompt "the people" --temperature 0.5 --seed 0
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ._args import (add_device, add_out_flags, announce, check_out, check_resume_flags, dropout, interval,
                    learning_rate, non_negative_float, non_negative_int, positive_float, positive_int, random_seed,
                    top_p)

#: the book ``gseq text train`` reads without --file (shipped with gseq; spelled as gseq.data.BUNDLED_BOOK)
DEFAULT_BOOK = "book_EN_grimms_fairy_tails.txt"


_decay = interval(0, 1, low_open=True)


def register(sub) -> None:
    p = sub.add_parser("text", help="character-level LSTM: train on a text file, generate text",
                       description="Character-level text generation with nn.LSTM.")
    tsub = p.add_subparsers(dest="text_command", metavar="{train,generate}")
    tsub.required = True

    t = tsub.add_parser("train", help="train a CharLSTM on a text file (through the shared Trainer)")
    t.add_argument("--file", default=DEFAULT_BOOK,
                   help="UTF-8 text file (.gz allowed), or a book's name under $GSEQ_DATA/text; the default, "
                        "Grimms' Fairy Tales, ships with gseq")
    t.add_argument("--steps", type=positive_int, default=20000, help="total optimizer steps")
    t.add_argument("--out", default="runs/text",
                   help="run folder: checkpoint.pt, metrics.csv, config.json, samples.csv, loss.png")
    add_out_flags(t, resume=True)
    add_device(t)
    t.add_argument("--preprocess", action="store_true",
                   help="the report's preprocessing: keep letters, digits and spaces, lower-case")
    t.add_argument("--keep-gutenberg", action="store_true",
                   help="keep the Project Gutenberg header and licence, which are stripped otherwise")
    t.add_argument("--seq-length", type=positive_int, default=30, help="training window length")
    t.add_argument("--batch-size", type=positive_int, default=64, help="windows per step")
    t.add_argument("--lr", type=learning_rate, default=2e-3, help="Adam learning rate")
    t.add_argument("--lr-decay", type=_decay, default=None,
                   help="multiply the learning rate by this, in (0, 1], every --lr-decay-every steps (default: off)")
    t.add_argument("--lr-decay-every", type=positive_int, default=5000, help="steps between learning-rate decays")
    t.add_argument("--hidden-size", type=positive_int, default=128, help="LSTM state size")
    t.add_argument("--num-layers", type=positive_int, default=2, help="stacked LSTM layers")
    t.add_argument("--dropout", type=dropout, default=0.0, help="dropout between LSTM layers, in [0, 1)")
    t.add_argument("--embedding", choices=["onehot", "learned"], default="onehot", help="character embedding")
    t.add_argument("--clip-grad-norm", type=positive_float, default=5.0, help="clip the gradient norm to this")
    t.add_argument("--eval-every", type=positive_int, default=500, help="validation interval in steps")
    t.add_argument("--sample-every", type=non_negative_int, default=1000,
                   help="log samples of lengths 20/30/60 every this many steps; 0 = never")
    t.add_argument("--checkpoint-every", type=positive_int, default=1000, help="checkpoint interval in steps")
    t.add_argument("--target-loss", type=non_negative_float, default=None,
                   help="stop once val_loss <= this (and --target-acc) (default: off)")
    t.add_argument("--target-acc", type=non_negative_float, default=None,
                   help="stop once val_acc >= this (and --target-loss) (default: off)")
    t.add_argument("--seed", type=random_seed, default=0, help="seeds the weights, the batches and the samples")
    t.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--quiet-samples", action="store_true", help="do not print the logged samples")
    t.set_defaults(func=run_train, distributed=True)

    g = tsub.add_parser("generate", help="sample text from a checkpoint written by `gseq text train`")
    g.add_argument("--checkpoint", required=True, help="checkpoint.pt of a text run")
    g.add_argument("--prompt", default="", help="text that primes the LSTM state (default: a random first character)")
    g.add_argument("--length", type=non_negative_int, default=200, help="characters to generate")
    g.add_argument("--temperature", type=non_negative_float, default=1.0,
                   help="logits are divided by T; 0 = greedy; the report's tau is 1/T")
    g.add_argument("--top-k", type=positive_int, default=None,
                   help="sample among the K most likely characters (default: all)")
    g.add_argument("--top-p", type=top_p, default=None, help="nucleus sampling, P in (0, 1] (default: off)")
    g.add_argument("--seed", type=random_seed, default=None, help="random seed (default: unseeded)")
    g.add_argument("--num-samples", type=positive_int, default=1, help="independent samples")
    g.add_argument("--skip-unknown", action="store_true",
                   help="drop prompt characters that are not in the vocabulary instead of failing")
    add_device(g)
    g.set_defaults(func=run_generate)


def run_train(args) -> int:
    started = time.time()
    out = check_out(args.out)
    check_resume_flags(out, args.resume, args.overwrite)
    import torch

    from ..tasks.char_lm import train_char_lstm

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    run = train_char_lstm(
        args.file, steps=args.steps, out_dir=out, resume=args.resume, overwrite=args.overwrite, device=args.device,
        preprocess=args.preprocess, strip_header=not args.keep_gutenberg, seq_length=args.seq_length,
        batch_size=args.batch_size, lr=args.lr, hidden_size=args.hidden_size, num_layers=args.num_layers,
        dropout=args.dropout, embedding=args.embedding, clip_grad_norm=args.clip_grad_norm,
        eval_every=args.eval_every, sample_every=args.sample_every or None, checkpoint_every=args.checkpoint_every,
        lr_decay=args.lr_decay, lr_decay_every=args.lr_decay_every, target_loss=args.target_loss,
        target_acc=args.target_acc, seed=args.seed, progress=not args.no_progress,
        echo_samples=not args.quiet_samples)
    result, vocab = run["result"], run["vocab"]
    ev = result["last_eval"]
    nan = float("nan")
    print(f"steps {result['step']} ({result['stop_reason']}), {result['seconds']:.0f} s, vocabulary {len(vocab)}: "
          f"train loss {ev.get('loss', nan):.4f}, val_loss {ev.get('val_loss', nan):.4f} nats/char, "
          f"val_acc {ev.get('val_acc', nan):.4f} (held-out text as a stream); in {args.seq_length}-character "
          f"windows: {ev.get('val_window_loss', nan):.4f}, {ev.get('val_window_acc', nan):.4f}")
    announce([out / name for name in ("checkpoint.pt", "metrics.csv", "config.json", "samples.csv", "loss.png")],
             started)
    return 0


def run_generate(args) -> int:
    import torch

    from ..data.text import preprocess_text
    from ..models.generate import _check_fits, generate
    from ..tasks.char_lm import load_char_lstm

    model, vocab, info = load_char_lstm(args.checkpoint, device=args.device)
    _check_fits(args.length, args.num_samples, len(vocab), names=("--length", "--num-samples"))
    prompt = args.prompt
    if info["data"].get("preprocess") and prompt:
        cleaned = preprocess_text(prompt)
        cleaned = cleaned + " " if prompt[-1:].isspace() and cleaned else cleaned
        if cleaned != prompt:
            print(f"(prompt preprocessed as in training: {cleaned!r})", file=sys.stderr)
        prompt = cleaned
    generator = None
    if args.seed is not None:
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    texts = generate(model, vocab, prompt, args.length, args.temperature, args.top_k, args.top_p,
                     generator=generator, batch=args.num_samples, unknown="skip" if args.skip_unknown else "error")
    for text in texts:
        print(prompt + text)
    return 0
