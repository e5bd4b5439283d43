r"""Sampling text from a character language model, one model step per character.

The next character is drawn from :math:`\mathrm{softmax}(z / T)` where :math:`z` are the model's logits
and :math:`T` the temperature (PyTorch's and Hugging Face's convention). The original report wrote
:math:`\mathrm{softmax}(\tau z)`: the same distribution with :math:`\tau = 1/T`. :math:`T = 0` is greedy
(argmax), :math:`T \to 0` approaches it, :math:`T = 1` samples the model's own distribution, and
:math:`T > 1` flattens it.

Sampling uses the Gumbel-max trick: :math:`\arg\max_i (z_i / T + g_i)` with
:math:`g_i = -\log(-\log u_i)`, :math:`u_i \sim U(0, 1)` is an exact draw from
:math:`\mathrm{softmax}(z / T)`. The noise for many steps is drawn at once from the given generator
(reproducible with a seed); for a :class:`~gseq.models.CharLSTM` it is scaled by :math:`T` and folded into
the read-out bias, :math:`\arg\max_i (W h + b + T g)_i`, so a step costs one bare model step plus an argmax:
no ``torch.multinomial``, no host synchronisation, and the same work every step, which is what a CUDA
graph needs.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import warnings
import weakref
from collections import OrderedDict
from numbers import Real

import torch
from torch import Tensor, nn

from ..data.text import CharVocab
from .char_lstm import CharLSTM  # for the fast paths (noise in the read-out bias, CUDA graphs); one-way

__all__ = ["generate"]

#: steps of Gumbel noise drawn per call to the generator
NOISE_CHUNK = 256
#: on the CPU, batches up to this size run the LSTM without oneDNN (see ``_cpu_rnn_flags``)
SMALL_BATCH = 64


def _check_args(model, vocab, prompt, length, temperature, top_k, top_p, generator, batch, unknown) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a CharLSTM (torch.nn.Module), got {type(model).__name__}")
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab: expected a gseq.data.CharVocab, got {type(vocab).__name__}")
    size = getattr(model, "vocab_size", None)
    if size is not None and size != len(vocab):
        raise ValueError(f"vocab: has {len(vocab)} characters but the model predicts {size}; "
                         "use the vocabulary stored with the model's checkpoint")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length: must be an integer >= 0, got {length!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, Real) or not math.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"temperature: must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: must be an integer >= 1 or None, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, Real) or not 0 < top_p <= 1):
        raise ValueError(f"top_p: must lie in (0, 1] or be None, got {top_p!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: must be a positive integer, got {batch!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if unknown not in ("error", "skip"):
        raise ValueError(f"unknown: must be 'error' or 'skip', got {unknown!r}")


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


def _gumbel(steps: int, batch: int, vocab: int, generator, device, dtype) -> Tensor:
    u = torch.rand((steps, batch, vocab), generator=generator, device=device, dtype=dtype)
    return u.log_().neg_().log_().neg_()


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


def _step_fn(model: nn.Module):
    step = getattr(model, "step", None)
    if step is not None:
        return step

    def fallback(ids: Tensor, state):
        logits, state = model(ids.unsqueeze(1), state)
        return logits[:, -1], state

    return fallback


def _prime(model, prompt_ids: Tensor, length: int, batch: int, generator):
    """Run the prompt (or draw a random first character): ``(out [length, batch], start, logits, state)``
    with ``out[:start]`` filled and ``logits`` predicting character ``start``."""
    device = next(model.parameters()).device
    out = torch.empty(length, batch, dtype=torch.long, device=device)
    if prompt_ids.numel() == 0:
        ids = torch.randint(model.vocab_size, (batch,), generator=generator, device=device)
        out[0] = ids
        logits, state = _step_fn(model)(ids, None) if length > 1 else (None, None)
        return out, 1, logits, state
    logits, state = model(prompt_ids.to(device).unsqueeze(0).expand(batch, -1))
    return out, 0, logits[:, -1], state


def _noise(model, t: int, length: int, batch: int, generator, temperature: float | None) -> Tensor:
    """Gumbel noise for steps ``t .. t + NOISE_CHUNK`` (fewer at the end), scaled by ``temperature``."""
    param = next(model.parameters())
    noise = _gumbel(min(NOISE_CHUNK, length - t), batch, model.vocab_size, generator, param.device, param.dtype)
    return noise.mul_(temperature) if temperature is not None else noise


def _fused(model) -> bool:
    """Whether the model's step takes the sampling noise as its read-out bias (a CharLSTM)."""
    return isinstance(model, CharLSTM)


