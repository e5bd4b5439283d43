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

from ..config import TextConfig
from ._args import (add_device, announce, check_out, non_negative_float, non_negative_int, positive_int, random_seed,
                    resumed_note, top_p)

#: the book ``gseq text train`` reads without --file (shipped with gseq; spelled as gseq.data.BUNDLED_BOOK)
DEFAULT_BOOK = TextConfig.file


def register(sub) -> None:
    p = sub.add_parser("text", help="character-level LSTM: train on a text file, generate text",
                       description="Character-level text generation with nn.LSTM.")
    tsub = p.add_subparsers(dest="text_command", metavar="{train,generate}")
    tsub.required = True

    t = tsub.add_parser("train", help="train a CharLSTM on a text file (through the shared Trainer)",
                        description="Train a CharLSTM on a text file; every option is a field of gseq.config.TextConfig.")
    TextConfig.add_arguments(t)
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
    cfg = TextConfig.from_args(args)
    out = check_out(cfg.out_dir)
    from ..tasks.char_lm import train_char_lstm

    run = train_char_lstm(cfg)
    result, vocab = run["result"], run["vocab"]
    ev = result["last_eval"]
    nan = float("nan")
    print(f"steps {result['step']} ({result['stop_reason']}){resumed_note(result)}, {result['seconds']:.0f} s, "
          f"vocabulary {len(vocab)}: "
          f"train loss {ev.get('loss', nan):.4f}, val_loss {ev.get('val_loss', nan):.4f} nats/char, "
          f"val_acc {ev.get('val_acc', nan):.4f} (held-out text as a stream); in {cfg.seq_length}-character "
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
