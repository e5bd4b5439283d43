"""One typed config per run: every setting of a task in one dataclass, as nanoGPT's ``GPTConfig``.

A task's config is a dataclass whose fields are made by :func:`option`: the default, one line of help,
and the :mod:`gseq.checks` helper that validates the value. The same class is read by

* the task function (``train_char_lstm(file, steps=..., ...)`` builds ``TextConfig(file=file, steps=...)``:
  the keyword API *is* the fields, so a default is declared once);
* the command line: :meth:`Config.add_arguments` builds the argparse options from the fields (flag
  ``--field-name``, its help, default and argument type), so help text and defaults cannot drift, and
  :meth:`Config.from_args` reads them back;
* the run folder: :meth:`Config.to_dict` is what ``config.json`` and the checkpoint hold, and
  :meth:`Config.resume_differences` is the resume check (only the fields marked ``resumable`` may
  change when a run is continued).

Adding an option to a task is one field here (and the line of the task that uses it). Messages name a
setting as the caller spelled it: ``seq_length`` from Python, ``--seq-length`` from the command line
(:meth:`Config.name`).

This module imports no torch (the command line builds its parser from it before torch is loaded).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from . import checks

__all__ = ["Config", "option", "TextConfig", "PalindromeConfig", "NodeClassificationConfig", "TemporalConfig", "flag_spelling"]

_SPELLING = {"flags": False}  # set while the command line builds a config: messages name --flags


@contextlib.contextmanager
def flag_spelling():
    """Within this block, configs name their settings as command-line flags (``--seq-length``)."""
    before = _SPELLING["flags"]
    _SPELLING["flags"] = True
    try:
        yield
    finally:
        _SPELLING["flags"] = before


def option(default: Any, help: str, *, check: Callable[..., Any] | None = None, flag: str | None = None,
           parse: Callable[[str], Any] | None = None, choices: tuple | None = None, nargs: str | None = None,
           metavar: str | None = None, negate: bool = False, resumable: bool = False, saved: bool = True,
           cli: bool = True, cli_default: Any = dataclasses.MISSING) -> Any:
    """A config field: its default, one line of help, and how it is checked, parsed and compared.

    Args:
        default: the value when none is given. A default of ``None`` means the field accepts ``None``
            (an option that is off), and ``check`` is not called for it.
        help: one line for ``--help`` and the config's documentation; ``(default: ...)`` is added unless
            the text states it.
        check: a :mod:`gseq.checks` helper, ``check(name, value) -> value`` (bind extra arguments with
            :func:`functools.partial`); the command line calls it with ``name=""`` to check a flag's value
            as argparse parses it.
        flag: the command-line spelling. (default: ``--`` + the name with ``-`` for ``_``)
        parse: text -> value for the command line. (default: from the field's type: int, float, str)
        choices: the allowed values (checked by :func:`gseq.checks.choice`, listed by ``--help``).
        nargs: argparse's ``nargs`` for a tuple field (e.g. ``"+"``).
        metavar: argparse's metavar.
        negate: a bool field whose flag turns it off (``--keep-gutenberg`` sets ``strip_header=False``).
        resumable: may differ when a run is continued (``steps``, ``device``); every other saved field
            must equal the checkpoint's.
        saved: written to ``config.json`` and compared on resume (False for how a run is driven:
            ``out_dir``, ``resume``, ``overwrite``, ``progress``, ``threads``).
        cli: has a command-line flag.
        cli_default: the command line's default where it differs from Python's (``gseq text train`` writes
            to ``runs/text``, ``train_char_lstm`` writes nothing unless given ``out_dir``).
    """
    meta = {"help": help, "check": check, "flag": flag, "parse": parse, "choices": choices, "nargs": nargs,
            "metavar": metavar, "negate": negate, "resumable": resumable, "saved": saved, "cli": cli,
            "cli_default": default if cli_default is dataclasses.MISSING else cli_default}
    return dataclasses.field(default=default, metadata=meta)


class Config:
    """Base of the task configs (dataclasses whose fields come from :func:`option`).

    Building one checks every field (``__post_init__``), then the settings that depend on each other
    (:meth:`check_together`, which a task's config overrides).
    """

    #: the ``task`` name written beside the fields in ``config.json`` (and checked on resume)
    task: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self._flags = _SPELLING["flags"]
        #: what the settings gave, saved and compared on resume beside them (a text's vocabulary)
        self.derived: dict[str, Any] = {}
        for f in self._options():
            value = getattr(self, f.name)
            if f.metadata["nargs"] is not None and isinstance(value, list):
                value = tuple(value)
                setattr(self, f.name, value)
            if value is None and f.default is None:
                continue
            if f.metadata["choices"] is not None:
                checks.choice(self.name(f.name), value, f.metadata["choices"])
            elif _kind(self, f) is bool:
                checks.boolean(self.name(f.name), value)
            if f.metadata["check"] is not None:
                f.metadata["check"](self.name(f.name), value)
        self.check_together()

    def replace(self, **changes: Any):
        """A copy with ``changes`` (checked again), spelling names as this one does."""
        if not changes:
            return self
        with flag_spelling() if self._flags else contextlib.nullcontext():
            new = dataclasses.replace(self, **changes)
        new.derived.update(self.derived)
        return new

    def check_together(self) -> None:
        """Checks of settings that depend on each other (overridden by a task's config)."""

    # ------------------------------------------------------------------ names
    def name(self, field: str) -> str:
        """``field`` as the caller spelled it: ``--field-name`` on the command line, else ``field``."""
        if getattr(self, "_flags", False):
            return self._flag_of(field)
        return field

    @classmethod
    def _flag_of(cls, field: str) -> str:
        f = next(f for f in dataclasses.fields(cls) if f.name == field)
        return f.metadata.get("flag") or "--" + field.replace("_", "-")

    @classmethod
    def _options(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if "help" in f.metadata]

    # ------------------------------------------------------------------ the command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | Any, *, exclude: tuple[str, ...] = ()) -> None:
        """Add one option per field (except ``exclude`` and fields with ``cli=False``) to ``parser``."""
        for f in cls._options():
            meta = f.metadata
            if not meta["cli"] or f.name in exclude:
                continue
            kwargs: dict[str, Any] = {"dest": f.name, "default": meta["cli_default"], "help": meta["help"]}
            kind = _kind(cls, f)
            if kind is bool:
                kwargs["action"] = "store_false" if meta["negate"] else "store_true"
            else:
                # a tuple field's items are parsed here, the whole tuple checked when the config is built
                kwargs["type"] = meta["parse"] or _argument_type(kind, None if meta["nargs"] else meta["check"])
                if meta["choices"] is not None:
                    kwargs["choices"] = list(meta["choices"])
                if meta["nargs"] is not None:
                    kwargs["nargs"] = meta["nargs"]
                kwargs["metavar"] = meta["metavar"] or cls._flag_of(f.name)[2:].upper().replace("-", "_")
            parser.add_argument(cls._flag_of(f.name), **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any):
        """The config of parsed command-line ``args`` (the fields they hold), checked with messages that
        name flags."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        values.update(overrides)
        with flag_spelling():
            return cls(**values)

    # ------------------------------------------------------------------ config.json and resume
    def to_dict(self) -> dict[str, Any]:
        """The saved fields as plain JSON data (tuples as lists), after ``"task"``."""
        out: dict[str, Any] = {"task": self.task}
        for f in self._options():
            if f.metadata["saved"]:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        if self.derived:
            out["derived"] = dict(self.derived)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any):
        """A config from :meth:`to_dict`'s data (unsaved fields take their defaults, or ``overrides``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{**{k: v for k, v in data.items() if k in names}, **overrides})
        cfg.derived.update(data.get("derived") or {})
        return cfg

    def resume_differences(self, saved: Mapping[str, Any]) -> list[str]:
        """The settings that differ from ``saved`` (a :meth:`to_dict` of the run being continued), each as
        ``"name X there, Y now"``; the ``resumable`` fields may differ and are not listed."""
        now = self.to_dict()
        differ = [] if saved.get("task") == self.task else [f"task {saved.get('task')!r} there, {self.task!r} now"]
        for f in self._options():
            if f.metadata["saved"] and not f.metadata["resumable"] and saved.get(f.name) != now[f.name]:
                differ.append(f"{self.name(f.name)} {saved.get(f.name)!r} there, {now[f.name]!r} now")
        old = saved.get("derived") or {}
        for key in sorted(set(old) | set(self.derived)):
            if old.get(key) != self.derived.get(key):
                differ.append(f"{key} {_short(old.get(key))} there, {_short(self.derived.get(key))} now")
        return differ

    def resumable_names(self) -> tuple[str, ...]:
        """The settings a resumed run may change, as the caller spells them."""
        return tuple(self.name(f.name) for f in self._options() if f.metadata["resumable"])

    @classmethod
    def describe(cls) -> str:
        """One line per field: name, default and help (the config's reference, used in docstrings)."""
        return "\n".join(f"{f.name} = {f.default!r}: {f.metadata['help']}" for f in cls._options())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}... ({len(value) if hasattr(value, '__len__') else '?'} long)"


def _kind(cls, f: dataclasses.Field) -> type | None:
    """The plain type of a field (int, float, str, bool) from its annotation, None for anything else."""
    hint = typing.get_type_hints(cls if isinstance(cls, type) else type(cls))[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is not tuple else [hint]
    args = args or [hint]
    if typing.get_origin(args[0]) is tuple:  # tuple[int, ...]: the items' type
        args = [typing.get_args(args[0])[0]]
    return args[0] if len(args) == 1 and args[0] in (int, float, str, bool) else None


def _argument_type(kind: type | None, check: Callable[..., Any] | None) -> Callable[[str], Any]:
    """An argparse type: the text parsed as ``kind``, then ``check("", value)``; errors become argparse's."""
    def parse(text: str) -> Any:
        try:
            value = kind(text) if kind is not None else text
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
                from None
        if check is not None:
            try:
                value = check("", value)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
        return value

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse's "invalid <name> value" wording
    return parse


# ---------------------------------------------------------------------- checks shared by the configs
#: the largest learning rate accepted (larger ones diverge at the first step)
MAX_LR = 1e3
_learning_rate = functools.partial(checks.in_range, low=0, high=MAX_LR, low_open=True)
_dropout = functools.partial(checks.in_range, low=0, high=1, high_open=True)
_decay = functools.partial(checks.in_range, low=0, high=1, low_open=True)
_fraction = functools.partial(checks.in_range, low=0, high=1, low_open=True, high_open=True)


# ---------------------------------------------------------------------- the text task
@dataclasses.dataclass
class TextConfig(Config):
    """``gseq text train`` / :func:`gseq.tasks.train_char_lstm`: a character LSTM on a book."""

    task: ClassVar[str] = "text"

    file: str = option("book_EN_grimms_fairy_tails.txt",
                       "UTF-8 text file (.gz allowed), or a book's name under $GSEQ_DATA/text; the default, Grimms' "
                       "Fairy Tales, ships with gseq", check=lambda name, v: checks.instance(name, v, str, "a path"),
                       parse=str)
    steps: int = option(20000, "total optimizer steps (a resumed run continues up to this number)",
                        check=checks.positive_int, resumable=True)
    out_dir: str | None = option(None, "run folder: checkpoint.pt, metrics.csv, config.json, samples.csv, loss.png; "
                                 "an existing run there is continued with --resume or replaced with --overwrite "
                                 "(default: runs/text; from Python: None, nothing written)", flag="--out", saved=False,
                                 cli_default="runs/text")
    resume: bool = option(False, "continue the run in --out from its checkpoint (same settings; more steps allowed)",
                          saved=False)
    overwrite: bool = option(False, "replace a finished or interrupted run in --out (refused without this flag)",
                             saved=False)
    device: str = option("auto", "auto (CUDA when available, else the CPU), cpu, cuda or cuda:N; a device this "
                         "machine or this torch lacks is refused before anything runs", resumable=True, parse=str)
    preprocess: bool = option(False, "the report's preprocessing: keep letters, digits and spaces, lower-case")
    strip_header: bool = option(True, "keep the Project Gutenberg header and licence, which are stripped otherwise "
                                "(Python: strip_header=False) (default: stripped)", flag="--keep-gutenberg",
                                negate=True)
    seq_length: int = option(30, "training window length", check=checks.positive_int)
    batch_size: int = option(64, "windows per step", check=checks.positive_int)
    lr: float = option(2e-3, "Adam learning rate", check=_learning_rate)
    lr_decay: float | None = option(None, "multiply the learning rate by this, in (0, 1], every --lr-decay-every "
                                    "steps (default: off)", check=_decay)
    lr_decay_every: int = option(5000, "steps between learning-rate decays", check=checks.positive_int)
    hidden_size: int = option(128, "LSTM state size", check=checks.positive_int)
    num_layers: int = option(2, "stacked LSTM layers", check=checks.positive_int)
    dropout: float = option(0.0, "dropout between LSTM layers, in [0, 1)", check=_dropout)
    embedding: str = option("onehot", "character embedding", choices=("onehot", "learned"))
    clip_grad_norm: float | None = option(5.0, "clip the global gradient norm to this (Python: None disables)",
                                          check=functools.partial(checks.positive_float, none_ok=True))
    val_fraction: float = option(0.05, "held-out tail of the text, in (0, 1)", check=_fraction)
    eval_every: int = option(500, "validation interval in steps", check=checks.positive_int)
    sample_every: int | None = option(1000, "log samples of lengths 20/30/60 every this many steps; 0 = never",
                                      check=functools.partial(checks.non_negative_int, none_ok=True))
    checkpoint_every: int | None = option(1000, "checkpoint interval in steps (Python: None checkpoints only at the "
                                          "end)", check=functools.partial(checks.positive_int, none_ok=True))
    target_loss: float | None = option(None, "stop once val_loss <= this (and --target-acc) (default: off)",
                                       check=checks.non_negative_float)
    target_acc: float | None = option(None, "stop once val_acc >= this (and --target-loss) (default: off)",
                                      check=checks.non_negative_float)
    seed: int = option(0, "seeds the weights, the batches and the samples", check=checks.integer)
    threads: int | None = option(None, "torch CPU threads (default: torch's choice)", check=checks.positive_int,
                                 saved=False)
    progress: bool = option(True, "no progress bar (Python: progress=False) (default: shown)", flag="--no-progress",
                            negate=True, saved=False)
    echo_samples: bool = option(False, "do not print the logged samples (default: printed; from Python: "
                                "echo_samples=False)", flag="--quiet-samples", negate=True, saved=False,
                                cli_default=True)

    def check_together(self) -> None:
        if self.resume and self.overwrite:
            raise ValueError(f"{self.name('resume')}, {self.name('overwrite')}: choose one: {self.name('resume')} "
                             f"continues the run in {self.name('out_dir')}, {self.name('overwrite')} replaces it")
        for flag in ("resume", "overwrite"):
            if getattr(self, flag) and self.out_dir is None:
                raise ValueError(f"{self.name(flag)}: needs {self.name('out_dir')}, the run folder")


@dataclasses.dataclass
class PalindromeConfig(Config):
    """Placeholder replaced below (kept so the names of this module are stable)."""

    task: ClassVar[str] = "palindrome"


@dataclasses.dataclass
class NodeClassificationConfig(Config):
    """Placeholder replaced below (kept so the names of this module are stable)."""

    task: ClassVar[str] = "node_classification"


# ---------------------------------------------------------------------- the temporal forecasting task
#: the recurrent graph cells by name (gseq.layers.GRAPH_CELLS), and the temporal datasets and edge-weight kinds
#: (gseq.data.TEMPORAL_DATASETS, EDGE_WEIGHTS): spelled here too, because this module imports no torch
TEMPORAL_MODELS = ("gconv_gru", "gconv_lstm", "tgcn", "dcrnn")
TEMPORAL_DATASETS = ("chickenpox", "pedalme", "england_covid")
TEMPORAL_EDGE_WEIGHTS = ("similarity", "distance", "raw", "none")


def _self_loop_weight(name: str, value: Any) -> Any:
    if value == "learn":
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number >= 0 or 'learn', got {value!r}") from None
    checks.non_negative_float(name, number)
    return value


@dataclasses.dataclass
class TemporalConfig(Config):
    """``gseq temporal train`` / :func:`gseq.tasks.train_forecaster`: forecasting node signals on a graph."""

    task: ClassVar[str] = "temporal"

    dataset: str = option("chickenpox", "published dataset (chickenpox ships with gseq; pedalme and england_covid are "
                          "read from $GSEQ_DATA/temporal or --root)", choices=TEMPORAL_DATASETS)
    file: str | None = option(None, "a JSON file in PGT's layout (edges, optional weights, X or FX; or edge_mapping "
                              "and y), read instead of --dataset", parse=str)
    root: str | None = option(None, "folder holding the dataset's file (default: $GSEQ_DATA/temporal)", parse=str)
    edge_weights: str = option("similarity", "what the published edge weights are: similarity (divided by their "
                               "largest), distance (Gaussian kernel), raw, none", choices=TEMPORAL_EDGE_WEIGHTS)
    model: str = option("gconv_gru", "recurrent graph cell", choices=TEMPORAL_MODELS)
    lags: int | None = option(None, "lags per snapshot (default: the dataset's, 4 / 4 / 8 as PGT; 4 for --file)",
                              check=checks.positive_int)
    horizon: int = option(1, "steps ahead predicted at every snapshot (1 = next step)", check=checks.positive_int)
    hidden: int = option(32, "channels of the recurrent state", check=checks.positive_int)
    K: int = option(2, "filter size of gconv_gru / gconv_lstm / dcrnn (hops + 1)", check=checks.positive_int,
                    flag="--k")
    self_loop_weight: str = option("1.0", "tgcn's GCN self-loop weight: a number >= 0, or 'learn'",
                                   check=_self_loop_weight, parse=str)
    ar_skip: bool = option(True, "no linear autoregressive term on the lags beside the recurrent read-out (PGT's "
                           "RecurrentGCN) (default: with it)", flag="--no-ar-skip", negate=True)
    train: float = option(0.8, "fraction of the snapshots, earliest first, used for training (PGT's tutorial: 0.2)",
                          check=_fraction)
    val: float = option(0.1, "fraction of the training snapshots, at their end, held out for early stopping",
                        check=_fraction)
    window: int = option(8, "truncated backpropagation through time: snapshots per step, the state carried "
                         "across windows", check=checks.positive_int)
    epochs: int = option(200, "passes over the training snapshots", check=checks.positive_int, resumable=True)
    patience: int | None = option(20, "stop after this many epochs without a better validation MSE (Python: None "
                                  "disables)", check=functools.partial(checks.positive_int, none_ok=True))
    lr: float = option(0.01, "Adam learning rate", check=_learning_rate)
    weight_decay: float = option(0.0, "Adam weight decay", check=checks.non_negative_float)
    baselines: bool = option(True, "skip the baselines: the linear AR model on the lags and the same model without "
                             "the graph (default: run)", flag="--no-baselines", negate=True, saved=False)
    seed: int = option(0, "seeds the weights", check=checks.integer)
    out_dir: str | None = option(None, "run folder: checkpoint.pt, metrics.csv, config.json, results.json, "
                                 "forecast.png (default: runs/temporal; from Python: None, nothing written)",
                                 flag="--out", saved=False, cli_default="runs/temporal")
    resume: bool = option(False, "continue the run in --out from its checkpoint (same settings; more epochs allowed)",
                          saved=False)
    overwrite: bool = option(False, "replace a finished or interrupted run in --out", saved=False)
    device: str = option("auto", "auto (CUDA when available), cpu, cuda or cuda:N", resumable=True, parse=str)
    threads: int | None = option(None, "torch CPU threads (default: torch's choice)", check=checks.positive_int,
                                 saved=False)
    progress: bool = option(True, "no progress bar (Python: progress=False) (default: shown)", flag="--no-progress",
                            negate=True, saved=False)

    check_together = TextConfig.check_together  # the same run-folder rules: --resume or --overwrite, with --out
