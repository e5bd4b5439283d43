import io
import shutil
import urllib.request

import pytest
import torch

from gseq.data import PLANETOID_SHA256, planetoid


def test_cora_public_split(data_root):
    data = planetoid("Cora")
    assert data.num_nodes == 2708 and data.num_features == 1433 and int(data.y.max()) == 6
    assert data.edge_index.shape == (2, 10556)
    assert [int(data[m].sum()) for m in ("train_mask", "val_mask", "test_mask")] == [140, 500, 1000]
    torch.testing.assert_close(data.x.sum(1)[data.x.sum(1) > 0], torch.ones(int((data.x.sum(1) > 0).sum())))
    raw = planetoid("cora", normalize=False)
    assert set(raw.x.unique().tolist()) == {0.0, 1.0}


def test_cora_equals_pyg_planetoid(data_root, tmp_path):
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    shutil.copytree(data_root / "planetoid" / "Cora", tmp_path / "Cora")
    ref = Planetoid(str(tmp_path), "Cora", transform=NormalizeFeatures())[0]
    ours = planetoid("Cora")
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(ours[key], ref[key]), key


def test_never_writes_into_the_data_folder(data_root, tmp_path):
    before = sorted(p.name for p in (data_root / "planetoid" / "Cora").rglob("*"))
    planetoid("Cora")
    assert sorted(p.name for p in (data_root / "planetoid" / "Cora").rglob("*")) == before


def copy_cora(data_root, tmp_path):
    shutil.copytree(data_root / "planetoid" / "Cora", tmp_path / "Cora", dirs_exist_ok=True)
    return tmp_path


def test_tampered_file_is_refused_before_unpickling(data_root, tmp_path):
    root = copy_cora(data_root, tmp_path)
    path = root / "Cora" / "raw" / "ind.cora.x"
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="ind.cora.x has SHA-256"):
        planetoid("Cora", root=root)
    assert planetoid("Cora", root=root, trust=True).num_nodes == 2708


def test_missing_files_name_files_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GSEQ_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"ind\.citeseer\.x.*nowhere/planetoid/CiteSeer/raw"):
        planetoid("CiteSeer", download=False)
    with pytest.raises(FileNotFoundError, match="ind.citeseer.graph"):
        planetoid("CiteSeer", root=tmp_path, download=False)


def test_one_missing_file_is_named_alone(data_root, tmp_path):
    root = copy_cora(data_root, tmp_path)
    (root / "Cora" / "raw" / "ind.cora.ty").unlink()
    with pytest.raises(FileNotFoundError) as err:
        planetoid("Cora", root=root, download=False)
    message = str(err.value)
    assert "ind.cora.ty missing from" in message and str(root / "Cora" / "raw") in message
    assert "ind.cora.x" not in message and "ind.cora.allx" not in message  # the seven present files are not named


def test_search_order_data_then_cache_then_shipped_copy(data_root, tmp_path, monkeypatch):
    from gseq.data.planetoid import _find_raw

    def offline(*args, **kwargs):
        raise AssertionError("no download may be attempted: Cora ships with gseq")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("GSEQ_DATA", raising=False)
    monkeypatch.setenv("GSEQ_CACHE", str(tmp_path / "cache"))
    shipped = data_root / "planetoid" / "Cora" / "raw"
    assert _find_raw("Cora", None, download=True) == shipped
    assert planetoid("Cora").num_nodes == 2708  # offline, no data folder, empty cache
    copy_cora(data_root, tmp_path / "cache" / "planetoid")
    assert _find_raw("Cora", None, download=True) == tmp_path / "cache" / "planetoid" / "Cora" / "raw"
    copy_cora(data_root, tmp_path / "data" / "planetoid")
    monkeypatch.setenv("GSEQ_DATA", str(tmp_path / "data"))
    assert _find_raw("Cora", None, download=True) == tmp_path / "data" / "planetoid" / "Cora" / "raw"


def test_the_shipped_cora_is_the_public_files(data_root):
    import hashlib

    raw = data_root / "planetoid" / "Cora" / "raw"
    files = sorted(p.name for p in raw.iterdir())
    assert files == sorted(k for k in PLANETOID_SHA256 if k.startswith("ind.cora."))
    for name in files:
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == PLANETOID_SHA256[name], name


