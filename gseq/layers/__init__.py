"""gseq.layers."""

from .recurrent import INITS, LSTM, RNN, LSTMCell, RNNCell, lstm_num_parameters

__all__: list[str] = []
__all__ += ["RNNCell", "LSTMCell", "RNN", "LSTM", "lstm_num_parameters", "INITS"]
