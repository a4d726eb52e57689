"""LayerNorm and RMSNorm against torch.nn.LayerNorm / torch.nn.RMSNorm, weights copied across."""
from __future__ import annotations

import pytest
import torch

from course_lib.nn import LayerNorm, RMSNorm
from tests.conftest import tolerance

DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def _skip_unsupported(device: torch.device, dtype: torch.dtype) -> None:
    if device.type == "mps" and dtype == torch.float64:
        pytest.skip("MPS has no float64")


def _randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))


def _forward_backward(module, x, upstream):
    x = x.clone().requires_grad_(True)
    out = module(x)
    out.backward(upstream)
    grads = {name: p.grad for name, p in module.named_parameters()}
    return out, x.grad, grads


def _assert_parity(ours, theirs, x, dtype):
    upstream = torch.randn_like(x)
    out, gx, grads = _forward_backward(ours, x, upstream)
    ref, gx_ref, grads_ref = _forward_backward(theirs, x, upstream)
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref, **tolerance(dtype))
    torch.testing.assert_close(gx, gx_ref, **tolerance(dtype))
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        # Parameter gradients sum over every token: allow for the longer accumulation in bf16.
        tol = tolerance(dtype) if dtype != torch.bfloat16 else dict(atol=0.1, rtol=0.05)
        torch.testing.assert_close(grads[name], grads_ref[name], **tol, msg=lambda m: f"grad of {name}: {m}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(device, dtype, bias):
    _skip_unsupported(device, dtype)
    theirs = torch.nn.LayerNorm(16, eps=1e-5, bias=bias).to(device, dtype)
    _randomise(theirs)
    ours = LayerNorm(16, eps=1e-5, bias=bias).to(device, dtype)
    ours.load_state_dict(theirs.state_dict())  # same names and shapes
    x = (torch.randn(2, 5, 16) * 3 + 1).to(device, dtype)
    _assert_parity(ours, theirs, x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_matches_torch(device, dtype):
    _skip_unsupported(device, dtype)
    theirs = torch.nn.RMSNorm(16, eps=1e-6).to(device, dtype)
    _randomise(theirs)
    ours = RMSNorm(16, eps=1e-6).to(device, dtype)
    ours.load_state_dict(theirs.state_dict())
    x = (torch.randn(2, 5, 16) * 3).to(device, dtype)
    _assert_parity(ours, theirs, x, dtype)


@pytest.mark.parametrize("norm_cls", [LayerNorm, RMSNorm])
def test_bf16_input_is_normalised_in_float32_and_rounded_once(device, norm_cls):
    # A large common offset: a bf16 mean/variance would cancel catastrophically.
    x = (1000 + torch.randn(3, 64)).to(device, torch.bfloat16)
    norm = norm_cls(64).to(device)
    _randomise(norm)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, norm(x.float()).to(torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layernorm_output_has_zero_mean_unit_variance(device, dtype):
    _skip_unsupported(device, dtype)
    out = LayerNorm(32).to(device, dtype)(torch.randn(4, 32, dtype=dtype, device=device) * 7 - 2)
    torch.testing.assert_close(out.mean(-1), torch.zeros(4, dtype=dtype, device=device), **tolerance(dtype))
    # 1 / (1 + eps / var) from the eps inside the square root; var ~ 49 here.
    var = out.var(-1, unbiased=False)
    torch.testing.assert_close(var, torch.ones_like(var), atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm_cls", [LayerNorm, RMSNorm])
def test_wrong_last_dim_names_argument_and_shape(device, norm_cls):
    norm = norm_cls(8).to(device)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 8\), got \(2, 3, 7\)"):
        norm(torch.randn(2, 3, 7, device=device))
    with pytest.raises(ValueError, match=r"got \(\)"):
        norm(torch.tensor(1.0, device=device))


def test_layernorm_without_bias_has_only_weight():
    assert [name for name, _ in LayerNorm(4, bias=False).named_parameters()] == ["weight"]
    assert [name for name, _ in RMSNorm(4).named_parameters()] == ["weight"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_fused_layernorm_equals_the_written_out_steps(device, dtype, bias):
    _skip_unsupported(device, dtype)
    written = LayerNorm(16, bias=bias, fused=False).to(device)
    _randomise(written)
    fused = LayerNorm(16, bias=bias).to(device)
    fused.load_state_dict(written.state_dict())
    x = (torch.randn(2, 5, 16) * 3 + 1).to(device, dtype)
    _assert_parity(fused, written, x, dtype)
