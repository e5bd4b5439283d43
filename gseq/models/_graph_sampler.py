"""The fast path of :func:`~gseq.models.generate` on CUDA: :func:`sample_static` draws what the reference
:func:`~gseq.models.sampling.sample` draws (no top-k/top-p), with the per-character step run over static
buffers, the noise folded into the read-out bias, and the step captured once in a CUDA graph and replayed.

A CUDA graph replays its kernels on fixed addresses with no host work in between: the step reads its noise
row and writes its output at a position held in a device tensor that it advances itself, and the carried
ids and state live in buffers that the step overwrites. Run without capture (the CPU tests), the same step
is tested equal to the reference. Captured steps are cached per model (weakly) and batch size.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .sampling import NOISE_CHUNK, draw, gumbel, prime

__all__ = ["StaticStep", "StepCache", "STEPS", "sample_static", "signature"]


def signature(model: nn.Module) -> tuple:
    """What a captured step depends on beyond the values in the model's tensors: the training flag and
    the device, dtype, shape, strides and address of every parameter and buffer. Updates in place (an
    optimiser step, ``load_state_dict``) keep it, so the graph replays on the new values; replacing a
    tensor (``.to()``, ``load_state_dict(assign=True)``, a new ``nn.Parameter``) changes it."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return (model.training,) + tuple((name, t.device, t.dtype, tuple(t.shape), t.stride(), t.data_ptr())
                                     for name, t in tensors)


class StepCache:
    """The steps built for each model (held weakly: a cached graph never keeps a model alive), ``size``
    per model, most recently used last, each rebuilt when the model's :func:`signature` changed."""

    def __init__(self, size: int) -> None:
        self.size, self.builds = size, 0  # builds: steps built so far (graphs captured, on CUDA)
        self._models: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return sum(map(len, self._models.values()))

    def get(self, model: nn.Module, key: tuple, build: Callable[[], object]):
        entries = self._models.setdefault(model, {})
        found, current = entries.pop(key, None), signature(model)
        if found is None or found[0] != current:
            found = None  # a stale step (and its graph's memory) goes before the new one is built
            found, self.builds = (current, build()), self.builds + 1
        entries[key] = found
        while len(entries) > self.size:
            del entries[next(iter(entries))]
        return found[1]


STEPS = StepCache(4)


def _tensors(state) -> tuple[Tensor, ...]:
    """The tensors of a state: None, a tensor or a tuple of tensors (what static buffers can hold)."""
    if state is None or isinstance(state, Tensor):
        return () if state is None else (state,)
    if isinstance(state, tuple) and all(isinstance(s, Tensor) for s in state):
        return state
    raise RuntimeError(f"the model's state is a {type(state).__name__}, not None, a tensor or a tuple of "
                       "tensors: a step over static buffers cannot hold it")


class StaticStep:
    """One model step and the argmax of the next ids over static buffers: ``ids`` [B], the state,
    ``NOISE_CHUNK`` rows of noise (none when greedy: the row is added to the logits, or passed as the
    step's ``bias`` with ``in_bias``) and as many of output. ``ids`` and ``state`` give the buffers'
    shapes; with ``capture`` the step is captured in a CUDA graph on their device."""

    def __init__(self, model: nn.Module, ids: Tensor, state, noise: Tensor | None, in_bias: bool,
                 capture: bool) -> None:
        self.model, self.in_bias = weakref.ref(model), in_bias  # cached per model: held weakly
        buffers = tuple(map(torch.zeros_like, _tensors(state)))
        self.state = buffers if isinstance(state, tuple) else buffers[0] if buffers else None  # state's form
        self.ids, self.out = torch.zeros_like(ids), ids.new_zeros((NOISE_CHUNK,) + ids.shape)
        self.noise = None if noise is None else noise.new_zeros((NOISE_CHUNK,) + noise.shape[1:])
        self.ptr = torch.zeros(1, dtype=torch.long, device=ids.device)
        self.replay = capture_graph(self._step, ids.device) if capture else self._step

    def load(self, ids: Tensor, state) -> None:
        buffers, values = _tensors(self.state), _tensors(state)
        if len(values) != len(buffers):
            raise RuntimeError(f"the model's state changed its form between steps ({len(buffers)} tensors, "
                               f"then {len(values)}): a step over static buffers cannot hold it")
        self.ids.copy_(ids)
        for buffer, value in zip(buffers, values):
            buffer.copy_(value)

    def run(self, noise: Tensor | None, start: int, stop: int) -> Tensor:
        """Steps ``start .. stop - 1`` of a chunk of noise rows: the ids drawn, ``[stop - start, B]``."""
        if noise is not None:
            self.noise[: noise.size(0)].copy_(noise)
        self.ptr.fill_(start)
        for _ in range(stop - start):
            self.replay()
        return self.out[start:stop]

    def _step(self) -> None:
        row = None if self.noise is None else self.noise.index_select(0, self.ptr)[0]
        if self.in_bias:
            logits, state = self.model().step(self.ids, self.state, bias=row)  # W h + (b + T g)
        else:
            logits, state = self.model().step(self.ids, self.state)
            logits = logits if row is None else logits + row
        ids = logits.argmax(-1)
        self.out.index_copy_(0, self.ptr, ids.unsqueeze(0))
        self.load(ids, state)
        self.ptr.add_(1)


def sample_static(model: nn.Module, prompt_ids: Tensor, length: int, temperature: float, generator, batch: int,
                  capture: bool) -> Tensor:
    """:func:`~gseq.models.sampling.sample` without top-k/top-p, each character after the first of a chunk
    drawn by the cached :class:`StaticStep` of ``(model, batch, greedy, capture)``: the same ids."""
    bias = getattr(model, "readout_bias", None) if temperature > 0 else None
    in_bias = isinstance(bias, Tensor)
    first, logits, state = prime(model, prompt_ids, batch, generator)
    out = torch.empty(length, batch, dtype=torch.long, device=logits.device)
    start, step = int(first is not None), None
    if first is not None:
        out[0] = first
    for t in range(start, length, NOISE_CHUNK):
        n = min(NOISE_CHUNK, length - t)
        noise = gumbel(n, batch, model, generator).mul_(temperature) if temperature > 0 else None  # T g
        k = 0
        if t == start:  # the first character, from the prompt's logits
            out[t], k = draw(logits, None if noise is None else noise[0], temperature), 1
        if k == n:
            continue
        if in_bias:
            noise.add_(bias)  # b + T g: the steps' read-out bias
        if step is None:
            step = STEPS.get(model, (batch, noise is None, capture),
                             lambda: StaticStep(model, out[t], state, noise, in_bias, capture))
            step.load(out[t], state)
        out[t + k:t + n] = step.run(noise, k, n)
    return out.t()


def capture_graph(fn: Callable[[], None], device: torch.device) -> Callable[[], None]:
    """Capture ``fn`` (which updates its static buffers in place) in a CUDA graph on ``device``; return
    its ``replay``. Warm-up and capture run on a side stream; ``capture_begin``/``capture_end`` rather
    than ``torch.cuda.graph``, whose entry empties the caching allocator (a training loop's memory)."""
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
