"""gseq.checks: every helper passes good values through unchanged and refuses bad ones with a message that
names the argument; a wrong type is both a TypeError and a ValueError."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gseq import checks
from gseq.checks import (WrongTypeError, boolean, choice, finite_float, in_range, instance, integer, non_negative_float,
                         non_negative_int, positive_float, positive_int, random_seed)

REPO = Path(__file__).resolve().parents[1]
INF, NAN = float("inf"), float("nan")

GOOD = [
    (positive_int, (), [1, 7, 2**70]),
    (non_negative_int, (), [0, 1, 5]),
    (lambda n, v: integer(n, v), (), [-3, 0, 4]),
    (lambda n, v: integer(n, v, minimum=2), (), [2, 3]),
    (finite_float, (), [0, -1.5, 3, 1e300, np.float64(0.5)]),
    (positive_float, (), [1e-12, 2, 3.5]),
    (non_negative_float, (), [0, 0.0, 2.5]),
    (lambda n, v: in_range(n, v, 0, 1, high_open=True), (), [0, 0.0, 0.999]),
    (lambda n, v: in_range(n, v, 0, 1, low_open=True), (), [1, 1e-9, 0.5]),
    (lambda n, v: choice(n, v, ("rnn", "lstm")), (), ["rnn", "lstm"]),
    (boolean, (), [True, False]),
    (random_seed, (), [0, 7, 2**32 - 1]),
    (lambda n, v: instance(n, v, torch.Tensor, "a tensor"), (), [torch.zeros(2)]),
]


@pytest.mark.parametrize("check, _, values", GOOD)
def test_good_values_pass_through_unchanged(check, _, values):
    for value in values:
        assert check("arg", value) is value


def test_none_passes_only_with_none_ok():
    for check in (positive_int, non_negative_int, finite_float, positive_float, non_negative_float):
        assert check("arg", None, none_ok=True) is None
        with pytest.raises(WrongTypeError, match="^arg: "):
            check("arg", None)
    assert in_range("arg", None, 0, 1, none_ok=True) is None
    assert instance("arg", None, int, "an int", none_ok=True) is None
    with pytest.raises(TypeError, match=r"^arg: expected an int or None, got str$"):
        instance("arg", "x", int, "an int", none_ok=True)


BAD = [
    # (check, value, error, message)
    (positive_int, 0, ValueError, "hidden_size: must be a positive integer, got 0"),
    (positive_int, -2, ValueError, "hidden_size: must be a positive integer, got -2"),
    (positive_int, 2.0, WrongTypeError, "hidden_size: must be a positive integer, got 2.0"),
    (positive_int, True, WrongTypeError, "hidden_size: must be a positive integer, got True"),
    (positive_int, "3", WrongTypeError, "hidden_size: must be a positive integer, got '3'"),
    (positive_int, torch.tensor(3), WrongTypeError, "hidden_size: must be a positive integer, got tensor(3)"),
    (non_negative_int, -1, ValueError, "hidden_size: must be an integer >= 0, got -1"),
    (lambda n, v: integer(n, v, minimum=2), 1, ValueError, "hidden_size: must be an integer >= 2, got 1"),
    (lambda n, v: integer(n, v), 1.5, WrongTypeError, "hidden_size: must be an integer, got 1.5"),
    (lambda n, v: positive_int(n, v, none_ok=True, hint=" (steps)"), 0, ValueError,
     "hidden_size: must be a positive integer or None (steps), got 0"),
    (finite_float, NAN, ValueError, "hidden_size: must be a finite number, got nan"),
    (finite_float, INF, ValueError, "hidden_size: must be a finite number, got inf"),
    (finite_float, "1.0", WrongTypeError, "hidden_size: must be a finite number, got '1.0'"),
    (finite_float, False, WrongTypeError, "hidden_size: must be a finite number, got False"),
    (positive_float, 0.0, ValueError, "hidden_size: must be a finite positive number, got 0.0"),
    (positive_float, -INF, ValueError, "hidden_size: must be a finite positive number, got -inf"),
    (non_negative_float, -1e-9, ValueError, "hidden_size: must be a finite number >= 0, got -1e-09"),
    (non_negative_float, INF, ValueError, "hidden_size: must be a finite number >= 0, got inf"),
    (lambda n, v: in_range(n, v, 0, 1, high_open=True), 1.0, ValueError, "hidden_size: must lie in [0, 1), got 1.0"),
    (lambda n, v: in_range(n, v, 0, 1, low_open=True), 0, ValueError, "hidden_size: must lie in (0, 1], got 0"),
    (lambda n, v: in_range(n, v, 0, 1), NAN, ValueError, "hidden_size: must lie in [0, 1], got nan"),
    (lambda n, v: in_range(n, v, 0, 1), -INF, ValueError, "hidden_size: must lie in [0, 1], got -inf"),
    (lambda n, v: in_range(n, v, 0, 1e3, low_open=True), 2e3, ValueError,
     "hidden_size: must lie in (0, 1000], got 2000.0"),
    (lambda n, v: in_range(n, v, 0, 1), "0.5", WrongTypeError, "hidden_size: must lie in [0, 1], got '0.5'"),
    (lambda n, v: choice(n, v, ("rnn", "lstm")), "gru", ValueError,
     "hidden_size: unknown value 'gru'; choose one of ['rnn', 'lstm']"),
    (lambda n, v: choice(n, v, {"adam": 1, "sgd": 2}), ["adam"], ValueError,  # unhashable, dict of choices
     "hidden_size: unknown value ['adam']; choose one of ['adam', 'sgd']"),
    (boolean, 1, WrongTypeError, "hidden_size: expected True or False, got 1"),
    (random_seed, 1.5, WrongTypeError, "hidden_size: must be an integer in [0, 4294967295], got 1.5"),
    (random_seed, "0", WrongTypeError, "hidden_size: must be an integer in [0, 4294967295], got '0'"),
    (random_seed, True, WrongTypeError, "hidden_size: must be an integer in [0, 4294967295], got True"),
    (random_seed, 2**70, ValueError, "hidden_size: must be an integer in [0, 4294967295], got 1180591620717411303424"),
    (random_seed, -1, ValueError, "hidden_size: must be an integer in [0, 4294967295], got -1"),
    (random_seed, 2**32, ValueError, "hidden_size: must be an integer in [0, 4294967295], got 4294967296"),
    (boolean, "yes", WrongTypeError, "hidden_size: expected True or False, got 'yes'"),
    (lambda n, v: instance(n, v, torch.Generator, "a torch.Generator"), 5, WrongTypeError,
     "hidden_size: expected a torch.Generator, got int"),
]


@pytest.mark.parametrize("check, value, error, message", BAD)
def test_bad_values_name_the_argument(check, value, error, message):
    with pytest.raises(error) as info:
        check("hidden_size", value)
    assert str(info.value) == message


@pytest.mark.parametrize("check, value, error, message", [row for row in BAD if row[2] is WrongTypeError])
def test_a_wrong_type_is_a_type_error_and_a_value_error(check, value, error, message):
    for caught in (TypeError, ValueError):
        with pytest.raises(caught):
            check("hidden_size", value)


def test_an_empty_name_leaves_the_name_out_for_argparse():
    with pytest.raises(ValueError) as info:
        positive_int("", 0)
    assert str(info.value) == "must be a positive integer, got 0"


def test_dtype_tuples():
    assert checks.HALF_DTYPES == (torch.float16, torch.bfloat16)
    assert checks.FLOAT_DTYPES == (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    assert all(d.is_floating_point for d in checks.FLOAT_DTYPES)
    with pytest.raises(AttributeError, match="NO_SUCH"):
        checks.NO_SUCH  # noqa: B018


def test_importing_the_checks_imports_no_torch():
    code = ("import sys, gseq.checks\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('gseq.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         timeout=60).stdout
    assert out.strip() == "['gseq._lazy', 'gseq.checks']"  # gseq itself, lazily, and the checks


def test_fits_memory_refuses_more_than_the_device_holds():
    from gseq.checks import device_memory, fits_memory

    total = device_memory("cpu")
    assert total is None or total > 2**20
    fits_memory("length", 10, 1024)  # a kilobyte fits anywhere
    if total is not None:
        with pytest.raises(ValueError, match=r"length: 7 things need about .* GiB, more than the .* GiB of memory"):
            fits_memory("length", 7, 2 * total, "cpu", "things")
