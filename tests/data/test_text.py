import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gseq.data import (BUNDLED_BOOK, CharVocab, eval_windows, load_text, preprocess_text, resolve_text_file,
                       split_text, strip_gutenberg, window_sampler)

REPO = Path(__file__).resolve().parents[2]
BOOK = "book_EN_grimms_fairy_tails.txt"


# ---------------------------------------------------------------------- vocabulary
def test_vocab_is_sorted_and_maps_both_ways():
    vocab = CharVocab.from_text("hello world")
    assert vocab.chars == " dehlorw"
    assert len(vocab) == vocab.size == 8
    assert vocab.index("h") == 3 and "z" not in vocab
    assert vocab.encode("hold").tolist() == [3, 5, 4, 1]
    assert vocab.encode("").dtype == torch.long and vocab.encode("").numel() == 0
    assert vocab.decode(torch.tensor([3, 5, 4, 1])) == "hold" == vocab.decode([3, 5, 4, 1])
    assert CharVocab.from_data(vocab.to_data()) == vocab and isinstance(vocab.to_data(), str)
    assert CharVocab(list("ba")).chars == "ba"  # an explicit order is kept


def test_vocab_order_is_the_same_in_other_processes():
    # load gseq/data/text.py on its own (importing all of gseq costs seconds per process on this CPU)
    code = ("import importlib.util as u; s = u.spec_from_file_location('text', {path!r}); m = u.module_from_spec(s); "
            "s.loader.exec_module(m); print(repr(m.CharVocab.from_text({text!r}).chars)); "
            "print(''.join(list(set({text!r}))))")
    text = "the quick brown fox jumps over the lazy dog 0123 THE END"
    code = code.format(path=str(REPO / "gseq" / "data" / "text.py"), text=text)
    outs = [subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout.splitlines() for seed in ("1", "2")]
    here = repr(CharVocab.from_text(text).chars)
    assert [out[0] for out in outs] == [here, here]
    # while the course's list(set(text)) order changed with the hash seed
    assert outs[0][1] != outs[1][1] and sorted(outs[0][1]) == sorted(outs[1][1])


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_encode_decode_round_trip(text):
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.shape == (len(text),) and int(ids.max()) < len(vocab)
    assert vocab.decode(ids) == text
    assert list(vocab.chars) == sorted(set(text))


def test_unknown_characters_are_named_or_skipped():
    vocab = CharVocab.from_text("abc ")
    with pytest.raises(ValueError, match=r"not in the vocabulary.*'XZ'") as err:
        vocab.encode("a Zb X")
    assert "skip" in str(err.value)
    assert vocab.decode(vocab.encode("a Zb X", unknown="skip")) == "a b "
    assert vocab.unknown("a Zb X") == ["X", "Z"]
    with pytest.raises(ValueError, match="unknown"):
        vocab.encode("a", unknown="ignore")


def test_vocab_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("abca")
    with pytest.raises(ValueError, match="empty"):
        CharVocab("")
    with pytest.raises(ValueError, match="empty"):
        CharVocab.from_text("")
    with pytest.raises(TypeError, match="chars"):
        CharVocab(["ab", "c"])
    with pytest.raises(TypeError, match="text"):
        CharVocab.from_text(b"abc")
    with pytest.raises(ValueError, match="not an id"):
        CharVocab("ab").decode([0, 2])
    with pytest.raises(ValueError, match="1-D"):
        CharVocab("ab").decode(torch.zeros(2, 2, dtype=torch.long))


# ---------------------------------------------------------------------- cleaning
def test_preprocess_keeps_letters_digits_spaces_lower_case():
    assert preprocess_text("Hello,  World!\n\n1831 -- the\tEnd.") == "hello world 1831 the end"
    assert preprocess_text("  Don't   stop  ") == "dont stop"
    assert preprocess_text("!!!") == ""


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200))
def test_preprocess_output_is_clean(text):
    out = preprocess_text(text)
    assert all(c == " " or c.isalnum() for c in out)
    assert "  " not in out and out == out.strip()
    assert preprocess_text(out) == out  # idempotent
    assert out.split() == [w for w in out.split() if w]


def test_strip_gutenberg_on_a_book_and_on_plain_text():
    raw = load_text(BOOK, strip_header=False)  # the book shipped with gseq
    body = strip_gutenberg(raw)
    assert "Project Gutenberg" in raw[:500] and "PROJECT GUTENBERG" not in body
    assert "Gutenberg" not in body[:2000] and "Gutenberg" not in body[-3000:]
    assert len(body) > 0.9 * len(raw) - 25000 and "Hansel" in body
    assert strip_gutenberg("no markers here\n") == "no markers here"
    text = "Header\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nBody line.\n" \
           "End of the Project Gutenberg EBook of X\n" \
           "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nLicence"
    assert strip_gutenberg(text) == "Body line."
    wrapped = text.replace("EBook of X\n", "EBook of X, by\nSome Author\n\n")
    assert strip_gutenberg(wrapped) == "Body line."
    # the closing line of Democracy in America wraps the author onto a second line
    ending = ("...equal in proportion.]\n\n\n\nEnd of the Project Gutenberg EBook of Democracy In America, "
              "Volume 1 (of 2), by \nAlexis de Toqueville\n\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nlicence")
    assert strip_gutenberg("*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n" + ending) == "...equal in proportion.]"


