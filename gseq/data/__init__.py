"""Datasets: small graphs in code, Planetoid citation graphs (Cora ships with the package), synthetic
graphs of any size, palindromes, character text (one book ships with the package), temporal signals on graphs
(chickenpox ships with the package)."""

from .graphs import example_graph, hop_distances, hops, karate, node_index
from .planetoid import PLANETOID_NAMES, PLANETOID_SHA256, cache_dir, normalize_features, planetoid
from .synthetic import synthetic_graph
from .text import (BUNDLED_BOOK, CharVocab, eval_windows, load_text, preprocess_text, resolve_text_file, split_text,
                   strip_gutenberg, window_sampler)
from .palindromes import NUM_DIGITS, PalindromeDataset, palindromes
from .path_graph import palindrome_graphs, path_graph
from .temporal import (EDGE_WEIGHTS, TEMPORAL_DATASETS, TemporalSignal, lag_signal, load_temporal_json, split_by_time,
                       temporal_dataset)

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
    "BUNDLED_BOOK",
]
__all__ += ["palindromes", "PalindromeDataset", "NUM_DIGITS"]
__all__ += ["path_graph", "palindrome_graphs"]
__all__ += ["TemporalSignal", "lag_signal", "split_by_time", "temporal_dataset", "load_temporal_json",
            "TEMPORAL_DATASETS", "EDGE_WEIGHTS"]
