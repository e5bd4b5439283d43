"""Every public nn.Module of gseq survives copy.deepcopy and a pickle round trip after a forward pass.

Keeping the best epoch with ``copy.deepcopy(model)`` is a common PyG pattern; ``torch.save(model)``
pickles. Each module runs forward and backward first (so that caches such as a GCN's cached graph and
its transpose exist), and the copy must give the same outputs.
"""

import copy
import inspect
import pickle

import pytest
import torch
from torch import nn

import gseq.layers
import gseq.models
from gseq.layers import DCRNN, GCN, GCN2, LSTM, RNN, TGCN, GConvGRU, GConvLSTM, GraphSequence, LSTMCell, RNNCell, \
    gcn_graph
from gseq.models import GCNII, CharLSTM, GCNNet, GraphForecaster, LinearAR, SequenceClassifier

X = torch.randn(6, 4)
EDGES = torch.tensor([[0, 1, 2, 3, 4, 5, 2], [1, 2, 3, 4, 5, 0, 2]])
WEIGHTS = torch.rand(7) + 0.5
SEQ = torch.randn(2, 5, 4)
TOKENS = torch.randint(0, 10, (2, 5))
SIGNAL = torch.randn(5, 6, 4)  # [T, N, F]

CASES = {  # name: (module factory, forward arguments)
    "GCN": (lambda: GCN(4, 3), (X, EDGES, WEIGHTS)),
    "GCN-cached": (lambda: GCN(4, 3, cached=True), (X, EDGES, WEIGHTS)),
    "GCN-cached-learned-loop": (lambda: GCN(4, 3, cached=True, self_loop_weight="learn", normalize="both"),
                                (X, EDGES, WEIGHTS)),
    "GCN-cached-mean-reversed": (lambda: GCN(4, 3, cached=True, aggr="mean", flow="target_to_source"), (X, EDGES)),
    "GCN2-cached-learned-loop": (lambda: GCN2(4, 0.2, 0.5, 2, False, cached=True, self_loop_weight="learn"),
                                 (X, X.flip(0), EDGES, WEIGHTS)),
    "GCNII-cached": (lambda: GCNII(4, 3, hidden_channels=5, num_layers=3, dropout=0.0, cached=True), (X, EDGES)),
    "RNNCell": (lambda: RNNCell(4, 3), (X,)),
    "LSTMCell": (lambda: LSTMCell(4, 3), (X,)),
    "RNN": (lambda: RNN(4, 3), (SEQ,)),
    "RNN-unfused": (lambda: RNN(4, 3, fused=False), (SEQ,)),
    "LSTM": (lambda: LSTM(4, 3), (SEQ,)),
    "GCNNet": (lambda: GCNNet(4, 3, hidden_channels=5, dropout=0.0), (X, EDGES)),
    "GCNNet-cached": (lambda: GCNNet(4, 3, hidden_channels=5, dropout=0.0, cached=True, self_loop_weight="learn"),
                      (X, EDGES)),
    "SequenceClassifier": (lambda: SequenceClassifier("lstm", 8), (TOKENS,)),
    "SequenceClassifier-rnn": (lambda: SequenceClassifier("rnn", 8, input="onehot"), (TOKENS,)),
    "CharLSTM": (lambda: CharLSTM(10, 8), (TOKENS,)),
    "CharLSTM-learned": (lambda: CharLSTM(10, 8, embedding="learned"), (TOKENS,)),
    "GConvGRU-cached": (lambda: GConvGRU(4, 3, 2, cached=True), (X, EDGES, WEIGHTS)),
    "GConvLSTM": (lambda: GConvLSTM(4, 3, 3), (X, EDGES, WEIGHTS)),
    "TGCN-cached-learned-loop": (lambda: TGCN(4, 3, cached=True, self_loop_weight="learn"), (X, EDGES, WEIGHTS)),
    "DCRNN-cached": (lambda: DCRNN(4, 3, 2, cached=True), (X, EDGES, WEIGHTS)),
    "GraphSequence": (lambda: GraphSequence(GConvGRU(4, 3, 2, cached=True)), (SIGNAL, EDGES, WEIGHTS)),
    "GraphForecaster": (lambda: GraphForecaster("dcrnn", 4, 3, horizon=2), (SIGNAL, EDGES)),
    "LinearAR": (lambda: LinearAR(4, 2), (SIGNAL,)),
}


def public_modules():
    for package in (gseq.layers, gseq.models):
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isclass(obj) and issubclass(obj, nn.Module):
                yield obj


def test_every_public_module_has_a_case():
    covered = {type(factory()) for factory, _ in CASES.values()}
    missing = [cls.__name__ for cls in public_modules() if cls not in covered]
    assert not missing, f"add a copy case for {missing}"


def total(out):
    if isinstance(out, torch.Tensor):
        return out.float().pow(2).sum()
    return sum(total(o) for o in out if o is not None)


def round_trip(how, module):
    if how == "deepcopy":
        return copy.deepcopy(module)
    return pickle.loads(pickle.dumps(module))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", CASES)
def test_copy_after_forward_and_backward_gives_the_same_outputs(name, how):
    factory, args = CASES[name]
    module = factory().eval()
    total(module(*args)).backward()
    expected = module(*args)
    clone = round_trip(how, module)
    torch.testing.assert_close(clone(*args), expected)
    total(clone(*args)).backward()  # the copy trains too
    for (n, p), (_, q) in zip(module.named_parameters(), clone.named_parameters()):
        assert p is not q and torch.equal(p, q), n


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_of_a_cached_gcn_keeps_its_graph(how):
    """PyG semantics: a cached layer ignores later edges; so does its copy, on a graph of its own."""
    layer = GCN(4, 3, cached=True)
    expected = layer(X, EDGES, WEIGHTS)
    clone = round_trip(how, layer)
    torch.testing.assert_close(clone(X, EDGES[:, :2]), expected)
    assert clone._cached_graph is not layer._cached_graph
    assert clone._cached_graph.csr.structure is not layer._cached_graph.csr.structure  # its own caches


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_of_a_prebuilt_graph(how):
    graph = gcn_graph(EDGES, WEIGHTS, 6)
    layer = GCN(4, 3)
    expected = layer(X, graph)
    clone = round_trip(how, graph)
    torch.testing.assert_close(layer(X, clone), expected)
    torch.testing.assert_close(clone.kept_loop, graph.kept_loop)
