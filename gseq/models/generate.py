r"""Sampling text from a character language model, one model step per character.

The next character is drawn from :math:`\mathrm{softmax}(z / T)` where :math:`z` are the model's logits
and :math:`T` the temperature (PyTorch's and Hugging Face's convention). The original report wrote
:math:`\mathrm{softmax}(\tau z)`: the same distribution with :math:`\tau = 1/T`. :math:`T = 0` is greedy
(argmax), :math:`T \to 0` approaches it, :math:`T = 1` samples the model's own distribution, and
:math:`T > 1` flattens it.

Sampling uses the Gumbel-max trick: :math:`\arg\max_i (z_i / T + g_i)` with
:math:`g_i = -\log(-\log u_i)`, :math:`u_i \sim U(0, 1)` is an exact draw from
:math:`\mathrm{softmax}(z / T)`. The noise for many steps is drawn at once from the given generator
(reproducible with a seed). Any model that meets :class:`CharModel` can be sampled; the loop has two
variations chosen by what the model can do:

- **noise in the bias**: when the model's ``step`` takes ``bias`` (the read-out bias to use), the noise,
  scaled by :math:`T`, is folded into it: :math:`\arg\max_i (W h + b + T g)_i`, so a step costs one bare
  model step plus an argmax: no ``torch.multinomial``, no host synchronisation, the same work every step;
- **CUDA-graph replay**: on CUDA the step (model step and draw) runs over static buffers, is captured
  once in a CUDA graph and replayed (:mod:`gseq.models._step_graph`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..checks import choice, in_range, non_negative_float, non_negative_int, positive_int
from ..data.text import CharVocab
from ._step_graph import STEPS, StaticStep

__all__ = ["CharModel", "generate"]

#: steps of Gumbel noise drawn per call to the generator
NOISE_CHUNK = 256
#: on the CPU, batches up to this size run the LSTM without oneDNN (see ``_cpu_rnn_flags``)
SMALL_BATCH = 64


class CharModel(Protocol):
    r"""What :func:`generate` needs from a model: an ``nn.Module`` (its parameters give the device, and it
    is put in eval mode while sampling) with these members. :class:`~gseq.models.CharLSTM` meets it.

    - ``vocab_size``: the number of characters :math:`V` it predicts (checked against the vocabulary);
    - ``model(ids, state=None) -> (logits, state)``: ids :math:`[B, T]` to logits :math:`[B, T, V]`; runs
      the prompt in one call;
    - ``step(ids, state=None) -> (logits, state)``: ids :math:`[B]` to logits :math:`[B, V]`, one
      character; ``state`` is what the last call returned (None: the initial state).

    Optional, for a faster sampling step (*noise in the bias*): ``step(ids, state, bias)`` where ``bias``
    :math:`[B, V]` replaces the read-out bias ``model.head.bias`` :math:`[V]`, that is, returns
    :math:`W h + \text{bias}` for the logits :math:`W h + b`. :func:`generate` then passes :math:`b + T g`
    and the step's logits already carry the sampling noise. A ``step`` without ``bias`` samples the same
    distribution with one addition more per character.

    On CUDA (``generate(cuda_graph=True)``) the step is captured in a CUDA graph and replayed: the state
    must then be None, a tensor or a tuple of tensors whose shapes stay the same from step to step, and a
    step must depend on nothing but its arguments and the model's parameters and buffers (no counter kept
    in Python), which is what a ``step(ids, state)`` means. A state of another form falls back to the eager
    loop with a warning; pass ``cuda_graph=False`` for a step that keeps Python state.
    """

    vocab_size: int

    def __call__(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...

    def step(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One character: ids :math:`[B]` -> logits :math:`[B, V]` and the new state."""
        ...


def _check_args(model, vocab, prompt, length, temperature, top_k, top_p, generator, batch, unknown) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module that meets gseq.models.CharModel (e.g. a CharLSTM), "
                        f"got {type(model).__name__}")
    missing = [name for name, ok in (("vocab_size", isinstance(getattr(model, "vocab_size", None), int)),
                                     ("step", callable(getattr(model, "step", None)))) if not ok]
    if missing:
        raise TypeError(f"model: {type(model).__name__} has no {' and no '.join(missing)}; generate needs a model "
                        "that meets gseq.models.CharModel: vocab_size, model(ids [B, T], state) -> "
                        "(logits [B, T, V], state) and step(ids [B], state) -> (logits [B, V], state)")
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab: expected a gseq.data.CharVocab, got {type(vocab).__name__}")
    if model.vocab_size != len(vocab):
        raise ValueError(f"vocab: has {len(vocab)} characters but the model predicts {model.vocab_size}; "
                         "use the vocabulary stored with the model's checkpoint")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
    non_negative_int("length", length)
    non_negative_float("temperature", temperature, hint=" (0 = greedy)")
    positive_int("top_k", top_k, none_ok=True)
    in_range("top_p", top_p, 0, 1, low_open=True, none_ok=True)
    positive_int("batch", batch)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    choice("unknown", unknown, ("error", "skip"))


