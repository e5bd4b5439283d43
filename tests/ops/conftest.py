"""The gseq.ops test grid: which (backend, device) pairs a test runs on, and the Triton runtime check.

A test that takes the arguments ``backend`` and ``device`` runs on

- ``torch-cpu`` always;
- ``triton-cpu`` in the marked pass, Triton's interpreter on CPU tensors:
  ``TRITON_INTERPRET=1 python -m pytest -m triton tests/ops``;
- ``torch-cuda`` and ``triton-cuda`` when CUDA is available: the kernels run for real, in the plain
  pass (``python -m pytest tests/ops``), no interpreter.

A test that takes ``device`` alone runs on ``cpu`` (and ``cuda``); a Triton-only test takes
``triton_device``: ``cpu`` in the marked pass, ``cuda`` when available. A test that runs Triton where it
cannot run fails with the fix (it never skips).
"""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()
_TRITON_CPU = pytest.mark.triton  # the interpreter pass

BACKEND_DEVICES = [pytest.param("torch", "cpu", id="torch-cpu"),
                   pytest.param("triton", "cpu", id="triton-cpu", marks=_TRITON_CPU)]
DEVICES = ["cpu"]
TRITON_DEVICES = [pytest.param("cpu", marks=_TRITON_CPU)]
if CUDA:
    BACKEND_DEVICES += [pytest.param("torch", "cuda", id="torch-cuda"), pytest.param("triton", "cuda", id="triton-cuda")]
    DEVICES += ["cuda"]
    TRITON_DEVICES += ["cuda"]


@pytest.fixture
def device():
    """Parametrised directly by :func:`pytest_generate_tests` (as a string); this definition hides the
    session-wide, parametrised ``device`` fixture of ``tests/conftest.py``, which would parametrise the
    ops tests a second time (``duplicate parametrization of 'device'`` when ``tests/ops`` runs alone)."""
    raise RuntimeError("device is parametrised by tests/ops/conftest.py's pytest_generate_tests")


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "backend" in names and "device" in names:
        metafunc.parametrize("backend,device", BACKEND_DEVICES)
    elif "device" in names:
        metafunc.parametrize("device", DEVICES)
    if "triton_device" in names:
        metafunc.parametrize("triton_device", TRITON_DEVICES)


@pytest.fixture(autouse=True)
def _triton_runtime(request):
    """Fail loudly (never skip) when a test that runs Triton cannot run it here."""
    params = request.node.callspec.params if hasattr(request.node, "callspec") else {}
    interpreted = request.node.get_closest_marker("triton") is not None
    if not (interpreted or params.get("backend") == "triton" or "triton_device" in params):
        return
    import gseq.ops as ops
    from gseq.ops import _triton

    if not ops.TRITON_AVAILABLE:
        pytest.fail(f"this test runs the Triton kernels, but Triton is not importable ({_triton.IMPORT_ERROR})")
    if interpreted and not _triton.INTERPRET:
        pytest.fail("the triton-marked tests run Triton's interpreter on CPU tensors: start the pass with "
                    "TRITON_INTERPRET=1 python -m pytest -m triton (set before gseq is imported)")
