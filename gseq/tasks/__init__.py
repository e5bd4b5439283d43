"""gseq.tasks: what the shared :class:`~gseq.train.Trainer` runs (imported on first use).

A task is a data stream, a ``loss_fn``, an ``evaluate`` and its callbacks (sample logger, figures,
targets) around a model of :mod:`gseq.models`, handed to the one Trainer: node classification
(:mod:`gseq.tasks.node_classification`; deep GCNII models: :mod:`gseq.tasks.gcnii`), palindromes read by
a recurrent network or by a GCN on path graphs (:mod:`gseq.tasks.palindrome`), the character language
model (:mod:`gseq.tasks.char_lm`), and forecasting node signals on a graph (:mod:`gseq.tasks.forecasting`).
"""

from .._lazy import attach

__all__: list[str] = ["train_node_classifier", "train_node_classifier_minibatch", "train_gcnii"]
__all__ += ["train_palindrome", "fit_palindrome", "palindrome_accuracy", "train_palindrome_gcn",
            "palindrome_gcn_accuracy", "last_node_logits"]
__all__ += ["train_char_lstm", "load_char_lstm", "char_lm_evaluator", "SampleLogger"]
__all__ += ["train_forecaster", "forecast_metrics"]

__getattr__, __dir__ = attach(__name__, submodules=["node_classification", "gcnii", "palindrome", "char_lm",
                                                    "forecasting"], names={
    "node_classification": ["train_node_classifier", "train_node_classifier_minibatch"],
    "gcnii": ["train_gcnii"],
    "palindrome": ["train_palindrome", "fit_palindrome", "palindrome_accuracy", "train_palindrome_gcn",
                   "palindrome_gcn_accuracy", "last_node_logits"],
    "char_lm": ["train_char_lstm", "load_char_lstm", "char_lm_evaluator", "SampleLogger"],
    "forecasting": ["train_forecaster", "forecast_metrics"],
})
