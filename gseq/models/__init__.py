"""gseq.models."""

from .char_lstm import CharLSTM, SampleLogger, char_lm_evaluator, char_lm_loss, load_char_lstm, train_char_lstm
from .gcn_net import GCNNet, sparse_features, train_node_classifier, train_node_classifier_minibatch
from .generate import generate
from .path_gcn import last_node_logits, palindrome_gcn_accuracy, train_palindrome_gcn
from .sequence import CELLS, INPUTS, SequenceClassifier, fit_palindrome, palindrome_accuracy, train_palindrome

__all__: list[str] = [
    "GCNNet",
    "train_node_classifier",
    "train_node_classifier_minibatch",
    "sparse_features",
    "CharLSTM",
    "char_lm_loss",
    "char_lm_evaluator",
    "SampleLogger",
    "train_char_lstm",
    "load_char_lstm",
    "generate",
]
__all__ += ["SequenceClassifier", "train_palindrome", "fit_palindrome", "palindrome_accuracy", "CELLS", "INPUTS"]
__all__ += ["train_palindrome_gcn", "palindrome_gcn_accuracy", "last_node_logits"]
