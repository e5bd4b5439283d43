"""gseq.layers."""

from .gcn import GCN, GCNGraph, check_graph_inputs, gcn_graph, gcn_norm
from .recurrent import INITS, LSTM, RNN, LSTMCell, RNNCell, lstm_num_parameters

__all__: list[str] = ["GCN", "gcn_norm", "gcn_graph", "GCNGraph", "check_graph_inputs"]
__all__ += ["RNNCell", "LSTMCell", "RNN", "LSTM", "lstm_num_parameters", "INITS"]
