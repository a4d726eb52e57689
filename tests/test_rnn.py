"""RNN/LSTM/GRU cells and sequence wrappers against torch.nn's, weights copied 1:1."""
from __future__ import annotations

import pytest
import torch

from course_lib.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from tests.conftest import tolerance

DTYPES = [torch.float32, torch.float64]
WRAPPERS = {"rnn": (RNN, torch.nn.RNN), "lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU)}
CELLS = {"rnn": (RNNCell, torch.nn.RNNCell), "lstm": (LSTMCell, torch.nn.LSTMCell), "gru": (GRUCell, torch.nn.GRUCell)}
B, T, IN, HID = 2, 5, 3, 4


@pytest.fixture(autouse=True)
def _reference_without_cudnn():
    """On CUDA, torch.nn.RNN/LSTM/GRU run cuDNN's fused kernels, which sum in another order
    (and may use TF32): ~5e-6 from plain float32 matmuls on an H200, 2e-4 with TF32. The
    parity tests check the arithmetic against torch's own non-cuDNN kernels;
    ``test_matches_cudnn_within_its_precision`` covers the cuDNN path."""
    with torch.backends.cudnn.flags(enabled=False):
        yield


def _skip_unsupported(device: torch.device, dtype: torch.dtype) -> None:
    if device.type == "mps" and dtype == torch.float64:
        pytest.skip("MPS has no float64")


def _flatten(state):
    return list(state) if isinstance(state, tuple) else [state]


def _run(module, x, state, upstream_out, upstream_state):
    """Forward, then backward of a random linear function of every output."""
    x = x.clone().requires_grad_(True)
    state = None if state is None else [s.clone().requires_grad_(True) for s in state]
    given = None if state is None else (tuple(state) if len(state) == 2 else state[0])
    out, final = module(x, given)
    final = _flatten(final)
    loss = (out * upstream_out).sum() + sum((f * u).sum() for f, u in zip(final, upstream_state))
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    grads["input x"] = x.grad
    for i, s in enumerate(state or []):
        grads[f"initial state {i}"] = s.grad
    return [out, *final], grads


def _assert_all_close(ours, theirs, dtype, what):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(a, b, **tolerance(dtype), msg=lambda m: f"{what}[{i}]: {m}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_wrapper_matches_torch_forward_and_gradients(device, dtype, num_layers, with_state, kind):
    _skip_unsupported(device, dtype)
    ours_cls, torch_cls = WRAPPERS[kind]
    theirs = torch_cls(IN, HID, num_layers=num_layers, batch_first=True).to(device, dtype)
    ours = ours_cls(IN, HID, num_layers=num_layers, batch_first=True).to(device, dtype)
    ours.load_state_dict(theirs.state_dict())  # identical names and layout: strict load succeeds

    x = torch.randn(B, T, IN, device=device, dtype=dtype)
    n_states = 2 if kind == "lstm" else 1
    state = [torch.randn(num_layers, B, HID, device=device, dtype=dtype) for _ in range(n_states)]
    state = state if with_state else None
    upstream_out = torch.randn(B, T, HID, device=device, dtype=dtype)
    upstream_state = [torch.randn(num_layers, B, HID, device=device, dtype=dtype) for _ in range(n_states)]

    outs, grads = _run(ours, x, state, upstream_out, upstream_state)
    outs_ref, grads_ref = _run(theirs, x, state, upstream_out, upstream_state)
    _assert_all_close(outs, outs_ref, dtype, "outputs/final state")
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], **tolerance(dtype),
                                   msg=lambda m: f"gradient of {name}: {m}")


@pytest.mark.gpu
@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_matches_cudnn_within_its_precision(kind):
    ours_cls, torch_cls = WRAPPERS[kind]
    theirs = torch_cls(IN, HID, num_layers=2, batch_first=True).cuda()
    ours = ours_cls(IN, HID, num_layers=2, batch_first=True).cuda()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, T, IN, device="cuda")
    upstream = torch.randn(B, T, HID, device="cuda")
    tol = dict(atol=1e-4, rtol=1e-3)  # measured: 8e-6 on outputs, 4e-5 on gradients (H200)
    cudnn = torch.backends.cudnn
    previous = cudnn.enabled, cudnn.allow_tf32
    cudnn.enabled, cudnn.allow_tf32 = True, False  # TF32 alone would add ~2e-4
    try:
        theirs.flatten_parameters()  # .cuda() ran with cuDNN off (fixture): pack the weights now
        results = []
        for module in (ours, theirs):
            out, _ = module(x)
            grads = torch.autograd.grad((out * upstream).sum(), list(module.parameters()))
            results.append([out, *grads])
    finally:
        cudnn.enabled, cudnn.allow_tf32 = previous
    for i, (a, b) in enumerate(zip(*results)):
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"output/gradient {i} vs cuDNN: {m}")


