"""gseq: graph and sequence models around PyTorch Geometric.

Subpackages: :mod:`gseq.layers` (GCN, RNN/LSTM cells), :mod:`gseq.models`, :mod:`gseq.data`,
:mod:`gseq.loader` (neighbour sampling), :mod:`gseq.ops` (sparse kernels), :mod:`gseq.train` (the shared Trainer), :mod:`gseq.analysis`,
:mod:`gseq.plots`.
"""

__version__ = "0.1.0"

from . import analysis, data, layers, loader, models, ops, plots, train  # noqa: E402

__all__ = ["__version__", "analysis", "data", "layers", "loader", "models", "ops", "plots", "train"]
