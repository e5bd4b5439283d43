import pytest

from gseq.analysis.sweep import palindrome_sweep, parse_lengths, read_sweep


def test_parse_lengths():
    assert parse_lengths(["5:40:2"]) == list(range(5, 40, 2))
    assert parse_lengths(["5:60:5"])[-1] == 60  # stop included when the step hits it
    assert parse_lengths(["3", "5:7", 9, "5"]) == [3, 5, 6, 7, 9]
    for bad in (["1"], ["5:3"], ["4:8:0"], ["a"], ["1:2:3:4"], []):
        with pytest.raises(ValueError, match="lengths"):
            parse_lengths(bad)


def test_parallel_sweep_in_worker_processes(tmp_path):
    """jobs=2 runs in spawned worker processes and gives the same rows as running in this process."""
    kw = dict(cells=["rnn"], lengths=[3, 4], seeds=1, input="onehot", hidden_size=8, max_steps=5,
              eval_size=16, test_size=64, figure=False, log=None)
    parallel = palindrome_sweep(tmp_path / "p", jobs=2, **kw)
    serial = palindrome_sweep(tmp_path / "s", jobs=1, **kw)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(parallel) == strip(serial) == strip(read_sweep(tmp_path / "p"))
    assert [(r["cell"], r["length"], r["seed"]) for r in parallel] == [("rnn", 3, 0), ("rnn", 4, 0)]


def test_bad_sweep_arguments(tmp_path):
    with pytest.raises(ValueError, match="cells"):
        palindrome_sweep(tmp_path, cells=["gru"], lengths=[3], log=None)
    with pytest.raises(ValueError, match="seeds"):
        palindrome_sweep(tmp_path, lengths=[3], seeds=0, log=None)
    with pytest.raises(ValueError, match="jobs"):
        palindrome_sweep(tmp_path, lengths=[3], jobs=0, log=None)
    with pytest.raises(ValueError, match="settings"):
        palindrome_sweep(tmp_path, lengths=[3], momentum=0.9, log=None)