def _noisy_bias(model, t, length, batch, generator, temperature) -> Tensor:
    """``b + T g`` for the steps of one noise chunk: the read-out bias with the scaled Gumbel noise."""
    return _noise(model, t, length, batch, generator, temperature).add_(model.head.bias)


def _sample_ids(model, prompt_ids: Tensor, length: int, temperature: float, top_k, top_p, generator,
                batch: int) -> Tensor:
    """The eager loop: ``[batch, length]`` ids. Runs under ``torch.inference_mode``."""
    out, start, logits, state = _prime(model, prompt_ids, length, batch, generator)
    if start >= length:
        return out.t()
    step = _step_fn(model)
    greedy = temperature == 0
    filtered = not greedy and (top_k is not None or (top_p is not None and top_p < 1))
    picked = []
    if not greedy and not filtered and _fused(model):
        # argmax(z / T + g) == argmax(W h + (b + T g)): the noise rides in the read-out's bias, so a step
        # costs the bare model step plus one argmax
        bias = _noisy_bias(model, start, length, batch, generator, temperature)
        ids = (logits + (bias[0] - model.head.bias)).argmax(-1)
        picked.append(ids)
        for t in range(start + 1, length):
            k = (t - start) % NOISE_CHUNK
            if k == 0:
                bias = _noisy_bias(model, t, length, batch, generator, temperature)
            logits, state = model.step(ids, state, bias[k])
            ids = logits.argmax(-1)
            picked.append(ids)
        out[start:] = torch.stack(picked)
        return out.t()
    noise = None
    for t in range(start, length):
        if greedy:
            ids = logits.argmax(-1)
        else:
            k = (t - start) % NOISE_CHUNK
            if k == 0:  # argmax(z / T + g) == argmax(z + T g) for T > 0: scale the noise once
                noise = _noise(model, t, length, batch, generator, None if filtered else temperature)
            if filtered:
                ids = (_filter(logits / temperature, top_k, top_p) + noise[k]).argmax(-1)
            else:
                ids = (logits + noise[k]).argmax(-1)
        picked.append(ids)
        if t + 1 < length:
            logits, state = step(ids, state)
    out[start:] = torch.stack(picked)
    return out.t()


def _signature(model: nn.Module) -> tuple:
    """What a captured step depends on beyond the values held in the model's tensors: the training flag
    and the device, dtype, shape, strides and storage address of every parameter and buffer.

    A CUDA graph replays its kernels on fixed addresses. Updates in place (an optimiser step,
    ``p.copy_()``, ``load_state_dict`` without ``assign``) keep the addresses, so a cached graph replays
    with the new values: they must not (and do not) invalidate it, or the sample logger of a training
    loop would recapture at every call. Replacing a tensor (``.to()``, ``.half()``,
    ``load_state_dict(assign=True)``, a new ``nn.Parameter``, ``p.data = ...``, cuDNN's
    ``flatten_parameters`` into a new buffer) changes an address, dtype or layout, and with it the
    signature. A new tensor that lands on the freed address with the same layout leaves the signature
    unchanged, and rightly so: the graph then reads exactly that tensor.
    """
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return (model.training,) + tuple((name, t.device, t.dtype, tuple(t.shape), t.stride(), t.data_ptr())
                                     for name, t in tensors)


