"""Palindromes of decimal digits: the memorisation task for recurrent networks.

A palindrome of length ``T`` reads the same both ways, ``p_k = p_{T+1-k}``. The model sees the first
``T - 1`` digits and predicts the last one, which equals the first: it has to carry one digit across
``T - 1`` steps (the other digits are distractors, half of them predictable from the first half).
Digits are uniform over 0..9 in the first ``ceil(T/2)`` places and mirrored into the rest, as in the
original course's ``PalindromeDataset``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from ..checks import fits_memory, instance, integer, positive_int, random_seed

__all__ = ["palindromes", "PalindromeDataset", "NUM_DIGITS"]

#: digits 0..9
NUM_DIGITS = 10


def palindromes(batch_size: int, length: int, *, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """A batch of random digit palindromes, split into inputs and target.

    Built as whole tensors (no Python loop over samples): ``ceil(length/2)`` uniform digits, then their
    mirror image.

    Args:
        batch_size: number of palindromes (>= 1).
        length: palindrome length ``T`` (>= 2); the input has ``T - 1`` digits.
        generator: a ``torch.Generator`` (on the CPU) for reproducible draws; None uses torch's global one.
        device: where the returned tensors live. (default: CPU)

    Returns:
        ``(x, y)``: ``x`` the first ``T - 1`` digits, a LongTensor ``[batch_size, T - 1]``; ``y`` the last
        digit ``[batch_size]`` (equal to ``x[:, 0]``).
    """
    positive_int("batch_size", batch_size)
    integer("length", length, minimum=2)
    instance("generator", generator, torch.Generator, "a torch.Generator", none_ok=True)
    # the digits (8 bytes each) are drawn on the CPU, then joined into a copy of the whole batch
    fits_memory("batch_size", batch_size, 3 * 8 * batch_size * length, "cpu", f"palindromes of length {length}")
    half = torch.randint(0, NUM_DIGITS, (batch_size, (length + 1) // 2), generator=generator)
    full = torch.cat((half, half[:, : length // 2].flip(1)), dim=1)
    if device is not None:
        full = full.to(device)
    return full[:, :-1], full[:, -1]


class PalindromeDataset(IterableDataset):
    """An endless stream of ``(x, y)`` palindrome samples (``x`` LongTensor ``[T - 1]``, ``y`` scalar), for a
    ``torch.utils.data.DataLoader``.

    Samples are made in chunks by :func:`palindromes`. The stream is reproducible from ``seed``; with
    several DataLoader workers each worker draws from its own generator (``seed + worker id``).

    Args:
        length: palindrome length ``T`` (>= 2).
        seed: seed of the stream; None draws one from torch's global generator.
        chunk_size: samples generated at a time. (default: ``1024``)
    """

    def __init__(self, length: int, *, seed: int | None = None, chunk_size: int = 1024) -> None:
        super().__init__()
        self.length = integer("length", length, minimum=2)
        self.chunk_size = positive_int("chunk_size", chunk_size)
        self.seed = random_seed("seed", seed, none_ok=True)

    def __iter__(self):
        seed = self.seed if self.seed is not None else int(torch.randint(2**62, ()).item())
        info = get_worker_info()
        g = torch.Generator().manual_seed(seed + (info.id if info is not None else 0))
        while True:
            x, y = palindromes(self.chunk_size, self.length, generator=g)
            yield from zip(x, y)
