"""OPT -> Decoder: logits and greedy generation match Hugging Face's ``OPTForCausalLM``."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import Decoder, from_hf
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

PAD = 1  # OPT's pad_token_id


def opt(**kw):
    config = transformers.OPTConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                                    num_attention_heads=4, max_position_embeddings=64, pad_token_id=PAD,
                                    bos_token_id=2, eos_token_id=2, **kw)
    torch.manual_seed(0)
    hf = transformers.OPTForCausalLM(config).eval()
    with torch.no_grad():  # HF's init leaves norms at identity and logits near zero: move every weight
        for p in hf.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return hf


VARIANTS = {
    "pre-norm": dict(),
    "post-norm": dict(do_layer_norm_before=False),  # OPT-350m's blocks: no final norm either
    "narrow-tokens": dict(word_embed_proj_dim=16),  # OPT-350m's project_in / project_out
}


def left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(map(len, rows))
    ids = torch.tensor([[PAD] * (t - len(r)) + r for r in rows])
    mask = torch.tensor([[False] * (t - len(r)) + [True] * len(r) for r in rows])
    return ids, mask


ROWS = [[5, 9, 12, 3, 30, 7, 44], [8, 2, 61], [17, 17, 4, 25, 90]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_hugging_face(variant):
    hf = opt(**VARIANTS[variant])
    model = from_hf(hf)
    assert isinstance(model, Decoder)
    ids = torch.randint(3, 100, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(ids).logits
        diff = (model(ids) - expected).abs().max().item()
    assert expected.std() > 0.5, "logits this flat would hide a wrong weight"
    assert diff <= 1e-4, f"{variant}: max |ours - HF| = {diff:.2e}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_left_padded_batch_reads_positions_from_the_first_real_token(variant):
    hf = opt(**VARIANTS[variant])
    model = from_hf(hf)
    ids, mask = left_padded(ROWS)
    # HF counts positions with the mask's cumulative sum, so each row's first real token is position 0.
    positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask.long()).logits
        ours = model(ids, attn_mask=mask[:, None, None, :], positions=positions)
        shifted = model(ids, attn_mask=mask[:, None, None, :])  # positions counted from the padding instead
    diff = (ours - expected)[mask].abs().max().item()
    assert diff <= 1e-4, f"{variant}: max |ours - HF| over real tokens = {diff:.2e}"
    assert (shifted - expected)[mask].abs().max().item() > 1e-2, "positions must start at the first real token"


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generation_matches_hugging_face(variant):
    hf = opt(**VARIANTS[variant])
    model = from_hf(hf)
    ids, mask = left_padded(ROWS)
    expected = hf.generate(ids, attention_mask=mask.long(), do_sample=False, max_new_tokens=20, pad_token_id=PAD,
                           eos_token_id=None)
    got = model.generate(ids, max_new_tokens=20, temperature=0, attn_mask=mask)
    assert got.shape == (3, ids.shape[1] + 20)
    assert got.tolist() == expected.tolist()
    # Without padding the batch needs no mask at all.
    same_length = torch.tensor([r[:3] for r in ROWS])
    expected = hf.generate(same_length, do_sample=False, max_new_tokens=20, pad_token_id=PAD, eos_token_id=None)
    assert model.generate(same_length, max_new_tokens=20, temperature=0).tolist() == expected.tolist()


def test_the_converted_model_has_opts_shape():
    post = from_hf(opt(do_layer_norm_before=False))
    assert post.final_norm is None and not post.blocks[0].norm_first
    narrow = from_hf(opt(word_embed_proj_dim=16))
    assert narrow.token_embed.weight.shape == (100, 16) and narrow.proj_in.weight.shape == (32, 16)
    assert narrow.pos_embed.weight.shape == (64 + 2, 32), "OPT's table has two extra rows before position 0"


@pytest.mark.parametrize("option, message", [
    (dict(enable_bias=False), "enable_bias"),
    (dict(layer_norm_elementwise_affine=False), "layer_norm_elementwise_affine"),
    (dict(activation_function="silu"), "activation_function"),
])
def test_unsupported_options_raise(option, message):
    with pytest.raises(ValueError, match=message):
        from_hf(opt(**option))
