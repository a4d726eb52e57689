"""The CUDA path: fused attention on the flash / memory-efficient kernels in bf16, a bf16
autocast training step, and the KV cache living on the GPU. Skipped (and only these) on
machines without CUDA."""
from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from course_lib.models.decoder import Decoder, DecoderConfig
from course_lib.nn import padding_mask_from_lengths, scaled_dot_product_attention
from course_lib.train import TrainConfig, train

pytestmark = pytest.mark.gpu


def _qkv(t=256, dtype=torch.bfloat16):
    return [torch.randn(2, 4, t, 64, device="cuda", dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("backend", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION])
def test_fused_attention_runs_on_the_fast_kernels(backend):
    q, k, v = _qkv()
    reference = scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, impl="naive")
    with sdpa_kernel([backend]):  # raises if this kernel cannot serve the call
        out = scaled_dot_product_attention(q, k, v, is_causal=True, impl="fused")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=2e-2, rtol=2e-2)


def test_memory_efficient_kernel_takes_a_padding_mask():
    q, k, v = _qkv()
    mask = padding_mask_from_lengths(torch.tensor([256, 100], device="cuda"))
    reference = scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, impl="naive")
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
        out = scaled_dot_product_attention(q, k, v, attn_mask=mask, impl="fused")
    torch.testing.assert_close(out.float(), reference, atol=2e-2, rtol=2e-2)


class _Tokens(torch.utils.data.Dataset):
    def __init__(self, n=256, t=32, vocab=64):
        g = torch.Generator().manual_seed(0)
        start = torch.randint(0, vocab, (n, 1), generator=g)
        self.ids = (start + torch.arange(t + 1)) % vocab  # a learnable counting pattern

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i]


def test_bf16_autocast_training_step_on_cuda():
    config = DecoderConfig(vocab_size=64, embed_dim=64, num_layers=2, num_heads=4, hidden_dim=128, max_len=64)
    model = Decoder(config)
    seen = []
    # The residual stream stays float32 under autocast; the matmuls inside run in bf16. (The
    # hook is on out_proj: in training q_proj's forward never runs, its weight joins one q/k/v
    # matmul, and a hook on it saw nothing on the H200.)
    model.blocks[0].self_attn.out_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))

    def loss_fn(m, ids):
        logits = m(ids[:, :-1])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())

    history = train(model, _Tokens(), config=TrainConfig(max_steps=30, batch_size=32, warmup_steps=5,
                                                         eval_every=30, device="cuda", progress=False),
                    loss_fn=loss_fn)
    assert next(model.parameters()).device.type == "cuda"
    assert torch.bfloat16 in seen, "training on CUDA must run under bf16 autocast"
    assert history.train_loss[-1] < history.train_loss[0], "30 bf16 steps must lower the loss"


def test_kv_cache_lives_on_the_gpu_and_matches_recompute():
    config = DecoderConfig(vocab_size=50, embed_dim=32, num_layers=2, num_heads=4, hidden_dim=64, max_len=64)
    model = Decoder(config).cuda().eval()
    caches = model.new_kv_caches(batch_size=2, max_len=40)
    assert all(c.k_cache.device.type == "cuda" for c in caches)
    prompt = torch.randint(0, 50, (2, 8), device="cuda")
    cached = model.generate(prompt, 24, use_cache=True)
    recomputed = model.generate(prompt, 24, use_cache=False)
    assert torch.equal(cached, recomputed)
