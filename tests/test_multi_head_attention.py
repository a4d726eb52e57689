"""MultiHeadAttention: parity with torch.nn.MultiheadAttention, GQA/MQA, rotary, KV-cache decoding."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.nn import KVCache, MultiHeadAttention, causal_mask, padding_mask_from_lengths
from course_lib.nn.positional import RotaryEmbedding
from tests.conftest import tolerance

PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@torch.no_grad()
def load_from_torch_mha(ours: MultiHeadAttention, theirs: torch.nn.MultiheadAttention) -> None:
    """Copy torch's packed (or, with kdim/vdim, separate) projections into q/k/v/out_proj."""
    if theirs._qkv_same_embed_dim:
        w_q, w_k, w_v = theirs.in_proj_weight.chunk(3)
    else:
        w_q, w_k, w_v = theirs.q_proj_weight, theirs.k_proj_weight, theirs.v_proj_weight
    b_q, b_k, b_v = theirs.in_proj_bias.chunk(3)
    for proj, w, b in ((ours.q_proj, w_q, b_q), (ours.k_proj, w_k, b_k), (ours.v_proj, w_v, b_v),
                       (ours.out_proj, theirs.out_proj.weight, theirs.out_proj.bias)):
        proj.weight.copy_(w)
        if proj.bias is not None:  # a projection built without bias matches torch's with a zero bias
            proj.bias.copy_(b)


def _randomise_biases(module: torch.nn.Module) -> None:
    # torch initialises MHA biases to zero, which would hide a bias copied to the wrong place.
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "bias" in name:
                p.normal_()


