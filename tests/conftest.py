"""Shared test set-up: the data shipped with gseq, a writable cache, a quiet matplotlib, and hypothesis's
example database in a temporary folder.

The tests need no data folder: Cora and the book they read ship inside the package, so they pass in a
clone with no data folder beside it (CI runs them with GSEQ_DATA unset). They write only to temporary
folders: gseq's cache (below) and hypothesis's database, which would otherwise be ``.hypothesis/`` in
the folder pytest runs from.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import configuration, settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

#: hypothesis's folder (its example database, which replays failing examples on the next run, and its
#: caches): in the temporary folder, never ``.hypothesis/`` in the repository
HYPOTHESIS_HOME = Path(tempfile.gettempdir()) / "gseq-hypothesis"
configuration.set_hypothesis_home_dir(HYPOTHESIS_HOME)
settings.register_profile("gseq", database=DirectoryBasedExampleDatabase(str(HYPOTHESIS_HOME / "examples")))
settings.load_profile("gseq")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    """gseq never writes outside a cache; in tests that cache is a temporary folder."""
    cache = tmp_path_factory.getbasetemp() / "gseq-cache"
    monkeypatch.setenv("GSEQ_CACHE", str(cache))


@pytest.fixture
def data_root() -> Path:
    """A data folder laid out as $GSEQ_DATA is (``planetoid/Cora/raw/``): the copy shipped with gseq."""
    from importlib import resources

    root = Path(str(resources.files("gseq.data").joinpath("_bundled")))
    assert (root / "planetoid" / "Cora" / "raw").is_dir(), "the Cora files shipped with gseq are missing"
    return root


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Every test starts seeded and on one torch thread: the small recurrent and graph ops of the tests
    run fastest that way, a machine shared with other jobs does not slow them by oversubscription, and
    a test that changes the thread count (``--threads``) does not leak it into the next."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


#: the devices of device-parametrised tests: the CPU always, CUDA when present. Built at collection
#: time, so a machine without a GPU runs the CPU cases and shows nothing skipped.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session", params=DEVICES)
def device(request) -> torch.device:
    """Each entry of :data:`DEVICES` in turn (session-scoped, so hypothesis tests may use it too)."""
    return torch.device(request.param)
