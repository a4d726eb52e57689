"""RNN/LSTM/GRU cells and sequence wrappers against torch.nn's, weights copied 1:1.

The wrappers have two implementations, ``impl="naive"`` (the step loop autograd records) and
``impl="fused"`` (the same loop with a hand-written backward pass, ``rnn_fast.py``); every
parity test runs both."""
from __future__ import annotations

import importlib
import json

import pytest
import torch

from course_lib.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from course_lib.nn.rnn import IMPLS
from course_lib.nn.rnn_fast import CELLS as FUSED_CELLS
from course_lib.nn.rnn_fast import unroll_fused
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


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_wrapper_matches_torch_forward_and_gradients(device, dtype, num_layers, with_state, kind, impl):
    _skip_unsupported(device, dtype)
    ours_cls, torch_cls = WRAPPERS[kind]
    theirs = torch_cls(IN, HID, num_layers=num_layers, batch_first=True).to(device, dtype)
    ours = ours_cls(IN, HID, num_layers=num_layers, batch_first=True, impl=impl).to(device, dtype)
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
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_matches_cudnn_within_its_precision(kind, impl):
    ours_cls, torch_cls = WRAPPERS[kind]
    theirs = torch_cls(IN, HID, num_layers=2, batch_first=True).cuda()
    ours = ours_cls(IN, HID, num_layers=2, batch_first=True, impl=impl).cuda()
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


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_time_major_layout_matches_torch(device, kind, impl):
    ours_cls, torch_cls = WRAPPERS[kind]
    theirs = torch_cls(IN, HID, num_layers=2, batch_first=False).to(device)
    ours = ours_cls(IN, HID, num_layers=2, batch_first=False, impl=impl).to(device)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(T, B, IN, device=device)  # t b i
    out, final = ours(x)
    out_ref, final_ref = theirs(x)
    _assert_all_close([out, *_flatten(final)], [out_ref, *_flatten(final_ref)], torch.float32, "time-major")


@pytest.mark.parametrize("impl", IMPLS)
def test_relu_rnn_matches_torch_forward_and_gradients(device, impl):
    theirs = torch.nn.RNN(IN, HID, num_layers=2, nonlinearity="relu", batch_first=True).to(device)
    ours = RNN(IN, HID, num_layers=2, nonlinearity="relu", impl=impl).to(device)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, T, IN, device=device)
    state = [torch.randn(2, B, HID, device=device)]
    upstream = torch.randn(B, T, HID, device=device), [torch.randn(2, B, HID, device=device)]
    outs, grads = _run(ours, x, state, *upstream)
    outs_ref, grads_ref = _run(theirs, x, state, *upstream)
    _assert_all_close(outs, outs_ref, torch.float32, "relu rnn")
    _assert_all_close(list(grads.values()), list(grads_ref.values()), torch.float32, "relu rnn gradients")


@pytest.mark.parametrize("kind", list(WRAPPERS))
def test_fused_equals_naive_on_a_longer_sequence(device, kind):
    """Many steps, a wider state and every gradient: the hand-written backward pass must agree
    with autograd's through the step loop to float64 precision."""
    _skip_unsupported(device, torch.float64)
    naive = WRAPPERS[kind][0](5, 8, num_layers=2, impl="naive").to(device, torch.float64)
    fused = WRAPPERS[kind][0](5, 8, num_layers=2, impl="fused").to(device, torch.float64)
    fused.load_state_dict(naive.state_dict())
    x = torch.randn(3, 40, 5, device=device, dtype=torch.float64)
    n_states = 2 if kind == "lstm" else 1
    state = [torch.randn(2, 3, 8, device=device, dtype=torch.float64) for _ in range(n_states)]
    upstream_out = torch.randn(3, 40, 8, device=device, dtype=torch.float64)
    upstream_state = [torch.randn_like(s) for s in state]
    outs, grads = _run(fused, x, state, upstream_out, upstream_state)
    outs_ref, grads_ref = _run(naive, x, state, upstream_out, upstream_state)
    _assert_all_close(outs, outs_ref, torch.float64, "fused vs naive outputs")
    for name in grads_ref:
        torch.testing.assert_close(grads[name], grads_ref[name], **tolerance(torch.float64),
                                   msg=lambda m: f"gradient of {name}, fused vs naive: {m}")


