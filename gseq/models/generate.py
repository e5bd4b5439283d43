"""Sampling text from a character language model: :func:`generate`, the checked entry point.

It checks its arguments once, then runs the reference sampler (:func:`gseq.models.sampling.sample`, the
spec), or on CUDA its fast path (:func:`gseq.models._graph_sampler.sample_static`: static buffers, noise
in the read-out bias, a CUDA graph), which draws the same characters from the same generator state.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
from torch import nn

from ..checks import choice, in_range, non_negative_float, non_negative_int, positive_int
from ..data.text import CharVocab
from ._graph_sampler import sample_static
from .sampling import NOISE_CHUNK, CharModel, sample

__all__ = ["CharModel", "generate"]

#: on the CPU, batches up to this size run the LSTM without oneDNN (see ``generate``)
SMALL_BATCH = 64


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


def _try_graph(model, prompt_ids, length, temperature, generator, batch, device):
    """The CUDA-graph fast path on the model's device, or None (after a warning, with the RNG state
    restored) if capture fails."""
    rng = generator.get_state() if generator is not None else torch.cuda.get_rng_state(device)
    try:
        with torch.cuda.device(device):  # streams, capture and replay on the model's GPU, not the current one
            return sample_static(model, prompt_ids, length, temperature, generator, batch, capture=True)
    except RuntimeError as err:  # pragma: no cover - needs a GPU
        warnings.warn(f"generate: CUDA graph capture failed ({err}); using the eager loop", RuntimeWarning)
        if generator is not None:
            generator.set_state(rng)
        else:
            torch.cuda.set_rng_state(rng, device)
        return None


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

    The prompt is run through the model in one call to prime its state; then each character is drawn
    from :math:`\mathrm{softmax}(z / T)` (after top-k, then top-p filtering) and fed back, one
    ``model.step`` per character, so ``length`` can be anything. An empty prompt starts from a random
    first character (uniform, drawn with ``generator``), the first of the ``length`` returned. Runs under
    ``torch.inference_mode`` with the model in eval mode (its mode is restored afterwards). The draws are
    those of :func:`gseq.models.sampling.sample` (Gumbel-max, noise drawn 256 characters at a time).

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
        cuda_graph: on CUDA, without top-k/top-p, run the fast path: the step captured in a CUDA graph
            (the same draws; the eager loop with a warning if capture fails; see :class:`CharModel`),
            once per model, batch size and greedy or not, until a parameter or buffer is replaced
            (in-place updates, as an optimiser makes them, keep it). (default: True)

    Returns:
        a list of ``batch`` strings of ``length`` characters each, without the prompt (also for
        ``batch=1``: take ``[0]``).

    Example::

        text = generate(model, vocab, "the people ", 200, temperature=0.5,
                        generator=torch.Generator().manual_seed(0))[0]
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
    unfiltered = (top_k is None or top_k >= len(vocab)) and (top_p is None or top_p >= 1)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            ids = None
            if cuda_graph and device.type == "cuda" and unfiltered:
                ids = _try_graph(model, prompt_ids, length, temperature, generator, batch, device)
            if ids is None:
                # on the CPU oneDNN's LSTM spends a fixed ~0.2 ms setting up every call, which dominates
                # one step of a small batch; the native kernels are several times faster (bench_text.py)
                with _mkldnn_off() if device.type == "cpu" and batch <= SMALL_BATCH else contextlib.nullcontext():
                    ids = sample(model, prompt_ids, length, temperature, top_k, top_p, generator, batch)
    finally:
        model.train(was_training)
    chars = vocab.chars
    return ["".join(chars[i] for i in row) for row in ids.tolist()]
