"""gseq.layers: the GCN layer, the hand-written RNN/LSTM cells and the recurrent graph cells (imported on
first use)."""

from .._lazy import attach

__all__: list[str] = ["GCN", "gcn_norm", "gcn_graph", "GCNGraph", "check_graph_inputs", "GCN2"]
__all__ += ["RNNCell", "LSTMCell", "RNN", "LSTM", "lstm_num_parameters", "INITS"]
__all__ += ["GConvGRU", "GConvLSTM", "TGCN", "DCRNN", "GraphSequence", "SequenceGraphs", "GRAPH_CELLS"]

__getattr__, __dir__ = attach(__name__, submodules=["gcn", "gcn2", "recurrent", "graph_recurrent", "graph_operators"],
                              names={
    "gcn": ["GCN", "GCNGraph", "check_graph_inputs", "gcn_graph", "gcn_norm"],
    "gcn2": ["GCN2"],
    "recurrent": ["INITS", "LSTM", "RNN", "LSTMCell", "RNNCell", "lstm_num_parameters"],
    "graph_recurrent": ["GConvGRU", "GConvLSTM", "TGCN", "DCRNN", "GraphSequence", "SequenceGraphs", "GRAPH_CELLS"],
})