@pytest.mark.parametrize("cell", FUSED_CELLS)
def test_fused_layer_passes_gradcheck(cell):
    """Finite differences against the hand-written backward, for every input of one layer,
    including the initial state and gradients arriving through the final state."""
    k = {"lstm": 4, "gru": 3}.get(cell, 1)
    t, b, i, hdim = 4, 2, 5, 3
    double = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(t, b, i, **double)
    state = tuple(torch.randn(b, hdim, **double) for _ in range(2 if cell == "lstm" else 1))
    weight_ih, weight_hh = torch.randn(k * hdim, i, **double), torch.randn(k * hdim, hdim, **double)
    bias_ih, bias_hh = torch.randn(k * hdim, **double), torch.randn(k * hdim, **double)
    if cell == "rnn_relu":  # keep pre-activations away from relu's kink, where differences lie
        x, weight_ih, weight_hh = (w.detach().abs().requires_grad_() for w in (x, weight_ih, weight_hh))
        bias_ih = (bias_ih.detach().abs() + 1).requires_grad_()

    def layer(x, weight_ih, weight_hh, bias_ih, bias_hh, *state):
        outputs, final = unroll_fused(cell, x, state, weight_ih, weight_hh, bias_ih, bias_hh)
        return (outputs, *final)

    assert torch.autograd.gradcheck(layer, (x, weight_ih, weight_hh, bias_ih, bias_hh, *state))


def test_fused_path_refuses_a_second_derivative():
    """The hand-written backward is not itself differentiable: a clear error, not a wrong number."""
    x = torch.randn(B, T, IN, requires_grad=True)
    out, _ = LSTM(IN, HID, impl="naive")(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    assert torch.autograd.grad(grad.sum(), x)[0].abs().sum() > 0
    for kind in WRAPPERS:
        out, _ = WRAPPERS[kind][0](IN, HID)(x)
        with pytest.raises(RuntimeError, match="no second derivative.*impl='naive'"):
            torch.autograd.grad(out.sum(), x, create_graph=True)


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


@pytest.mark.parametrize("impl", IMPLS)
def test_unrolled_cell_equals_one_layer_wrapper(device, impl):
    """The wrapper is the cell applied step by step: same weights, same states."""
    cell = LSTMCell(IN, HID).to(device)
    lstm = LSTM(IN, HID, impl=impl).to(device)
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
    with pytest.raises(ValueError, match=r"impl must be one of \('naive', 'fused'\), got 'fast'"):
        GRU(IN, HID, impl="fast")
    with pytest.raises(ValueError, match="impl must be one of"):
        RNN(IN, HID, impl="cudnn")
    with pytest.raises(ValueError, match="cell must be one of"):
        weights = torch.randn(HID, IN), torch.randn(HID, HID), torch.zeros(HID), torch.zeros(HID)
        unroll_fused("elman", torch.randn(T, B, IN), (torch.zeros(B, HID),), *weights)


def _load_benchmark(name: str):
    return importlib.import_module(f"benchmarks.bench_{name}")


def test_gpu_benchmark_runs_at_smoke_sizes_and_skips_without_cuda(tmp_path):
    """The LSTM-vs-Transformer benchmark is meant for an H200; --smoke runs its code path at tiny
    sizes on any device, so that the GPU run is not the first time the code executes."""
    bench = _load_benchmark("rnn_vs_transformer")
    path = bench.main(["--smoke", "--device", "cpu", "--out", str(tmp_path)])
    result = json.loads(path.read_text())
    assert [r["T"] for r in result["rows"]] == bench.SMOKE["lengths"]
    for row in result["rows"]:
        assert row["batch"] * row["T"] == bench.SMOKE["tokens"]
        assert row["cuDNN LSTM tok/s"] > 0 and row["Transformer layer tok/s"] > 0
    lstm, block = result["parameters"]["cuDNN LSTM"], result["parameters"]["Transformer layer"]
    assert abs(lstm / block - 1) < 0.05, f"parameter counts should match: LSTM {lstm}, Transformer {block}"
    assert path.with_suffix(".md").exists() and path.with_suffix(".png").exists()
    if not torch.cuda.is_available():
        assert "CUDA" in bench.run(device=torch.device("cpu"))["skipped"]
