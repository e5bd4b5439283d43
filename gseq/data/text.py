"""Character-level text data: vocabulary, preprocessing, loading, splitting and window sampling.

The pipeline is ``load_text(path)`` (UTF-8, byte-order mark dropped, Project Gutenberg header and licence
stripped, optional preprocessing) -> :class:`CharVocab` ``.from_text`` (characters in sorted order, so the
id of a character never depends on the Python process) -> ``vocab.encode`` -> :func:`split_text` (the last
``val_fraction`` of the text is held out) -> :func:`window_sampler` (random windows of ``seq_length + 1``
characters drawn as one tensor per batch) and :func:`eval_windows` (the held-out slice cut into windows).

One public-domain book ships inside the package, gzip-compressed: :data:`BUNDLED_BOOK`, Grimms' Fairy
Tales (Project Gutenberg e-book 2591, 0.55 MB of text), so a book is at hand on a machine with no data
folder and no network.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

# absolute, not ``..checks``: tests load this file on its own, without its package (gseq.checks is light)
from gseq.checks import choice, in_range, instance, positive_int

__all__ = [
    "BUNDLED_BOOK",
    "CharVocab",
    "strip_gutenberg",
    "preprocess_text",
    "load_text",
    "resolve_text_file",
    "split_text",
    "window_sampler",
    "eval_windows",
]

_START = re.compile(r"^\*\*\*\s*START OF (?:THIS|THE) PROJECT GUTENBERG EBOOK.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^\*\*\*\s*END OF (?:THIS|THE) PROJECT GUTENBERG EBOOK.*$", re.IGNORECASE | re.MULTILINE)
_END_LINE = re.compile(r"^\s*End of (?:the )?Project Gutenberg.*$", re.IGNORECASE | re.MULTILINE)
_SPACES = re.compile(r"\s+")

#: the name of the book shipped with gseq (Grimms' Fairy Tales); ``load_text(BUNDLED_BOOK)`` reads it
#: from ``$GSEQ_DATA/text`` when that folder holds it, else from the compressed copy in the package
BUNDLED_BOOK = "book_EN_grimms_fairy_tails.txt"


class CharVocab:
    r"""A fixed, ordered character vocabulary: character ``vocab.chars[i]`` has id ``i``.

    Build it with :meth:`from_text`, which sorts the characters (``sorted(set(text))``), so the same text
    gives the same ids in every Python process; ``list(set(text))`` does not (string hashing is salted
    per process). The vocabulary is stored in checkpoints as the plain string :attr:`chars`
    (:meth:`to_data` / :meth:`from_data`), which ``torch.load(..., weights_only=True)`` reads back.

    Args:
        chars: the characters in id order, as a string or a sequence of one-character strings; they must
            be distinct. The order is kept as given.
    """

    def __init__(self, chars: str | Sequence[str]) -> None:
        if isinstance(chars, str):
            items = list(chars)
        elif isinstance(chars, Sequence) and all(isinstance(c, str) and len(c) == 1 for c in chars):
            items = list(chars)
        else:
            raise TypeError("chars: expected a string or a sequence of one-character strings, "
                            f"got {type(chars).__name__}")
        if not items:
            raise ValueError("chars: the vocabulary is empty; build it from a non-empty text")
        if len(set(items)) != len(items):
            dupes = sorted({c for c in items if items.count(c) > 1})
            raise ValueError(f"chars: characters must be distinct, repeated: {dupes!r}")
        self._chars = "".join(items)
        self._index = {c: i for i, c in enumerate(items)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every character in ``text``, in sorted (code point) order."""
        instance("text", text, str, "str")
        if not text:
            raise ValueError("text: is empty; a vocabulary needs at least one character")
        return cls(sorted(set(text)))

    # ------------------------------------------------------------------ plain-data round trip
    def to_data(self) -> str:
        """The vocabulary as plain data (the string of characters in id order)."""
        return self._chars

    @classmethod
    def from_data(cls, data: str | Sequence[str]) -> CharVocab:
        """Inverse of :meth:`to_data`; also accepts a list of characters."""
        return cls(data)

    # ------------------------------------------------------------------ lookups
    @property
    def chars(self) -> str:
        """The characters in id order."""
        return self._chars

    def __len__(self) -> int:
        return len(self._chars)

    @property
    def size(self) -> int:
        return len(self._chars)

    def __contains__(self, char: object) -> bool:
        return char in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and other._chars == self._chars

    def __hash__(self) -> int:
        return hash(self._chars)

    def __repr__(self) -> str:
        shown = self._chars if len(self._chars) <= 40 else self._chars[:37] + "..."
        return f"CharVocab(size={len(self)}, chars={shown!r})"

    def index(self, char: str) -> int:
        """The id of ``char``; ``ValueError`` if it is not in the vocabulary."""
        if char not in self._index:
            raise ValueError(f"char: {char!r} is not in the vocabulary")
        return self._index[char]

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, in sorted order."""
        return sorted(set(text) - self._index.keys())

    def encode(self, text: str, *, unknown: str = "error", name: str = "text") -> Tensor:
        """Ids of the characters of ``text`` as a ``torch.long`` tensor of shape ``[len(text)]``.

        Args:
            text: the string to encode.
            unknown: what to do with characters not in the vocabulary: ``"error"`` raises a
                ``ValueError`` naming them, ``"skip"`` drops them. (default: ``"error"``)
            name: the argument the errors name (a caller's, such as ``"prompt"``). (default: ``"text"``)
        """
        instance(name, text, str, "str")
        choice("unknown", unknown, ("error", "skip"))
        missing = self.unknown(text)
        if missing:
            if unknown == "error":
                shown = "".join(missing[:20]) + ("..." if len(missing) > 20 else "")
                raise ValueError(
                    f"{name}: {len(missing)} character(s) not in the vocabulary: {shown!r} ({missing[:20]!r}); "
                    "remove them, apply the same preprocessing as in training, or pass unknown='skip' "
                    "(--skip-unknown on the command line) to drop them")
            text = "".join(c for c in text if c in self._index)
        index = self._index
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: Tensor | Iterable[int]) -> str:
        """The string of the ids in ``ids`` (a 1-D tensor or an iterable of ints)."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids: expected a 1-D tensor, got shape {tuple(ids.shape)}; decode rows one by one")
            ids = ids.tolist()
        chars, n = self._chars, len(self._chars)
        out = []
        for i in ids:
            if not 0 <= int(i) < n:
                raise ValueError(f"ids: {int(i)} is not an id of this vocabulary (0..{n - 1})")
            out.append(chars[int(i)])
        return "".join(out)


