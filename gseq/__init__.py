"""gseq: graph and sequence models around PyTorch Geometric.

Subpackages: :mod:`gseq.layers` (GCN, RNN/LSTM cells), :mod:`gseq.models` (the ``nn.Module`` classes),
:mod:`gseq.tasks` (node classification, palindromes, character language model: what the Trainer runs),
:mod:`gseq.data`, :mod:`gseq.loader` (neighbour sampling), :mod:`gseq.ops` (sparse kernels),
:mod:`gseq.train` (the shared Trainer), :mod:`gseq.io` (atomic file writing, checkpoints),
:mod:`gseq.checks` (the argument checks every package shares), :mod:`gseq.config` (one dataclass of settings
per task: Python keywords, command line, config.json and resume check), :mod:`gseq.analysis`, :mod:`gseq.plots`. Each is imported on first use (``gseq.layers``,
``from gseq.layers import GCN``), so ``import gseq`` itself imports neither torch nor PyG.
"""

from ._lazy import attach

__version__ = "0.1.0"

__all__ = ["__version__", "analysis", "checks", "config", "data", "io", "layers", "loader", "models", "ops", "plots", "tasks", "train"]

__getattr__, __dir__ = attach(__name__, submodules=__all__[1:])