@pytest.mark.parametrize("impl", ["naive", "fused"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("mode", ["self", "self_causal", "cross"])
def test_parity_with_torch_multihead_attention(mode, dtype, impl, device):
    b, t, s, e, h, kv_dim = 3, 5, 7, 16, 4, 12
    cross = mode == "cross"
    theirs = torch.nn.MultiheadAttention(
        e, h, dropout=0.1, batch_first=True, kdim=kv_dim if cross else None, vdim=kv_dim if cross else None
    )
    ours = MultiHeadAttention(embed_dim=e, num_heads=h, dropout=0.1, impl=impl, kv_dim=kv_dim if cross else None)
    _randomise_biases(theirs)
    load_from_torch_mha(ours, theirs)
    theirs.to(device, dtype).eval()
    ours.to(device, dtype).eval()

    x = torch.randn(b, t, e, device=device, dtype=dtype, requires_grad=True)
    context = torch.randn(b, s, kv_dim, device=device, dtype=dtype) if cross else x
    n_keys = s if cross else t
    lengths = torch.tensor([n_keys, 3, 1])
    key_keep = padding_mask_from_lengths(lengths, n_keys).to(device)  # b 1 1 s, True = attend
    torch_attn_mask = None
    our_mask = key_keep
    if mode == "self_causal":
        causal = causal_mask(t, device=device)
        torch_attn_mask = ~causal  # torch's boolean masks mean the opposite: True = blocked
        our_mask = key_keep & causal

    ref, ref_w = theirs(x, context, context, key_padding_mask=~key_keep[:, 0, 0], attn_mask=torch_attn_mask,
                        need_weights=True, average_attn_weights=False)
    out, w = ours(x, context=context if cross else None, attn_mask=our_mask, need_weights=True)
    out_fast = ours(x, context=context if cross else None, attn_mask=our_mask)

    grad_ref, = torch.autograd.grad(ref.sum(), x)
    grad_out, = torch.autograd.grad(out_fast.sum(), x)
    diff = max((out - ref).abs().max().item(), (out_fast - ref).abs().max().item(), (w - ref_w).abs().max().item(),
               (grad_out - grad_ref).abs().max().item())
    print(f"MHA vs torch.nn.MultiheadAttention [{mode}, {dtype}, {impl}, {device}]: max abs diff {diff:.2e}")
    torch.testing.assert_close(out, ref, **tolerance(dtype))
    torch.testing.assert_close(out_fast, ref, **tolerance(dtype))
    torch.testing.assert_close(w, ref_w, **tolerance(dtype))
    torch.testing.assert_close(grad_out, grad_ref, **tolerance(dtype))


@pytest.mark.parametrize("bias,qkv_bias", [(True, False), (False, True), (True, None), (False, None)])
def test_qkv_bias_switches_only_the_input_projections(bias, qkv_bias, device):
    b, t, e, h = 2, 5, 16, 4
    ours = MultiHeadAttention(embed_dim=e, num_heads=h, bias=bias, qkv_bias=qkv_bias).to(device)
    expect_qkv = bias if qkv_bias is None else qkv_bias
    for proj in (ours.q_proj, ours.k_proj, ours.v_proj):
        assert (proj.bias is not None) == expect_qkv
    assert (ours.out_proj.bias is not None) == bias
    # torch's MHA with its in-projection bias at zero is the same function when q/k/v have none.
    theirs = torch.nn.MultiheadAttention(e, h, batch_first=True)
    _randomise_biases(theirs)
    with torch.no_grad():
        if not expect_qkv:
            theirs.in_proj_bias.zero_()
        if not bias:
            theirs.out_proj.bias.zero_()
    load_from_torch_mha(ours, theirs)
    theirs.to(device).eval()
    x = torch.randn(b, t, e, device=device)
    ref, _ = theirs(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), ref, **tolerance(torch.float32))


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_grouped_query_heads_equal_repeated_kv_projection(num_kv_heads, device):
    """GQA with g kv heads is MHA whose k/v projections repeat each kv head h/g times."""
    e, h = 16, 4
    gqa = MultiHeadAttention(embed_dim=e, num_heads=h, num_kv_heads=num_kv_heads).to(device, torch.float64)
    mha = MultiHeadAttention(embed_dim=e, num_heads=h).to(device, torch.float64)
    assert gqa.k_proj.out_features == num_kv_heads * gqa.head_dim
    d, rep = gqa.head_dim, h // num_kv_heads
    with torch.no_grad():
        for name in ("q_proj", "out_proj"):
            getattr(mha, name).load_state_dict(getattr(gqa, name).state_dict())
        for name in ("k_proj", "v_proj"):
            src, dst = getattr(gqa, name), getattr(mha, name)
            dst.weight.copy_(src.weight.view(num_kv_heads, d, e).repeat_interleave(rep, 0).reshape(h * d, e))
            dst.bias.copy_(src.bias.view(num_kv_heads, d).repeat_interleave(rep, 0).reshape(h * d))
    x = torch.randn(2, 5, e, device=device, dtype=torch.float64)
    mask = padding_mask_from_lengths(torch.tensor([5, 2]), 5).to(device)
    for impl in ("naive", "fused"):
        gqa.impl = mha.impl = impl
        torch.testing.assert_close(gqa(x, attn_mask=mask, is_causal=True), mha(x, attn_mask=mask, is_causal=True),
                                   **tolerance(torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_naive_and_fused_agree_through_the_module(dtype, device):
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 here")
    e, h, g = 16, 4, 2
    mha = MultiHeadAttention(embed_dim=e, num_heads=h, num_kv_heads=g, rotary=RotaryEmbedding(e // h, max_len=16))
    mha.to(device, dtype)
    x = torch.randn(2, 6, e, device=device, dtype=dtype)
    mask = padding_mask_from_lengths(torch.tensor([6, 4]), 6).to(device)
    grad_out = torch.randn(2, 6, e, device=device, dtype=dtype)
    results = {}
    for impl in ("naive", "fused"):
        mha.impl = impl
        mha.zero_grad()
        out = mha(x, attn_mask=mask, is_causal=True)
        out.backward(grad_out)
        results[impl] = [("out", out.detach())] + [(n, p.grad.clone()) for n, p in mha.named_parameters()]
    for (name, a), (_, f) in zip(results["naive"], results["fused"]):
        if dtype == torch.bfloat16:
            # A weight gradient sums over every token, so single bf16 entries can differ by a
            # few rounding steps. Ask instead for |a - f| <= atol + rtol |f| in aggregate,
            # ||a - f|| <= atol sqrt(n) + rtol ||f||, which the elementwise test would imply.
            tol = tolerance(dtype)
            err = (a - f).float().norm().item()
            bound = tol["atol"] * a.numel() ** 0.5 + tol["rtol"] * f.float().norm().item()
            assert err <= bound, f"{name}: naive and fused differ by {err:.3g} in norm (allowed {bound:.3g})"
        else:
            torch.testing.assert_close(a, f, **tolerance(dtype), msg=lambda m: f"{name}: {m}")


def test_dropout_only_in_training(device):
    mha = MultiHeadAttention(embed_dim=8, num_heads=2, dropout=0.5).to(device)
    x = torch.randn(2, 6, 8, device=device)
    mha.eval()
    torch.testing.assert_close(mha(x), mha(x), rtol=0, atol=0)
    mha.train()
    assert not torch.allclose(mha(x), mha(x)), "dropout 0.5 in training should change the output"


# ---------------------------------------------------------------- properties


@PROPERTY
@given(t=st.integers(2, 7), i=st.integers(0, 6), heads=st.sampled_from([(4, 4), (4, 2), (4, 1)]),
       rotary=st.booleans(), impl=st.sampled_from(["naive", "fused"]), seed=st.integers(0, 2**16))
def test_causal_output_ignores_later_tokens(device, t, i, heads, rotary, impl, seed):
    torch.manual_seed(seed)
    i = i % t
    h, g = heads
    mha = MultiHeadAttention(embed_dim=16, num_heads=h, num_kv_heads=g, impl=impl,
                             rotary=RotaryEmbedding(4, max_len=16) if rotary else None).to(device)
    x = torch.randn(2, t, 16, device=device)
    x2 = x.clone()
    x2[:, i + 1:] = torch.randn_like(x2[:, i + 1:]) * 3
    torch.testing.assert_close(mha(x2, is_causal=True)[:, : i + 1], mha(x, is_causal=True)[:, : i + 1],
                               **tolerance(torch.float32),
                               msg=lambda m: f"output at positions <= {i} changed when later tokens did: {m}")


@PROPERTY
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3), t=st.integers(1, 4),
       cross=st.booleans(), seed=st.integers(0, 2**16))
def test_padded_keys_get_exactly_zero_weight(device, lengths, t, cross, seed):
    torch.manual_seed(seed)
    s = 6
    mha = MultiHeadAttention(embed_dim=8, num_heads=2, num_kv_heads=1, kv_dim=5 if cross else None).to(device)
    b = len(lengths)
    mask = padding_mask_from_lengths(torch.tensor(lengths), s).to(device)
    if cross:
        x, context = torch.randn(b, t, 8, device=device), torch.randn(b, s, 5, device=device)
    else:
        x, context = torch.randn(b, s, 8, device=device), None
    _, weights = mha(x, context=context, attn_mask=mask, need_weights=True)
    assert (weights[~mask.expand_as(weights)] == 0).all(), "padding received attention weight"


@PROPERTY
@given(t=st.integers(1, 7), prefill=st.integers(0, 6), heads=st.sampled_from([(4, 4), (4, 2), (4, 1)]),
       rotary=st.booleans(), impl=st.sampled_from(["naive", "fused"]), seed=st.integers(0, 2**16))
def test_kv_cache_decoding_equals_full_forward(device, t, prefill, heads, rotary, impl, seed):
    """A prompt of `prefill` tokens in one call, then one token per call, matches one causal pass."""
    torch.manual_seed(seed)
    prefill = prefill % t
    h, g = heads
    mha = MultiHeadAttention(embed_dim=16, num_heads=h, num_kv_heads=g, impl=impl,
                             rotary=RotaryEmbedding(4, max_len=16) if rotary else None).to(device).eval()
    x = torch.randn(2, t, 16, device=device)
    full = mha(x, is_causal=True)
    cache = KVCache(batch_size=2, num_kv_heads=g, max_len=8, head_dim=4, dtype=torch.float32, device=device)
    steps = [mha(x[:, :prefill], is_causal=True, kv_cache=cache)] if prefill else []
    steps += [mha(x[:, j : j + 1], is_causal=True, kv_cache=cache) for j in range(prefill, t)]
    assert cache.length == t
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **tolerance(torch.float32))


# ---------------------------------------------------------------- bad input


def test_bad_input_names_argument_and_shapes():
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads.*embed_dim=10, num_heads=4"):
        MultiHeadAttention(embed_dim=10, num_heads=4)
    with pytest.raises(ValueError, match=r"num_heads must be divisible by num_kv_heads.*num_heads=4, num_kv_heads=3"):
        MultiHeadAttention(embed_dim=16, num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match=r"rotary head_dim.*rotary head_dim=8, head_dim=4"):
        MultiHeadAttention(embed_dim=16, num_heads=4, rotary=RotaryEmbedding(8))
    with pytest.raises(ValueError, match="impl must be one of"):
        MultiHeadAttention(embed_dim=16, num_heads=4, impl="flash")

    mha = MultiHeadAttention(embed_dim=16, num_heads=4, num_kv_heads=2, kv_dim=6)
    x = torch.randn(2, 3, 16)
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, embed_dim=16\), got \(3, 16\)"):
        mha(x[0])
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, embed_dim=16\), got \(2, 3, 8\)"):
        mha(x[..., :8])
    with pytest.raises(ValueError, match=r"context must have shape \(b, s, kv_dim=6\), got \(2, 5, 16\)"):
        mha(x, context=torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match=r"batch size: x \(2, 3, 16\), context \(1, 5, 6\)"):
        mha(x, context=torch.randn(1, 5, 6))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 1, 1, 4\).*\(2, 4, 3, 5\)"):
        mha(x, context=torch.randn(2, 5, 6), attn_mask=torch.ones(2, 1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"self-attention needs kv_dim == embed_dim.*kv_dim=6, embed_dim=16"):
        mha(x)
    self_mha = MultiHeadAttention(embed_dim=16, num_heads=4, num_kv_heads=2)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\).*\(2, 4, 3, 3\)"):
        self_mha(x, attn_mask=torch.ones(3, 4, dtype=torch.bool))
    wrong_cache = KVCache(batch_size=2, num_kv_heads=2, max_len=8, head_dim=8, dtype=torch.float32, device="cpu")
    with pytest.raises(ValueError, match=r"k must have shape \(b, g, t, d\) = \(2, 2, t, 8\).*got \(2, 2, 3, 4\)"):
        self_mha(x, kv_cache=wrong_cache)
    cache = KVCache(batch_size=2, num_kv_heads=2, max_len=8, head_dim=4, dtype=torch.float32, device="cpu")
    with pytest.raises(ValueError, match="kv_cache is for self-attention"):
        mha(x, context=torch.randn(2, 5, 6), kv_cache=cache)


