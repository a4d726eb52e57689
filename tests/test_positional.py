"""Sinusoidal, learned and rotary position information."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.nn import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding
from tests.conftest import tolerance

DTYPES = [torch.float32, torch.float64]
# The device fixture only names a device, so reusing it across hypothesis examples is safe.
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _skip_unsupported(device: torch.device, dtype: torch.dtype) -> None:
    if device.type == "mps" and dtype == torch.float64:
        pytest.skip("MPS has no float64")


# ------------------------------------------------------------------------------- sinusoidal

@pytest.mark.parametrize("dtype", DTYPES)
def test_sinusoidal_matches_the_formula(device, dtype):
    _skip_unsupported(device, dtype)
    e, t, offset, base = 6, 5, 3, 100.0
    pe = SinusoidalPositionalEncoding(e, max_len=16, base=base).to(device)
    x = torch.randn(2, t, e, device=device, dtype=dtype)
    expected = torch.tensor(
        [[(math.sin if j % 2 == 0 else math.cos)(pos / base ** ((j - j % 2) / e)) for j in range(e)]
         for pos in range(offset, offset + t)],
        dtype=dtype, device=device,
    )
    out = pe(x, offset=offset)
    assert out.dtype == dtype
    torch.testing.assert_close(out, x + expected, **tolerance(dtype))


@PROPERTY
@given(half_dim=st.integers(1, 32), max_len=st.integers(1, 1024), base=st.floats(10.0, 1e5))
@pytest.mark.parametrize("dtype", DTYPES)
def test_sinusoidal_bounded_and_distinct(device, dtype, half_dim, max_len, base):
    _skip_unsupported(device, dtype)
    module = SinusoidalPositionalEncoding(2 * half_dim, max_len=max_len, base=base).to(device)
    pe = module(torch.zeros(1, max_len, 2 * half_dim, device=device, dtype=dtype))[0]  # t e
    assert pe.abs().max() <= 1.0
    assert torch.unique(pe, dim=0).shape[0] == max_len, "two positions share an encoding"


def test_sinusoidal_tables_stay_out_of_checkpoints_and_bf16(device):
    pe = SinusoidalPositionalEncoding(8, max_len=32)
    assert pe.state_dict() == {}
    pe = pe.to(device, torch.bfloat16)  # casts the buffer; forward rebuilds it in float32
    x = torch.randn(2, 4, 8, device=device).to(torch.bfloat16)
    out = pe(x)
    assert out.dtype == torch.bfloat16 and pe.pe.dtype == torch.float32
    reference = SinusoidalPositionalEncoding(8, max_len=32).to(device)(x.float()).to(torch.bfloat16)
    assert torch.equal(out, reference)


def test_sinusoidal_bad_input(device):
    pe = SinusoidalPositionalEncoding(8, max_len=16).to(device)
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, 8\), got \(4, 8\)"):
        pe(torch.randn(4, 8, device=device))
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, 8\), got \(1, 4, 6\)"):
        pe(torch.randn(1, 4, 6, device=device))
    with pytest.raises(ValueError, match=r"x of shape \(1, 10, 8\) at offset 8 .*max_len is 16"):
        pe(torch.randn(1, 10, 8, device=device), offset=8)
    with pytest.raises(ValueError, match=r"embed_dim must be even .*got 7"):
        SinusoidalPositionalEncoding(7)


# ------------------------------------------------------------------------------- learned

@pytest.mark.parametrize("dtype", DTYPES)
def test_learned_adds_rows_by_offset_or_positions(device, dtype):
    _skip_unsupported(device, dtype)
    pos = LearnedPositionalEmbedding(max_len=10, embed_dim=4).to(device, dtype)
    x = torch.randn(2, 3, 4, device=device, dtype=dtype)
    torch.testing.assert_close(pos(x), x + pos.weight[:3], **tolerance(dtype))
    torch.testing.assert_close(pos(x, offset=5), x + pos.weight[5:8], **tolerance(dtype))
    positions = torch.tensor([[0, 1, 2], [4, 4, 9]], device=device)  # e.g. after left padding
    out = pos(x, positions=positions)
    torch.testing.assert_close(out[1], x[1] + pos.weight[[4, 4, 9]], **tolerance(dtype))
    out.sum().backward()
    rows_with_grad = pos.weight.grad.abs().sum(-1).nonzero().flatten().tolist()
    assert rows_with_grad == [0, 1, 2, 4, 9]
    assert pos.weight.grad[4, 0].item() == 2.0  # used twice


def test_learned_bad_input(device):
    pos = LearnedPositionalEmbedding(max_len=4, embed_dim=4).to(device)
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, 4\), got \(3, 4\)"):
        pos(torch.randn(3, 4, device=device))
    with pytest.raises(ValueError, match=r"x of shape \(1, 5, 4\) at offset 0 .*max_len is 4"):
        pos(torch.randn(1, 5, 4, device=device))
    x = torch.randn(1, 2, 4, device=device)
    with pytest.raises(ValueError, match=r"positions must be an integer tensor of shape \(b, t\) = \(1, 2\), got \(2,\)"):
        pos(x, positions=torch.tensor([0, 1], device=device))
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 4\), got values in \[0, 4\]"):
        pos(x, positions=torch.tensor([[0, 4]], device=device))
    with pytest.raises(ValueError, match="either offset or positions"):
        pos(x, offset=1, positions=torch.tensor([[0, 1]], device=device))


# ------------------------------------------------------------------------------- rotary

def _rope_by_complex_numbers(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Pair i = (x_i, x_{i+d/2}) as the complex number x_i + j x_{i+d/2}, times exp(j pos theta_i)."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * theta  # t d/2
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double()) * torch.polar(
        torch.ones_like(angles), angles
    ).to(x.device)
    return torch.cat((z.real, z.imag), dim=-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_matches_rotation_by_complex_numbers(device, dtype):
    _skip_unsupported(device, dtype)
    rope = RotaryEmbedding(head_dim=8, max_len=64, base=500.0).to(device)
    q = torch.randn(2, 4, 5, 8, device=device, dtype=dtype)
    k = torch.randn(2, 2, 5, 8, device=device, dtype=dtype)  # fewer kv heads (GQA)
    q_rot, k_rot = rope(q, k, offset=7)
    assert q_rot.dtype == dtype and q_rot.shape == q.shape and k_rot.shape == k.shape
    positions = torch.arange(7, 12)
    torch.testing.assert_close(q_rot, _rope_by_complex_numbers(q, positions, 500.0).to(dtype), **tolerance(dtype))
    torch.testing.assert_close(k_rot, _rope_by_complex_numbers(k, positions, 500.0).to(dtype), **tolerance(dtype))


def test_rope_matches_hugging_face_llama(device):
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=64, num_attention_heads=4, head_dim=16, max_position_embeddings=64,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    q = torch.randn(2, 4, 6, 16, device=device)
    k = torch.randn(2, 1, 6, 16, device=device)
    position_ids = torch.arange(3, 9, device=device).expand(2, 6)
    cos, sin = llama.LlamaRotaryEmbedding(config).to(device)(q, position_ids)
    q_ref, k_ref = llama.apply_rotary_pos_emb(q, k, cos, sin)
    q_rot, k_rot = RotaryEmbedding(16, max_len=64).to(device)(q, k, offset=3)
    torch.testing.assert_close(q_rot, q_ref, **tolerance(torch.float32))
    torch.testing.assert_close(k_rot, k_ref, **tolerance(torch.float32))


@PROPERTY
@given(half_dim=st.integers(1, 16), t=st.integers(1, 8), shift=st.integers(0, 200), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_scores_depend_only_on_relative_position(device, dtype, half_dim, t, shift, seed):
    _skip_unsupported(device, dtype)
    d = 2 * half_dim
    rope = RotaryEmbedding(d, max_len=256).to(device)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 1, t, d, generator=gen, dtype=dtype).to(device)
    k = torch.randn(1, 1, t, d, generator=gen, dtype=dtype).to(device)

    def scores(q, k, offset):
        q_rot, k_rot = rope(q, k, offset=offset)
        return (q_rot @ k_rot.transpose(-2, -1))[0, 0]  # t t: query position i, key position j

    # Shifting every position by the same amount leaves every q . k unchanged.
    torch.testing.assert_close(scores(q, k, shift), scores(q, k, 0), **tolerance(dtype))
    # The same q and k vectors at every position: the score depends on i - j only.
    same = scores(q[:, :, :1].expand_as(q), k[:, :, :1].expand_as(k), shift)
    for lag in range(-t + 1, t):
        diagonal = torch.diagonal(same, offset=lag)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), **tolerance(dtype))


def test_rope_with_offset_equals_slice_of_full_sequence(device):
    """Decoding with a KV cache: rotating the new tokens at their offset = rotating everything."""
    rope = RotaryEmbedding(8, max_len=32).to(device)
    q = torch.randn(1, 2, 9, 8, device=device)
    k = torch.randn(1, 2, 9, 8, device=device)
    q_all, k_all = rope(q, k)
    q_new, k_new = rope(q[:, :, 6:], k[:, :, 6:], offset=6)
    torch.testing.assert_close(q_new, q_all[:, :, 6:], **tolerance(torch.float32))
    torch.testing.assert_close(k_new, k_all[:, :, 6:], **tolerance(torch.float32))
    torch.testing.assert_close(rope.rotate(k[:, :, 6:], offset=6), k_all[:, :, 6:], **tolerance(torch.float32))
    # A rotation keeps every vector's length.
    torch.testing.assert_close(q_all.norm(dim=-1), q.norm(dim=-1), **tolerance(torch.float32))


def test_rope_cache_is_float32_out_of_checkpoints_and_cast_back(device):
    rope = RotaryEmbedding(8, max_len=32)
    assert rope.state_dict() == {} and rope.cos.dtype == torch.float32
    rope_bf16 = RotaryEmbedding(8, max_len=32).to(device, torch.bfloat16)  # casts the buffers
    q = torch.randn(1, 2, 5, 8, device=device).to(torch.bfloat16)
    k = torch.randn(1, 1, 5, 8, device=device).to(torch.bfloat16)
    q_rot, k_rot = rope_bf16(q, k, offset=20)
    assert q_rot.dtype == k_rot.dtype == torch.bfloat16
    assert rope_bf16.cos.dtype == rope_bf16.sin.dtype == torch.float32  # rebuilt, not left in bf16
    # Rotated in float32, rounded to bf16 once.
    q_ref, k_ref = rope.to(device)(q.float(), k.float(), offset=20)
    assert torch.equal(q_rot, q_ref.to(torch.bfloat16)) and torch.equal(k_rot, k_ref.to(torch.bfloat16))


def test_rope_bad_input(device):
    rope = RotaryEmbedding(8, max_len=16).to(device)
    q = torch.randn(1, 2, 4, 8, device=device)
    with pytest.raises(ValueError, match=r"head_dim must be even .*got 7"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match=r"q must have shape \(b, heads, t, 8\), got \(2, 4, 8\)"):
        rope(q[0], q)
    with pytest.raises(ValueError, match=r"k must have shape \(b, heads, t, 8\), got \(1, 2, 4, 6\)"):
        rope(q, q[..., :6])
    with pytest.raises(ValueError, match=r"q and k must cover the same positions: q \(1, 2, 4, 8\), k \(1, 2, 3, 8\)"):
        rope(q, q[:, :, :3])
    with pytest.raises(ValueError, match=r"q of shape \(1, 2, 4, 8\) at offset 13 needs positions \[13, 17\), but max_len is 16"):
        rope(q, q, offset=13)
    with pytest.raises(ValueError, match=r"x of shape \(1, 2, 17, 8\) at offset 0 .*max_len is 16"):
        rope.rotate(torch.randn(1, 2, 17, 8, device=device))
