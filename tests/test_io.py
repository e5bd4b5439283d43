"""Checkpoint integrity: every gseq checkpoint carries a digest of its payload, checked on load."""

from __future__ import annotations

import random
from pathlib import Path
import warnings
import zipfile

import pytest
import torch

from gseq.io import checkpoint_digest, load_checkpoint, save_checkpoint


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def adam_checkpoint(tmp_path):
    """A small checkpoint of what the Trainer saves: weights, Adam's state, RNG state, counters."""
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "rng": torch.get_rng_state(), "step": 3})
    return path


def _flip(path, position, bit, out):
    blob = bytearray(path.read_bytes())
    blob[position] ^= 1 << bit
    out.write_bytes(bytes(blob))
    return out


def _refused_or_identical(path, reference):
    """Loading a damaged copy either refuses it as damaged or gives exactly the reference back."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a damaged file must not pass as an old one without a digest
            loaded = load_checkpoint(path)
    except ValueError as err:
        assert "checkpoint:" in str(err) and str(path) in str(err)
        return "refused"
    assert _same(loaded, reference)
    return "identical"


def test_saved_checkpoints_carry_a_digest_and_still_load_with_torch(adam_checkpoint):
    digest = checkpoint_digest(adam_checkpoint)
    assert isinstance(digest, str) and len(digest) == 64
    with zipfile.ZipFile(adam_checkpoint) as archive:
        assert any(name.endswith("/.gseq_sha256") for name in archive.namelist())
    plain = torch.load(adam_checkpoint, weights_only=True)  # torch ignores the extra record
    assert _same(load_checkpoint(adam_checkpoint), plain)
    assert load_checkpoint(adam_checkpoint, expected_digest=digest)["step"] == 3


def test_single_bit_flips_are_refused_or_harmless(adam_checkpoint, tmp_path):
    """The issue's 13 flips loaded changed weights, optimizer or RNG state; now each flip in a sample of
    positions (every region of the archive) is refused as damage or changes nothing that is loaded."""
    reference = load_checkpoint(adam_checkpoint)
    size = adam_checkpoint.stat().st_size
    rng = random.Random(0)
    positions = sorted({rng.randrange(size) for _ in range(150)} | set(range(size - 200, size)))
    outcomes = [_refused_or_identical(_flip(adam_checkpoint, p, rng.randrange(8), tmp_path / "flipped.pt"), reference)
                for p in positions]
    assert outcomes.count("refused") > len(outcomes) // 2  # payload and directory flips are caught


def test_a_negative_adam_second_moment_is_named_as_damage(adam_checkpoint, tmp_path):
    """The flip that made exp_avg_sq negative (a NaN loss on resume, blamed on the learning rate): as a
    raw flip (the record's CRC-32 fails) and as an edit that rewrote the archive with fresh CRCs (the
    stored SHA-256 fails)."""
    state = load_checkpoint(adam_checkpoint)["optimizer"]["state"][0]["exp_avg_sq"]
    target = state.numpy().tobytes()
    offset = adam_checkpoint.read_bytes().index(target)
    damaged = _flip(adam_checkpoint, offset + 3, 7, tmp_path / "damaged.pt")  # the sign bit of the first float
    with pytest.raises(ValueError, match=r"damaged\.pt' is damaged"):
        load_checkpoint(damaged)

    edited = tmp_path / "edited.pt"
    with zipfile.ZipFile(adam_checkpoint) as src, zipfile.ZipFile(edited, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if target in data:
                data = data.replace(target, (-state).numpy().tobytes())
            dst.writestr(info, data)
    assert (torch.load(edited, weights_only=True)["optimizer"]["state"][0]["exp_avg_sq"] < 0).any()
    with pytest.raises(ValueError, match="is damaged: its contents do not match the SHA-256 stored in it"):
        load_checkpoint(edited)


def test_a_checkpoint_without_a_digest_loads_with_a_warning(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"a": torch.arange(3)}, path)  # as gseq wrote checkpoints before digests
    assert checkpoint_digest(path) is None
    with pytest.warns(UserWarning, match=r"old\.pt' holds no integrity digest"):
        assert torch.equal(load_checkpoint(path)["a"], torch.arange(3))
    with pytest.raises(ValueError, match="is not the file that was written there"):
        load_checkpoint(path, expected_digest="0" * 64)


def test_another_valid_checkpoint_in_its_place_fails_the_expected_digest(tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    save_checkpoint(first, {"a": torch.zeros(2)})
    save_checkpoint(second, {"a": torch.ones(2)})
    with pytest.raises(ValueError, match="is not the file that was written there"):
        load_checkpoint(second, expected_digest=checkpoint_digest(first))


def test_a_stamped_file_that_changed_is_named_as_damaged(tmp_path):
    from gseq.io import read_verified_text, stamp_path, write_csv

    path = tmp_path / "results.csv"
    write_csv(path, [{"seed": 0, "accuracy": 0.5}], stamp=True)
    assert stamp_path(path).name == "results.csv.sha256"
    assert read_verified_text(path, "results") == path.read_bytes().decode()
    path.write_text(path.read_text().replace("0.5", "0.9"))  # a silently different result
    with pytest.raises(ValueError, match=r"^results: .*results\.csv' is damaged or was edited.*delete results"):
        read_verified_text(path, "results")
    stamp_path(path).unlink()  # the way out the message names
    assert "0.9" in read_verified_text(path, "results")


def test_a_write_stopped_between_stamp_and_file_still_verifies(tmp_path, monkeypatch):
    """The stamp is written first and keeps the previous digest: the old file still matches it."""
    import gseq.io as gio

    path = tmp_path / "results.csv"
    gio.write_csv(path, [{"a": 1}], stamp=True)
    old = path.read_text()
    real = gio.atomic_write_bytes

    def stop_before_the_file(target, data, *, stamp=False):
        if not stamp and Path(target) == path:
            raise KeyboardInterrupt  # killed after the stamp's rename, before the file's
        return real(target, data, stamp=stamp)

    monkeypatch.setattr(gio, "atomic_write_bytes", stop_before_the_file)
    with pytest.raises(KeyboardInterrupt):
        gio.write_csv(path, [{"a": 1}, {"a": 2}], stamp=True)
    monkeypatch.undo()
    assert path.read_text() == old and gio.read_verified_text(path, "results").splitlines() == old.splitlines()
    gio.write_csv(path, [{"a": 1}, {"a": 2}], stamp=True)
    assert "2" in gio.read_verified_text(path, "results")


def test_a_resumed_grid_refuses_an_edited_results_file(tmp_path):
    from gseq.analysis import run_grid

    path = tmp_path / "grid.csv"
    kwargs = dict(key=lambda r: (int(r["x"]),), fields=["x", "y"], types={"x": int, "y": float}, settings={"s": 1})
    rows = run_grid(path, [(1,), (2,)], _square, **kwargs)
    assert [r["y"] for r in rows] == [1.0, 4.0]
    path.write_text(path.read_text().replace("4.0", "5.0"))
    with pytest.raises(ValueError, match="grid.csv' is damaged or was edited"):
        run_grid(path, [(1,), (2,), (3,)], _square, **kwargs)
    settings = tmp_path / "grid.json"
    settings.write_text(settings.read_text().replace("1", "2"))
    with pytest.raises(ValueError, match="^settings: .*grid.json' is damaged or was edited"):
        run_grid(path, [(1,)], _square, **kwargs)


def _square(x):
    return {"x": x, "y": float(x * x)}