@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_time_major_layout_matches_torch(device, kind):
    ours_cls, torch_cls = WRAPPERS[kind]
    theirs = torch_cls(IN, HID, num_layers=2, batch_first=False).to(device)
    ours = ours_cls(IN, HID, num_layers=2, batch_first=False).to(device)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(T, B, IN, device=device)  # t b i
    out, final = ours(x)
    out_ref, final_ref = theirs(x)
    _assert_all_close([out, *_flatten(final)], [out_ref, *_flatten(final_ref)], torch.float32, "time-major")


def test_relu_rnn_matches_torch(device):
    theirs = torch.nn.RNN(IN, HID, num_layers=2, nonlinearity="relu", batch_first=True).to(device)
    ours = RNN(IN, HID, num_layers=2, nonlinearity="relu").to(device)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, T, IN, device=device)
    _assert_all_close(list(ours(x)), list(theirs(x)), torch.float32, "relu rnn")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_matches_torch_forward_and_gradients(device, dtype, kind):
    _skip_unsupported(device, dtype)
    ours_cls, torch_cls = CELLS[kind]
    theirs = torch_cls(IN, HID).to(device, dtype)
    ours = ours_cls(IN, HID).to(device, dtype)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, IN, device=device, dtype=dtype, requires_grad=True)
    h = torch.randn(B, HID, device=device, dtype=dtype)
    state = (h, torch.randn_like(h)) if kind == "lstm" else h

    out, out_ref = _flatten(ours(x, state)), _flatten(theirs(x, state))
    _assert_all_close(out, out_ref, dtype, "cell output")
    upstream = [torch.randn_like(o) for o in out]
    grads = torch.autograd.grad(out, [x, *ours.parameters()], upstream)
    grads_ref = torch.autograd.grad(out_ref, [x, *theirs.parameters()], upstream)
    _assert_all_close(grads, grads_ref, dtype, "cell gradients (x, weight_ih, weight_hh, bias_ih, bias_hh)")
    # No state given: both start from zeros.
    _assert_all_close(_flatten(ours(x)), _flatten(theirs(x)), dtype, "cell output from zero state")


def test_relu_cell_matches_torch(device):
    theirs = torch.nn.RNNCell(IN, HID, nonlinearity="relu").to(device)
    ours = RNNCell(IN, HID, nonlinearity="relu").to(device)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, IN, device=device)
    torch.testing.assert_close(ours(x), theirs(x), **tolerance(torch.float32))


def test_unrolled_cell_equals_one_layer_wrapper(device):
    """The wrapper is the cell applied step by step: same weights, same states."""
    cell = LSTMCell(IN, HID).to(device)
    lstm = LSTM(IN, HID).to(device)
    lstm.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(B, T, IN, device=device)
    state, outs = None, []
    for step in range(T):
        state = cell(x[:, step], state)
        outs.append(state[0])
    out, (h, c) = lstm(x)
    torch.testing.assert_close(out, torch.stack(outs, dim=1), **tolerance(torch.float32))
    torch.testing.assert_close(h[0], state[0], **tolerance(torch.float32))
    torch.testing.assert_close(c[0], state[1], **tolerance(torch.float32))


def test_dropout_only_between_layers_and_only_in_training(device):
    x = torch.randn(B, T, IN, device=device)
    one_layer = GRU(IN, HID, num_layers=1, dropout=0.5).to(device).train()
    assert torch.equal(one_layer(x)[0], one_layer.eval()(x)[0])  # no dropout after the last layer
    two_layers = GRU(IN, HID, num_layers=2, dropout=0.5).to(device)
    train_out = two_layers.train()(x)[0]
    eval_out = two_layers.eval()(x)[0]
    assert not torch.allclose(train_out, eval_out)
    assert torch.equal(eval_out, two_layers(x)[0])  # eval is deterministic


@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_bad_input_names_argument_and_shapes(device, kind):
    module = WRAPPERS[kind][0](IN, HID, num_layers=2).to(device)
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, 3\).*got \(2, 3\)"):
        module(torch.randn(2, IN, device=device))
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, 3\).*got \(2, 5, 4\)"):
        module(torch.randn(B, T, IN + 1, device=device))
    bad = torch.randn(1, B, HID, device=device)  # one layer's state for a two-layer stack
    state = (bad, bad) if kind == "lstm" else bad
    with pytest.raises(ValueError, match=r"state.* must have shape \(2, 2, 4\), got \(1, 2, 4\)"):
        module(torch.randn(B, T, IN, device=device), state)


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_bad_input_names_argument_and_shapes(device, kind):
    cell = CELLS[kind][0](IN, HID).to(device)
    with pytest.raises(ValueError, match=r"x must have shape \(b, 3\), got \(2, 5, 3\)"):
        cell(torch.randn(B, T, IN, device=device))
    h = torch.randn(B, HID + 1, device=device)
    with pytest.raises(ValueError, match=r"state.* must have shape \(2, 4\), got \(2, 5\)"):
        cell(torch.randn(B, IN, device=device), (h, h) if kind == "lstm" else h)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(IN, HID, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(IN, HID, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="num_layers"):
        LSTM(IN, HID, num_layers=0)
