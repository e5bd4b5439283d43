"""Backend selection: argument, set_backend / use_backend, GSEQ_OPS_BACKEND, and the errors."""

from __future__ import annotations

import pytest
import torch

import gseq.ops as ops
from gseq.ops import _backend, _torch, _triton


def test_auto_on_cpu_is_torch(monkeypatch):
    monkeypatch.delenv("GSEQ_OPS_BACKEND", raising=False)
    assert _backend.resolve("auto", torch.device("cpu")) is _torch
    assert ops.get_backend() == "auto"


def test_env_var_and_precedence(monkeypatch):
    monkeypatch.setenv("GSEQ_OPS_BACKEND", "torch")
    assert ops.get_backend() == "torch"
    with ops.use_backend("triton"):
        assert ops.get_backend() == "triton"
        assert _backend.resolve("torch", torch.device("cpu")) is _torch  # the argument wins
    assert ops.get_backend() == "torch"
    ops.set_backend("auto")
    try:
        assert ops.get_backend() == "auto"
    finally:
        ops.set_backend(None)
    monkeypatch.setenv("GSEQ_OPS_BACKEND", "gpu")
    with pytest.raises(ValueError, match="GSEQ_OPS_BACKEND"):
        ops.get_backend()
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.set_backend("cuda")


def test_forced_triton_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_triton, "INTERPRET", False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        ops.spmm(ops.CSR.from_edge_index(torch.tensor([[0], [1]])).with_values(None), torch.ones(2, 1),
                 backend="triton")


def test_forced_triton_not_installed(monkeypatch):
    monkeypatch.setattr(_backend, "TRITON_AVAILABLE", False)
    with pytest.raises(RuntimeError, match="pip install"):
        _backend.resolve("triton", torch.device("cpu"))
    monkeypatch.setenv("GSEQ_OPS_BACKEND", "triton")
    with pytest.raises(RuntimeError, match="not importable"):
        ops.scatter(torch.ones(2), torch.tensor([0, 0]))


def test_flag_matches_import():
    import importlib.util

    assert ops.TRITON_AVAILABLE == (importlib.util.find_spec("triton") is not None)


@pytest.mark.parametrize("module", [_torch, _triton], ids=["torch", "triton"])
def test_each_backend_module_provides_the_backend_protocol(module):
    """Every function of the Backend protocol exists in the module with the protocol's parameters."""
    import inspect

    members = [name for name, fn in vars(_backend.Backend).items() if inspect.isfunction(fn) and name[0] != "_"]
    assert sorted(members) == ["from_kernel_inputs", "kernel_inputs", "sddmm", "sddmm_arg", "spmm_arg",
                               "spmm_arg_backward_x", "spmm_sum"]
    assert module.NAME in _backend.BACKENDS and _backend.backend_module(module.NAME) is module
    for name in members:
        want = list(inspect.signature(getattr(_backend.Backend, name)).parameters.values())[1:]  # without self
        got = list(inspect.signature(getattr(module, name)).parameters.values())
        assert [(p.name, p.kind, p.default) for p in got] == [(p.name, p.kind, p.default) for p in want], name