def test_training_projection_gives_torch_parameter_gradients(device):
    # With grad enabled, self-attention stacks q, k, v into one matmul; the gradients must
    # still reach the three separate projections, as torch's in_proj_weight receives them.
    e, h = 16, 4
    theirs = torch.nn.MultiheadAttention(e, h, batch_first=True).to(device)
    ours = MultiHeadAttention(embed_dim=e, num_heads=h).to(device)
    load_from_torch_mha(ours, theirs)
    x = torch.randn(2, 5, e, device=device, requires_grad=True)
    upstream = torch.randn(2, 5, e, device=device)
    blocked = torch.ones(5, 5, dtype=torch.bool, device=device).triu(1)  # torch: True = blocked
    ref = theirs(x, x, x, attn_mask=blocked, need_weights=False)[0]
    out = ours(x, is_causal=True)
    gx_ref, gw_ref, gb_ref = torch.autograd.grad(ref, (x, theirs.in_proj_weight, theirs.in_proj_bias), upstream)
    projs = (ours.q_proj, ours.k_proj, ours.v_proj)
    grads = torch.autograd.grad(out, (x, *[p.weight for p in projs], *[p.bias for p in projs]), upstream)
    tol = tolerance(torch.float32)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(grads[0], gx_ref, **tol)
    torch.testing.assert_close(torch.cat(grads[1:4]), gw_ref, **tol)
    torch.testing.assert_close(torch.cat(grads[4:7]), gb_ref, **tol)
