"""Argument checks shared by every gseq package: one helper per check, one wording per message.

A helper checks one argument where it enters gseq (a public function or constructor) and returns it
unchanged, so a check and an assignment are one line (``self.hidden_size = positive_int("hidden_size",
hidden_size)``). A bad value raises an error whose message starts with the argument's name and says what
was expected and what came::

    hidden_size: must be a positive integer, got 0
    init: unknown value 'he'; choose one of ['xavier_uniform', 'kaiming_normal', 'orthogonal']
    dropout: must lie in [0, 1), got 1.5

A value of the wrong type (``2.5`` or ``True`` for an integer, a string for a number) raises
:class:`WrongTypeError`, which is a ``TypeError`` and a ``ValueError`` at once: callers that catch either
catch it. Checks run once, at the boundary; code behind it (per-step loops, kernels) trusts its inputs.

This module imports nothing from gseq and no torch when it is imported, so every package can use it,
the command-line parser included (``gseq --help`` never waits for torch): the dtype tuples
:data:`FLOAT_DTYPES` and :data:`HALF_DTYPES` are built on first access.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

__all__ = ["WrongTypeError", "FLOAT_DTYPES", "HALF_DTYPES", "integer", "positive_int", "non_negative_int",
           "finite_float", "positive_float", "non_negative_float", "in_range", "choice", "boolean", "instance",
           "random_seed", "MAX_SEED", "device_memory", "fits_memory"]

#: the floating dtypes gseq's kernels and layers accept: float16, bfloat16, float32, float64
FLOAT_DTYPES: tuple
#: the half-precision dtypes, float16 and bfloat16 (their sums accumulate in float32)
HALF_DTYPES: tuple


def __getattr__(name: str) -> Any:  # PEP 562: the dtype tuples need torch, built (once) when first used
    if name in ("FLOAT_DTYPES", "HALF_DTYPES"):
        import torch

        half = (torch.float16, torch.bfloat16)
        globals().update(HALF_DTYPES=half, FLOAT_DTYPES=half + (torch.float32, torch.float64))
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class WrongTypeError(TypeError, ValueError):
    """An argument of the wrong type, e.g. ``2.5`` where an integer belongs.

    Both a ``TypeError`` (Python's error for a wrong type) and a ``ValueError`` (gseq's error for a bad
    argument), so code that catches either catches it: ``path_graph(3.0)`` and ``palindromes(4, 2.5)`` raise
    the same error, whichever of the two a caller expects.
    """


def _message(name: str, expected: str, value: Any, verb: str = "be") -> str:
    """``"name: must be <expected>, got <value>"``; without ``"name: "`` when name is empty (argparse
    names the flag itself)."""
    text = f"must {verb} {expected}, got {value!r}"
    return f"{name}: {text}" if name else text


def integer(name: str, value: Any, *, minimum: int | None = None, none_ok: bool = False, hint: str = "",
            maximum: int | None = None) -> Any:
    """Check that ``value`` is an ``int`` (not a ``bool``) of at least ``minimum`` (and at most
    ``maximum``), and return it.

    Args:
        name: the argument's name, the first word of the message (``""`` leaves it out).
        value: the value to check.
        minimum: the smallest allowed value, or ``None`` for any integer. (default: ``None``)
        none_ok: accept ``None`` as well. (default: ``False``)
        hint: words added after the expectation, e.g. ``" (epochs)"``. (default: ``""``)
        maximum: the largest allowed value, or ``None`` for no limit (with a ``minimum`` only).
            (default: ``None``)

    Raises:
        WrongTypeError: ``value`` is not an integer (``True``, ``2.0``, ``"3"``, a tensor).
        ValueError: ``value`` is smaller than ``minimum`` or larger than ``maximum``.
    """
    if value is None and none_ok:
        return value
    expected = ("an integer" if minimum is None else f"an integer in [{minimum}, {maximum}]" if maximum is not None
                else "a positive integer" if minimum == 1 else f"an integer >= {minimum}") \
        + (" or None" if none_ok else "") + hint
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongTypeError(_message(name, expected, value))
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        raise ValueError(_message(name, expected, value))
    return value


def positive_int(name: str, value: Any, *, none_ok: bool = False, hint: str = "") -> Any:
    """An integer >= 1 (``"name: must be a positive integer, got 0"``); see :func:`integer`."""
    return integer(name, value, minimum=1, none_ok=none_ok, hint=hint)


def non_negative_int(name: str, value: Any, *, none_ok: bool = False, hint: str = "") -> Any:
    """An integer >= 0 (``"name: must be an integer >= 0, got -1"``); see :func:`integer`."""
    return integer(name, value, minimum=0, none_ok=none_ok, hint=hint)


def _number(name: str, value: Any, expected: str, ok, none_ok: bool, verb: str = "be") -> Any:
    if value is None and none_ok:
        return value
    expected += " or None" if none_ok else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongTypeError(_message(name, expected, value, verb))
    if isinstance(value, float) and not math.isfinite(value) or not ok(value):
        raise ValueError(_message(name, expected, value, verb))
    return value


def finite_float(name: str, value: Any, *, none_ok: bool = False, hint: str = "") -> Any:
    """Check that ``value`` is a finite ``int`` or ``float`` (not a ``bool``, NaN or infinity), and return it.

    Args:
        name: the argument's name, the first word of the message (``""`` leaves it out).
        value: the value to check.
        none_ok: accept ``None`` as well. (default: ``False``)
        hint: words added after the expectation, e.g. ``" (0 = greedy)"``. (default: ``""``)

    Raises:
        WrongTypeError: ``value`` is not a number.
        ValueError: ``value`` is NaN or infinite.
    """
    return _number(name, value, "a finite number" + hint, lambda v: True, none_ok)


def positive_float(name: str, value: Any, *, none_ok: bool = False, hint: str = "") -> Any:
    """A finite number > 0 (``"name: must be a finite positive number, got 0.0"``); see :func:`finite_float`."""
    return _number(name, value, "a finite positive number" + hint, lambda v: v > 0, none_ok)


def non_negative_float(name: str, value: Any, *, none_ok: bool = False, hint: str = "") -> Any:
    """A finite number >= 0 (``"name: must be a finite number >= 0, got -1"``); see :func:`finite_float`."""
    return _number(name, value, "a finite number >= 0" + hint, lambda v: v >= 0, none_ok)


def in_range(name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False,
             none_ok: bool = False) -> Any:
    """Check that ``value`` is a number in the interval from ``low`` to ``high``, and return it.

    ``in_range("dropout", p, 0, 1, high_open=True)`` accepts :math:`0 \\le p < 1` and otherwise raises
    ``"dropout: must lie in [0, 1), got 1.5"``.

    Args:
        name: the argument's name, the first word of the message (``""`` leaves it out).
        value: the value to check.
        low, high: the ends of the interval (finite).
        low_open, high_open: leave that end out of the interval. (default: ``False``, closed)
        none_ok: accept ``None`` as well. (default: ``False``)

    Raises:
        WrongTypeError: ``value`` is not a number.
        ValueError: ``value`` lies outside the interval (or is NaN).
    """
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def inside(v):
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return _number(name, value, "in " + interval, inside, none_ok, verb="lie")


def choice(name: str, value: Any, choices: Collection) -> Any:
    """Check that ``value`` is one of ``choices``, and return it.

    Raises:
        ValueError: ``"name: unknown value 'x'; choose one of ['a', 'b']"``.
    """
    try:
        known = value in choices
    except TypeError:  # an unhashable value and a set or dict of choices
        known = False
    if not known:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {list(choices)}")
    return value


def boolean(name: str, value: Any) -> bool:
    """Check that ``value`` is ``True`` or ``False`` (not ``1`` or ``"yes"``), and return it.

    Raises:
        WrongTypeError: ``"name: expected True or False, got 'yes'"``.
    """
    if not isinstance(value, bool):
        raise WrongTypeError(f"{name}: expected True or False, got {value!r}")
    return value


def instance(name: str, value: Any, types: type | tuple[type, ...], expected: str, *, none_ok: bool = False) -> Any:
    """Check that ``value`` is an instance of ``types``, and return it.

    Args:
        name: the argument's name, the first word of the message.
        value: the value to check.
        types: a class or a tuple of classes, as for ``isinstance``.
        expected: what the message says was expected, e.g. ``"a torch.Generator"``.
        none_ok: accept ``None`` as well. (default: ``False``)

    Raises:
        WrongTypeError: ``"name: expected a torch.Generator, got int"``.
    """
    if value is None and none_ok or isinstance(value, types):
        return value
    raise WrongTypeError(f"{name}: expected {expected}{' or None' if none_ok else ''}, got {type(value).__name__}")


#: the largest seed gseq accepts, ``2**32 - 1``: NumPy's limit, and small enough that the seeds gseq derives
#: from it (per rank, step or stream, ``seed * 1_000_003 + ...``) stay within torch's 64-bit range
MAX_SEED = 2**32 - 1


def random_seed(name: str, value: Any, *, none_ok: bool = False) -> Any:
    """Check that ``value`` is a seed: an integer in ``[0, MAX_SEED]`` (``MAX_SEED = 2**32 - 1``), and
    return it. Every public ``seed`` argument of gseq (and ``--seed`` of the command line) goes through
    this check, so ``seed=1.5``, ``seed="0"`` or ``seed=2**70`` are refused here, not inside torch.

    Raises:
        WrongTypeError: ``"seed: must be an integer in [0, 4294967295], got 1.5"`` (a float, a string, a
            bool, a tensor).
        ValueError: the same message for a negative or too large integer.
    """
    return integer(name, value, minimum=0, none_ok=none_ok, maximum=MAX_SEED)


def device_memory(device: Any = "cpu") -> int | None:
    """The memory of ``device`` in bytes (the machine's for the CPU, the GPU's for CUDA), or None where
    it is not known."""
    import os

    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).total_memory
    if device.type != "cpu":
        return None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def fits_memory(name: str, value: Any, nbytes: int, device: Any = "cpu", what: str = "") -> None:
    """Refuse a size whose arrays cannot fit: ``nbytes`` more than the memory of ``device``.

    Raises:
        ValueError: ``"num_nodes: 1,000,000,000,000 nodes need about 14,901 GiB for the CSR's row
            pointers, more than the 24 GiB of memory of cpu; pass the real number of nodes"``.
    """
    total = device_memory(device)
    if total is not None and nbytes > total:
        raise ValueError(f"{name}: {value:,} {what} need about {nbytes / 2**30:,.0f} GiB, more than the "
                         f"{total / 2**30:,.0f} GiB of memory of {device}; use a smaller {name}")
