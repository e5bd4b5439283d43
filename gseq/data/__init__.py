"""Datasets: small graphs in code, Planetoid citation graphs, palindromes, character text."""

from .graphs import example_graph, hop_distances, hops, karate, node_index
from .planetoid import PLANETOID_NAMES, PLANETOID_SHA256, cache_dir, normalize_features, planetoid

__all__ = [
    "example_graph",
    "karate",
    "hops",
    "hop_distances",
    "node_index",
    "planetoid",
    "normalize_features",
    "cache_dir",
    "PLANETOID_NAMES",
    "PLANETOID_SHA256",
]
