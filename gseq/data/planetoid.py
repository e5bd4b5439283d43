"""Planetoid citation graphs (Cora, CiteSeer, PubMed) with their public split, read safely.

The raw files are Python pickles, and unpickling runs code. :func:`planetoid` therefore reads each file's
bytes once, checks their SHA-256 against the digests gseq ships (Cora and CiteSeer), and only then
unpickles those same bytes. A mismatch, or a file gseq has no digest for, is refused unless the caller
passes ``trust=True``.

Where the files are looked for, in order: ``root`` when given; else ``$GSEQ_DATA/planetoid``; else the
cache (``$GSEQ_CACHE`` or ``~/.cache/gseq``, under ``planetoid/``); else the copy shipped inside the
package (Cora only: its eight raw files, byte for byte the public ones); else they are downloaded into
the cache from the Planetoid repository, as PyG's ``Planetoid`` does. Each folder holds
``<Name>/raw/ind.<name>.*``. gseq never writes into a data folder: the processed tensors go to the
cache, and a cache that cannot be written only means they are rebuilt in memory next time.

The processed cache is bound to what it was made from. Its file name carries a digest of the verified
raw files (``processed/data-<key>.pt``), the file carries the integrity digest every gseq checkpoint has
(:func:`gseq.io.checkpoint_digest`), and a stamp beside it (``data-<key>.sha256``) records that digest
when gseq writes the file. A cache file that was edited (even one saved again through gseq), damaged or
left without its stamp does not match: it is rebuilt from the raw files, with a one-line warning.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
import urllib.request
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import boolean, instance
from ..io import atomic_write_bytes, atomic_write_text, checkpoint_digest, load_checkpoint, save_checkpoint

__all__ = ["planetoid", "PLANETOID_NAMES", "PLANETOID_SHA256", "cache_dir", "normalize_features"]

#: the Planetoid datasets by lower-case name, with their canonical spelling
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
#: the eight raw files of a Planetoid dataset, ``ind.<name>.<part>``
RAW_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
URL = "https://github.com/kimiyoung/planetoid/raw/master/data"

#: SHA-256 of the public Planetoid files, by file name
PLANETOID_SHA256 = {
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
}


def cache_dir() -> Path:
    """gseq's cache folder: ``$GSEQ_CACHE``, else ``~/.cache/gseq``."""
    return Path(os.environ.get("GSEQ_CACHE") or Path.home() / ".cache" / "gseq")


def normalize_features(x: Tensor) -> Tensor:
    """Row-normalise features to sum 1 (rows of zeros stay zero), as PyG's ``NormalizeFeatures``."""
    instance("x", x, Tensor, "a tensor of node features")
    return x / x.sum(dim=-1, keepdim=True).clamp(min=1)


