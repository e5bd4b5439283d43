"""Atomic file writes and safe checkpoint loading.

Every file gseq writes goes to a temporary file in the same folder first and is then renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a crash never leaves a half-written
checkpoint or CSV behind and never destroys the previous copy. A process killed during a write leaves
its temporary file (``.checkpoint.pt.<8 characters>.tmp``) behind; the next save of that file removes
such leftovers. Checkpoints are read with ``torch.load(..., weights_only=True)``: they may hold tensors,
numbers, strings, lists and dicts, never arbitrary pickled objects, and a file holding anything else is
refused (gseq never suggests loading such a file another way).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "write_json",
    "write_csv",
    "save_checkpoint",
    "load_checkpoint",
    "remove_stale_temp_files",
    "check_writable_dir",
]

_TEMP_PREFIX, _TEMP_SUFFIX = ".", ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None and err.filename is None:  # a full disk: name the file
            raise type(err)(err.errno, err.strerror, str(path)) from err
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (non-JSON values as ``str``)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: list[str] | None = None) -> Path:
    """Write dict rows as CSV; the columns are ``fieldnames`` or the union of keys in first-seen order."""
    rows = list(rows)
    if fieldnames is None:
        fieldnames = []
        for row in rows:
            fieldnames += [k for k in row if k not in fieldnames]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def remove_stale_temp_files(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes of ``folder/<name>`` left behind.

    Only gseq's own pattern is touched: ``.<name>.<8 characters>.tmp`` (what :func:`atomic_write_bytes`
    creates) for each name in ``names``; any other file stays. Returns the removed paths.
    """
    folder = Path(folder)
    patterns = [re.compile(rf"^{re.escape(_TEMP_PREFIX + name)}\.[a-z0-9_]{{8}}{re.escape(_TEMP_SUFFIX)}$")
                for name in names]
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if any(p.match(entry.name) for p in patterns) and entry.is_file():
            try:
                entry.unlink()
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


def check_writable_dir(path: str | os.PathLike, what: str = "out_dir") -> Path:
    """Create the folder ``path`` if needed and check that a file can be written in it.

    Raises:
        ValueError: ``path`` is a file, lies below a file, or cannot be written (named as ``what``).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what}: {str(path)!r} is a file, not a folder; choose a folder for the outputs")
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as err:
        raise ValueError(f"{what}: {str(path)!r} cannot be written ({err.strerror or err}); choose a folder "
                         "you can write to") from None
    return path


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """``torch.save`` a checkpoint atomically (the previous file survives any failure); leftovers of
    earlier interrupted saves of the same file are removed first (:func:`remove_stale_temp_files`)."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(dict(checkpoint), buf)
    remove_stale_temp_files(path.parent, [path.name])
    return atomic_write_bytes(path, buf.getvalue())


def _check_torch_file(path: Path) -> None:
    """Refuse a file that ``torch.save`` did not write (a JSON or CSV file, say) as not a checkpoint, before
    torch's unpickler calls it unsafe. ``torch.save`` writes a zip archive (``PK``), older torch a pickle."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head and not (head.startswith(b"PK") or head.startswith(b"\x80")):
        shown = head.decode("utf-8", "replace")
        raise ValueError(f"checkpoint: {str(path)!r} is not a checkpoint (it starts with {shown!r}; torch.save writes "
                         "a zip archive); pass the checkpoint.pt of a gseq run")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable gseq checkpoint (truncated, corrupted, or holding
            objects other than tensors and plain containers, which may be unsafe to load).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {str(path)!r}; pass the path of a checkpoint.pt written by gseq")
    _check_torch_file(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        text = str(err)
        if "Weights only load failed" in text:
            # never pass on torch's advice to retry with weights_only=False: this file is refused
            found = re.search(r"GLOBAL (\S+)", text)
            what = f" (it asks to run {found.group(1)})" if found else ""
            raise ValueError(
                f"checkpoint: {str(path)!r} is not a gseq checkpoint and may be unsafe: it holds Python objects "
                f"other than tensors and plain data{what}, which gseq refuses to load; use a checkpoint.pt "
                "written by gseq") from None
        raise ValueError(
            f"checkpoint: {str(path)!r} could not be read as a gseq checkpoint ({type(err).__name__}: "
            f"{text.splitlines()[0] if text else ''}); the file is corrupted or was not written by gseq"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint: {str(path)!r} holds a {type(obj).__name__}, not a gseq checkpoint dict")
    return obj
