"""Which implementation runs a kernel: ``"torch"`` or ``"triton"``, chosen per call.

Order of precedence: the ``backend=`` argument of an op (when not ``"auto"``), then
:func:`set_backend` / :func:`use_backend`, then the environment variable ``GSEQ_OPS_BACKEND``
(``auto``, ``torch`` or ``triton``; read at each call), then ``"auto"``: CUDA tensors run the Triton
kernels when Triton is importable, everything else runs torch.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

import torch

from . import _torch
from . import _triton

__all__ = ["BACKENDS", "ENV_VAR", "TRITON_AVAILABLE", "get_backend", "set_backend", "use_backend", "resolve"]

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "GSEQ_OPS_BACKEND"
#: whether ``import triton`` succeeded when :mod:`gseq` was imported
TRITON_AVAILABLE: bool = _triton.AVAILABLE

_forced: str | None = None


def _check(name: object, what: str) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"{what} must be one of {BACKENDS}, got {name!r}")
    return name.lower()


def set_backend(name: str | None) -> None:
    """Force a backend for every op (``"auto"``, ``"torch"``, ``"triton"``); ``None`` clears it."""
    global _forced
    _forced = None if name is None else _check(name, "backend")


def get_backend() -> str:
    """The backend setting in force: :func:`set_backend`, else ``$GSEQ_OPS_BACKEND``, else ``"auto"``."""
    if _forced is not None:
        return _forced
    env = os.environ.get(ENV_VAR)
    return "auto" if env in (None, "") else _check(env, f"environment variable {ENV_VAR}")


@contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Context manager: run the ops inside with backend ``name`` (restored on exit)."""
    global _forced
    before = _forced
    set_backend(name)
    try:
        yield
    finally:
        _forced = before


def resolve(backend: str, device: torch.device) -> ModuleType:
    """The implementation module for an op on ``device`` (raises a clear error if it cannot run)."""
    name = _check(backend, "backend")
    if name == "auto":
        name = get_backend()
    if name == "auto":
        name = "triton" if device.type == "cuda" and TRITON_AVAILABLE else "torch"
    if name == "torch":
        return _torch
    if not TRITON_AVAILABLE:
        raise RuntimeError(f"backend 'triton' was requested but Triton is not importable ({_triton.IMPORT_ERROR}); "
                           "install it (pip install 'gseq[triton]') or use backend='torch'")
    if device.type != "cuda" and not _triton.INTERPRET:
        raise RuntimeError(f"backend 'triton' on {device.type} tensors needs the Triton interpreter: set "
                           "TRITON_INTERPRET=1 in the environment before importing gseq, or move the "
                           "tensors to CUDA, or use backend='torch'")
    return _triton
