"""``gseq text train|generate``: train a character LSTM on a book and sample text from a checkpoint.

Examples::

    gseq text train --file book_EN_democracy_in_the_US.txt --preprocess --steps 20000 --out runs/text
    gseq text train --file book_EN_democracy_in_the_US.txt --preprocess --steps 30000 --out runs/text --resume
    gseq text generate --checkpoint runs/text/checkpoint.pt --prompt "the people" --temperature 0.5 --seed 0
"""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("text", help="character-level LSTM: train on a text file, generate text",
                       description="Character-level text generation with nn.LSTM.")
    tsub = p.add_subparsers(dest="text_command", metavar="{train,generate}")
    tsub.required = True

    t = tsub.add_parser("train", help="train a CharLSTM on a text file (through the shared Trainer)")
    t.add_argument("--file", required=True,
                   help="UTF-8 text file, or the name of a book under $GSEQ_DATA/text")
    t.add_argument("--steps", type=int, default=20000, help="total optimizer steps (default: 20000)")
    t.add_argument("--out", default="runs/text",
                   help="run folder: checkpoint.pt, metrics.csv, config.json, samples.csv, loss.png "
                        "(default: runs/text)")
    t.add_argument("--resume", action="store_true", help="continue exactly from OUT/checkpoint.pt")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    t.add_argument("--preprocess", action="store_true",
                   help="the report's preprocessing: keep letters, digits and spaces, lower-case")
    t.add_argument("--keep-gutenberg", action="store_true",
                   help="keep the Project Gutenberg header and licence (stripped by default)")
    t.add_argument("--seq-length", type=int, default=30, help="training window length (default: 30)")
    t.add_argument("--batch-size", type=int, default=64, help="windows per step (default: 64)")
    t.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default: 2e-3)")
    t.add_argument("--lr-decay", type=float, default=None,
                   help="multiply the learning rate by this every --lr-decay-every steps (default: off)")
    t.add_argument("--lr-decay-every", type=int, default=5000, help="(default: 5000)")
    t.add_argument("--hidden-size", type=int, default=128, help="(default: 128)")
    t.add_argument("--num-layers", type=int, default=2, help="(default: 2)")
    t.add_argument("--dropout", type=float, default=0.0, help="between LSTM layers (default: 0)")
    t.add_argument("--embedding", choices=["onehot", "learned"], default="onehot", help="(default: onehot)")
    t.add_argument("--clip-grad-norm", type=float, default=5.0, help="(default: 5.0)")
    t.add_argument("--eval-every", type=int, default=500, help="validation interval in steps (default: 500)")
    t.add_argument("--sample-every", type=int, default=1000,
                   help="log samples of lengths 20/30/60 every this many steps; 0 = never (default: 1000)")
    t.add_argument("--checkpoint-every", type=int, default=1000, help="(default: 1000)")
    t.add_argument("--target-loss", type=float, default=None, help="stop once val_loss <= this (and --target-acc)")
    t.add_argument("--target-acc", type=float, default=None, help="stop once val_acc >= this (and --target-loss)")
    t.add_argument("--seed", type=int, default=0, help="(default: 0)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--quiet-samples", action="store_true", help="do not print the logged samples")
    t.set_defaults(func=run_train)

    g = tsub.add_parser("generate", help="sample text from a checkpoint written by `gseq text train`")
    g.add_argument("--checkpoint", required=True, help="checkpoint.pt of a text run")
    g.add_argument("--prompt", default="", help="text that primes the LSTM state (default: a random first character)")
    g.add_argument("--length", type=int, default=200, help="characters to generate (default: 200)")
    g.add_argument("--temperature", type=float, default=1.0,
                   help="logits are divided by T; 0 = greedy; the report's tau is 1/T (default: 1.0)")
    g.add_argument("--top-k", type=int, default=None, help="sample among the K most likely characters")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling, P in (0, 1]")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: unseeded)")
    g.add_argument("--num-samples", type=int, default=1, help="independent samples (default: 1)")
    g.add_argument("--skip-unknown", action="store_true",
                   help="drop prompt characters that are not in the vocabulary instead of failing")
    g.add_argument("--device", default="cpu", help="(default: cpu)")
    g.set_defaults(func=run_generate)


def run_train(args) -> int:
    import torch

    from ..models.char_lstm import train_char_lstm

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    out = train_char_lstm(
        args.file, steps=args.steps, out_dir=args.out, resume=args.resume, device=args.device,
        preprocess=args.preprocess, strip_header=not args.keep_gutenberg, seq_length=args.seq_length,
        batch_size=args.batch_size, lr=args.lr, hidden_size=args.hidden_size, num_layers=args.num_layers,
        dropout=args.dropout, embedding=args.embedding, clip_grad_norm=args.clip_grad_norm,
        eval_every=args.eval_every, sample_every=args.sample_every or None, checkpoint_every=args.checkpoint_every,
        lr_decay=args.lr_decay, lr_decay_every=args.lr_decay_every, target_loss=args.target_loss,
        target_acc=args.target_acc, seed=args.seed, progress=not args.no_progress,
        echo_samples=not args.quiet_samples)
    result, vocab = out["result"], out["vocab"]
    ev = result["last_eval"]
    nan = float("nan")
    print(f"steps {result['step']} ({result['stop_reason']}), {result['seconds']:.0f} s, vocabulary {len(vocab)}: "
          f"train loss {ev.get('loss', nan):.4f}, val_loss {ev.get('val_loss', nan):.4f} nats/char, "
          f"val_acc {ev.get('val_acc', nan):.4f} (held-out text as a stream); in {args.seq_length}-character "
          f"windows: {ev.get('val_window_loss', nan):.4f}, {ev.get('val_window_acc', nan):.4f}")
    print(f"wrote {Path(args.out) / 'checkpoint.pt'}, metrics.csv, samples.csv, loss.png")
    return 0


def run_generate(args) -> int:
    import torch

    from ..data.text import preprocess_text
    from ..models.char_lstm import load_char_lstm
    from ..models.generate import generate

    if args.num_samples < 1:
        raise ValueError(f"--num-samples: must be >= 1, got {args.num_samples}")
    model, vocab, info = load_char_lstm(args.checkpoint, device=args.device)
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
