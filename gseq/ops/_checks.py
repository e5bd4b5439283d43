"""Input checks shared by the public ops (:func:`gseq.ops.spmm`, the scatter and segment reductions).

Metadata checks (types, dtypes, shapes, devices) run on the host and cost nothing. Range checks on
index values need the values: :func:`check_range` asserts them on the device (``torch._assert_async``),
so a call on CUDA makes no host synchronisation; on the CPU the same assertion fails at once and is
turned into a ``ValueError`` that names the argument and the offending value.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import FLOAT_DTYPES

__all__ = ["REDUCTIONS", "DTYPES", "INDEX_DTYPES", "accumulation_dtype", "check_reduce", "check_float", "index_dtype",
           "check_index", "check_range", "assert_valid", "check_out"]

#: the supported reductions (``"add"`` is an alias of ``"sum"``)
REDUCTIONS = ("sum", "add", "mean", "max", "min")
#: the supported floating dtypes (half types accumulate in float32)
DTYPES = FLOAT_DTYPES


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype sums, counts, degrees and normalisation use for data of ``dtype``: float64 for float64,
    float32 for the others (float16 overflows at 65,504)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_reduce(reduce: object) -> str:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    return "sum" if reduce == "add" else reduce  # type: ignore[return-value]


def check_float(t: object, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in DTYPES:
        raise TypeError(f"{name} must be float32 or float64 (or float16/bfloat16), got {t.dtype}; "
                        "convert with .float()")
    return t


#: the index dtypes gseq accepts (converted to int64 inside); PyG and torch_scatter use int64
INDEX_DTYPES = (torch.int64, torch.int32)


def index_dtype(t: object, name: str) -> Tensor:
    """Refuse anything but an int64 or int32 tensor: the one index dtype rule of gseq (CSR arrays,
    ``edge_index``, scatter indices)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integers, got {type(t).__name__}")
    if t.dtype not in INDEX_DTYPES:
        raise TypeError(f"{name} must have an integer dtype (int64 or int32), got {t.dtype}; convert it with .long()")
    return t


def check_index(index: object, name: str, device: torch.device) -> Tensor:
    index_dtype(index, name)
    if index.device != device:
        raise ValueError(f"{name} is on {index.device} but src on {device}; move one with .to(device)")
    return index.long()


def check_range(t: Tensor, high: int, name: str, bound: str, fix: str, *, on_host: bool = False) -> None:
    """Check ``0 <= t < high`` elementwise; ``bound`` says the upper bound in words (``"< dim_size = 4"``)
    and ``fix`` what to do, for the error message.

    Without a host sync by default (see :func:`assert_valid`); ``on_host=True`` reads the extremes on
    the host and raises the ``ValueError`` on every device (for builders that synchronise anyway, such
    as a CSR's constructor: a failed device assertion would end the CUDA context).
    """
    if t.numel() == 0:
        return
    lo, hi = torch.aminmax(t)

    def explain() -> str:
        if int(lo) < 0:
            return f"{name} must be non-negative, found {int(lo)}"
        return f"{name} must be {bound}, found {int(hi)}; {fix}"
    if on_host:
        if int(lo) < 0 or int(hi) >= high:
            raise ValueError(explain())
        return
    assert_valid((lo >= 0) & (hi < high), name, explain)


def assert_valid(ok: Tensor, name: str, explain) -> None:
    """Assert the bool scalar ``ok`` without a host sync.

    On CUDA a failure is a device-side assertion, reported by the next synchronising call; on the CPU
    the assertion runs at once and this raises ``ValueError(explain())``, which names the argument, the
    value found and the fix.
    """
    try:
        torch._assert_async(ok, f"gseq.ops: invalid {name} (run on the CPU for the exact error)")
    except RuntimeError:
        raise ValueError(explain()) from None


def check_out(out: object, src: Tensor, dim: int, size: int | None = None) -> Tensor:
    """``out`` for a reduction of ``src`` along ``dim``: same dtype, device, and sizes but at ``dim``."""
    if not isinstance(out, Tensor):
        hint = ("; the arguments follow torch_scatter's order (src, index, dim, out, dim_size, reduce): "
                "pass dim_size= and reduce= by keyword") if isinstance(out, (str, int)) else ""
        raise TypeError(f"out must be a torch.Tensor or None, got {type(out).__name__}{hint}")
    if out.dtype != src.dtype or out.device != src.device:
        raise TypeError(f"out must have the dtype and device of src ({src.dtype}, {src.device}), "
                        f"got ({out.dtype}, {out.device})")
    want = list(src.shape)
    if size is not None:
        want[dim] = size
    elif out.dim() == src.dim():
        want[dim] = out.size(dim)
    if out.dim() != src.dim() or list(out.shape) != want:
        raise ValueError(f"out must have shape {tuple(want)} (src's shape {tuple(src.shape)} with the "
                         f"output size at dim {dim}), got {tuple(out.shape)}")
    return out
