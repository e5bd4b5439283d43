"""Atomic file writes and safe checkpoint loading.

Every file gseq writes goes to a temporary file in the same folder first and is then renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a crash never leaves a half-written
checkpoint or CSV behind and never destroys the previous copy. A process killed during a write leaves
its temporary file (``.checkpoint.pt.<8 characters>.tmp``) behind; the next save of that file removes
such leftovers. Checkpoints are read with ``torch.load(..., weights_only=True)``: they may hold tensors,
numbers, strings, lists and dicts, never arbitrary pickled objects, and a file holding anything else is
refused (gseq never suggests loading such a file another way).

Every checkpoint carries an integrity digest: :func:`save_checkpoint` adds one record to the zip archive
``torch.save`` writes, ``<archive>/.gseq_sha256``, the SHA-256 of every other record (names and bytes, in
name order). :func:`load_checkpoint` recomputes it before ``torch.load`` sees the file, so a flipped bit
anywhere in the payload is refused as damage (not met later as a NaN loss or a different result). A
checkpoint written before gseq stored digests has no such record: it still loads, with a warning that it
could not be verified (saving it again adds the digest).

Other files gseq reads back (a grid's results CSV and its settings, the samples of a text run) can carry
a stamp: ``stamp=True`` writes ``<name>.sha256`` beside the file, the SHA-256 of its bytes, and
:func:`read_verified_text` refuses a file that no longer matches its stamp, naming it as damaged or edited.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
import zipfile
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
    "checkpoint_digest",
    "remove_stale_temp_files",
    "check_writable_dir",
    "stamp_path",
    "read_verified_text",
]

_TEMP_PREFIX, _TEMP_SUFFIX = ".", ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, stamp: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename; with ``stamp``, its SHA-256 goes
    to :func:`stamp_path` first (checked by :func:`read_verified_text`), followed by the digest the stamp
    held before, so a process stopped between the two renames leaves a pair that still verifies."""
    path = Path(path)
    if stamp:
        digests = [hashlib.sha256(data).hexdigest()] + _stamped(path)[:1]
        atomic_write_bytes(stamp_path(path), ("\n".join(digests) + "\n").encode("ascii"))
        return atomic_write_bytes(path, data)
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


def atomic_write_text(path: str | os.PathLike, text: str, *, stamp: bool = False) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (``stamp``: see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), stamp=stamp)


def write_json(path: str | os.PathLike, obj: Any, *, stamp: bool = False) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (non-JSON values as ``str``; ``stamp``: see
    :func:`atomic_write_bytes`)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", stamp=stamp)


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: list[str] | None = None, *,
              stamp: bool = False) -> Path:
    """Write dict rows as CSV; the columns are ``fieldnames`` or the union of keys in first-seen order
    (``stamp``: see :func:`atomic_write_bytes`)."""
    rows = list(rows)
    if fieldnames is None:
        fieldnames = []
        for row in rows:
            fieldnames += [k for k in row if k not in fieldnames]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue(), stamp=stamp)


def stamp_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 stamp of ``path`` is kept: ``<name>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _stamped(path: Path) -> list[str]:
    """The digests in the stamp of ``path``, newest first ([] without a stamp)."""
    try:
        return stamp_path(path).read_text(encoding="ascii", errors="replace").split()
    except FileNotFoundError:
        return []


