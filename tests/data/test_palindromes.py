import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from gseq.data import PalindromeDataset, palindromes


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 50), length=st.integers(2, 40), seed=st.integers(0, 2**31))
def test_samples_are_palindromes(batch, length, seed):
    x, y = palindromes(batch, length, generator=torch.Generator().manual_seed(seed))
    assert x.dtype == torch.long and x.shape == (batch, length - 1) and y.shape == (batch,)
    full = torch.cat((x, y[:, None]), dim=1)
    assert torch.equal(full, full.flip(1))
    assert torch.equal(y, x[:, 0])
    assert int(full.min()) >= 0 and int(full.max()) <= 9


def test_digits_are_uniform():
    x, y = palindromes(20000, 9, generator=torch.Generator().manual_seed(0))
    full = torch.cat((x, y[:, None]), dim=1)
    # the free half: columns 0..4; chi-square over 10 digits for each column and for the target
    for column in list(full[:, :5].T) + [y]:
        counts = torch.bincount(column, minlength=10).double()
        expected = column.numel() / 10
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 27.9  # 99.9% quantile of chi-square with 9 degrees of freedom
    # the first digit (what must be remembered) is independent of the middle one
    joint = torch.bincount(full[:, 0] * 10 + full[:, 4], minlength=100).double()
    chi2 = float(((joint - 200) ** 2 / 200).sum())
    assert chi2 < 148  # 99.9% quantile of chi-square with 99 degrees of freedom


def test_reproducible_from_generator_and_independent_of_global_rng():
    a = palindromes(8, 11, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    b = palindromes(8, 11, generator=torch.Generator().manual_seed(5))
    c = palindromes(8, 11, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_length_two_and_odd_lengths():
    x, y = palindromes(4, 2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 1) and torch.equal(x[:, 0], y)
    x, y = palindromes(3, 3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 2) and torch.equal(x[:, 0], y)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0, "length": 5}, "batch_size"),
    ({"batch_size": 4, "length": 1}, "length"),
    ({"batch_size": 4, "length": 2.5}, "length"),
    ({"batch_size": True, "length": 5}, "batch_size"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        palindromes(**kwargs)


def test_dataset_streams_reproducible_palindromes_through_dataloader():
    ds = PalindromeDataset(7, seed=3, chunk_size=16)
    batches = list(itertools.islice(iter(DataLoader(ds, batch_size=10)), 5))
    again = list(itertools.islice(iter(DataLoader(PalindromeDataset(7, seed=3, chunk_size=16), batch_size=10)), 5))
    for (x, y), (x2, y2) in zip(batches, again):
        assert x.shape == (10, 6) and y.shape == (10,)
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert torch.equal(y, x[:, 0]) and torch.equal(x[:, 1:], x[:, 1:].flip(1))
    with pytest.raises(ValueError, match="length"):
        PalindromeDataset(1)
