"""gseq.config: one dataclass per task drives the Python keywords, the command line, config.json and the
resume check; a field's default, help and check are declared once."""

import argparse
import dataclasses
import functools
from typing import ClassVar

import pytest

from gseq import checks
from gseq.config import Config, TextConfig, option


@dataclasses.dataclass
class Toy(Config):
    task: ClassVar[str] = "toy"

    steps: int = option(10, "total steps", check=checks.positive_int, resumable=True)
    rate: float = option(0.5, "a rate in (0, 1]", check=functools.partial(checks.in_range, low=0, high=1,
                                                                           low_open=True))
    mode: str = option("a", "a mode", choices=("a", "b"))
    limit: int | None = option(None, "an optional limit (default: off)", check=checks.positive_int)
    fan: tuple[int, ...] = option((2, 2), "one per layer", check=lambda n, v: [checks.positive_int(n, x) for x in v],
                                  nargs="+")
    quiet: bool = option(True, "talk (default: quiet)", flag="--talk", negate=True, saved=False)
    out_dir: str | None = option(None, "folder", flag="--out", saved=False, cli_default="runs/toy")

    def check_together(self):
        if self.limit is not None and self.limit < self.steps:
            raise ValueError(f"{self.name('limit')}: must be >= {self.name('steps')} ({self.steps}), got {self.limit}")


def _parser():
    parser = argparse.ArgumentParser(prog="toy", exit_on_error=False)
    Toy.add_arguments(parser)
    return parser


def test_the_command_line_is_built_from_the_fields():
    args = _parser().parse_args([])
    assert Toy.from_args(args) == Toy(out_dir="runs/toy")  # the command line's own default for --out
    args = _parser().parse_args(["--steps", "3", "--rate", "1", "--mode", "b", "--fan", "4", "5", "--talk"])
    cfg = Toy.from_args(args)
    assert (cfg.steps, cfg.rate, cfg.mode, cfg.fan, cfg.quiet) == (3, 1.0, "b", (4, 5), False)
    helps = {a.dest: a.help for a in _parser()._actions}
    assert helps["steps"] == "total steps" and helps["quiet"] == "talk (default: quiet)"


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "must be a positive integer, got 0"),
    (["--steps", "x"], "expected an integer, got 'x'"),
    (["--rate", "2"], "must lie in (0, 1], got 2.0"),
    (["--mode", "c"], "invalid choice"),
])
def test_a_bad_flag_is_refused_by_the_parser_with_the_fields_check(argv, message):
    with pytest.raises(argparse.ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        _parser().parse_args(argv)


def test_python_keywords_are_checked_by_the_same_field_and_named_as_keywords():
    with pytest.raises(ValueError, match=r"^steps: must be a positive integer, got 0$"):
        Toy(steps=0)
    with pytest.raises(ValueError, match=r"^mode: unknown value 'c'"):
        Toy(mode="c")
    with pytest.raises(TypeError, match="quiet: expected True or False"):
        Toy(quiet="yes")
    with pytest.raises(TypeError, match="unexpected keyword argument 'stepz'"):
        Toy(stepz=3)
    assert Toy(limit=None).limit is None  # a None default means "off": no check
    with pytest.raises(ValueError, match=r"^limit: must be >= steps \(10\), got 5$"):
        Toy(limit=5)


def test_cross_field_checks_name_flags_on_the_command_line():
    args = _parser().parse_args(["--limit", "5"])
    with pytest.raises(ValueError, match=r"^--limit: must be >= --steps \(10\), got 5$"):
        Toy.from_args(args)
    cfg = Toy.from_args(_parser().parse_args([]))
    assert cfg.name("out_dir") == "--out" and cfg.with_changes(steps=3).name("steps") == "--steps"
    assert Toy().name("out_dir") == "out_dir"


def test_to_dict_round_trips_and_the_resume_check_names_each_difference():
    cfg = Toy(steps=4, fan=[3, 1])
    cfg.derived["vocab"] = "abc"
    data = cfg.to_dict()
    assert data == {"task": "toy", "steps": 4, "rate": 0.5, "mode": "a", "limit": None, "fan": [3, 1],
                    "derived": {"vocab": "abc"}}  # quiet and out_dir are not settings of the run
    back = Toy.from_dict(data)
    assert back == cfg and back.derived == cfg.derived
    assert Toy.from_dict(data, steps=99).resume_differences(data) == []  # steps is resumable
    other = Toy(rate=0.25, fan=(3, 1))
    other.derived["vocab"] = "abd"
    assert other.resume_differences(data) == ["rate 0.5 there, 0.25 now", "vocab 'abc' there, 'abd' now"]
    assert other.resume_differences({**data, "task": "text"})[0] == "task 'text' there, 'toy' now"
    assert Toy().resumable_names() == ("steps",)


def test_the_text_config_declares_every_flag_of_gseq_text_train():
    from gseq.cli import build_parser

    parser = build_parser()
    text = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["text"]
    train = next(a for a in text._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    dests = {a.dest for a in train._actions if a.option_strings and a.dest != "help"}
    assert dests == {f.name for f in dataclasses.fields(TextConfig)}
    assert TextConfig().out_dir is None and train.get_default("out_dir") == "runs/text"
