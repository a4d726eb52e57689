"""``attn_bias`` and ``scale`` in scaled_dot_product_attention, MultiHeadAttention and the block.

An additive float bias (T5's relative positions, ALiBi) must give the same result on the naive
and the fused path, alone or beside a boolean mask and ``is_causal``; a bias of zeros must
change nothing; gradients must reach the bias; a scale override must reach both paths.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.nn import MultiHeadAttention, TransformerBlock
from course_lib.nn.attention import scaled_dot_product_attention
from course_lib.nn.masks import causal_mask, padding_mask_from_lengths
from tests.conftest import tolerance

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Which axes of (b, h, t, s) a bias spans: T5 shares one bias over the batch, a padding-like
# bias is per key, a plain (t, s) table is shared by everything.
BIAS_SHAPES = {
    "full": lambda b, h, t, s: (b, h, t, s),
    "per_head": lambda b, h, t, s: (1, h, t, s),
    "per_key": lambda b, h, t, s: (b, 1, 1, s),
    "table": lambda b, h, t, s: (t, s),
}


def _inputs(b, h, g, t, s, d, seed, device, dtype=torch.float64, bias_shape=None):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, t, d, generator=gen)
    k, v = torch.randn(b, g, s, d, generator=gen), torch.randn(b, g, s, d, generator=gen)
    bias = torch.randn(bias_shape or (b, h, t, s), generator=gen) * 2
    return [x.to(device=device, dtype=dtype).requires_grad_() for x in (q, k, v, bias)]


def _run(impl, q, k, v, bias, **kwargs):
    """Output and the gradients of every input under one fixed upstream gradient."""
    q, k, v, bias = (x.detach().clone().requires_grad_() for x in (q, k, v, bias))
    out = scaled_dot_product_attention(q, k, v, attn_bias=bias, impl=impl, **kwargs)
    grad_out = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view_as(out)
    out.backward(grad_out)
    return out.detach(), q.grad, k.grad, v.grad, bias.grad


def _reference(q, k, v, bias, scale):
    """softmax(q k^T * scale + bias) v, written with nothing but torch ops (one kv head per query head)."""
    return torch.softmax(q @ k.transpose(-2, -1) * scale + bias, dim=-1) @ v


@PROPERTY
@given(b=st.integers(1, 3), gh=st.sampled_from([(1, 1), (2, 2), (4, 2), (4, 1)]), t=st.integers(1, 6),
       s=st.integers(1, 7), shape=st.sampled_from(sorted(BIAS_SHAPES)), with_mask=st.booleans(),
       causal=st.booleans(), seed=st.integers(0, 2**16))
def test_naive_equals_fused_with_a_bias(device, b, gh, t, s, shape, with_mask, causal, seed):
    h, g = gh
    s = max(s, t) if causal else s  # a causal query needs its own position among the keys
    q, k, v, bias = _inputs(b, h, g, t, s, 8, seed, device, bias_shape=BIAS_SHAPES[shape](b, h, t, s))
    mask = None
    if with_mask:  # key padding, one sequence possibly with no visible key at all
        lengths = torch.randint(0, s + 1, (b,), generator=torch.Generator().manual_seed(seed))
        mask = padding_mask_from_lengths(lengths, s).to(device)
    naive = _run("naive", q, k, v, bias, attn_mask=mask, is_causal=causal)
    fused = _run("fused", q, k, v, bias, attn_mask=mask, is_causal=causal)
    for name, a, f in zip(("out", "dq", "dk", "dv", "dbias"), naive, fused):
        assert torch.isfinite(a).all() and torch.isfinite(f).all(), f"{name} has NaN/inf"
        torch.testing.assert_close(a, f, **tolerance(torch.float64), msg=lambda m: f"{name} naive vs fused: {m}")


@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_bias_is_added_to_the_scaled_scores(impl, device):
    q, k, v, bias = _inputs(2, 2, 2, 4, 5, 8, 0, device)
    for scale in (None, 1.0, 0.1):
        expected = _reference(q, k, v, bias, 8 ** -0.5 if scale is None else scale)
        out = scaled_dot_product_attention(q, k, v, attn_bias=bias, scale=scale, impl=impl)
        torch.testing.assert_close(out, expected, **tolerance(torch.float64), msg=lambda m: f"scale={scale}: {m}")


@PROPERTY
@given(b=st.integers(1, 3), t=st.integers(1, 6), s=st.integers(1, 7), shape=st.sampled_from(sorted(BIAS_SHAPES)),
       with_mask=st.booleans(), causal=st.booleans(), impl=st.sampled_from(["naive", "fused"]),
       seed=st.integers(0, 2**16))
def test_a_bias_of_zeros_changes_nothing(device, b, t, s, shape, with_mask, causal, impl, seed):
    s = max(s, t) if causal else s
    q, k, v, _ = _inputs(b, 4, 2, t, s, 8, seed, device)
    zeros = torch.zeros(BIAS_SHAPES[shape](b, 4, t, s), dtype=q.dtype, device=device)
    lengths = torch.randint(0, s + 1, (b,), generator=torch.Generator().manual_seed(seed))
    mask = padding_mask_from_lengths(lengths, s).to(device) if with_mask else None
    with_bias = scaled_dot_product_attention(q, k, v, attn_mask=mask, attn_bias=zeros, is_causal=causal, impl=impl)
    without = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, impl=impl)
    torch.testing.assert_close(with_bias, without, **tolerance(torch.float64))


@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_a_bias_steers_attention(impl, device):
    # A per-query constant cancels in the softmax; a large bias on one key picks that key's value.
    q, k, v, _ = _inputs(1, 2, 2, 3, 4, 8, 2, device)
    plain = scaled_dot_product_attention(q, k, v, impl=impl)
    row_constant = torch.arange(3, dtype=q.dtype, device=device).view(1, 1, 3, 1) * 7.0
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, attn_bias=row_constant, impl=impl), plain,
                               **tolerance(torch.float64))
    pick = torch.zeros(1, 1, 1, 4, dtype=q.dtype, device=device)
    pick[..., 2] = 100.0
    out = scaled_dot_product_attention(q, k, v, attn_bias=pick, impl=impl)
    torch.testing.assert_close(out, v[:, :, 2:3].expand_as(out), atol=1e-8, rtol=0)


@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_gradients_flow_into_the_bias(impl, device):
    q, k, v, bias = _inputs(1, 2, 1, 3, 4, 4, 3, device, bias_shape=(1, 2, 3, 4))
    assert torch.autograd.gradcheck(
        lambda b: scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), attn_bias=b, impl=impl), (bias,)
    )
    out = scaled_dot_product_attention(q, k, v, attn_bias=bias, is_causal=True, impl=impl)
    out.sum().backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0
    # A future key has weight 0 whatever its bias: no gradient reaches that bias entry.
    hidden = ~causal_mask(3, 4, device=device)
    assert torch.equal(bias.grad[..., hidden], torch.zeros_like(bias.grad[..., hidden]))


@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_fully_masked_row_with_a_bias_gives_zeros(impl, device):
    q, k, v, bias = _inputs(2, 2, 2, 4, 5, 8, 4, device)
    mask = torch.ones(2, 1, 4, 5, dtype=torch.bool, device=device)
    mask[0, :, 1] = False
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask, attn_bias=bias, impl=impl)
    assert torch.equal(out[0, :, 1], torch.zeros_like(out[0, :, 1])), "a query with no visible key must output 0"
    out.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v, bias)), "gradients must stay finite"
    assert torch.equal(bias.grad[0, :, 1], torch.zeros_like(bias.grad[0, :, 1]))


def test_bias_in_low_precision_matches_float32(device):
    q, k, v, bias = _inputs(2, 2, 2, 6, 6, 8, 5, device, dtype=torch.float32)
    reference = scaled_dot_product_attention(q, k, v, attn_bias=bias, is_causal=True, impl="naive")
    for impl in ("naive", "fused"):
        low = scaled_dot_product_attention(*(x.bfloat16() for x in (q, k, v)), attn_bias=bias, is_causal=True,
                                           impl=impl)
        assert low.dtype == torch.bfloat16
        torch.testing.assert_close(low.float(), reference, atol=5e-2, rtol=5e-2)


def test_attn_bias_bad_input():
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    with pytest.raises(ValueError, match=r"attn_bias must be a float tensor.*int64"):
        scaled_dot_product_attention(q, k, v, attn_bias=torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attn_bias must be a float.*bool.*attn_mask"):
        scaled_dot_product_attention(q, k, v, attn_bias=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attn_bias of shape \(4, 5\) does not broadcast to \(b, h, t, s\) = \(2, 4, 3, 5\)"):
        scaled_dot_product_attention(q, k, v, attn_bias=torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"attn_bias of shape \(2, 2, 4, 3, 5\)"):
        scaled_dot_product_attention(q, k, v, attn_bias=torch.zeros(2, 2, 4, 3, 5))  # broadcasts to a bigger shape
    with pytest.raises(ValueError, match=r"attn_mask must be boolean.*attn_bias"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.zeros(3, 5))


# ---------------------------------------------------------------- MultiHeadAttention and blocks


def _manual_mha(mha, x, bias, scale):
    heads = lambda y: y.unflatten(-1, (mha.num_heads, -1)).transpose(1, 2)  # b t (h d) -> b h t d
    out = _reference(heads(mha.q_proj(x)), heads(mha.k_proj(x)), heads(mha.v_proj(x)), bias, scale)
    return mha.out_proj(out.transpose(1, 2).flatten(-2))


@pytest.mark.parametrize("impl", ["naive", "fused"])
@pytest.mark.parametrize("scale", [None, 1.0])
def test_multi_head_attention_takes_a_bias_and_honours_scale(impl, scale, device):
    mha = MultiHeadAttention(embed_dim=16, num_heads=4, impl=impl, scale=scale).to(device).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64, device=device)
    bias = torch.randn(1, 4, 5, 5, dtype=torch.float64, device=device)
    expected = _manual_mha(mha, x, bias, 4 ** -0.5 if scale is None else scale)
    torch.testing.assert_close(mha(x, attn_bias=bias), expected, **tolerance(torch.float64))
    if scale is not None:  # the override really changes the result
        default = MultiHeadAttention(embed_dim=16, num_heads=4, impl=impl).to(device).double()
        default.load_state_dict(mha.state_dict())
        assert not torch.allclose(default(x, attn_bias=bias), expected)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_passes_the_bias_to_self_attention(norm_first, device):
    block = TransformerBlock(embed_dim=16, num_heads=4, hidden_dim=32, norm_first=norm_first, causal=True,
                             cross_attention=True).to(device).double().eval()
    x = torch.randn(2, 5, 16, dtype=torch.float64, device=device)
    context = torch.randn(2, 3, 16, dtype=torch.float64, device=device)
    bias = torch.randn(1, 4, 5, 5, dtype=torch.float64, device=device)
    out, weights = block(x, attn_bias=bias, context=context, need_weights=True)
    h = block.self_attn_norm(x) if norm_first else x
    _, expected = block.self_attn(h, attn_bias=bias, is_causal=True, need_weights=True)
    torch.testing.assert_close(weights["self_attn"], expected, **tolerance(torch.float64))
    assert not torch.allclose(block(x, context=context), out), "the bias must change the block's output"
    torch.testing.assert_close(block(x, attn_bias=torch.zeros_like(bias), context=context), block(x, context=context),
                               **tolerance(torch.float64))