# ---------------------------------------------------------------------- text cleaning and loading
def strip_gutenberg(text: str) -> str:
    """Keep only the body of a Project Gutenberg e-book.

    Removes everything up to and including the ``*** START OF THIS PROJECT GUTENBERG EBOOK ... ***`` line
    and everything from the ``*** END OF ... ***`` line (and a closing "End of the Project Gutenberg
    EBook ..." line just before it, which may wrap onto one more line) onwards. A text without these
    markers is returned unchanged.
    """
    start = _START.search(text)
    if start is not None:
        text = text[start.end():]
    end = _END.search(text)
    if end is not None:
        text = text[:end.start()]
        last = None
        for last in _END_LINE.finditer(text):
            pass
        # the closing line may wrap onto one more line ("..., by\nAlexis de Toqueville")
        if last is not None and text[last.end():].strip().count("\n") == 0 and len(text) - last.end() < 200:
            text = text[:last.start()]
    return text.strip("\n")


def preprocess_text(text: str) -> str:
    """The original report's preprocessing: keep letters, digits and spaces, lower-cased.

    Every run of whitespace (spaces, newlines, tabs) becomes one space, every other character that is
    not a letter or digit (``str.isalnum``) is dropped, and the result is lower-cased and stripped.
    ``"Hello,  World!\\n1831"`` -> ``"hello world 1831"``.
    """
    instance("text", text, str, "str")
    kept = "".join(c for c in _SPACES.sub(" ", text.lower()) if c == " " or c.isalnum())
    return _SPACES.sub(" ", kept).strip()


def _bundled_books() -> dict[str, Path]:
    """The books shipped inside the package, by name (without the ``.gz`` of the stored file)."""
    folder = Path(str(resources.files(__package__).joinpath("_bundled", "text")))
    return {f.name[:-3]: f for f in sorted(folder.glob("*.txt.gz"))}


def resolve_text_file(path: str | os.PathLike) -> Path:
    """``path`` itself when it exists, else the book of that name under ``$GSEQ_DATA/text``, else the
    book of that name shipped with gseq (a ``.gz`` file, which :func:`load_text` decompresses).

    Raises:
        FileNotFoundError: none of these exists; the message lists the books gseq can find by name.
    """
    p = Path(path)
    if p.exists():
        return p
    data = os.environ.get("GSEQ_DATA")
    books: list[str] = []
    if data:
        folder = Path(data) / "text"
        if (folder / p).is_file():
            return folder / p
        if folder.is_dir():
            books = sorted(f.name for f in folder.glob("*.txt"))
    bundled = _bundled_books()
    if str(path) in bundled:
        return bundled[str(path)]
    books = sorted(set(books) | set(bundled))
    hint = f"; books found by name: {', '.join(books)} (set GSEQ_DATA to a folder holding text/ for more)"
    raise FileNotFoundError(f"file: no text file at {str(path)!r}{hint}")


