"""Every single-bit flip of a small Trainer-like checkpoint: refused as damage, or loaded unchanged?

    python benchmarks/checkpoint_flips.py            # all bits (73,104 for the 9 KB file: about 2 minutes)
    python benchmarks/checkpoint_flips.py --sample 2000

The checkpoint holds what a Trainer saves (a Linear layer's weights, Adam's state after one step, torch's
RNG state, a counter), written by ``gseq.io.save_checkpoint``. Each flipped copy is loaded with
``gseq.io.load_checkpoint``; the outcome is "refused" (a ValueError naming the file), "unchanged" (every
tensor and value equal to the original's: the flip hit bytes no reader uses) or "silently changed", the
outcome the integrity digest exists to rule out. Prints the three counts; exits 1 if any flip changed
the loaded contents silently.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.io import load_checkpoint, save_checkpoint  # noqa: E402


def leaves_equal(a, b) -> bool:
    (xs, spec_a), (ys, spec_b) = tree_flatten(a), tree_flatten(b)
    if spec_a != spec_b:
        return False
    return all(torch.equal(x, y) if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dtype == y.dtype
               else not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor) and x == y
               for x, y in zip(xs, ys))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sample", type=int, default=None, help="flip this many random bits instead of every bit")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    folder = Path(tempfile.mkdtemp(prefix="gseq-flips-"))
    original = folder / "checkpoint.pt"
    save_checkpoint(original, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "rng": torch.get_rng_state(), "step": 3})
    blob, reference = original.read_bytes(), load_checkpoint(original)
    bits = [(i, b) for i in range(len(blob)) for b in range(8)]
    if args.sample is not None:
        bits = random.Random(0).sample(bits, min(args.sample, len(bits)))
    counts = {"refused": 0, "unchanged": 0, "silently changed": 0}
    flipped = folder / "flipped.pt"
    for position, bit in bits:
        damaged = bytearray(blob)
        damaged[position] ^= 1 << bit
        flipped.write_bytes(bytes(damaged))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = load_checkpoint(flipped)
        except ValueError:
            counts["refused"] += 1
            continue
        counts["unchanged" if leaves_equal(reference, loaded) else "silently changed"] += 1
    print(f"torch {torch.__version__}; checkpoint of {len(blob):,} bytes, {len(bits):,} single-bit flips:")
    for outcome, n in counts.items():
        print(f"  {outcome:17s} {n:7,d}")
    return 1 if counts["silently changed"] else 0


if __name__ == "__main__":
    sys.exit(main())
