"""The recurrent graph cells against dense references written from their papers' equations, and the
sequence layer against the cell called snapshot by snapshot."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gseq.layers import DCRNN, TGCN, GConvGRU, GConvLSTM, GraphSequence

F64 = torch.float64


# ---------------------------------------------------------------- dense references from the equations
def random_graph(n: int, e: int, weighted: bool = True, loops: bool = True, seed: int = 0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    if not loops:
        ei = ei[:, ei[0] != ei[1]]
    w = torch.rand(ei.size(1), generator=g, dtype=F64) + 0.1 if weighted else None
    return ei.to(device), None if w is None else w.to(device)


def dense_adjacency(ei, w, n, keep_loops=True):
    """``A[i, j]`` = the summed weight of the edges ``j -> i``."""
    w = torch.ones(ei.size(1), dtype=F64, device=ei.device) if w is None else w
    if not keep_loops:
        m = ei[0] != ei[1]
        ei, w = ei[:, m], w[m]
    return torch.zeros(n, n, dtype=F64, device=ei.device).index_put_((ei[1], ei[0]), w, accumulate=True)


def dense_chebyshev(ei, w, n, K, normalization="sym", lambda_max=2.0):
    """``[T_0(L^), ..., T_{K-1}(L^)]`` with L^ = 2L/lambda_max - I, L ChebConv's Laplacian (out-degrees)."""
    A = dense_adjacency(ei, w, n, keep_loops=False)
    deg = A.sum(0)  # out-degree of each source j: column sums of A[i, j]
    eye = torch.eye(n, dtype=F64, device=A.device)
    if normalization == "sym":
        dis = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
        L = eye - dis[:, None] * A * dis[None, :]
    elif normalization == "rw":
        L = eye - A * torch.where(deg > 0, 1 / deg, torch.zeros_like(deg))[None, :]
    else:
        L = torch.diag(deg) - A
    Lh = 2 * L / lambda_max - eye
    T = [eye, Lh]
    while len(T) < K:
        T.append(2 * Lh @ T[-1] - T[-2])
    return T[:K]


def dense_diffusion(ei, w, n, K):
    """``[I, P_f, ..., P_f^{K-1}, P_b, ..., P_b^{K-1}]`` with P_f = A D_out^-1, P_b = A^T D_in^-1."""
    A = dense_adjacency(ei, w, n)
    d_out, d_in = A.sum(0), A.sum(1)
    inv = lambda d: torch.where(d > 0, 1 / d, torch.zeros_like(d))  # noqa: E731
    Pf, Pb = A * inv(d_out)[None, :], A.t() * inv(d_in)[None, :]
    eye = torch.eye(n, dtype=F64, device=A.device)
    fwd, bwd = [], []
    for k in range(1, K):
        fwd.append(torch.linalg.matrix_power(Pf, k)), bwd.append(torch.linalg.matrix_power(Pb, k))
    return [eye] + fwd + bwd


def dense_gcn(ei, w, n, loop=1.0):
    """PyG's GCN normalisation with add_remaining_self_loops (a node's own loop keeps its weight)."""
    A = dense_adjacency(ei, w, n, keep_loops=False)
    wl = torch.ones(ei.size(1), dtype=F64, device=ei.device) if w is None else w
    diag = torch.ones(n, dtype=F64, device=ei.device) * loop  # loop: a float or a 0-d tensor (learned)
    m = ei[0] == ei[1]
    diag = diag.index_put((ei[0][m],), wl[m])  # the last loop of a node wins
    A = A + torch.diag(diag)
    s = A.sum(1).pow(-0.5)
    return s[:, None] * A * s[None, :]


def conv(supports, x, weight):
    """sum_s S_s X W_s^T for x [*, N, C] and weight [S, G, C]."""
    return sum(S @ x @ weight[s].t() for s, S in enumerate(supports))


