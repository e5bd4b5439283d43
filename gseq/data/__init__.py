"""Datasets: small graphs in code, Planetoid citation graphs, synthetic graphs of any size, palindromes,
character text."""

from .graphs import example_graph, hop_distances, hops, karate, node_index
from .planetoid import PLANETOID_NAMES, PLANETOID_SHA256, cache_dir, normalize_features, planetoid
from .synthetic import synthetic_graph
from .text import (CharVocab, eval_windows, load_text, preprocess_text, resolve_text_file, split_text,
                   strip_gutenberg, window_sampler)
from .palindromes import NUM_DIGITS, PalindromeDataset, palindromes

__all__ = [
    "example_graph",
    "karate",
    "hops",
    "hop_distances",
    "node_index",
    "planetoid",
    "synthetic_graph",
    "normalize_features",
    "cache_dir",
    "PLANETOID_NAMES",
    "PLANETOID_SHA256",
    "CharVocab",
    "load_text",
    "resolve_text_file",
    "preprocess_text",
    "strip_gutenberg",
    "split_text",
    "window_sampler",
    "eval_windows",
]
__all__ += ["palindromes", "PalindromeDataset", "NUM_DIGITS"]
