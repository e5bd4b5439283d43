"""One step of a sampling loop over static buffers, captured in a CUDA graph and replayed, and the cache
that keeps the captured steps between calls (the CUDA-graph variation of :func:`~gseq.models.generate`).

A CUDA graph replays its kernels on fixed addresses with no host work in between: the step reads its noise
row and writes its output at a position held in a device tensor that it advances itself, and the carried
ids and state live in buffers that the step overwrites. Run without capture, the same step is how the
path is tested on the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["StaticStep", "StepCache", "STEPS", "STEP_CACHE_SIZE", "capture_graph", "signature"]


def signature(model: nn.Module) -> tuple:
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


class StepCache:
    """A small LRU of sampling steps (static buffers and, on CUDA, the captured graph), ``size`` entries
    for all models together, each keyed by the model's identity and ``key`` and checked against
    :func:`signature` on every hit.

    An entry holds the model only through a weak reference (the step calls the model through one), so a
    cached graph never keeps a model alive, and the entries of a model are dropped when it is collected.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.builds = 0  # entries built so far (CUDA graphs captured, on CUDA)
        self._entries: OrderedDict[tuple, tuple[weakref.ref, tuple, object]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model: nn.Module, key: tuple, build: Callable[[], Any]):
        """The entry for ``(model, key)``; ``build()`` makes a new one when there is none or the model's
        signature changed since (the stale one is dropped first, freeing its graph's memory)."""
        slot = (id(model),) + tuple(key)
        current = signature(model)
        found = self._entries.pop(slot, None)
        if found is not None and found[0]() is model and found[1] == current:
            self._entries[slot] = found  # most recently used last
            return found[2]
        del found
        value = build()
        self.builds += 1
        ref = weakref.ref(model, functools.partial(StepCache._forget, weakref.ref(self), id(model)))
        self._entries[slot] = (ref, current, value)
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
STEPS = StepCache(STEP_CACHE_SIZE)


def _tensors(state) -> tuple[Tensor, ...]:
    """The tensors of a state: None, a tensor or a tuple of tensors (what static buffers can hold)."""
    if state is None:
        return ()
    if isinstance(state, Tensor):
        return (state,)
    if isinstance(state, tuple) and all(isinstance(s, Tensor) for s in state):
        return state
    raise RuntimeError(f"the model's state is a {type(state).__name__}, not None, a tensor or a tuple of "
                       "tensors: a step over static buffers cannot hold it")


class StaticStep:
    """``body(ids, state, row) -> (ids, state)``, one model step and the draw of the next characters, run
    over static buffers: ``ids`` [B], the state (None, a tensor or a tuple of tensors, shapes fixed from
    step to step), ``rows`` rows of noise (or none) and as many of output. With ``capture`` it is
    captured once in a CUDA graph on the buffers' device; without, it runs eagerly. Nothing in it
    depends on the sample length, the prompt or the generator: :meth:`load` and :meth:`run` refill the
    buffers at every call.

    Args:
        body: the step; it must hold the model only weakly (the step is cached per model).
        ids, state: shaped like the buffers to make (their values are not used).
        noise: shaped like a chunk of noise rows ``[n, B, V]``, or None (greedy: no noise).
        rows: the rows of noise and output the buffers hold (a full chunk).
        capture: capture the step in a CUDA graph.
    """

    def __init__(self, body: Callable, ids: Tensor, state, noise: Tensor | None, rows: int, capture: bool) -> None:
        buffers = tuple(map(torch.zeros_like, _tensors(state)))
        self.body = body
        self.ids = torch.zeros_like(ids)
        self.state = buffers if isinstance(state, tuple) else buffers[0] if buffers else None  # state's form
        self.noise = None if noise is None else noise.new_zeros((rows,) + tuple(noise.shape[1:]))
        self.out = ids.new_zeros((rows,) + tuple(ids.shape))
        self.ptr = torch.zeros(1, dtype=torch.long, device=ids.device)
        self.replay = capture_graph(self._step, ids.device) if capture else self._step

    def load(self, ids: Tensor, state) -> None:
        """Start from these characters and this state."""
        buffers, values = _tensors(self.state), _tensors(state)
        if len(values) != len(buffers):
            raise RuntimeError(f"the model's state changed its form between steps ({len(buffers)} tensors, "
                               f"then {len(values)}): a step over static buffers cannot hold it")
        self.ids.copy_(ids)
        for buffer, value in zip(buffers, values):
            buffer.copy_(value)

    def run(self, noise: Tensor | None, start: int, stop: int) -> Tensor:
        """Steps ``start .. stop - 1`` of a chunk whose noise rows are ``noise``: the ids drawn,
        ``[stop - start, B]`` (a view of the output buffer)."""
        if noise is not None:
            self.noise[: noise.size(0)].copy_(noise)
        self.ptr.fill_(start)
        for _ in range(stop - start):
            self.replay()
        return self.out[start:stop]

    def _step(self) -> None:
        row = None if self.noise is None else self.noise.index_select(0, self.ptr)[0]
        ids, state = self.body(self.ids, self.state, row)
        self.out.index_copy_(0, self.ptr, ids.unsqueeze(0))
        self.load(ids, state)
        self.ptr.add_(1)


def capture_graph(fn: Callable[[], None], device: torch.device) -> Callable[[], None]:
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
