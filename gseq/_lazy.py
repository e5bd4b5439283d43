"""Lazy package attributes (PEP 562): a public name is imported from its module on first access.

``import gseq`` and the ``gseq`` command then cost what they use: ``gseq --help`` imports neither torch
nor PyG, and ``import gseq.layers`` brings in torch and PyG but not matplotlib or the analysis code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def attach(package: str, submodules: Iterable[str] = (),
           names: Mapping[str, Iterable[str]] | None = None) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        submodules: submodules reachable as attributes (``gseq.layers`` from ``gseq``).
        names: submodule -> the public names it defines (``{"gcn": ["GCN", "gcn_norm"]}``).
    """
    submodules = set(submodules)
    where = {name: module for module, defined in (names or {}).items() for name in defined}

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            setattr(importlib.import_module(package), name, value)  # later lookups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | submodules | set(where))

    return __getattr__, __dir__
