"""FeedForward against a torch.nn.Sequential of torch layers; SwiGLU against its formula."""
from __future__ import annotations

import pytest
import torch

from course_lib.nn import FeedForward, SwiGLU
from tests.conftest import tolerance

DTYPES = [torch.float32, torch.float64, torch.bfloat16]
TORCH_ACTIVATIONS = {
    "gelu": lambda: torch.nn.GELU(),
    "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"),
    "relu": lambda: torch.nn.ReLU(),
}


def _hf_quick_gelu() -> torch.nn.Module:
    # torch has no quick GELU; Hugging Face's CLIP activation is an independent reference.
    from transformers.activations import QuickGELUActivation

    return QuickGELUActivation()


REFERENCE_ACTIVATIONS = {**TORCH_ACTIVATIONS, "quick_gelu": _hf_quick_gelu}


def _skip_unsupported(device: torch.device, dtype: torch.dtype) -> None:
    if device.type == "mps" and dtype == torch.float64:
        pytest.skip("MPS has no float64")


def _reference_mlp(ffn: FeedForward, activation: str, bias: bool) -> torch.nn.Sequential:
    e, f = ffn.up_proj.in_features, ffn.up_proj.out_features
    ref = torch.nn.Sequential(
        torch.nn.Linear(e, f, bias=bias), REFERENCE_ACTIVATIONS[activation](), torch.nn.Linear(f, e, bias=bias)
    )
    with torch.no_grad():
        ref[0].weight.copy_(ffn.up_proj.weight)
        ref[2].weight.copy_(ffn.down_proj.weight)
        if bias:
            ref[0].bias.copy_(ffn.up_proj.bias)
            ref[2].bias.copy_(ffn.down_proj.bias)
    return ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", list(REFERENCE_ACTIVATIONS))
def test_feed_forward_matches_torch_sequential(device, dtype, bias, activation):
    _skip_unsupported(device, dtype)
    ffn = FeedForward(embed_dim=8, hidden_dim=32, activation=activation, bias=bias).to(device, dtype)
    ref = _reference_mlp(ffn, activation, bias).to(device, dtype)
    x = torch.randn(2, 5, 8, device=device, dtype=dtype)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, out_ref = ffn(x1), ref(x2)
    assert out.dtype == dtype and out.shape == (2, 5, 8)
    torch.testing.assert_close(out, out_ref, **tolerance(dtype))
    upstream = torch.randn_like(out)
    out.backward(upstream)
    out_ref.backward(upstream)
    torch.testing.assert_close(x1.grad, x2.grad, **tolerance(dtype))
    pairs = [(ffn.up_proj.weight, ref[0].weight), (ffn.down_proj.weight, ref[2].weight)]
    if bias:
        pairs += [(ffn.up_proj.bias, ref[0].bias), (ffn.down_proj.bias, ref[2].bias)]
    for ours, theirs in pairs:
        torch.testing.assert_close(ours.grad, theirs.grad, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_matches_formula(device, dtype, bias):
    _skip_unsupported(device, dtype)
    ffn = SwiGLU(embed_dim=8, hidden_dim=24, bias=bias).to(device, dtype)
    x = torch.randn(2, 5, 8, device=device, dtype=dtype, requires_grad=True)
    out = ffn(x)

    def linear(layer, inp):
        return inp @ layer.weight.T + (layer.bias if bias else 0)

    gate = linear(ffn.gate_proj, x)
    expected = linear(ffn.down_proj, gate * torch.sigmoid(gate) * linear(ffn.up_proj, x))  # silu(z) = z sigmoid(z)
    torch.testing.assert_close(out, expected, **tolerance(dtype))
    grads = torch.autograd.grad(out.sum(), [x, ffn.gate_proj.weight])
    grads_ref = torch.autograd.grad(expected.sum(), [x, ffn.gate_proj.weight])
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, **tolerance(dtype))


def test_swiglu_submodules_and_default_has_no_bias():
    ffn = SwiGLU(embed_dim=8, hidden_dim=24)
    assert sorted(name for name, _ in ffn.named_parameters()) == [
        "down_proj.weight", "gate_proj.weight", "up_proj.weight"
    ]
    assert ffn.gate_proj.weight.shape == (24, 8) and ffn.down_proj.weight.shape == (8, 24)


def test_dropout_acts_on_hidden_units(device):
    # With p = 1 every hidden unit is dropped, so only down_proj's bias is left.
    ffn = FeedForward(embed_dim=8, hidden_dim=16, dropout=1.0).to(device).train()
    out = ffn(torch.randn(2, 3, 8, device=device))
    torch.testing.assert_close(out, ffn.down_proj.bias.expand_as(out))
    swiglu = SwiGLU(embed_dim=8, hidden_dim=16, dropout=1.0).to(device).train()
    assert torch.equal(swiglu(torch.randn(2, 3, 8, device=device)), torch.zeros(2, 3, 8, device=device))
    ffn.eval()
    x = torch.randn(2, 3, 8, device=device)
    assert torch.equal(ffn(x), ffn(x))  # no dropout in eval


@pytest.mark.parametrize("make", [lambda: FeedForward(8, 16), lambda: SwiGLU(8, 16)])
def test_wrong_last_dim_names_argument_and_shape(device, make):
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 8\), got \(2, 3, 4\)"):
        make().to(device)(torch.randn(2, 3, 4, device=device))


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(8, 16, activation="swish")
