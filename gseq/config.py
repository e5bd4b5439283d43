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

__all__ = ["Config", "option", "argument_type", "flag_spelling", "TextConfig", "PalindromeConfig",
           "NodeClassificationConfig", "TemporalConfig"]

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


def threads_option() -> Any:
    """Every command's ``threads`` (not saved with a run: a resumed run may use another number)."""
    return option(None, "torch CPU threads (default: torch's choice); a seeded run repeats bit for bit on the "
                  "same number of threads, and another number rounds float sums differently",
                  check=checks.positive_int, saved=False)


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
            if value is None and None in (f.default, f.metadata["cli_default"]):  # None: "off" / "not given"
                continue
            if f.metadata["choices"] is not None:
                checks.choice(self.name(f.name), value, f.metadata["choices"])
            elif _kind(self, f) is bool:
                checks.boolean(self.name(f.name), value)
            if f.metadata["check"] is not None:
                f.metadata["check"](self.name(f.name), value)
        self.check_together()

    def with_changes(self, **changes: Any):
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
    def add_arguments(cls, parser: argparse.ArgumentParser | Any, *, only: tuple[str, ...] | None = None,
                      exclude: tuple[str, ...] = (), defaults: Mapping[str, Any] | None = None) -> None:
        """Add one option per field to ``parser`` (or to an argument group): those in ``only`` (default: all),
        except ``exclude`` and fields with ``cli=False``; ``defaults`` replaces some defaults for this command."""
        for f in cls._options():
            meta = f.metadata
            if not meta["cli"] or f.name in exclude or (only is not None and f.name not in only):
                continue
            default = (defaults or {}).get(f.name, meta["cli_default"])
            kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": meta["help"]}
            kind = _kind(cls, f)
            if kind is bool:
                kwargs["action"] = "store_false" if meta["negate"] else "store_true"
            else:
                # a tuple field's items are parsed here, the whole tuple checked when the config is built
                kwargs["type"] = meta["parse"] or argument_type(kind, None if meta["nargs"] else meta["check"])
                if meta["choices"] is not None:
                    kwargs["choices"] = list(meta["choices"])
                if meta["nargs"] is not None:
                    kwargs["nargs"] = meta["nargs"]
                if meta["choices"] is None or meta["metavar"] is not None:
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


def argument_type(kind: type | None, check: Callable[..., Any] | None) -> Callable[[str], Any]:
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
                       "Fairy Tales, ships with gseq; loading takes about 20 bytes of memory per character", check=lambda name, v: checks.instance(name, v, str, "a path"),
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
    seed: int = option(0, "seeds the weights, the batches and the samples", check=checks.random_seed)
    threads: int | None = threads_option()
    progress: bool = option(True, "no progress bar (Python: progress=False) (default: shown)", flag="--no-progress",
                            negate=True, saved=False)
    echo_samples: bool = option(False, "do not print the logged samples (default: printed; from Python: "
                                "echo_samples=False)", flag="--quiet-samples", negate=True, saved=False,
                                cli_default=True)

    def check_together(self) -> None:
        _check_out_flags(self)


#: ``gseq gcn --dataset``: Planetoid names, two embedded graphs, and any size of synthetic graph
DATASETS = ("Cora", "CiteSeer", "PubMed", "example", "karate", "synthetic")
#: the nodes of ``--dataset synthetic`` without ``--num-nodes``
SYNTHETIC_NODES = 100_000


def parse_dataset(text: str) -> str:
    for name in DATASETS:
        if text.lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose one of {', '.join(DATASETS)}")


def _self_loop_weight(name: str, value: Any) -> Any:
    if value == "learn":
        return value
    return checks.non_negative_float(name, value, hint=" or 'learn'")


def parse_self_loop_weight(text: str) -> float | str:
    if text == "learn":
        return text
    try:
        return _self_loop_weight("", float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err) if "must" in str(err) else
                                         f"expected a number >= 0 or 'learn', got {text!r}") from None