def _canonical(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in PLANETOID_NAMES:
        raise ValueError(f"name: unknown Planetoid dataset {name!r}; choose one of {list(PLANETOID_NAMES.values())}")
    return PLANETOID_NAMES[name.lower()]


def _file_names(name: str) -> list[str]:
    return [f"ind.{name.lower()}.{part}" for part in RAW_PARTS]


def _bundled_root() -> Path:
    """The folder of the Planetoid files shipped inside the package (``<Name>/raw/``; Cora only)."""
    return Path(str(resources.files(__package__).joinpath("_bundled", "planetoid")))


def _candidate_roots(name: str, root: str | os.PathLike | None) -> list[Path]:
    if root is not None:
        return [Path(root)]
    roots = []
    if os.environ.get("GSEQ_DATA"):
        roots.append(Path(os.environ["GSEQ_DATA"]) / "planetoid")
    roots.append(cache_dir() / "planetoid")
    if (_bundled_root() / name / "raw").is_dir():
        roots.append(_bundled_root())
    return roots


def _download(name: str, files: list[str], target: Path) -> Path:
    """Fetch the missing ``files`` into ``target`` (a temporary folder when ``target`` cannot be written)."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=target)
        probe.close()
    except OSError:  # an unwritable cache must not stop a download: keep the files for this process only
        target = Path(tempfile.mkdtemp(prefix=f"gseq-{name.lower()}-"))
    for f in files:
        if not (target / f).is_file():
            with urllib.request.urlopen(f"{URL}/{f}", timeout=30) as response:
                atomic_write_bytes(target / f, response.read())
    return target


def _find_raw(name: str, root: str | os.PathLike | None, download: bool) -> Path:
    files = _file_names(name)
    roots = _candidate_roots(name, root)
    for r in roots:
        raw = r / name / "raw"
        if all((raw / f).is_file() for f in files):
            return raw
    target = (roots[0] if root is not None else cache_dir() / "planetoid") / name / "raw"
    if download:
        try:
            return _download(name, files, target)
        except OSError as err:
            reason = f"download from {URL} failed ({err})"
    else:
        reason = "download=False"
    # name only what is missing where some of the files are, so one lost file is easy to spot
    partial = []
    for r in roots:
        raw = r / name / "raw"
        missing = [f for f in files if not (raw / f).is_file()]
        if len(missing) < len(files):
            partial.append(f"{', '.join(missing)} missing from {raw}")
    where = ", ".join(str(r / name / "raw") for r in roots)
    found = "; ".join(partial) if partial else f"none of the {name} files {files} is in {where}"
    raise FileNotFoundError(
        f"root: {found}, and {reason}. Put the Planetoid files in one of {where} "
        f"(or set GSEQ_DATA to a folder holding planetoid/{name}/raw/), or pass root=DIR"
    )


def _read_verified(raw: Path, name: str, trust: bool) -> dict[str, bytes]:
    """Every raw file's bytes, each checked against its shipped SHA-256 before anything unpickles it."""
    blobs = {}
    for f in _file_names(name):
        data = (raw / f).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        expected = PLANETOID_SHA256.get(f)
        if not trust:
            if expected is None:
                raise ValueError(f"root: gseq ships no SHA-256 for {raw / f}, so it will not unpickle it; pass "
                                 "trust=True (gseq gcn --trust) if you trust this copy")
            if digest != expected:
                raise ValueError(f"root: {raw / f} has SHA-256 {digest}, expected {expected}: the file is damaged "
                                 "or was altered; replace it with the public Planetoid file (or pass trust=True)")
        blobs[f] = data
    return blobs


def _unpickle(data: bytes, source: Path):
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*scipy.sparse.*")
            return pickle.load(io.BytesIO(data), encoding="latin1")
    except Exception as err:  # UnpicklingError, EOFError, ValueError, ... from a damaged file
        raise ValueError(f"root: {source} could not be read as a Planetoid file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); the file is damaged: replace it with "
                         "the public Planetoid file") from None


def _dense(obj) -> Tensor:
    obj = obj.todense() if hasattr(obj, "todense") else obj
    return torch.from_numpy(np.asarray(obj)).to(torch.float)


def _build(name: str, blobs: dict[str, bytes], raw: Path) -> dict[str, Tensor]:
    """The PyG ``read_planetoid_data`` layout, from verified bytes (``raw`` names the files in errors)."""
    try:
        return _assemble(name, blobs, raw)
    except ValueError:
        raise
    except Exception as err:  # files that unpickle but do not hold a Planetoid dataset (only with trust=True)
        raise ValueError(f"root: the files in {raw} do not hold a Planetoid dataset ({type(err).__name__}: "
                         f"{err}); replace them with the public Planetoid files") from None


def _assemble(name: str, blobs: dict[str, bytes], raw: Path) -> dict[str, Tensor]:
    from torch_geometric.io.planetoid import edge_index_from_dict

    p = f"ind.{name.lower()}."
    x, tx, allx, y, ty, ally = (_dense(_unpickle(blobs[p + part], raw / (p + part)))
                                for part in ("x", "tx", "allx", "y", "ty", "ally"))
    graph = _unpickle(blobs[p + "graph"], raw / (p + "graph"))
    try:
        test_index = torch.tensor([int(v) for v in blobs[p + "test.index"].decode().split()], dtype=torch.long)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"root: {raw / (p + 'test.index')} is not a list of node numbers; the file is damaged: "
                         "replace it with the public Planetoid file") from None
    sorted_test = test_index.sort()[0]
    if name == "CiteSeer":  # isolated test nodes leave gaps in the test index: pad them with zero rows
        span = int(test_index.max() - test_index.min()) + 1
        tx_ext, ty_ext = torch.zeros(span, tx.size(1)), torch.zeros(span, ty.size(1))
        tx_ext[sorted_test - test_index.min()] = tx
        ty_ext[sorted_test - test_index.min()] = ty
        tx, ty = tx_ext, ty_ext
    feats = torch.cat([allx, tx])
    feats[test_index] = feats[sorted_test]
    labels = torch.cat([ally, ty]).max(dim=1)[1]
    labels[test_index] = labels[sorted_test]
    n = labels.size(0)

    def mask(index):
        m = torch.zeros(n, dtype=torch.bool)
        m[index] = True
        return m

    return {
        "x": feats, "y": labels, "edge_index": edge_index_from_dict(graph, num_nodes=n),
        "train_mask": mask(torch.arange(y.size(0))), "val_mask": mask(torch.arange(y.size(0), y.size(0) + 500)),
        "test_mask": mask(test_index),
    }


