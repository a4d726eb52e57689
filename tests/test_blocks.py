"""TransformerBlock: parity with torch.nn.TransformerEncoderLayer / DecoderLayer, causality, KV cache."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.nn import KVCache, TransformerBlock, causal_mask, padding_mask_from_lengths
from course_lib.nn.positional import RotaryEmbedding
from tests.conftest import tolerance
from tests.test_multi_head_attention import load_from_torch_mha

PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
E, H, F_DIM = 16, 4, 32


@torch.no_grad()
def _copy_linear(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    ours.weight.copy_(theirs.weight)
    ours.bias.copy_(theirs.bias)


def load_from_torch_layer(block: TransformerBlock, layer: torch.nn.Module) -> None:
    """Copy an nn.TransformerEncoderLayer or nn.TransformerDecoderLayer into ``block``."""
    load_from_torch_mha(block.self_attn, layer.self_attn)
    _copy_linear(block.ffn.up_proj, layer.linear1)
    _copy_linear(block.ffn.down_proj, layer.linear2)
    _copy_linear(block.self_attn_norm, layer.norm1)
    if isinstance(layer, torch.nn.TransformerDecoderLayer):
        load_from_torch_mha(block.cross_attn, layer.multihead_attn)
        _copy_linear(block.cross_attn_norm, layer.norm2)
        _copy_linear(block.ffn_norm, layer.norm3)
    else:
        _copy_linear(block.ffn_norm, layer.norm2)


def _randomise(module: torch.nn.Module) -> None:
    # torch starts biases at 0 and norms at (1, 0): a parameter copied to the wrong place
    # would go unnoticed, so give every parameter a random value first.
    with torch.no_grad():
        for name, p in module.named_parameters():
            centre = 1.0 if name.startswith("norm") and name.endswith("weight") else 0.0  # norm scales near 1
            p.copy_(torch.randn_like(p) * 0.3 + centre)


def _report(name: str, pairs) -> None:
    diff = max((a - b).abs().max().item() for a, b in pairs)
    print(f"{name}: max abs diff {diff:.2e}")
    for a, b in pairs:
        torch.testing.assert_close(a, b, **tolerance(a.dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_parity_with_torch_encoder_layer(norm_first, activation, causal, dtype, device):
    layer = torch.nn.TransformerEncoderLayer(E, H, F_DIM, dropout=0.1, activation=activation,
                                             batch_first=True, norm_first=norm_first)
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, dropout=0.1, norm_first=norm_first,
                             activation=activation, causal=causal)
    _randomise(layer)
    load_from_torch_layer(block, layer)
    layer.to(device, dtype).eval()
    block.to(device, dtype).eval()

    x = torch.randn(3, 6, E, device=device, dtype=dtype, requires_grad=True)
    keep = padding_mask_from_lengths(torch.tensor([6, 4, 1]), 6).to(device)  # b 1 1 t
    # Gradients stay on, which also keeps torch off its fused inference fast path.
    # A causal encoder layer is a decoder-only (GPT) block; torch's boolean masks mean True = blocked.
    blocked = ~causal_mask(6, device=device) if causal else None  # torch's boolean masks: True = blocked
    ref = layer(x, blocked, is_causal=causal, src_key_padding_mask=~keep[:, 0, 0])
    out = block(x, attn_mask=keep)
    grad_out = torch.randn_like(out)
    g_ref, = torch.autograd.grad(ref, x, grad_out)
    g_out, = torch.autograd.grad(out, x, grad_out)
    _report(f"TransformerBlock vs TransformerEncoderLayer [norm_first={norm_first}, {activation}, causal={causal}, "
            f"{dtype}, {device}]",
            [(out, ref), (g_out, g_ref)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_parity_with_torch_decoder_layer(norm_first, dtype, device):
    layer = torch.nn.TransformerDecoderLayer(E, H, F_DIM, dropout=0.1, activation="gelu",
                                             batch_first=True, norm_first=norm_first)
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, dropout=0.1, norm_first=norm_first,
                             causal=True, cross_attention=True, activation="gelu")
    _randomise(layer)
    load_from_torch_layer(block, layer)
    layer.to(device, dtype).eval()
    block.to(device, dtype).eval()

    t, s = 5, 7
    x = torch.randn(2, t, E, device=device, dtype=dtype, requires_grad=True)
    context = torch.randn(2, s, E, device=device, dtype=dtype, requires_grad=True)
    tgt_keep = padding_mask_from_lengths(torch.tensor([5, 3]), t).to(device)
    mem_keep = padding_mask_from_lengths(torch.tensor([7, 2]), s).to(device)
    ref = layer(x, context, tgt_mask=~causal_mask(t, device=device), tgt_is_causal=True,
                tgt_key_padding_mask=~tgt_keep[:, 0, 0], memory_key_padding_mask=~mem_keep[:, 0, 0])
    out = block(x, attn_mask=tgt_keep, context=context, context_mask=mem_keep)
    grad_out = torch.randn_like(out)
    g_ref = torch.autograd.grad(ref, (x, context), grad_out)
    g_out = torch.autograd.grad(out, (x, context), grad_out)
    _report(f"TransformerBlock vs TransformerDecoderLayer [norm_first={norm_first}, {dtype}, {device}]",
            [(out, ref), (g_out[0], g_ref[0]), (g_out[1], g_ref[1])])


def test_pre_norm_block_with_silent_sublayers_is_the_identity(device):
    """x = x + f(norm(x)): if every sub-layer outputs 0, the residual path returns x exactly."""
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, causal=True, cross_attention=True).to(device)
    with torch.no_grad():
        for proj in (block.self_attn.out_proj, block.cross_attn.out_proj, block.ffn.down_proj):
            proj.weight.zero_()
            proj.bias.zero_()
    x = torch.randn(2, 5, E, device=device)
    assert torch.equal(block(x, context=torch.randn(2, 3, E, device=device)), x)
    block.norm_first = False  # post-norm instead normalises: the output is norm(norm(norm(x)))
    post = block(x, context=torch.randn(2, 3, E, device=device))
    expected = block.ffn_norm(block.cross_attn_norm(block.self_attn_norm(x)))
    torch.testing.assert_close(post, expected, **tolerance(torch.float32))


@pytest.mark.parametrize("norm,ffn", [("rmsnorm", "swiglu"), ("layernorm", "mlp")])
def test_naive_and_fused_blocks_agree(norm, ffn, device):
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, num_kv_heads=2, causal=True,
                             norm=norm, ffn=ffn, rotary=RotaryEmbedding(E // H, max_len=16))
    block.to(device, torch.float64)
    x = torch.randn(2, 6, E, device=device, dtype=torch.float64)
    keep = padding_mask_from_lengths(torch.tensor([6, 3]), 6).to(device)
    outs = {}
    for impl in ("naive", "fused"):
        block.self_attn.impl = impl
        outs[impl] = block(x, attn_mask=keep)
    torch.testing.assert_close(outs["naive"], outs["fused"], **tolerance(torch.float64))
    assert type(block.ffn).__name__ == {"mlp": "FeedForward", "swiglu": "SwiGLU"}[ffn]
    assert type(block.ffn_norm).__name__ == {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}[norm]


def test_dropout_only_in_training(device):
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, dropout=0.3).to(device)
    x = torch.randn(2, 5, E, device=device)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x)), "dropout 0.3 in training should change the output"


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_block_returns_the_weights_of_its_own_pass(norm_first, cross, device):
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, norm_first=norm_first, causal=True,
                             cross_attention=cross).to(device, torch.float64).eval()
    x = torch.randn(2, 5, E, device=device, dtype=torch.float64)
    keep = padding_mask_from_lengths(torch.tensor([5, 4]), 5).to(device)
    context = torch.randn(2, 3, E, device=device, dtype=torch.float64) if cross else None
    context_keep = padding_mask_from_lengths(torch.tensor([3, 2]), 3).to(device) if cross else None
    plain = block(x, attn_mask=keep, context=context, context_mask=context_keep)
    out, weights = block(x, attn_mask=keep, context=context, context_mask=context_keep, need_weights=True)
    torch.testing.assert_close(out, plain, **tolerance(torch.float64))
    assert sorted(weights) == (["cross_attn", "self_attn"] if cross else ["self_attn"])
    # Replay the sub-layers by hand: the returned weights are the ones this pass used.
    h = block.self_attn_norm(x) if norm_first else x
    attended, expected = block.self_attn(h, attn_mask=keep, is_causal=True, need_weights=True)
    torch.testing.assert_close(weights["self_attn"], expected, **tolerance(torch.float64))
    assert weights["self_attn"].shape == (2, H, 5, 5)
    assert torch.equal(weights["self_attn"].triu(1), torch.zeros_like(expected)), "causal weights see the future"
    if cross:
        x1 = x + attended if norm_first else block.self_attn_norm(x + attended)
        h = block.cross_attn_norm(x1) if norm_first else x1
        _, expected = block.cross_attn(h, context=context, attn_mask=context_keep, need_weights=True)
        torch.testing.assert_close(weights["cross_attn"], expected, **tolerance(torch.float64))
        assert weights["cross_attn"].shape == (2, H, 5, 3)
        assert (weights["cross_attn"][1, :, :, 2] == 0).all(), "a padded context position received weight"


# ---------------------------------------------------------------- properties


@PROPERTY
@given(t=st.integers(2, 7), i=st.integers(0, 6), norm_first=st.booleans(), rotary=st.booleans(),
       seed=st.integers(0, 2**16))
def test_causal_block_ignores_later_tokens(device, t, i, norm_first, rotary, seed):
    torch.manual_seed(seed)
    i = i % t
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, num_kv_heads=2, causal=True,
                             norm_first=norm_first, rotary=RotaryEmbedding(E // H, max_len=16) if rotary else None)
    block.to(device).eval()
    x = torch.randn(2, t, E, device=device)
    x2 = x.clone()
    x2[:, i + 1:] = torch.randn_like(x2[:, i + 1:]) * 3
    torch.testing.assert_close(block(x2)[:, : i + 1], block(x)[:, : i + 1], **tolerance(torch.float32),
                               msg=lambda m: f"position <= {i} changed when later tokens did: {m}")


@PROPERTY
@given(t=st.integers(1, 7), prefill=st.integers(0, 6), heads=st.sampled_from([(4, 4), (4, 2), (4, 1)]),
       rotary=st.booleans(), cross=st.booleans(), seed=st.integers(0, 2**16))
def test_kv_cache_decoding_equals_full_forward(device, t, prefill, heads, rotary, cross, seed):
    torch.manual_seed(seed)
    prefill = prefill % t
    h, g = heads
    block = TransformerBlock(embed_dim=E, num_heads=h, hidden_dim=F_DIM, num_kv_heads=g, causal=True,
                             cross_attention=cross, norm="rmsnorm", ffn="swiglu",
                             rotary=RotaryEmbedding(E // h, max_len=16) if rotary else None).to(device).eval()
    x = torch.randn(2, t, E, device=device)
    context = torch.randn(2, 3, E, device=device) if cross else None
    full = block(x, context=context)
    cache = KVCache(batch_size=2, num_kv_heads=g, max_len=8, head_dim=E // h, dtype=torch.float32, device=device)
    steps = [block(x[:, :prefill], context=context, kv_cache=cache)] if prefill else []
    steps += [block(x[:, j : j + 1], context=context, kv_cache=cache) for j in range(prefill, t)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **tolerance(torch.float32))


def test_qkv_bias_reaches_both_attention_sublayers():
    block = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, causal=True, cross_attention=True,
                             qkv_bias=False)
    for attn in (block.self_attn, block.cross_attn):
        assert attn.q_proj.bias is None and attn.k_proj.bias is None and attn.v_proj.bias is None
        assert attn.out_proj.bias is not None
    assert block.ffn.up_proj.bias is not None and block.self_attn_norm.bias is not None
    default = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, bias=False)
    assert default.self_attn.q_proj.bias is None and default.self_attn.out_proj.bias is None


# ---------------------------------------------------------------- bad input


def test_bad_input():
    with pytest.raises(ValueError, match="norm must be one of"):
        TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, norm="batchnorm")
    with pytest.raises(ValueError, match="ffn must be one of"):
        TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, ffn="moe")
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads.*embed_dim=16, num_heads=3"):
        TransformerBlock(embed_dim=E, num_heads=3, hidden_dim=F_DIM)
    with pytest.raises(ValueError, match=r"num_heads must be divisible by num_kv_heads.*num_heads=4, num_kv_heads=3"):
        TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, num_kv_heads=3)
    encoder = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM)
    decoder = TransformerBlock(embed_dim=E, num_heads=H, hidden_dim=F_DIM, causal=True, cross_attention=True)
    x = torch.randn(2, 5, E)
    with pytest.raises(ValueError, match="cross_attention=False"):
        encoder(x, context=torch.randn(2, 3, E))
    with pytest.raises(ValueError, match=r"needs a context.*\(2, 5, 16\)"):
        decoder(x)
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, embed_dim=16\), got \(5, 16\)"):
        encoder(x[0])
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 1, 1, 4\).*\(2, 4, 5, 5\)"):
        encoder(x, attn_mask=torch.ones(2, 1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 1, 1, 2\).*\(2, 4, 5, 3\)"):
        decoder(x, context=torch.randn(2, 3, E), context_mask=torch.ones(2, 1, 1, 2, dtype=torch.bool))