def read_verified_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of ``path``, checked against its stamp when it has one (:func:`stamp_path`).

    Raises:
        ValueError: the file differs from its stamp (damaged, or edited since gseq wrote it), or is not
            UTF-8 text; the message starts with ``what`` and says how to go on.
    """
    path = Path(path)
    data = path.read_bytes()
    stamp, expected = stamp_path(path), _stamped(path)
    if stamp.is_file():
        if hashlib.sha256(data).hexdigest() not in expected:
            raise ValueError(f"{what}: {str(path)!r} is damaged or was edited: its SHA-256 differs from the one gseq "
                             f"recorded in {stamp.name} when it wrote it; restore the file, or delete {stamp.name} to "
                             "accept its contents as they are")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what}: {str(path)!r} is damaged: not UTF-8 text ({err})") from None


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


#: the record that holds a checkpoint's digest, beside torch's records inside its top-level folder
_DIGEST_RECORD = ".gseq_sha256"
_CHUNK = 1 << 20


#: the fields of a record's directory entry that a reader may act on (torch's reader treats a record
#: whose attributes say "folder" differently, for one): all of them are covered by the digest
_ENTRY_FIELDS = ("filename", "header_offset", "compress_type", "compress_size", "file_size", "CRC", "flag_bits",
                 "external_attr", "internal_attr", "extra", "comment", "create_system", "create_version",
                 "extract_version", "volume", "date_time")


def _records_digest(archive: zipfile.ZipFile) -> tuple[str, str | None]:
    """The SHA-256 of every record but the digest record (its directory entry and its bytes, in name
    order), and the digest stored in the archive (``None`` when it has none)."""
    h, stored = hashlib.sha256(), None
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        if info.filename.rsplit("/", 1)[-1] == _DIGEST_RECORD:
            stored = archive.read(info).decode("ascii", "replace").strip()
            continue
        entry = repr(tuple(getattr(info, field) for field in _ENTRY_FIELDS)).encode("utf-8")
        h.update(len(entry).to_bytes(8, "little") + entry)
        with archive.open(info) as f:  # zipfile checks each record's CRC-32 as well
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest(), stored


def _with_digest(data: bytes) -> bytes:
    """A ``torch.save`` archive with its digest record added."""
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf) as archive:
        digest, _ = _records_digest(archive)
        folder = archive.namelist()[0].split("/", 1)[0]
    with zipfile.ZipFile(buf, "a") as archive:
        archive.writestr(f"{folder}/{_DIGEST_RECORD}", digest + "\n")
    return buf.getvalue()


def checkpoint_digest(path: str | os.PathLike) -> str | None:
    """The integrity digest stored in the checkpoint at ``path``, after checking that the file matches it.

    Returns ``None`` for a checkpoint without a digest (written before gseq stored them).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is damaged: its records do not match the stored digest, or the archive
            itself is broken.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {str(path)!r}; pass the path of a checkpoint.pt written by "
                                "gseq")
    if not zipfile.is_zipfile(path):
        return None  # not torch's zip format: torch.load decides whether it can be read at all
    try:
        with zipfile.ZipFile(path) as archive:
            digest, stored = _records_digest(archive)
    except Exception as err:  # BadZipFile, NotImplementedError (a mangled method), OSError, EOFError, ...
        raise ValueError(f"checkpoint: {str(path)!r} is damaged: its archive cannot be read ({err}); restore it from "
                         "a copy or start a new run") from None
    if stored is not None and stored != digest:
        raise ValueError(f"checkpoint: {str(path)!r} is damaged: its contents do not match the SHA-256 stored in it "
                         f"(stored {stored[:16]}..., contents {digest[:16]}...); restore it from a copy or start a "
                         "new run")
    return stored


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """``torch.save`` a checkpoint atomically (the previous file survives any failure), with its
    integrity digest (see the module docstring); leftovers of earlier interrupted saves of the same file
    are removed first (:func:`remove_stale_temp_files`)."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(dict(checkpoint), buf)
    remove_stale_temp_files(path.parent, [path.name])
    return atomic_write_bytes(path, _with_digest(buf.getvalue()))


def _check_torch_file(path: Path) -> None:
    """Refuse a file that ``torch.save`` did not write (a JSON or CSV file, say) as not a checkpoint, before
    torch's unpickler calls it unsafe. ``torch.save`` writes a zip archive (``PK``), older torch a pickle."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head and not (head.startswith(b"PK") or head.startswith(b"\x80")):
        shown = head.decode("utf-8", "replace")
        raise ValueError(f"checkpoint: {str(path)!r} is not a checkpoint (it starts with {shown!r}; torch.save writes "
                         "a zip archive); pass the checkpoint.pt of a gseq run")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", *,
                    expected_digest: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``, after checking its
    integrity digest (a checkpoint without one loads with a warning).

    Args:
        path: the checkpoint file.
        map_location: as for ``torch.load``. (default: ``"cpu"``)
        expected_digest: when given, the file must hold exactly this digest (as returned by
            :func:`checkpoint_digest`); a file without a digest is then refused too. (default: ``None``)

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable gseq checkpoint (damaged: its contents differ from its
            digest; truncated; or holding objects other than tensors and plain containers, which may be
            unsafe to load), or its digest is not ``expected_digest``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {str(path)!r}; pass the path of a checkpoint.pt written by gseq")
    _check_torch_file(path)
    stored = checkpoint_digest(path)
    if expected_digest is not None and stored != expected_digest:
        raise ValueError(f"checkpoint: {str(path)!r} is not the file that was written there (its digest is "
                         f"{stored and stored[:16]!r}, expected {expected_digest[:16]!r}...)")
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
    if stored is None:
        warnings.warn(f"checkpoint: {str(path)!r} holds no integrity digest (written by an older gseq), so damage to "
                      "it cannot be detected; it is loaded as it is (saving it again adds a digest)", stacklevel=2)
    return obj