def _fan_out(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or -1 (all neighbours), got {text!r}") from None
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(f"must be >= 1, or -1 for all neighbours, got {text!r}")
    return value


def _fan_outs(name: str, value: Any) -> Any:
    for k in value:
        if isinstance(k, bool) or not isinstance(k, int) or (k < 1 and k != -1):
            raise ValueError(f"{name}: every fan-out must be an integer >= 1 or -1 (all neighbours), got {list(value)}")
    return value


# ---------------------------------------------------------------------- node classification (gseq gcn)
#: the networks of gseq gcn, and what GCNII's settings for Cora (chennnM/GCNII) change from the GCN's defaults
MODELS = ("gcn", "gcnii")
GCNII_DEFAULTS = {"num_layers": 64, "hidden_channels": 64, "dropout": 0.6, "weight_decay": 0.01, "epochs": 1500,
                  "alpha": 0.1, "theta": 0.5, "patience": 100, "dense_weight_decay": 5e-4}
GCNII_ONLY = ("alpha", "theta", "patience", "dense_weight_decay")


@dataclasses.dataclass
class NodeClassificationConfig(Config):
    """``gseq gcn`` / :func:`gseq.tasks.train_node_classifier`: a GCNNet on one graph, full-batch or on
    sampled subgraphs (``batch_size``), reporting the test accuracy at the best validation accuracy."""

    task: ClassVar[str] = "node_classification"

    dataset: str | None = option(None, "Planetoid name, 'example' (the 6-node graph) / 'karate' (embedded, no "
                                 "files), or 'synthetic' (gseq.data.synthetic_graph, any size) (default: Cora; from "
                                 "Python: the graph's name)", parse=parse_dataset, cli_default="Cora",
                                 metavar="{" + ",".join(DATASETS) + "}")
    num_nodes: int | None = option(None, "nodes of --dataset synthetic (degree-corrected SBM, average degree 10, 10 "
                                   f"classes, 64 features, seed 0) (default: {SYNTHETIC_NODES})",
                                   check=checks.positive_int)
    root: str | None = option(None, "folder holding <Name>/raw/ind.<name>.* (default: $GSEQ_DATA/planetoid, then "
                              "~/.cache/gseq/planetoid, then the copy shipped with gseq (Cora), then a download)",
                              parse=str, saved=False)
    trust: bool = option(False, "unpickle raw files whose SHA-256 gseq does not know (unpickling runs code)",
                         saved=False)
    model: str = option("gcn", "the network: gcn (GCNNet, Kipf & Welling) or gcnii (gseq.models.GCNII: linear, "
                        "GCN2 layers with initial residual and identity mapping, linear; GCNII's settings for Cora "
                        "are then the defaults)", choices=MODELS)
    num_layers: int = option(2, "number of GCN layers (default: 2; gcnii: 64)", check=checks.positive_int,
                             flag="--layers")
    hidden_channels: int = option(16, "hidden channels (default: 16; gcnii: 64)", check=checks.positive_int,
                                  flag="--hidden")
    alpha: float | None = option(None, "gcnii: strength of the initial residual, in [0, 1] (default: 0.1)",
                                 check=functools.partial(checks.in_range, low=0, high=1))
    theta: float | None = option(None, "gcnii: lambda of the identity mapping, beta_l = log(lambda / l + 1) "
                                 "(default: 0.5)", check=checks.non_negative_float)
    patience: int | None = option(None, "gcnii: stop after this many epochs without a lower validation loss "
                                  "(default: 100)", check=checks.positive_int)
    dense_weight_decay: float | None = option(None, "gcnii: weight decay on the two linear layers (default: 5e-4)",
                                              check=checks.non_negative_float)
    self_loop_weight: float | str = option(1.0, "w in D^-1/2 (A + wI) D^-1/2: a number >= 0 or 'learn'",
                                           check=_self_loop_weight, parse=parse_self_loop_weight)
    dropout: float = option(0.5, "dropout probability, in [0, 1) (default: 0.5; gcnii: 0.6)", check=_dropout)
    lr: float = option(0.01, "Adam learning rate", check=_learning_rate)
    weight_decay: float = option(5e-4, "weight decay on the first layer (default: 5e-4; gcnii: 0.01, on the "
                                 "GCN2 layers)", check=checks.non_negative_float)
    epochs: int = option(200, "training epochs (a resumed run continues up to this number) (default: 200; gcnii: "
                         "at most 1500)",
                         check=checks.positive_int, resumable=True)
    batch_size: int | None = option(None, "train on mini-batches of this many seed nodes with sampled "
                                    "neighbourhoods (gseq.loader.NeighborLoader) and evaluate by exact layer-wise "
                                    "inference (default: full-batch training)", check=checks.positive_int)
    num_neighbors: tuple[int, ...] | None = option(None, "with --batch-size: neighbours sampled per node in each "
                                                   "hop, one per layer; -1 takes all (default: 10 per layer)",
                                                   check=_fan_outs, nargs="+", parse=_fan_out, metavar="K")
    replace: bool = option(False, "with batch_size: sample neighbours with replacement", cli=False)
    eval_every: int = option(1, "with batch_size: evaluate every this many epochs", check=checks.positive_int,
                             cli=False)
    eval_batch_size: int = option(4096, "nodes per batch of the exact layer-wise evaluation",
                                  check=checks.positive_int, cli=False)
    sparse_input: bool | None = option(None, "feed the features as a sparse CSR matrix (default: on the CPU when "
                                       "fewer than 10% of them are non-zero)", cli=False)
    seed: int | None = option(0, "seed of this run (the command line: run only this seed; default there: seeds "
                              "0..S-1 of --seeds)", check=checks.random_seed, cli_default=None)
    seeds: int = option(1, "number of seeds 0..S-1 (or give one with --seed)", check=checks.positive_int,
                        saved=False)
    device: str = option("auto", "auto (CUDA when available, else the CPU), cpu, cuda or cuda:N; a device this "
                         "machine or this torch lacks is refused before anything runs", resumable=True, parse=str)
    out_dir: str | None = option(None, "folder for results.json and, per seed, seed_<i>/ with metrics.csv, "
                                 "config.json, checkpoint.pt and curves.png (default: write nothing)", flag="--out",
                                 saved=False)
    resume: bool = option(False, "continue the runs in --out from their checkpoints (same settings; more epochs "
                          "allowed); seeds not started yet start", saved=False)
    overwrite: bool = option(False, "replace the run in --out, removing its old files first (refused without "
                             "this flag)", saved=False)
    threads: int | None = threads_option()
    progress: bool = option(False, "show a progress bar per seed", saved=False)
    json: bool = option(False, "print one JSON object instead of text", saved=False)

    def check_together(self) -> None:
        _check_out_flags(self)
        gcnii_only = [k for k in GCNII_ONLY if getattr(self, k) is not None]
        if self.model == "gcn" and gcnii_only:
            raise ValueError(f"{self.name(gcnii_only[0])}: only applies to {self.name('model')} gcnii")
        for k in ("batch_size", "resume") if self.model == "gcnii" else ():
            if getattr(self, k):
                raise ValueError(f"{self.name(k)}: {self.name('model')} gcnii trains full-batch and does not resume; "
                                 f"leave {self.name(k)} out")
        if self.num_nodes is not None and self.dataset not in (None, "synthetic"):
            raise ValueError(f"{self.name('num_nodes')}: only applies to {self.name('dataset')} synthetic, not "
                             f"{self.dataset}")
        if self.num_nodes is not None and self.num_nodes <= 10:
            raise ValueError(f"{self.name('num_nodes')}: a synthetic graph of average degree 10 needs more than 10 "
                             f"nodes, got {self.num_nodes}")
        if self.batch_size is None and self.num_neighbors is not None:
            raise ValueError(f"{self.name('num_neighbors')}: only applies to mini-batch training; add "
                             f"{self.name('batch_size')}")
        if self.num_neighbors is not None and len(self.num_neighbors) != self.num_layers:
            raise ValueError(f"{self.name('num_neighbors')}: give one fan-out per layer ({self.num_layers} layers), "
                             f"got {list(self.num_neighbors)}")
        if self._flags and self.seed is not None and self.seeds != 1:
            raise ValueError(f"{self.name('seed')}, {self.name('seeds')}: choose one: {self.name('seed')} S runs seed "
                             f"S alone, {self.name('seeds')} N runs seeds 0..N-1")

    @property
    def fan_outs(self) -> list[int]:
        """The fan-out of every layer (10 each unless ``num_neighbors`` says otherwise)."""
        return list(self.num_neighbors) if self.num_neighbors is not None else [10] * self.num_layers

    def seed_list(self) -> list[int]:
        """The seeds a ``gseq gcn`` run trains: ``seed`` alone, or ``0..seeds-1``."""
        return [self.seed] if self.seed is not None else list(range(self.seeds))


def _check_out_flags(cfg: Config) -> None:
    """``resume`` and ``overwrite``: not both, and each with a run folder."""
    if cfg.resume and cfg.overwrite:
        raise ValueError(f"{cfg.name('resume')}, {cfg.name('overwrite')}: choose one: {cfg.name('resume')} "
                         f"continues the run in {cfg.name('out_dir')}, {cfg.name('overwrite')} replaces it")
    for flag in ("resume", "overwrite"):
        if getattr(cfg, flag) and cfg.out_dir is None:
            raise ValueError(f"{cfg.name(flag)}: needs {cfg.name('out_dir')}, the run folder")


# ---------------------------------------------------------------------- palindromes (gseq palindrome train)
#: the weight initialisations of gseq.layers.recurrent.INITS, spelled out so that the parser needs no torch
INITS = ("xavier_uniform", "kaiming_normal", "orthogonal")
#: the optimizers of the Trainer, by name
OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")


@dataclasses.dataclass
class PalindromeConfig(Config):
    """``gseq palindrome train`` / :func:`gseq.tasks.train_palindrome`: a hand-written RNN or LSTM reads a
    palindrome but its last digit and answers it (the course's defaults)."""

    task: ClassVar[str] = "palindrome"

    cell: str = option("lstm", "recurrent cell", choices=("rnn", "lstm"))
    length: int = option(20, "palindrome length T", check=functools.partial(checks.integer, minimum=2))
    seed: int = option(0, "seeds the weights, the training and the test palindromes", check=checks.random_seed)
    input: str = option("scalar", "digit as one float channel (course) or one-hot over 10 channels",
                        choices=("scalar", "onehot"))
    hidden_size: int = option(128, "hidden state size", check=checks.positive_int)
    init: str = option("xavier_uniform", "weight initialisation", choices=INITS)
    forget_bias: float = option(0.0, "initial LSTM forget-gate bias (refused with --cell rnn; from Python ignored "
                                "for the RNN)", check=checks.finite_float)
    fused: bool = option(True, "the fused sequence path of gseq.layers (tested equal to the step-by-step one)",
                         cli=False, saved=False)
    optimizer: str = option("rmsprop", "optimizer", choices=OPTIMIZERS)
    lr: float = option(1e-3, "learning rate", check=_learning_rate)
    batch_size: int = option(128, "palindromes per step", check=checks.positive_int)
    max_steps: int = option(5000, "stop after this many steps (a resumed run continues up to this number)",
                            check=checks.positive_int, resumable=True)
    clip_grad_norm: float | None = option(10.0, "clip the gradient norm to this (Python: None disables)",
                                          check=functools.partial(checks.positive_float, none_ok=True))
    eval_every: int = option(10, "evaluate on --eval-size fresh palindromes every N steps; stop at --target",
                             check=checks.positive_int)
    eval_size: int = option(512, "fresh palindromes per evaluation", check=checks.positive_int, cli=False)
    test_size: int = option(2048, "fresh palindromes of the final test", check=checks.positive_int, cli=False)
    target: float = option(1.0, "stop once the evaluation accuracy reaches this", check=checks.finite_float,
                           cli=False)
    device: str = option("auto", "auto (CUDA when available, else the CPU), cpu, cuda or cuda:N; a device this "
                         "machine or this torch lacks is refused before anything runs", resumable=True, parse=str)
    out_dir: str | None = option(None, "run folder for metrics.csv, config.json, checkpoint.pt (default: write "
                                 "nothing)", flag="--out", saved=False)
    resume: bool = option(False, "continue the run in --out from its checkpoint (same settings; more steps allowed)",
                          saved=False)
    overwrite: bool = option(False, "replace a finished or interrupted run in --out (refused without this flag)",
                             saved=False)
    threads: int | None = threads_option()
    progress: bool = option(False, "show a progress bar", saved=False)
    json: bool = option(False, "print one JSON object", saved=False)

    #: the fields that describe the training (shared with ``gseq palindrome sweep`` and ``grads``)
    TRAINING: ClassVar[tuple[str, ...]] = ("input", "hidden_size", "init", "forget_bias", "optimizer", "lr",
                                           "batch_size", "max_steps", "clip_grad_norm", "eval_every", "device")

    def check_together(self) -> None:
        _check_out_flags(self)
        if self.cell == "rnn" and self.forget_bias and self._flags:  # from Python it is ignored for the RNN
            raise ValueError(f"{self.name('forget_bias')}: only the LSTM has a forget gate")


# ---------------------------------------------------------------------- the temporal forecasting task
#: the recurrent graph cells by name (gseq.layers.GRAPH_CELLS), and the temporal datasets and edge-weight kinds
#: (gseq.data.TEMPORAL_DATASETS, EDGE_WEIGHTS): spelled here too, because this module imports no torch
TEMPORAL_MODELS = ("gconv_gru", "gconv_lstm", "tgcn", "dcrnn")
TEMPORAL_DATASETS = ("chickenpox", "pedalme", "england_covid")
TEMPORAL_EDGE_WEIGHTS = ("similarity", "distance", "raw", "none")


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
    drop_self_loops: bool = option(False, "remove the graph's own self-loops (all three published graphs have one "
                                   "on every node, which keeps its weight, so tgcn's --self-loop-weight weighs no "
                                   "node unless they are dropped)")
    model: str = option("dcrnn", "recurrent graph cell", choices=TEMPORAL_MODELS)
    lags: int | None = option(None, "lags per snapshot (default: the dataset's, 4 / 4 / 8 as PGT; 4 for --file)",
                              check=checks.positive_int)
    horizon: int = option(1, "steps ahead predicted at every snapshot (1 = next step)", check=checks.positive_int)
    hidden: int = option(32, "channels of the recurrent state", check=checks.positive_int)
    K: int = option(2, "filter size of gconv_gru / gconv_lstm / dcrnn (hops + 1)", check=checks.positive_int,
                    flag="--k")
    self_loop_weight: float | str = option(1.0, "tgcn's GCN self-loop weight: a number >= 0, or 'learn'",
                                           check=_self_loop_weight, parse=parse_self_loop_weight)
    ar_skip: bool = option(True, "no linear autoregressive term on the lags beside the recurrent read-out (PGT's "
                           "RecurrentGCN) (default: with it)", flag="--no-ar-skip", negate=True)
    ar_init: bool = option(True, "do not start from the linear AR model fitted on the training snapshots (the AR term "
                           "at its weights, the read-out at zero) but from random read-out weights (default: start "
                           "from AR)", flag="--no-ar-init", negate=True)
    dropout: float = option(0.0, "dropout on the recurrent state before the read-out, in training", check=_dropout)
    train: float = option(0.8, "fraction of the snapshots, earliest first, used for training (PGT's tutorial: 0.2)",
                          check=_fraction)
    val: float = option(0.1, "fraction of the training snapshots, at their end, held out for early stopping",
                        check=_fraction)
    window: int = option(4, "truncated backpropagation through time: snapshots per step, the state carried "
                         "across windows", check=checks.positive_int)
    epochs: int = option(200, "passes over the training snapshots", check=checks.positive_int, resumable=True)
    patience: int | None = option(20, "stop after this many epochs without a better validation MSE (Python: None "
                                  "disables)", check=functools.partial(checks.positive_int, none_ok=True))
    lr: float = option(0.01, "Adam learning rate", check=_learning_rate)
    weight_decay: float = option(0.0, "Adam weight decay", check=checks.non_negative_float)
    baselines: bool = option(True, "skip the baselines: the linear AR model on the lags and the same model without "
                             "the graph (default: run)", flag="--no-baselines", negate=True, saved=False)
    seed: int = option(0, "seeds the weights", check=checks.random_seed)
    out_dir: str | None = option(None, "run folder: checkpoint.pt, metrics.csv, config.json, results.json, "
                                 "forecast.png (default: runs/temporal; from Python: None, nothing written)",
                                 flag="--out", saved=False, cli_default="runs/temporal")
    resume: bool = option(False, "continue the run in --out from its checkpoint (same settings; more epochs allowed)",
                          saved=False)
    overwrite: bool = option(False, "replace a finished or interrupted run in --out", saved=False)
    device: str = option("auto", "auto (CUDA when available), cpu, cuda or cuda:N", resumable=True, parse=str)
    threads: int | None = threads_option()
    progress: bool = option(True, "no progress bar (Python: progress=False) (default: shown)", flag="--no-progress",
                            negate=True, saved=False)

    def check_together(self) -> None:
        _check_out_flags(self)
        if self.ar_init and not self.ar_skip:
            fix = ("drop --no-ar-skip or add --no-ar-init" if getattr(self, "_flags", False) else
                   "set ar_skip=True or ar_init=False")
            raise ValueError(f"{self.name('ar_init')}: starting from the AR model needs the AR term; {fix}")