def planetoid(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    normalize: bool = True,
    trust: bool = False,
    download: bool = True,
) -> Data:
    """Load a Planetoid dataset with the public split (Yang et al., 2016), as PyG's ``Planetoid`` does.

    Args:
        name: ``"Cora"``, ``"CiteSeer"`` or ``"PubMed"`` (any case).
        root: folder holding ``<Name>/raw/ind.<name>.*``. (default: ``$GSEQ_DATA/planetoid``, then the
            cache, then the copy shipped with gseq (Cora), then a download into the cache)
        normalize: row-normalise the features (Kipf & Welling's setup). (default: ``True``)
        trust: unpickle files whose SHA-256 gseq does not know or that differ from it. (default: ``False``)
        download: fetch missing files into the cache (or into ``root``). (default: ``True``)

    Returns:
        :class:`~torch_geometric.data.Data` with ``x``, ``y``, ``edge_index`` (both directions, no
        self-loops) and ``train_mask`` / ``val_mask`` / ``test_mask`` (Cora: 140 / 500 / 1000).

    Raises:
        ValueError: unknown name, a raw file that fails its SHA-256 check, or (with ``trust=True``) one
            that cannot be read.
        FileNotFoundError: no copy of the files and no download; the message names files and folders.
    """
    name = _canonical(name)
    for flag, value in (("normalize", normalize), ("trust", trust), ("download", download)):
        boolean(flag, value)
    raw = _find_raw(name, root, download)
    blobs = _read_verified(raw, name, trust)
    key = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blobs.values())).hexdigest()[:16]
    processed = cache_dir() / "planetoid" / name / "processed" / f"data-{key}.pt"
    tensors = _read_processed(processed)
    if tensors is None:
        tensors = _build(name, blobs, raw)
        _write_processed(processed, tensors)
    data = Data(**tensors)
    if normalize:
        data.x = normalize_features(data.x)
    data.name = name
    return data


def _stamp(processed: Path) -> Path:
    return processed.with_suffix(".sha256")


def _read_processed(processed: Path) -> dict[str, Tensor] | None:
    """The cached tensors if ``processed`` is the file gseq wrote (its digest equals the stamp beside
    it), else ``None`` (after a warning when a file was there)."""
    if not processed.is_file():
        return None
    try:
        stamp = _stamp(processed).read_text().strip()
        return load_checkpoint(processed, expected_digest=stamp)
    except (OSError, ValueError) as err:
        reason = "its stamp is missing" if isinstance(err, FileNotFoundError) else str(err).split(";")[0]
        warnings.warn(f"planetoid: the processed cache {processed} is not the file gseq wrote ({reason}); rebuilding "
                      "it from the verified raw files", stacklevel=3)
        return None


def _write_processed(processed: Path, tensors: dict[str, Tensor]) -> None:
    """Cache the tensors and stamp them with their digest (an unwritable cache only costs a rebuild)."""
    try:
        save_checkpoint(processed, tensors)
        atomic_write_text(_stamp(processed), checkpoint_digest(processed) + "\n")
    except OSError:
        pass
