"""The ``gseq`` command as a whole: help texts with defaults, a parser that needs no torch, lazy imports,
and one line (never a traceback) for what a user can cause."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gseq.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _parsers(parser, name="gseq"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_has_help_that_shows_its_default():
    checked = 0
    for name, parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.default is argparse.SUPPRESS:
                continue  # -h/--help
            assert action.help and action.help.strip(), f"{name} {action.option_strings[0]} has no help text"
            shown = formatter._get_help_string(action)
            assert "(default" in shown, f"{name} {action.option_strings[0]} does not show its default"
            if action.dest == "device":
                assert action.default == "auto", f"{name} --device defaults to {action.default!r}"
            checked += 1
    assert checked > 80


def test_parser_constants_match_the_library():
    from gseq.cli import palindrome, text
    from gseq.data import BUNDLED_BOOK
    from gseq.layers import INITS
    from gseq.train.trainer import _OPTIMIZERS

    assert palindrome.INITS == INITS and set(palindrome.OPTIMIZERS) == set(_OPTIMIZERS)
    assert text.DEFAULT_BOOK == BUNDLED_BOOK


def _python(code):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("MPLBACKEND", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_help_and_import_gseq_need_no_torch():
    out = _python(
        "import sys, contextlib, io\n"
        "import gseq\n"
        "from gseq.cli import build_parser, main\n"
        "for argv in (['--help'], ['gcn', '--help'], ['palindrome', 'train', '--help'], ['text', 'train', '--help'],"
        " ['hops', 'depth', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: main(argv)\n"
        "        except SystemExit as e: assert e.code == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_geometric', 'matplotlib')"
        " or m.startswith('gseq.analysis'))\n"
        "print(heavy)\n")
    assert out.strip() == "[]"


def test_gseq_layers_imports_no_matplotlib_and_no_analysis():
    """(and gseq.plots imports matplotlib only when it draws)"""
    out = _python(
        "import sys\n"
        "from gseq.layers import GCN, LSTM\n"
        "import gseq, gseq.plots\n"
        "assert gseq.layers.GCN is GCN\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' or m.startswith('gseq.analysis')"
        "))\n")
    assert out.strip() == "[]"


def test_python_dash_m_gseq_runs_the_command():
    proc = subprocess.run([sys.executable, "-m", "gseq", "--help"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 0 and proc.stdout.startswith("usage: gseq")


def test_gseq_never_chooses_the_matplotlib_backend():
    for path in (REPO / "gseq").rglob("*.py"):
        assert "matplotlib.use(" not in path.read_text(), path


@pytest.mark.parametrize("error, code, message", [
    (KeyboardInterrupt(), 130, "gseq env: interrupted"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 8000000000000 bytes."), 1, "gseq env: error: out of memory"),
    (MemoryError(), 1, "gseq env: error: out of memory"),
    (FloatingPointError("loss: became nan at step 3"), 1, "gseq env: error: loss: became nan at step 3"),
    (PermissionError(13, "Permission denied", "/x"), 2, "gseq env: error: [Errno 13] Permission denied: '/x'"),
])
def test_what_a_user_can_cause_is_one_line(monkeypatch, capsys, error, code, message):
    from gseq.cli import env

    def run(args):
        raise error

    monkeypatch.setattr(env, "run", run)
    assert main(["env"]) == code
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_a_bug_keeps_its_traceback(monkeypatch):
    from gseq.cli import env

    def run(args):
        raise RuntimeError("an internal error")

    monkeypatch.setattr(env, "run", run)
    with pytest.raises(RuntimeError, match="an internal error"):
        main(["env"])


@pytest.mark.parametrize("argv", [["gcn"], ["temporal", "train"], ["palindrome", "train"], ["palindrome", "grads"], ["text", "train"],
                                  ["text", "generate", "--checkpoint", "c.pt"], ["hops", "example"]])
@pytest.mark.parametrize("seed, message", [("1.5", "expected an integer, got '1.5'"),
                                           (str(2**70), f"must be an integer in [0, 4294967295], got {2**70}"),
                                           ("-1", "must be an integer in [0, 4294967295], got -1")])
def test_every_seed_flag_goes_through_the_seed_check(argv, seed, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--seed", seed])
    assert exc.value.code == 2
    assert f"argument --seed: {message}" in capsys.readouterr().err


def test_every_seed_flag_is_listed_above():
    flags = [name for name, parser in _parsers(build_parser())
             if any("--seed" in action.option_strings for action in parser._actions)]
    assert sorted(flags) == ["gseq gcn", "gseq hops example", "gseq palindrome grads", "gseq palindrome train",
                             "gseq temporal train", "gseq text generate", "gseq text train"]