def _check_fits(length: int, batch: int, vocab_size: int, names: tuple[str, str] = ("length", "batch")) -> None:
    """Refuse, before allocating anything, an output that cannot fit in this machine's memory: about 32
    bytes per character (ids, then text) plus a chunk of float noise. ``names`` name the two arguments."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # a system that does not say
        return
    need = 32 * length * batch + 8 * min(length, NOISE_CHUNK) * batch * vocab_size
    if need > memory:
        raise ValueError(f"{names[0]}, {names[1]}: {length:,} characters x {batch:,} samples need about {need / 2**30:,.0f} GiB, "
                         f"more than this machine's {memory / 2**30:,.0f} GiB; generate fewer or shorter samples")


# ---------------------------------------------------------------------- the draw of one character
def _gumbel(steps: int, batch: int, vocab: int, generator, device, dtype) -> Tensor:
    u = torch.rand((steps, batch, vocab), generator=generator, device=device, dtype=dtype)
    return u.log_().neg_().log_().neg_()


def _filtered(top_k: int | None, top_p: float | None) -> bool:
    return top_k is not None or (top_p is not None and top_p < 1)


def _filter(scaled: Tensor, top_k: int | None, top_p: float | None) -> Tensor:
    """Set the logits outside the top-k, then outside the top-p nucleus, to -inf."""
    if top_k is not None and top_k < scaled.size(-1):
        kth = scaled.topk(top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    if top_p is not None and top_p < 1:
        probs, order = scaled.softmax(-1).sort(dim=-1, descending=True)
        # drop a character when the more likely ones already hold top_p of the mass (the first always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        scaled = scaled.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return scaled


def _step_takes_bias(model: nn.Module) -> bool:
    """Whether ``model.step`` takes ``bias``, the read-out bias to use in place of ``model.head.bias``."""
    if not isinstance(getattr(getattr(model, "head", None), "bias", None), Tensor):
        return False
    try:
        return "bias" in inspect.signature(model.step).parameters
    except (TypeError, ValueError):  # a step whose signature Python cannot read
        return False


GREEDY, GUMBEL, NOISE_IN_BIAS, FILTERED = "greedy", "gumbel", "noise_in_bias", "filtered"


@dataclass(frozen=True)
class _Draw:
    r"""How the loop draws the next character from the logits :math:`z`, one of four kinds:

    - ``greedy`` (:math:`T = 0`): :math:`\arg\max z`, no noise;
    - ``gumbel``: :math:`\arg\max (z + T g)`, the same draw as :math:`\arg\max (z / T + g)` with the
      noise scaled once per chunk;
    - ``noise_in_bias``: the same draw with :math:`b + T g` passed as the step's read-out bias, so the
      step's logits :math:`W h + b + T g` already carry the noise and the draw is a bare argmax (for a
      model whose ``step`` takes ``bias``);
    - ``filtered`` (top-k/top-p): :math:`\arg\max (\mathrm{filter}(z / T) + g)`.

    ``temperature``, ``top_k`` and ``top_p`` are only read where the kind needs them (the noise of every
    kind but ``greedy``; the step of ``filtered``).
    """

    kind: str
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None

    @classmethod
    def choose(cls, model: nn.Module, temperature: float, top_k, top_p) -> _Draw:
        if temperature == 0:
            return cls(GREEDY)
        if _filtered(top_k, top_p):
            return cls(FILTERED, temperature, top_k, top_p)
        return cls(NOISE_IN_BIAS if _step_takes_bias(model) else GUMBEL, temperature)

    def noise(self, model: nn.Module, steps: int, batch: int, generator) -> Tensor | None:
        """The noise rows of ``steps`` steps, :math:`[steps, B, V]`: :math:`g` (``filtered``), :math:`T g`
        (``gumbel``), :math:`b + T g` (``noise_in_bias``: the steps' read-out bias); None for ``greedy``."""
        if self.kind == GREEDY:
            return None
        param = next(model.parameters())
        noise = _gumbel(steps, batch, model.vocab_size, generator, param.device, param.dtype)
        if self.kind == FILTERED:
            return noise
        noise.mul_(self.temperature)  # argmax(z / T + g) == argmax(z + T g) for T > 0
        return noise.add_(model.head.bias) if self.kind == NOISE_IN_BIAS else noise

    def first(self, model: nn.Module, logits: Tensor, noise: Tensor | None) -> Tensor:
        """The first character, from the prompt's logits :math:`[B, V]` (which carry no noise yet) and the
        first noise row."""
        if self.kind == NOISE_IN_BIAS:
            return (logits + (noise[0] - model.head.bias)).argmax(-1)
        return self.pick(logits, None if noise is None else noise[0])

    def pick(self, logits: Tensor, row: Tensor | None) -> Tensor:
        """A character from logits without noise and the step's noise row (not for ``noise_in_bias``)."""
        if self.kind == GREEDY:
            return logits.argmax(-1)
        if self.kind == FILTERED:
            return (_filter(logits / self.temperature, self.top_k, self.top_p) + row).argmax(-1)
        return (logits + row).argmax(-1)

    def step(self, model: nn.Module, ids: Tensor, state, row: Tensor | None) -> tuple[Tensor, Any]:
        """One model step from the characters ``ids``, then the draw: the next ``(ids, state)``."""
        if self.kind == NOISE_IN_BIAS:
            logits, state = model.step(ids, state, bias=row)  # W h + (b + T g)
            return logits.argmax(-1), state
        logits, state = model.step(ids, state)
        return self.pick(logits, row), state


# ---------------------------------------------------------------------- the sampling loop
def _prime(model, prompt_ids: Tensor, length: int, batch: int, generator):
    """Run the prompt (or draw a random first character): ``(out [length, batch], start, logits, state)``
    with ``out[:start]`` filled and ``logits`` predicting character ``start``."""
    device = next(model.parameters()).device
    out = torch.empty(length, batch, dtype=torch.long, device=device)
    if prompt_ids.numel() == 0:
        ids = torch.randint(model.vocab_size, (batch,), generator=generator, device=device)
        out[0] = ids
        logits, state = model.step(ids, None) if length > 1 else (None, None)
        return out, 1, logits, state
    logits, state = model(prompt_ids.to(device).unsqueeze(0).expand(batch, -1))
    return out, 0, logits[:, -1], state


def _static_step(model, draw: _Draw, batch: int, ids: Tensor, state, noise, capture: bool) -> StaticStep:
    """The cached :class:`StaticStep` of ``(model, batch, draw.kind, capture)``, loaded with ``ids`` and
    ``state``. Its body reads the model through a weak reference and nothing of the draw but its kind."""
    model_ref, kind_only = weakref.ref(model), _Draw(draw.kind)

    def body(ids, state, row):
        return kind_only.step(model_ref(), ids, state, row)

    step = STEPS.get(model, (batch, draw.kind, capture),
                     lambda: StaticStep(body, ids, state, noise, NOISE_CHUNK, capture))
    step.load(ids, state)
    return step


def _sample_ids(model, prompt_ids: Tensor, length: int, temperature: float, top_k, top_p, generator, batch: int,
                *, static: bool = False, capture: bool = False) -> Tensor:
    """The sampling loop: ``[batch, length]`` ids. Runs under ``torch.inference_mode``.

    The noise is drawn per chunk of :data:`NOISE_CHUNK` steps. The first character comes from the
    prompt's logits; each later one costs one model step and a draw (:class:`_Draw`). With ``static`` the
    steps run over the cached static buffers of a :class:`StaticStep` (captured in a CUDA graph with
    ``capture``): the same draws from the same generator state.
    """
    draw = _Draw.choose(model, temperature, top_k, top_p)
    if static and draw.kind == FILTERED:
        raise ValueError("static: a step over static buffers takes no top-k/top-p; run the eager loop")
    out, start, logits, state = _prime(model, prompt_ids, length, batch, generator)
    replay = None
    for t in range(start, length, NOISE_CHUNK):
        n = min(NOISE_CHUNK, length - t)
        noise = draw.noise(model, n, batch, generator)
        k = 0
        if t == start:  # the first character, from the prompt's logits
            out[t] = ids = draw.first(model, logits, noise)
            k = 1
        if k == n:  # nothing more to draw
            continue
        if static:
            if replay is None:
                replay = _static_step(model, draw, batch, ids, state, noise, capture)
            out[t + k:t + n] = replay.run(noise, k, n)
        else:
            picked = []
            for row in range(k, n):
                ids, state = draw.step(model, ids, state, None if noise is None else noise[row])
                picked.append(ids)
            out[t + k:t + n] = torch.stack(picked)
    return out.t()


def _try_graph(model, prompt_ids, length, temperature, generator, batch, device):
    """The loop with its step captured in a CUDA graph on the model's device, or None (after a warning,
    with the RNG state restored) if capture fails."""
    rng = generator.get_state() if generator is not None else torch.cuda.get_rng_state(device)
    try:
        with torch.cuda.device(device):  # streams, capture and replay on the model's GPU, not the current one
            return _sample_ids(model, prompt_ids, length, temperature, None, None, generator, batch,
                               static=True, capture=True)
    except RuntimeError as err:  # pragma: no cover - needs a GPU
        warnings.warn(f"generate: CUDA graph capture failed ({err}); using the eager loop", RuntimeWarning)
        if generator is not None:
            generator.set_state(rng)
        else:
            torch.cuda.set_rng_state(rng, device)
        return None


def _cpu_rnn_flags(device: torch.device, batch: int):
    """On the CPU, oneDNN's (mkldnn) LSTM spends a fixed ~0.2 ms setting up every call, which dominates one
    step of a small batch; the native kernels are several times faster there (benchmarks/bench_text.py)."""
    if device.type == "cpu" and batch <= SMALL_BATCH:
        return _mkldnn_off()
    return contextlib.nullcontext()


@contextlib.contextmanager
def _mkldnn_off():
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def generate(
    model: CharModel,
    vocab: CharVocab,
    prompt: str = "",
    length: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    batch: int = 1,
    *,
    unknown: str = "error",
    cuda_graph: bool = True,
) -> list[str]:
    r"""Sample ``batch`` continuations of ``length`` characters from a character language model.

    The prompt is run through the model in one call to prime its state; then each new character is
    drawn from :math:`\mathrm{softmax}(z / T)` (after top-k, then top-p filtering) and fed back, one
    ``model.step`` per character, with the state carried over, so ``length`` can be anything. An empty
    prompt starts from a random first character (uniform over the vocabulary, drawn with
    ``generator``), which is the first of the ``length`` characters returned. Runs under
    ``torch.inference_mode`` with the model in eval mode (its mode is restored afterwards).

    The model is anything that meets :class:`CharModel`: ``vocab_size``, ``model(ids [B, T], state)``
    for the prompt and ``step(ids [B], state)`` for one character. A ``step`` that also takes ``bias``
    (the read-out bias to use, as :meth:`CharLSTM.step <gseq.models.CharLSTM.step>` does) gets the
    sampling noise folded into it: one model step and an argmax per character.

    Args:
        model: a module that meets :class:`CharModel`, e.g. a :class:`~gseq.models.CharLSTM`.
        vocab: the vocabulary the model was trained with.
        prompt: text that primes the state; the output continues it. (default: ``""``)
        length: number of characters to generate, ``>= 0``. (default: ``200``)
        temperature: :math:`T`; ``0`` is greedy argmax. The report's :math:`\tau` is ``1 / T``.
            (default: ``1.0``)
        top_k: keep only the ``top_k`` most likely characters (``>= 1``). (default: None)
        top_p: keep the smallest set of most likely characters whose probability reaches ``top_p``, in
            ``(0, 1]``. (default: None)
        generator: the random generator (on the model's device); None uses torch's global one.
            (default: None)
        batch: number of independent samples. (default: ``1``)
        unknown: prompt characters not in the vocabulary: ``"error"`` raises a ``ValueError`` naming
            them, ``"skip"`` drops them. (default: ``"error"``)
        cuda_graph: on CUDA, without top-k/top-p, capture the per-character step (model step and draw)
            in a CUDA graph and replay it (same draws as the eager loop; falls back to the eager loop with
            a warning if capture fails; see :class:`CharModel` for what the step must allow). The graph
            is captured once per model and batch size (and greedy or not) and reused by later calls,
            until a parameter or buffer of the model is replaced (``.to()``,
            ``load_state_dict(assign=True)``); updates in place, as an optimiser makes them, keep it.
            (default: True)

    Returns:
        a list of ``batch`` strings of ``length`` characters each, without the prompt (always a list,
        also for ``batch=1``: take ``[0]``).

    Raises:
        TypeError: ``model`` lacks ``vocab_size`` or ``step`` (it does not meet :class:`CharModel`), or
            another argument has the wrong type.
    """
    _check_args(model, vocab, prompt, length, temperature, top_k, top_p, generator, batch, unknown)
    _check_fits(length, batch, len(vocab))
    prompt_ids = vocab.encode(prompt, unknown=unknown, name="prompt")
    if length == 0:
        return [""] * batch
    device = next(model.parameters()).device
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"generator: lives on {generator.device} but the model on {device}; "
                         f"make it with torch.Generator(device={str(device)!r})")
    temperature, top_p = float(temperature), None if top_p is None else float(top_p)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            ids = None
            if cuda_graph and device.type == "cuda" and not _filtered(top_k, top_p):
                ids = _try_graph(model, prompt_ids, length, temperature, generator, batch, device)
            if ids is None:
                with _cpu_rnn_flags(device, batch):
                    ids = _sample_ids(model, prompt_ids, length, temperature, top_k, top_p, generator, batch)
    finally:
        model.train(was_training)
    chars = vocab.chars
    return ["".join(chars[i] for i in row) for row in ids.tolist()]
