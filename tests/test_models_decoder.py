"""The GPT family: parity with GPT-2 and Llama, generation, KV cache, control codes."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import Decoder, DecoderConfig, lm_loss, with_control_codes
from tests.conftest import tolerance
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")


def gpt2(device):
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval().to(device)


def llama(device):
    config = transformers.LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return transformers.LlamaForCausalLM(config).eval().to(device)


def prompt(device, b=2, t=7):
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, 100, (b, t), generator=g).to(device)


@pytest.mark.parametrize("build", [gpt2, llama], ids=["gpt2", "llama"])
def test_logits_match_hugging_face(device, build):
    hf = build(device)
    model = Decoder.from_hf(hf).to(device)
    ids = prompt(device)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, **tolerance(torch.float32))


@pytest.mark.parametrize("build", [gpt2, llama], ids=["gpt2", "llama"])
def test_greedy_generation_matches_hugging_face(device, build):
    hf = build(device)
    model = Decoder.from_hf(hf).to(device)
    ids = prompt(device)
    expected = hf.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    got = model.generate(ids, 12)
    assert got.tolist() == expected.tolist()
    # Stop tokens: use a token that greedy decoding really emits, so that a row stops early.
    stop = int(expected[0, ids.shape[1] + 3])
    expected = hf.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=1, eos_token_id=stop)
    got = model.generate(ids, 12, stop_tokens=[stop], pad_id=1)
    assert got.tolist() == expected.tolist()
    assert (got[0, ids.shape[1] + 4:] == 1).all(), "a row that emitted its stop token must only pad afterwards"


def tiny(positions="learned", **kw):
    config = DecoderConfig(vocab_size=40, embed_dim=32, num_layers=2, num_heads=4, hidden_dim=64, max_len=48,
                           positions=positions, **kw)
    torch.manual_seed(0)
    return Decoder(config).eval()


CONFIGS = {
    "gpt2-like": dict(),
    "llama-like": dict(positions="rope", norm="rmsnorm", ffn="swiglu", num_kv_heads=2, tie_embeddings=False,
                       bias=False),
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sampling", [dict(), dict(temperature=0.9, top_k=8), dict(temperature=1.2, top_p=0.8)])
def test_cached_and_uncached_generation_are_identical(device, name, sampling):
    model = tiny(**CONFIGS[name]).to(device)
    ids = prompt(device, b=3, t=5) % 40
    outs = []
    for use_cache in (True, False):
        gen = torch.Generator(device=device).manual_seed(7)
        outs.append(model.generate(ids, 20, use_cache=use_cache, generator=gen, **sampling))
    assert outs[0].tolist() == outs[1].tolist()


@pytest.mark.parametrize("name", CONFIGS)
def test_cached_logits_equal_full_forward(device, name):
    model = tiny(**CONFIGS[name]).to(device)
    ids = prompt(device, b=2, t=9) % 40
    caches = model.new_kv_caches(2, 9)
    with torch.no_grad():
        stepwise = torch.cat([model(ids[:, :4], kv_caches=caches)] +
                             [model(ids[:, i:i + 1], kv_caches=caches) for i in range(4, 9)], dim=1)
        torch.testing.assert_close(stepwise, model(ids), **tolerance(torch.float32))


@pytest.mark.parametrize("top_k, top_p", [(3, None), (None, 0.5)])
def test_generated_tokens_stay_in_the_allowed_set(device, top_k, top_p):
    model = tiny().to(device)
    ids = (prompt(device, b=1, t=3) % 40).expand(64, -1)  # 64 seeded draws per step
    gen = torch.Generator(device=device).manual_seed(0)
    out = model.generate(ids, 10, temperature=1.0, top_k=top_k, top_p=top_p, generator=gen)
    with torch.no_grad():
        probs = model(out[:, :-1]).softmax(-1)[:, ids.shape[1] - 1:]  # the distributions sampled from
    chosen = out[:, ids.shape[1]:]
    for row in range(out.shape[0]):
        for step in range(chosen.shape[1]):
            p = probs[row, step]
            token = int(chosen[row, step])
            if top_k is not None:
                assert token in p.topk(top_k).indices.tolist()
            else:
                # Tokens strictly more likely than the chosen one hold less than top_p of the mass.
                assert p[p > p[token]].sum() < top_p + 1e-6


def test_control_codes_prefix_and_loss():
    ids = torch.tensor([[5, 6, 7]])
    assert with_control_codes(ids, [1, 2]).tolist() == [[1, 2, 5, 6, 7]]
    with pytest.raises(ValueError, match="control_codes"):
        with_control_codes(ids, torch.zeros(2, 2, dtype=torch.long))
    logits = torch.randn(1, 5, 9)
    seq = torch.tensor([[1, 2, 5, 6, 7]])
    # With two codes the targets are 5, 6, 7, predicted at positions 1, 2, 3.
    expected = torch.nn.functional.cross_entropy(logits[0, 1:4], seq[0, 2:])
    torch.testing.assert_close(lm_loss(logits, seq, num_prefix=2), expected)


def test_ctrl_style_training_makes_continuations_follow_the_code():
    # Code 1 -> "3 4 3 4 ...", code 2 -> "3 6 3 6 ...": after the same prompt "3", only the code decides.
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=8, embed_dim=32, num_layers=1, num_heads=2, hidden_dim=64,
                                  max_len=16))
    data = torch.tensor([[1] + [3, 4] * 4, [2] + [3, 6] * 4])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = lm_loss(model(data), data, num_prefix=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = model.generate(torch.tensor([[3], [3]]), 4, control_codes=torch.tensor([[1], [2]]))
    assert out.tolist() == [[1, 3, 4, 3, 4, 3], [2, 3, 6, 3, 6, 3]]


def test_bad_config_and_cache_raise():
    with pytest.raises(ValueError, match="positions"):
        Decoder(DecoderConfig(positions="alibi"))
    model = tiny()
    with pytest.raises(ValueError, match="max_len"):
        model.new_kv_caches(1, 100)


@pytest.mark.parametrize("ffn", ["mlp", "swiglu"])
def test_gpt2_initialisation_starts_near_a_uniform_guess(ffn):
    import math

    config = DecoderConfig(vocab_size=500, embed_dim=64, num_layers=4, num_heads=4, hidden_dim=128, max_len=32,
                           ffn=ffn, norm="rmsnorm" if ffn == "swiglu" else "layernorm")
    torch.manual_seed(0)
    model = Decoder(config)
    residual = 0.02 / math.sqrt(2 * config.num_layers)
    for name, param in model.named_parameters():
        if name.endswith(("out_proj.weight", "down_proj.weight")):
            assert abs(param.std().item() - residual) < 0.2 * residual, f"{name}: GPT-2 scales it by 1/sqrt(2 layers)"
        elif param.dim() >= 2:
            assert abs(param.std().item() - 0.02) < 0.004, f"{name}: std {param.std().item():.4f}, expected 0.02"
        elif name.endswith("bias"):
            assert torch.equal(param, torch.zeros_like(param)), name
        else:
            assert torch.equal(param, torch.ones_like(param)), name
    ids = torch.randint(0, 500, (4, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loss = lm_loss(model(ids), ids).item()
        default = Decoder(DecoderConfig(**{**vars(config), "init_std": None}))
        default_loss = lm_loss(default(ids), ids).item()
    assert abs(loss - math.log(500)) < 0.05, f"a fresh GPT should guess uniformly: {loss:.2f} vs {math.log(500):.2f}"
    assert default_loss > 2 * loss, f"PyTorch's defaults (init_std=None) start far above ln(v): {default_loss:.1f}"