def test_an_unwritable_cache_does_not_stop_reading(data_root, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("GSEQ_CACHE", str(tmp_path / "a-file" / "cache"))  # nothing can be created below a file
    assert planetoid("Cora").num_nodes == 2708
    # a download into an unwritable place goes to a temporary folder instead
    served = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout=None):
        name = url.rsplit("/", 1)[-1]
        served.append(name)
        return Response((data_root / "planetoid" / "Cora" / "raw" / name).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    data = planetoid("Cora", root=tmp_path / "a-file" / "root")
    assert data.num_nodes == 2708 and len(served) == 8


def test_trusted_but_damaged_file_is_a_clear_error(data_root, tmp_path):
    root = copy_cora(data_root, tmp_path)
    path = root / "Cora" / "raw" / "ind.cora.x"
    path.chmod(0o644)
    path.write_bytes(b"\x80\x04 this is not a pickle")
    with pytest.raises(ValueError, match=r"ind\.cora\.x could not be read as a Planetoid file.*damaged"):
        planetoid("Cora", root=root, trust=True)


def test_unknown_name_and_unknown_digest(data_root, tmp_path):
    with pytest.raises(ValueError, match="name: unknown Planetoid dataset 'Coraa'"):
        planetoid("Coraa")
    raw = tmp_path / "PubMed" / "raw"
    raw.mkdir(parents=True)
    for part in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index"):
        (raw / f"ind.pubmed.{part}").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="ships no SHA-256"):
        planetoid("PubMed", root=tmp_path)


def test_citeseer_digests_are_shipped():
    assert sum(k.startswith("ind.citeseer.") for k in PLANETOID_SHA256) == 8


def test_citeseer_test_index_gaps_are_handled_as_pyg_does(tmp_path):
    """A synthetic CiteSeer-shaped copy (test indices with gaps), read by gseq (trust=True) and by PyG."""
    import pickle

    import numpy as np
    import scipy.sparse as sp
    from torch_geometric.io.planetoid import read_planetoid_data

    rng = np.random.default_rng(0)
    n_train, n_all, f, c = 3, 505, 5, 3
    test_index = np.array([508, 505, 510, 506])  # 507 and 509 are missing: isolated nodes
    n = 511
    onehot = lambda k: np.eye(c)[rng.integers(0, c, k)]  # noqa: E731
    items = {
        "x": sp.csr_matrix(rng.random((n_train, f))), "y": onehot(n_train),
        "allx": sp.csr_matrix(rng.random((n_all, f))), "ally": onehot(n_all),
        "tx": sp.csr_matrix(rng.random((len(test_index), f))), "ty": onehot(len(test_index)),
        "graph": {i: [(i + 1) % n, (i + 3) % n] for i in range(n)},
    }
    raw = tmp_path / "CiteSeer" / "raw"
    raw.mkdir(parents=True)
    for name, obj in items.items():
        with open(raw / f"ind.citeseer.{name}", "wb") as fh:
            pickle.dump(obj, fh)
    (raw / "ind.citeseer.test.index").write_text("\n".join(map(str, test_index)) + "\n")
    with pytest.raises(ValueError, match="SHA-256"):
        planetoid("CiteSeer", root=tmp_path)
    ours = planetoid("CiteSeer", root=tmp_path, trust=True, normalize=False)
    ref = read_planetoid_data(str(raw), "citeseer")
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(ours[key], ref[key]), key
    assert ours.num_nodes == n


def _cora_cache(tmp_path, monkeypatch):
    """Cora loaded once into a fresh cache; the path of its processed file."""
    monkeypatch.setenv("GSEQ_CACHE", str(tmp_path / "cache"))
    planetoid("Cora")
    [processed] = (tmp_path / "cache" / "planetoid" / "Cora" / "processed").glob("data-*.pt")
    return processed


@pytest.mark.parametrize("how", ["torch.save", "gseq save_checkpoint", "bit flip", "stamp removed"])
def test_an_edited_processed_cache_is_rebuilt_with_a_warning(tmp_path, monkeypatch, how):
    """The issue's attack: labels shifted and the test mask set to the train mask in the processed file
    (which raised Cora's reported accuracy from 75.9% to 96.4%); every way of writing it back is caught."""
    from gseq.io import save_checkpoint

    processed = _cora_cache(tmp_path, monkeypatch)
    reference = planetoid("Cora")
    tensors = torch.load(processed, weights_only=True)
    tensors["y"] = (tensors["y"] + 1) % 7
    tensors["test_mask"] = tensors["train_mask"].clone()
    if how == "torch.save":
        torch.save(tensors, processed)
    elif how == "gseq save_checkpoint":  # a valid digest inside, but not the one gseq stamped
        save_checkpoint(processed, tensors)
    elif how == "bit flip":
        blob = bytearray(processed.read_bytes())
        blob[len(blob) // 2] ^= 0x10
        processed.write_bytes(bytes(blob))
    else:
        processed.with_suffix(".sha256").unlink()
    with pytest.warns(UserWarning, match=r"processed cache .*data-.*\.pt is not the file gseq wrote.*rebuilding"):
        data = planetoid("Cora")
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(data[key], reference[key]), key
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache is trusted again, silently
        assert torch.equal(planetoid("Cora").y, reference.y)