def test_load_text_drops_bom_and_header(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffTitle\n*** START OF THE PROJECT GUTENBERG EBOOK T ***\nOnce upon a time.\r\n"
                     "*** END OF THE PROJECT GUTENBERG EBOOK T ***\nlicence".encode())
    assert load_text(path) == "Once upon a time."
    assert load_text(path, strip_header=False).startswith("Title\n")
    assert load_text(path, preprocess=True) == "once upon a time"
    book = load_text(BOOK, preprocess=True)  # found by name: $GSEQ_DATA/text, else the copy shipped with gseq
    assert resolve_text_file(BOOK).is_file() and set(book) <= set("abcdefghijklmnopqrstuvwxyz0123456789 ")


def test_load_text_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="books found by name: .*book_EN_grimms_fairy_tails.txt"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_text(tmp_path / "latin1.txt")
    (tmp_path / "punct.txt").write_text("!?!. ,,")
    with pytest.raises(ValueError, match="no text after preprocessing"):
        load_text(tmp_path / "punct.txt", preprocess=True)
    with pytest.raises(ValueError, match="folder"):
        load_text(tmp_path)


# ---------------------------------------------------------------------- splitting and windows
def test_split_holds_out_the_tail():
    ids = torch.arange(100)
    train, val = split_text(ids, 0.05)
    assert train.tolist() == list(range(95)) and val.tolist() == list(range(95, 100))
    with pytest.raises(ValueError, match="val_fraction"):
        split_text(ids, 1.0)
    with pytest.raises(ValueError, match="too few"):
        split_text(torch.arange(10), 0.05)
    with pytest.raises(TypeError, match="1-D"):
        split_text(ids.view(10, 10))


def test_window_sampler_draws_consecutive_windows_reproducibly():
    ids = torch.arange(1000)
    sample = window_sampler(ids, seq_length=30, batch_size=64)
    w = sample(torch.Generator().manual_seed(0))
    assert w.shape == (64, 31) and w.dtype == torch.long
    assert torch.equal(w - w[:, :1], torch.arange(31).expand(64, 31))  # consecutive characters
    assert int(w.min()) >= 0 and int(w.max()) <= 999
    assert torch.equal(w, sample(torch.Generator().manual_seed(0)))
    assert not torch.equal(w, sample(torch.Generator().manual_seed(1)))
    starts = torch.cat([sample(torch.Generator().manual_seed(s))[:, 0] for s in range(20)])
    assert int(starts.max()) > 900 and int(starts.min()) < 100  # uniform over the whole text


def test_windows_reject_short_text():
    with pytest.raises(ValueError, match="shorter than seq_length"):
        window_sampler(torch.arange(30), seq_length=30)
    window_sampler(torch.arange(31), seq_length=30)  # exactly seq_length + 1 is enough
    with pytest.raises(ValueError, match="shorter than seq_length"):
        eval_windows(torch.arange(5), seq_length=30)
    with pytest.raises(ValueError, match="batch_size"):
        window_sampler(torch.arange(100), seq_length=3, batch_size=0)


def test_eval_windows_predict_every_character_once():
    ids = torch.arange(95)
    w = eval_windows(ids, seq_length=30)
    assert w.shape == (3, 31)
    assert w[:, 1:].reshape(-1).tolist() == list(range(1, 91))


# ---------------------------------------------------------------------- the book shipped with gseq
GRIMM_SHA256 = "e6439bd511820742e842e21b75e89b394d3809eec82ca56b506c39ff39d4a7d6"  # as in ../shared/data/SHA256SUMS


def test_the_shipped_book_is_the_public_file_and_small(monkeypatch, tmp_path):
    import gzip
    import hashlib

    monkeypatch.delenv("GSEQ_DATA", raising=False)
    path = resolve_text_file(BUNDLED_BOOK)
    assert path.name == BUNDLED_BOOK + ".gz" and path.stat().st_size < 250_000  # compressed: ~190 KB of 0.55 MB
    assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == GRIMM_SHA256
    assert "Hansel" in load_text(BUNDLED_BOOK)
    # $GSEQ_DATA/text comes first: a book of that name there is the one read
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / BUNDLED_BOOK).write_text("a local copy of the tales")
    monkeypatch.setenv("GSEQ_DATA", str(tmp_path))
    assert load_text(BUNDLED_BOOK) == "a local copy of the tales"


def test_gzip_files_are_read_and_damaged_ones_refused(tmp_path):
    import gzip

    (tmp_path / "t.txt.gz").write_bytes(gzip.compress("Once upon a time.".encode()))
    assert load_text(tmp_path / "t.txt.gz") == "Once upon a time."
    (tmp_path / "bad.txt.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match="not a readable gzip file"):
        load_text(tmp_path / "bad.txt.gz")