class _StepCache:
    """A small LRU of sampling steps (static buffers and, on CUDA, the captured graph), ``size`` entries
    for all models together, each keyed by the model's identity and ``key`` and checked against
    :func:`_signature` on every hit.

    An entry holds the model only through a weak reference (the step calls ``model.step`` through it),
    so a cached graph never keeps a model alive, and the entries of a model are dropped when it is
    collected.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.builds = 0  # entries built so far (CUDA graphs captured, on CUDA)
        self._entries: OrderedDict[tuple, tuple[weakref.ref, tuple, object]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model: nn.Module, key: tuple, build):
        """The entry for ``(model, key)``; ``build()`` makes a new one when there is none or the model's
        signature changed since (the stale one is dropped first, freeing its graph's memory)."""
        slot = (id(model),) + tuple(key)
        signature = _signature(model)
        found = self._entries.pop(slot, None)
        if found is not None and found[0]() is model and found[1] == signature:
            self._entries[slot] = found  # most recently used last
            return found[2]
        del found
        value = build()
        self.builds += 1
        ref = weakref.ref(model, functools.partial(_StepCache._forget, weakref.ref(self), id(model)))
        self._entries[slot] = (ref, signature, value)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    @staticmethod
    def _forget(cache_ref: weakref.ref, model_id: int, _dead: weakref.ref) -> None:
        cache = cache_ref()
        if cache is not None:
            for slot in [s for s in cache._entries if s[0] == model_id]:
                del cache._entries[slot]


#: steps kept for all models together (each holds its static buffers and, on CUDA, a captured graph)
STEP_CACHE_SIZE = 8
_STEPS = _StepCache(STEP_CACHE_SIZE)


class _StaticStep:
    """One sampling step over static buffers: it reads its noise row and writes its output at a position
    held in a device tensor that it advances itself, so on CUDA it is captured once in a CUDA graph and
    replayed with no host work in between (``capture=False`` runs it eagerly: how it is tested on the
    CPU). The graph does not depend on the sample length, the prompt or the generator: the buffers are
    refilled by every call."""

    def __init__(self, model, state, batch: int, greedy: bool, dtype: torch.dtype, capture: bool) -> None:
        h, c = state
        device = h.device
        self.ids = torch.zeros(batch, dtype=torch.long, device=device)
        self.h, self.c = torch.zeros_like(h), torch.zeros_like(c)
        self.noise = None if greedy else torch.zeros(NOISE_CHUNK, batch, model.vocab_size, device=device,
                                                     dtype=dtype)
        self.out = torch.zeros(NOISE_CHUNK, batch, dtype=torch.long, device=device)
        self.ptr = torch.zeros(1, dtype=torch.long, device=device)
        self._model = weakref.ref(model)
        self.run = _cuda_graph(self._step, device) if capture else self._step

    def _step(self) -> None:
        bias = None if self.noise is None else self.noise.index_select(0, self.ptr)[0]
        logits, (h, c) = self._model().step(self.ids, (self.h, self.c), bias)
        nxt = logits.argmax(-1)
        self.out.index_copy_(0, self.ptr, nxt.unsqueeze(0))
        self.ids.copy_(nxt)
        self.h.copy_(h)
        self.c.copy_(c)
        self.ptr.add_(1)


def _sample_ids_static(model, prompt_ids: Tensor, length: int, temperature: float, generator, batch: int,
                       capture: bool) -> Tensor:
    """The same draws as :func:`_sample_ids` (no top-k/top-p) through a cached :class:`_StaticStep`."""
    out, start, logits, state = _prime(model, prompt_ids, length, batch, generator)
    if start >= length:
        return out.t()
    greedy = temperature == 0
    noise = None if greedy else _noisy_bias(model, start, length, batch, generator, temperature)
    ids = logits.argmax(-1) if greedy else (logits + (noise[0] - model.head.bias)).argmax(-1)
    out[start] = ids
    if start + 1 == length:
        return out.t()
    step = _STEPS.get(model, (batch, greedy, capture),
                      lambda: _StaticStep(model, state, batch, greedy, logits.dtype, capture))
    step.ids.copy_(ids)
    step.h.copy_(state[0])
    step.c.copy_(state[1])
    if noise is not None:
        step.noise[: noise.size(0)].copy_(noise)
    t, row = start + 1, 1
    while t < length:
        if row == NOISE_CHUNK:
            if not greedy:
                noise = _noisy_bias(model, t, length, batch, generator, temperature)
                step.noise[: noise.size(0)].copy_(noise)
            row = 0
        n = min(NOISE_CHUNK - row, length - t)
        step.ptr.fill_(row)
        for _ in range(n):
            step.run()
        out[t:t + n] = step.out[row:row + n]
        t, row = t + n, row + n
    return out.t()


def _cuda_graph(fn, device: torch.device):
    """Capture ``fn`` (which updates its static buffers in place) in a CUDA graph on ``device``; return
    its ``replay``. Warm-up and capture run on a side stream made on ``device``. Captured with
    ``capture_begin``/``capture_end`` rather than ``torch.cuda.graph``, whose entry empties the caching
    allocator (``torch.cuda.empty_cache()``): that would throw away a training loop's cached memory."""
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(side):
        for _ in range(2):  # warm-up outside the graph (lazy initialisation, cuDNN plans), as capture requires
            fn()
        graph.capture_begin()
        try:
            fn()
        except BaseException:
            with contextlib.suppress(RuntimeError):
                graph.capture_end()
            raise
        graph.capture_end()
    torch.cuda.current_stream(device).wait_stream(side)
    return graph.replay


def _try_graph(model, prompt_ids, length, temperature, generator, batch, device):
    """The CUDA-graph loop on the model's device, or None (after a warning, with the RNG state restored)
    if capture fails."""
    rng = generator.get_state() if generator is not None else torch.cuda.get_rng_state(device)
    try:
        with torch.cuda.device(device):  # streams, capture and replay on the model's GPU, not the current one
            return _sample_ids_static(model, prompt_ids, length, temperature, generator, batch, capture=True)
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


def _graph_eligible(model, device: torch.device, top_k, top_p) -> bool:
    return device.type == "cuda" and isinstance(model, CharLSTM) and top_k is None and top_p in (None, 1.0)


def generate(
    model: nn.Module,
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

    The prompt is run through the model in one call to prime the LSTM state; then each new character
    is drawn from :math:`\mathrm{softmax}(z / T)` (after top-k, then top-p filtering) and fed back, one
    model step per character, with the state carried over, so ``length`` can be anything. An empty
    prompt starts from a random first character (uniform over the vocabulary, drawn with
    ``generator``), which is the first of the ``length`` characters returned. Runs under
    ``torch.inference_mode`` with the model in eval mode (its mode is restored afterwards).

    Args:
        model: a :class:`~gseq.models.CharLSTM` (or any module with ``vocab_size`` and
            ``forward(ids [B, T], state) -> (logits [B, T, V], state)``).
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
        cuda_graph: on CUDA, without top-k/top-p, capture the per-character step of a
            :class:`~gseq.models.CharLSTM` in a CUDA graph and replay it (same draws as the eager loop;
            falls back to the eager loop with a warning if capture fails). The graph is captured once
            per model and batch size (and greedy or not) and reused by later calls, until a parameter
            or buffer of the model is replaced (``.to()``, ``load_state_dict(assign=True)``); updates
            in place, as an optimiser makes them, keep it. (default: True)

    Returns:
        a list of ``batch`` strings of ``length`` characters each, without the prompt (always a list,
        also for ``batch=1``: take ``[0]``).
    """
    _check_args(model, vocab, prompt, length, temperature, top_k, top_p, generator, batch, unknown)
    _check_fits(length, batch, len(vocab))
    prompt_ids = vocab.encode(prompt, unknown=unknown)
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
            if cuda_graph and _graph_eligible(model, device, top_k, top_p):
                ids = _try_graph(model, prompt_ids, length, temperature, generator, batch, device)
            if ids is None:
                with _cpu_rnn_flags(device, batch):
                    ids = _sample_ids(model, prompt_ids, length, temperature, top_k, top_p, generator, batch)
    finally:
        model.train(was_training)
    chars = vocab.chars
    return ["".join(chars[i] for i in row) for row in ids.tolist()]
