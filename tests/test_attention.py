"""scaled_dot_product_attention and the boolean masks it takes.

The naive path is checked against the fused path (PyTorch's own SDPA kernels) in value and
gradient, for every masking situation the course uses; the masks against small cases
worked out by hand; and two properties (causality, zero weight on padding) with hypothesis.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.nn.attention import fused_attention, naive_attention, scaled_dot_product_attention
from course_lib.nn.masks import (
    causal_mask,
    causal_padding_mask,
    combine_masks,
    padding_mask_from_ids,
    padding_mask_from_lengths,
)
from tests.conftest import tolerance

PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def supports(dtype: torch.dtype, device: torch.device) -> bool:
    if dtype == torch.float64 and device.type == "mps":
        return False
    if dtype == torch.bfloat16 and device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return True


def qkv(b, h, g, t, s, d, dtype, device, dv=None):
    gen = torch.Generator().manual_seed(1234)
    q = torch.randn(b, h, t, d, generator=gen)
    k = torch.randn(b, g, s, d, generator=gen)
    v = torch.randn(b, g, s, dv or d, generator=gen)
    return [x.to(device=device, dtype=dtype).requires_grad_() for x in (q, k, v)]


def _row_fully_masked(b, t, s):
    mask = torch.ones(b, 1, t, s, dtype=torch.bool)
    mask[0, :, 1, :] = False  # query 1 of sequence 0 may see nothing
    return mask


# name: (b, h, g, t, s, d, mask builder (b, t, s) -> mask or None, is_causal)
CASES = {
    "no_mask": (2, 2, 2, 5, 5, 8, lambda b, t, s: None, False),
    "causal": (2, 2, 2, 6, 6, 8, lambda b, t, s: None, True),
    "causal_decode": (2, 2, 2, 2, 7, 8, lambda b, t, s: None, True),  # bottom-right aligned
    "padding": (3, 2, 2, 5, 5, 8, lambda b, t, s: padding_mask_from_lengths(torch.tensor([5, 3, 1]), s), False),
    "causal_padding": (2, 2, 2, 6, 6, 8, lambda b, t, s: padding_mask_from_lengths(torch.tensor([6, 4]), s), True),
    "cross_lengths": (2, 2, 2, 3, 7, 8, lambda b, t, s: padding_mask_from_lengths(torch.tensor([7, 2]), s), False),
    "gqa": (2, 4, 2, 5, 5, 8, lambda b, t, s: padding_mask_from_lengths(torch.tensor([5, 3]), s), True),
    "mqa": (2, 4, 1, 4, 6, 8, lambda b, t, s: padding_mask_from_lengths(torch.tensor([6, 2]), s), False),
    "fully_masked_row": (2, 2, 2, 4, 5, 8, _row_fully_masked, False),
    "empty_sequence": (2, 2, 1, 4, 4, 8, lambda b, t, s: padding_mask_from_lengths(torch.tensor([0, 4]), s), True),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_naive_matches_fused_forward_and_backward(case, dtype, device):
    if not supports(dtype, device):
        pytest.skip(f"{dtype} is not supported on {device}")
    b, h, g, t, s, d, build_mask, is_causal = CASES[case]
    mask = build_mask(b, t, s)
    mask = None if mask is None else mask.to(device)
    grad_out = torch.randn(b, h, t, d, generator=torch.Generator().manual_seed(7)).to(device, dtype)
    results = {}
    for impl in ("naive", "fused"):
        q, k, v = qkv(b, h, g, t, s, d, dtype, device)
        out = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, impl=impl)
        out.backward(grad_out)
        results[impl] = (out.detach(), q.grad, k.grad, v.grad)
    for name, a, f in zip(("out", "dq", "dk", "dv"), results["naive"], results["fused"]):
        assert torch.isfinite(a).all() and torch.isfinite(f).all(), f"{name} has NaN/inf ({case}, {dtype})"
        torch.testing.assert_close(a, f, **tolerance(dtype), msg=lambda m: f"{name} ({case}, {dtype}): {m}")


@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_fully_masked_query_gives_zeros_not_nan(impl, device):
    q, k, v = qkv(2, 2, 2, 4, 5, 8, torch.float32, device)
    mask = _row_fully_masked(2, 4, 5).to(device)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask, impl=impl)
    assert torch.equal(out[0, :, 1], torch.zeros_like(out[0, :, 1])), "a query with no visible key must output 0"
    assert out[0, :, 0].abs().sum() > 0 and out[1].abs().sum() > 0, "the other rows must be left alone"
    out.sum().backward()
    for name, x in (("q", q), ("k", k), ("v", v)):
        assert torch.isfinite(x.grad).all(), f"the gradient of {name} has NaN/inf"
    assert torch.equal(q.grad[0, :, 1], torch.zeros_like(q.grad[0, :, 1])), "a fully masked query gets no gradient"


def test_need_weights_uses_naive_path_and_rows_sum_to_one(device):
    q, k, v = qkv(2, 4, 2, 5, 5, 8, torch.float64, device)
    mask = padding_mask_from_lengths(torch.tensor([5, 3]), 5).to(device)
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True, impl="fused",
                                                need_weights=True)
    assert weights.shape == (2, 4, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5, dtype=torch.float64, device=device))
    # The weights really are the ones the output was made of: out = weights @ v (per kv group).
    torch.testing.assert_close(out, weights @ v.repeat_interleave(2, dim=1), **tolerance(torch.float64))
    torch.testing.assert_close(
        out, scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True, impl="fused"),
        **tolerance(torch.float64),
    )


def test_is_causal_equals_explicit_causal_mask(device):
    for t, s in ((5, 5), (2, 6), (1, 4)):
        q, k, v = qkv(1, 2, 2, t, s, 8, torch.float64, device)
        implicit = scaled_dot_product_attention(q, k, v, is_causal=True)
        explicit = scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(t, s, device=device))
        torch.testing.assert_close(implicit, explicit, **tolerance(torch.float64))
    # One query after four cached keys (decoding): it is the newest position and sees them all.
    q, k, v = qkv(1, 2, 2, 1, 4, 8, torch.float64, device)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
                               scaled_dot_product_attention(q, k, v), **tolerance(torch.float64))


def test_value_dim_may_differ_from_key_dim(device):
    q, k, v = qkv(2, 2, 2, 3, 4, 8, torch.float64, device, dv=5)
    naive = scaled_dot_product_attention(q, k, v, impl="naive")
    assert naive.shape == (2, 2, 3, 5)
    torch.testing.assert_close(naive, scaled_dot_product_attention(q, k, v, impl="fused"), **tolerance(torch.float64))


def test_helpers_are_the_two_paths(device):
    q, k, v = qkv(1, 2, 1, 3, 3, 4, torch.float64, device)
    out, w = naive_attention(q, k, v, causal_mask(3, device=device))
    torch.testing.assert_close(out, fused_attention(q, k, v, is_causal=True), **tolerance(torch.float64))
    assert torch.equal(w[..., 0, 1:], torch.zeros_like(w[..., 0, 1:]))


# ---------------------------------------------------------------- properties


@PROPERTY
@given(t=st.integers(2, 7), i=st.integers(0, 6), g=st.sampled_from([1, 2]),
       impl=st.sampled_from(["naive", "fused"]), seed=st.integers(0, 2**16))
def test_causal_output_ignores_the_future(device, t, i, g, impl, seed):
    i = i % t
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 2, t, 4, generator=gen).to(device) for _ in range(3))
    k, v = k[:, :g], v[:, :g]
    before = scaled_dot_product_attention(q, k, v, is_causal=True, impl=impl)
    k2, v2, q2 = k.clone(), v.clone(), q.clone()
    k2[:, :, i + 1:] = torch.randn_like(k2[:, :, i + 1:]) * 5
    v2[:, :, i + 1:] = torch.randn_like(v2[:, :, i + 1:]) * 5
    q2[:, :, i + 1:] = torch.randn_like(q2[:, :, i + 1:]) * 5
    after = scaled_dot_product_attention(q2, k2, v2, is_causal=True, impl=impl)
    torch.testing.assert_close(after[:, :, : i + 1], before[:, :, : i + 1], **tolerance(torch.float32),
                               msg=lambda m: f"position <= {i} saw a later position: {m}")


@PROPERTY
@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=3), t=st.integers(1, 5),
       causal=st.booleans(), seed=st.integers(0, 2**16))
def test_padded_keys_get_exactly_zero_weight(device, lengths, t, causal, seed):
    s = 6
    gen = torch.Generator().manual_seed(seed)
    b = len(lengths)
    q = torch.randn(b, 2, t, 4, generator=gen).to(device)
    k, v = (torch.randn(b, 1, s, 4, generator=gen).to(device) for _ in range(2))
    mask = padding_mask_from_lengths(torch.tensor(lengths), s).to(device)
    _, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, need_weights=True)
    padded = ~mask.expand_as(weights)
    assert (weights[padded] == 0).all(), "a padded key received non-zero attention weight"
    # and changing what sits at padded positions changes nothing, in the fused path too
    k2, v2 = k.clone(), v.clone()
    for row, n in enumerate(lengths):
        k2[row, :, n:] = 100.0
        v2[row, :, n:] = -100.0
    for impl in ("naive", "fused"):
        torch.testing.assert_close(
            scaled_dot_product_attention(q, k2, v2, attn_mask=mask, is_causal=causal, impl=impl),
            scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, impl=impl),
            **tolerance(torch.float32),
        )


# ---------------------------------------------------------------- masks


def test_causal_mask_square_and_bottom_right(device):
    square = causal_mask(4, device=device)
    assert square.dtype == torch.bool and square.device.type == device.type
    assert torch.equal(square, torch.ones(4, 4, dtype=torch.bool, device=device).tril())
    # 2 new queries after 3 cached keys: they are positions 3 and 4 of 5.
    expected = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool, device=device)
    assert torch.equal(causal_mask(2, 5, device=device), expected)


def test_padding_masks(device):
    by_len = padding_mask_from_lengths(torch.tensor([3, 1], device=device), max_len=4)
    expected = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool, device=device)[:, None, None, :]
    assert by_len.shape == (2, 1, 1, 4) and torch.equal(by_len, expected)
    ids = torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0]], device=device)
    assert torch.equal(padding_mask_from_ids(ids, pad_id=0), expected)
    both = causal_padding_mask(ids, pad_id=0)
    assert both.shape == (2, 1, 4, 4)
    assert torch.equal(both, causal_mask(4, device=device) & expected)
    assert combine_masks(None, expected, None) is expected
    assert combine_masks() is None


def test_mask_bad_input():
    with pytest.raises(ValueError, match=r"lengths.*\(2, 1\)"):
        padding_mask_from_lengths(torch.ones(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 2\]"):
        padding_mask_from_lengths(torch.tensor([3]), max_len=2)
    with pytest.raises(ValueError, match=r"ids.*\(4,\)"):
        padding_mask_from_ids(torch.ones(4, dtype=torch.long), pad_id=0)
    with pytest.raises(ValueError, match="boolean"):
        combine_masks(torch.ones(2, 2))


# ---------------------------------------------------------------- bad input


def test_attention_bad_input_names_argument_and_shapes():
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    with pytest.raises(ValueError, match=r"q must have shape .*\(4, 3, 8\)"):
        scaled_dot_product_attention(q[0], k, v)
    with pytest.raises(ValueError, match=r"head dim.*q \(2, 4, 3, 8\), k \(2, 2, 5, 6\)"):
        scaled_dot_product_attention(q, k[..., :6], v)
    with pytest.raises(ValueError, match=r"k and v.*k \(2, 2, 5, 8\), v \(2, 2, 4, 8\)"):
        scaled_dot_product_attention(q, k, v[:, :, :4])
    with pytest.raises(ValueError, match=r"multiple of key/value heads.*q \(2, 4, 3, 8\), k \(2, 3, 5, 8\)"):
        scaled_dot_product_attention(q, torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\).*\(2, 4, 3, 5\)"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask must be boolean"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 5))
    with pytest.raises(ValueError, match="impl must be one of"):
        scaled_dot_product_attention(q, k, v, impl="flash")
