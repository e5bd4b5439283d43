"""Triton kernels (CUDA; on the CPU under ``TRITON_INTERPRET=1``)."""

from __future__ import annotations

import os

try:
    import triton
    import triton.language as tl
    AVAILABLE, IMPORT_ERROR = True, None
except ImportError as exc:  # pragma: no cover - depends on the installation
    triton = tl = None
    AVAILABLE, IMPORT_ERROR = False, exc

#: whether Triton's interpreter was on when this module was imported (kernels then run on CPU tensors)
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
