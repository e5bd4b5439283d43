"""gseq.models: the ``nn.Module`` classes (and a model's own loss), and :func:`generate` with the contract
a model meets to be sampled (:class:`CharModel`).

Training them is a task (:mod:`gseq.tasks`); models import no training loop, loader or figures.
"""

from .char_lstm import CharLSTM, char_lm_loss
from .gcn_net import GCNNet, sparse_features
from .gcnii import GCNII
from .generate import CharModel, generate
from .sequence import CELLS, INPUTS, SequenceClassifier
from .temporal import GraphForecaster, LinearAR

__all__: list[str] = [
    "GCNNet",
    "sparse_features",
    "GCNII",
    "CharLSTM",
    "char_lm_loss",
    "generate",
    "CharModel",
]
__all__ += ["SequenceClassifier", "CELLS", "INPUTS"]
__all__ += ["GraphForecaster", "LinearAR"]