def load_text(
    path: str | os.PathLike,
    *,
    strip_header: bool = True,
    preprocess: bool = False,
) -> str:
    """Read a UTF-8 text file (a leading byte-order mark is dropped; a ``.gz`` file is decompressed) and
    optionally clean it.

    Args:
        path: the file, or the name of a book under ``$GSEQ_DATA/text`` or shipped with gseq
            (:data:`BUNDLED_BOOK`).
        strip_header: remove a Project Gutenberg header and licence (:func:`strip_gutenberg`).
            (default: True)
        preprocess: apply the report's preprocessing (:func:`preprocess_text`). (default: False)

    Raises:
        FileNotFoundError: no such file.
        ValueError: the path is a folder, the file is not UTF-8, or no text is left.
    """
    p = resolve_text_file(path)
    if p.is_dir():
        raise ValueError(f"file: {str(p)!r} is a folder; pass a UTF-8 text file")
    raw = p.read_bytes()
    if p.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"file: {str(p)!r} is not a readable gzip file ({err})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"file: {str(p)!r} is not UTF-8 text (byte {err.start}: {raw[err.start:err.start + 4]!r}); "
                         "convert it with e.g. `iconv -t UTF-8`") from err
    if not text.strip():
        raise ValueError(f"file: {str(p)!r} is empty; pass a text file with some text in it")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if strip_header:
        text = strip_gutenberg(text)
    if preprocess:
        text = preprocess_text(text)
    if not text.strip():
        raise ValueError(f"file: {str(p)!r} holds no text after "
                         f"{'preprocessing' if preprocess else 'stripping the Gutenberg header'}")
    return text


# ---------------------------------------------------------------------- splitting and windows
def split_text(ids: Tensor, val_fraction: float = 0.05) -> tuple[Tensor, Tensor]:
    """Split encoded text into a training part and the held-out last ``val_fraction`` of it.

    Shapes:
        ids: ``[N]`` -> ``([N - n_val], [n_val])`` with ``n_val = round(N * val_fraction)``.
    """
    _check_ids(ids)
    in_range("val_fraction", val_fraction, 0, 1, low_open=True, high_open=True)
    n_val = int(round(ids.numel() * val_fraction))
    if n_val < 2 or ids.numel() - n_val < 2:
        raise ValueError(f"ids: {ids.numel()} characters are too few to hold out {val_fraction:.0%} of them; "
                         "use a longer text")
    return ids[:-n_val], ids[-n_val:]


def _check_ids(ids: Tensor, what: str = "ids") -> None:
    """A 1-D integer tensor of character ids (``vocab.encode(text)``); no value scan (ids index an
    embedding or a one-hot table, which checks its own range)."""
    if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() \
            or ids.dtype == torch.bool:
        got = f"{str(ids.dtype).removeprefix('torch.')} tensor of shape {list(ids.shape)}" if isinstance(ids, Tensor) \
            else type(ids).__name__
        raise TypeError(f"{what}: expected a 1-D integer tensor of character ids (vocab.encode(text)), got {got}")


def _check_length(ids: Tensor, seq_length: int, what: str) -> None:
    positive_int("seq_length", seq_length)
    _check_ids(ids, what)
    if ids.numel() < seq_length + 1:
        raise ValueError(f"{what}: {ids.numel()} characters are shorter than seq_length + 1 = {seq_length + 1}; "
                         "use a longer text or a smaller seq_length")


def window_sampler(ids: Tensor, seq_length: int = 30, batch_size: int = 64) -> Callable[[torch.Generator], Tensor]:
    """A sampler ``sample(generator) -> windows`` of ``batch_size`` random windows of ``ids``.

    Each window holds ``seq_length + 1`` consecutive characters (inputs ``w[:, :-1]``, targets
    ``w[:, 1:]``); the start positions are uniform over the text, drawn with ``generator`` in one call,
    and the windows are gathered as one tensor. This is the ``data`` a :class:`gseq.train.Trainer` takes.

    Shapes:
        ids: ``[N]`` -> windows ``[batch_size, seq_length + 1]`` (``torch.long``).
    """
    _check_length(ids, seq_length, "ids")
    positive_int("batch_size", batch_size)
    ids = ids.contiguous()
    offsets = torch.arange(seq_length + 1)
    high = ids.numel() - seq_length

    def sample(generator: torch.Generator | None = None) -> Tensor:
        starts = torch.randint(high, (batch_size, 1), generator=generator)
        return ids[starts + offsets]

    return sample


def eval_windows(ids: Tensor, seq_length: int = 30) -> Tensor:
    """Cut held-out text into windows of ``seq_length + 1`` that overlap by one character, so every
    character after the first is predicted exactly once (the tail that does not fill a window is dropped).

    Shapes:
        ids: ``[N]`` -> ``[(N - 1) // seq_length, seq_length + 1]``.
    """
    _check_length(ids, seq_length, "ids")
    return ids.unfold(0, seq_length + 1, seq_length).contiguous()