def ref_gru(supports, cell, x, h):
    H = cell.out_channels
    b = cell.bias if cell.bias is not None else torch.zeros(3 * H, dtype=F64)
    Wx, Wh = cell.weight_ih, cell.weight_hh
    r = torch.sigmoid(conv(supports, x, Wx[:, :H]) + conv(supports, h, Wh[:, :H]) + b[:H])
    z = torch.sigmoid(conv(supports, x, Wx[:, H:2 * H]) + conv(supports, h, Wh[:, H:2 * H]) + b[H:2 * H])
    n = torch.tanh(conv(supports, x, Wx[:, 2 * H:]) + conv(supports, h * r, Wh[:, 2 * H:]) + b[2 * H:])
    return z * h + (1 - z) * n


def ref_lstm(supports, cell, x, h, c):
    H = cell.out_channels
    b = cell.bias
    gate = lambda k: conv(supports, x, cell.weight_ih[:, k * H:(k + 1) * H]) + \
        conv(supports, h, cell.weight_hh[:, k * H:(k + 1) * H]) + b[k * H:(k + 1) * H]  # noqa: E731
    i = torch.sigmoid(gate(0) + cell.weight_ci * c)
    f = torch.sigmoid(gate(1) + cell.weight_cf * c)
    c = f * c + i * torch.tanh(gate(2))
    o = torch.sigmoid(gate(3) + cell.weight_co * c)
    return o * torch.tanh(c), c


def ref_tgcn(ei, w, n, cell, x, h):
    H = cell.out_channels
    S = dense_gcn(ei, w, n, cell.conv.self_loop_weight().to(F64))
    G = S @ (x @ cell.conv.lin.weight.t()) + cell.conv.bias  # [*, N, 3H]
    Wx, Wh, b = cell.weight_ih[0], cell.weight_hh[0], cell.bias
    lin = lambda g, k: G[..., k * H:(k + 1) * H] @ Wx[k * H:(k + 1) * H].t() + b[k * H:(k + 1) * H]  # noqa: E731
    r = torch.sigmoid(lin(G, 0) + h @ Wh[:H].t())
    z = torch.sigmoid(lin(G, 1) + h @ Wh[H:2 * H].t())
    nn_ = torch.tanh(lin(G, 2) + (h * r) @ Wh[2 * H:].t())
    return z * h + (1 - z) * nn_


def make(name, F=3, H=4, **kw):
    torch.manual_seed(3)
    cell = {"gconv_gru": lambda: GConvGRU(F, H, kw.get("K", 3), kw.get("normalization", "sym"),
                                          lambda_max=kw.get("lambda_max")),
            "gconv_lstm": lambda: GConvLSTM(F, H, kw.get("K", 3), kw.get("normalization", "sym"),
                                            lambda_max=kw.get("lambda_max")),
            "dcrnn": lambda: DCRNN(F, H, kw.get("K", 3)),
            "tgcn": lambda: TGCN(F, H, self_loop_weight=kw.get("self_loop_weight", 1.0))}[name]().double()
    with torch.no_grad():  # non-zero biases, so that they are really tested
        for p in cell.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
    return cell


def reference(name, cell, ei, w, n, x, state, **kw):
    if name == "tgcn":
        return (ref_tgcn(ei, w, n, cell, x, state[0]),)
    if name == "dcrnn":
        supports = dense_diffusion(ei, w, n, cell.K)
    else:
        supports = dense_chebyshev(ei, w, n, cell.K, kw.get("normalization", "sym"), kw.get("lambda_max") or 2.0)
    if name == "gconv_lstm":
        return ref_lstm(supports, cell, x, *state)
    return (ref_gru(supports, cell, x, state[0]),)


CASES = [("gconv_gru", {}), ("gconv_gru", {"normalization": "rw", "lambda_max": 1.7, "K": 4}),
         ("gconv_gru", {"normalization": None, "lambda_max": 9.0}), ("gconv_lstm", {}),
         ("gconv_lstm", {"K": 1}), ("dcrnn", {}), ("dcrnn", {"K": 1}), ("tgcn", {}),
         ("tgcn", {"self_loop_weight": "learn"})]


