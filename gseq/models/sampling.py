r"""The reference sampler: what :func:`~gseq.models.generate` draws, written as the spec.

The next character is drawn from :math:`\mathrm{softmax}(z / T)`, :math:`z` the model's logits and :math:`T`
the temperature (PyTorch's and Hugging Face's convention; the original report's :math:`\mathrm{softmax}(\tau
z)` is the same with :math:`\tau = 1/T`). :math:`T = 0` is greedy (argmax). The draw is Gumbel-max:
:math:`\arg\max_i (z_i + T g_i)`, with :math:`g_i = -\log(-\log u_i)`, :math:`u_i \sim U(0, 1)`, equals
:math:`\arg\max_i (z_i / T + g_i)`, an exact draw from :math:`\mathrm{softmax}(z / T)`. The noise of
:data:`NOISE_CHUNK` characters is drawn in one call to the generator; the fast path
(:mod:`gseq.models._graph_sampler`) draws the same noise in the same order, so both give the same text.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["CharModel", "NOISE_CHUNK", "sample"]

#: characters of Gumbel noise drawn per call to the generator
NOISE_CHUNK = 256


class CharModel(Protocol):
    r"""What :func:`~gseq.models.generate` needs from a model: an ``nn.Module`` (its parameters give the
    device and dtype) with

    - ``vocab_size``: the number of characters :math:`V` it predicts;
    - ``model(ids, state=None) -> (logits, state)``: ids :math:`[B, T]` to logits :math:`[B, T, V]` (the prompt);
    - ``step(ids, state=None) -> (logits, state)``: ids :math:`[B]` to logits :math:`[B, V]`, one character;
      ``state`` is what the last call returned (None: the initial state).

    Optional, for the fast path (*noise in the bias*): ``readout_bias``, the :math:`[V]` tensor :math:`b`
    of logits :math:`W h + b`, with ``step(ids, state, bias)`` returning :math:`W h + \text{bias}`. The
    CUDA-graph path then passes :math:`b + T g` and the step's logits carry the noise.
    :class:`~gseq.models.CharLSTM` meets both.

    For the CUDA graph (``generate(cuda_graph=True)`` on CUDA) the state must be None, a tensor or a tuple
    of tensors of fixed shapes, and a step must depend only on its arguments and the model's parameters
    and buffers (no counter kept in Python); pass ``cuda_graph=False`` for a step that keeps Python state.
    """

    vocab_size: int

    def __call__(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...

    def step(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...


def gumbel(steps: int, batch: int, model, generator) -> Tensor:
    """Gumbel noise for ``steps`` characters, ``[steps, batch, V]``, in the model's dtype on its device."""
    param = next(model.parameters())
    u = torch.rand((steps, batch, model.vocab_size), generator=generator, device=param.device, dtype=param.dtype)
    return u.log_().neg_().log_().neg_()


def keep(logits: Tensor, temperature: float, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """``logits`` with those outside the top-k, then outside the top-p nucleus of softmax(z / T), at -inf."""
    if top_k is not None and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1:
        probs, order = (logits / temperature).softmax(-1).sort(dim=-1, descending=True)
        # drop a character when the more likely ones already hold top_p of the mass (the first always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


def draw(logits: Tensor, noise: Tensor | None, temperature: float, top_k=None, top_p=None) -> Tensor:
    """The next ids ``[B]`` from logits ``[B, V]`` and the noise :math:`T g` ``[B, V]`` (None when greedy)."""
    if temperature == 0:
        return logits.argmax(-1)
    return (keep(logits, temperature, top_k, top_p) + noise).argmax(-1)


def prime(model, prompt_ids: Tensor, batch: int, generator) -> tuple[Tensor | None, Tensor, Any]:
    """Run the prompt: ``(first, logits, state)``, ``logits`` :math:`[B, V]` predicting the next character.
    Without a prompt, ``first`` is a random character (uniform, drawn with ``generator``) and the first of
    the output; with one, ``first`` is None."""
    device = next(model.parameters()).device
    if prompt_ids.numel():
        logits, state = model(prompt_ids.to(device).expand(batch, -1))
        return None, logits[:, -1], state
    first = torch.randint(model.vocab_size, (batch,), generator=generator, device=device)
    return first, *model.step(first, None)


def sample(model: CharModel, prompt_ids: Tensor, length: int, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None, batch: int = 1) -> Tensor:
    """``batch`` samples of ``length >= 1`` characters continuing ``prompt_ids`` :math:`[T]`: ids
    :math:`[batch, length]`. One ``model.step`` per character, the state carried over. Its arguments are
    trusted (:func:`~gseq.models.generate` checks them); run it under ``torch.inference_mode``."""
    first, logits, state = prime(model, prompt_ids, batch, generator)
    out = [] if first is None else [first]
    start, noise = len(out), None
    for t in range(start, length):
        k = (t - start) % NOISE_CHUNK
        if temperature > 0 and k == 0:  # T g for the next NOISE_CHUNK characters
            noise = gumbel(min(NOISE_CHUNK, length - t), batch, model, generator).mul_(temperature)
        ids = draw(logits, None if noise is None else noise[k], temperature, top_k, top_p)
        out.append(ids)
        if t + 1 < length:
            logits, state = model.step(ids, state)
    return torch.stack(out, 1)
