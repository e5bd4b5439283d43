"""The backends of :mod:`gseq.ops`: what one provides (:class:`Backend`) and which one runs a call.

A backend is a module of kernels, :mod:`gseq.ops._torch` or :mod:`gseq.ops._triton`, with the
functions of :class:`Backend`. Which one runs: the ``backend=`` argument of an op (when not
``"auto"``), then :func:`set_backend` / :func:`use_backend`, then the environment variable
``GSEQ_OPS_BACKEND`` (``auto``, ``torch`` or ``triton``; read at each call), then ``"auto"``: CUDA
tensors run the Triton kernels when Triton is importable, everything else runs torch.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Protocol

import torch
from torch import Tensor

from . import _torch
from . import _triton
from .csr import CSR

__all__ = ["Backend", "BACKENDS", "ENV_VAR", "TRITON_AVAILABLE", "get_backend", "set_backend", "use_backend",
           "resolve", "backend_module"]


class Backend(Protocol):
    r"""The kernels a backend module provides (:mod:`gseq.ops._torch`, :mod:`gseq.ops._triton`).

    Each takes arrays that :mod:`gseq.ops` has validated and returns plain tensors: no autograd
    (:mod:`gseq.ops._autograd` wires forward and backward), no ``[nnz, F]`` tensor for the whole
    matrix. ``values`` is a CSR's values or ``None`` (all ones), possibly of another floating dtype than
    the dense operands; sums accumulate in float32 (float64 when an input is float64). ``arg`` holds,
    for each output ``(i, f)`` of a max/min, the entry that attained it, ``nnz`` for an empty row.
    """

    def spmm_sum(self, csr: CSR, values: Tensor | None, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        r""":math:`Y_i = \sum_{e \in \mathrm{row}(i)} v_e X_{\mathrm{col}(e)}` ``[M, F]`` as ``dtype``
        (default: ``x.dtype``); an empty row gives 0."""

    def sddmm(self, csr: CSR, a: Tensor, b: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        r""":math:`g_e = \langle a_{\mathrm{row}(e)}, b_{\mathrm{col}(e)} \rangle` ``[nnz]`` as ``dtype``
        (default: ``a.dtype``)."""

    def spmm_arg(self, csr: CSR, values: Tensor | None, x: Tensor, reduce: str) -> tuple[Tensor, Tensor]:
        r"""``(out, arg)``, both ``[M, F]``: the max (``reduce="max"``) or min over each row of
        :math:`v_e X_{\mathrm{col}(e)}` (0 for an empty row, NaN propagates) and its first attaining entry."""

    def spmm_arg_backward_x(self, csr: CSR, values: Tensor | None, grad: Tensor, arg: Tensor, n: int) -> Tensor:
        """The gradient of :meth:`spmm_arg` with respect to ``x`` (``n`` rows): ``grad`` goes to the
        column of each ``arg`` entry, scaled by its value."""

    def sddmm_arg(self, csr: CSR, grad: Tensor, x: Tensor, arg: Tensor) -> Tensor:
        """The gradient of :meth:`spmm_arg` with respect to the values, ``[nnz]``: entry ``e`` sums
        ``grad[row(e), f] * x[col(e), f]`` over the features ``f`` whose ``arg`` is ``e``."""

    #: the backend's name, as ``backend=`` spells it
    NAME: str

    def kernel_inputs(self, csr: CSR, dtype: torch.dtype) -> tuple[Tensor | None, list[Tensor]]:
        """``(values, work)``: the tensors :meth:`spmm_sum` reads for ``csr`` besides its index arrays,
        built once and kept on ``csr.structure`` (how the custom operator ``gseq::spmm_sum``, which
        takes tensors only, passes a CSR and its caches through ``torch.compile``)."""

    def from_kernel_inputs(self, indptr: Tensor, indices: Tensor, values: Tensor | None, work: list[Tensor],
                           shape: tuple[int, int]) -> CSR:
        """The CSR of :meth:`kernel_inputs`' arrays, its caches in place (inside the custom operator)."""


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


def backend_module(name: str) -> Backend:
    """The module of the backend ``name`` (``"torch"`` or ``"triton"``), already resolved."""
    return _triton if name == _triton.NAME else _torch


def resolve(backend: str, device: torch.device) -> Backend:
    """The backend module for an op on ``device`` (raises a clear error if it cannot run)."""
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