@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("name, kw", CASES)
def test_cell_equals_dense_reference_outputs_and_gradients(name, kw, batch, device):
    n, F = 7, 3
    cell = make(name, F, **kw).to(device)
    ei, w = random_graph(n, 20, seed=1, device=device)
    x = torch.randn(*batch, n, F, dtype=F64, device=device, requires_grad=True)
    parts = 2 if name == "gconv_lstm" else 1
    state = tuple(torch.randn(*batch, n, 4, dtype=F64, device=device, requires_grad=True) for _ in range(parts))
    out = cell(x, ei, w, state=state if parts == 2 else state[0])
    out = out if parts == 2 else (out,)
    ref = reference(name, cell, ei, w, n, x, state, **kw)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b)
    inputs = [x, *state, *cell.parameters()]
    loss = lambda outs: sum((o * torch.linspace(-1, 2, o.numel(), dtype=F64, device=device).view_as(o)).sum()  # noqa: E731
                            for o in outs)
    g_out = torch.autograd.grad(loss(out), inputs)
    g_ref = torch.autograd.grad(loss(ref), inputs)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["gconv_gru", "gconv_lstm", "dcrnn", "tgcn"])
def test_cell_gradcheck_float64(name):
    n = 5
    cell = make(name, 2, 3, K=3)
    ei, w = random_graph(n, 12, seed=2)
    w.requires_grad_(True)
    x = torch.randn(n, 2, dtype=F64, requires_grad=True)
    h = torch.randn(n, 3, dtype=F64, requires_grad=True)
    c = torch.randn(n, 3, dtype=F64, requires_grad=True)

    def f(x, h, c, w):
        state = (h, c) if name == "gconv_lstm" else h
        out = cell(x, ei, w, state=state)
        return torch.cat(out, -1) if name == "gconv_lstm" else out
    # edge weights are differentiable for the Chebyshev and diffusion operators (built from them)
    assert torch.autograd.gradcheck(f, (x, h, c, w))


def test_tgcn_learned_self_loop_weight_gets_a_gradient():
    cell = make("tgcn", self_loop_weight="learn")
    ei, w = random_graph(6, 15)
    cell(torch.randn(6, 3, dtype=F64), ei, w).sum().backward()
    assert cell.conv.raw_self_loop_weight.grad is not None and cell.conv.raw_self_loop_weight.grad != 0


# ---------------------------------------------------------------- the sequence layer
def loop_reference(cell, x, eis, ws, state=None):
    """The cell called snapshot by snapshot (its own checks and graph on each call)."""
    outs = []
    for t in range(x.size(-3)):
        state = cell(x.select(-3, t), eis[t], None if ws is None else ws[t], state=state)
        outs.append(state if isinstance(state, torch.Tensor) else state[0])
    return torch.stack(outs, -3), state


@pytest.mark.parametrize("name", ["gconv_gru", "gconv_lstm", "dcrnn", "tgcn"])
@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_sequence_equals_per_snapshot_loop(name, dynamic, batch, device):
    n, T = 6, 5
    cell = make(name, K=2).to(device)
    x = torch.randn(*batch, T, n, 3, dtype=F64, device=device)
    if dynamic:
        graphs = [random_graph(n, 10 + t, seed=t, device=device) for t in range(T)]
        eis, ws = [g[0] for g in graphs], [g[1] for g in graphs]
        ws[1] = None  # an unweighted snapshot among weighted ones weighs 1
        arg_ei, arg_w = eis, ws
    else:
        ei, w = random_graph(n, 14, device=device)
        eis, ws, arg_ei, arg_w = [ei] * T, [w] * T, ei, w
    out, final = GraphSequence(cell)(x, arg_ei, arg_w)
    ref, ref_final = loop_reference(cell, x, eis, ws)
    torch.testing.assert_close(out, ref)
    for a, b in zip(final if isinstance(final, tuple) else (final,),
                    ref_final if isinstance(ref_final, tuple) else (ref_final,)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["gconv_gru", "gconv_lstm", "dcrnn", "tgcn"])
def test_state_carried_across_windows_equals_one_long_run(name):
    n, T = 6, 9
    seq = GraphSequence(make(name, K=2))
    ei, w = random_graph(n, 14)
    graphs = seq.graphs(ei, w, n)  # built once, reused by every window
    x = torch.randn(T, n, 3, dtype=F64)
    whole, final = seq(x, graphs)
    state, parts = None, []
    for lo, hi in [(0, 4), (4, 5), (5, 9)]:
        out, state = seq(x[lo:hi], graphs, state=state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts), whole)
    torch.testing.assert_close(state, final)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), e=st.integers(0, 15), K=st.integers(1, 3), seed=st.integers(0, 100))
def test_chebyshev_and_diffusion_any_graph_match_dense(n, e, K, seed):
    ei, w = random_graph(n, e, seed=seed)
    x = torch.randn(n, 2, dtype=F64)
    for cell, supports in [(make("gconv_gru", 2, K=K), dense_chebyshev(ei, w, n, K)),
                           (make("dcrnn", 2, K=K), dense_diffusion(ei, w, n, K))]:
        got = cell.graph(ei, w, n).basis(x)
        for b, S in zip(got, supports):
            torch.testing.assert_close(b, S @ x)


def test_cached_graph_is_built_once_and_refuses_another_size():
    cell = GConvGRU(3, 4, 2, cached=True)
    ei, _ = random_graph(5, 10, weighted=False)
    g1 = cell.graph(ei, num_nodes=5)
    assert cell.graph(ei, num_nodes=5) is g1
    with pytest.raises(ValueError, match="x: the graph has 5 nodes"):
        cell(torch.randn(6, 3), ei)


BAD = [
    (lambda: GConvGRU(3, 4, 0), ValueError, "K"),
    (lambda: GConvGRU(3, 4, 2, "bogus"), ValueError, "normalization"),
    (lambda: GConvGRU(3, 4, 2, "rw"), ValueError, "lambda_max"),
    (lambda: GConvLSTM(0, 4, 2), ValueError, "in_channels"),
    (lambda: DCRNN(3, 4, 2)(torch.randn(5, 3), torch.tensor([[0, 1], [1, 9]])), ValueError, "edge_index"),
    (lambda: DCRNN(3, 4, 2)(torch.randn(5, 3), torch.tensor([[0, 1], [1, 2]]), torch.tensor([1.0, -1.0])),
     ValueError, "non-negative"),
    (lambda: GConvGRU(3, 4, 2)(torch.randn(5, 2), torch.tensor([[0], [1]])), ValueError, "in_channels=3"),
    (lambda: GConvGRU(3, 4, 2)(torch.randn(5, 3), torch.tensor([[0], [1]]), state=torch.zeros(5, 3)),
     ValueError, r"state \(h\)"),
    (lambda: GConvLSTM(3, 4, 2)(torch.randn(5, 3), torch.tensor([[0], [1]]), state=torch.zeros(5, 4)),
     ValueError, "state: expected a pair"),
    (lambda: GraphSequence(TGCN(3, 4))(torch.randn(5, 3), torch.tensor([[0], [1]])), ValueError, r"x: expected"),
    (lambda: GraphSequence(TGCN(3, 4))(torch.randn(2, 5, 3), [torch.tensor([[0], [1]])] * 3), ValueError,
     "3 snapshots"),
    (lambda: GraphSequence(TGCN(3, 4))(torch.randn(2, 5, 3), [torch.tensor([[0], [1]]), torch.tensor([[0], [7]])]),
     ValueError, r"edge_index \(snapshot 1\): "),
    (lambda: GraphSequence(torch.nn.GRUCell(3, 4)), TypeError, "cell"),
]


@pytest.mark.parametrize("call, error, match", BAD)
def test_bad_inputs_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("name", ["gconv_gru", "gconv_lstm", "dcrnn", "tgcn"])
def test_no_state_is_the_zero_state(name):
    """state=None skips the state side's graph products (they vanish): the same as explicit zeros."""
    cell = make(name, K=2)
    ei, w = random_graph(6, 14)
    x = torch.randn(2, 6, 3, dtype=F64)
    zeros = torch.zeros(2, 6, 4, dtype=F64)
    got = cell(x, ei, w)
    want = cell(x, ei, w, state=(zeros, zeros) if name == "gconv_lstm" else zeros)
    for a, b in zip(got if name == "gconv_lstm" else (got,), want if name == "gconv_lstm" else (want,)):
        torch.testing.assert_close(a, b)
