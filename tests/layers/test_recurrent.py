import contextlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gseq.layers import LSTM, RNN, LSTMCell, RNNCell, lstm_num_parameters

F64 = torch.float64


@contextlib.contextmanager
def no_tf32():
    """Full float32 matrix products on CUDA (cuDNN and cuBLAS default to TF32 on Ampere and later)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _grads(module, *tensors):
    return [p.grad.clone() for p in module.parameters()] + [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("ours_cls, torch_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell)])
def test_cell_matches_torch_cell_outputs_and_gradients(ours_cls, torch_cls):
    torch.manual_seed(1)
    ref = torch_cls(5, 7, dtype=F64)
    ours = ours_cls(5, 7, dtype=F64)
    with torch.no_grad():  # make every bias non-zero, so that both biases are really used
        for p in ref.parameters():
            p.add_(torch.randn_like(p))
    ours.load_state_dict(ref.state_dict())  # same names and shapes: copies across
    x = torch.randn(3, 5, dtype=F64, requires_grad=True)
    h = torch.randn(3, 7, dtype=F64, requires_grad=True)
    if ours_cls is LSTMCell:
        c = torch.randn(3, 7, dtype=F64, requires_grad=True)
        outs = [m(x, (h, c)) for m in (ref, ours)]
        (h_ref, c_ref), (h_our, c_our) = outs
        torch.testing.assert_close(h_our, h_ref)
        torch.testing.assert_close(c_our, c_ref)
        losses = [(hh * torch.arange(7.0, dtype=F64)).sum() + (cc ** 2).sum() for hh, cc in outs]
        inputs = (x, h, c)
    else:
        h_ref, h_our = ref(x, h), ours(x, h)
        torch.testing.assert_close(h_our, h_ref)
        losses = [(hh * torch.arange(7.0, dtype=F64)).sum() for hh in (h_ref, h_our)]
        inputs = (x, h)
    grads = []
    for module, loss in zip((ref, ours), losses):
        for t in inputs:
            t.grad = None
        loss.backward()
        grads.append(_grads(module, *inputs))
    for g_ref, g_our in zip(*grads):
        torch.testing.assert_close(g_our, g_ref)


def test_cells_default_to_zero_state_like_torch():
    torch.manual_seed(0)
    ref, ours = nn.LSTMCell(4, 6), LSTMCell(4, 6)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4)
    for a, b in zip(ours(x), ref(x)):
        torch.testing.assert_close(a, b)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 4), time=st.integers(1, 7), inp=st.integers(1, 5), hidden=st.integers(1, 6),
       use_state=st.booleans(), lstm=st.booleans())
def test_fused_path_equals_reference_path(device, batch, time, inp, hidden, use_state, lstm):
    """The fast path and the per-step cell equations give the same outputs and gradients."""
    torch.manual_seed(batch * 100 + time)
    cls = LSTM if lstm else RNN
    kw = dict(dtype=F64, device=device)
    fused = cls(inp, hidden, **kw)
    ref = cls(inp, hidden, fused=False, **kw)
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(batch, time, inp, **kw, requires_grad=True)
    state = None
    leaves = [x]
    if use_state:
        h0 = torch.randn(batch, hidden, **kw, requires_grad=True)
        c0 = torch.randn(batch, hidden, **kw, requires_grad=True)
        state = (h0, c0) if lstm else h0
        leaves += [h0, c0] if lstm else [h0]
    weights = torch.randn(time, hidden, **kw)
    results = []
    for module in (fused, ref):
        for t in leaves:
            t.grad = None
        out, last = module(x, state)
        h_last = last[0] if lstm else last
        loss = (out.sum(0) * weights).sum() + (h_last ** 2).sum()
        if lstm:
            loss = loss + (last[1] ** 3).sum()
        loss.backward()
        results.append([out.detach(), h_last.detach()] + _grads(module, *leaves))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("lstm", [False, True])
def test_fused_path_gradcheck(device, lstm):
    torch.manual_seed(3)
    kw = dict(dtype=F64, device=device)
    module = LSTM(3, 4, forget_bias=1.0, **kw) if lstm else RNN(3, 4, **kw)
    x = torch.randn(2, 5, 3, **kw, requires_grad=True)
    h0 = torch.randn(2, 4, **kw, requires_grad=True)
    if lstm:
        c0 = torch.randn(2, 4, **kw, requires_grad=True)

        def fn(x, h0, c0, *params):
            out, (h, c) = torch.func.functional_call(module, dict(zip(names, params)), (x, (h0, c0)))
            return out, c

        inputs = (x, h0, c0)
    else:
        def fn(x, h0, *params):
            return torch.func.functional_call(module, dict(zip(names, params)), (x, h0))[0]

        inputs = (x, h0)
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in module.parameters())
    assert torch.autograd.gradcheck(fn, inputs + params)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("lstm", [False, True])
def test_sequence_wrapper_matches_torch_module(device, lstm, dtype):
    """Outputs and gradients equal ``nn.LSTM`` / ``nn.RNN`` (cuDNN on CUDA, with TF32 off in float32)."""
    torch.manual_seed(4)
    kw = dict(dtype=dtype, device=device)
    ref = (nn.LSTM if lstm else nn.RNN)(3, 5, batch_first=True, **kw)
    ours = (LSTM if lstm else RNN)(3, 5, **kw)
    ours.cell.load_state_dict({k[: -len("_l0")]: v for k, v in ref.state_dict().items()})
    x = torch.randn(4, 6, 3, **kw)
    with no_tf32():
        out_ref, last_ref = ref(x)
        out, last = ours(x)
        out_ref.sum().backward()
        out.sum().backward()
    torch.testing.assert_close(out, out_ref)
    if lstm:
        torch.testing.assert_close(last[0], last_ref[0][0])
        torch.testing.assert_close(last[1], last_ref[1][0])
    else:
        torch.testing.assert_close(last, last_ref[0])
    for name, p in ours.cell.named_parameters():
        torch.testing.assert_close(p.grad, getattr(ref, name + "_l0").grad, msg=lambda m: f"{name}: {m}")


#: (autocast dtype, largest error relative to the largest float32 value: outputs, gradients)
AUTOCAST_TOL = {torch.bfloat16: (3e-2, 5e-2), torch.float16: (4e-3, 1e-2)}


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("lstm", [False, True])
def test_fused_path_runs_under_autocast(device, lstm, half):
    """Under ``torch.autocast`` the fast path runs in the autocast dtype (it used to fail: the low-precision
    input projection met the float32 recurrent weights in the in-place ``addmm_``); outputs and the
    loss's gradients stay within that dtype's rounding of the float32 run, and the returned state can be
    fed back in."""
    torch.manual_seed(7)
    module = (LSTM if lstm else RNN)(3, 16, device=device)
    x = torch.randn(4, 20, 3, device=device)
    target = torch.randn(4, 20, 16, device=device)
    results = []
    for autocast in (False, True):
        module.zero_grad()
        with torch.autocast(device.type, dtype=half, enabled=autocast):
            out, last = module(x)
            again, _ = module(x[:, :2], last)  # the state in the autocast dtype is accepted back
            loss = ((out.float() - target) ** 2).mean() + again.float().sum()
        loss.backward()
        results.append((out, [p.grad.clone() for p in module.parameters()]))
    (out32, grads32), (out_half, grads_half) = results
    assert out_half.dtype == half and all(g.dtype == torch.float32 for g in grads_half)
    out_tol, grad_tol = AUTOCAST_TOL[half]
    assert _relative_error(out_half, out32) < out_tol
    for g, g32 in zip(grads_half, grads32):
        assert _relative_error(g, g32) < grad_tol
    # the reference path under autocast agrees too (its states stay float32: only the products are cast)
    ref = (LSTM if lstm else RNN)(3, 16, device=device, fused=False)
    ref.load_state_dict(module.state_dict())
    with torch.autocast(device.type, dtype=half):
        assert _relative_error(ref(x)[0], out32) < out_tol


def test_float64_ignores_autocast():
    """Autocast leaves float64 alone, and so does the fast path."""
    module = LSTM(3, 4, dtype=F64)
    x = torch.randn(2, 5, 3, dtype=F64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = module(x)
    assert out.dtype == F64
    torch.testing.assert_close(out, module(x)[0], rtol=0, atol=0)


@settings(max_examples=20, deadline=None)
@given(d=st.integers(1, 40), n=st.integers(1, 40))
def test_lstm_num_parameters_counts_one_bias_per_gate(d, n):
    single = LSTMCell(d, n, bias="single")
    double = LSTMCell(d, n)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert lstm_num_parameters(d, n) == count(single)
    # torch's layout stores the bias twice (b = bias_ih + bias_hh): the formula counts it once
    assert lstm_num_parameters(d, n) == count(double) - double.bias_hh.numel()


def test_single_bias_cell_equals_double_bias_with_summed_biases():
    torch.manual_seed(5)
    double = LSTMCell(3, 4)
    with torch.no_grad():
        double.bias_ih.normal_()
        double.bias_hh.normal_()
    single = LSTMCell(3, 4, bias="single")
    single.load_state_dict({"weight_ih": double.weight_ih, "weight_hh": double.weight_hh,
                            "bias_ih": double.bias_ih + double.bias_hh})
    assert single.bias_hh is None
    x = torch.randn(2, 3)
    for a, b in zip(single(x), double(x)):
        torch.testing.assert_close(a, b)


def test_forget_bias_and_zero_biases():
    cell = LSTMCell(3, 4, forget_bias=1.0)
    b = cell.bias()
    assert torch.equal(b[4:8], torch.ones(4))
    assert torch.equal(torch.cat([b[:4], b[8:]]), torch.zeros(12))
    assert torch.equal(RNNCell(3, 4).bias(), torch.zeros(4))


def test_inits_per_gate_block():
    torch.manual_seed(6)
    H, I = 64, 32
    xavier = LSTMCell(I, H)
    bound_ih, bound_hh = math.sqrt(6 / (H + I)), math.sqrt(6 / (2 * H))
    assert xavier.weight_ih.abs().max() <= bound_ih and xavier.weight_ih.abs().max() > 0.9 * bound_ih
    assert xavier.weight_hh.abs().max() <= bound_hh and xavier.weight_hh.abs().max() > 0.9 * bound_hh
    ortho = LSTMCell(I, H, init="orthogonal")
    for block in ortho.weight_hh.detach().chunk(4):
        torch.testing.assert_close(block @ block.t(), torch.eye(H), atol=1e-5, rtol=0)
    kaiming = RNNCell(I, 512, init="kaiming_normal")
    std = kaiming.weight_hh.detach().std().item()
    assert abs(std - math.sqrt(2 / 512)) < 0.05 * math.sqrt(2 / 512)
    assert abs(kaiming.weight_ih.detach().std().item() - math.sqrt(2 / I)) < 0.05 * math.sqrt(2 / I)


@pytest.mark.parametrize("make, match", [
    (lambda: LSTMCell(3, 4, init="he"), "init"),
    (lambda: RNN(3, 4, init="glorot"), "init"),
    (lambda: LSTMCell(3, 4, bias="triple"), "bias"),
    (lambda: RNNCell(0, 4), "input_size"),
    (lambda: LSTM(3, -1), "hidden_size"),
    (lambda: LSTMCell(3, 4, forget_bias=float("nan")), "forget_bias"),
    (lambda: lstm_num_parameters(0, 3), "d"),
])
def test_bad_construction_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("call, match", [
    (lambda: RNNCell(3, 4)(torch.randn(2, 5)), "x: expected shape"),
    (lambda: RNNCell(3, 4)(torch.randn(2, 3, 1)), "x: expected shape"),
    (lambda: LSTMCell(3, 4)(torch.randint(0, 9, (2, 3))), "x: expected a floating-point"),
    (lambda: LSTMCell(3, 4)(torch.randn(2, 3, dtype=F64)), "x: dtype"),
    (lambda: LSTMCell(3, 4)(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(3, 4))), "c: expected shape"),
    (lambda: RNNCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 5)), "h: expected shape"),
    (lambda: LSTM(3, 4)(torch.randn(2, 3)), "x: expected shape"),
    (lambda: LSTM(3, 4)(torch.randn(2, 0, 3)), "x: expected shape"),
    (lambda: RNN(3, 4)(torch.randint(0, 9, (2, 5, 3))), "x: expected a floating-point"),
    (lambda: RNN(3, 4)(torch.randn(2, 5, 3), torch.zeros(2, 3)), "h0: expected shape"),
    (lambda: LSTM(3, 4)(torch.randn(2, 5, 3), torch.zeros(2, 4)), "state: expected a pair"),
])
def test_bad_input_raises_value_error_naming_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("cls, states", [(RNN, 1), (LSTM, 2)])
@pytest.mark.parametrize("fused", [False, True])
def test_a_sequence_is_checked_once_not_at_every_step(cls, states, fused, monkeypatch):
    import gseq.layers.recurrent as recurrent

    calls = []
    for name in ("_check_step_input", "_check_state"):
        check = getattr(recurrent, name)
        monkeypatch.setattr(recurrent, name, lambda *a, _check=check, _name=name: (calls.append(_name), _check(*a)))
    model = cls(3, 4, fused=fused)
    state = torch.zeros(2, 4) if states == 1 else (torch.zeros(2, 4), torch.zeros(2, 4))
    out, _ = model(torch.randn(2, 7, 3), state)
    assert out.shape == (2, 7, 4)
    assert sorted(calls) == ["_check_state"] * states + ["_check_step_input"]
    # one step of a cell still checks its input
    calls.clear()
    model.cell(torch.randn(2, 3), state)
    assert sorted(calls) == ["_check_state"] * states + ["_check_step_input"]
