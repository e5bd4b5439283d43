"""The one policy for a run folder: new, continued, replaced, or refused (another kind of run there).

Every training command and :class:`~gseq.train.Trainer` goes through :class:`RunFolder`:

* a folder that holds no run (missing, empty, or other files only) takes a new run; ``resume`` there is
  refused (nothing to continue);
* a folder that holds a run of *another kind* (its ``config.json`` names the task: a text run, a GCN
  run, ...) is refused, naming that kind, whatever the flags: choose another folder;
* a folder that holds a run of this kind is continued with ``resume``, replaced with ``overwrite`` (the
  old run's files, and its ``seed_<i>/`` folders, are removed first, so nothing stale stays beside the
  new run), and refused otherwise;
* before any of this the folder is checked to be writable, and the temporary files that killed writes of
  gseq's files left behind are removed (:func:`gseq.io.remove_stale_temp_files`, one rule for every file
  gseq writes: :data:`RUN_FILES`).

Messages name the settings as the caller spells them: ``--resume`` on the command line, ``resume=True``
from Python (through the run's :class:`gseq.config.Config`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..io import check_writable_dir, remove_stale_temp_files

__all__ = ["RunFolder", "RUN_FILES", "run_kind"]

#: every file gseq writes into a run folder
RUN_FILES = ("checkpoint.pt", "metrics.csv", "config.json", "samples.csv", "loss.png", "curves.png", "results.json")
_SEED_FOLDER = re.compile(r"^seed_\d+$")


def run_kind(path: str | os.PathLike) -> str | None:
    """The kind of run ``path`` holds (the ``"task"`` of its ``config.json``; ``"gcn"`` for the folder of
    ``gseq gcn``, which holds ``results.json`` or ``seed_<i>/`` folders), or None when it holds none."""
    path = Path(path)
    try:
        task = json.loads((path / "config.json").read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        task = None
    if task is not None:
        return str(task)
    if (path / "results.json").is_file() or any(_SEED_FOLDER.match(p.name) for p in _entries(path) if p.is_dir()):
        return "gcn"
    return "a gseq run" if (path / "checkpoint.pt").is_file() else None


class RunFolder:
    """The policy above for one folder.

    Args:
        path: the run folder.
        kind: the kind of run about to be written (a config's ``task``, or ``"gcn"``); None skips the
            kind check.
        resume: continue the run there. (default: False)
        overwrite: replace the run there. (default: False)
        config: the run's :class:`gseq.config.Config`, which spells the names in messages. (default: None)
        continuing: the run there was written by this very process (a Trainer fitting again): continue it.
    """

    def __init__(self, path: str | os.PathLike, kind: str | None, *, resume: bool = False, overwrite: bool = False,
                 config=None, continuing: bool = False) -> None:
        self.path, self.kind = Path(path), kind
        self.resume, self.overwrite, self.config, self.continuing = resume, overwrite, config, continuing

    def _name(self, key: str, value: str = "True") -> str:
        if self.config is not None and self.config.name(key).startswith("--"):
            return self.config.name(key)
        return key if key == "out_dir" else f"{key}={value}"

    def prepare(self) -> bool:
        """Apply the policy before the first step; True when there is a checkpoint to continue.

        Raises:
            ValueError: the folder cannot be written, holds another kind of run, or holds a run and neither
                ``resume`` nor ``overwrite`` is set; or ``resume`` finds nothing to continue.
        """
        out = self._name("out_dir")
        if self.resume and self.overwrite:
            raise ValueError(f"{self._name('resume')}, {self._name('overwrite')}: choose one: the first continues "
                             "the run in the folder, the second replaces it")
        check_writable_dir(self.path, out)
        remove_stale_temp_files(self.path, RUN_FILES)
        held = run_kind(self.path)
        if held is not None and self.kind is not None and held not in (self.kind, "a gseq run"):
            raise ValueError(f"{out}: {str(self.path)!r} holds a {held} run, not a {self.kind} run; choose another "
                             "folder (nothing was changed)")
        has_checkpoint = (self.path / "checkpoint.pt").is_file()
        if self.continuing:
            return has_checkpoint
        if self.resume:
            if not has_checkpoint and held is None:
                raise ValueError(f"{self._name('resume')}: {str(self.path)!r} holds no checkpoint.pt to continue; "
                                 f"start the run without {self._name('resume')}")
            return has_checkpoint
        if held is not None:
            if not self.overwrite:
                what = f"a checkpoint of a {held} run" if has_checkpoint else f"a {held} run"
                raise ValueError(f"{out}: {str(self.path)!r} already holds {what}; continue it "
                                 f"with {self._name('resume')}, replace it with {self._name('overwrite')}, or choose "
                                 "another folder (nothing was changed)")
            self.clear()
        return False

    def clear(self) -> None:
        """Remove the run's files (:data:`RUN_FILES`) and its ``seed_<i>/`` folders; other files stay."""
        for entry in _entries(self.path):
            if entry.name in RUN_FILES and entry.is_file():
                entry.unlink()
            elif _SEED_FOLDER.match(entry.name) and entry.is_dir():
                shutil.rmtree(entry)


def _entries(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []
